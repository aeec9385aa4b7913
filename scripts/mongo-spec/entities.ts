// The per-test entity map: clients (with their observed command events), databases,
// collections, sessions, cursors and saved BSON values.
import {
  type AbstractCursor,
  type ClientSession,
  type Collection,
  type CommandFailedEvent,
  type CommandStartedEvent,
  type CommandSucceededEvent,
  type Db,
  MongoClient,
  type MongoClientOptions,
  ReadPreference,
  type ReadPreferenceMode,
  Timestamp,
} from "mongodb";
import type { EntityLookup } from "./matcher";
import { type Doc, isDocument, show } from "./values";

/** The Node driver's snapshot session: the cluster time its reads are pinned to (set by its first read). */
export interface SnapshotSession {
  snapshotTime?: Timestamp;
}

/** A fault of the runner or the test file (not of the server): the test fails with it. */
export class RunnerError extends Error {}

export type ObservedEvent =
  | { type: "commandStartedEvent"; event: CommandStartedEvent }
  | { type: "commandSucceededEvent"; event: CommandSucceededEvent }
  | { type: "commandFailedEvent"; event: CommandFailedEvent };

export interface ClientEntity {
  kind: "client";
  client: MongoClient;
  observe: Set<string>;
  ignoreCommands: Set<string>;
  observeSensitive: boolean;
  events: ObservedEvent[];
  recording: boolean;
  checkedOut: number;
}

export type Entity =
  | ClientEntity
  | { kind: "database"; db: Db; client: ClientEntity }
  | { kind: "collection"; coll: Collection<Doc>; client: ClientEntity }
  | { kind: "session"; session: ClientSession; client: ClientEntity; lsid: unknown }
  | { kind: "cursor"; cursor: AbstractCursor<Doc>; client?: ClientEntity }
  | { kind: "value"; value: unknown };

const SENSITIVE = new Set([
  "authenticate", "saslstart", "saslcontinue", "getnonce", "createuser", "updateuser",
  "copydbgetnonce", "copydbsaslstart", "copydb",
]);

/** Command names the runner itself sends and never reports as observed. */
const RUNNER_COMMANDS = new Set(["configurefailpoint"]);

export interface EntityMapOptions {
  uri: string;
  /** Applied to every client entity unless its uriOptions say otherwise. */
  clientDefaults?: MongoClientOptions;
}

export class EntityMap implements EntityLookup {
  private readonly map = new Map<string, Entity>();
  constructor(private readonly opts: EntityMapOptions) {}

  has(name: string): boolean {
    return this.map.has(name);
  }

  get(name: string): unknown {
    const e = this.entity(name);
    switch (e.kind) {
      case "value":
        return e.value;
      default:
        throw new RunnerError(`entity ${name} is a ${e.kind}, not a BSON value`);
    }
  }

  sessionLsid(name: string): unknown {
    return this.session(name).lsid;
  }

  entity(name: string): Entity {
    const e = this.map.get(name);
    if (!e) throw new RunnerError(`entity ${name} is not defined`);
    return e;
  }

  set(name: string, e: Entity): void {
    if (this.map.has(name)) throw new RunnerError(`entity ${name} already exists`);
    this.map.set(name, e);
  }

  client(name: string): ClientEntity {
    const e = this.entity(name);
    if (e.kind !== "client") throw new RunnerError(`entity ${name} is a ${e.kind}, not a client`);
    return e;
  }

  session(name: string): Extract<Entity, { kind: "session" }> {
    const e = this.entity(name);
    if (e.kind !== "session") throw new RunnerError(`entity ${name} is a ${e.kind}, not a session`);
    return e;
  }

  clients(): ClientEntity[] {
    return [...this.map.values()].filter((e): e is ClientEntity => e.kind === "client");
  }

  /** Creates the entities of a createEntities list, in order. */
  create(list: unknown): void {
    if (!Array.isArray(list)) throw new RunnerError("createEntities must be an array");
    for (const item of list) {
      if (!isDocument(item) || Object.keys(item).length !== 1) throw new RunnerError(`malformed entity ${show(item)}`);
      const [type] = Object.keys(item);
      const spec = item[type];
      if (!isDocument(spec) || typeof spec.id !== "string") throw new RunnerError(`entity without id: ${show(item)}`);
      switch (type) {
        case "client":
          this.set(spec.id, this.makeClient(spec));
          break;
        case "database": {
          const client = this.client(String(spec.client));
          const db = client.client.db(String(spec.databaseName), collOrDbOptions(spec.databaseOptions));
          this.set(spec.id, { kind: "database", db, client });
          break;
        }
        case "collection": {
          const parent = this.entity(String(spec.database));
          if (parent.kind !== "database") throw new RunnerError(`entity ${String(spec.database)} is not a database`);
          const coll = parent.db.collection<Doc>(String(spec.collectionName), collOrDbOptions(spec.collectionOptions));
          this.set(spec.id, { kind: "collection", coll, client: parent.client });
          break;
        }
        case "session": {
          const client = this.client(String(spec.client));
          const { snapshotTime, ...options } = isDocument(spec.sessionOptions) ? spec.sessionOptions : {};
          const session = client.client.startSession(options);
          // snapshotTime names an entity (a Timestamp saved by getSnapshotTime); the Node driver has
          // no startSession option for it, only the session's own (internal) snapshotTime field.
          if (snapshotTime !== undefined) {
            if (typeof snapshotTime !== "string") throw new RunnerError(`sessionOptions.snapshotTime must name an entity: ${show(snapshotTime)}`);
            const value = this.get(snapshotTime);
            if (!(value instanceof Timestamp)) throw new RunnerError(`entity ${snapshotTime} is not a Timestamp`);
            (session as unknown as SnapshotSession).snapshotTime = value;
          }
          this.set(spec.id, { kind: "session", session, client, lsid: session.id });
          break;
        }
        default:
          throw new RunnerError(`unsupported entity type ${type}`);
      }
    }
  }

  private makeClient(spec: Doc): ClientEntity {
    for (const key of Object.keys(spec)) {
      if (!CLIENT_KEYS.has(key)) throw new RunnerError(`unsupported client entity option ${key}`);
    }
    const url = new URL(this.opts.uri);
    const uriOptions = isDocument(spec.uriOptions) ? spec.uriOptions : {};
    for (const [k, v] of Object.entries(uriOptions)) {
      if (isDocument(v)) throw new RunnerError(`uriOptions.${k}: placeholder or document values are not supported`);
      url.searchParams.set(k, String(v));
    }
    const observe = new Set(Array.isArray(spec.observeEvents) ? spec.observeEvents.map(String) : []);
    for (const t of observe) {
      if (!COMMAND_EVENTS.has(t)) throw new RunnerError(`observing ${t} is not supported`);
    }
    const options: MongoClientOptions = { ...this.opts.clientDefaults };
    for (const k of Object.keys(uriOptions)) delete (options as Record<string, unknown>)[k];
    options.monitorCommands = observe.size > 0;
    if (isDocument(spec.serverApi)) {
      options.serverApi = {
        version: String(spec.serverApi.version) as "1",
        strict: spec.serverApi.strict as boolean | undefined,
        deprecationErrors: spec.serverApi.deprecationErrors as boolean | undefined,
      };
    }
    const client = new MongoClient(url.toString(), options);
    const entity: ClientEntity = {
      kind: "client",
      client,
      observe,
      ignoreCommands: new Set(
        (Array.isArray(spec.ignoreCommandMonitoringEvents) ? spec.ignoreCommandMonitoringEvents : []).map((c) =>
          String(c).toLowerCase(),
        ),
      ),
      observeSensitive: spec.observeSensitiveCommands === true,
      events: [],
      recording: true,
      checkedOut: 0,
    };
    const keep = (name: string, cmd: unknown): boolean => {
      if (!entity.recording) return false;
      const lower = name.toLowerCase();
      if (RUNNER_COMMANDS.has(lower) || entity.ignoreCommands.has(lower)) return false;
      if (entity.observeSensitive) return true;
      if (SENSITIVE.has(lower)) return false;
      // hello/legacy hello are sensitive only when redacted (speculative authentication).
      if ((lower === "hello" || lower === "ismaster") && isDocument(cmd) && Object.keys(cmd).length === 0) return false;
      return true;
    };
    client.on("commandStarted", (event) => {
      if (observe.has("commandStartedEvent") && keep(event.commandName, event.command)) {
        entity.events.push({ type: "commandStartedEvent", event });
      }
    });
    client.on("commandSucceeded", (event) => {
      if (observe.has("commandSucceededEvent") && keep(event.commandName, event.reply)) {
        entity.events.push({ type: "commandSucceededEvent", event });
      }
    });
    client.on("commandFailed", (event) => {
      if (observe.has("commandFailedEvent") && keep(event.commandName, undefined)) {
        entity.events.push({ type: "commandFailedEvent", event });
      }
    });
    client.on("connectionCheckedOut", () => entity.checkedOut++);
    client.on("connectionCheckedIn", () => entity.checkedOut--);
    return entity;
  }

  /** Ends sessions, closes cursors and clients; errors are swallowed (cleanup must not mask results). */
  async close(): Promise<void> {
    const all = [...this.map.values()];
    for (const e of all) {
      if (e.kind === "cursor") await quietly(e.cursor.close());
    }
    for (const e of all) {
      if (e.kind === "session") await quietly(e.session.endSession());
    }
    for (const e of all) {
      if (e.kind === "client") await quietly(e.client.close());
    }
    this.map.clear();
  }
}

const CLIENT_KEYS = new Set([
  "id", "uriOptions", "useMultipleMongoses", "observeEvents", "ignoreCommandMonitoringEvents",
  "observeSensitiveCommands", "serverApi",
]);
const COMMAND_EVENTS = new Set(["commandStartedEvent", "commandSucceededEvent", "commandFailedEvent"]);

async function quietly(p: Promise<unknown>, ms = 5000): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([p, new Promise((resolve) => (timer = setTimeout(resolve, ms)))]);
  } catch {
    // cleanup errors are not test results
  } finally {
    clearTimeout(timer);
  }
}

/** readConcern/readPreference/writeConcern of collectionOrDatabaseOptions (and operation arguments). */
export function collOrDbOptions(v: unknown): Doc {
  if (v === undefined) return {};
  if (!isDocument(v)) throw new RunnerError(`malformed options ${show(v)}`);
  const out: Doc = {};
  for (const [k, val] of Object.entries(v)) {
    switch (k) {
      case "readConcern":
        out.readConcern = val;
        break;
      case "readPreference":
        out.readPreference = readPreference(val);
        break;
      case "writeConcern":
        out.writeConcern = val;
        break;
      case "timeoutMS":
        out.timeoutMS = val;
        break;
      default:
        throw new RunnerError(`unsupported collection/database option ${k}`);
    }
  }
  return out;
}

export function readPreference(v: unknown): ReadPreference {
  if (!isDocument(v) || typeof v.mode !== "string") throw new RunnerError(`malformed readPreference ${show(v)}`);
  const mode = (v.mode.charAt(0).toLowerCase() + v.mode.slice(1)) as ReadPreferenceMode;
  return new ReadPreference(mode, v.tagSets as never, {
    maxStalenessSeconds: v.maxStalenessSeconds as number | undefined,
    hedge: v.hedge as never,
  });
}

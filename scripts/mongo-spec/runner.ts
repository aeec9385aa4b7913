// Runs unified-format test files against a MongoDB-compatible server through the official driver.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import { BSON, MongoClient } from "mongodb";
import { type ClientEntity, EntityMap, type ObservedEvent, RunnerError } from "./entities";
import { checkError, describeError } from "./errors";
import { match, matchExact, MatcherUsageError } from "./matcher";
import { errorResult, type OpContext, type Operation, runEntityOperation } from "./operations";
import { probeServer, requirementsUnmet, type ServerInfo } from "./requirements";
import { type Doc, isDocument, show } from "./values";

/** Highest schema version whose features this runner implements (major must match). */
export const SUPPORTED_SCHEMA: [number, number] = [1, 21];

export interface Target {
  uri: string;
  close(): Promise<void>;
}

export interface RunOptions {
  /** Creates the server for one file (a fresh engine, or a shared external server). */
  target: () => Promise<Target>;
  /** Check expectEvents (default) or skip that part of each test. */
  events?: "check" | "skip";
  serverless?: boolean;
  /** Per-operation time limit: a hung server fails the test instead of the run. */
  operationTimeoutMs?: number;
  /** Only tests whose description contains this string. */
  filter?: string;
  onResult?: (r: TestResult) => void;
}

export interface TestResult {
  file: string;
  description: string;
  status: "passed" | "failed" | "skipped";
  reason?: string;
  /** True when the test had expectEvents that were not checked. */
  eventsSkipped?: boolean;
}

export interface Summary {
  results: TestResult[];
  passed: number;
  failed: number;
  skipped: number;
}

/** Test files under a path: the file itself, or every *.json in the directory (sorted). */
export function specFiles(path: string): string[] {
  if (statSync(path).isDirectory()) {
    return readdirSync(path).filter((f) => f.endsWith(".json")).sort().map((f) => join(path, f));
  }
  return [path];
}

export async function runSpecPaths(paths: string[], opts: RunOptions): Promise<Summary> {
  const results: TestResult[] = [];
  for (const p of paths) for (const f of specFiles(p)) results.push(...(await runSpecFile(f, opts)));
  return summarize(results);
}

export function summarize(results: TestResult[]): Summary {
  const count = (s: TestResult["status"]) => results.filter((r) => r.status === s).length;
  return { results, passed: count("passed"), failed: count("failed"), skipped: count("skipped") };
}

function schemaCompatible(v: unknown): boolean {
  if (typeof v !== "string") return false;
  const [major, minor = 0] = v.split(".").map(Number);
  return major === SUPPORTED_SCHEMA[0] && minor <= SUPPORTED_SCHEMA[1];
}

export async function runSpecFile(path: string, opts: RunOptions): Promise<TestResult[]> {
  const file = basename(path);
  const out: TestResult[] = [];
  const emit = (r: TestResult) => {
    out.push(r);
    opts.onResult?.(r);
  };
  let spec: Doc;
  try {
    spec = BSON.EJSON.parse(readFileSync(path, "utf8"), { relaxed: true }) as Doc;
    if (!isDocument(spec) || !Array.isArray(spec.tests)) throw new Error("no tests array");
  } catch (e) {
    emit({ file, description: "(file)", status: "failed", reason: `cannot load test file: ${(e as Error).message}` });
    return out;
  }
  const tests = (spec.tests as unknown[]).filter(isDocument);
  const wanted = tests.filter((t) => !opts.filter || String(t.description).includes(opts.filter));
  if (!schemaCompatible(spec.schemaVersion)) {
    for (const t of wanted) {
      emit({ file, description: String(t.description), status: "failed", reason: `schemaVersion ${String(spec.schemaVersion)} is not supported (runner supports ${SUPPORTED_SCHEMA.join(".")})` });
    }
    return out;
  }
  if (wanted.length === 0) return out;

  let target: Target;
  try {
    target = await opts.target();
  } catch (e) {
    for (const t of wanted) emit({ file, description: String(t.description), status: "failed", reason: `cannot start server: ${describeError(e)}` });
    return out;
  }
  const internal = new MongoClient(target.uri, { serverSelectionTimeoutMS: 10000 });
  try {
    let info: ServerInfo;
    try {
      await internal.connect();
      info = await probeServer(internal, opts.serverless ?? false);
    } catch (e) {
      for (const t of wanted) emit({ file, description: String(t.description), status: "failed", reason: `cannot query server version/topology: ${describeError(e)}` });
      return out;
    }
    const params = new Map<string, unknown>();
    const getParameter = async (name: string) => {
      if (!params.has(name)) {
        const r = await internal.db("admin").command({ getParameter: 1, [name]: 1 });
        params.set(name, r[name]);
      }
      return params.get(name);
    };
    const fileUnmet = await requirementsUnmet(spec.runOnRequirements, info, getParameter);
    for (const test of wanted) {
      const description = String(test.description);
      if (fileUnmet) {
        emit({ file, description, status: "skipped", reason: `file runOnRequirements: ${fileUnmet}` });
        continue;
      }
      if (typeof test.skipReason === "string") {
        emit({ file, description, status: "skipped", reason: `skipReason: ${test.skipReason}` });
        continue;
      }
      const testUnmet = await requirementsUnmet(test.runOnRequirements, info, getParameter);
      if (testUnmet) {
        emit({ file, description, status: "skipped", reason: `runOnRequirements: ${testUnmet}` });
        continue;
      }
      emit(await runTest(file, spec, test, target.uri, internal, opts));
    }
  } finally {
    await internal.close().catch(() => {});
    await target.close().catch(() => {});
  }
  return out;
}

class Failure extends Error {}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Failure(`${what} timed out after ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

async function killAllSessions(internal: MongoClient): Promise<void> {
  try {
    await internal.db("admin").command({ killAllSessions: [] });
  } catch (e) {
    // MongoDB answers Interrupted (11601) when it killed the very session running the command.
    if ((e as { code?: number }).code !== 11601) throw e;
  }
}

async function setupInitialData(internal: MongoClient, initialData: unknown): Promise<void> {
  if (initialData === undefined) return;
  if (!Array.isArray(initialData)) throw new RunnerError("initialData must be an array");
  for (const cd of initialData) {
    if (!isDocument(cd)) throw new RunnerError("malformed collectionData");
    const db = internal.db(String(cd.databaseName));
    const name = String(cd.collectionName);
    const majority = { writeConcern: { w: "majority" as const } };
    try {
      await db.dropCollection(name, majority);
    } catch (e) {
      if ((e as { code?: number }).code !== 26) throw e;
    }
    const docs = Array.isArray(cd.documents) ? (cd.documents as Doc[]) : [];
    if (isDocument(cd.createOptions)) {
      await db.createCollection(name, { ...cd.createOptions, ...majority });
    } else if (docs.length === 0) {
      await db.createCollection(name, majority);
    }
    if (docs.length > 0) await db.collection(name).insertMany(docs, majority);
  }
}

async function checkOutcome(internal: MongoClient, outcome: unknown): Promise<void> {
  if (outcome === undefined) return;
  if (!Array.isArray(outcome)) throw new RunnerError("outcome must be an array");
  for (const cd of outcome) {
    if (!isDocument(cd) || !Array.isArray(cd.documents)) throw new RunnerError("malformed outcome collectionData");
    const ns = `${String(cd.databaseName)}.${String(cd.collectionName)}`;
    const actual = await internal
      .db(String(cd.databaseName))
      .collection(String(cd.collectionName))
      .find({}, { sort: { _id: 1 }, readConcern: { level: "local" }, readPreference: "primary" })
      .toArray();
    const why = matchExact(cd.documents, actual);
    if (why) throw new Failure(`outcome ${ns}: ${why}`);
  }
}

function eventDoc(e: ObservedEvent): Doc {
  const ev = e.event as unknown as Doc;
  const base: Doc = { commandName: ev.commandName, databaseName: ev.databaseName, serviceId: ev.serviceId, serverConnectionId: ev.serverConnectionId };
  if (e.type === "commandStartedEvent") base.command = ev.command;
  if (e.type === "commandSucceededEvent") base.reply = ev.reply;
  return base;
}

const EVENT_KEYS: Record<string, string[]> = {
  commandStartedEvent: ["command", "commandName", "databaseName", "hasServiceId", "hasServerConnectionId"],
  commandSucceededEvent: ["reply", "commandName", "databaseName", "hasServiceId", "hasServerConnectionId"],
  commandFailedEvent: ["commandName", "databaseName", "hasServiceId", "hasServerConnectionId"],
};

function matchEvent(expected: unknown, actual: ObservedEvent, entities: EntityMap): string | null {
  if (!isDocument(expected) || Object.keys(expected).length !== 1) throw new RunnerError(`malformed expected event ${show(expected)}`);
  const [type] = Object.keys(expected);
  const keys = EVENT_KEYS[type];
  if (!keys) throw new RunnerError(`unsupported expected event type ${type}`);
  if (type !== actual.type) return `expected ${type}, got ${actual.type} (${actual.event.commandName})`;
  const want = expected[type];
  if (!isDocument(want)) throw new RunnerError(`malformed ${type}`);
  const got = eventDoc(actual);
  for (const [k, v] of Object.entries(want)) {
    if (!keys.includes(k)) throw new RunnerError(`unsupported ${type} field ${k}`);
    if (k === "command" || k === "reply") {
      const why = match(v, got[k], { root: true, entities });
      if (why) return `${type} ${String(got.commandName)} ${k}: ${why}`;
    } else if (k === "hasServiceId") {
      if ((got.serviceId !== undefined && got.serviceId !== null) !== v) return `${type}: hasServiceId expected ${String(v)}`;
    } else if (k === "hasServerConnectionId") {
      const id = got.serverConnectionId;
      const has = (typeof id === "number" || typeof id === "bigint") && id > 0;
      if (has !== v) return `${type}: hasServerConnectionId expected ${String(v)}`;
    } else if (got[k] !== v) {
      return `${type}: ${k} expected ${show(v)}, got ${show(got[k])}`;
    }
  }
  return null;
}

function checkEvents(expectEvents: unknown, entities: EntityMap): string | null {
  if (!Array.isArray(expectEvents)) throw new RunnerError("expectEvents must be an array");
  for (const group of expectEvents) {
    if (!isDocument(group)) throw new RunnerError("malformed expectedEventsForClient");
    const eventType = group.eventType ?? "command";
    if (eventType !== "command") throw new RunnerError(`unsupported eventType ${String(eventType)}`);
    const client = entities.client(String(group.client));
    const expected = Array.isArray(group.events) ? group.events : [];
    const actual = client.events;
    const names = actual.map((e) => `${e.type.replace("Event", "")}:${e.event.commandName}`).join(", ");
    if (actual.length < expected.length || (actual.length > expected.length && group.ignoreExtraEvents !== true)) {
      return `client ${String(group.client)}: expected ${expected.length} event(s), observed ${actual.length} [${names}]`;
    }
    for (let i = 0; i < expected.length; i++) {
      const why = matchEvent(expected[i], actual[i], entities);
      if (why) return `client ${String(group.client)} event ${i}: ${why}`;
    }
  }
  return null;
}

const TXN_STATES: Record<string, string> = {
  NO_TRANSACTION: "none",
  STARTING_TRANSACTION: "starting",
  TRANSACTION_IN_PROGRESS: "in_progress",
  TRANSACTION_COMMITTED: "committed",
  TRANSACTION_COMMITTED_EMPTY: "committed",
  TRANSACTION_ABORTED: "aborted",
};

async function runSpecialOperation(ctx: OpContext, op: Operation): Promise<void> {
  const a = op.arguments ?? {};
  const lastTwoLsids = (clientName: string): [unknown, unknown] => {
    const started = ctx.entities.client(clientName).events.filter((e) => e.type === "commandStartedEvent");
    if (started.length < 2) throw new Failure(`${op.name}: fewer than two commandStartedEvents observed`);
    const [x, y] = started.slice(-2).map((e) => (e.event as unknown as { command: Doc }).command.lsid);
    if (x === undefined || y === undefined) throw new Failure(`${op.name}: a command has no lsid`);
    return [x, y];
  };
  const collectionExists = async () => {
    const list = await ctx.internal.db(String(a.databaseName)).listCollections({ name: String(a.collectionName) }, { nameOnly: true }).toArray();
    return list.length > 0;
  };
  const indexExists = async () => {
    const list = await ctx.internal.db(String(a.databaseName)).collection(String(a.collectionName)).listIndexes().toArray();
    return list.some((i) => i.name === a.indexName);
  };
  switch (op.name) {
    case "failPoint": {
      const client = ctx.entities.client(String(a.client)).client;
      if (!isDocument(a.failPoint)) throw new RunnerError("failPoint: failPoint must be a document");
      try {
        await client.db("admin").command(a.failPoint);
      } catch (e) {
        throw new Failure(`failPoint: server rejected configureFailPoint: ${describeError(e)}`);
      }
      ctx.failPoints.push({ client, name: String(a.failPoint.configureFailPoint) });
      return;
    }
    case "createEntities":
      ctx.entities.create(a.entities);
      return;
    case "wait":
      await new Promise((r) => setTimeout(r, Number(a.ms)));
      return;
    case "assertCollectionExists":
      if (!(await collectionExists())) throw new Failure(`collection ${String(a.databaseName)}.${String(a.collectionName)} does not exist`);
      return;
    case "assertCollectionNotExists":
      if (await collectionExists()) throw new Failure(`collection ${String(a.databaseName)}.${String(a.collectionName)} exists`);
      return;
    case "assertIndexExists":
      if (!(await indexExists())) throw new Failure(`index ${String(a.indexName)} does not exist`);
      return;
    case "assertIndexNotExists":
      if (await indexExists()) throw new Failure(`index ${String(a.indexName)} exists`);
      return;
    case "assertSessionTransactionState": {
      const session = ctx.entities.session(String(a.session)).session as unknown as { transaction?: { state?: string } };
      const state = TXN_STATES[session.transaction?.state ?? ""] ?? session.transaction?.state;
      if (state !== a.state) throw new Failure(`session transaction state is ${String(state)}, expected ${String(a.state)}`);
      return;
    }
    case "assertSessionPinned":
    case "assertSessionUnpinned": {
      const pinned = ctx.entities.session(String(a.session)).session.isPinned;
      if (pinned !== (op.name === "assertSessionPinned")) throw new Failure(`session is ${pinned ? "" : "not "}pinned`);
      return;
    }
    case "assertSessionDirty":
    case "assertSessionNotDirty": {
      const s = ctx.entities.session(String(a.session)).session as unknown as { serverSession?: { isDirty?: boolean } };
      const dirty = s.serverSession?.isDirty === true;
      if (dirty !== (op.name === "assertSessionDirty")) throw new Failure(`session is ${dirty ? "" : "not "}dirty`);
      return;
    }
    case "assertSameLsidOnLastTwoCommands":
    case "assertDifferentLsidOnLastTwoCommands": {
      const [x, y] = lastTwoLsids(String(a.client));
      const same = match(x, y, { root: false }) === null;
      if (same !== (op.name === "assertSameLsidOnLastTwoCommands")) throw new Failure(`last two lsids are ${same ? "equal" : "different"}`);
      return;
    }
    case "assertNumberConnectionsCheckedOut": {
      const c: ClientEntity = ctx.entities.client(String(a.client));
      if (c.checkedOut !== Number(a.connections)) throw new Failure(`${c.checkedOut} connection(s) checked out, expected ${String(a.connections)}`);
      return;
    }
    default:
      throw new RunnerError(`unsupported testRunner operation ${op.name}`);
  }
}

async function runOperation(ctx: OpContext, raw: unknown, timeoutMs: number): Promise<void> {
  if (!isDocument(raw) || typeof raw.name !== "string" || typeof raw.object !== "string") {
    throw new RunnerError(`malformed operation ${show(raw)}`);
  }
  const op = raw as unknown as Operation;
  const label = `${op.object}.${op.name}`;
  if (op.object === "testRunner") {
    await withTimeout(runSpecialOperation(ctx, op), timeoutMs, label);
    return;
  }
  let value: unknown;
  let outcome: Awaited<ReturnType<typeof runEntityOperation>> | undefined;
  let error: unknown;
  let failed = false;
  try {
    outcome = await withTimeout(runEntityOperation(ctx, op), timeoutMs, label);
    value = outcome.value;
  } catch (e) {
    if (e instanceof RunnerError || e instanceof MatcherUsageError || e instanceof Failure) throw e;
    error = e;
    failed = true;
  }
  if (op.ignoreResultAndError) return;
  if (op.expectError !== undefined) {
    if (!failed) throw new Failure(`${label}: expected an error, got result ${show(value)}`);
    const why = checkError(op.expectError, error, ctx.entities, errorResult);
    if (why) throw new Failure(`${label}: ${why}`);
    return;
  }
  if (failed) throw new Failure(`${label}: unexpected error ${describeError(error)}`);
  if (op.expectResult !== undefined) {
    let why: string | null;
    if (outcome?.rootElements && Array.isArray(op.expectResult) && Array.isArray(value)) {
      why = value.length === op.expectResult.length
        ? null
        : `$: expected ${op.expectResult.length} document(s), got ${value.length}: ${show(value)}`;
      for (let i = 0; !why && i < op.expectResult.length; i++) {
        const w = match(op.expectResult[i], value[i], { root: true, entities: ctx.entities });
        if (w) why = w.replace(/^\$/, `$[${i}]`);
      }
    } else {
      why = match(op.expectResult, value, { root: true, entities: ctx.entities });
    }
    if (why) throw new Failure(`${label}: result mismatch: ${why}`);
  }
  if (typeof op.saveResultAsEntity === "string") {
    ctx.entities.set(op.saveResultAsEntity, outcome?.entity ?? { kind: "value", value });
  }
}

async function runTest(
  file: string, spec: Doc, test: Doc, uri: string, internal: MongoClient, opts: RunOptions,
): Promise<TestResult> {
  const description = String(test.description);
  const timeoutMs = opts.operationTimeoutMs ?? 15000;
  const hasEvents = test.expectEvents !== undefined;
  const eventsSkipped = hasEvents && opts.events === "skip";
  const entities = new EntityMap({ uri, clientDefaults: { serverSelectionTimeoutMS: 10000 } });
  const failPoints: OpContext["failPoints"] = [];
  let reason: string | null = null;
  const ctx: OpContext = {
    entities,
    internal,
    failPoints,
    runNested: (op) => runOperation(ctx, op, timeoutMs),
  };
  try {
    // As the format requires: no session or transaction left open by an earlier test may block this one.
    await withTimeout(killAllSessions(internal), timeoutMs, "killAllSessions");
    await withTimeout(setupInitialData(internal, spec.initialData), timeoutMs, "initialData");
    if (spec.createEntities !== undefined) entities.create(spec.createEntities);
    if (!Array.isArray(test.operations)) throw new RunnerError("test has no operations array");
    for (const op of test.operations) await runOperation(ctx, op, timeoutMs);
  } catch (e) {
    reason = failureText(e);
  }
  for (const c of entities.clients()) c.recording = false;
  for (const fp of failPoints) {
    try {
      await withTimeout(fp.client.db("admin").command({ configureFailPoint: fp.name, mode: "off" }), timeoutMs, "disable fail point");
    } catch (e) {
      reason ??= `cannot disable fail point ${fp.name}: ${describeError(e)}`;
    }
  }
  if (reason === null && hasEvents && !eventsSkipped) {
    try {
      const why = checkEvents(test.expectEvents, entities);
      if (why) reason = `expectEvents: ${why}`;
    } catch (e) {
      reason = failureText(e);
    }
  }
  if (reason === null) {
    try {
      await withTimeout(checkOutcome(internal, test.outcome), timeoutMs, "outcome");
    } catch (e) {
      reason = failureText(e);
    }
  }
  await entities.close();
  return reason === null
    ? { file, description, status: "passed", eventsSkipped }
    : { file, description, status: "failed", reason, eventsSkipped };
}

function failureText(e: unknown): string {
  if (e instanceof Failure) return e.message;
  if (e instanceof RunnerError || e instanceof MatcherUsageError) return `runner: ${e.message}`;
  return `unexpected error: ${describeError(e)}`;
}

/** One line per failing test: file, description, reason (newlines flattened). */
export function failureLine(r: TestResult): string {
  return `FAIL ${r.file} :: ${r.description} :: ${(r.reason ?? "").replace(/\s+/g, " ")}`;
}

export function summaryLine(s: Summary): string {
  return `${s.passed} passed, ${s.failed} failed, ${s.skipped} skipped`;
}

import { MongoClient, type Db } from "mongodb";
import type { Config } from "../config";
import type { Logger } from "../log";
import { startClientSpan } from "../tracing";
import { watchHeartbeats } from "./heartbeat-watchdog";

/** The driver's default; the heartbeat watchdog's limits depend on it. */
const HEARTBEAT_FREQUENCY_MS = 10_000;

/** The database the server runs on: real MongoDB when MONGODB_URI is set, else the embedded engine. */
export type Database = {
  client: MongoClient;
  db: Db;
  /** Where it points, without credentials (for logs). */
  target: string;
  embedded: boolean;
  ping(): Promise<boolean>;
  close(): Promise<void>;
};

/** One name per collection; repositories use these, nothing else spells them. */
export const COLLECTIONS = {
  users: "users",
  restaurants: "restaurants",
  orders: "orders",
  couriers: "couriers",
  rateLimits: "rate_limits",
  idempotencyKeys: "idempotency_keys",
  leases: "leases",
  /** Keys the server generates for itself (src/db/jwt-secret.ts). */
  secrets: "secrets",
} as const;

export async function connectDatabase(
  config: Pick<Config, "MONGODB_URI" | "MONGODB_DB" | "MONGODB_CONNECT_TIMEOUT_MS" | "DATA_DIR" | "OTEL_EXPORTER_OTLP_ENDPOINT">,
  log: Logger,
): Promise<Database> {
  let uri: string;
  let stopEngine: (() => Promise<void>) | undefined;
  if (config.MONGODB_URI) {
    uri = config.MONGODB_URI;
  } else {
    // Imported lazily so a production deployment on real MongoDB never loads the engine.
    const { startEmbeddedMongo } = await import("../embedded-mongo");
    const engine = await startEmbeddedMongo({ port: 0, dataDir: config.DATA_DIR });
    uri = engine.uri;
    stopEngine = () => engine.close();
    log.info("embedded MongoDB engine started", { port: engine.port, dataDir: config.DATA_DIR });
  }
  const client = new MongoClient(uri, {
    serverSelectionTimeoutMS: 5_000,
    maxPoolSize: 50,
    // A database that dies mid-request must not hang requests forever.
    socketTimeoutMS: 30_000,
    connectTimeoutMS: config.MONGODB_CONNECT_TIMEOUT_MS,
    heartbeatFrequencyMS: HEARTBEAT_FREQUENCY_MS,
    // Command events feed the tracing spans; without tracing the driver does not emit them.
    monitorCommands: config.OTEL_EXPORTER_OTLP_ENDPOINT !== undefined,
  });
  if (config.OTEL_EXPORTER_OTLP_ENDPOINT !== undefined) traceCommands(client);
  try {
    await client.connect();
  } catch (err) {
    await stopEngine?.();
    throw err;
  }
  const stopWatchdog = watchHeartbeats(client, { connectTimeoutMS: config.MONGODB_CONNECT_TIMEOUT_MS, heartbeatFrequencyMS: HEARTBEAT_FREQUENCY_MS, log: log.child({ component: "mongodb" }) });
  const db = client.db(config.MONGODB_DB);
  const target = redactUri(uri);
  return {
    client,
    db,
    target,
    embedded: stopEngine !== undefined,
    async ping() {
      try {
        await db.command({ ping: 1 }, { timeoutMS: 2_000 });
        return true;
      } catch {
        return false;
      }
    },
    async close() {
      stopWatchdog();
      await client.close();
      await stopEngine?.();
    },
  };
}

/** One client span per command (its parent: whatever span is current where the command was sent). */
function traceCommands(client: MongoClient): void {
  const open = new Map<number, NonNullable<ReturnType<typeof startClientSpan>>>();
  client.on("commandStarted", (event) => {
    const target = event.command[event.commandName];
    const span = startClientSpan(`mongodb ${event.commandName}`, {
      "db.system.name": "mongodb",
      "db.namespace": event.databaseName,
      "db.operation.name": event.commandName,
      ...(typeof target === "string" ? { "db.collection.name": target } : {}),
    });
    if (span) open.set(event.requestId, span);
  });
  client.on("commandSucceeded", (event) => {
    open.get(event.requestId)?.end();
    open.delete(event.requestId);
  });
  client.on("commandFailed", (event) => {
    open.get(event.requestId)?.end(event.failure);
    open.delete(event.requestId);
  });
}

export function redactUri(uri: string): string {
  return uri.replace(/\/\/([^@/]*)@/, "//***@");
}

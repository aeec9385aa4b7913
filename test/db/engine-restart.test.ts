import { afterAll, expect, test } from "bun:test";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connectDatabase, type Database } from "../../src/db/mongo";
import { createLogger } from "../../src/log";
import { spawnManaged, startServerProcess, stopAllProcesses, type ManagedProcess } from "../helpers/processes";

/**
 * Chaos finding F6: busy driver clients while the engine is SIGKILLed and restarted on its port.
 * Under Bun a heartbeat written as the engine dies could hang for good, and its client then
 * failed every operation although the engine was back; the watchdog reconnects such a client.
 */
const CLIENTS = 5;
const ROUNDS = 3;
let dataDir = "";
let engine: ManagedProcess | null = null;
const databases: Database[] = [];

afterAll(async () => {
  await Promise.all(databases.map((d) => d.close().catch(() => undefined)));
  await stopAllProcesses();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

async function startEngine(port: number): Promise<number> {
  engine = spawnManaged("embedded-mongo", ["bun", "run", "scripts/embedded-mongo.ts", "--port", String(port), "--data-dir", dataDir]);
  const line = await engine.waitForLine((l) => typeof l.port === "number" && (l.port as number) > 0, 20_000);
  return line.port as number;
}

test("every client works again after each SIGKILL and restart of the engine (chaos F6)", async () => {
  dataDir = await mkdtemp(join(tmpdir(), "dispatch-f6-"));
  const port = await startEngine(0);
  const reconnects: string[] = [];
  const log = createLogger("warn", {}, (line) => {
    if (line.includes("reconnecting the driver")) reconnects.push(line);
  });
  const config = { MONGODB_URI: `mongodb://127.0.0.1:${port}/?directConnection=true`, MONGODB_DB: "f6", MONGODB_CONNECT_TIMEOUT_MS: 1_000, DATA_DIR: dataDir, OTEL_EXPORTER_OTLP_ENDPOINT: undefined };
  for (let i = 0; i < CLIENTS; i++) databases.push(await connectDatabase(config, log));
  const lastOk = databases.map(() => 0);
  let running = true;
  const workers = databases.flatMap((database, i) =>
    Array.from({ length: 4 }, async (_, w) => {
      const counters = database.db.collection<{ _id: number; n: number }>("counters");
      while (running) {
        try {
          await counters.findOneAndUpdate({ _id: i * 10 + w }, { $inc: { n: 1 } }, { upsert: true });
          lastOk[i] = performance.now();
        } catch {
          await Bun.sleep(20);
        }
      }
    }),
  );
  try {
    for (let round = 0; round < ROUNDS; round++) {
      await Bun.sleep(700);
      await engine!.stop("SIGKILL");
      await Bun.sleep(1_500);
      await startEngine(port);
      const upAt = performance.now();
      // A hung heartbeat is found after 2 × 1 s + 2 s; every client must work again well within that plus a reconnect.
      while (performance.now() - upAt < 12_000 && lastOk.some((t) => t < upAt)) await Bun.sleep(50);
      expect({ round, stuck: lastOk.flatMap((t, i) => (t < upAt ? [i] : [])) }).toEqual({ round, stuck: [] });
    }
  } finally {
    running = false;
    await Promise.all(workers);
  }
  // Not asserted: whether a heartbeat hung in this run (it is a race); printed for the record.
  if (reconnects.length > 0) process.stderr.write(`engine-restart: the watchdog reconnected ${reconnects.length} client(s)\n`);
}, 60_000);

test("while the engine is down the server answers 503 problem+json with Retry-After, then serves again once it is back", async () => {
  const port = (await engine!.stop("SIGKILL"), await startEngine(0));
  const server = await startServerProcess({ MONGODB_URI: `mongodb://127.0.0.1:${port}/?directConnection=true`, MONGODB_DB: "f6-http", MONGODB_CONNECT_TIMEOUT_MS: "1000" });
  const missing = `${server.url}/restaurants/0123456789abcdef01234567`;
  expect((await fetch(missing)).status).toBe(404);
  await engine!.stop("SIGKILL");
  const down = await fetch(missing);
  expect(down.status).toBe(503);
  expect(down.headers.get("content-type")).toContain("application/problem+json");
  expect(down.headers.get("retry-after")).toBe("1");
  expect(await down.json()).toMatchObject({ status: 503, title: "Service unavailable" });
  await startEngine(port);
  const deadline = performance.now() + 15_000;
  let status = 0;
  while (performance.now() < deadline && (status = (await fetch(missing)).status) !== 404) await Bun.sleep(100);
  expect(status).toBe(404);
}, 60_000);

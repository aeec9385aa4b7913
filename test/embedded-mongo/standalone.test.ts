// The standalone script (`bun run embedded-mongo -- --port 0`) as a child process.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Document, MongoClient } from "mongodb";
import { type ManagedProcess, spawnManaged, stopAllProcesses } from "../helpers/processes";
import { isLoopbackHost, startEmbeddedMongo, UnsafeBindError } from "../../src/embedded-mongo";

const dirs: string[] = [];
afterAll(async () => {
  await stopAllProcesses();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function startScript(args: string[]): Promise<{ proc: ManagedProcess; port: number }> {
  const proc = spawnManaged("embedded-mongo", ["bun", "run", "scripts/embedded-mongo.ts", "--port", "0", ...args]);
  const line = await proc.waitForLine((l) => l.msg === "embedded-mongo listening");
  return { proc, port: line.port as number };
}

async function withClient<T>(port: number, fn: (c: MongoClient) => Promise<T>): Promise<T> {
  const client = new MongoClient(`mongodb://127.0.0.1:${port}/`, { serverSelectionTimeoutMS: 5_000 });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}

describe("bind address: the engine has no authentication, so loopback only", () => {
  test("a non-loopback --host is refused at start (exit 1, a JSON error naming --allow-remote); nothing listens", async () => {
    for (const host of ["0.0.0.0", "::", "192.0.2.2"]) {
      const proc = spawnManaged("embedded-mongo", ["bun", "run", "scripts/embedded-mongo.ts", "--port", "0", "--host", host]);
      expect({ host, code: await proc.exited }).toEqual({ host, code: 1 });
      const error = JSON.parse(proc.stderr().trim().split("\n").pop()!) as { msg: string; error: string };
      expect(error.error).toBe("UnsafeBindError");
      expect(error.msg).toContain("no authentication");
      expect(error.msg).toContain("--allow-remote");
      expect(proc.lines.some((l) => l.msg === "embedded-mongo listening")).toBe(false);
    }
  }, 30_000);

  test("in process: a non-loopback host without allowRemote is refused; loopback names are accepted", async () => {
    await expect(startEmbeddedMongo({ host: "0.0.0.0" })).rejects.toBeInstanceOf(UnsafeBindError);
    for (const host of ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST"]) expect({ host, loopback: isLoopbackHost(host) }).toEqual({ host, loopback: true });
    for (const host of ["0.0.0.0", "::", "192.0.2.2", "10.0.0.1", "example.com", "128.0.0.1"]) expect({ host, loopback: isLoopbackHost(host) }).toEqual({ host, loopback: false });
    const engine = await startEmbeddedMongo({ host: "localhost" });
    await engine.close();
  });
});

describe("bun run embedded-mongo", () => {
  test("--port 0 logs the chosen port as one JSON line, serves the driver and exits cleanly on SIGTERM", async () => {
    const { proc, port } = await startScript([]);
    expect(port).toBeGreaterThan(0);
    const docs = await withClient(port, async (c) => {
      const coll = c.db("standalone").collection("c");
      await coll.insertOne({ hello: "world" });
      return coll.find<Document>({}, { projection: { _id: 0 } }).toArray();
    });
    expect(docs).toEqual([{ hello: "world" }]);
    expect(await proc.stop("SIGTERM")).toBe(0);
    expect(proc.lines.some((l) => l.msg === "embedded-mongo stopped")).toBe(true);
  });

  test("with --data-dir the data is there after a clean restart", async () => {
    const dir = mkdtempSync(join(tmpdir(), "standalone-"));
    dirs.push(dir);
    const first = await startScript(["--data-dir", dir]);
    await withClient(first.port, async (c) => {
      await c.db("standalone").collection("kept").createIndex({ k: 1 }, { unique: true });
      await c.db("standalone").collection("kept").insertMany([{ k: 1 }, { k: 2 }]);
    });
    expect(await first.proc.stop("SIGINT")).toBe(0);
    const second = await startScript(["--data-dir", dir]);
    const [count, indexes] = await withClient(second.port, async (c) => {
      const coll = c.db("standalone").collection("kept");
      return [await coll.countDocuments(), (await coll.listIndexes().toArray()).map((i) => i.name)];
    });
    expect(count).toBe(2);
    expect(indexes).toEqual(["_id_", "k_1"]);
    expect(await second.proc.stop("SIGTERM")).toBe(0);
  }, 30_000);

  test("bad arguments exit non-zero with a message", async () => {
    const proc = spawnManaged("embedded-mongo", ["bun", "run", "scripts/embedded-mongo.ts", "--fsync", "sometimes"]);
    expect(await proc.exited).not.toBe(0);
    // stderr is read asynchronously: give the reader a moment after the exit.
    for (let i = 0; i < 50 && !proc.stderr().includes("--fsync"); i++) await Bun.sleep(20);
    expect(proc.stderr()).toContain("--fsync must be always, batch or never");
  });
});

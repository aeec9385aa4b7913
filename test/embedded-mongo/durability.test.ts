// Durability of the standalone engine with a data dir, through the official driver:
// acknowledged writes survive SIGKILL, a second process cannot open the same dir, and data
// survives journal compaction.
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { type Document, MongoClient, MongoServerError } from "mongodb";
import { type EngineProcess, spawnManaged, startEngineProcess, stopAllProcesses } from "../helpers/processes";

/** The standalone engine with extra flags (startEngineProcess takes none). */
async function startEngineWith(dir: string, args: string[]): Promise<EngineProcess> {
  const managed = spawnManaged("embedded-mongo", ["bun", "run", "scripts/embedded-mongo.ts", "--port", "0", "--data-dir", dir, ...args]);
  const line = await managed.waitForLine((l) => typeof l.port === "number");
  const port = line.port as number;
  return Object.assign(managed, { port, dataDir: dir, uri: `mongodb://127.0.0.1:${port}/?directConnection=true` });
}

const dirs: string[] = [];
const clients: MongoClient[] = [];

function dataDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "durability-"));
  dirs.push(d);
  return d;
}

async function connect(engine: EngineProcess): Promise<MongoClient> {
  // No retries: a write in flight when the engine dies must fail, not be retried on the next engine.
  const client = new MongoClient(engine.uri, { retryWrites: false, retryReads: false, serverSelectionTimeoutMS: 3000, maxPoolSize: 16 });
  clients.push(client);
  await client.connect();
  return client;
}

// Under Bun, a driver request on a pooled connection whose engine was SIGKILLed can stay pending
// forever (seen with close()'s endSessions), so waits on a dead engine are bounded.
function bounded(p: Promise<unknown>, ms = 2000): Promise<unknown> {
  return Promise.race([p.catch(() => undefined), Bun.sleep(ms)]);
}

async function closeClients(): Promise<void> {
  await Promise.all(clients.splice(0).map((c) => bounded(c.close())));
}

const SLOW = 30_000; // per test: starts and kills engine processes

afterEach(async () => {
  await closeClients();
  await stopAllProcesses();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});
afterAll(stopAllProcesses);

type Order = { _id: string; email: string; version: number; status: string; total: number; loc?: Document };

describe("kill -9 after acknowledged writes", () => {
  test("every acknowledged write is there after a restart on the same data dir", async () => {
    const dir = dataDir();
    const engine = await startEngineProcess({ dataDir: dir });
    const client = await connect(engine);
    const orders = client.db("dispatch").collection<Order>("orders");
    await orders.createIndex({ email: 1 }, { unique: true });
    await orders.createIndex({ loc: "2dsphere" });

    // What the engine has acknowledged, as the test expects to find it.
    const expected = new Map<string, Order>();
    const deleted = new Set<string>();

    for (let i = 0; i < 100; i++) {
      const doc: Order = { _id: `o${i}`, email: `u${i}@x.test`, version: 0, status: "placed", total: i, loc: { type: "Point", coordinates: [13.4 + i / 1000, 52.5] } };
      await orders.insertOne(doc);
      expected.set(doc._id, doc);
    }
    const batch: Order[] = Array.from({ length: 300 }, (_, i) => ({ _id: `b${i}`, email: `b${i}@x.test`, version: 0, status: "placed", total: 1000 + i }));
    await orders.insertMany(batch);
    for (const d of batch) expected.set(d._id, d);

    for (let i = 0; i < 100; i += 2) {
      const res = await orders.findOneAndUpdate({ _id: `o${i}`, version: 0 }, { $set: { status: "accepted" }, $inc: { version: 1 } }, { returnDocument: "after" });
      expect(res?.version).toBe(1);
      const e = expected.get(`o${i}`) as Order;
      expected.set(e._id, { ...e, status: "accepted", version: 1 });
    }
    const upd = await orders.updateMany({ total: { $gte: 1000, $lt: 1100 } }, { $set: { status: "cancelled" } });
    expect(upd.modifiedCount).toBe(100);
    for (let i = 0; i < 100; i++) {
      const e = expected.get(`b${i}`) as Order;
      expected.set(e._id, { ...e, status: "cancelled" });
    }
    const del = await orders.deleteMany({ total: { $gte: 1200 } });
    expect(del.deletedCount).toBe(100);
    for (let i = 200; i < 300; i++) {
      expected.delete(`b${i}`);
      deleted.add(`b${i}`);
    }
    await orders.replaceOne({ _id: "o1" }, { email: "u1@x.test", version: 7, status: "replaced", total: -1 });
    expected.set("o1", { _id: "o1", email: "u1@x.test", version: 7, status: "replaced", total: -1 });

    // A committed transaction is durable as a whole.
    const session = client.startSession();
    try {
      await session.withTransaction(async () => {
        await orders.insertOne({ _id: "t1", email: "t1@x.test", version: 0, status: "placed", total: 5 }, { session });
        await orders.updateOne({ _id: "o3" }, { $set: { status: "in-tx" } }, { session });
      });
    } finally {
      await session.endSession();
    }
    expected.set("t1", { _id: "t1", email: "t1@x.test", version: 0, status: "placed", total: 5 });
    expected.set("o3", { ...(expected.get("o3") as Order), status: "in-tx" });

    // Writers race the kill: whatever was acknowledged before SIGKILL must survive.
    let stop = false;
    const writers = Array.from({ length: 8 }, async (_, w) => {
      for (let i = 0; !stop; i++) {
        const doc: Order = { _id: `w${w}-${i}`, email: `w${w}-${i}@x.test`, version: 0, status: "placed", total: i };
        try {
          await orders.insertOne(doc);
        } catch {
          return; // the engine died mid-request: not acknowledged
        }
        expected.set(doc._id, doc);
      }
    });
    // Kill once many writes are acknowledged and more are in flight (waiting on a count, not a clock, so load cannot starve it).
    const deadline = performance.now() + 20_000;
    while (expected.size <= 400 && performance.now() < deadline) await Bun.sleep(5);
    const ackedBeforeKill = expected.size;
    await engine.stop("SIGKILL");
    stop = true;
    await bounded(Promise.all(writers)); // a write pending at the kill is not acknowledged either way
    expect(ackedBeforeKill).toBeGreaterThan(400);
    await closeClients();

    const restarted = await startEngineProcess({ dataDir: dir });
    const client2 = await connect(restarted);
    const orders2 = client2.db("dispatch").collection<Order>("orders");
    const all = new Map((await orders2.find({}).toArray()).map((d) => [d._id, d]));
    for (const [id, doc] of expected) expect(all.get(id)).toEqual(doc);
    for (const id of deleted) expect(all.has(id)).toBe(false);
    // At most the writes in flight at the kill (one per writer) may have landed unacknowledged.
    expect(all.size - expected.size).toBeGreaterThanOrEqual(0);
    expect(all.size - expected.size).toBeLessThanOrEqual(8);

    // Indexes came back too: unique is enforced and $geoNear finds the 2dsphere index.
    const err = await orders2.insertOne({ _id: "dup", email: "u5@x.test", version: 0, status: "x", total: 0 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MongoServerError);
    expect((err as MongoServerError).code).toBe(11000);
    const near = await orders2.aggregate([{ $geoNear: { near: { type: "Point", coordinates: [13.4, 52.5] }, distanceField: "d", maxDistance: 2000 } }, { $limit: 3 }]).toArray();
    expect(near.map((d) => d._id)).toEqual(["o0", "o2", "o3"]); // o1 was replaced without a location
  }, SLOW);
});

describe("one process per data dir", () => {
  test("a second engine on a dir in use fails with a clear error and the first keeps serving", async () => {
    const dir = dataDir();
    const engine = await startEngineProcess({ dataDir: dir });
    const client = await connect(engine);
    const coll = client.db("dispatch").collection<{ _id: number; v: string }>("c");
    // (find().toArray() rather than countDocuments: keep this test about the lock)
    await coll.insertOne({ _id: 1, v: "kept" });

    const second = spawnManaged("second engine", ["bun", "run", "scripts/embedded-mongo.ts", "--port", "0", "--data-dir", dir]);
    const code = await Promise.race([second.exited, Bun.sleep(15_000).then(() => "timeout" as const)]);
    expect(code).not.toBe("timeout");
    expect(code).not.toBe(0);
    const output = `${second.stderr()}\n${JSON.stringify(second.lines)}`;
    expect(output).toContain("locked");
    expect(output).toContain(dir);
    expect(output).toContain(`pid ${engine.proc.pid}`);

    expect(await coll.findOne({})).toEqual({ _id: 1, v: "kept" });
    await coll.insertOne({ _id: 2, v: "still writable" });
    expect((await coll.find({}).toArray()).length).toBe(2);
  }, SLOW);
});

describe("compaction", () => {
  test("the journal is compacted in the background and data survives it and a SIGKILL after it", async () => {
    const dir = dataDir();
    const engine = await startEngineWith(dir, ["--compact-after-bytes", "65536"]);
    const client = await connect(engine);
    const coll = client.db("dispatch").collection<{ _id: number; v: number; pad: string }>("counters");
    const expected = new Map<number, number>();
    const snapshots = () => fs.readdirSync(dir).filter((f) => f.endsWith(".snap"));

    // Rewrite the same 200 documents until several snapshots have replaced the history.
    let round = 0;
    let seen = new Set<string>();
    while (seen.size < 3 && round < 200) {
      round++;
      await coll.bulkWrite(
        Array.from({ length: 200 }, (_, i) => ({ replaceOne: { filter: { _id: i }, replacement: { v: round, pad: "p".repeat(100) }, upsert: true } })),
      );
      for (let i = 0; i < 200; i++) expected.set(i, round);
      for (const s of snapshots()) seen = new Set([...seen, s]);
    }
    expect(seen.size).toBeGreaterThanOrEqual(3);
    // Superseded snapshots and segments are deleted once the newest snapshot is in place.
    const deadline = Date.now() + 5000;
    while (snapshots().length > 1 && Date.now() < deadline) await Bun.sleep(10);
    const [snap] = snapshots();
    expect(snap).toBeDefined();
    const snapSeq = Number(snap.slice("snapshot-".length, -".snap".length));
    const segs = fs.readdirSync(dir).filter((f) => f.endsWith(".log"));
    expect(segs.length).toBeGreaterThan(0);
    for (const f of segs) expect(Number(f.slice("journal-".length, -".log".length))).toBeGreaterThanOrEqual(snapSeq);

    await coll.deleteOne({ _id: 0 });
    expected.delete(0);
    await engine.stop("SIGKILL");
    await closeClients();

    const restarted = await startEngineProcess({ dataDir: dir });
    const coll2 = (await connect(restarted)).db("dispatch").collection<{ _id: number; v: number; pad: string }>("counters");
    const docs = await coll2.find({}).sort({ _id: 1 }).toArray();
    expect(docs.length).toBe(expected.size);
    for (const d of docs) expect(d.v).toBe(expected.get(d._id) as number);
  }, SLOW);
});

// Snapshot isolation: a transaction reads the data as of its start plus its own writes, and a
// snapshot read at atClusterTime reads the data as of that cluster time (history.ts).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type Document, MongoServerError, type Timestamp, UUID } from "mongodb";
import { ChangeClock, Collection } from "../../src/embedded-mongo/collection";
import { CommandDispatcher } from "../../src/embedded-mongo/commands";
import { Engine } from "../../src/embedded-mongo/engine";
import { CommandError } from "../../src/embedded-mongo/errors";
import { FailPoints } from "../../src/embedded-mongo/failpoints";
import { History, INCREMENT_BITS } from "../../src/embedded-mongo/history";
import { createLogger } from "../../src/embedded-mongo/log";
import { type TestMongo, startTestMongo } from "../helpers/embedded-mongo";

let mongo: TestMongo;
beforeAll(async () => {
  mongo = await startTestMongo();
});
afterAll(() => mongo.close());

let n = 0;
type Doc = { _id: number; zone?: string; x?: number; v?: number };
function fresh() {
  return mongo.client.db("snap").collection<Doc>(`c${++n}`);
}

const ids = (docs: Document[]) => docs.map((d) => d._id).sort();

describe("transactions read a snapshot", () => {
  test("writes committed after a transaction started are invisible to it; its own writes are visible", async () => {
    const c = fresh();
    await c.createIndex({ zone: 1 });
    await c.insertMany([
      { _id: 1, zone: "a", x: 1 },
      { _id: 2, zone: "a", x: 1 },
      { _id: 3, zone: "b", x: 1 },
    ]);
    const session = mongo.client.startSession();
    try {
      session.startTransaction();
      expect(await c.countDocuments({}, { session })).toBe(3); // the snapshot starts here
      // Outside the transaction: an update moving a document between zones, a delete, an insert.
      await c.updateOne({ _id: 1 }, { $set: { zone: "b", x: 2 } });
      await c.deleteOne({ _id: 2 });
      await c.insertOne({ _id: 4, zone: "a", x: 1 });
      // Inside: by _id, by the index (whose entries are the current ones), a full scan, a count.
      expect(await c.findOne({ _id: 1 }, { session })).toEqual({ _id: 1, zone: "a", x: 1 });
      expect(ids(await c.find({ zone: "a" }, { session }).toArray())).toEqual([1, 2]);
      expect(ids(await c.find({ zone: "b" }, { session }).toArray())).toEqual([3]);
      expect(ids(await c.find({ x: 1 }, { session }).toArray())).toEqual([1, 2, 3]);
      expect(await c.countDocuments({}, { session })).toBe(3);
      expect(await c.distinct("zone", {}, { session })).toEqual(["a", "b"]);
      // Its own write shows over the snapshot.
      await c.updateOne({ _id: 3 }, { $set: { zone: "a" } }, { session });
      expect(ids(await c.find({ zone: "a" }, { session }).toArray())).toEqual([1, 2, 3]);
      // Writing a document changed since the snapshot is a write conflict, as on MongoDB.
      const err = await c.updateOne({ _id: 1 }, { $set: { x: 3 } }, { session }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MongoServerError);
      expect((err as MongoServerError).code).toBe(112);
      expect((err as MongoServerError).hasErrorLabel("TransientTransactionError")).toBe(true);
    } finally {
      await session.abortTransaction().catch(() => undefined);
      await session.endSession();
    }
    // Outside, the latest data.
    expect(ids(await c.find({ zone: "a" }).toArray())).toEqual([4]);
  });

  test("two transactions started at different times each keep their own snapshot", async () => {
    const c = fresh();
    await c.insertOne({ _id: 1, v: 1 });
    const s1 = mongo.client.startSession();
    const s2 = mongo.client.startSession();
    try {
      s1.startTransaction();
      expect((await c.findOne({ _id: 1 }, { session: s1 }))?.v).toBe(1);
      await c.updateOne({ _id: 1 }, { $set: { v: 2 } });
      s2.startTransaction();
      expect((await c.findOne({ _id: 1 }, { session: s2 }))?.v).toBe(2);
      await c.updateOne({ _id: 1 }, { $set: { v: 3 } });
      expect((await c.findOne({ _id: 1 }, { session: s1 }))?.v).toBe(1);
      expect((await c.findOne({ _id: 1 }, { session: s2 }))?.v).toBe(2);
      await s1.commitTransaction();
      await s2.commitTransaction();
    } finally {
      await s1.endSession();
      await s2.endSession();
    }
    expect((await c.findOne({ _id: 1 }))?.v).toBe(3);
  });
});

describe("snapshot reads at a cluster time", () => {
  test("atClusterTime reads the data as of that time; the reply names that time", async () => {
    const c = fresh();
    const db = mongo.client.db("snap");
    await c.insertMany([
      { _id: 1, x: 11 },
      { _id: 2, x: 11 },
    ]);
    const first = await db.command({ find: c.collectionName, filter: {}, readConcern: { level: "snapshot" } });
    const t0 = first.cursor.atClusterTime as Timestamp;
    await c.updateOne({ _id: 1 }, { $inc: { x: 1 } });
    await c.deleteOne({ _id: 2 });
    await c.insertOne({ _id: 3, x: 33 });
    const at = { level: "snapshot", atClusterTime: t0 };
    const found = await db.command({ find: c.collectionName, filter: {}, sort: { _id: 1 }, readConcern: at });
    expect(found.cursor.firstBatch).toEqual([
      { _id: 1, x: 11 },
      { _id: 2, x: 11 },
    ]);
    expect(found.cursor.atClusterTime.equals(t0)).toBe(true);
    expect((await db.command({ distinct: c.collectionName, key: "x", readConcern: at })).values).toEqual([11]);
    const counted = await db.command({ aggregate: c.collectionName, pipeline: [{ $count: "n" }], cursor: {}, readConcern: at });
    expect(counted.cursor.firstBatch).toEqual([{ n: 2 }]);
    // The current data, as ever.
    expect(ids(await c.find().toArray())).toEqual([1, 3]);
  });

  test("a time older than the kept history is refused with SnapshotTooOld, never answered with newer data", async () => {
    // A fresh engine: no transaction and no snapshot read has asked it to keep history.
    const other = await startTestMongo();
    try {
      const db = other.client.db("snap");
      const before = (await db.command({ ping: 1 })).operationTime as Timestamp;
      await db.collection<Doc>("c").insertOne({ _id: 1 });
      const err = await db.command({ find: "c", filter: {}, readConcern: { level: "snapshot", atClusterTime: before } }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MongoServerError);
      expect((err as MongoServerError).code).toBe(239);
      expect((err as MongoServerError).codeName).toBe("SnapshotTooOld");
    } finally {
      await other.close();
    }
  });
});

describe("a transaction's readConcern (the driver cannot send atClusterTime in one: commands go to the dispatcher)", () => {
  const start = () => {
    const engine = new Engine({ log: createLogger("silent") });
    const dispatcher = new CommandDispatcher(engine, { address: "", failPoints: new FailPoints() });
    const run = async (cmd: Document): Promise<Document> => {
      const r = await dispatcher.dispatch(cmd, "db", { id: 1, compressors: [], appName: null });
      if (!("reply" in r)) throw new Error("connection dropped");
      return r.reply;
    };
    return { engine, run };
  };
  const lsid = () => ({ id: new UUID().toBinary() });

  test("startTransaction with atClusterTime reads as of that time; writing what changed since is a conflict; only the first statement takes a readConcern", async () => {
    const { engine, run } = start();
    try {
      await run({ insert: "c", documents: [{ _id: 1, v: 1 }, { _id: 2, v: 1 }] });
      const t0 = (await run({ find: "c", filter: {}, readConcern: { level: "snapshot" } })).cursor.atClusterTime as Timestamp;
      await run({ update: "c", updates: [{ q: { _id: 1 }, u: { $set: { v: 2 } } }] });
      const session = lsid();
      const txn = { lsid: session, txnNumber: 1, autocommit: false };
      const first = await run({ find: "c", filter: { _id: 1 }, ...txn, startTransaction: true, readConcern: { level: "snapshot", atClusterTime: t0 } });
      expect(first.cursor.firstBatch).toEqual([{ _id: 1, v: 1 }]);
      const later = await run({ find: "c", filter: {}, ...txn, readConcern: { level: "snapshot" } });
      expect([later.ok, later.code]).toEqual([0, 72]);
      expect((await run({ update: "c", updates: [{ q: { _id: 2 }, u: { $set: { v: 3 } } }], ...txn })).nModified).toBe(1);
      const conflict = await run({ update: "c", updates: [{ q: { _id: 1 }, u: { $set: { v: 3 } } }], ...txn });
      expect(conflict.code ?? conflict.writeErrors?.[0]?.code).toBe(112);
    } finally {
      await engine.close();
    }
  });

  test("startTransaction at a time older than the kept history: SnapshotTooOld, labelled TransientTransactionError", async () => {
    const { engine, run } = start();
    try {
      const before = (await run({ ping: 1 })).operationTime as Timestamp;
      await run({ insert: "c", documents: [{ _id: 1 }] });
      const r = await run({ find: "c", filter: {}, lsid: lsid(), txnNumber: 1, autocommit: false, startTransaction: true, readConcern: { level: "snapshot", atClusterTime: before } });
      expect([r.ok, r.code, r.codeName]).toEqual([0, 239, "SnapshotTooOld"]);
      expect(r.errorLabels).toEqual(["TransientTransactionError"]);
    } finally {
      await engine.close();
    }
  });
});

describe("the history itself", () => {
  const make = (history: History | null) => {
    const clock = new ChangeClock();
    clock.history = history;
    return new Collection("db", "c", {}, clock);
  };

  test("with no transaction or snapshot read open nothing is kept", () => {
    const c = make(null);
    c.insert({ _id: 1, v: 1 });
    c.replace(c.docs.keys().next().value as string, { _id: 1, v: 2 });
    c.remove(c.docs.keys().next().value as string);
    expect(c.versions).toBeNull();
  });

  test("versions are bounded: beyond the bound the oldest go and older reads are refused", () => {
    let now = 10 * INCREMENT_BITS;
    const history = new History(now, () => now, 3);
    const c = make(history);
    const key = c.insert({ _id: 1, v: 0 });
    const times = [now];
    for (let v = 1; v <= 4; v++) {
      now++;
      times.push(now);
      c.replace(key, { _id: 1, v });
    }
    expect(history.size).toBe(3);
    // As of each kept time, the value then; the oldest time is no longer answerable.
    expect(c.getAt(key, times[4])?.v).toBe(4);
    expect(c.getAt(key, times[2])?.v).toBe(2);
    expect(c.getAt(key, times[1])?.v).toBe(1);
    expect(() => history.check(times[0], { high: 10, low: 0 } as Timestamp)).toThrow(CommandError);
    history.check(times[1], { high: 10, low: 1 } as Timestamp);
    // Trimming to a horizon drops what no read at or after it needs.
    history.trim(times[3]);
    expect(history.size).toBe(1);
    expect(history.from).toBe(times[3]);
    expect(c.getAt(key, times[3])?.v).toBe(3);
    history.clear();
    expect(c.versions).toBeNull();
  });
});

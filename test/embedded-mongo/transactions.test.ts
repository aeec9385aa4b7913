// Transactions and retryable writes through the official driver.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { type ClientSession, type Document, MongoClient, MongoServerError } from "mongodb";
import { type TestMongo, startTestMongo } from "../helpers/embedded-mongo";

let mongo: TestMongo;
beforeAll(async () => {
  mongo = await startTestMongo();
});
afterAll(() => mongo.close());

let n = 0;
function freshCollection<T extends Document = Document>() {
  return mongo.client.db("txn").collection<T>(`c${++n}`);
}

async function inSession<T>(fn: (s: ClientSession) => Promise<T>): Promise<T> {
  const session = mongo.client.startSession();
  try {
    return await fn(session);
  } finally {
    await session.endSession();
  }
}

describe("commit", () => {
  test("a transaction's writes are invisible outside it until commit, then all visible at once", async () => {
    const coll = freshCollection<{ _id: number; balance: number }>();
    await coll.insertMany([
      { _id: 1, balance: 100 },
      { _id: 2, balance: 0 },
    ]);
    await inSession(async (session) => {
      session.startTransaction();
      await coll.updateOne({ _id: 1 }, { $inc: { balance: -30 } }, { session });
      await coll.updateOne({ _id: 2 }, { $inc: { balance: 30 } }, { session });
      await coll.insertOne({ _id: 3, balance: 1 }, { session });
      // Inside: its own writes.
      expect(await coll.find({}, { session }).sort({ _id: 1 }).toArray()).toEqual([
        { _id: 1, balance: 70 },
        { _id: 2, balance: 30 },
        { _id: 3, balance: 1 },
      ]);
      expect(await coll.countDocuments({ balance: { $gt: 0 } }, { session })).toBe(3);
      // Outside: nothing yet.
      expect(await coll.find({}).sort({ _id: 1 }).toArray()).toEqual([
        { _id: 1, balance: 100 },
        { _id: 2, balance: 0 },
      ]);
      await session.commitTransaction();
    });
    expect(await coll.find({}).sort({ _id: 1 }).toArray()).toEqual([
      { _id: 1, balance: 70 },
      { _id: 2, balance: 30 },
      { _id: 3, balance: 1 },
    ]);
  });

  test("withTransaction commits the callback's writes", async () => {
    const coll = freshCollection<{ _id: string; n: number }>();
    await inSession((session) =>
      session.withTransaction(async () => {
        await coll.insertOne({ _id: "a", n: 1 }, { session });
        await coll.findOneAndUpdate({ _id: "a" }, { $inc: { n: 1 } }, { session });
        await coll.deleteOne({ _id: "missing" }, { session });
      }),
    );
    expect(await coll.findOne({ _id: "a" })).toEqual({ _id: "a", n: 2 });
  });
});

describe("abort", () => {
  test("abortTransaction discards every write", async () => {
    const coll = freshCollection<{ _id: number; v: string }>();
    await coll.insertOne({ _id: 1, v: "before" });
    await inSession(async (session) => {
      session.startTransaction();
      await coll.updateOne({ _id: 1 }, { $set: { v: "during" } }, { session });
      await coll.insertOne({ _id: 2, v: "new" }, { session });
      await coll.deleteOne({ _id: 1 }, { session });
      await session.abortTransaction();
    });
    expect(await coll.find({}).toArray()).toEqual([{ _id: 1, v: "before" }]);
  });

  test("ending the session without committing discards the transaction", async () => {
    const coll = freshCollection<{ _id: number }>();
    const session = mongo.client.startSession();
    session.startTransaction();
    await coll.insertOne({ _id: 1 }, { session });
    await session.endSession();
    expect(await coll.countDocuments()).toBe(0);
  });

  test("a failed statement aborts the transaction; commit then fails", async () => {
    const coll = freshCollection<{ _id: number }>();
    await coll.insertOne({ _id: 1 });
    await inSession(async (session) => {
      session.startTransaction();
      await coll.insertOne({ _id: 2 }, { session });
      const dup = await coll.insertOne({ _id: 1 }, { session }).catch((e: unknown) => e as MongoServerError);
      expect((dup as MongoServerError).code).toBe(11000);
      const commit = await session.commitTransaction().catch((e: unknown) => e as MongoServerError);
      expect((commit as MongoServerError).code).toBe(251);
    });
    expect(await coll.distinct("_id")).toEqual([1]);
  });
});

describe("conflicts", () => {
  test("a second transaction writing the same document gets WriteConflict (112, TransientTransactionError)", async () => {
    const coll = freshCollection<{ _id: number; v: number }>();
    await coll.insertOne({ _id: 1, v: 0 });
    const a = mongo.client.startSession();
    const b = mongo.client.startSession();
    try {
      a.startTransaction();
      b.startTransaction();
      await coll.updateOne({ _id: 1 }, { $inc: { v: 1 } }, { session: a });
      const err = (await coll.updateOne({ _id: 1 }, { $inc: { v: 10 } }, { session: b }).catch((e: unknown) => e)) as MongoServerError;
      expect(err).toBeInstanceOf(MongoServerError);
      expect(err.code).toBe(112);
      expect(err.hasErrorLabel("TransientTransactionError")).toBe(true);
      await a.commitTransaction();
      await b.abortTransaction();
    } finally {
      await a.endSession();
      await b.endSession();
    }
    expect(await coll.findOne({ _id: 1 })).toEqual({ _id: 1, v: 1 });
  });

  test("a write committed after the transaction began conflicts with the transaction's write to it", async () => {
    const coll = freshCollection<{ _id: number; v: number }>();
    await coll.insertOne({ _id: 1, v: 0 });
    await inSession(async (session) => {
      session.startTransaction();
      await coll.findOne({ _id: 1 }, { session });
      await coll.updateOne({ _id: 1 }, { $set: { v: 5 } }); // outside the transaction
      const err = (await coll.updateOne({ _id: 1 }, { $inc: { v: 1 } }, { session }).catch((e: unknown) => e)) as MongoServerError;
      expect(err.code).toBe(112);
      await session.abortTransaction().catch(() => undefined);
    });
    expect(await coll.findOne({ _id: 1 })).toEqual({ _id: 1, v: 5 });
  });

  test("withTransaction retries a conflicting transaction until it can commit", async () => {
    const coll = freshCollection<{ _id: number; v: number }>();
    await coll.insertOne({ _id: 1, v: 0 });
    const holder = mongo.client.startSession();
    holder.startTransaction();
    await coll.updateOne({ _id: 1 }, { $inc: { v: 1 } }, { session: holder });
    let attempts = 0;
    const retried = inSession((session) =>
      session.withTransaction(async () => {
        attempts++;
        await coll.updateOne({ _id: 1 }, { $inc: { v: 10 } }, { session });
      }),
    );
    await Bun.sleep(30);
    await holder.commitTransaction();
    await holder.endSession();
    await retried;
    expect(attempts).toBeGreaterThan(1);
    expect(await coll.findOne({ _id: 1 })).toEqual({ _id: 1, v: 11 });
  });

  test("unique indexes see the transaction's own pending writes", async () => {
    const coll = freshCollection<{ email: string }>();
    await coll.createIndex({ email: 1 }, { unique: true });
    await coll.insertOne({ email: "taken@x" });
    await inSession(async (session) => {
      session.startTransaction();
      await coll.insertOne({ email: "new@x" }, { session });
      const own = (await coll.insertOne({ email: "new@x" }, { session }).catch((e: unknown) => e)) as MongoServerError;
      expect(own.code).toBe(11000);
      await session.abortTransaction().catch(() => undefined);
      session.startTransaction();
      // Freeing a value and taking it again inside one transaction is fine.
      await coll.updateOne({ email: "taken@x" }, { $set: { email: "moved@x" } }, { session });
      await coll.insertOne({ email: "taken@x" }, { session });
      await session.commitTransaction();
    });
    expect((await coll.distinct("email")).sort()).toEqual(["moved@x", "taken@x"]);
  });
});

describe("retryable writes", () => {
  test("a write the driver retries after a lost acknowledgement is applied once", async () => {
    const coll = freshCollection<{ _id: number; n: number }>();
    await coll.insertOne({ _id: 1, n: 0 });
    await mongo.client.db("admin").command({
      configureFailPoint: "failCommand",
      mode: { times: 1 },
      data: { failCommands: ["update"], writeConcernError: { code: 64, errmsg: "waiting for replication timed out" }, errorLabels: ["RetryableWriteError"] },
    });
    const client = new MongoClient(mongo.uri, { monitorCommands: true });
    const sent: Document[] = [];
    client.on("commandStarted", (e) => {
      if (e.commandName === "update") sent.push(e.command);
    });
    try {
      const res = await client.db("txn").collection<{ _id: number; n: number }>(coll.collectionName).updateOne({ _id: 1 }, { $inc: { n: 1 } });
      expect(res.modifiedCount).toBe(1);
    } finally {
      await client.close();
    }
    // The same txnNumber was sent twice; the second answer came from the session's record.
    expect(sent).toHaveLength(2);
    expect(sent[1].txnNumber).toEqual(sent[0].txnNumber);
    expect(await coll.findOne({ _id: 1 })).toEqual({ _id: 1, n: 1 });
  });
});

describe("DDL inside a transaction is visible only at commit", () => {
  const names = async (dbName: string) => (await mongo.client.db(dbName).listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name);

  test("create and an implicit create by insert: the transaction sees them, nobody else until commit; abort leaves nothing", async () => {
    const db = mongo.client.db("txnddl");
    await inSession(async (session) => {
      session.startTransaction();
      await db.createCollection("explicit", { session });
      await db.collection("implicit").insertOne({ _id: 1 } as Document, { session });
      await db.collection("implicit").insertOne({ _id: 2 } as Document, { session });
      await db.collection("explicit").createIndex({ zone: 1 }, { session });
      expect(await db.collection("implicit").countDocuments({}, { session })).toBe(2);
      expect(await names("txnddl")).toEqual([]);
      expect(await db.collection("implicit").countDocuments()).toBe(0);
      await session.commitTransaction();
    });
    expect((await names("txnddl")).sort()).toEqual(["explicit", "implicit"]);
    expect(await db.collection("implicit").countDocuments()).toBe(2);
    expect((await db.collection("explicit").indexes()).map((i) => i.name)).toEqual(["_id_", "zone_1"]);

    await inSession(async (session) => {
      session.startTransaction();
      await db.collection("aborted").insertOne({ _id: 1 } as Document, { session });
      await session.abortTransaction();
    });
    expect(await names("txnddl")).not.toContain("aborted");
  });

  test("a name created by someone else before commit is a write conflict and nothing is applied", async () => {
    const db = mongo.client.db("txnddl2");
    await inSession(async (session) => {
      session.startTransaction();
      await db.collection("c").insertOne({ _id: 1, from: "txn" } as Document, { session });
      await db.collection("c").insertOne({ _id: 2, from: "outside" } as Document);
      const err = await session.commitTransaction().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MongoServerError);
      expect((err as MongoServerError).code).toBe(112);
      expect((err as MongoServerError).hasErrorLabel("TransientTransactionError")).toBe(true);
    });
    expect(await db.collection<{ _id: number; from: string }>("c").find().toArray()).toEqual([{ _id: 2, from: "outside" }]);
  });

  test("a committed transaction's new collection, index and documents survive a restart (journaled in order)", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "txn-ddl-"));
    try {
      const first = await startTestMongo({ engine: { dataDir: dir } });
      try {
        const db = first.client.db("durable");
        const session = first.client.startSession();
        session.startTransaction();
        await db.createCollection("c", { session });
        await db.collection("c").createIndex({ zone: 1 }, { unique: true, session });
        await db.collection("c").insertOne({ _id: 1, zone: "a" } as Document, { session });
        await session.commitTransaction();
        await session.endSession();
      } finally {
        await first.close();
      }
      const second = await startTestMongo({ engine: { dataDir: dir } });
      try {
        const c = second.client.db("durable").collection("c");
        expect(await c.countDocuments()).toBe(1);
        expect((await c.indexes()).map((i) => [i.name, i.unique ?? false])).toEqual([
          ["_id_", false],
          ["zone_1", true],
        ]);
      } finally {
        await second.close();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test("an index on a collection that existed before the transaction is refused, as on MongoDB", async () => {
    const coll = freshCollection();
    await coll.insertOne({ _id: 1 } as Document);
    await inSession(async (session) => {
      session.startTransaction();
      const err = await coll.createIndex({ a: 1 }, { session }).catch((e: unknown) => e);
      expect((err as MongoServerError).code).toBe(263);
      await session.abortTransaction().catch(() => undefined);
    });
    expect((await coll.indexes()).map((i) => i.name)).toEqual(["_id_"]);
  });
});

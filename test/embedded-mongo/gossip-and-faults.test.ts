// What a replica-set primary tells the driver and the faults test suites inject: operationTime and
// $clusterTime on every reply (advanced by writes), afterClusterTime from causal sessions,
// onPrimaryTransactionalWrite (a retried write runs once), and mongod's error labels on
// failCommand errors.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type CommandStartedEvent, type Document, MongoClient, MongoServerError, type Timestamp } from "mongodb";
import { type TestMongo, startTestMongo } from "../helpers/embedded-mongo";

let mongo: TestMongo;

beforeAll(async () => {
  mongo = await startTestMongo();
});
afterAll(() => mongo.close());

const admin = () => mongo.client.db("admin");
const time = (r: Document) => r.operationTime as Timestamp;

describe("cluster time", () => {
  test("every reply carries operationTime and $clusterTime; a write advances them, a read does not", async () => {
    const db = mongo.client.db("gossip");
    const before = await db.command({ ping: 1 });
    expect(before.$clusterTime.clusterTime.equals(time(before))).toBe(true);
    const write = await db.command({ insert: "c", documents: [{ _id: 1 }] });
    expect(time(write).greaterThan(time(before))).toBe(true);
    const read = await db.command({ find: "c", filter: {} });
    expect(time(read).equals(time(write))).toBe(true);
  });

  test("a causally consistent session reads after its own write with afterClusterTime", async () => {
    const started: CommandStartedEvent[] = [];
    const client = new MongoClient(mongo.engine.uri, { monitorCommands: true });
    client.on("commandStarted", (e) => started.push(e));
    try {
      const coll = client.db("gossip").collection("causal");
      await client.withSession({ causalConsistency: true }, async (session) => {
        await coll.insertOne({ _id: 7 } as never, { session });
        expect(await coll.findOne({ _id: 7 } as never, { session })).toEqual({ _id: 7 } as never);
      });
      const find = started.find((e) => e.commandName === "find");
      const insert = started.find((e) => e.commandName === "insert");
      expect(find?.command.readConcern?.afterClusterTime).toBeDefined();
      expect(insert?.command.$clusterTime).toBeDefined();
    } finally {
      await client.close();
    }
  });
});

describe("fault injection", () => {
  test("onPrimaryTransactionalWrite: the write is applied, the reply lost, and the driver's retry gets the first result", async () => {
    const coll = mongo.client.db("faults").collection("retry");
    await coll.insertOne({ _id: 1, n: 0 } as never);
    await admin().command({ configureFailPoint: "onPrimaryTransactionalWrite", mode: { times: 1 } });
    const res = await coll.updateOne({ _id: 1 } as never, { $inc: { n: 1 } });
    expect(res.modifiedCount).toBe(1);
    expect((await coll.findOne({ _id: 1 } as never))?.n).toBe(1); // once, not twice
  });

  test("onPrimaryTransactionalWrite with failBeforeCommitExceptionCode: nothing is applied, the retry applies it", async () => {
    const coll = mongo.client.db("faults").collection("retry2");
    await admin().command({ configureFailPoint: "onPrimaryTransactionalWrite", mode: { times: 1 }, data: { failBeforeCommitExceptionCode: 1 } });
    await coll.insertOne({ _id: 1 } as never);
    expect(await coll.countDocuments()).toBe(1);
    await admin().command({ configureFailPoint: "onPrimaryTransactionalWrite", mode: { times: 2 }, data: { failBeforeCommitExceptionCode: 1 } });
    // Both attempts fail before committing (and drop the connection): the driver reports the error.
    const err = await coll.insertOne({ _id: 2 } as never).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(await coll.countDocuments()).toBe(1);
  });

  test("failCommand errors inside a transaction get TransientTransactionError, as mongod labels them", async () => {
    const coll = mongo.client.db("faults").collection("labels");
    await coll.insertOne({ _id: 0 } as never);
    await admin().command({ configureFailPoint: "failCommand", mode: { times: 1 }, data: { failCommands: ["insert"], errorCode: 112 } });
    const session = mongo.client.startSession();
    try {
      session.startTransaction();
      const err = (await coll.insertOne({ _id: 1 } as never, { session }).catch((e: unknown) => e)) as MongoServerError;
      expect(err.code).toBe(112);
      expect(err.hasErrorLabel("TransientTransactionError")).toBe(true);
      await session.abortTransaction();
    } finally {
      await session.endSession();
    }
  });
});

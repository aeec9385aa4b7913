// Indexes through the official driver: unique and compound constraints, the duplicate-key
// error shape, index management, and index use as explain reports it.
import { describe, expect, test } from "bun:test";
import { MongoBulkWriteError } from "mongodb";
import { engineForFile, rejectionOf, startTestMongo } from "../helpers/embedded-mongo";

const engine = engineForFile("idx");
const { freshCollection } = engine;

describe("unique indexes", () => {
  test("_id is always unique, with MongoDB's duplicate key error", async () => {
    const coll = freshCollection<{ _id: number }>();
    await coll.insertOne({ _id: 1 });
    const err = await rejectionOf(coll.insertOne({ _id: 1 }));
    expect(err.code).toBe(11000);
    expect(err.message).toBe(`E11000 duplicate key error collection: idx.${coll.collectionName} index: _id_ dup key: { _id: 1 }`);
    expect(err.keyPattern).toEqual({ _id: 1 });
    expect(err.keyValue).toEqual({ _id: 1 });
  });

  test("a unique secondary index rejects inserts and updates that collide", async () => {
    const coll = freshCollection<{ email: string; n?: number }>();
    expect(await coll.createIndex({ email: 1 }, { unique: true })).toBe("email_1");
    await coll.insertMany([{ email: "a@x" }, { email: "b@x" }]);
    const dup = await rejectionOf(coll.insertOne({ email: "a@x" }));
    expect(dup.code).toBe(11000);
    expect(dup.keyPattern).toEqual({ email: 1 });
    expect(dup.keyValue).toEqual({ email: "a@x" });
    expect(dup.message).toContain("index: email_1 dup key: { email: \"a@x\" }");
    const upd = await rejectionOf(coll.updateOne({ email: "b@x" }, { $set: { email: "a@x" } }));
    expect(upd.code).toBe(11000);
    // The failed update left the document unchanged, and the index still serves lookups.
    expect(await coll.countDocuments({ email: "b@x" })).toBe(1);
    await coll.updateOne({ email: "b@x" }, { $set: { email: "c@x" } });
    await coll.insertOne({ email: "b@x" });
    expect(await coll.countDocuments()).toBe(3);
  });

  test("a compound unique index constrains the combination only", async () => {
    const coll = freshCollection<{ restaurant: string; sku: string }>();
    await coll.createIndex({ restaurant: 1, sku: 1 }, { unique: true });
    await coll.insertMany([
      { restaurant: "r1", sku: "a" },
      { restaurant: "r1", sku: "b" },
      { restaurant: "r2", sku: "a" },
    ]);
    const err = await rejectionOf(coll.insertOne({ restaurant: "r2", sku: "a" }));
    expect(err.code).toBe(11000);
    expect(err.keyPattern).toEqual({ restaurant: 1, sku: 1 });
    expect(err.keyValue).toEqual({ restaurant: "r2", sku: "a" });
  });

  test("bulk writes report duplicate keys per statement with keyPattern/keyValue", async () => {
    const coll = freshCollection<{ _id: number; code: string }>();
    await coll.createIndex({ code: 1 }, { unique: true });
    const err = await coll
      .insertMany(
        [
          { _id: 1, code: "x" },
          { _id: 2, code: "x" },
          { _id: 3, code: "y" },
        ],
        { ordered: false },
      )
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MongoBulkWriteError);
    const bulk = err as MongoBulkWriteError;
    expect(bulk.insertedCount).toBe(2);
    expect(bulk.writeErrors).toHaveLength(1);
    expect(bulk.writeErrors).toMatchObject([{ index: 1, code: 11000 }]);
    // The driver does not copy keyPattern/keyValue into bulk results: read the raw reply.
    const raw = await engine.mongo.client.db("idx").command({ insert: coll.collectionName, documents: [{ _id: 4, code: "y" }, { _id: 5, code: "z" }], ordered: true });
    expect(raw.n).toBe(0);
    expect(raw.writeErrors).toEqual([
      {
        index: 0,
        code: 11000,
        errmsg: `E11000 duplicate key error collection: idx.${coll.collectionName} index: code_1 dup key: { code: "y" }`,
        keyPattern: { code: 1 },
        keyValue: { code: "y" },
      },
    ]);
  });

  test("creating a unique index over existing duplicates fails", async () => {
    const coll = freshCollection<{ k: number }>();
    await coll.insertMany([{ k: 1 }, { k: 1 }]);
    const err = await rejectionOf(coll.createIndex({ k: 1 }, { unique: true }));
    expect(err.code).toBe(11000);
    expect((await coll.listIndexes().toArray()).map((i) => i.name)).toEqual(["_id_"]);
  });

  test("sparse and partial unique indexes skip documents outside them", async () => {
    const coll = freshCollection<{ a?: number; b?: number; active?: boolean }>();
    await coll.createIndex({ a: 1 }, { unique: true, sparse: true });
    await coll.createIndex({ b: 1 }, { unique: true, partialFilterExpression: { active: true } });
    await coll.insertMany([{}, {}, { b: 1, active: false }, { b: 1, active: true }]);
    await rejectionOf(coll.insertOne({ b: 1, active: true }));
    expect(await coll.countDocuments()).toBe(4);
  });
});

describe("index management", () => {
  test("createIndexes, listIndexes and dropIndexes", async () => {
    const coll = freshCollection();
    await coll.createIndexes([{ key: { a: 1 } }, { key: { b: -1, c: 1 }, name: "bc" }, { key: { loc: "2dsphere" } }]);
    // Creating the same index again is a no-op.
    await coll.createIndex({ a: 1 });
    const indexes = await coll.listIndexes().toArray();
    expect(indexes.map((i) => [i.name, i.key])).toEqual([
      ["_id_", { _id: 1 }],
      ["a_1", { a: 1 }],
      ["bc", { b: -1, c: 1 }],
      ["loc_2dsphere", { loc: "2dsphere" }],
    ]);
    const conflict = await rejectionOf(coll.createIndex({ z: 1 }, { name: "a_1" }));
    expect(conflict.code).toBe(86);
    await coll.dropIndex("bc");
    const missing = await rejectionOf(coll.dropIndex("bc"));
    expect(missing.code).toBe(27);
    await coll.dropIndexes();
    expect((await coll.listIndexes().toArray()).map((i) => i.name)).toEqual(["_id_"]);
  });
});

describe("index use", () => {
  test("equality and $in on an indexed field use the index instead of scanning", async () => {
    const coll = freshCollection<{ i: number; status: string; restaurant: string }>();
    await coll.insertMany(Array.from({ length: 500 }, (_, i) => ({ i, status: i % 50 === 0 ? "placed" : "done", restaurant: `r${i % 100}` })));
    await coll.createIndex({ status: 1 });
    await coll.createIndex({ restaurant: 1, i: -1 });

    const eq = await coll.find({ status: "placed" }).explain("executionStats");
    expect(eq.queryPlanner.winningPlan.inputStage).toMatchObject({ stage: "IXSCAN", indexName: "status_1" });
    expect(eq.executionStats.totalDocsExamined).toBe(10);
    expect(eq.executionStats.nReturned).toBe(10);

    const inList = await coll.find({ restaurant: { $in: ["r1", "r2"] }, i: { $gt: 100 } }).explain("executionStats");
    expect(inList.queryPlanner.winningPlan.inputStage.indexName).toBe("restaurant_1_i_-1");
    expect(inList.executionStats.totalDocsExamined).toBe(10);
    expect(inList.executionStats.nReturned).toBe(8);

    const byId = await coll.find({ _id: (await coll.findOne({ i: 7 }))?._id }).explain("executionStats");
    expect(byId.queryPlanner.winningPlan.inputStage.indexName).toBe("_id_");
    expect(byId.executionStats.totalDocsExamined).toBe(1);

    const scan = await coll.find({ i: 3 }).explain("executionStats");
    expect(scan.queryPlanner.winningPlan.stage).toBe("COLLSCAN");
    expect(scan.executionStats.totalDocsExamined).toBe(500);

    const agg = await coll.aggregate([{ $match: { status: "placed" } }, { $count: "n" }]).explain();
    expect(agg.queryPlanner.winningPlan.inputStage.indexName).toBe("status_1");
  });

  test("hints must name an existing index", async () => {
    const coll = freshCollection<{ a: number }>();
    await coll.insertMany([{ a: 1 }, { a: 2 }]);
    await coll.createIndex({ a: 1 });
    expect(await coll.find({ a: 2 }, { hint: "a_1" }).toArray()).toHaveLength(1);
    expect(await coll.find({ a: 2 }, { hint: { a: 1 } }).toArray()).toHaveLength(1);
    const err = await rejectionOf(coll.find({ a: 2 }, { hint: "nope_1" }).toArray());
    expect(err.code).toBe(2);
    expect(err.message).toContain("hint provided does not correspond to an existing index");
  });
});

describe("TTL indexes", () => {
  test("documents past expireAfterSeconds are deleted by the TTL monitor", async () => {
    const ttl = await startTestMongo({ engine: { ttlMonitorIntervalMs: 20 } });
    try {
      const coll = ttl.client.db("idx").collection<{ _id: number; at: Date | string }>("sessions");
      await coll.createIndex({ at: 1 }, { expireAfterSeconds: 60 });
      await coll.insertMany([
        { _id: 1, at: new Date(Date.now() - 120_000) },
        { _id: 2, at: new Date() },
        { _id: 3, at: "not a date" },
      ]);
      for (let i = 0; i < 100 && (await coll.countDocuments({ _id: 1 })) > 0; i++) await Bun.sleep(10);
      expect(await coll.distinct("_id")).toEqual([2, 3]);
    } finally {
      await ttl.close();
    }
  });
});

describe("partial indexes", () => {
  test("serve equality queries that imply their filter, and only those", async () => {
    const coll = freshCollection<{ customerId: string; key?: string | null }>();
    await coll.createIndex({ customerId: 1, key: 1 }, { unique: true, partialFilterExpression: { key: { $type: "string" } } });
    await coll.insertMany(Array.from({ length: 50 }, (_, i) => ({ customerId: `c${i % 5}`, key: i % 2 ? `k${i}` : null })));
    const hit = await coll.find({ customerId: "c1", key: "k11" }).explain("executionStats");
    expect(hit.queryPlanner.winningPlan.inputStage.indexName).toBe("customerId_1_key_1");
    expect(hit.executionStats.nReturned).toBe(1);
    expect(hit.executionStats.totalDocsExamined).toBe(1);
    // null is outside the partial filter: the index cannot answer it.
    const miss = await coll.find({ customerId: "c0" }).explain("executionStats");
    expect(miss.queryPlanner.winningPlan.stage).toBe("COLLSCAN");
    expect(miss.executionStats.nReturned).toBe(10);
  });
});

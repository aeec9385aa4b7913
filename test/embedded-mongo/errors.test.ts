// Server errors as the driver sees them: ordered/unordered batches, NamespaceNotFound,
// invalid update documents, unknown operators and fail points.
import { describe, expect, test } from "bun:test";
import { type Document, MongoBulkWriteError, MongoServerError } from "mongodb";
import { engineForFile, rejectionOf } from "../helpers/embedded-mongo";

const engine = engineForFile("errors");
const { freshCollection } = engine;

const failure = <E extends Error = MongoServerError>(p: Promise<unknown>) => rejectionOf<E>(p, Error);

describe("ordered and unordered write batches", () => {
  test("an ordered insertMany stops at the first error", async () => {
    const coll = freshCollection<{ _id: number }>();
    const err = await failure<MongoBulkWriteError>(coll.insertMany([{ _id: 1 }, { _id: 1 }, { _id: 2 }, { _id: 3 }]));
    expect(err).toBeInstanceOf(MongoBulkWriteError);
    expect(err.code).toBe(11000);
    expect(err.insertedCount).toBe(1);
    expect(await coll.distinct("_id")).toEqual([1]);
  });

  test("an unordered insertMany carries on and reports every failure", async () => {
    const coll = freshCollection<{ _id: number }>();
    const err = await failure<MongoBulkWriteError>(coll.insertMany([{ _id: 1 }, { _id: 1 }, { _id: 2 }, { _id: 2 }, { _id: 3 }], { ordered: false }));
    expect(err.insertedCount).toBe(3);
    expect([err.writeErrors].flat().map((e) => e.index)).toEqual([1, 3]);
    expect((await coll.distinct("_id")).sort()).toEqual([1, 2, 3]);
  });

  test("update batches follow the same rule", async () => {
    const coll = freshCollection<{ _id: number; x: number }>();
    await coll.insertMany([
      { _id: 1, x: 1 },
      { _id: 2, x: 2 },
    ]);
    const ordered = await engine.mongo.client.db("errors").command({
      update: coll.collectionName,
      updates: [
        { q: { _id: 1 }, u: { $inc: { x: 1 } } },
        { q: { _id: 2 }, u: { $bogus: { x: 1 } } },
        { q: { _id: 2 }, u: { $inc: { x: 1 } } },
      ],
    });
    expect(ordered).toMatchObject({ n: 1, nModified: 1, ok: 1 });
    expect(ordered.writeErrors).toMatchObject([{ index: 1, code: 9 }]);
    const unordered = await engine.mongo.client.db("errors").command({
      update: coll.collectionName,
      updates: [
        { q: { _id: 1 }, u: { $bogus: { x: 1 } } },
        { q: { _id: 2 }, u: { $inc: { x: 1 } } },
      ],
      ordered: false,
    });
    expect(unordered).toMatchObject({ n: 1, nModified: 1, writeErrors: [{ index: 0, code: 9 }] });
    expect(await coll.find({}).sort({ _id: 1 }).toArray()).toEqual([
      { _id: 1, x: 2 },
      { _id: 2, x: 3 },
    ]);
  });
});

describe("bad update documents", () => {
  test("are rejected with MongoDB's codes and leave the document alone", async () => {
    const coll = freshCollection<{ _id: number; name: string; tags: string[]; nested: { a: number } }>();
    await coll.insertOne({ _id: 1, name: "x", tags: [], nested: { a: 1 } });
    const cases: [Document | Document[], number][] = [
      [{ $unknown: { a: 1 } }, 9],
      [{ $set: 5 }, 9],
      [{ $inc: { name: 1 } }, 14],
      [{ $inc: { nested: "1" } }, 14],
      [{ $push: { name: "y" } }, 2],
      [{ $set: { "name.first": "y" } }, 28],
      [{ $set: { a: 1 }, $unset: { a: "" } }, 40],
      [{ $set: { _id: 2 } }, 66],
      [[{ $group: { _id: null } }], 72],
    ];
    for (const [update, code] of cases) {
      const raw = await engine.mongo.client.db("errors").command({ update: coll.collectionName, updates: [{ q: { _id: 1 }, u: update }] });
      expect({ update, code: raw.writeErrors?.[0]?.code as unknown }).toEqual({ update, code });
    }
    const viaDriver = await failure(coll.updateOne({ _id: 1 }, { $inc: { name: 1 } } as Document));
    expect(viaDriver).toBeInstanceOf(MongoServerError);
    expect(viaDriver.code).toBe(14);
    expect(viaDriver.message).toContain("Cannot apply $inc to a value of non-numeric type");
    const replaceWithOperator = await engine.mongo.client
      .db("errors")
      .command({ update: coll.collectionName, updates: [{ q: { _id: 1 }, u: { a: 1, $set: { b: 1 } } }] });
    expect(replaceWithOperator.writeErrors[0].code).toBe(52);
    expect(await coll.findOne({ _id: 1 })).toEqual({ _id: 1, name: "x", tags: [], nested: { a: 1 } });
  });
});

describe("namespaces", () => {
  test("NamespaceNotFound where MongoDB reports it", async () => {
    const db = engine.mongo.client.db("errors");
    const listIndexes = await failure(db.collection("missing").listIndexes().toArray());
    expect(listIndexes.code).toBe(26);
    expect(listIndexes.codeName).toBe("NamespaceNotFound");
    const dropIndex = await failure(db.collection("missing").dropIndex("a_1"));
    expect(dropIndex.code).toBe(26);
    const drop = await failure(db.command({ drop: "missing" }));
    expect(drop.code).toBe(26);
    // The driver treats a missing collection on drop as "nothing to drop".
    expect(await db.collection("missing").drop()).toBe(false);
  });

  test("creating an existing collection fails with NamespaceExists", async () => {
    const db = engine.mongo.client.db("errors");
    await db.createCollection("exists");
    const err = await failure(db.createCollection("exists"));
    expect(err.code).toBe(48);
  });
});

describe("queries", () => {
  test("an unknown query operator is BadValue", async () => {
    const coll = freshCollection();
    await coll.insertOne({ a: 1 });
    const err = await failure(coll.find({ a: { $nope: 1 } }).toArray());
    expect(err.code).toBe(2);
    expect(err.message).toContain("unknown operator: $nope");
  });

  test("an unknown pipeline stage is reported", async () => {
    const coll = freshCollection();
    await coll.insertOne({ a: 1 });
    const err = await failure(coll.aggregate([{ $nope: {} }]).toArray());
    expect(err.code).toBe(40324);
  });
});

describe("fail points", () => {
  test("failCommand makes the next command fail with the given code, then stops", async () => {
    const coll = freshCollection();
    await engine.mongo.client.db("admin").command({ configureFailPoint: "failCommand", mode: { times: 1 }, data: { failCommands: ["count"], errorCode: 8 } });
    const err = await failure(coll.estimatedDocumentCount());
    expect(err.code).toBe(8);
    expect(await coll.estimatedDocumentCount()).toBe(0);
  });
});

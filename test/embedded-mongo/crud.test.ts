// CRUD, cursors and aggregation through the official driver.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type CommandStartedEvent, type Document, ObjectId } from "mongodb";
import { type TestMongo, startTestMongo } from "../helpers/embedded-mongo";

let mongo: TestMongo;
const commands: CommandStartedEvent[] = [];
beforeAll(async () => {
  mongo = await startTestMongo({ client: { monitorCommands: true } });
  mongo.client.on("commandStarted", (e) => commands.push(e));
});
afterAll(() => mongo.close());

let n = 0;
function freshCollection<T extends Document = Document>() {
  return mongo.client.db("crud").collection<T>(`c${++n}`);
}

describe("insert and find", () => {
  test("inserted documents come back with their BSON types intact", async () => {
    const coll = freshCollection();
    const oid = new ObjectId();
    const at = new Date("2025-01-02T03:04:05.678Z");
    const res = await coll.insertOne({ _id: oid, at, nested: { list: [1, "two", null] }, big: 2 ** 40, f: 1.5 });
    expect(res.insertedId).toEqual(oid);
    const doc = await coll.findOne({ _id: oid });
    expect(doc).toEqual({ _id: oid, at, nested: { list: [1, "two", null] }, big: 2 ** 40, f: 1.5 });
    expect(doc?._id).toBeInstanceOf(ObjectId);
    expect(doc?.at).toBeInstanceOf(Date);
  });

  test("documents without _id get an ObjectId; filters, sort, skip, limit and projection apply", async () => {
    const coll = freshCollection<{ i: number; tag: string; secret?: string }>();
    await coll.insertMany(Array.from({ length: 10 }, (_, i) => ({ i, tag: i % 2 ? "odd" : "even", secret: "s" })));
    const all = await coll.find({}).toArray();
    expect(all).toHaveLength(10);
    expect(all.every((d) => d._id instanceof ObjectId)).toBe(true);
    const page: unknown[] = await coll.find({ tag: "odd" }, { projection: { _id: 0, secret: 0 } }).sort({ i: -1 }).skip(1).limit(2).toArray();
    expect(page).toEqual([
      { i: 7, tag: "odd" },
      { i: 5, tag: "odd" },
    ]);
    expect(await coll.findOne<unknown>({ i: { $in: [3, 4] } }, { sort: { i: 1 }, projection: { i: 1, _id: 0 } })).toEqual({ i: 3 });
    expect(await coll.countDocuments({ i: { $gte: 5 } })).toBe(5);
    expect(await coll.estimatedDocumentCount()).toBe(10);
    expect((await coll.distinct("tag")).sort()).toEqual(["even", "odd"]);
  });

  test("reading a collection that does not exist returns nothing", async () => {
    const coll = freshCollection();
    expect(await coll.find({ a: 1 }).toArray()).toEqual([]);
    expect(await coll.countDocuments()).toBe(0);
    expect(await coll.estimatedDocumentCount()).toBe(0);
    expect(await coll.findOne({})).toBeNull();
  });
});

describe("cursors", () => {
  test("small batches are fetched with getMore until the cursor is exhausted", async () => {
    const coll = freshCollection<{ i: number }>();
    await coll.insertMany(Array.from({ length: 25 }, (_, i) => ({ i })));
    commands.length = 0;
    const got = await coll.find({}, { batchSize: 4 }).sort({ i: 1 }).toArray();
    expect(got.map((d) => d.i)).toEqual(Array.from({ length: 25 }, (_, i) => i));
    const getMores = commands.filter((c) => c.commandName === "getMore");
    expect(getMores).toHaveLength(6);
    expect(getMores.every((c) => c.command.batchSize === 4)).toBe(true);
  });

  test("aggregate cursors page the same way", async () => {
    const coll = freshCollection<{ i: number }>();
    await coll.insertMany(Array.from({ length: 12 }, (_, i) => ({ i })));
    commands.length = 0;
    const got = await coll.aggregate<{ i: number }>([{ $match: { i: { $gte: 2 } } }, { $sort: { i: -1 } }], { batchSize: 3 }).toArray();
    expect(got.map((d) => d.i)).toEqual([11, 10, 9, 8, 7, 6, 5, 4, 3, 2]);
    expect(commands.filter((c) => c.commandName === "getMore")).toHaveLength(3);
  });

  test("closing a cursor early kills it on the server; a killed cursor id is unknown", async () => {
    const coll = freshCollection<{ i: number }>();
    await coll.insertMany(Array.from({ length: 10 }, (_, i) => ({ i })));
    const cursor = coll.find({}, { batchSize: 2 });
    expect((await cursor.next())?.i).toBe(0);
    const id = cursor.id;
    expect(id?.isZero()).toBe(false);
    await cursor.close();
    const db = mongo.client.db("crud");
    const err = await db.command({ getMore: id, collection: coll.collectionName }).catch((e: unknown) => e as { code: number });
    expect(err.code).toBe(43);
  });
});

describe("updates", () => {
  test("update operators, upserts and replaceOne report matched/modified/upserted counts", async () => {
    const coll = freshCollection<{ _id: number; x?: number; tags?: string[]; name?: string }>();
    await coll.insertMany([
      { _id: 1, x: 1, tags: ["a"] },
      { _id: 2, x: 2 },
    ]);
    expect(await coll.updateOne({ _id: 1 }, { $inc: { x: 10 }, $push: { tags: "b" } })).toMatchObject({ matchedCount: 1, modifiedCount: 1 });
    expect(await coll.updateOne({ _id: 1 }, { $set: { x: 11 } })).toMatchObject({ matchedCount: 1, modifiedCount: 0 });
    expect(await coll.updateMany({}, { $set: { name: "n" } })).toMatchObject({ matchedCount: 2, modifiedCount: 2 });
    const up = await coll.updateOne({ _id: 3 }, { $set: { x: 3 }, $setOnInsert: { name: "new" } }, { upsert: true });
    expect(up).toMatchObject({ matchedCount: 0, upsertedCount: 1, upsertedId: 3 });
    await coll.updateOne({ _id: 3 }, { $setOnInsert: { name: "ignored" } }, { upsert: true });
    expect(await coll.replaceOne({ _id: 2 }, { x: 20 })).toMatchObject({ matchedCount: 1, modifiedCount: 1 });
    expect(await coll.find({}).sort({ _id: 1 }).toArray()).toEqual([
      { _id: 1, x: 11, tags: ["a", "b"], name: "n" },
      { _id: 2, x: 20 },
      { _id: 3, x: 3, name: "new" },
    ]);
  });

  test("arrayFilters, the positional operator and pipeline updates", async () => {
    const coll = freshCollection<{ _id: number; items: { sku: string; qty: number }[]; total?: number }>();
    await coll.insertOne({ _id: 1, items: [{ sku: "a", qty: 1 }, { sku: "b", qty: 5 }] });
    await coll.updateOne({ _id: 1 }, { $inc: { "items.$[big].qty": 100 } }, { arrayFilters: [{ "big.qty": { $gte: 5 } }] });
    await coll.updateOne({ _id: 1, "items.sku": "a" }, { $set: { "items.$.qty": 2 } });
    await coll.updateOne({ _id: 1 }, [{ $set: { total: { $sum: "$items.qty" } } }]);
    expect(await coll.findOne({ _id: 1 })).toEqual({
      _id: 1,
      items: [
        { sku: "a", qty: 2 },
        { sku: "b", qty: 105 },
      ],
      total: 107,
    });
  });

  test("findOneAndUpdate / Replace / Delete return the document before or after", async () => {
    const coll = freshCollection<{ _id: number; v: number; status?: string }>();
    await coll.insertMany([
      { _id: 1, v: 0 },
      { _id: 2, v: 0 },
    ]);
    const after = await coll.findOneAndUpdate({ _id: 1, v: 0 }, { $inc: { v: 1 }, $set: { status: "x" } }, { returnDocument: "after" });
    expect(after).toEqual({ _id: 1, v: 1, status: "x" });
    // A compare-and-set on a stale version matches nothing.
    expect(await coll.findOneAndUpdate({ _id: 1, v: 0 }, { $inc: { v: 1 } })).toBeNull();
    expect((await coll.findOneAndReplace({ _id: 2 }, { v: 9 }, { projection: { v: 1, _id: 0 } })) as unknown).toEqual({ v: 0 });
    const upserted = await coll.findOneAndUpdate({ _id: 3 }, { $set: { v: 3 } }, { upsert: true, returnDocument: "after" });
    expect(upserted).toEqual({ _id: 3, v: 3 });
    expect(await coll.findOneAndDelete({}, { sort: { v: -1 } })).toEqual({ _id: 2, v: 9 });
    expect(await coll.countDocuments()).toBe(2);
  });
});

describe("deletes", () => {
  test("deleteOne removes one match, deleteMany all", async () => {
    const coll = freshCollection<{ k: string }>();
    await coll.insertMany([{ k: "a" }, { k: "a" }, { k: "a" }, { k: "b" }]);
    expect((await coll.deleteOne({ k: "a" })).deletedCount).toBe(1);
    expect((await coll.deleteMany({ k: "a" })).deletedCount).toBe(2);
    expect((await coll.deleteMany({ k: "zzz" })).deletedCount).toBe(0);
    expect(await coll.find<Document>({}, { projection: { _id: 0 } }).toArray()).toEqual([{ k: "b" }]);
  });
});

describe("bulkWrite", () => {
  test("mixed operations report every count", async () => {
    const coll = freshCollection<{ _id: number; x: number }>();
    const res = await coll.bulkWrite([
      { insertOne: { document: { _id: 1, x: 1 } } },
      { insertOne: { document: { _id: 2, x: 2 } } },
      { updateOne: { filter: { _id: 1 }, update: { $inc: { x: 1 } } } },
      { replaceOne: { filter: { _id: 9 }, replacement: { x: 9 }, upsert: true } },
      { deleteOne: { filter: { _id: 2 } } },
    ]);
    expect(res.insertedCount).toBe(2);
    expect(res.modifiedCount).toBe(1);
    expect(res.upsertedCount).toBe(1);
    expect(res.deletedCount).toBe(1);
    expect(await coll.find({}).sort({ _id: 1 }).toArray()).toEqual([
      { _id: 1, x: 2 },
      { _id: 9, x: 9 },
    ]);
  });
});

describe("aggregation", () => {
  test("group, lookup, let variables and $out", async () => {
    const db = mongo.client.db("crud");
    const orders = freshCollection<{ _id: number; customer: string; total: number }>();
    const customers = freshCollection<{ _id: string; name: string }>();
    await customers.insertMany([
      { _id: "c1", name: "Ada" },
      { _id: "c2", name: "Bob" },
    ]);
    await orders.insertMany([
      { _id: 1, customer: "c1", total: 10 },
      { _id: 2, customer: "c1", total: 5 },
      { _id: 3, customer: "c2", total: 7 },
    ]);
    const grouped = await orders
      .aggregate([
        { $match: { total: { $gte: 0 } } },
        { $group: { _id: "$customer", sum: { $sum: "$total" } } },
        { $lookup: { from: customers.collectionName, localField: "_id", foreignField: "_id", as: "who" } },
        { $project: { sum: 1, name: { $first: "$who.name" } } },
        { $sort: { sum: -1 } },
      ])
      .toArray();
    expect(grouped).toEqual([
      { _id: "c1", sum: 15, name: "Ada" },
      { _id: "c2", sum: 7, name: "Bob" },
    ]);
    const withLet = await orders.aggregate([{ $match: { $expr: { $gte: ["$total", "$$min"] } } }, { $project: { _id: 1 } }], { let: { min: 7 } }).toArray();
    expect(withLet.map((d) => d._id).sort()).toEqual([1, 3]);
    await orders.aggregate([{ $match: { customer: "c1" } }, { $out: "bigSpenders" }]).toArray();
    expect(await db.collection("bigSpenders").countDocuments()).toBe(2);
  });

  test("views are read through their pipeline", async () => {
    const db = mongo.client.db("crud");
    const base = freshCollection<{ _id: number; open: boolean }>();
    await base.insertMany([
      { _id: 1, open: true },
      { _id: 2, open: false },
      { _id: 3, open: true },
    ]);
    const viewName = `${base.collectionName}_open`;
    await db.createCollection(viewName, { viewOn: base.collectionName, pipeline: [{ $match: { open: true } }] });
    const view = db.collection(viewName);
    expect(await view.find<Document>({}, { sort: { _id: -1 } }).toArray()).toEqual([
      { _id: 3, open: true },
      { _id: 1, open: true },
    ]);
    expect(await view.estimatedDocumentCount()).toBe(2);
    const infos = await db.listCollections({ name: viewName }).toArray();
    expect(infos[0].type).toBe("view");
  });
});

describe("catalog", () => {
  test("create, listCollections, rename, drop and dropDatabase", async () => {
    const db = mongo.client.db("catalog");
    await db.createCollection("a");
    await db.collection("b").insertOne({ x: 1 });
    expect((await db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name).sort()).toEqual(["a", "b"]);
    const dbs = await mongo.client.db("admin").admin().listDatabases();
    expect(dbs.databases.map((d) => d.name)).toContain("catalog");
    await db.renameCollection("b", "c");
    expect(await db.collection("c").findOne<unknown>({}, { projection: { _id: 0 } })).toEqual({ x: 1 });
    expect(await db.collection("a").drop()).toBe(true);
    await db.dropDatabase();
    expect(await db.listCollections().toArray()).toEqual([]);
  });
});

describe("natural order", () => {
  test("documents come back in insertion order; $natural: -1 reverses it", async () => {
    const coll = freshCollection<{ _id: string }>();
    await coll.insertMany([{ _id: "b" }, { _id: "c" }, { _id: "a" }]);
    expect((await coll.find({}).toArray()).map((d) => d._id)).toEqual(["b", "c", "a"]);
    expect((await coll.find({}).sort({ $natural: -1 }).toArray()).map((d) => d._id)).toEqual(["a", "c", "b"]);
  });
});

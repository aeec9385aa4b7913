import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startTestMongo, type TestMongo } from "../helpers/embedded-mongo";

/** findOneAndUpdate with a projection and returnDocument "after" (the durable timers' lease claim). */
let mongo: TestMongo;

beforeAll(async () => {
  mongo = await startTestMongo();
});

afterAll(async () => {
  await mongo?.close();
});

describe("findAndModify with fields and new=true", () => {
  test("returns the projected new document even when the update moves it out of the query", async () => {
    const col = mongo.client.db("fam").collection<{ _id: number; due: boolean; lease?: { until: Date } | null; n: number }>("leases");
    await col.insertOne({ _id: 1, due: true, lease: null, n: 7 });
    const now = new Date();
    const filter = { due: true, $or: [{ lease: null }, { "lease.until": { $lte: now } }] };
    const claimed = await col.findOneAndUpdate(filter, { $set: { lease: { until: new Date(now.getTime() + 5_000) } } }, { projection: { n: 1 }, returnDocument: "after" });
    expect(claimed as unknown).toEqual({ _id: 1, n: 7 });
    // Now leased: the same claim finds nothing.
    expect(await col.findOneAndUpdate(filter, { $set: { lease: null } }, { projection: { n: 1 }, returnDocument: "after" })).toBeNull();
  });

  test("positional projections still use the query", async () => {
    const col = mongo.client.db("fam").collection<{ _id: number; items: Array<{ k: string; v: number }> }>("positional");
    await col.insertOne({ _id: 1, items: [{ k: "a", v: 1 }, { k: "b", v: 2 }] });
    const doc = await col.findOneAndUpdate({ "items.k": "b" }, { $inc: { "items.$.v": 10 } }, { projection: { "items.$": 1 }, returnDocument: "after" });
    expect(doc as unknown).toEqual({ _id: 1, items: [{ k: "b", v: 12 }] });
  });
});

// Never silently wrong: every command field the engine accepts is one it implements. The README's
// tables are checked against the engine's own lists (both ways), every command is sent an unknown
// field (40415) and every refused option (NotImplemented, 238), through the official driver, and
// the features the engine does not have are refused rather than ignored.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { type Db, type Document, MongoServerError, Timestamp } from "mongodb";
import { COMMANDS } from "../../src/embedded-mongo/commands/index";
import { INDEX_OPTIONS } from "../../src/embedded-mongo/indexes";
import { DELETE_STATEMENT_FIELDS, UPDATE_STATEMENT_FIELDS } from "../../src/embedded-mongo/operations";
import { REFUSED_OPTIONS } from "../../src/embedded-mongo/options";
import { type TestMongo, startTestMongo } from "../helpers/embedded-mongo";

const README = readFileSync(resolve(import.meta.dir, "../../src/embedded-mongo/README.md"), "utf8");

/** Rows of the markdown table whose header starts with `header`: first cell's names → second cell's names. */
function table(header: string): Array<[string[], string[] | "any"]> {
  const lines = README.split("\n");
  const start = lines.findIndex((l) => l.startsWith(`| ${header} |`));
  expect(start).toBeGreaterThan(-1);
  const rows: Array<[string[], string[] | "any"]> = [];
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith("|")) break;
    const [first, second] = line.split("|").slice(1, 3).map((c) => c.trim());
    const names = (cell: string) => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]);
    rows.push([names(first), second === "any" ? "any" : names(second)]);
  }
  return rows;
}

describe("the README's tables are the engine's", () => {
  test("commands and the options each implements", () => {
    const documented = new Map<string, string[] | "any">();
    for (const [names, options] of table("command")) for (const n of names) documented.set(n, options);
    const actual = new Map<string, string[] | "any">(Object.entries(COMMANDS).map(([n, spec]) => [n, spec.options === "any" ? "any" : [...spec.options]]));
    actual.set("update.updates[]", [...UPDATE_STATEMENT_FIELDS]);
    actual.set("delete.deletes[]", [...DELETE_STATEMENT_FIELDS]);
    actual.set("createIndexes.indexes[]", ["key", "name", "v", "ns", ...INDEX_OPTIONS]);
    const sorted = (m: Map<string, string[] | "any">) => [...m].map(([k, v]) => [k, v === "any" ? v : [...v].sort()]).sort();
    expect(sorted(documented)).toEqual(sorted(actual));
  });

  test("refused options", () => {
    const documented = table("refused option").map(([[name]]) => name);
    expect(documented.sort()).toEqual(Object.keys(REFUSED_OPTIONS).sort());
  });

  test("commands that take any field are read-only diagnostics", () => {
    const any = Object.entries(COMMANDS).filter(([, s]) => s.options === "any").map(([n]) => n);
    expect(any.sort()).toEqual(["buildInfo", "buildinfo", "connectionStatus", "getCmdLineOpts", "getLog", "getParameter", "hello", "hostInfo", "isMaster", "ismaster", "ping", "serverStatus", "whatsmyuri"]);
  });
});

let mongo: TestMongo;
let db: Db;

beforeAll(async () => {
  mongo = await startTestMongo();
  db = mongo.client.db("options");
  await db.collection("c").insertOne({ _id: 1 as never, a: "x" });
});
afterAll(() => mongo.close());

async function refusal(cmd: Document): Promise<MongoServerError> {
  const err = await db.command(cmd).then(
    () => null,
    (e: unknown) => e,
  );
  if (!(err instanceof MongoServerError)) throw new Error(`${JSON.stringify(cmd)} was accepted`);
  return err;
}

/** A value of each refused option that asks for something the engine does not do. */
const NON_DEFAULT: Record<string, unknown> = { collation: { locale: "fr" }, capped: true, validator: { $jsonSchema: { required: ["a"] } }, scale: 1024 };

describe("every command refuses what it does not implement", () => {
  const commands = Object.entries(COMMANDS).filter(([, s]) => s.options !== "any");

  test("an unknown field is MongoDB's unknown-field error, before anything runs", async () => {
    for (const [name] of commands) {
      const err = await refusal({ [name]: "c", bogusOption: 1 });
      expect([name, err.code, err.message]).toEqual([name, 40415, `BSON field '${name}.bogusOption' is an unknown field.`]);
    }
    expect(await db.collection("c").countDocuments()).toBe(1);
  });

  test("every refused option is NotImplemented on every command", async () => {
    for (const [name] of commands) {
      const options = Object.keys(REFUSED_OPTIONS);
      const errors = await Promise.all(options.map((option) => refusal({ [name]: "c", [option]: NON_DEFAULT[option] ?? 1 })));
      errors.forEach((err, i) => {
        expect([name, options[i], err.code]).toEqual([name, options[i], 238]);
        expect(err.message).toContain(`'${name}.${options[i]}' is not implemented by the embedded engine`);
      });
    }
    expect(await db.listCollections({ name: "c" }).toArray()).toHaveLength(1);
  }, 60_000);

  test("statements and index specs: refused options and unknown fields", async () => {
    const update = (extra: Document) => refusal({ update: "c", updates: [{ q: {}, u: { $set: { b: 1 } }, ...extra }] });
    expect((await update({ collation: { locale: "fr", strength: 2 } })).code).toBe(238);
    expect((await update({ bogus: 1 })).code).toBe(40415);
    expect((await refusal({ delete: "c", deletes: [{ q: {}, limit: 0, collation: { locale: "de" } }] })).code).toBe(238);
    for (const option of ["collation", "weights", "default_language", "bits", "wildcardProjection", "min", "max", "prepareUnique"]) {
      const err = await refusal({ createIndexes: "c", indexes: [{ key: { a: 1 }, name: "a_1", [option]: NON_DEFAULT[option] ?? 1 }] });
      expect([option, err.code]).toEqual([option, 238]);
    }
    expect((await refusal({ createIndexes: "c", indexes: [{ key: { a: 1 }, name: "a_1", bogus: true }] })).code).toBe(40415);
    expect((await db.collection("c").findOne({ _id: 1 as never }))?.b).toBeUndefined();
    expect((await db.collection("c").indexes()).map((i) => i.name)).toEqual(["_id_"]);
  });

  test("options that ask for MongoDB's default are accepted", async () => {
    await db.createCollection("plain", { capped: false, validator: {}, collation: { locale: "simple" } });
    await db.collection("c").updateOne({ _id: 1 as never }, { $set: { z: 1 } }, { collation: { locale: "simple" } });
    await db.collection("c").createIndex({ a: 1 }, { collation: { locale: "simple" }, background: true });
    expect(await db.collection("c").find({}, { collation: { locale: "simple" } }).toArray()).toEqual([{ _id: 1, a: "x", z: 1 }] as never);
    await db.collection("c").dropIndex("a_1");
  });
});

describe("features the engine does not have are refused through the driver", () => {
  test("capped collections, validators and $jsonSchema, collations", async () => {
    const capped = await db.createCollection("capped", { capped: true, size: 4096, max: 10 }).catch((e: unknown) => e);
    expect((capped as MongoServerError).code).toBe(238);
    const validated = await db.createCollection("v", { validator: { $jsonSchema: { required: ["name"] } } }).catch((e: unknown) => e);
    expect((validated as MongoServerError).code).toBe(238);
    expect((await db.listCollections({ name: { $in: ["capped", "v"] } }).toArray()).length).toBe(0);
    const collated = await db.collection("c").find({ a: "X" }, { collation: { locale: "en", strength: 2 } }).toArray().catch((e: unknown) => e);
    expect((collated as MongoServerError).code).toBe(238);
    const agg = await db.collection("c").aggregate([{ $match: {} }], { collation: { locale: "en" } }).toArray().catch((e: unknown) => e);
    expect((agg as MongoServerError).code).toBe(238);
  });

  test("text and 2d indexes, $text, server-side JavaScript, $jsonSchema queries", async () => {
    for (const key of [{ a: "text" }, { a: "2d" }, { "$**": 1 as const }]) {
      const err = await db.collection("c").createIndex(key as Document).catch((e: unknown) => e);
      expect((err as MongoServerError).code).toBe(238);
    }
    const c = db.collection("c");
    const code = async (p: Promise<unknown>) => ((await p.catch((e: unknown) => e)) as MongoServerError).code;
    expect(await code(c.find({ $text: { $search: "x" } }).toArray())).toBe(27);
    expect(await code(c.find({ $where: "this.a == 'x'" }).toArray())).toBe(238);
    expect(await code(c.find({ $jsonSchema: { required: ["a"] } }).toArray())).toBe(238);
    expect(await code(c.aggregate([{ $project: { f: { $function: { body: "function() { return 1 }", args: [], lang: "js" } } } }]).toArray())).toBe(238);
  });

  test("readConcern snapshot: refused on writes and list commands, a one-shot snapshot on reads", async () => {
    const snapshot = { level: "snapshot" };
    expect((await refusal({ insert: "c", documents: [{ _id: 2 }], readConcern: snapshot })).code).toBe(72);
    expect((await refusal({ listCollections: 1, readConcern: snapshot })).code).toBe(72);
    expect((await refusal({ listIndexes: "c", readConcern: snapshot })).code).toBe(72);
    // With no transaction or snapshot read open no history is kept: a snapshot read at a cluster time
    // before the latest write is refused (SnapshotTooOld), never answered with newer data.
    const before = (await db.command({ ping: 1 })).operationTime as Timestamp;
    await db.collection("c").insertOne({ _id: 100 as never });
    expect((await refusal({ find: "c", readConcern: { level: "snapshot", atClusterTime: before } })).code).toBe(239);
    const now = (await db.command({ ping: 1 })).operationTime as Timestamp;
    expect((await db.command({ find: "c", filter: {}, readConcern: { level: "snapshot", atClusterTime: now } })).cursor.firstBatch.length).toBeGreaterThan(0);
    expect((await refusal({ find: "c", readConcern: { level: "snapshot", atClusterTime: new Timestamp({ t: now.high + 3600, i: 1 }) } })).code).toBe(72);
    await db.collection("c").deleteOne({ _id: 100 as never });
    expect((await refusal({ find: "c", readConcern: { level: "bogus" } })).code).toBe(9);
    // A snapshot find reads its whole result at once: a later write does not show in its getMore.
    const c = db.collection("snap");
    await c.insertMany([{ _id: 1 }, { _id: 2 }, { _id: 3 }] as never[]);
    const first = await db.command({ find: "snap", batchSize: 1, readConcern: snapshot, sort: { _id: 1 } });
    await c.insertOne({ _id: 4 } as never);
    await c.deleteOne({ _id: 3 } as never);
    const more = await db.command({ getMore: first.cursor.id, collection: "snap", batchSize: 10 });
    expect(more.cursor.nextBatch.map((d: Document) => d._id)).toEqual([2, 3]);
  });

  test("a write concern a single node cannot satisfy gets MongoDB's writeConcernError", async () => {
    const wcError = async (writeConcern: Document) => {
      const err = await db.command({ insert: "c", documents: [{}], writeConcern }).then(
        () => null,
        (e: unknown) => e as MongoServerError,
      );
      return err?.errorResponse.writeConcernError as Document | undefined;
    };
    expect(await wcError({ w: 2 })).toMatchObject({ code: 100, codeName: "UnsatisfiableWriteConcern" });
    expect(await wcError({ w: "dc2" })).toMatchObject({ code: 79, codeName: "UnknownReplWriteConcern" });
    expect(await wcError({ w: "majority" })).toBeUndefined();
    // As on MongoDB, the write itself was applied; only its acknowledgement failed.
    expect(await db.collection("c").countDocuments()).toBe(4);
  });
});

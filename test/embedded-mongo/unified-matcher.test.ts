// Unit tests of the unified-test-format matcher, requirement checks and error assertions
// used by scripts/mongo-spec (no server needed).
import { describe, expect, test } from "bun:test";
import { Binary, Double, Int32, Long, MongoServerError, ObjectId } from "mongodb";
import { checkError } from "../../scripts/mongo-spec/errors";
import { type EntityLookup, match, matchExact, MatcherUsageError } from "../../scripts/mongo-spec/matcher";
import { compareVersions, parseVersion, requirementsUnmet, type ServerInfo } from "../../scripts/mongo-spec/requirements";

const ok = (expected: unknown, actual: unknown, root = true) => expect(match(expected, actual, { root })).toBeNull();
const bad = (expected: unknown, actual: unknown, pattern: RegExp, root = true) =>
  expect(match(expected, actual, { root })).toMatch(pattern);

describe("documents and arrays", () => {
  test("root documents may carry extra fields, nested ones may not", () => {
    ok({ x: 1 }, { x: 1, y: 2 });
    bad({ x: { y: 1 } }, { x: { y: 1, z: 1 } }, /\$\.x: unexpected extra field\(s\) z/);
    bad({ x: 1 }, { x: 1, y: 2 }, /unexpected extra field/, false);
    bad({ x: 1, y: 1 }, { x: 1 }, /\$\.y: .*missing/);
  });

  test("key order does not matter", () => ok({ a: 1, b: 2 }, { b: 2, a: 1 }, false));

  test("arrays need the same length and matching elements; array elements are not root", () => {
    ok([1, 2, 3], [1, 2, 3]);
    bad([1, 2, 3], [1, 2, 3, 4], /expected 3 element\(s\), got 4/);
    bad([{ x: 1 }], [{ x: 1, y: 1 }], /\$\[0\]: unexpected extra field/);
    bad([1], { 0: 1 }, /expected an array/);
  });

  test("a document does not match a scalar and vice versa", () => {
    bad({ x: 1 }, 5, /expected a document/);
    bad(5, { x: 1 }, /expected 5/);
    bad({ a: null }, {}, /missing/);
    ok({ a: null }, { a: null });
  });
});

describe("flexible numerics and BSON scalars", () => {
  test("int32, int64 and double compare by value", () => {
    ok({ n: 1 }, { n: new Double(1) });
    ok({ n: new Int32(7) }, { n: 7 });
    ok({ n: Long.fromNumber(42) }, { n: 42 });
    ok({ n: 1 }, { n: 1.0 });
    bad({ n: 1 }, { n: 1.5 }, /expected 1, got 1.5/);
    bad({ n: 1 }, { n: "1" }, /expected 1/);
  });

  test("ObjectId, Date and Binary compare by value", () => {
    const id = new ObjectId();
    ok({ _id: id }, { _id: new ObjectId(id.toHexString()) });
    bad({ _id: id }, { _id: new ObjectId() }, /\$\._id/);
    ok(new Date(5), new Date(5));
    bad(new Date(5), new Date(6), /expected/);
    ok(new Binary(Buffer.from("ab")), new Binary(Buffer.from("ab")));
    bad(new Binary(Buffer.from("ab")), new Binary(Buffer.from("ac")), /expected/);
    bad("x", null, /expected "x", got null/);
  });
});

describe("special operators", () => {
  test("$$exists", () => {
    ok({ a: { $$exists: true } }, { a: null });
    ok({ a: { $$exists: false } }, { b: 1 });
    bad({ a: { $$exists: false } }, { a: 1 }, /\$\.a: expected key to be absent/);
    bad({ a: { $$exists: true } }, {}, /\$\.a: expected key to exist/);
    expect(() => match({ $$exists: true }, 1)).toThrow(MatcherUsageError);
  });

  test("$$type with one or several names", () => {
    ok({ a: { $$type: "string" } }, { a: "s" });
    ok({ a: { $$type: ["int", "long"] } }, { a: Long.fromNumber(3) });
    ok({ a: { $$type: "double" } }, { a: 0.25 });
    ok({ a: { $$type: "objectId" } }, { a: new ObjectId() });
    ok({ a: { $$type: "date" } }, { a: new Date() });
    ok({ a: { $$type: "array" } }, { a: [1, "x"] });
    ok({ a: { $$type: "object" } }, { a: {} });
    ok({ a: { $$type: "null" } }, { a: null });
    bad({ a: { $$type: "int" } }, { a: 0.5 }, /expected type int, got double/);
    bad({ a: { $$type: "string" } }, { a: 1 }, /expected type string/);
    bad({ a: { $$type: "long" } }, { a: new Int32(1) }, /expected type long, got int/);
    bad({ a: { $$type: "string" } }, {}, /missing/);
    expect(() => match({ $$type: "nonsense" }, 1)).toThrow(MatcherUsageError);
  });

  test("$$unsetOrMatches as a field value and as a whole result", () => {
    ok({ insertedId: { $$unsetOrMatches: 2 } }, {});
    ok({ insertedId: { $$unsetOrMatches: 2 } }, { insertedId: 2 });
    bad({ insertedId: { $$unsetOrMatches: 2 } }, { insertedId: 3 }, /\$\.insertedId: expected 2, got 3/);
    ok({ $$unsetOrMatches: { insertedId: 1 } }, undefined);
    // stays root-level: extra fields of the actual result are allowed
    ok({ $$unsetOrMatches: { insertedId: 1 } }, { insertedId: 1, acknowledged: true });
    // ...but a nested $$unsetOrMatches document is not root
    bad({ ids: { $$unsetOrMatches: { 0: 1 } } }, { ids: { 0: 1, 1: 2 } }, /unexpected extra field\(s\) 1/);
  });

  test("$$matchesEntity and $$sessionLsid consult the entity map", () => {
    const lsid = { id: new Binary(Buffer.alloc(16, 7), 4) };
    const entities: EntityLookup = {
      get: (name) => {
        if (name === "id0") return 5;
        throw new Error(`no entity ${name}`);
      },
      sessionLsid: (name) => {
        if (name === "session0") return lsid;
        throw new Error(`no session ${name}`);
      },
    };
    expect(match({ _id: { $$matchesEntity: "id0" } }, { _id: 5 }, { entities })).toBeNull();
    expect(match({ _id: { $$matchesEntity: "id0" } }, { _id: 6 }, { entities })).toMatch(/expected 5/);
    expect(() => match({ $$matchesEntity: "nope" }, 1, { entities })).toThrow(/no entity nope/);
    expect(match({ lsid: { $$sessionLsid: "session0" } }, { lsid: { id: new Binary(Buffer.alloc(16, 7), 4) } }, { entities })).toBeNull();
    expect(match({ lsid: { $$sessionLsid: "session0" } }, { lsid: { id: new Binary(Buffer.alloc(16, 8), 4) } }, { entities })).toMatch(
      /expected lsid of session0/,
    );
  });

  test("$$lte, $$matchesHexBytes, $$matchAsDocument, $$matchAsRoot", () => {
    ok({ n: { $$lte: 5 } }, { n: 5 });
    ok({ n: { $$lte: 5 } }, { n: new Double(4.5) });
    bad({ n: { $$lte: 5 } }, { n: 6 }, /expected <= 5/);
    ok({ $$matchesHexBytes: "12ab" }, Buffer.from([0x12, 0xab]));
    bad({ $$matchesHexBytes: "12ab" }, Buffer.from([0x12]), /expected bytes 12ab/);
    ok({ $$matchAsDocument: { a: 1 } }, '{"a": 1}');
    bad({ $$matchAsDocument: { a: 1 } }, '{"a": 1, "b": 2}', /extra field/);
    ok({ $$matchAsDocument: { $$matchAsRoot: { a: 1 } } }, '{"a": 1, "b": 2}');
    ok({ x: { $$matchAsRoot: { a: 1 } } }, { x: { a: 1, b: 2 } });
  });

  test("an unknown $$ operator is a usage error, not a mismatch", () => {
    expect(() => match({ $$bogus: 1 }, 1)).toThrow(MatcherUsageError);
  });
});

describe("exact outcome comparison", () => {
  test("no extra fields even at the root, key order ignored, numbers by value", () => {
    expect(matchExact([{ _id: 1, x: 11 }], [{ x: new Int32(11), _id: 1 }])).toBeNull();
    expect(matchExact([{ _id: 1 }], [{ _id: 1, x: 11 }])).toMatch(/\$\[0\]: unexpected extra field\(s\) x/);
    expect(matchExact([{ _id: 1, x: 11 }], [{ _id: 1 }])).toMatch(/missing field\(s\) x/);
    expect(matchExact([{ _id: 1 }], [])).toMatch(/expected 1 element\(s\), got 0/);
    // special operators are plain data here
    expect(matchExact({ a: { $$exists: true } }, { a: 1 })).toMatch(/expected a document/);
  });
});

describe("runOnRequirements", () => {
  const info: ServerInfo = { version: [7, 0, 2], versionText: "7.0.2", topology: "single", serverless: false, auth: false };
  const noParams = async () => {
    throw new Error("getParameter unsupported");
  };

  test("version strings compare numerically per component", () => {
    expect(parseVersion("4.2")).toEqual([4, 2, 0]);
    expect(parseVersion("4.9.0-alpha4-271-g7d5cf02")).toEqual([4, 9, 0]);
    expect(compareVersions([4, 0, 10], [4, 0, 9])).toBe(1);
    expect(compareVersions([3, 6, 0], [4, 2, 0])).toBe(-1);
    expect(compareVersions([4, 2, 0], parseVersion("4.2"))).toBe(0);
  });

  test("any one satisfied requirement runs the test", async () => {
    expect(await requirementsUnmet(undefined, info, noParams)).toBeNull();
    expect(await requirementsUnmet([{ minServerVersion: "5.0" }], info, noParams)).toBeNull();
    expect(await requirementsUnmet([{ maxServerVersion: "4.4.99" }], info, noParams)).toMatch(/> maxServerVersion 4.4.99/);
    expect(await requirementsUnmet([{ minServerVersion: "8.0" }], info, noParams)).toMatch(/< minServerVersion 8.0/);
    expect(await requirementsUnmet([{ maxServerVersion: "7.99" }], info, noParams)).toBeNull();
    expect(
      await requirementsUnmet([{ minServerVersion: "4.0.0", topologies: ["single", "replicaset"] }, { minServerVersion: "4.2.0", topologies: ["sharded"] }], info, noParams),
    ).toBeNull();
    expect(await requirementsUnmet([{ topologies: ["sharded", "load-balanced"] }], info, noParams)).toMatch(/topology single/);
    expect(await requirementsUnmet([{ minServerVersion: "5.0", serverless: "forbid" }], info, noParams)).toBeNull();
    expect(await requirementsUnmet([{ serverless: "require" }], info, noParams)).toMatch(/serverless/);
    expect(await requirementsUnmet([{ auth: true }], info, noParams)).toMatch(/auth/);
    expect(await requirementsUnmet([{ serverParameters: { enableTestCommands: true } }], info, noParams)).toMatch(/unavailable/);
    expect(await requirementsUnmet([{ serverParameters: { n: 1 } }], info, async () => new Double(1))).toBeNull();
  });
});

describe("expectError assertions", () => {
  const entities: EntityLookup = { get: () => undefined, sessionLsid: () => undefined };
  const none = () => undefined;
  const serverError = () =>
    new MongoServerError({ message: "Command failed: 'update.let' is an unknown field", errmsg: "'update.let' is an unknown field", code: 40415, codeName: "Location40415", errorLabels: ["TransientTransactionError"] });

  test("server versus client errors", () => {
    expect(checkError({ isClientError: false }, serverError(), entities, none)).toBeNull();
    expect(checkError({ isClientError: true }, serverError(), entities, none)).toMatch(/expected a client error/);
    expect(checkError({ isClientError: true }, new TypeError("bad"), entities, none)).toBeNull();
    expect(checkError({ isError: true }, new Error("x"), entities, none)).toBeNull();
  });

  test("message, code, code name and labels", () => {
    expect(checkError({ errorContains: "UPDATE.LET' IS AN UNKNOWN" }, serverError(), entities, none)).toBeNull();
    expect(checkError({ errorContains: "nope" }, serverError(), entities, none)).toMatch(/containing "nope"/);
    expect(checkError({ errorCode: 40415 }, serverError(), entities, none)).toBeNull();
    expect(checkError({ errorCode: 8 }, serverError(), entities, none)).toMatch(/expected error code 8/);
    expect(checkError({ errorCode: 8 }, new Error("client"), entities, none)).toMatch(/got client error/);
    expect(checkError({ errorCodeName: "location40415" }, serverError(), entities, none)).toBeNull();
    expect(checkError({ errorLabelsContain: ["TransientTransactionError"] }, serverError(), entities, none)).toBeNull();
    expect(checkError({ errorLabelsOmit: ["TransientTransactionError"] }, serverError(), entities, none)).toMatch(/no error label/);
  });

  test("expectResult is matched against the result the error carries", () => {
    const result = () => ({ insertedCount: 2, upsertedIds: {} });
    expect(checkError({ isError: true, expectResult: { insertedCount: 2 } }, new Error("x"), entities, result)).toBeNull();
    expect(checkError({ isError: true, expectResult: { insertedCount: 3 } }, new Error("x"), entities, result)).toMatch(/insertedCount: expected 3, got 2/);
    expect(checkError({ isError: true, expectResult: { $$unsetOrMatches: { insertedCount: 3 } } }, new Error("x"), entities, none)).toBeNull();
  });

  test("unknown expectError fields are runner errors", () => {
    expect(() => checkError({ errorCodez: 1 }, new Error("x"), entities, none)).toThrow(/unsupported expectError field/);
  });
});

describe("Maps", () => {
  test("a Map (the driver's form of sort) matches as a document", () => {
    ok({ sort: { _id: -1 } }, { sort: new Map([["_id", -1]]) });
    bad({ sort: { _id: -1 } }, { sort: new Map([["_id", 1]]) }, /\$\.sort\._id: expected -1, got 1/);
    bad({ sort: { _id: -1 } }, { sort: new Map<string, number>([["_id", -1], ["x", 1]]) }, /unexpected extra field\(s\) x/);
    ok({ sort: { $$type: "object" } }, { sort: new Map() });
  });
});

import { describe, expect, test } from "bun:test";
import { Double, Int32, Long } from "bson";
import type { Document } from "bson";
import { createQuery } from "../../src/embedded-mongo/mingo";
import { compileFilter } from "../../src/embedded-mongo/query";
import { applyUpdate, applyUpdateGeneral, parseUpdate } from "../../src/embedded-mongo/update";

/**
 * The engine's shortcuts for hot filters and updates (a courier position's conditional
 * `{_id, fixAt: {$not: {$gte: date}}}` with `$set`/`$unset`) must give exactly what the general
 * path (mingo) gives, on documents with missing fields, arrays, other types and NaN.
 */
const t = (ms: number) => new Date(Date.UTC(2026, 0, 1) + ms);

const DOCS: Document[] = [
  { _id: "a" },
  { _id: "b", fixAt: t(0), n: 5 },
  { _id: "c", fixAt: t(1000), n: 7 },
  { _id: "d", fixAt: null, n: null },
  { _id: "e", fixAt: [t(0), t(5000)], n: [1, 9] },
  { _id: "f", fixAt: "2026-01-01T00:00:00.000Z", n: "5" },
  { _id: "g", fixAt: [], n: [] },
  { _id: "h", fixAt: t(1000), n: Number.NaN },
  { _id: "i", n: 5, fixAt: { at: t(0) } },
  { _id: "j", n: 5.5, fixAt: [[t(0)]] },
  { _id: "k", n: 5, fixAt: t(1000), nested: { fixAt: t(0) } },
];

const FILTERS: Document[] = [
  { _id: "b", fixAt: { $not: { $gte: t(1000) } } },
  { fixAt: { $not: { $gte: t(1000) } } },
  { fixAt: { $gte: t(1000) } },
  { fixAt: { $gt: t(0) } },
  { fixAt: { $lt: t(1000) } },
  { fixAt: { $lte: t(0) } },
  { fixAt: { $eq: t(1000) } },
  { fixAt: { $ne: t(1000) } },
  { fixAt: { $gte: t(0), $lt: t(1000) } },
  { fixAt: { $not: { $gt: t(0), $lte: t(5000) } } },
  { n: { $gt: 4 } },
  { n: { $gte: 5 } },
  { n: { $lt: 6 } },
  { n: { $lte: 5.5 } },
  { n: { $ne: 5 } },
  { n: { $eq: 5 } },
  { n: { $not: { $lt: 6 } } },
  { n: { $gt: 1, $lt: 9 } },
  { "nested.fixAt": { $not: { $gte: t(500) } } },
  { _id: "k", n: 5 },
  // Fast clauses beside ones only mingo decides (the filter is split; the top level is an AND).
  { n: { $gt: 4 }, $or: [{ fixAt: null }, { "nested.fixAt": { $exists: true } }] },
  { _id: "b", fixAt: { $exists: true } },
  { n: 5, fixAt: { $type: "date" } },
  { fixAt: { $lte: t(1000) }, $or: [{ n: 5 }, { n: 7 }] },
  { n: { $gte: 5 }, $and: [{ fixAt: { $ne: null } }] },
  { n: { $lt: 100 }, fixAt: { $not: { $type: "array" } }, $nor: [{ _id: "c" }] },
  { n: { $in: [5, 7] }, $expr: { $eq: ["$_id", "k"] } },
];

describe("fast filters match as mingo does", () => {
  for (const filter of FILTERS) {
    test(JSON.stringify(filter), () => {
      const fast = compileFilter(filter);
      const general = createQuery(filter);
      const got = DOCS.filter((d) => fast.test(d)).map((d) => d._id);
      const want = DOCS.filter((d) => general.test(d)).map((d) => d._id);
      expect(got).toEqual(want);
    });
  }
});

test("numbers compare as numbers whatever their BSON type, as on MongoDB (mingo would compare the wrapper objects)", () => {
  // The engine decodes Int32 and Double to plain numbers; a Long stays one beyond 2^53.
  const doc = { _id: 1, n: new Long(5), m: new Int32(7), d: new Double(5.5) };
  expect(compileFilter({ n: { $gte: 5 } }).test(doc)).toBe(true);
  expect(compileFilter({ m: { $gt: 6, $lt: 8 } }).test(doc)).toBe(true);
  expect(compileFilter({ d: { $not: { $gt: 5.5 } } }).test(doc)).toBe(true);
  expect(compileFilter({ n: { $ne: 5 } }).test(doc)).toBe(false);
});

const UPDATES: Document[] = [
  { $set: { position: { type: "Point", coordinates: [2.35, 48.85] }, fixAt: t(2000), lastSeenAt: t(2001) } },
  { $set: { heading: 90, fixAt: t(2000) }, $unset: { speedMps: "" } },
  { $unset: { n: "", missing: "" } },
  { $unset: { missing: "" } },
  { $set: { n: 5 } },
  { $set: { n: new Int32(5) } },
  { $set: { zeta: 1, alpha: 2, n: [1, 2] } },
  { $set: { fixAt: t(1000) }, $setOnInsert: { created: t(0) } },
];

describe("fast $set/$unset updates give the general path's document", () => {
  for (const u of UPDATES) {
    test(JSON.stringify(u), () => {
      const spec = parseUpdate(u);
      const before = DOCS.map((d) => Object.entries(d));
      for (const doc of DOCS) {
        const fast = applyUpdate(doc, spec);
        const general = applyUpdateGeneral(doc, spec);
        expect(fast.modified).toBe(general.modified);
        // Same fields in the same order with the same values (what gets stored and journaled).
        if (fast.modified) {
          expect(Object.entries(fast.doc)).toEqual(Object.entries(general.doc));
          expect(fast.doc).not.toBe(doc); // stored documents are never mutated in place
        }
      }
      expect(DOCS.map((d) => Object.entries(d))).toEqual(before);
    });
  }
});

// How much work a filter costs per document, counted rather than timed: an `$in` list is read
// once per query, not once per candidate (issue 12: 1,000 ids over 1,000 orders made the
// relay's reconciliation hold the engine for seconds and stalled every PATCH behind it).
import { describe, expect, test } from "bun:test";
import { ObjectId } from "mongodb";
import { applyProjection, compileFilter } from "../../src/embedded-mongo/query";

/** Values that count how often anything reads them (mingo's $in hashes every element per document). */
function counting<T extends object>(values: T[]): { list: T[]; reads: () => number } {
  let reads = 0;
  const list = values.map(
    (v) =>
      new Proxy(v, {
        get(target, prop) {
          reads++;
          const out: unknown = Reflect.get(target, prop, target);
          return typeof out === "function" ? out.bind(target) : out;
        },
      }),
  );
  return { list, reads: () => reads };
}

const docs = Array.from({ length: 200 }, (_, i) => ({ _id: new ObjectId(), i, version: i % 3, tags: [`t${i}`, "all"] }));

describe("$in of scalars", () => {
  test("the list is read when the filter is compiled, not again per document", () => {
    const ids = counting(docs.map((d) => d._id));
    const matcher = compileFilter({ _id: { $in: ids.list } });
    const afterCompile = ids.reads();
    const matched = docs.filter((d) => matcher.test(d));
    expect(ids.reads()).toBe(afterCompile);
    expect(matched).toHaveLength(200);
  });

  test("matches as MongoDB does: any value of a path through arrays, alongside equalities; an empty list matches nothing", () => {
    const pick = (filter: Record<string, unknown>) => docs.filter((d) => compileFilter(filter).test(d)).map((d) => d.i);
    expect(pick({ _id: { $in: [docs[3]._id, docs[7]._id, new ObjectId()] } })).toEqual([3, 7]);
    expect(pick({ _id: { $in: [docs[3]._id, docs[4]._id, docs[5]._id] }, version: 1 })).toEqual([4]);
    expect(pick({ tags: { $in: ["t10", "t11"] } })).toEqual([10, 11]);
    expect(pick({ tags: { $in: ["all"] } })).toHaveLength(200);
    expect(pick({ i: { $in: [] } })).toEqual([]);
    expect(pick({ i: { $in: [1.0, "1", true] } })).toEqual([1]);
    // Lists the fast path does not take (null matches a missing field) still go through mingo.
    expect(pick({ missing: { $in: [null] } })).toHaveLength(200);
    expect(pick({ i: { $in: [2, { $gt: 1 }] } })).toEqual([2]);
  });

  test("a projection without a positional part does not run the filter again", () => {
    const ids = counting(docs.map((d) => d._id));
    const projected = applyProjection(docs, { version: 1 }, { _id: { $in: ids.list } });
    expect(ids.reads()).toBe(0);
    expect(projected).toHaveLength(200);
    expect(projected[5]).toEqual({ _id: docs[5]._id, version: 2 });
    // A positional one still does (it needs the filter to find the element).
    expect(applyProjection([{ _id: 1, tags: ["a", "b", "c"] }], { "tags.$": 1 }, { tags: "b" })).toEqual([{ _id: 1, tags: ["b"] }]);
  });
});

// The unified-format runner itself, on small hand-written spec files against the embedded
// engine: it must report real failures (not pass vacuously), honour runOnRequirements, and the
// CLI must print one line per failing test and the final count line.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { embeddedTarget } from "../../scripts/mongo-spec/engine-target";
import { runSpecPaths, type Summary } from "../../scripts/mongo-spec/runner";

const REPO = resolve(import.meta.dir, "../..");
let dir: string;

const entities = [
  { client: { id: "client0", observeEvents: ["commandStartedEvent"] } },
  { database: { id: "database0", client: "client0", databaseName: "runner-db" } },
  { collection: { id: "collection0", database: "database0", collectionName: "coll0" } },
];
const initialData = [{ collectionName: "coll0", databaseName: "runner-db", documents: [{ _id: 1, x: 11 }, { _id: 2, x: 22 }] }];
const outcome = (docs: unknown[]) => [{ collectionName: "coll0", databaseName: "runner-db", documents: docs }];

const file = {
  description: "runner self-test",
  schemaVersion: "1.4",
  createEntities: entities,
  initialData,
  tests: [
    {
      description: "passes: insertOne, find, events and outcome",
      operations: [
        { name: "insertOne", object: "collection0", arguments: { document: { _id: 3, x: 33 } }, expectResult: { $$unsetOrMatches: { insertedId: { $$unsetOrMatches: 3 } } } },
        { name: "find", object: "collection0", arguments: { filter: { x: { $gt: 15 } }, sort: { _id: 1 } }, expectResult: [{ _id: 2, x: 22 }, { _id: 3, x: 33 }] },
      ],
      expectEvents: [{
        client: "client0",
        events: [
          { commandStartedEvent: { command: { insert: "coll0", documents: [{ _id: 3, x: 33 }] }, commandName: "insert", databaseName: "runner-db" } },
          { commandStartedEvent: { command: { find: "coll0", filter: { x: { $gt: 15 } } }, commandName: "find" } },
        ],
      }],
      outcome: outcome([{ _id: 1, x: 11 }, { _id: 2, x: 22 }, { _id: 3, x: 33 }]),
    },
    {
      description: "fails: wrong find result",
      operations: [{ name: "find", object: "collection0", arguments: { filter: { _id: 1 } }, expectResult: [{ _id: 1, x: 12 }] }],
    },
    {
      description: "fails: wrong outcome",
      operations: [{ name: "deleteOne", object: "collection0", arguments: { filter: { _id: 1 } }, expectResult: { deletedCount: 1 } }],
      outcome: outcome([{ _id: 1, x: 11 }, { _id: 2, x: 22 }]),
    },
    {
      description: "fails: expected error does not happen",
      operations: [{ name: "insertOne", object: "collection0", arguments: { document: { _id: 9 } }, expectError: { isError: true } }],
    },
    {
      description: "passes: duplicate key is a server error with its code",
      operations: [{ name: "insertOne", object: "collection0", arguments: { document: { _id: 1 } }, expectError: { isClientError: false, errorCode: 11000, errorContains: "duplicate key" } }],
    },
    {
      description: "fails: unexpected events",
      operations: [{ name: "countDocuments", object: "collection0", arguments: { filter: {} }, expectResult: 2 }],
      expectEvents: [{ client: "client0", events: [] }],
    },
    {
      description: "fails: unsupported argument",
      operations: [{ name: "find", object: "collection0", arguments: { filter: {}, bogusOption: 1 } }],
    },
    {
      description: "skipped: needs an old server",
      runOnRequirements: [{ maxServerVersion: "0.1" }],
      operations: [{ name: "find", object: "collection0", arguments: { filter: {} } }],
    },
  ],
};

const future = { description: "future schema", schemaVersion: "1.99", tests: [{ description: "cannot run", operations: [] }] };

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "mongo-spec-runner-"));
  writeFileSync(join(dir, "self.json"), JSON.stringify(file));
  writeFileSync(join(dir, "future.json"), JSON.stringify(future));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("unified runner", () => {
  let summary: Summary;
  const result = (d: string) => summary.results.find((r) => r.description === d);

  test("reports passes, failures with reasons, and skips", async () => {
    summary = await runSpecPaths([dir], { target: embeddedTarget });
    expect(summary.results).toHaveLength(9);
    expect(result("passes: insertOne, find, events and outcome")).toMatchObject({ status: "passed" });
    expect(result("passes: duplicate key is a server error with its code")).toMatchObject({ status: "passed" });
    expect(result("fails: wrong find result")?.reason).toMatch(/result mismatch: \$\[0\]\.x: expected 12, got 11/);
    expect(result("fails: wrong outcome")?.reason).toMatch(/outcome runner-db\.coll0: \$: expected 2 element\(s\), got 1/);
    expect(result("fails: expected error does not happen")?.reason).toMatch(/expected an error/);
    expect(result("fails: unexpected events")?.reason).toMatch(/expectEvents: client client0: expected 0 event\(s\), observed 1/);
    expect(result("fails: unsupported argument")?.reason).toMatch(/runner: find: unsupported argument bogusOption/);
    expect(result("skipped: needs an old server")).toMatchObject({ status: "skipped" });
    expect(result("cannot run")?.reason).toMatch(/schemaVersion 1.99 is not supported/);
    expect([summary.passed, summary.failed, summary.skipped]).toEqual([2, 6, 1]);
  });

  test("skipping events checks everything else", async () => {
    const s = await runSpecPaths([join(dir, "self.json")], { target: embeddedTarget, events: "skip", filter: "events" });
    expect(s.results.map((r) => [r.status, r.eventsSkipped])).toEqual([["passed", true], ["passed", true]]);
  });

  test("the CLI prints one line per failing test and the count line, exit code 1", async () => {
    const proc = Bun.spawn(["bun", "run", "scripts/mongo-spec.ts", join(dir, "self.json")], { cwd: REPO, stdout: "pipe", stderr: "pipe" });
    const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
    const lines = out.trim().split("\n");
    expect(lines.filter((l) => l.startsWith("FAIL self.json :: "))).toHaveLength(5);
    expect(lines.at(-1)).toBe("2 passed, 5 failed, 1 skipped");
    expect(code).toBe(1);
  }, 30_000);
});

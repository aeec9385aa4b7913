// MongoDB's own CRUD conformance tests (unified test format) against the embedded engine,
// through the official driver, one bun test per spec file. The spec files live outside the
// repository (their licence forbids copying them in); without them this file says so and passes.
import { describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { basename, resolve } from "node:path";
import { embeddedTarget } from "../../scripts/mongo-spec/engine-target";
import { failureLine, runSpecFile, specFiles, summarize, summaryLine, type TestResult } from "../../scripts/mongo-spec/runner";

const CRUD_DIR = resolve(import.meta.dir, "../../../shared/mongo-spec/crud");

if (!existsSync(CRUD_DIR)) {
  test("CRUD conformance suite (folder absent)", () => {
    console.log(`MongoDB CRUD conformance suite skipped: ${CRUD_DIR} is absent`);
    expect(existsSync(CRUD_DIR)).toBe(false);
  });
} else {
  describe("MongoDB unified CRUD conformance", () => {
    const files = specFiles(CRUD_DIR);
    const all: TestResult[] = [];

    test("the suite folder holds spec files", () => {
      expect(files.length).toBeGreaterThan(0);
    });

    for (const file of files) {
      test(basename(file), async () => {
        const results = await runSpecFile(file, { target: embeddedTarget });
        all.push(...results);
        const failures = results.filter((r) => r.status === "failed").map(failureLine);
        for (const line of failures) console.log(line);
        expect(results.length).toBeGreaterThan(0);
        expect(failures).toEqual([]);
      });
    }

    test("summary", () => {
      const summary = summarize(all);
      console.log(`mongo-spec ${CRUD_DIR}: ${summaryLine(summary)}`);
      expect(summary.failed).toBe(0);
      expect(summary.passed).toBeGreaterThan(0);
    });
  });
}

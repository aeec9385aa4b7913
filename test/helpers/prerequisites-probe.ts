// Run by test/prerequisites.test.ts as `bun test ./test/helpers/prerequisites-probe.ts` (not a
// *.test.ts file, so the suite itself does not pick it up): it passes only when the preload let it run.
import { expect, test } from "bun:test";

test("the preload let the run start", () => {
  expect(typeof Bun.version).toBe("string");
});

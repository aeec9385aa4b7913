import { afterAll, describe, expect, test } from "bun:test";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO_ROOT } from "../helpers/processes";

/**
 * The secret scan `.ci/run` runs (`bun run secrets`: secretlint with the committed
 * .secretlintrc.json): the tree passes, and a planted key, token or password literal fails it.
 */

const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

async function secretlint(args: string[]): Promise<{ code: number; out: string }> {
  const proc = Bun.spawn(["bun", "x", "secretlint", "--secretlintrc", join(REPO_ROOT, ".secretlintrc.json"), ...args], {
    cwd: REPO_ROOT,
    stdout: "pipe",
    stderr: "pipe",
  });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, out: out + err };
}

describe("secret scan (secretlint)", () => {
  test("the tree passes", async () => {
    const { code, out } = await secretlint(["src/**/*", "docker-compose.yml", "deploy/**/*", "Dockerfile"]);
    expect({ code, out }).toEqual({ code: 0, out: expect.any(String) });
  }, 60_000);

  test("a planted key, token or password literal fails it, each file is reported; a clean file passes", async () => {
    const dir = await mkdtemp(join(tmpdir(), "secret-scan-"));
    dirs.push(dir);
    const planted: Array<[string, string]> = [
      ["the old JWT constant", 'const DEV_JWT_SECRET = "dispatch-dev-secret-do-not-use-in-production";\n'],
      ["a password", 'export const config = { adminPassword: "correct-horse-battery" };\n'],
      ["an API key", "export const apiKey = `k3y-0123456789abcdef`;\n"],
      ["a GitHub token", 'export const gh = "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";\n'],
    ];
    for (const [i, [, text]] of planted.entries()) await writeFile(join(dir, `planted-${i}.ts`), text);
    await writeFile(join(dir, "clean.ts"), 'export const secret = process.env.JWT_SECRET;\nconst tokenTtl = "12h";\n');
    const { code, out } = await secretlint(planted.map((_, i) => join(dir, `planted-${i}.ts`)));
    expect(code).toBe(1);
    for (const [i, [what]] of planted.entries()) expect({ what, reported: out.includes(`planted-${i}.ts`) }).toEqual({ what, reported: true });
    expect((await secretlint([join(dir, "clean.ts")])).code).toBe(0);
  }, 60_000);
});

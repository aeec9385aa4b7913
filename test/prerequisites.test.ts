import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtemp, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * The preload (test/setup.ts) checks for redis-server and chromium before any test runs. Each case
 * runs `bun test` on a one-test probe in a child whose PATH holds only the programs we give it.
 */
const ROOT = join(import.meta.dir, "..");
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "dispatch-prereq-"));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** A PATH directory holding bun and the named programs (symlinks to the real ones). */
async function pathWith(name: string, programs: string[]): Promise<string> {
  const bin = join(dir, name);
  await Bun.$`mkdir -p ${bin}`;
  await symlink(process.execPath, join(bin, "bun"));
  for (const program of programs) {
    const real = Bun.which(program);
    if (!real) throw new Error(`${program} is not on this machine's PATH`);
    await symlink(real, join(bin, program));
  }
  return bin;
}

async function probe(path: string): Promise<{ code: number; stderr: string; stdout: string }> {
  const env: Record<string, string> = { HOME: process.env.HOME ?? "/tmp", PATH: path };
  const proc = Bun.spawn([join(path, "bun"), "test", "./test/helpers/prerequisites-probe.ts"], {
    cwd: ROOT,
    env,
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stdout, stderr };
}

/** The lines the preload wrote, without bun's own banner and file header. */
const ownLines = (stderr: string) => stderr.split("\n").filter((l) => l.trim() !== "" && !l.startsWith("bun test v") && !l.endsWith(".ts:"));

describe("bun test on a machine missing a prerequisite", () => {
  test("without redis-server and chromium: fails at once with one line naming both and how to install them", async () => {
    const { code, stderr, stdout } = await probe(await pathWith("none", []));
    expect(code).not.toBe(0);
    const lines = ownLines(stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain("apt-get install redis-server");
    expect(lines[0]).toContain("apt-get install chromium");
    expect(stderr + stdout).not.toContain("(pass)");
    expect(stderr).not.toMatch(/^\s+at /m);
  }, 30_000);

  test("without chromium only: the one line names chromium and CHROMIUM_PATH, not redis-server", async () => {
    const { code, stderr } = await probe(await pathWith("redis-only", ["redis-server"]));
    expect(code).not.toBe(0);
    const lines = ownLines(stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain("chromium");
    expect(lines[0]).toContain("CHROMIUM_PATH");
    expect(lines[0]).not.toContain("redis-server");
  }, 30_000);

  test("with both: the probe runs and passes", async () => {
    const { code, stderr } = await probe(await pathWith("both", ["redis-server", "chromium"]));
    expect(stderr).toContain("1 pass");
    expect(code).toBe(0);
  }, 30_000);
});

import { describe, expect, test } from "bun:test";
import { Failures, ratio, stats } from "../../scripts/bench/lib";
import { REPO_ROOT } from "../helpers/processes";

/**
 * Every benchmark runs here in its tiny mode (BENCH_TINY=1: a few requests each), so a change
 * that breaks one breaks the build; a benchmark whose requests fail exits non-zero.
 */
/** Two benchmarks at a time: they mostly wait on their servers, and tiny mode checks outcomes, not speed. */
const LANES = 2;
let running = 0;
const waiting: Array<() => void> = [];
async function inLane<T>(fn: () => Promise<T>): Promise<T> {
  while (running >= LANES) await new Promise<void>((resolve) => waiting.push(resolve));
  running++;
  try {
    return await fn();
  } finally {
    running--;
    waiting.shift()?.();
  }
}

async function runBench(name: string, timeoutMs: number): Promise<{ code: number | null; out: string; err: string }> {
  return inLane(async () => {
    const proc = Bun.spawn(["bun", "run", `scripts/bench/${name}.ts`], {
      cwd: REPO_ROOT,
      env: { ...process.env, BENCH_TINY: "1" },
      stdout: "pipe",
      stderr: "pipe",
    });
    const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
    const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    clearTimeout(timer);
    return { code, out, err };
  });
}

describe("benchmarks in tiny mode", () => {
  test.concurrent(
    "bench:api: transitions, /health and the raw commit side by side, no failed request",
    async () => {
      const r = await runBench("api", 100_000);
      expect({ code: r.code, err: r.err.slice(-1500) }).toEqual({ code: 0, err: expect.any(String) });
      expect(r.out).toContain("p50 ÷ (health + commit)");
      // Every row measured something: no "–" where a rate or a ratio belongs.
      const rows = r.out.split("\n").filter((l) => /^\| [12] +\|/.test(l));
      expect(rows.length).toBeGreaterThanOrEqual(2);
      for (const row of rows.slice(0, 2)) expect(row).not.toContain("–");
    },
    110_000,
  );

  test.concurrent(
    "bench:db: geo and single-document tables",
    async () => {
      const r = await runBench("db", 100_000);
      expect({ code: r.code, err: r.err.slice(-1500) }).toEqual({ code: 0, err: expect.any(String) });
      expect(r.out).toContain("findOneAndUpdate _id+version");
    },
    110_000,
  );

  test.concurrent(
    "bench:ws: fan-out on one and two instances (Redis) and the bare-Bun floor, every event delivered",
    async () => {
      const r = await runBench("ws", 140_000);
      expect({ code: r.code, err: r.err.slice(-1500) }).toEqual({ code: 0, err: expect.any(String) });
      expect(r.out).toContain("### Fan-out latency");
      expect(r.out).not.toMatch(/\| (\d+)\/(?!\1 )\d+ +\|/); // received / expected differ nowhere
      // The floor (a bare Bun server) ran beside dispatch and its spread ratio is a number, not "–".
      expect(r.out).toContain("### Fan-out against its floor");
      expect(r.out).toMatch(/^\| floor +\| 100 subscribers, one order +\| 1 +\|/m);
      expect(r.out).toMatch(/^\| 100 subscribers, one order +\| 1 +\| [\d.]+ \/ [\d.]+ +\| [\d.]+ \/ [\d.]+ +\| [\d.]+× +\|/m);
    },
    150_000,
  );
  test.concurrent(
    "bench:locations: couriers' fixes over WebSockets, forwarded to a follower, no error frame",
    async () => {
      const r = await runBench("locations", 100_000);
      expect({ code: r.code, err: r.err.slice(-1500) }).toEqual({ code: 0, err: expect.any(String) });
      expect(r.out).toContain("fixes per CPU-second");
      const rows = r.out.split("\n").filter((l) => /^\| (10|20) +\|/.test(l));
      expect(rows).toHaveLength(2);
      // Fixes of the followed couriers were forwarded (the sample is not empty); the idle baseline was measured.
      for (const row of rows) expect(row).toMatch(/\((?!0\))\d+\) +\| \d+ \/ \d+ +\| -?[\d.]+ +\|$/);
    },
    110_000,
  );
  test.concurrent(
    "bench:scale: interest and broadcast relays on a Redis Cluster, every watched message delivered",
    async () => {
      const r = await runBench("scale", 100_000);
      expect({ code: r.code, err: r.err.slice(-1500) }).toEqual({ code: 0, err: expect.any(String) });
      // Each interest instance received exactly what its sockets watch.
      const rows = r.out.split("\n").filter((l) => /^\| interest +\| 2 /.test(l));
      expect(rows).toHaveLength(2);
      for (const row of rows) expect(row).toContain("| 1.00× ");
    },
    110_000,
  );
});

describe("what the benchmarks share", () => {
  test("an empty sample has no percentiles and gives no ratio", () => {
    expect(stats([]).n).toBe(0);
    expect(Number.isNaN(stats([]).p50)).toBe(true);
    expect(ratio(stats([]).p50, 3)).toBe("–");
    expect(ratio(3, stats([]).p50)).toBe("–");
    expect(ratio(3, 0)).toBe("–");
    expect(ratio(3, 2)).toBe("1.50×");
    expect(stats([5, 1, 3])).toEqual({ n: 3, p50: 3, p99: 5, max: 5 });
  });

  test("failed requests make a benchmark exit non-zero, printing the first ones", async () => {
    const script = `import { Failures } from "./scripts/bench/lib"; const f = new Failures(2); f.add("PATCH /orders/1: 429 slow down"); f.add("second"); f.add("third"); f.exitIfAny("bench:x"); console.log("not reached");`;
    const proc = Bun.spawn(["bun", "-e", script], { cwd: REPO_ROOT, stdout: "pipe", stderr: "pipe" });
    const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    expect(code).toBe(1);
    expect(out).not.toContain("not reached");
    expect(err).toContain("3 request(s) failed");
    expect(err).toContain("PATCH /orders/1: 429 slow down");
    expect(err).not.toContain("third");
    const none = new Failures();
    none.exitIfAny("bench:y"); // returns: nothing failed
    expect(none.count).toBe(0);
  });
});

/**
 * What every benchmark shares so none can lie: failed requests are counted with their first
 * messages and make the run exit non-zero; statistics of an empty sample are NaN and ratios
 * built from them print "–", never a number.
 */
import { readFileSync } from "node:fs";

/** Set by `bun test` (test/scripts/bench.test.ts): every benchmark runs a few seconds only. */
export const TINY = process.env.BENCH_TINY === "1";

/** Failed requests of a run: counted, the first few kept verbatim. */
export class Failures {
  count = 0;
  readonly first: string[] = [];

  constructor(private readonly keep = 5) {}

  add(what: string): void {
    this.count++;
    if (this.first.length < this.keep) this.first.push(what);
  }

  merge(other: { count: number; first: string[] }): void {
    for (const f of other.first) if (this.first.length < this.keep) this.first.push(f);
    this.count += other.count;
  }

  /** Prints the first failures and exits non-zero when there were any; returns otherwise. */
  exitIfAny(bench: string): void {
    if (this.count === 0) return;
    process.stderr.write(`\n${bench}: ${this.count} request(s) failed; the first:\n${this.first.map((f) => `  - ${f}`).join("\n")}\n`);
    process.exit(1);
  }
}

export type Stats = { n: number; p50: number; p99: number; max: number };

/** Percentiles of a sample; NaN everywhere when it is empty. */
export function stats(values: number[]): Stats {
  if (values.length === 0) return { n: 0, p50: NaN, p99: NaN, max: NaN };
  const s = Float64Array.from(values).sort();
  const at = (p: number) => s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)];
  return { n: s.length, p50: at(0.5), p99: at(0.99), max: s[s.length - 1] };
}

export const fmt = (v: number, digits = 2): string => (Number.isFinite(v) ? v.toFixed(digits) : "–");

/** a ÷ b, or "–" when either side is missing, empty (NaN) or b is not positive. */
export function ratio(a: number, b: number, digits = 2, suffix = "×"): string {
  return Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(digits)}${suffix}` : "–";
}

export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
  return [line(header), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...rows.map(line)].join("\n");
}

/** CPU time (user + system) a process has used, in ms (clock ticks are 10 ms on Linux). */
export function cpuMsOf(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return NaN;
  }
}

/** Runs make(0..n-1) with at most `concurrency` in flight; results in index order. */
export async function inBatches<T>(n: number, concurrency: number, make: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, n) }, async () => {
      while (next < n) {
        const i = next++;
        out[i] = await make(i);
      }
    }),
  );
  return out;
}

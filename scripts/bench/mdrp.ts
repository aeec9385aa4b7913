/**
 * bun run bench:mdrp -- [--policy nearest|batched|both] [--estimated-ready] [--solutions DIR] [--json FILE]
 *                       [--workers N] [--set name=value ...] [DIR ...]
 *
 * Replays Meal Delivery Routing Problem instances (DIR: an instance folder or a folder of them; default
 * ../shared/mdrp/instances) through the dispatch policy module on a virtual clock and prints the MDRP
 * metrics per instance and over all, with `both` the ratio batched ÷ nearest measured in the same run.
 * `--set` overrides a batched parameter (e.g. --set intervalMinutes=3). Exits non-zero, printing the
 * first errors, when a replay fails or a solution breaks a rule of the problem.
 */
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { DEFAULT_BATCHED, type BatchedParams, type PolicyName, type PolicyParams } from "../../src/modules/couriers/planning";
import { checkSolution } from "./mdrp/check";
import { findInstances, loadInstance, MDRP_DATA_DIR } from "./mdrp/instance";
import { averageOver, metricsOf, pool, samplesOf, type MdrpMetrics, type MetricSamples } from "./mdrp/metrics";
import { replay } from "./mdrp/replay";
import { writeSolution } from "./mdrp/solutions";

/** The server's defaults (config.ts) for today's policy. */
const NEAREST = { radiusMeters: 8000, maxActive: 1 };
/** Mean click-to-door of the exact solutions of the 16 half-size seed-0 instances (Reyes et al., Table 4). */
const EXACT_SEED0_HALF = 30.67;
const TARGET_CLICK_TO_DOOR = 40;

type Row = { instance: string; policy: PolicyName; samples: MetricSamples; errors: string[] };

const { values, positionals } = parseArgs({
  args: Bun.argv.slice(2),
  allowPositionals: true,
  options: {
    policy: { type: "string", default: "both" },
    "estimated-ready": { type: "boolean", default: false },
    solutions: { type: "string" },
    json: { type: "string" },
    workers: { type: "string", default: "2" },
    set: { type: "string", multiple: true, default: [] },
    shard: { type: "string" },
    quiet: { type: "boolean", default: false },
  },
});

function fail(message: string): never {
  console.error(`bench:mdrp: ${message}`);
  process.exit(2);
}

const policies: PolicyName[] =
  values.policy === "both" ? ["nearest", "batched"] : values.policy === "nearest" || values.policy === "batched" ? [values.policy] : fail(`--policy must be nearest, batched or both (got ${values.policy})`);
const batched: BatchedParams = { ...DEFAULT_BATCHED };
for (const kv of values.set!) {
  const [key, raw] = kv.split("=");
  if (!key || !(key in batched) || raw === undefined || !Number.isFinite(Number(raw))) fail(`--set ${kv}: expected one of ${Object.keys(batched).join(", ")} = a number`);
  (batched as Record<string, number>)[key] = Number(raw);
}
const params: PolicyParams = { nearest: NEAREST, batched };
const dirs = findInstancesOrFail(positionals.length ? positionals : [MDRP_DATA_DIR]);
const workers = Math.max(1, Math.min(2, Number(values.workers) || 1));

function findInstancesOrFail(given: string[]): string[] {
  try {
    return findInstances(given);
  } catch (err) {
    fail(`${err instanceof Error ? err.message : String(err)} (the MDRP instances are expected in ../shared/mdrp/instances, see ../shared/mdrp/README.md)`);
  }
}

function runOne(dir: string): Row[] {
  const instance = loadInstance(dir);
  return policies.map((policy) => {
    const errors: string[] = [];
    try {
      const result = replay(instance, { policy, params, estimatedReady: values["estimated-ready"]! });
      errors.push(...checkSolution(result).slice(0, 5));
      if (values.solutions) writeSolution(values.solutions, result);
      return { instance: instance.name, policy, samples: samplesOf(result), errors };
    } catch (err) {
      errors.push(err instanceof Error ? err.stack ?? err.message : String(err));
      return { instance: instance.name, policy, samples: pool([]), errors };
    }
  });
}

async function runAll(): Promise<Row[]> {
  if (workers === 1 || dirs.length === 1) return dirs.flatMap(runOne);
  // Worker processes take every n-th instance; each prints its rows as one JSON line per instance.
  const forwarded = Bun.argv.slice(2).filter((a, i, all) => a !== "--json" && all[i - 1] !== "--json");
  const procs = Array.from({ length: workers }, (_, k) =>
    Bun.spawn([process.execPath, import.meta.path, ...forwarded, "--shard", `${k}/${workers}`, "--quiet"], { stdout: "pipe", stderr: "inherit" }),
  );
  const outputs = await Promise.all(procs.map(async (p) => ({ text: await new Response(p.stdout).text(), code: await p.exited })));
  const rows: Row[] = [];
  for (const { text, code } of outputs) {
    if (code !== 0) fail(`a worker process exited with ${code}`);
    for (const line of text.split("\n")) if (line.startsWith("{")) rows.push(...(JSON.parse(line) as { rows: Row[] }).rows);
  }
  const order = new Map(dirs.map((d, i) => [d.split("/").pop()!, i]));
  return rows.sort((a, b) => order.get(a.instance)! - order.get(b.instance)! || policies.indexOf(a.policy) - policies.indexOf(b.policy));
}

if (values.shard) {
  const [k, n] = values.shard.split("/").map(Number) as [number, number];
  for (const [i, dir] of dirs.entries()) if (i % n === k) console.log(JSON.stringify({ rows: runOne(dir) }));
  process.exit(0);
}

const started = performance.now();
const rows = await runAll();
const wallMs = performance.now() - started;

const fmt = (v: number, d = 2) => (Number.isFinite(v) ? v.toFixed(d) : "-");
const pct = (v: number) => (Number.isFinite(v) ? `${(100 * v).toFixed(2)} %` : "-");
function line(name: string, policy: string, m: MdrpMetrics & { undeliveredShare?: number }): string[] {
  return [
    name, policy, String(m.orders), `${m.undelivered} (${pct(m.undeliveredShare ?? m.undelivered / Math.max(1, m.orders))})`,
    fmt(m.clickToDoorMean), fmt(m.clickToDoorP90, 0), pct(m.overTargetShare), fmt(m.readyToPickupMean), fmt(m.readyToPickupP90, 0),
    pct(m.utilisation), `$${fmt(m.costPerOrder)}`, fmt(m.ordersPerBundle), fmt(m.wallMs / 1000, 1),
  ];
}
const header = ["instance", "policy", "orders", "undelivered", "ctd mean", "ctd p90", "over target", "r2p mean", "r2p p90", "utilisation", "cost/order", "orders/bundle", "wall s"];
function table(lines: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmtRow = (l: string[]) => "| " + l.map((c, i) => c.padEnd(widths[i]!)).join(" | ") + " |";
  return [fmtRow(header), "|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|", ...lines.map(fmtRow)].join("\n");
}

// Over all: the mean of the instances' figures (as the paper reports), and the orders pooled.
const overall = new Map<PolicyName, ReturnType<typeof averageOver>>();
const summary: string[][] = [];
const half0Of = (list: Row[]) => list.filter((r) => /^0[or]50/.test(r.instance));
for (const policy of policies) {
  const mine = rows.filter((r) => r.policy === policy);
  const m = averageOver(mine.map((r) => r.samples), TARGET_CLICK_TO_DOOR);
  overall.set(policy, m);
  summary.push(line(`all ${mine.length}`, policy, m));
  if (mine.length > 1) summary.push(line(`all ${mine.length} pooled`, policy, metricsOf(pool(mine.map((r) => r.samples)), TARGET_CLICK_TO_DOOR)));
  const half0 = half0Of(mine);
  if (half0.length) summary.push(line(`seed-0 half (${half0.length})`, policy, averageOver(half0.map((r) => r.samples), TARGET_CLICK_TO_DOOR)));
}
if (!values.quiet) {
  console.log(table(rows.map((r) => line(r.instance, r.policy, metricsOf(r.samples, TARGET_CLICK_TO_DOOR))).concat(summary)));
}
console.log(`\nbench:mdrp: ${dirs.length} instance(s), ${workers} worker process(es), wall ${(wallMs / 1000).toFixed(1)} s${values["estimated-ready"] ? ", estimated ready times" : ""}`);
console.log(table(summary));
const n = overall.get("nearest");
const b = overall.get("batched");
if (n && b) {
  console.log(
    `batched ÷ nearest: click-to-door ${fmt(b.clickToDoorMean / n.clickToDoorMean, 3)} (${pct(1 - b.clickToDoorMean / n.clickToDoorMean)} lower), ` +
      `undelivered ${b.undelivered} vs ${n.undelivered}, ready-to-pickup ${fmt(b.readyToPickupMean)} vs ${fmt(n.readyToPickupMean)} min`,
  );
}
if (b) {
  const half0 = half0Of(rows.filter((r) => r.policy === "batched"));
  const half0Mean = half0.length ? averageOver(half0.map((r) => r.samples), TARGET_CLICK_TO_DOOR).clickToDoorMean : NaN;
  console.log(
    `batched params: ${JSON.stringify(batched)}\n` +
      `targets (issue 14): ctd mean ${fmt(b.clickToDoorMean)} ≤ 34.0; undelivered ${pct(b.undeliveredShare)} ≤ 0.30 %; ` +
      `ready-to-pickup ${fmt(b.readyToPickupMean)} ≤ 2.5` +
      (half0.length ? `; seed-0 half ${fmt(half0Mean)} vs exact ${EXACT_SEED0_HALF} (${pct(half0Mean / EXACT_SEED0_HALF - 1)} above, target ≤ 5 %)` : ""),
  );
}
if (values.json) {
  writeFileSync(
    values.json,
    JSON.stringify(
      { wallMs, params, estimatedReady: values["estimated-ready"], overall: Object.fromEntries(overall), instances: rows.map((r) => ({ instance: r.instance, policy: r.policy, metrics: metricsOf(r.samples, TARGET_CLICK_TO_DOOR), errors: r.errors })) },
      null,
      2,
    ),
  );
}
const errors = rows.flatMap((r) => r.errors.map((e) => `${r.instance} ${r.policy}: ${e}`));
if (errors.length) {
  console.error(`bench:mdrp: ${errors.length} error(s); first ones:\n${errors.slice(0, 10).join("\n")}`);
  process.exit(1);
}

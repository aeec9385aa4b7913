// Chaos run: three server instances, the standalone embedded engine on a data dir and a
// redis-server under a load of customers, restaurants and couriers; meanwhile an instance is
// SIGKILLed and restarted, Redis is restarted, the engine is SIGKILLed and restarted on the
// same data dir, and a second instance is SIGKILLed. Then every order is checked (see
// scripts/chaos/check.ts and docs/reliability.md).
//
//   bun run chaos -- --minutes 2
//   bun run chaos -- --seconds 30 [--rate 1.5] [--couriers 14] [--customers 30] [--restaurants 6]
//                    [--drain-seconds 60] [--seed 11] [--instances 3] [--policy nearest|batched]
//                    [--keep-data] [--report FILE] [--logs DIR] [--quiet]
//
// Prints JSON lines while it runs (faults, load errors), then the counts as a table and the
// violations. Exit code: 0 with no violation, 1 otherwise, 2 when the run itself failed.

import { parseArgs } from "node:util";
import { writeFile } from "node:fs/promises";
import { reportTable, runChaos } from "./chaos/run";

const { values } = parseArgs({
  // `bun run chaos -- --minutes 2` may pass the `--` through.
  args: process.argv.slice(2).filter((a) => a !== "--"),
  options: {
    minutes: { type: "string" },
    seconds: { type: "string" },
    "drain-seconds": { type: "string" },
    rate: { type: "string" },
    restaurants: { type: "string" },
    couriers: { type: "string" },
    customers: { type: "string" },
    seed: { type: "string" },
    instances: { type: "string" },
    "keep-data": { type: "boolean", default: false },
    report: { type: "string" },
    logs: { type: "string" },
    quiet: { type: "boolean", default: false },
    "ignore-share": { type: "string" },
    policy: { type: "string", default: "nearest" },
  },
  strict: true,
});

function num(v: string | undefined, name: string, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min || n > max) {
    process.stderr.write(`chaos: --${name} must be a number in [${min}, ${max}]\n`);
    process.exit(2);
  }
  return n;
}

/**
 * `--policy batched` runs the planner (a lease in the database, one round a second) instead of
 * per-order offers; the load's kitchens take seconds, so ready times are learnt from 0 minutes.
 */
function policyEnv(policy: string | undefined): Record<string, string> {
  if (policy === "nearest") return {};
  if (policy === "batched") return { DISPATCH_POLICY: "batched", DISPATCH_INTERVAL_SECONDS: "1", READY_DEFAULT_MINUTES: "0" };
  process.stderr.write(`chaos: --policy must be nearest or batched (got ${policy})\n`);
  process.exit(2);
}

const seconds = num(values.seconds, "seconds", 5, 24 * 3600) ?? (num(values.minutes, "minutes", 0.1, 24 * 60) ?? 2) * 60;
const print = (line: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(line)}\n`);
const controller = new AbortController();
let interrupted = false;
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    if (interrupted) process.exit(130); // a second Ctrl-C: the exit hook still SIGKILLs the children
    interrupted = true;
    process.stderr.write(`chaos: ${sig}, stopping every process…\n`);
    controller.abort();
  });
}

const load: Record<string, number> = {};
for (const [flag, key] of [
  ["rate", "ordersPerSecond"],
  ["restaurants", "restaurants"],
  ["couriers", "couriers"],
  ["customers", "customers"],
  ["seed", "seed"],
  ["ignore-share", "ignoreShare"],
] as const) {
  const n = num(values[flag], flag, flag === "rate" || flag === "ignore-share" ? 0 : 1, flag === "ignore-share" ? 1 : 100_000);
  if (n !== undefined) load[key] = n;
}

try {
  const report = await runChaos({
    durationMs: seconds * 1000,
    drainMs: (num(values["drain-seconds"], "drain-seconds", 1, 3600) ?? 60) * 1000,
    instances: num(values.instances, "instances", 2, 10) ?? 3,
    load,
    serverEnv: policyEnv(values.policy),
    keepData: values["keep-data"],
    ...(values.logs ? { logDir: values.logs } : {}),
    log: values.quiet ? () => undefined : print,
    signal: controller.signal,
  });
  const args = process.argv.slice(2).filter((a) => a !== "--");
  process.stdout.write(`\nchaos run ${report.startedAt}: bun run chaos -- ${args.join(" ")}\n${reportTable(report)}\n`);
  for (const o of report.stuck.slice(0, 50)) {
    process.stdout.write(`OPEN order ${o.orderId} (${o.serverCaused ? "server" : "load"}): ${o.state}; why: ${o.reason}\n`);
  }
  for (const v of report.violations.slice(0, 50)) process.stdout.write(`VIOLATION ${v.kind}${v.orderId ? ` order ${v.orderId}` : ""}: ${v.detail}\n`);
  if (report.violations.length > 50) process.stdout.write(`… and ${report.violations.length - 50} more\n`);
  if (values.report) await writeFile(values.report, JSON.stringify(report, null, 2));
  process.exit(report.violations.length === 0 ? 0 : 1);
} catch (err) {
  process.stderr.write(`chaos: ${interrupted ? "interrupted" : "run failed"}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(interrupted ? 130 : 2);
}

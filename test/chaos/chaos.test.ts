import { afterAll, expect, test } from "bun:test";
import { runChaos, reportTable, type ChaosReport } from "../../scripts/chaos/run";
import { stopAllProcesses } from "../helpers/processes";

/**
 * A short chaos run (the long one is `bun run chaos -- --minutes 2`): three server processes,
 * the standalone engine on a data dir and a redis-server under a load of customers,
 * restaurants and couriers; an instance is SIGKILLed and restarted, Redis is restarted, the
 * engine is SIGKILLed and restarted on its data dir, a second instance is SIGKILLed. Every
 * order must then replay through the machine, keep every acknowledged write, and every
 * watcher must have received exactly its order's events.
 */
afterAll(async () => {
  await stopAllProcesses();
});

test("chaos: kills and restarts of instances, Redis and the engine lose nothing", async () => {
  const verbose = process.env.CHAOS_VERBOSE === "1";
  const report: ChaosReport = await runChaos({
    durationMs: 12_000,
    drainMs: 20_000,
    instances: 3,
    // More restaurants that let the accept timeout fire than by default, so timers fire in a short run too.
    load: { ordersPerSecond: 2, customers: 20, couriers: 12, restaurants: 5, seed: 5, ignoreShare: 0.12 },
    serverEnv: {},
    keepData: false,
    log: verbose ? (line) => process.stderr.write(`${JSON.stringify(line)}\n`) : () => undefined,
  });
  if (verbose || report.violations.length > 0) {
    process.stderr.write(`${reportTable(report)}\n`);
    for (const v of report.violations) process.stderr.write(`VIOLATION ${v.kind} ${v.orderId ?? ""}: ${v.detail}\n`);
    for (const e of report.evidence) process.stderr.write(`${JSON.stringify(e, null, 1)}\n`);
  }
  expect(report.violations).toEqual([]);
  // The run did real work under real faults.
  expect(report.orders).toBeGreaterThan(12);
  expect(report.transitions).toBeGreaterThan(80);
  expect(report.acknowledged).toBeGreaterThan(60);
  expect(report.kills).toBeGreaterThanOrEqual(1);
  expect(report.instanceRestarts).toBe(report.kills);
  expect(report.redisRestarts).toBe(1);
  expect(report.engineRestarts).toBe(1);
  expect(report.engineRecoveryMs).not.toBeNull();
  expect(report.resumes).toBeGreaterThanOrEqual(1);
  expect(report.timersFired).toBeGreaterThanOrEqual(1);
  expect(report.load.gaveUp).toBe(0);
  expect(report.load.unexpected).toBe(0);
  expect(report.openAtEnd).toBe(0);
  expect(report.stuck).toEqual([]);
  // Restaurant and courier topics were followed too (one watcher per restaurant and per courier).
  expect(report.feedWatchers).toBe(5 + 12);
}, 120_000);

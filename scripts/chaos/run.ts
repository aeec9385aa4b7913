// One chaos run: start the cluster, set up the load, place orders while killing and restarting
// an instance, Redis and the engine, drain, then read every order back and check it.

import { MongoClient } from "mongodb";
import { check, type CheckResult, type StuckOrder, type Violation } from "./check";
import { Cluster, CHAOS_ADMIN, chaosServerEnv } from "./cluster";
import { Load, type LoadCounts, type LoadOptions } from "./load";

export type ChaosOptions = {
  /** How long orders are placed (the faults happen inside this window). */
  durationMs: number;
  /** Then open orders get at most this long to finish. */
  drainMs: number;
  instances: number;
  load: Partial<Omit<LoadOptions, "log">>;
  /** Extra server environment (overrides chaosServerEnv). */
  serverEnv: Record<string, string>;
  /** Keep the engine's data dir (and print where it is). */
  keepData: boolean;
  /** Write every server process's log lines to this directory at the end. */
  logDir?: string;
  log: (line: Record<string, unknown>) => void;
  /** Set by the caller on Ctrl-C: the run stops where it is and cleans up. */
  signal?: AbortSignal;
};

export type ChaosReport = {
  startedAt: string;
  durationMs: number;
  orders: number;
  transitions: number;
  acknowledged: number;
  timersFired: number;
  offersSeen: number;
  kills: number;
  instanceRestarts: number;
  redisRestarts: number;
  engineRestarts: number;
  /** Instances that came back after Redis / the engine returned (relay reconnected, /ready 200). */
  serverReconnects: number;
  /** Client WebSockets re-opened on another instance after theirs died. */
  wsReconnects: number;
  /** Order watchers that subscribed again with `since` on a new connection. */
  resumes: number;
  watchers: number;
  engineRecoveryMs: number | null;
  openAtEnd: number;
  /** Every order open at the end of the drain, with its last state and why (server-caused ones are violations too). */
  stuck: StuckOrder[];
  /** Restaurant and courier topic watchers checked. */
  feedWatchers: number;
  load: LoadCounts;
  loadErrors: string[];
  violations: Violation[];
  /** For the first orders with a violation: their history and what their watchers saw. */
  evidence: Array<{ orderId: string; history: unknown; watches: unknown; feeds: unknown; notes: unknown }>;
  timeline: Array<{ at: number; what: string; detail?: Record<string, unknown> }>;
};

type Fault = { at: number; fault: "kill" | "redis" | "engine"; instance?: number };

/**
 * Faults at fractions of the placing window, one after the other. A long run kills every
 * instance once and Redis twice; a short one (under a minute) does each kind once.
 */
export function faultPlan(durationMs: number): Fault[] {
  if (durationMs < 60_000) {
    return [
      { at: 0.12, fault: "kill", instance: 0 },
      { at: 0.35, fault: "redis" },
      { at: 0.55, fault: "engine" },
      { at: 0.78, fault: "kill", instance: 1 },
    ];
  }
  return [
    { at: 0.1, fault: "kill", instance: 0 },
    { at: 0.25, fault: "redis" },
    { at: 0.4, fault: "kill", instance: 1 },
    { at: 0.55, fault: "engine" },
    { at: 0.72, fault: "kill", instance: 2 },
    { at: 0.88, fault: "redis" },
  ];
}

export async function runChaos(opts: ChaosOptions): Promise<ChaosReport> {
  const startedAt = new Date().toISOString();
  const env = chaosServerEnv(opts.serverEnv);
  const cluster = new Cluster(opts.instances, env, opts.log);
  const load = new Load(cluster, { ...opts.load, log: opts.log });
  let engineRecoveryMs: number | null = null;
  let engineNotReady: string[] = [];
  const aborted = () => opts.signal?.aborted === true;
  try {
    await cluster.start();
    opts.log({ event: "cluster up", instances: cluster.live().map((p) => ({ id: p.instanceId, url: p.url })), mongo: cluster.mongoUri });
    await load.setup();
    opts.log({ event: "load ready" });

    const t0 = performance.now();
    const placing = load.place(t0 + opts.durationMs);
    const faults = (async () => {
      // Long runs keep the engine down past the driver's 5 s server selection: requests then fail and are retried.
      const engineDownMs = Math.min(6_000, Math.max(1_500, opts.durationMs * 0.05));
      for (const step of faultPlan(opts.durationMs)) {
        const wait = t0 + step.at * opts.durationMs - performance.now();
        if (wait > 0) await Bun.sleep(wait);
        if (aborted()) return;
        if (step.fault === "kill") {
          // The instance with the most open watches, so its death makes clients resume.
          const busiest = load.busiestInstance();
          const index = cluster.instances.findIndex((i) => i.proc?.instanceId === busiest);
          await cluster.killAndRestartInstance(index >= 0 ? index : (step.instance ?? 0), 1_500);
        }
        else if (step.fault === "redis") await cluster.restartRedis(1_500);
        else {
          const r = await cluster.restartEngine(engineDownMs);
          engineRecoveryMs = r.recoveredMs;
          engineNotReady = r.notReady;
        }
      }
    })();
    const abort = new Promise<void>((resolve) => opts.signal?.addEventListener("abort", () => resolve(), { once: true }));
    await Promise.race([Promise.all([placing, faults]), abort]);
    if (aborted()) throw new Error("aborted");
    opts.log({ event: "placing over", orders: load.known.size });

    const open = await Promise.race([load.drain(opts.drainMs), abort.then(() => [] as string[])]);
    if (aborted()) throw new Error("aborted");
    const idleCouriersAtEnd = load.idleCouriers();
    opts.log({ event: "drained", open: open.length, idleCouriers: idleCouriersAtEnd });
    // Every instance up and answering before the final reads.
    await cluster.waitReady(15_000);

    const admin = await load.login(CHAOS_ADMIN.email, CHAOS_ADMIN.password);
    let orders = await load.allOrders(admin);
    await load.settleWatches(new Map(orders.map((o) => [o.id, o.version])), 10_000);
    await load.settleFeeds(orders, 10_000);
    await load.stop();
    // Read again: nothing may have moved after the load stopped but timers (none should be left).
    orders = await load.allOrders(admin);

    const overdueTimers = await readOverdueTimers(cluster.mongoUri, cluster.databaseName, Number(env.TIMER_LEASE_MS) + 5_000);
    const result: CheckResult = check({
      orders,
      owners: load.owners,
      acks: load.acks,
      watches: load.watches(),
      offers: load.offers,
      overdueTimers,
      feeds: load.feedWatches(),
      notes: load.notes,
      idleCouriersAtEnd,
      config: {
        acceptTimeoutMs: Number(env.ACCEPT_TIMEOUT_SECONDS) * 1000,
        offerTtlMs: Number(env.OFFER_TTL_SECONDS) * 1000,
        courierMaxActive: Number(env.COURIER_MAX_ACTIVE),
      },
    });
    // An order the load placed and was told about must be in the list (an acked one missing is already a violation).
    const listed = new Set(orders.map((o) => o.id));
    for (const id of load.known.keys()) {
      if (!listed.has(id)) result.violations.push({ kind: "order-missing", orderId: id, detail: "the load heard of it, the server does not list it" });
    }
    for (const id of engineNotReady) result.violations.push({ kind: "no-reconnect", detail: `instance not ready within 30 s of the engine restart: ${id}` });

    const badOrders = [...new Set(result.violations.flatMap((v) => (v.orderId ? [v.orderId] : [])))].slice(0, 20);
    const evidence = badOrders.map((id) => ({
      orderId: id,
      history: orders.find((o) => o.id === id)?.history.map((e) => `${e.seq} ${e.at} ${e.event} → ${e.status} by ${e.by.role}:${e.by.id}${e.reason ? ` (${e.reason})` : ""}`),
      watches: load.watches().filter((w) => w.orderId === id).map((w) => ({ watcher: w.watcher, firstSeq: w.firstSeq, trace: w.trace })),
      feeds: result.violations
        .filter((v) => v.kind === "feed-stream" && v.orderId === id)
        .map((v) => load.feedWatches().find((f) => v.detail.startsWith(f.topic + " ")))
        .flatMap((f) => (f ? [{ topic: f.topic, resumes: f.resumes, trace: f.trace, received: f.received.filter((r) => r.orderId === id) }] : [])),
      notes: load.notes.get(id) ?? [],
    }));
    if (opts.logDir) await cluster.writeLogs(opts.logDir);

    const relayReconnects = cluster.serverLines((l) => l.msg === "redis relay reconnected").length;
    const readyAfterEngine = engineRecoveryMs === null ? 0 : cluster.live().length;
    return {
      startedAt,
      durationMs: opts.durationMs,
      orders: result.orders,
      transitions: result.transitions,
      acknowledged: result.acksChecked,
      timersFired: result.timersFired,
      offersSeen: load.counts.offersSeen,
      kills: cluster.count("instance SIGKILL"),
      instanceRestarts: cluster.count("instance restarted"),
      redisRestarts: cluster.count("redis restarted"),
      engineRestarts: cluster.count("engine restarted"),
      serverReconnects: relayReconnects + readyAfterEngine,
      wsReconnects: load.counts.wsReconnects,
      resumes: load.counts.watchResumes,
      watchers: result.watchesChecked,
      engineRecoveryMs,
      openAtEnd: orders.filter((o) => !["delivered", "cancelled", "rejected"].includes(o.status)).length,
      stuck: result.stuck,
      feedWatchers: result.feedsChecked,
      load: load.counts,
      loadErrors: load.errors,
      violations: result.violations,
      evidence,
      timeline: cluster.events,
    };
  } finally {
    await load.stop().catch(() => undefined);
    await cluster.stop({ keepData: opts.keepData });
    if (opts.keepData) opts.log({ event: "data kept", dataDir: cluster.dataDirectory });
  }
}

/** Orders whose earliest timer is overdue by more than `graceMs`: a deadline nobody fired. */
async function readOverdueTimers(uri: string, dbName: string, graceMs: number): Promise<Array<{ orderId: string; kind: string; dueAt: string }>> {
  const client = new MongoClient(uri, { serverSelectionTimeoutMS: 5_000 });
  try {
    await client.connect();
    const cutoff = new Date(Date.now() - graceMs);
    const docs = await client
      .db(dbName)
      .collection("orders")
      .find({ timerPending: true, nextTimerAt: { $lt: cutoff } }, { projection: { timers: 1 } })
      .toArray();
    return docs.flatMap((d) =>
      ((d.timers ?? []) as Array<{ kind: string; dueAt: Date }>)
        .filter((t) => t.dueAt < cutoff)
        .map((t) => ({ orderId: String(d._id), kind: t.kind, dueAt: t.dueAt.toISOString() })),
    );
  } finally {
    await client.close();
  }
}

/** The counts as a two-column table. */
export function reportTable(r: ChaosReport): string {
  const rows: Array<[string, string | number]> = [
    ["orders", r.orders],
    ["transitions", r.transitions],
    ["acknowledged writes", r.acknowledged],
    ["timers fired", r.timersFired],
    ["offers seen", r.offersSeen],
    ["instance kills (SIGKILL)", r.kills],
    ["instance restarts", r.instanceRestarts],
    ["redis restarts", r.redisRestarts],
    ["engine restarts (SIGKILL)", r.engineRestarts],
    ["engine recovery (all ready)", r.engineRecoveryMs === null ? "never" : `${r.engineRecoveryMs} ms`],
    ["server reconnects", r.serverReconnects],
    ["client ws reconnects", r.wsReconnects],
    ["watch resumes (since)", r.resumes],
    ["watchers checked (order topics)", r.watchers],
    ["watchers checked (restaurant, courier topics)", r.feedWatchers],
    ["request retries", r.load.retries],
    ["writes applied, answer lost", r.load.appliedWithoutAck],
    ["load gave up / errors", `${r.load.gaveUp} / ${r.load.unexpected}`],
    ["open at end (server-caused)", `${r.openAtEnd} (${r.stuck.filter((x) => x.serverCaused).length})`],
    ["violations", r.violations.length],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  const v = Math.max(...rows.map(([, x]) => String(x).length));
  const line = `+${"-".repeat(w + 2)}+${"-".repeat(v + 2)}+`;
  return [line, ...rows.map(([k, x]) => `| ${k.padEnd(w)} | ${String(x).padStart(v)} |`), line].join("\n");
}

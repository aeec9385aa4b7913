/**
 * bench:scale — what one instance pays for the rest of the deployment, on a local Redis Cluster
 * (3 masters, 3 replicas), with 1, 2 and 4 server instances, interest routing
 * (RELAY_MODE=interest) and the broadcast design (RELAY_MODE=broadcast) side by side in one run.
 *
 * Set-up: a standalone embedded engine, ORDERS orders placed over HTTP; each instance has one
 * WebSocket client subscribed to 1/N of the orders (order k on instance k mod N). Load: an
 * open-loop generator acting as one more instance publishes committed-change envelopes (and one
 * courier position per CHANGE_PER_POSITION changes, on the order's topic) at fixed rates through
 * the same relay class the servers use, so each server does exactly the relay work it does in
 * production for a change committed elsewhere: receive, parse, sequence, fan out to its sockets.
 * Writes through HTTP and MongoDB are not part of it (bench:api measures those).
 *
 * Per instance: relay messages received (its /metrics), the messages of the topics its sockets
 * watch, CPU seconds per 1,000 deployment changes (/proc; the instance's idle CPU, measured for
 * 2 s just before, is subtracted), fan-out p50/p99 (generator send to client receipt, one host
 * clock; the clients run in this process, beside the generator). Stops by itself, prints tables, exits non-zero when a watched
 * message did not arrive or a request failed.
 *
 * The reference, side by side: Socket.IO 4 with @socket.io/redis-adapter's sharded adapter in
 * `dynamic` mode on the same cluster (scripts/bench/reference/scale-server.mjs; `npm ci` there
 * first, as bench:ws does), the same schedule emitted by one more Socket.IO server. It has no
 * relay counter, so its "received" column is "–".
 *
 * Each mode and instance count first runs one unmeasured second at the first rate (warm-up).
 * Env: BENCH_SCALE_SECONDS (per rate, default 4), BENCH_SCALE_RATES ("500,2000"),
 * BENCH_SCALE_INSTANCES ("1,2,4"), BENCH_SCALE_ORDERS (default 240), BENCH_TINY=1 (a second).
 */
import { existsSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { createLogger } from "../../src/log";
import { topics } from "../../src/events/topics";
import type { OrderChange } from "../../src/events/change";
import { InterestEventBus } from "../../src/realtime/interest-relay";
import { RedisEventBus } from "../../src/realtime/redis-relay";
import type { RedisTarget } from "../../src/redis";
import { startServerProcess, startSharedDatabase, stopAllProcesses, type ServerProcess } from "../../test/helpers/processes";
import { startRedisCluster } from "../../test/helpers/redis-cluster";
import { join } from "node:path";
import { REPO_ROOT, spawnManaged, type ManagedProcess } from "../../test/helpers/processes";
import { Failures, TINY, cpuMsOf, fmt, ratio, stats, table } from "./lib";

const REFERENCE = join(REPO_ROOT, "scripts/bench/reference/scale-server.mjs");

/** A reference instance (Node + Socket.IO sharded adapter) on a free port. */
async function startReference(name: string, nodes: string): Promise<{ proc: ManagedProcess; port: number }> {
  const proc = spawnManaged(name, ["node", REFERENCE], { ROLE: "server", PORT: "0", REDIS_CLUSTER_NODES: nodes });
  const line = await proc.waitForLine((l) => l.msg === "listening", 30_000);
  return { proc, port: line.port as number };
}

const SECONDS = Number(process.env.BENCH_SCALE_SECONDS ?? (TINY ? 1 : 4));
const RATES = (process.env.BENCH_SCALE_RATES ?? (TINY ? "200" : "500,2000")).split(",").map(Number);
const COUNTS = (process.env.BENCH_SCALE_INSTANCES ?? (TINY ? "2" : "1,2,4")).split(",").map(Number);
const ORDERS = Number(process.env.BENCH_SCALE_ORDERS ?? (TINY ? 24 : 240));
const CHANGE_PER_POSITION = 4;
const MODES = ["interest", "broadcast", "socket.io"] as const;
type Mode = (typeof MODES)[number];
/** BENCH_SCALE_MODES narrows the run (default: all three; tiny mode: the two dispatch relays). */
const MODES_RUN = (process.env.BENCH_SCALE_MODES ?? (TINY ? "interest,broadcast" : MODES.join(","))).split(",") as Mode[];
const JWT_SECRET = "bench-scale-secret-0123456789abcdef";
const ADMIN = { email: "admin@scale.test", password: "bench-admin-password" };

const failures = new Failures();
const progress = (msg: string) => process.stderr.write(`bench:scale: ${msg}\n`);

type User = { token: string; id: string };
async function http(base: string, method: string, path: string, who?: User, body?: unknown): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = {};
  if (who) headers.authorization = `Bearer ${who.token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  const parsed = text && res.headers.get("content-type")?.includes("json") ? JSON.parse(text) : text;
  if (res.status >= 400) failures.add(`${method} ${path}: ${res.status} ${text.slice(0, 200)}`);
  return { status: res.status, body: parsed };
}

async function metric(instance: ServerProcess, name: string): Promise<number> {
  const text = await (await fetch(`${instance.url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(" ")[1]) : 0;
}

/** One instance's subscriber: a WebSocket on the order topics it watches, timing each message. */
class Watcher {
  readonly latencies: number[] = [];
  received = 0;
  private constructor(readonly ws: WebSocket) {}

  static async open(instance: ServerProcess, token: string, orderIds: string[]): Promise<Watcher> {
    const ws = new WebSocket(`${instance.wsUrl}?token=${token}`);
    const watcher = new Watcher(ws);
    let subscribed = 0;
    const allSubscribed = new Promise<void>((resolve, reject) => {
      ws.onmessage = (e) => {
        const frame = JSON.parse(String(e.data)) as { type: string; sentAt?: number; at?: string; lat?: number };
        if (frame.type === "subscribed") {
          if (++subscribed === orderIds.length) resolve();
          return;
        }
        if (frame.type === "error") return reject(new Error(`subscribe failed: ${String(e.data)}`));
        watcher.received++;
        // Changes carry the generator's send time in `at`; positions in their own `sentAt`.
        const sent = typeof frame.sentAt === "number" ? frame.sentAt : frame.at ? Date.parse(frame.at) : NaN;
        if (Number.isFinite(sent)) watcher.latencies.push(Date.now() - sent);
      };
      ws.onerror = () => reject(new Error("websocket failed"));
    });
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve();
      setTimeout(() => reject(new Error("websocket did not open")), 10_000);
    });
    for (const id of orderIds) ws.send(JSON.stringify({ op: "subscribe", topic: topics.order(id) }));
    await Promise.race([allSubscribed, Bun.sleep(30_000).then(() => Promise.reject(new Error("subscribes not answered within 30 s")))]);
    return watcher;
  }

  reset(): void {
    this.latencies.length = 0;
    this.received = 0;
  }
}

/**
 * A Socket.IO subscriber speaking Engine.IO v4 over a plain WebSocket (as bench:ws does): `40`
 * to connect the namespace, `42N["subscribe",topic]` with an ack per room, `3` for each ping.
 */
class SioWatcher {
  readonly latencies: number[] = [];
  received = 0;
  private constructor(readonly ws: WebSocket) {}

  static async open(port: number, orderIds: string[]): Promise<SioWatcher> {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/socket.io/?EIO=4&transport=websocket`);
    const watcher = new SioWatcher(ws);
    let acked = 0;
    let connected!: () => void;
    const isConnected = new Promise<void>((r) => (connected = r));
    const allAcked = new Promise<void>((resolve) => {
      ws.onmessage = (e) => {
        const data = String(e.data);
        if (data === "2") return ws.send("3");
        if (data.startsWith("0")) return ws.send("40");
        if (data.startsWith("40")) return connected();
        if (data.startsWith("43")) {
          if (++acked === orderIds.length) resolve();
          return;
        }
        if (!data.startsWith("42")) return;
        const [, frame] = JSON.parse(data.slice(2)) as [string, { sentAt?: number; at?: string }];
        watcher.received++;
        const sent = typeof frame.sentAt === "number" ? frame.sentAt : frame.at ? Date.parse(frame.at) : NaN;
        if (Number.isFinite(sent)) watcher.latencies.push(Date.now() - sent);
      };
    });
    await Promise.race([isConnected, Bun.sleep(10_000).then(() => Promise.reject(new Error("socket.io did not connect")))]);
    for (const [i, id] of orderIds.entries()) ws.send(`42${i}${JSON.stringify(["subscribe", topics.order(id)])}`);
    await Promise.race([allAcked, Bun.sleep(30_000).then(() => Promise.reject(new Error("socket.io subscribes not acknowledged within 30 s")))]);
    return watcher;
  }

  reset(): void {
    this.latencies.length = 0;
    this.received = 0;
  }
}

/** An instance's connections, counted as one subscriber. */
class WatcherGroup {
  constructor(private readonly members: Array<Watcher | SioWatcher>) {}
  get received(): number {
    return this.members.reduce((a, m) => a + m.received, 0);
  }
  get latencies(): number[] {
    return this.members.flatMap((m) => m.latencies);
  }
  reset(): void {
    for (const m of this.members) m.reset();
  }
  close(): void {
    for (const m of this.members) m.ws.close();
  }
}

type Order = { id: string; restaurantId: string; customerId: string };

/** The change an instance would relay for an order's next seq, stamped with the send time. */
function changeOf(order: Order, seq: number): OrderChange {
  const at = new Date().toISOString();
  return {
    type: "order.updated",
    orderId: order.id,
    seq,
    status: "preparing",
    prevStatus: "accepted",
    event: "START_PREPARING",
    at,
    by: { role: "restaurant", id: "bench" },
    order: {
      id: order.id,
      status: "preparing",
      version: seq,
      customerId: order.customerId,
      restaurantId: order.restaurantId,
      courierId: null,
      items: [{ menuItemId: "pizza", name: "Pizza", quantity: 1, unitPriceCents: 1250 }],
      subtotalCents: 1250,
      deliveryFeeCents: 199,
      totalCents: 1449,
      deliveryLocation: { lat: 48.8606, lng: 2.3622 },
      createdAt: at,
      updatedAt: at,
      history: [],
    } as unknown as OrderChange["order"],
    origin: "bench-generator",
  };
}

type Row = { mode: Mode; instances: number; rate: number; perInstance: Array<{ received: number; watchedMessages: number; cpuPer1k: number; p50: number; p99: number; n: number }>; p99All: number; cpuPer1kMean: number };

/** The reference's npm dependencies, installed once (as bench:ws does). */
function installReference(): void {
  if (existsSync(join(REPO_ROOT, "scripts/bench/reference/node_modules/@socket.io/redis-adapter"))) return;
  progress("installing the reference's dependencies (npm ci --prefix scripts/bench/reference)");
  const r = Bun.spawnSync(["npm", "ci", "--prefix", join(REPO_ROOT, "scripts/bench/reference"), "--no-audit", "--no-fund"], { stdout: "inherit", stderr: "inherit" });
  if (r.exitCode !== 0) throw new Error("npm ci of the reference failed");
}

async function main(): Promise<void> {
  if (MODES_RUN.includes("socket.io")) installReference();
  progress(`cluster, engine; ${ORDERS} orders; rates ${RATES.join(", ")}/s for ${SECONDS} s; instances ${COUNTS.join(", ")}`);
  const [cluster, database] = await Promise.all([startRedisCluster(), startSharedDatabase()]);
  const target: RedisTarget = { kind: "cluster", nodes: cluster.nodes.split(",").map((n) => ({ host: "127.0.0.1", port: Number(n.split(":")[1]) })) };
  const baseEnv = {
    ...database.env,
    REDIS_CLUSTER_NODES: cluster.nodes,
    JWT_SECRET,
    ADMIN_EMAIL: ADMIN.email,
    ADMIN_PASSWORD: ADMIN.password,
    PASSWORD_HASH_MEMORY_KIB: "1024",
    PASSWORD_HASH_TIME_COST: "1",
    LOGIN_MAX_ATTEMPTS: "10000",
    RATE_LIMIT_USER_WRITES: "0",
    RATE_LIMIT_IP_WRITES: "0",
    WS_MAX_SUBSCRIPTIONS: "10000",
    WS_MAX_BUFFERED_BYTES: String(64 * 1024 * 1024),
    ACCEPT_TIMEOUT_SECONDS: "86400",
    LOG_LEVEL: "info", // startServerProcess waits for the "listening" line
  };
  const rows: Row[] = [];
  try {
    // Users, a restaurant and the orders, through one instance (not measured).
    const setup = await startServerProcess({ ...baseEnv, INSTANCE_ID: "setup" });
    const reg = async (role: string): Promise<User> => {
      const r = await http(setup.url, "POST", "/auth/register", undefined, { email: `${role}-${crypto.randomUUID().slice(0, 8)}@scale.test`, password: "password-123", name: role, role });
      return { token: r.body.token, id: r.body.user.id };
    };
    const [customer, owner] = [await reg("customer"), await reg("restaurant")];
    const restaurant = await http(setup.url, "POST", "/restaurants", owner, { name: "Scale Pizza", cuisines: ["pizza"], location: { lat: 48.8566, lng: 2.3522 }, menu: [{ id: "pizza", name: "Pizza", priceCents: 1250 }] });
    const orders: Order[] = [];
    for (let i = 0; i < ORDERS; i += 20) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(20, ORDERS - i) }, () =>
          http(setup.url, "POST", "/orders", customer, { restaurantId: restaurant.body.id, items: [{ menuItemId: "pizza", quantity: 1 }], deliveryLocation: { lat: 48.8606, lng: 2.3622 } }),
        ),
      );
      for (const r of batch) orders.push({ id: r.body.id, restaurantId: restaurant.body.id, customerId: customer.id });
    }
    await setup.stop("SIGTERM");
    failures.exitIfAny("bench:scale (set-up)");
    const seqs = new Map(orders.map((o) => [o.id, 1]));

    for (const mode of MODES_RUN) {
      for (const n of COUNTS) {
        progress(`${mode}, ${n} instance(s)`);
        const share = (i: number) => orders.filter((_, k) => k % n === i).map((o) => o.id);
        const chunksOf = (ids: string[]) => Array.from({ length: Math.ceil(ids.length / 80) }, (_, c) => ids.slice(c * 80, c * 80 + 80));
        let instances: Array<{ pid: number; server?: ServerProcess; received(): Promise<number>; stop(): Promise<unknown> }>;
        const procsOf = (inst: { server?: ServerProcess }) => inst.server!;
        let watchers: WatcherGroup[];
        if (mode === "socket.io") {
          const refs: Array<{ proc: ManagedProcess; port: number }> = [];
          for (let i = 0; i < n; i++) refs.push(await startReference(`reference ${n}-${i}`, cluster.nodes));
          instances = refs.map((r) => ({ pid: r.proc.proc.pid, received: async () => NaN, stop: () => r.proc.stop("SIGTERM") }));
          watchers = await Promise.all(refs.map(async (r, i) => new WatcherGroup(await Promise.all(chunksOf(share(i)).map((chunk) => SioWatcher.open(r.port, chunk))))));
        } else {
          // One after the other: several Bun start-ups at once can take longer than the start-up wait on a busy machine.
          const procs: ServerProcess[] = [];
          for (let i = 0; i < n; i++) procs.push(await startServerProcess({ ...baseEnv, RELAY_MODE: mode, INSTANCE_ID: `${mode}-${n}-${i}` }));
          instances = procs.map((p) => ({ pid: p.proc.pid, server: p, received: () => metric(p, "dispatch_relay_received_total"), stop: () => p.stop("SIGTERM") }));
          // One connection per 80 topics: a client may send a burst of 100 frames (then 50/s).
          watchers = await Promise.all(procs.map(async (p, i) => new WatcherGroup(await Promise.all(chunksOf(share(i)).map((chunk) => Watcher.open(p, customer.token, chunk))))));
        }
        const generator =
          mode === "interest"
            ? new InterestEventBus({ redis: target, instanceId: "bench-generator", namespace: `dispatch:${database.env.MONGODB_DB}:`, log: createLogger("silent"), unsubscribeGraceMs: 0, probeIntervalMs: 600_000 })
            : mode === "broadcast"
              ? new RedisEventBus({ redis: target, instanceId: "bench-generator", channel: `dispatch:${database.env.MONGODB_DB}:changes`, log: createLogger("silent") })
              : null;
        while (generator && !(await generator.ready())) await Bun.sleep(20);
        if (mode === "interest") {
          // Every watched topic's channel is subscribed before the load starts.
          for (const [i, inst] of instances.entries()) {
            const deadline = performance.now() + 30_000;
            while ((await metric(procsOf(inst), "dispatch_relay_channels")) < share(i).length && performance.now() < deadline) await Bun.sleep(50);
          }
        }
        /** Sends the open-loop schedule at `rate` for `seconds`; how many changes went out. */
        const drive = async (rate: number, seconds: number): Promise<number> => {
          let changes = 0;
          if (generator) {
            const started = performance.now();
            const endAt = started + seconds * 1000;
            // Open loop: each 10 ms tick sends what the schedule says is due, whatever the servers do.
            while (performance.now() < endAt) {
              const due = Math.floor(((performance.now() - started) / 1000) * rate);
              while (changes < due) {
                const order = orders[changes % orders.length];
                const seq = seqs.get(order.id)! + 1;
                seqs.set(order.id, seq);
                generator.publish(changeOf(order, seq));
                changes++;
                if (changes % CHANGE_PER_POSITION === 0) {
                  const topic = topics.order(order.id);
                  generator.publishTransient(topic, { type: "courier.location", topic, orderId: order.id, lat: 48.86, lng: 2.36, sentAt: Date.now() });
                }
              }
              await Bun.sleep(10);
            }
          } else {
            // The same schedule from a Node process with the sharded adapter (it emits to the rooms).
            const gen = spawnManaged("reference generator", ["node", REFERENCE], {
              ROLE: "generator",
              REDIS_CLUSTER_NODES: cluster.nodes,
              RATE: String(rate),
              SECONDS: String(seconds),
              ORDERS: orders.map((o) => o.id).join(","),
              POSITION_EVERY: String(CHANGE_PER_POSITION),
            });
            const done = await gen.waitForLine((l) => l.msg === "done", seconds * 1000 + 30_000);
            changes = Number(done.changes);
            await gen.stop();
          }
          return changes;
        };
        // Warm-up, not measured (JIT, connections, first allocations): without it the first window
        // of each mode and instance count carried that start-up work as if it were relay work.
        await drive(RATES[0]!, TINY ? 0.3 : 1);
        await Bun.sleep(1_000);
        for (const rate of RATES) {
          for (const w of watchers) w.reset();
          // Each instance's CPU while idle (timers, probes, GC), subtracted below so the figure is per change.
          const idleFrom = instances.map((inst) => cpuMsOf(inst.pid));
          const idleStarted = performance.now();
          await Bun.sleep(2_000);
          const idleMsPerMs = instances.map((inst, i) => (cpuMsOf(inst.pid) - idleFrom[i]) / (performance.now() - idleStarted));
          const before = await Promise.all(instances.map(async (inst) => ({ received: await inst.received(), cpu: cpuMsOf(inst.pid) })));
          const loadStarted = performance.now();
          const changes = await drive(rate, SECONDS);
          // Which instance watches each message sent (order k on instance k mod n).
          const perInstanceMessages = new Array<number>(n).fill(0);
          for (let c = 1; c <= changes; c++) perInstanceMessages[((c - 1) % orders.length) % n] += c % CHANGE_PER_POSITION === 0 ? 2 : 1;
          const messages = perInstanceMessages.reduce((x, y) => x + y, 0);
          // Let the last messages arrive, then read.
          const settle = performance.now() + 5_000;
          while (watchers.some((w, i) => w.received < perInstanceMessages[i]) && performance.now() < settle) await Bun.sleep(20);
          const after = await Promise.all(instances.map(async (inst) => ({ received: await inst.received(), cpu: cpuMsOf(inst.pid) })));
          const loadMs = performance.now() - loadStarted;
          for (const [i, w] of watchers.entries()) {
            if (w.received < perInstanceMessages[i]) failures.add(`${mode} ×${n} at ${rate}/s: instance ${i} delivered ${w.received} of ${perInstanceMessages[i]} watched messages`);
          }
          const perInstance = instances.map((_, i) => {
            const st = stats(watchers[i].latencies);
            return {
              received: after[i].received - before[i].received,
              watchedMessages: perInstanceMessages[i],
              cpuPer1k: Math.max(0, after[i].cpu - before[i].cpu - idleMsPerMs[i] * loadMs) / 1000 / (changes / 1000),
              p50: st.p50,
              p99: st.p99,
              n: st.n,
            };
          });
          const all = stats(watchers.flatMap((w) => w.latencies));
          rows.push({ mode, instances: n, rate, perInstance, p99All: all.p99, cpuPer1kMean: perInstance.reduce((x, p) => x + p.cpuPer1k, 0) / n });
          progress(`  ${rate}/s: ${changes} changes, ${messages} messages; p99 ${fmt(all.p99, 0)} ms`);
        }
        for (const w of watchers) w.close();
        await generator?.close();
        await Promise.all(instances.map((inst) => inst.stop()));
      }
    }
  } finally {
    await stopAllProcesses();
    await Promise.all([cluster.stop(), database.stop()]);
  }
  report(rows);
  failures.exitIfAny("bench:scale");
}

function report(rows: Row[]): void {
  const lines: string[] = [];
  lines.push(`bench:scale on ${cpus().length} cores (load ${loadavg()[0].toFixed(1)}), Bun ${Bun.version}; ${ORDERS} orders, ${SECONDS} s per rate, 1 position per ${CHANGE_PER_POSITION} changes; Redis Cluster 3 masters + 3 replicas`);
  lines.push("");
  lines.push(
    table(
      ["mode", "instances", "changes/s", "instance", "received", "watched msgs", "received ÷ watched", "CPU s / 1k changes", "fan-out p50 ms", "p99 ms"],
      rows.flatMap((r) =>
        r.perInstance.map((p, i) => [r.mode, String(r.instances), String(r.rate), String(i), fmt(p.received, 0), String(p.watchedMessages), ratio(p.received, p.watchedMessages), fmt(p.cpuPer1k, 3), fmt(p.p50, 1), fmt(p.p99, 1)]),
      ),
    ),
  );
  lines.push("");
  const find = (mode: Mode, n: number, rate: number) => rows.find((r) => r.mode === mode && r.instances === n && r.rate === rate);
  const summary: string[][] = [];
  for (const rate of RATES) {
    for (const n of COUNTS) {
      const i = find("interest", n, rate);
      const b = find("broadcast", n, rate);
      const r = find("socket.io", n, rate);
      if (!i || !b) continue;
      const maxRatio = Math.max(...i.perInstance.map((p) => p.received / Math.max(1, p.watchedMessages)));
      summary.push([String(rate), String(n), fmt(maxRatio, 3), fmt(i.cpuPer1kMean, 3), fmt(b.cpuPer1kMean, 3), ratio(b.cpuPer1kMean, i.cpuPer1kMean), fmt(r?.cpuPer1kMean ?? NaN, 3), fmt(i.p99All, 1), fmt(b.p99All, 1), fmt(r?.p99All ?? NaN, 1)]);
    }
  }
  lines.push(table(["changes/s", "instances", "interest: max received ÷ watched", "interest CPU s/1k", "broadcast CPU s/1k", "broadcast ÷ interest CPU", "socket.io sharded CPU s/1k", "interest p99 ms", "broadcast p99 ms", "socket.io sharded p99 ms"], summary));
  const top = Math.max(...COUNTS);
  const topRate = Math.max(...RATES);
  const i4 = find("interest", top, topRate);
  const b4 = find("broadcast", top, topRate);
  if (i4 && b4) {
    const maxRatio = Math.max(...rows.filter((r) => r.mode === "interest").flatMap((r) => r.perInstance.map((p) => p.received / Math.max(1, p.watchedMessages))));
    lines.push("");
    lines.push(`- received ≤ 1.05 × watched on every interest instance: ${maxRatio <= 1.05 ? "met" : "not met"} (max ${fmt(maxRatio, 3)})`);
    lines.push(`- CPU per change at ${top} instances ≥ 3× lower than broadcast (${topRate}/s): ${b4.cpuPer1kMean / i4.cpuPer1kMean >= 3 ? "met" : "not met"} (${ratio(b4.cpuPer1kMean, i4.cpuPer1kMean)})`);
    lines.push(`- fan-out p99 across ${top} instances at ${topRate}/s ≤ 10 ms: ${i4.p99All <= 10 ? "met" : "not met"} (${fmt(i4.p99All, 1)} ms)`);
    const r4 = find("socket.io", top, topRate);
    lines.push(`- fan-out p99 no higher than the sharded Socket.IO reference: ${r4 && i4.p99All <= r4.p99All ? "met" : "not met"} (${fmt(i4.p99All, 1)} vs ${fmt(r4?.p99All ?? NaN, 1)} ms)`);
  }
  process.stdout.write(`${lines.join("\n")}\n`);
}

await main();
// ioredis leaves a 10 s connect timer behind when a cluster client is closed while it is still
// connecting to a node: exit now rather than wait for it.
process.exit(0);

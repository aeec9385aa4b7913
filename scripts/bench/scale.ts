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
 * watch, CPU seconds per 1,000 deployment changes (/proc), fan-out p50/p99 (generator send to
 * client receipt, one host clock). Stops by itself, prints tables, exits non-zero when a watched
 * message did not arrive or a request failed.
 *
 * Env: BENCH_SCALE_SECONDS (per rate, default 4), BENCH_SCALE_RATES ("500,2000"),
 * BENCH_SCALE_INSTANCES ("1,2,4"), BENCH_SCALE_ORDERS (default 240), BENCH_TINY=1 (a second).
 */
import { cpus, loadavg } from "node:os";
import { createLogger } from "../../src/log";
import { topics } from "../../src/events/topics";
import type { OrderChange } from "../../src/events/change";
import { InterestEventBus } from "../../src/realtime/interest-relay";
import { RedisEventBus } from "../../src/realtime/redis-relay";
import type { RedisTarget } from "../../src/redis";
import { startServerProcess, startSharedDatabase, stopAllProcesses, type ServerProcess } from "../../test/helpers/processes";
import { startRedisCluster } from "../../test/helpers/redis-cluster";
import { Failures, TINY, cpuMsOf, fmt, ratio, stats, table } from "./lib";

const SECONDS = Number(process.env.BENCH_SCALE_SECONDS ?? (TINY ? 1 : 4));
const RATES = (process.env.BENCH_SCALE_RATES ?? (TINY ? "200" : "500,2000")).split(",").map(Number);
const COUNTS = (process.env.BENCH_SCALE_INSTANCES ?? (TINY ? "2" : "1,2,4")).split(",").map(Number);
const ORDERS = Number(process.env.BENCH_SCALE_ORDERS ?? (TINY ? 24 : 240));
const CHANGE_PER_POSITION = 4;
const MODES = ["interest", "broadcast"] as const;
type Mode = (typeof MODES)[number];
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

async function main(): Promise<void> {
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

    for (const mode of MODES) {
      for (const n of COUNTS) {
        progress(`${mode}, ${n} instance(s)`);
        const instances = await Promise.all(Array.from({ length: n }, (_, i) => startServerProcess({ ...baseEnv, RELAY_MODE: mode, INSTANCE_ID: `${mode}-${n}-${i}` })));
        const share = (i: number) => orders.filter((_, k) => k % n === i);
        const watchers = await Promise.all(instances.map((inst, i) => Watcher.open(inst, customer.token, share(i).map((o) => o.id))));
        const generator =
          mode === "interest"
            ? new InterestEventBus({ redis: target, instanceId: "bench-generator", namespace: `dispatch:${database.env.MONGODB_DB}:`, log: createLogger("silent"), unsubscribeGraceMs: 0, probeIntervalMs: 600_000 })
            : new RedisEventBus({ redis: target, instanceId: "bench-generator", channel: `dispatch:${database.env.MONGODB_DB}:changes`, log: createLogger("silent") });
        while (!(await generator.ready())) await Bun.sleep(20);
        await Bun.sleep(300);
        for (const rate of RATES) {
          for (const w of watchers) w.reset();
          const before = await Promise.all(instances.map(async (inst) => ({ received: await metric(inst, "dispatch_relay_received_total"), cpu: cpuMsOf(inst.proc.pid) })));
          const perInstanceMessages = new Array<number>(n).fill(0);
          let changes = 0;
          let messages = 0;
          const started = performance.now();
          const endAt = started + SECONDS * 1000;
          // Open loop: each 10 ms tick sends what the schedule says is due, whatever the servers do.
          while (performance.now() < endAt) {
            const due = Math.floor(((performance.now() - started) / 1000) * rate);
            while (changes < due) {
              const k = changes % orders.length;
              const order = orders[k];
              const seq = seqs.get(order.id)! + 1;
              seqs.set(order.id, seq);
              generator.publish(changeOf(order, seq));
              changes++;
              messages++;
              perInstanceMessages[k % n]++;
              if (changes % CHANGE_PER_POSITION === 0) {
                const topic = topics.order(order.id);
                generator.publishTransient(topic, { type: "courier.location", topic, orderId: order.id, lat: 48.86, lng: 2.36, sentAt: Date.now() });
                messages++;
                perInstanceMessages[k % n]++;
              }
            }
            await Bun.sleep(10);
          }
          // Let the last messages arrive, then read.
          const settle = performance.now() + 5_000;
          while (watchers.some((w, i) => w.received < perInstanceMessages[i]) && performance.now() < settle) await Bun.sleep(20);
          const after = await Promise.all(instances.map(async (inst) => ({ received: await metric(inst, "dispatch_relay_received_total"), cpu: cpuMsOf(inst.proc.pid) })));
          for (const [i, w] of watchers.entries()) {
            if (w.received < perInstanceMessages[i]) failures.add(`${mode} ×${n} at ${rate}/s: instance ${i} delivered ${w.received} of ${perInstanceMessages[i]} watched messages`);
          }
          const perInstance = instances.map((_, i) => {
            const s = stats(watchers[i].latencies);
            return {
              received: after[i].received - before[i].received,
              watchedMessages: perInstanceMessages[i],
              cpuPer1k: (after[i].cpu - before[i].cpu) / 1000 / (changes / 1000),
              p50: s.p50,
              p99: s.p99,
              n: s.n,
            };
          });
          const all = stats(watchers.flatMap((w) => w.latencies));
          rows.push({ mode, instances: n, rate, perInstance, p99All: all.p99, cpuPer1kMean: perInstance.reduce((a, p) => a + p.cpuPer1k, 0) / n });
          progress(`  ${rate}/s: ${changes} changes, ${messages} messages; p99 ${fmt(all.p99, 0)} ms`);
        }
        for (const w of watchers) w.ws.close();
        await generator.close();
        await Promise.all(instances.map((inst) => inst.stop("SIGTERM")));
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
        r.perInstance.map((p, i) => [r.mode, String(r.instances), String(r.rate), String(i), String(p.received), String(p.watchedMessages), ratio(p.received, p.watchedMessages), fmt(p.cpuPer1k, 3), fmt(p.p50, 1), fmt(p.p99, 1)]),
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
      if (!i || !b) continue;
      const maxRatio = Math.max(...i.perInstance.map((p) => p.received / Math.max(1, p.watchedMessages)));
      summary.push([String(rate), String(n), fmt(maxRatio, 3), fmt(i.cpuPer1kMean, 3), fmt(b.cpuPer1kMean, 3), ratio(b.cpuPer1kMean, i.cpuPer1kMean), fmt(i.p99All, 1), fmt(b.p99All, 1)]);
    }
  }
  lines.push(table(["changes/s", "instances", "interest: max received ÷ watched", "interest CPU s/1k", "broadcast CPU s/1k", "broadcast ÷ interest CPU", "interest p99 ms", "broadcast p99 ms"], summary));
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
  }
  process.stdout.write(`${lines.join("\n")}\n`);
}

await main();

/**
 * `bun run bench:ws`: WebSocket fan-out latency and idle-connection capacity of dispatch, side by
 * side in the same run with a reference built the common Node way (scripts/bench/reference/:
 * Node + Socket.IO 4 + @socket.io/redis-adapter + mongodb driver + jsonwebtoken) on the same load.
 *
 * Everything runs as separate processes on this machine: redis-server (free port), the embedded
 * engine standalone (free port, temp dir), one or two server instances, and one subscriber
 * process (scripts/bench/ws-subscribers.ts) holding every client socket. This process sends the
 * PATCHes and stamps each one just before sending; the subscriber process stamps each event when
 * its socket hands it over; both stamps are `performance.timeOrigin + performance.now()`.
 * The floor, in the same run: a bare Bun server (scripts/bench/ws-floor.ts: Bun.serve with native
 * WebSocket topics, no framework, its own process) publishing the frame dispatch sent to the same
 * subscribers, for each sequential load on one instance; dispatch's fan-out spread is reported
 * against it. Stops by itself and prints Markdown tables.
 *
 * Env: BENCH_WS_MAX_CONNECTIONS (capacity cap, default 15000), BENCH_WS_REPEAT (runs per sequential load and server, default 2), BENCH_WS_RATE (PATCH/s of the
 * 1,000-orders load, default 200), BENCH_WS_SYSTEMS ("dispatch,reference"), BENCH_WS_QUICK=1
 * (smaller loads, for a smoke run), BENCH_WS_PARTS ("sequential,many,idle": which parts run),
 * BENCH_WS_INSTANCES ("1,2": which instance counts).
 */
import type { Subprocess } from "bun";
import { createHmac } from "node:crypto";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { ENGINE_ENV, REPO_ROOT, spawnManaged, startServerProcess, stopAllProcesses, type ManagedProcess } from "../../test/helpers/processes";
import { startRedis } from "../../test/helpers/redis";
import { Failures, TINY, cpuMsOf, fmt, inBatches, ratio as ratioOf, stats, table, type Stats } from "./lib";

const QUICK = process.env.BENCH_WS_QUICK === "1" || TINY;
const CAP = Number(process.env.BENCH_WS_MAX_CONNECTIONS ?? (TINY ? 50 : QUICK ? 2000 : 15_000));
const RATE = Number(process.env.BENCH_WS_RATE ?? 200);
const FSYNC = process.env.BENCH_WS_FSYNC ?? "always";
const SYSTEMS = (process.env.BENCH_WS_SYSTEMS ?? (TINY ? "dispatch" : "dispatch,reference")).split(",") as SystemName[];
/** Which parts run (for a focused run): "sequential", "many", "idle"; and which instance counts. */
const PARTS = new Set((process.env.BENCH_WS_PARTS ?? "sequential,many,idle").split(","));
const INSTANCES = (process.env.BENCH_WS_INSTANCES ?? "1,2").split(",").map(Number);
/** The floor runs once, beside the one-instance clusters (or the first ones when no run has one instance). */
const FLOOR_INSTANCES = INSTANCES.includes(1) ? 1 : INSTANCES[0];
const JWT_SECRET = "bench-ws-secret-0123456789abcdef-0123";
const ADMIN = { email: "admin@bench.test", password: "bench-admin-password" };
const REFERENCE_DIR = join(REPO_ROOT, "scripts/bench/reference");

/**
 * The fan-out loads. Every measured event is one order's cancel by its customer (placed →
 * cancelled, `PATCH /orders/:id {"status":"cancelled"}`): a move that starts no automatic
 * dispatch in dispatch, so both servers do the same work per PATCH, and fresh orders give as
 * many events as needed. Sequential loads cancel one order at a time; each runs REPEAT times
 * per server (at most 100 orders a time: dispatch's subscriptions per connection), the servers
 * taking turns, and the runs are pooled.
 */
const REPEAT = Number(process.env.BENCH_WS_REPEAT ?? (TINY ? 1 : 2));
const LOADS = TINY
  ? [
      { name: "100 subscribers, one order", subs: 10, orders: 2 }]
  : QUICK
  ? [
      { name: "1 subscriber, one order", subs: 1, orders: 20 },
      { name: "100 subscribers, one order", subs: 100, orders: 10 },
      { name: "1,000 subscribers, one order", subs: 1000, orders: 5 },
    ]
  : [
      { name: "1 subscriber, one order", subs: 1, orders: 100 },
      { name: "100 subscribers, one order", subs: 100, orders: 25 },
      { name: "1,000 subscribers, one order", subs: 1000, orders: 10 },
    ];
const MANY = { name: "1,000 orders × 3 subscribers", orders: TINY ? 20 : QUICK ? 200 : 1000, subsPerOrder: 3 };

type SystemName = "dispatch" | "reference" | "floor";
/** One delivery: [orderId, seq, receivedAt, index of the instance it came from, frame bytes]. */
type Sample = [string, number, number, number, number];
type Protocol = "dispatch" | "socketio";
type Json = Record<string, unknown>;

const now = () => performance.timeOrigin + performance.now();
const progress = (msg: string) => process.stderr.write(`[bench:ws ${((performance.now() - runStarted) / 1000).toFixed(0).padStart(3)} s] ${msg}\n`);
const runStarted = performance.now();
const failures = new Failures();

// ---------------------------------------------------------------------------------------------
// Processes

/** The subscriber process: JSON-line commands on stdin, answers on stdout. */
class Subscribers {
  private readonly lines: Json[] = [];
  private readonly waiters: Array<{ match: (l: Json) => boolean; resolve: (l: Json) => void }> = [];
  private errText = "";
  private awaits = 0;

  private constructor(readonly proc: Subprocess<"pipe", "pipe", "pipe">) {
    void this.read();
    void (async () => {
      const d = new TextDecoder();
      for await (const c of proc.stderr) this.errText = (this.errText + d.decode(c, { stream: true })).slice(-4000);
    })();
  }

  static start(): Subscribers {
    // Raise the open-files limit as far as this machine allows (each socket is one file).
    const proc = Bun.spawn(["sh", "-c", 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec bun run scripts/bench/ws-subscribers.ts'], {
      cwd: REPO_ROOT,
      stdin: "pipe",
      stdout: "pipe",
      stderr: "pipe",
    });
    liveSubscribers.add(proc);
    proc.exited.then(() => liveSubscribers.delete(proc));
    return new Subscribers(proc);
  }

  private async read(): Promise<void> {
    const d = new TextDecoder();
    let rest = "";
    for await (const chunk of this.proc.stdout) {
      rest += d.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = rest.indexOf("\n")) >= 0) {
        const line = JSON.parse(rest.slice(0, nl)) as Json;
        rest = rest.slice(nl + 1);
        const i = this.waiters.findIndex((w) => w.match(line));
        if (i >= 0) this.waiters.splice(i, 1)[0].resolve(line);
        else this.lines.push(line);
      }
    }
  }

  /** Sends a command and waits for the first answer line that matches. */
  async ask(cmd: Json, match: (l: Json) => boolean, timeoutMs = 120_000): Promise<Json | null> {
    const early = this.lines.findIndex(match);
    if (early >= 0) return this.lines.splice(early, 1)[0];
    const answer = new Promise<Json | null>((resolve) => {
      const waiter = {
        match,
        resolve: (l: Json) => {
          clearTimeout(timer);
          resolve(l);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        resolve(null);
      }, timeoutMs);
      this.waiters.push(waiter);
    });
    this.proc.stdin.write(`${JSON.stringify(cmd)}\n`);
    this.proc.stdin.flush();
    return answer;
  }

  async open(protocol: Protocol, urls: string[], token: string, plan: Array<[number, string[]]>, opts: { concurrency?: number; maxFailures?: number } = {}) {
    const wsUrls = urls.map((u) => u.replace(/^http/, "ws"));
    const res = await this.ask(
      { cmd: "open", protocol, urls: wsUrls, token, plan, concurrency: opts.concurrency ?? 50, maxFailures: opts.maxFailures ?? 1 },
      (l) => "opened" in l,
      300_000,
    );
    if (!res) throw new Error(`subscribers did not open in time; stderr: ${this.errText}`);
    return res as { opened: number; failed: number; firstError: string; ms: number };
  }

  /** Resolves true once each key ("orderId:seq") has been delivered n times (false on timeout). */
  async awaitKeys(keys: Array<[string, number]>, timeoutMs = 10_000): Promise<boolean> {
    const id = ++this.awaits;
    return (await this.ask({ cmd: "await", id, keys }, (l) => l.reached === id, timeoutMs)) !== null;
  }

  async collect(): Promise<Sample[]> {
    const res = await this.ask({ cmd: "collect" }, (l) => "samples" in l);
    if (!res) throw new Error(`collect timed out; stderr: ${this.errText}`);
    return res.samples as Sample[];
  }

  async reset(): Promise<void> {
    await this.ask({ cmd: "reset" }, (l) => l.reset === true);
  }

  async closeAll(): Promise<void> {
    await this.ask({ cmd: "close" }, (l) => l.closed === true);
  }

  /** Offset of the subscriber process's clock from ours, from the fastest of a few round trips. */
  async clockOffset(): Promise<{ offsetMs: number; rttMs: number }> {
    let best = { offsetMs: 0, rttMs: Number.POSITIVE_INFINITY };
    for (let i = 0; i < 30; i++) {
      const sent = now();
      const res = await this.ask({ cmd: "clock" }, (l) => typeof l.now === "number");
      const back = now();
      if (res && back - sent < best.rttMs) best = { offsetMs: (res.now as number) - (sent + back) / 2, rttMs: back - sent };
    }
    return best;
  }

  /** The first dispatch event frame the subscribers received since the last call (null if none). */
  async sample(): Promise<string | null> {
    const res = await this.ask({ cmd: "sample" }, (l) => "sample" in l);
    return (res?.sample as string | null | undefined) ?? null;
  }

  async stop(): Promise<void> {
    this.proc.stdin.write(`${JSON.stringify({ cmd: "exit" })}\n`);
    this.proc.stdin.flush();
    const timer = setTimeout(() => this.proc.kill("SIGKILL"), 5_000);
    await this.proc.exited;
    clearTimeout(timer);
  }
}

const liveSubscribers = new Set<Subprocess>();
process.on("exit", () => {
  for (const p of liveSubscribers) p.kill("SIGKILL");
});

/** Resident memory of a process and its descendants, in bytes. */
function rssOf(pid: number): number {
  let total = 0;
  const visit = (p: number) => {
    try {
      const status = readFileSync(`/proc/${p}/status`, "utf8");
      const kb = /VmRSS:\s+(\d+) kB/.exec(status);
      if (kb) total += Number(kb[1]) * 1024;
      for (const task of readdirSync(`/proc/${p}/task`)) {
        const children = readFileSync(`/proc/${p}/task/${task}/children`, "utf8").trim();
        for (const c of children ? children.split(/\s+/) : []) visit(Number(c));
      }
    } catch {
      // gone
    }
  };
  visit(pid);
  return total;
}

/** CPU ms the servers and the engine use while `work` runs. */
async function withCpu<T>(cluster: Cluster, work: () => Promise<T>): Promise<{ out: T; serverCpuMs: number; engineCpuMs: number }> {
  const server0 = cluster.pids.reduce((a, p) => a + cpuMsOf(p), 0);
  const engine0 = cpuMsOf(enginePid);
  const out = await work();
  return { out, serverCpuMs: cluster.pids.reduce((a, p) => a + cpuMsOf(p), 0) - server0, engineCpuMs: cpuMsOf(enginePid) - engine0 };
}
let enginePid = 0;

// ---------------------------------------------------------------------------------------------
// The two systems behind one interface

type Cluster = {
  urls: string[];
  pids: number[];
  tokens: { customer: string; owner: string; admin: string };
  createOrders(n: number): Promise<string[]>;
  stop(): Promise<void>;
};

async function call(method: string, url: string, token: string | undefined, body?: unknown, raw?: string): Promise<{ status: number; body: Json }> {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(url, { method, headers, body: raw ?? (body === undefined ? undefined : JSON.stringify(body)) });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Json) : {} };
}

async function ok(p: Promise<{ status: number; body: Json }>, what: string): Promise<Json> {
  const res = await p;
  if (res.status >= 300) throw new Error(`${what}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

/** A token the way both servers read it: HS256 over {sub, role, iat, exp}. */
function signToken(sub: string, role: string): string {
  const enc = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
  const iat = Math.floor(Date.now() / 1000);
  const head = `${enc({ alg: "HS256", typ: "JWT" })}.${enc({ sub, role, iat, exp: iat + 3600 })}`;
  return `${head}.${createHmac("sha256", JWT_SECRET).update(head).digest("base64url")}`;
}

async function startDispatch(instances: number, db: string, engineUri: string, redisUrl: string | null): Promise<Cluster> {
  const servers: ManagedProcess[] = [];
  for (let i = 0; i < instances; i++) {
    servers.push(
      await startServerProcess({
        NODE_ENV: "production",
        MONGODB_URI: engineUri,
        MONGODB_DB: db,
        JWT_SECRET,
        ADMIN_EMAIL: ADMIN.email,
        ADMIN_PASSWORD: ADMIN.password,
        PASSWORD_HASH_MEMORY_KIB: "19456",
        PASSWORD_HASH_TIME_COST: "1",
        LOG_LEVEL: "info",
        INSTANCE_ID: `bench-${db}-${i}`,
        // One user places every PATCH and holds every socket here: per-user/IP limits would refuse the load.
        RATE_LIMIT_USER_WRITES: "0",
        RATE_LIMIT_IP_WRITES: "0",
        WS_MAX_CONNECTIONS_PER_USER: "100000",
        ...(redisUrl ? { REDIS_URL: redisUrl } : {}),
      }),
    );
  }
  const urls = servers.map((s) => (s as ManagedProcess & { url: string }).url);
  const base = urls[0];
  const register = async (role: string) => {
    const email = `${role}-${crypto.randomUUID().slice(0, 8)}@bench.test`;
    const res = await call("POST", `${base}/auth/register`, undefined, { email, password: "password-123", name: role, role });
    if (res.status === 201) return res.body.token as string;
    throw new Error(`register ${role}: ${res.status} ${JSON.stringify(res.body)}`);
  };
  const [customer, owner] = await Promise.all([register("customer"), register("restaurant")]);
  const admin = (await ok(call("POST", `${base}/auth/login`, undefined, ADMIN), "admin login")).token as string;
  const restaurant = await ok(
    call("POST", `${base}/restaurants`, owner, {
      name: "Bench Bistro",
      location: { lat: 48.8566, lng: 2.3522 },
      menu: [{ id: "dish", name: "Dish", priceCents: 1000 }],
    }),
    "create restaurant",
  );
  return {
    urls,
    pids: servers.map((s) => s.proc.pid),
    tokens: { customer, owner, admin },
    createOrders: (n) =>
      inBatches(n, 16, async () => {
        const order = await ok(
          call("POST", `${base}/orders`, customer, {
            restaurantId: restaurant.id,
            items: [{ menuItemId: "dish", quantity: 1 }],
            deliveryLocation: { lat: 48.86, lng: 2.36 },
          }),
          "place order",
        );
        return order.id as string;
      }),
    stop: async () => {
      await Promise.all(servers.map((s) => s.stop("SIGTERM")));
    },
  };
}

async function startReference(instances: number, db: string, engineUri: string, redisUrl: string | null): Promise<Cluster> {
  const servers: ManagedProcess[] = [];
  for (let i = 0; i < instances; i++) {
    const proc = spawnManaged(`reference ${i}`, ["sh", "-c", 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec node scripts/bench/reference/server.mjs'], {
      PORT: "0",
      MONGODB_URI: engineUri,
      MONGODB_DB: db,
      JWT_SECRET,
      ...(redisUrl ? { REDIS_URL: redisUrl } : {}),
    });
    const line = await proc.waitForLine((l) => l.msg === "listening" && typeof l.port === "number");
    servers.push(Object.assign(proc, { url: `http://127.0.0.1:${line.port as number}` }));
  }
  const urls = servers.map((s) => (s as ManagedProcess & { url: string }).url);
  const ids = { customer: `c-${crypto.randomUUID().slice(0, 8)}`, owner: `o-${crypto.randomUUID().slice(0, 8)}` };
  const customer = signToken(ids.customer, "customer");
  return {
    urls,
    pids: servers.map((s) => s.proc.pid),
    tokens: { customer, owner: signToken(ids.owner, "restaurant"), admin: signToken("admin-1", "admin") },
    createOrders: (n) =>
      inBatches(n, 16, async () => {
        const order = await ok(call("POST", `${urls[0]}/orders`, customer, { restaurantId: "r-1", restaurantOwnerId: ids.owner }), "place order");
        return order.id as string;
      }),
    stop: async () => {
      await Promise.all(servers.map((s) => s.stop("SIGTERM")));
    },
  };
}

/** The bare Bun server (scripts/bench/ws-floor.ts): one process, whatever the instance count. */
async function startFloor(): Promise<Cluster> {
  const proc = spawnManaged("ws-floor", ["sh", "-c", 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec bun run scripts/bench/ws-floor.ts'], { PORT: "0" });
  const line = await proc.waitForLine((l) => l.msg === "listening" && typeof l.port === "number");
  const url = `http://127.0.0.1:${line.port as number}`;
  return {
    urls: [url],
    pids: [proc.proc.pid],
    tokens: { customer: "floor", owner: "floor", admin: "floor" },
    createOrders: (n) => inBatches(n, 16, async () => (await ok(call("POST", `${url}/orders`, undefined), "floor order")).id as string),
    stop: async () => {
      await proc.stop("SIGTERM");
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Measurements

type FanoutResult = {
  load: string;
  instances: number;
  expected: number;
  all: Stats;
  /** Deliveries to subscribers of the instance that did not take the PATCH (two instances only). */
  remote: Stats | null;
  patch: Stats;
  /** Per event: from its first to its last delivery (the fan-out alone, without the PATCH's own work). */
  spread: Stats;
  frameBytes: number;
  errors: number;
  stalls: number;
  /** CPU ms per PATCH (its fan-out included) of the server instances together, and of the engine. */
  serverCpuMs: number;
  engineCpuMs: number;
};

type Sent = { t0: number; instance: number };

/** What one run of a load collected; runs of the same load are pooled before the statistics. */
type Raw = {
  load: string;
  instances: number;
  expected: number;
  sent: Map<string, Sent>;
  samples: Sample[];
  patchMs: number[];
  errors: number;
  stalls: number;
  serverCpuMs: number;
  engineCpuMs: number;
};

function pool(a: Raw, b: Raw): Raw {
  return {
    ...a,
    expected: a.expected + b.expected,
    sent: new Map([...a.sent, ...b.sent]),
    samples: a.samples.concat(b.samples),
    patchMs: a.patchMs.concat(b.patchMs),
    errors: a.errors + b.errors,
    stalls: a.stalls + b.stalls,
    serverCpuMs: a.serverCpuMs + b.serverCpuMs,
    engineCpuMs: a.engineCpuMs + b.engineCpuMs,
  };
}

function summarise(raw: Raw): FanoutResult {
  const all: number[] = [];
  const remote: number[] = [];
  const window = new Map<string, [number, number]>();
  let bytes = 0;
  for (const [orderId, seq, t1, urlIndex, size] of raw.samples) {
    const key = `${orderId}:${seq}`;
    const s = raw.sent.get(key);
    if (!s) continue;
    const w = window.get(key);
    if (!w) window.set(key, [t1, t1]);
    else {
      w[0] = Math.min(w[0], t1);
      w[1] = Math.max(w[1], t1);
    }
    all.push(t1 - s.t0);
    if (urlIndex !== s.instance) remote.push(t1 - s.t0);
    bytes += size;
  }
  const patches = raw.patchMs.length;
  return {
    load: raw.load,
    instances: raw.instances,
    expected: raw.expected,
    all: stats(all),
    remote: raw.instances > 1 ? stats(remote) : null,
    patch: stats(raw.patchMs),
    spread: stats([...window.values()].map(([first, last]) => last - first)),
    frameBytes: all.length ? Math.round(bytes / all.length) : 0,
    errors: raw.errors,
    stalls: raw.stalls,
    serverCpuMs: patches ? raw.serverCpuMs / patches : NaN,
    engineCpuMs: patches ? raw.engineCpuMs / patches : NaN,
  };
}

/** Cancels an order as its customer; the answer's version is the seq of the event it caused. */
async function cancel(cluster: Cluster, instance: number, orderId: string): Promise<{ t0: number; ms: number; seq: number | null }> {
  const t0 = now();
  const res = await fetch(`${cluster.urls[instance]}/orders/${orderId}`, {
    method: "PATCH",
    headers: { authorization: `Bearer ${cluster.tokens.customer}`, "content-type": "application/json" },
    body: JSON.stringify({ status: "cancelled" }),
  });
  const text = await res.text().catch((err: unknown) => String(err));
  const ms = now() - t0;
  let version: unknown;
  try {
    version = (JSON.parse(text) as { version?: unknown }).version;
  } catch {
    version = undefined;
  }
  if (res.status === 200 && typeof version === "number") return { t0, ms, seq: version };
  failures.add(`PATCH /orders/${orderId}: ${res.status} ${text.slice(0, 300)}`);
  return { t0, ms, seq: null };
}

/**
 * `subs` subscribers, each subscribed to every one of `orders` fresh orders; the orders are
 * cancelled one at a time and the next PATCH waits until every subscriber has the previous
 * event, so each fan-out is timed alone. PATCHes go to instance 0; subscribers alternate.
 */
async function sequentialFanout(cluster: Cluster, client: Subscribers, protocol: Protocol, load: { name: string; subs: number; orders: number }): Promise<Raw> {
  const raw: Raw = {
    load: load.name,
    instances: cluster.urls.length,
    expected: 0,
    sent: new Map(),
    samples: [],
    patchMs: [],
    errors: 0,
    stalls: 0,
    serverCpuMs: 0,
    engineCpuMs: 0,
  };
  const orders = await cluster.createOrders(load.orders);
  const topics = orders.map((o) => `order:${o}`);
  const plan = Array.from({ length: load.subs }, (_, i): [number, string[]] => [i % cluster.urls.length, topics]);
  const opened = await client.open(protocol, cluster.urls, cluster.tokens.customer, plan);
  if (opened.failed > 0) throw new Error(`${load.name}: ${opened.failed} subscribers failed: ${opened.firstError}`);
  await client.reset();
  const used = await withCpu(cluster, async () => {
    for (const orderId of orders) {
      const r = await cancel(cluster, 0, orderId);
      if (r.seq === null) {
        raw.errors++;
        continue;
      }
      const key = `${orderId}:${r.seq}`;
      raw.sent.set(key, { t0: r.t0, instance: 0 });
      raw.patchMs.push(r.ms);
      raw.expected += load.subs;
      if (!(await client.awaitKeys([[key, load.subs]]))) {
        raw.stalls++;
        failures.add(`${load.name}: event ${key} did not reach all ${load.subs} subscribers within 10 s`);
      }
    }
  });
  raw.serverCpuMs = used.serverCpuMs;
  raw.engineCpuMs = used.engineCpuMs;
  raw.samples = await client.collect();
  await client.closeAll();
  return raw;
}

/**
 * 1,000 orders with 3 subscribers each (one connection per subscriber); each order is
 * cancelled once, the PATCHes sent open-loop at RATE per second whatever the answers, order
 * i's PATCH to instance i mod n and its subscriber k on instance (i + k) mod n.
 */
async function manyOrders(cluster: Cluster, client: Subscribers, protocol: Protocol): Promise<Raw> {
  const n = cluster.urls.length;
  const orders = await cluster.createOrders(MANY.orders);
  const plan: Array<[number, string[]]> = [];
  orders.forEach((o, i) => {
    for (let k = 0; k < MANY.subsPerOrder; k++) plan.push([(i + k) % n, [`order:${o}`]]);
  });
  const opened = await client.open(protocol, cluster.urls, cluster.tokens.customer, plan);
  if (opened.failed > 0) throw new Error(`${MANY.name}: ${opened.failed} subscribers failed: ${opened.firstError}`);
  await client.reset();
  const sent = new Map<string, Sent>();
  const patchMs: number[] = [];
  const inFlight: Promise<void>[] = [];
  let errors = 0;
  const interval = 1000 / RATE;
  const start = performance.now() + 5;
  let complete = false;
  const used = await withCpu(cluster, async () => {
    for (let i = 0; i < orders.length; i++) {
      const wait = start + i * interval - performance.now();
      if (wait > 0.5) await Bun.sleep(wait);
      inFlight.push(
        cancel(cluster, i % n, orders[i]).then((r) => {
          if (r.seq === null) errors++;
          else {
            sent.set(`${orders[i]}:${r.seq}`, { t0: r.t0, instance: i % n });
            patchMs.push(r.ms);
          }
        }),
      );
    }
    await Promise.all(inFlight);
    complete = await client.awaitKeys(
      [...sent.keys()].map((key) => [key, MANY.subsPerOrder]),
      15_000,
    );
    if (!complete) failures.add(`${MANY.name}: not every event reached its ${MANY.subsPerOrder} subscribers within 15 s`);
  });
  const samples = await client.collect();
  await client.closeAll();
  return {
    load: `${MANY.name} (${RATE} PATCH/s)`,
    instances: n,
    expected: sent.size * MANY.subsPerOrder,
    sent,
    samples,
    patchMs,
    errors,
    stalls: complete ? 0 : 1,
    serverCpuMs: used.serverCpuMs,
    engineCpuMs: used.engineCpuMs,
  };
}

type CapacityResult = { held: number; attempted: number; firstError: string; openSeconds: number; rssBase: number; rssHeld: number; perConn: number };

/**
 * Idle connections on one fresh instance: each authenticated and subscribed to one order topic
 * (orders shared round-robin), opened until CAP or the first failures; RSS measured before
 * (after a warm-up of 200 connections opened and closed) and with all of them open.
 */
async function capacity(cluster: Cluster, protocol: Protocol, orders: string[]): Promise<CapacityResult> {
  const client = Subscribers.start();
  try {
    const pid = cluster.pids[0];
    const planOf = (count: number): Array<[number, string[]]> => Array.from({ length: count }, (_, i) => [0, [`order:${orders[i % orders.length]}`]]);
    await client.open(protocol, cluster.urls, cluster.tokens.customer, planOf(200));
    await client.closeAll();
    await Bun.sleep(2_000);
    const rssBase = rssOf(pid);
    const opened = await client.open(protocol, cluster.urls, cluster.tokens.customer, planOf(CAP), { concurrency: 100, maxFailures: 50 });
    await Bun.sleep(5_000);
    const rssHeld = rssOf(pid);
    await client.closeAll();
    return {
      held: opened.opened,
      attempted: opened.opened + opened.failed,
      firstError: opened.firstError,
      openSeconds: opened.ms / 1000,
      rssBase,
      rssHeld,
      perConn: opened.opened > 0 ? (rssHeld - rssBase) / opened.opened : NaN,
    };
  } finally {
    await client.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// The run

/** The embedded engine standalone on a free port, in a temp dir, with the chosen fsync policy. */
async function startEngine(): Promise<{ uri: string }> {
  const dir = await mkdtemp(join(tmpdir(), "bench-ws-engine-"));
  const proc = spawnManaged("embedded-mongo", [
    "bun",
    "run",
    "scripts/embedded-mongo.ts",
    "--port",
    "0",
    "--data-dir",
    dir,
    "--fsync",
    FSYNC,
    "--log-level",
    "warn",
  ], ENGINE_ENV);
  const line = await proc.waitForLine((l) => typeof l.port === "number");
  enginePid = proc.proc.pid;
  cleanups.push(async () => {
    await proc.stop("SIGTERM");
    await rm(dir, { recursive: true, force: true });
  });
  return { uri: `mongodb://127.0.0.1:${line.port as number}/?directConnection=true` };
}
const cleanups: Array<() => Promise<void>> = [];

function ensureReferenceDeps(): void {
  if (existsSync(join(REFERENCE_DIR, "node_modules", "socket.io"))) return;
  progress("installing the reference's dependencies (npm ci --prefix scripts/bench/reference)");
  const r = Bun.spawnSync(
    ["npm", existsSync(join(REFERENCE_DIR, "package-lock.json")) ? "ci" : "install", "--prefix", REFERENCE_DIR, "--no-audit", "--no-fund"],
    {
      cwd: REPO_ROOT,
      stdout: "inherit",
      stderr: "inherit",
    },
  );
  if (r.exitCode !== 0) throw new Error("npm install of the reference failed");
}

function versionOf(pkg: string): string {
  try {
    return (JSON.parse(readFileSync(join(REFERENCE_DIR, "node_modules", pkg, "package.json"), "utf8")) as { version: string }).version;
  } catch {
    return "?";
  }
}

type SystemResults = { fanout: FanoutResult[]; capacity: CapacityResult | null; clock: { offsetMs: number; rttMs: number } };

/**
 * Both systems run each load back to back (alternating which goes first), with both clusters up,
 * so background load on the machine falls on both alike; then each gets its idle-connection run
 * on a fresh instance.
 */
/** Dispatch's order event frame as a subscriber received it (from the warm-up), for the floor. */
let frame: string | null = null;

async function runAll(names: SystemName[], engineUri: string, redisUrl: string): Promise<Map<SystemName, SystemResults>> {
  const startOf = (name: SystemName) => (name === "dispatch" ? startDispatch : name === "reference" ? startReference : startFloor);
  const protocolOf = (name: SystemName): Protocol => (name === "reference" ? "socketio" : "dispatch");
  const client = Subscribers.start();
  const clock = await client.clockOffset();
  const withFloor = PARTS.has("sequential");
  const results = new Map<SystemName, SystemResults>([...names, ...(withFloor ? ["floor" as const] : [])].map((n) => [n, { fanout: [], capacity: null, clock }]));
  try {
    for (const instances of INSTANCES) {
      const clusters = new Map<SystemName, Cluster>();
      // The floor takes its turn in the sequential loads of one run only.
      const sequentialNames: SystemName[] = withFloor && instances === FLOOR_INSTANCES ? [...names, "floor"] : names;
      const turn = (k: number, of: SystemName[]) => (k % 2 === 0 ? of : [...of].reverse());
      try {
        for (const name of names) {
          progress(`${name}: starting ${instances} instance(s)${instances > 1 ? " with Redis" : ""}`);
          clusters.set(name, await startOf(name)(instances, `bench_${name}_${instances}`, engineUri, instances > 1 ? redisUrl : null));
        }
        // Warm-up (JIT, pools, first writes), not measured.
        for (const name of names) {
          await sequentialFanout(clusters.get(name)!, client, protocolOf(name), { name: "warm-up", subs: TINY ? 2 : 20, orders: TINY ? 2 : 20 });
          if (name === "dispatch") frame = (await client.sample()) ?? frame;
        }
        if (sequentialNames.includes("floor")) {
          progress("floor: starting a bare Bun server");
          const floor = await startFloor();
          clusters.set("floor", floor);
          // The bytes dispatch sent for an order event, so both push the same frame.
          if (frame) await ok(call("PUT", `${floor.urls[0]}/frame`, undefined, undefined, frame), "floor frame");
          await sequentialFanout(floor, client, "dispatch", { name: "warm-up", subs: TINY ? 2 : 20, orders: TINY ? 2 : 20 });
        }
        let k = 0;
        for (const load of PARTS.has("sequential") ? LOADS : []) {
          const pooled = new Map<SystemName, Raw>();
          for (let rep = 0; rep < REPEAT; rep++) {
            for (const name of turn(k++, sequentialNames)) {
              progress(`${name} ×${instances}: ${load.name} (run ${rep + 1} of ${REPEAT})`);
              const raw = await sequentialFanout(clusters.get(name)!, client, protocolOf(name), load);
              const before = pooled.get(name);
              pooled.set(name, before ? pool(before, raw) : raw);
            }
          }
          for (const [name, raw] of pooled) results.get(name)!.fanout.push(summarise(raw));
        }
        for (const name of PARTS.has("many") ? turn(k++, names) : []) {
          progress(`${name} ×${instances}: ${MANY.name}`);
          results.get(name)!.fanout.push(summarise(await manyOrders(clusters.get(name)!, client, protocolOf(name))));
        }
      } finally {
        for (const cluster of clusters.values()) await cluster.stop();
      }
    }
  } finally {
    await client.stop();
  }
  for (const name of PARTS.has("idle") ? names : []) {
    progress(`${name}: idle connections (cap ${CAP})`);
    const cluster = await startOf(name)(1, `bench_${name}_idle`, engineUri, null);
    try {
      results.get(name)!.capacity = await capacity(cluster, protocolOf(name), await cluster.createOrders(TINY ? 10 : QUICK ? 100 : 1000));
    } finally {
      await cluster.stop();
    }
  }
  return results;
}

const kib = (b: number) => (b / 1024).toFixed(1);
const mib = (b: number) => (b / 1024 / 1024).toFixed(0);

async function main(): Promise<void> {
  ensureReferenceDeps();
  const loadBefore = loadavg();
  const nodeVersion = Bun.spawnSync(["node", "--version"]).stdout.toString().trim();
  progress("starting redis-server and the embedded engine");
  const redis = await startRedis();
  const engine = await startEngine();
  let results = new Map<SystemName, SystemResults>();
  try {
    results = await runAll(SYSTEMS, engine.uri, redis.url);
  } finally {
    for (const c of cleanups) await c();
    await stopAllProcesses();
    await redis.stop();
  }

  const d = results.get("dispatch");
  const r = results.get("reference");
  const floor = results.get("floor");
  const load = (l: number[]) => l.map((x) => x.toFixed(2)).join(" / ");
  const out: string[] = [];
  out.push(
    `bench:ws at ${Bun.spawnSync(["git", "rev-parse", "--short", "HEAD"], { cwd: REPO_ROOT }).stdout.toString().trim() || "?"}: dispatch on Bun ${Bun.version} vs the reference on Node ${nodeVersion} + socket.io ${versionOf("socket.io")} + ` +
      `@socket.io/redis-adapter ${versionOf("@socket.io/redis-adapter")} + redis ${versionOf("redis")} + mongodb ${versionOf("mongodb")}; ` +
      `run took ${((performance.now() - runStarted) / 1000).toFixed(0)} s; load average (1/5/15 min) at start ${load(loadBefore)}, at end ${load(loadavg())}.`,
  );
  out.push("");
  out.push(
    `- Machine: ${cpus().length} cores shared by everything: the server instance(s), the embedded engine (standalone, fsync ${FSYNC}), redis-server, ` +
      "one subscriber process holding every client socket, and this driver sending the PATCHes. Absolute numbers are for this box; compare the two columns.",
  );
  out.push(
    "- Latency: from just before the driver sends the PATCH until the subscriber process's socket hands over the event's bytes, both stamped with " +
      "performance.timeOrigin + performance.now(). It includes the PATCH's own work (HTTP, JWT, state check, the compare-and-set on the engine). " +
      "Spread: per event, first to last delivery (the fan-out alone). Sequential loads move one order at a time and wait until every subscriber has the event; " +
      `each sequential load runs ${REPEAT} times per server, the servers taking turns with both clusters up, and the runs are pooled, so background load hits both alike; ` +
      `the 1,000-orders load sends ${RATE} PATCH/s open-loop, each order's 3 subscribers on separate connections. Every event is a customer's cancel of a fresh order (a move that starts no automatic dispatch, so both servers do the same work).`,
  );
  const clock = [...results.values()][0]?.clock;
  if (clock) out.push(`- Clock offset subscriber − driver: ${fmt(clock.offsetMs, 3)} ms (from the fastest of 30 pipe round trips, ${fmt(clock.rttMs, 3)} ms).`);
  out.push(
    "- Subscribers: a minimal WebSocket client on raw TCP (scripts/bench/ws-subscribers.ts), the same for both servers: dispatch's protocol, and Socket.IO's " +
      "wire protocol (Engine.IO v4, websocket transport) for the reference; every subscriber authenticates with a JWT and subscribes to order topics.",
  );
  out.push(
    "- Reference (scripts/bench/reference/server.mjs): Node http + Socket.IO 4, a room per order, @socket.io/redis-adapter with two instances; JWT (jsonwebtoken, " +
      "same secret and claims) checked in io.use on connect; subscribe reads the order and joins its room only for its parties and admins, then acks; PATCH " +
      "verifies the token, reads the order, checks caller and move against the same transition table as dispatch, commits one findOneAndUpdate compare-and-set " +
      "on version ($set status, $inc version, $push history; same secondary indexes as dispatch), then emits the same order.updated message (with the full order) to the room.",
  );
  out.push("");
  out.push("### Fan-out latency (ms): PATCH → each subscriber has the event");
  out.push("");
  const keyOf = (f: FanoutResult) => `${f.instances}:${f.load}`;
  const refBy = new Map((r?.fanout ?? []).map((f) => [keyOf(f), f]));
  const ratio = (a: number | undefined, b: number | undefined) => ratioOf(a ?? NaN, b ?? NaN, 1);
  const rows: string[][] = [];
  for (const f of d?.fanout ?? r?.fanout ?? []) {
    const mine = d?.fanout.find((x) => keyOf(x) === keyOf(f));
    const ref = refBy.get(keyOf(f));
    const cell = (x: FanoutResult | undefined) => (x ? [fmt(x.all.p50), fmt(x.all.p99), fmt(x.all.max)] : ["–", "–", "–"]);
    rows.push([
      f.load,
      f.instances === 1 ? "1" : "2 (Redis)",
      String(f.expected),
      ...cell(mine),
      ...cell(ref),
      ratio(mine?.all.p99, ref?.all.p99),
      f.load.startsWith("1 subscriber") || f.load.startsWith("1,000 orders") ? "–" : ratio(mine?.spread.p99, ref?.spread.p99),
    ]);
  }
  out.push(
    table(
      [
        "load",
        "instances",
        "deliveries",
        "dispatch p50",
        "p99",
        "max",
        "reference p50",
        "p99",
        "max",
        "p99 dispatch ÷ reference",
        "spread p99 dispatch ÷ reference",
      ],
      rows,
    ),
  );
  out.push("");
  // The floor: the same frame to the same sockets from a bare Bun server (one process).
  const floorOf = (f: FanoutResult) => floor?.fanout.find((x) => x.load === f.load);
  const floorRows: string[][] = [];
  for (const f of floor ? (d?.fanout ?? []) : []) {
    const bare = floorOf(f);
    if (!bare) continue;
    const spreadApplies = !f.load.startsWith("1 subscriber");
    floorRows.push([
      f.load,
      f.instances === 1 ? "1" : "2 (Redis)",
      spreadApplies ? `${fmt(f.spread.p50)} / ${fmt(f.spread.p99)}` : "–",
      spreadApplies ? `${fmt(bare.spread.p50)} / ${fmt(bare.spread.p99)}` : "–",
      spreadApplies ? ratio(f.spread.p99, bare.spread.p99) : "–",
      `${fmt(f.all.p99)} / ${fmt(bare.all.p99)}`,
      `${fmt(f.serverCpuMs, 1)} / ${fmt(bare.serverCpuMs, 1)}`,
      `${f.frameBytes} / ${bare.frameBytes}`,
    ]);
  }
  if (floorRows.length) {
    out.push("### Fan-out against its floor: a bare Bun server (Bun.serve, native topics, one process) publishing the same frame to the same sockets (ms)");
    out.push("");
    out.push(
      table(
        ["load", "dispatch instances", "dispatch spread p50 / p99", "floor spread p50 / p99", "spread p99 dispatch ÷ floor", "end-to-end p99 dispatch / floor", "server CPU ms per event: dispatch / floor", "frame bytes: dispatch / floor"],
        floorRows,
      ),
    );
    out.push("");
  }
  out.push("### Details: PATCH round trip, fan-out spread, deliveries through Redis (ms); CPU per PATCH; frame size");
  out.push("");
  const detail: string[][] = [];
  for (const [name, res] of results) {
    for (const f of res.fanout) {
      detail.push([
        name,
        f.load,
        f.instances === 1 ? "1" : "2 (Redis)",
        `${fmt(f.patch.p50)} / ${fmt(f.patch.p99)}`,
        f.load.startsWith("1 subscriber") ? "–" : `${fmt(f.spread.p50)} / ${fmt(f.spread.p99)}`,
        f.remote ? `${fmt(f.remote.p50)} / ${fmt(f.remote.p99)} (${f.remote.n})` : "–",
        `${fmt(f.serverCpuMs, 1)} / ${name === "floor" ? "–" : fmt(f.engineCpuMs, 1)}`,
        String(f.frameBytes),
        `${f.all.n}/${f.expected}`,
        String(f.errors + f.stalls),
      ]);
    }
  }
  out.push(
    table(
      [
        "server",
        "load",
        "instances",
        "PATCH p50 / p99",
        "spread p50 / p99",
        "other instance's subscribers p50 / p99 (n)",
        "CPU ms per PATCH: servers / engine",
        "frame bytes",
        "received / expected",
        "errors",
      ],
      detail,
    ),
  );
  out.push("");
  out.push(`### Idle connections on one instance (each authenticated and subscribed to one order; attempt capped at ${CAP})`);
  out.push("");
  const capRows: string[][] = [];
  for (const [name, res] of results) {
    const c = res.capacity;
    if (!c) continue;
    capRows.push([
      name,
      `${c.held}${c.held >= CAP ? " (cap)" : ""}`,
      `${fmt(c.openSeconds, 1)} s`,
      mib(c.rssBase),
      mib(c.rssHeld),
      kib(c.perConn),
      fmt((1024 * 1024 * 1024) / c.perConn, 0),
      c.firstError || "–",
    ]);
  }
  out.push(
    table(
      ["server", "connections held", "time to open", "RSS before (MiB)", "RSS held (MiB)", "RSS per connection (KiB)", "connections per GiB", "first failure"],
      capRows,
    ),
  );
  if (d && (r || floor)) {
    out.push("");
    out.push("### Against the targets (issue 12)");
    out.push("");
    const verdict = (x: number, limit: number) => (Number.isFinite(x) ? `${x.toFixed(2)}× (${x <= limit ? "met" : "not met"})` : "– (not measured)");
    const thousand = d.fanout.find((f) => f.instances === FLOOR_INSTANCES && f.load.startsWith("1,000 subscribers"));
    const bare = thousand ? floorOf(thousand) : undefined;
    if (floor) out.push(`- Spread p99 at 1,000 subscribers at most 1.5× the floor's: ${verdict((thousand?.spread.p99 ?? NaN) / (bare?.spread.p99 ?? NaN), 1.5)}.`);
    for (const load of ["1 subscriber, one order", "100 subscribers, one order"]) {
      if (!r) break;
      for (const f of d.fanout.filter((x) => x.load === load)) {
        const ref = refBy.get(keyOf(f));
        out.push(`- End-to-end p99, ${load}, ${f.instances} instance(s), at most 0.6× the reference's: ${verdict(f.all.p99 / (ref?.all.p99 ?? NaN), 0.6)}.`);
      }
    }
    if (r && d.capacity && r.capacity) {
      out.push(
        `- Connections per GiB at least 2× the reference: ${fmt(r.capacity.perConn / d.capacity.perConn, 2)}× ` +
          `(${kib(d.capacity.perConn)} vs ${kib(r.capacity.perConn)} KiB RSS per connection).`,
      );
    }
  }
  console.log(`\n${out.join("\n")}`);
  failures.exitIfAny("bench:ws");
}

await main();
process.exit(0);

/**
 * `bun run bench:locations`: courier positions as users deploy them: the standalone engine (data
 * dir, fsync on), one server instance, and this process as the load: N couriers on their own
 * WebSockets, each sending one fix a second (staggered), N rising step by step. Some couriers
 * (TRACKED) carry an order that a customer's socket follows; their fixes carry the send time,
 * so the forwarding latency to that subscriber is measured. Reports per step: fixes/s sent, CPU
 * ms of the server and of the engine per 1,000 fixes (from /proc), fixes per CPU-second, and
 * forwarding p50/p99; and, before each step's fixes, the CPU ms per second both spend with the
 * couriers connected and silent (the idle baseline inside the per-fix figures), and the CPU ms
 * above idle of each new courier's first fix (sent before the measured window: it reads the
 * courier's orders and creates its document once per connection). Exits non-zero, printing the first errors, when any request, socket or
 * fix fails (an error frame).
 *
 * Env: BENCH_LOCATIONS_STEPS (couriers per step, default "1000,2000,4000,8000": 8,000 sockets on each
 * side need a file limit above that, `ulimit -n`),
 * BENCH_SECONDS (per step, default 10), BENCH_TINY=1 (10 and 20 couriers, 2 s).
 */
import { cpus, loadavg } from "node:os";
import { startEngineProcess, startServerProcess, stopAllProcesses } from "../../test/helpers/processes";
import { Failures, TINY, cpuMsOf, fmt, inBatches, ratio, stats, table } from "./lib";

const STEPS = (process.env.BENCH_LOCATIONS_STEPS ?? (TINY ? "10,20" : "1000,2000,4000,8000")).split(",").map(Number);
const SECONDS = Number(process.env.BENCH_SECONDS ?? (TINY ? 2 : 10));
const TRACKED = TINY ? 3 : 20;
/** Seconds per step with the couriers connected and silent (the idle CPU baseline). */
const IDLE_SECONDS = Number(process.env.BENCH_LOCATIONS_IDLE_SECONDS ?? (TINY ? 1 : 3));
const failures = new Failures();
const progress = (msg: string) => process.stderr.write(`[bench:locations] ${msg}\n`);

type Json = Record<string, unknown>;

async function call(base: string, method: string, path: string, token?: string, body?: unknown): Promise<Json> {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 300)}`);
  return text ? (JSON.parse(text) as Json) : {};
}

type Courier = { id: string; token: string; ws: WebSocket; seq: number };

async function openSocket(wsUrl: string, token: string, onMessage: (data: Json) => void): Promise<WebSocket> {
  const ws = new WebSocket(`${wsUrl}?token=${encodeURIComponent(token)}`);
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve();
    ws.onerror = () => reject(new Error("websocket failed to open"));
  });
  ws.onmessage = (e) => onMessage(JSON.parse(String(e.data)) as Json);
  ws.onclose = (e) => {
    if (!closing) failures.add(`websocket closed by the server: ${e.code} ${e.reason}`);
  };
  return ws;
}
let closing = false;

async function main(): Promise<void> {
  const loadBefore = loadavg();
  const engine = await startEngineProcess();
  const server = await startServerProcess({
    NODE_ENV: "production",
    MONGODB_URI: engine.uri,
    MONGODB_DB: "bench_locations",
    PASSWORD_HASH_MEMORY_KIB: "19456",
    PASSWORD_HASH_TIME_COST: "1",
    RATE_LIMIT_USER_WRITES: "0",
    RATE_LIMIT_IP_WRITES: "0",
    WS_MAX_CONNECTIONS_PER_USER: "100000",
  });
  const base = server.url;
  const rows: string[][] = [];
  const couriers: Courier[] = [];
  const latencies: number[] = [];
  try {
    const register = async (role: string, n: number) => {
      const body = await call(base, "POST", "/auth/register", undefined, { email: `${role}-${n}-${crypto.randomUUID().slice(0, 6)}@bench.test`, password: "password-123", name: `${role} ${n}`, role });
      return { token: body.token as string, id: (body.user as { id: string }).id };
    };
    const owner = await register("restaurant", 0);
    const customer = await register("customer", 0);
    const restaurant = await call(base, "POST", "/restaurants", owner.token, { name: "Bench Bistro", location: { lat: 48.8566, lng: 2.3522 }, menu: [{ name: "Dish", priceCents: 1000 }] });
    const menuItemId = (restaurant.menu as Array<{ id: string }>)[0].id;
    const follower = await openSocket(server.wsUrl, customer.token, (m) => {
      if (m.type === "courier.location" && typeof m.at === "string") latencies.push(Date.now() - Date.parse(m.at));
      else if (m.type === "error") failures.add(`subscriber: ${JSON.stringify(m)}`);
    });

    const addCouriers = async (upTo: number) => {
      const start = couriers.length;
      const added = await inBatches(upTo - start, 32, async (k) => {
        const who = await register("courier", start + k);
        const ws = await openSocket(server.wsUrl, who.token, (m) => {
          if (m.type === "error") failures.add(`courier: ${JSON.stringify(m)}`);
        });
        return { ...who, ws, seq: 0 };
      });
      couriers.push(...added);
      // The first couriers carry an order the customer follows.
      for (let i = start; i < Math.min(upTo, TRACKED); i++) {
        const order = await call(base, "POST", "/orders", customer.token, { restaurantId: restaurant.id, items: [{ menuItemId, quantity: 1 }], deliveryLocation: { lat: 48.86, lng: 2.36 } });
        await call(base, "PATCH", `/orders/${order.id}`, owner.token, { status: "accepted" });
        await call(base, "POST", `/orders/${order.id}/claim`, couriers[i].token);
        follower.send(JSON.stringify({ op: "subscribe", topic: `order:${order.id}` }));
      }
    };

    const t0 = Date.now() - 3_600_000; // fix times: strictly increasing per courier, never ahead of the server
    const sendFix = (i: number) => {
      const c = couriers[i];
      c.seq++;
      const at = i < TRACKED ? Date.now() : t0 + c.seq * 1000;
      c.ws.send(JSON.stringify({ op: "location", lat: 48.85 + (i % 100) / 1000 + c.seq / 1e5, lng: 2.35 + Math.floor(i / 100) / 1000, at }));
    };
    for (const n of STEPS) {
      progress(`${n} couriers: connecting`);
      const known = couriers.length;
      await addCouriers(n);
      await Bun.sleep(300);
      // What the server and the engine spend with these couriers connected and silent: the
      // baseline that every fix's share is measured on top of.
      const idle0 = [cpuMsOf(server.proc.pid), cpuMsOf(engine.proc.pid)];
      const idleStarted = performance.now();
      await Bun.sleep(IDLE_SECONDS * 1000);
      const idleSeconds = (performance.now() - idleStarted) / 1000;
      const idle = [(cpuMsOf(server.proc.pid) - idle0[0]) / idleSeconds, (cpuMsOf(engine.proc.pid) - idle0[1]) / idleSeconds];
      // Each new courier's first fix, outside the measured window: it reads the orders the courier
      // carries and creates its document, once per connection. Its cost (above idle) is reported apart.
      const first0 = cpuMsOf(server.proc.pid) + cpuMsOf(engine.proc.pid);
      const firstStarted = performance.now();
      for (let i = known; i < n; i++) sendFix(i);
      await Bun.sleep(1_500);
      const firstCpu = cpuMsOf(server.proc.pid) + cpuMsOf(engine.proc.pid) - first0 - ((idle[0] + idle[1]) * (performance.now() - firstStarted)) / 1000;
      latencies.length = 0;
      progress(`${n} couriers: 1 fix/s each for ${SECONDS} s`);
      const cpu0 = [cpuMsOf(server.proc.pid), cpuMsOf(engine.proc.pid)];
      const started = performance.now();
      let sent = 0;
      for (let second = 0; second < SECONDS; second++) {
        const tick = started + second * 1000;
        for (let i = 0; i < n; i++) {
          // Staggered across the second.
          const due = tick + (i * 1000) / n;
          const wait = due - performance.now();
          if (wait > 2) await Bun.sleep(wait);
          sendFix(i);
          sent++;
        }
      }
      const seconds = (performance.now() - started) / 1000;
      await Bun.sleep(500); // the last forwards and the last batch
      const serverCpu = cpuMsOf(server.proc.pid) - cpu0[0];
      const engineCpu = cpuMsOf(engine.proc.pid) - cpu0[1];
      const lat = stats(latencies);
      rows.push([
        String(n),
        fmt(sent / seconds, 0),
        fmt((1000 * serverCpu) / sent, 0),
        fmt((1000 * engineCpu) / sent, 0),
        ratio(sent, (serverCpu + engineCpu) / 1000, 0, ""),
        `${fmt(lat.p50)} / ${fmt(lat.p99)} (${lat.n})`,
        `${fmt(idle[0], 0)} / ${fmt(idle[1], 0)}`,
        n > known ? fmt(firstCpu / (n - known), 2) : "–",
      ]);
    }
    closing = true;
    follower.close();
    for (const c of couriers) c.ws.close();
  } finally {
    closing = true;
    await server.stop("SIGTERM");
    await engine.stop("SIGTERM");
    await stopAllProcesses();
  }
  const loads = (l: number[]) => l.map((x) => x.toFixed(2)).join(" / ");
  console.log(
    `\nbench:locations: ${SECONDS} s per step; Bun ${Bun.version}; ${cpus().length} cores shared by the engine (standalone, data dir, fsync each write), one server ` +
      `instance and this load process; load average (1/5/15 min) at start ${loads(loadBefore)}, at end ${loads(loadavg())}.`,
  );
  console.log(`Each courier on its own WebSocket sends 1 fix/s; ${TRACKED} of them carry an order a customer's socket follows (forwarding latency: fix sent → courier.location received, ms).\n`);
  console.log(table(["couriers", "fixes/s sent", "server CPU ms / 1,000 fixes", "engine CPU ms / 1,000 fixes", "fixes per CPU-second", "forwarding p50 / p99 (n)", "idle CPU ms/s: server / engine", "first fix: CPU ms per new courier"], rows));
  failures.exitIfAny("bench:locations");
}

await main();
process.exit(0);

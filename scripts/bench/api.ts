/**
 * `bun run bench:api`: order transitions per second and their latency as users deploy: the
 * standalone engine (journal on a data dir, fsync on every write), one server instance and the
 * load generator (scripts/bench/api-load.ts) as separate processes. Side by side in the same
 * run, per client count, the floors: `GET /health` on the same server (the HTTP stack alone)
 * and the raw commit (the driver's findOneAndUpdate by _id and version on the same engine: the
 * transition's one write alone). Reports transition p50 ÷ (health p50 + raw commit p50), the
 * distance to the limit, and transitions/s as a share of the /health rate.
 *
 * Exits non-zero, printing the first errors, when any request fails.
 * Env: BENCH_SECONDS (per measurement, default 5), BENCH_CLIENTS (default "1,8,32,128"),
 * BENCH_TINY=1 (1 and 2 clients, 0.5 s each: the `bun test` smoke run).
 */
import { cpus, loadavg } from "node:os";
import { REPO_ROOT, startEngineProcess, startServerProcess, stopAllProcesses } from "../../test/helpers/processes";
import type { Cast, Job, LoadResult } from "./api-load";
import { Failures, TINY, cpuMsOf, fmt, ratio, table } from "./lib";

const SECONDS = Number(process.env.BENCH_SECONDS ?? (TINY ? 0.5 : 5));
const CLIENTS = (process.env.BENCH_CLIENTS ?? (TINY ? "1,2" : "1,8,32,128")).split(",").map(Number);
const DB = "bench_api";
const ADMIN = { email: "admin@bench.test", password: "bench-admin-password" };

const failures = new Failures();
const progress = (msg: string) => process.stderr.write(`[bench:api] ${msg}\n`);

type Json = Record<string, unknown>;

async function call(base: string, method: string, path: string, token?: string, body?: unknown): Promise<Json> {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  if (res.status >= 300) throw new Error(`set-up ${method} ${path}: ${res.status} ${text.slice(0, 300)}`);
  return text ? (JSON.parse(text) as Json) : {};
}

/** One client's cast: its own customer, restaurant owner (with a restaurant) and courier. */
async function makeCast(base: string, n: number): Promise<Cast> {
  const register = async (role: string) =>
    (await call(base, "POST", "/auth/register", undefined, { email: `bench-${role}-${n}@bench.test`, password: "password-123", name: `${role} ${n}`, role })).token as string;
  const [customer, owner, courier] = await Promise.all([register("customer"), register("restaurant"), register("courier")]);
  const restaurant = await call(base, "POST", "/restaurants", owner, {
    name: `Bench Bistro ${n}`,
    location: { lat: 48.8566, lng: 2.3522 },
    menu: [{ name: "Dish", priceCents: 1000 }],
  });
  const menu = restaurant.menu as Array<{ id: string }>;
  return { customer, owner, courier, restaurantId: restaurant.id as string, menuItemId: menu[0].id };
}

/** Runs one job in a load-generator process of its own; CPU ms of the server and the engine meanwhile. */
async function load(job: Job, pids: { server: number; engine: number }): Promise<LoadResult & { serverCpuMs: number; engineCpuMs: number }> {
  const cpu0 = [cpuMsOf(pids.server), cpuMsOf(pids.engine)];
  const proc = Bun.spawn(["bun", "run", "scripts/bench/api-load.ts", JSON.stringify(job)], { cwd: REPO_ROOT, stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(`load generator (${job.kind}) exited with ${code}: ${err.slice(-2000)}`);
  const result = JSON.parse(out.trim().split("\n").pop() ?? "{}") as LoadResult;
  failures.merge(result.failures);
  return { ...result, serverCpuMs: cpuMsOf(pids.server) - cpu0[0], engineCpuMs: cpuMsOf(pids.engine) - cpu0[1] };
}

async function main(): Promise<void> {
  const loadBefore = loadavg();
  const engine = await startEngineProcess();
  const server = await startServerProcess({
    NODE_ENV: "production",
    MONGODB_URI: engine.uri,
    MONGODB_DB: DB,
    ADMIN_EMAIL: ADMIN.email,
    ADMIN_PASSWORD: ADMIN.password,
    PASSWORD_HASH_MEMORY_KIB: "19456",
    PASSWORD_HASH_TIME_COST: "1",
    // One machine sends everything: per-user and per-IP write limits would refuse the load.
    RATE_LIMIT_USER_WRITES: "0",
    RATE_LIMIT_IP_WRITES: "0",
  });
  const pids = { server: server.proc.pid, engine: engine.proc.pid };
  const rows: string[][] = [];
  const details: string[][] = [];
  try {
    const maxClients = Math.max(...CLIENTS);
    progress(`setting up ${maxClients} casts (customer, restaurant, courier)`);
    const casts: Cast[] = [];
    for (let i = 0; i < maxClients; i += 16) casts.push(...(await Promise.all(Array.from({ length: Math.min(16, maxClients - i) }, (_, k) => makeCast(server.url, i + k)))));
    // Warm-up (JIT, pools, the engine's first writes); also leaves a real order to copy for the raw commit.
    const warm = Math.min(4, maxClients);
    await load({ kind: "transitions", url: server.url, clients: warm, seconds: 1, casts }, pids);
    await load({ kind: "health", url: server.url, clients: warm, seconds: 1 }, pids);
    const template = await call(server.url, "POST", "/orders", casts[0].customer, {
      restaurantId: casts[0].restaurantId,
      items: [{ menuItemId: casts[0].menuItemId, quantity: 1 }],
      deliveryLocation: { lat: 48.86, lng: 2.36 },
    });
    for (const clients of CLIENTS) {
      progress(`${clients} client(s): GET /health, raw commit, transitions (${SECONDS} s each)`);
      const health = await load({ kind: "health", url: server.url, clients, seconds: SECONDS }, pids);
      const commit = await load({ kind: "commit", engineUri: engine.uri, db: DB, templateId: template.id as string, clients, seconds: SECONDS }, pids);
      const moves = await load({ kind: "transitions", url: server.url, clients, seconds: SECONDS, casts }, pids);
      const rate = (r: LoadResult) => (r.ops > 0 ? r.ops / r.seconds : NaN);
      rows.push([
        String(clients),
        fmt(rate(moves), 0),
        `${fmt(moves.p50)} / ${fmt(moves.p99)}`,
        fmt(rate(health), 0),
        `${fmt(health.p50)} / ${fmt(health.p99)}`,
        fmt(rate(commit), 0),
        `${fmt(commit.p50)} / ${fmt(commit.p99)}`,
        ratio(moves.p50, health.p50 + commit.p50),
        ratio(100 * rate(moves), rate(health), 2, " %"),
      ]);
      details.push([
        String(clients),
        String(moves.ops),
        ratio(moves.serverCpuMs, moves.ops, 2, ""),
        ratio(moves.engineCpuMs, moves.ops, 2, ""),
        ratio(health.serverCpuMs, health.ops, 3, ""),
        ratio(commit.engineCpuMs, commit.ops, 2, ""),
        String(moves.failures.count + health.failures.count + commit.failures.count),
      ]);
    }
  } finally {
    await server.stop("SIGTERM");
    await engine.stop("SIGTERM");
    await stopAllProcesses();
  }
  const loads = (l: number[]) => l.map((x) => x.toFixed(2)).join(" / ");
  console.log(
    `\nbench:api: ${SECONDS} s per measurement; Bun ${Bun.version}; ${cpus().length} cores shared by the engine (standalone, data dir, fsync each write), ` +
      `one server instance and the load generator (separate processes); load average (1/5/15 min) at start ${loads(loadBefore)}, at end ${loads(loadavg())}.`,
  );
  console.log("Transition: one PATCH /orders/:id or POST /orders/:id/claim (6 per order, placed → delivered). Latencies in ms (p50 / p99).\n");
  console.log(
    table(
      ["clients", "transitions/s", "transition p50 / p99", "GET /health/s", "health p50 / p99", "raw commits/s", "commit p50 / p99", "p50 ÷ (health + commit)", "share of /health rate"],
      rows,
    ),
  );
  console.log("\nCPU ms per operation (server / engine), from /proc while each measurement ran:\n");
  console.log(table(["clients", "transitions", "server per transition", "engine per transition", "server per /health", "engine per raw commit", "errors"], details));
  failures.exitIfAny("bench:api");
}

await main();
process.exit(0);

/**
 * `bun run bench:api`: order transitions per second and their latency over real HTTP, with N
 * concurrent clients, next to a plain `GET /health` on the same server in the same run (the
 * floor: what the HTTP stack alone costs). Starts its own server on the embedded engine
 * (in memory) and stops by itself.
 *
 * Env: BENCH_SECONDS (per measurement, default 5), BENCH_CLIENTS (default "1,8,32").
 */
import { loadConfig } from "../../src/config";
import { startServer } from "../../src/server";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CLIENTS = (process.env.BENCH_CLIENTS ?? "1,8,32").split(",").map(Number);
const WARMUP_SECONDS = 1;

const server = await startServer(
  loadConfig({
    NODE_ENV: "test",
    PORT: "0",
    HOST: "127.0.0.1",
    DATA_DIR: ":memory:",
    LOG_LEVEL: "silent",
    JWT_SECRET: "bench-secret-0123456789abcdef",
    PASSWORD_HASH_MEMORY_KIB: "1024",
    PASSWORD_HASH_TIME_COST: "1",
    LOGIN_MAX_ATTEMPTS: "10000",
  }),
);
const base = server.url;

type Json = Record<string, unknown>;

async function call(method: string, path: string, token?: string, body?: unknown): Promise<{ status: number; body: Json }> {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Json) : {} };
}

async function expectOk(p: Promise<{ status: number; body: Json }>, what: string): Promise<Json> {
  const res = await p;
  if (res.status >= 300) throw new Error(`${what}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

let userSeq = 0;
async function register(role: "customer" | "restaurant" | "courier"): Promise<string> {
  userSeq++;
  const body = await expectOk(
    call("POST", "/auth/register", undefined, { email: `bench-${role}-${userSeq}@bench.test`, password: "password-123", name: `${role} ${userSeq}`, role }),
    "register",
  );
  return body.token as string;
}

/** One client's cast: its own customer, restaurant owner (with a restaurant) and courier. */
type ClientCast = { customer: string; owner: string; courier: string; restaurantId: string };

async function makeCast(): Promise<ClientCast> {
  const [customer, owner, courier] = await Promise.all([register("customer"), register("restaurant"), register("courier")]);
  const restaurant = await expectOk(
    call("POST", "/restaurants", owner, {
      name: "Bench Bistro",
      location: { lat: 48.8566, lng: 2.3522 },
      menu: [{ id: "dish", name: "Dish", priceCents: 1000 }],
    }),
    "create restaurant",
  );
  return { customer, owner, courier, restaurantId: restaurant.id as string };
}

type Sample = { latencies: number[]; ops: number; seconds: number; errors: number };

/** Runs `clients` loops of `step` for `seconds`, timing every request each step makes. */
async function measure(clients: number, seconds: number, step: (i: number, timed: <T>(p: () => Promise<T>) => Promise<T>) => Promise<void>): Promise<Sample> {
  const latencies: number[] = [];
  let errors = 0;
  const timed = async <T>(p: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    const out = await p();
    latencies.push(performance.now() - t0);
    return out;
  };
  const started = performance.now();
  const until = started + seconds * 1000;
  await Promise.all(
    Array.from({ length: clients }, async (_, i) => {
      while (performance.now() < until) {
        try {
          await step(i, timed);
        } catch {
          errors++;
        }
      }
    }),
  );
  return { latencies, ops: latencies.length, seconds: (performance.now() - started) / 1000, errors };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

const health = (_: number, timed: <T>(p: () => Promise<T>) => Promise<T>) =>
  timed(() => call("GET", "/health")).then((r) => {
    if (r.status !== 200) throw new Error("health");
  });

/** Places an order (not timed) and drives it placed → delivered: 6 timed transitions. */
function lifecycle(casts: ClientCast[]) {
  return async (i: number, timed: <T>(p: () => Promise<T>) => Promise<T>) => {
    const k = casts[i];
    const order = await expectOk(
      call("POST", "/orders", k.customer, { restaurantId: k.restaurantId, items: [{ menuItemId: "dish", quantity: 1 }], deliveryLocation: { lat: 48.86, lng: 2.36 } }),
      "place",
    );
    const id = order.id as string;
    const moves: Array<[string, string, string | null]> = [
      ["PATCH", k.owner, "accepted"],
      ["POST", k.courier, null],
      ["PATCH", k.owner, "preparing"],
      ["PATCH", k.owner, "ready_for_pickup"],
      ["PATCH", k.courier, "picked_up"],
      ["PATCH", k.courier, "delivered"],
    ];
    for (const [method, token, status] of moves) {
      const path = status === null ? `/orders/${id}/claim` : `/orders/${id}`;
      await timed(() => expectOk(call(method, path, token, status === null ? undefined : { status }), status ?? "claim"));
    }
  };
}

const rows: string[][] = [];
const maxClients = Math.max(...CLIENTS);
const casts = await Promise.all(Array.from({ length: maxClients }, makeCast));

// Warm-up: JIT, connection pools, the engine's first writes.
await measure(Math.min(4, maxClients), WARMUP_SECONDS, lifecycle(casts));
await measure(Math.min(4, maxClients), WARMUP_SECONDS, health);

for (const clients of CLIENTS) {
  const floor = await measure(clients, SECONDS, health);
  const moves = await measure(clients, SECONDS, lifecycle(casts));
  const fs = [...floor.latencies].sort((a, b) => a - b);
  const ms = [...moves.latencies].sort((a, b) => a - b);
  const floorRate = floor.ops / floor.seconds;
  const moveRate = moves.ops / moves.seconds;
  rows.push([String(clients), "GET /health", floorRate.toFixed(0), percentile(fs, 50).toFixed(2), percentile(fs, 99).toFixed(2), "1.00", String(floor.errors)]);
  rows.push([
    String(clients),
    "order transition",
    moveRate.toFixed(0),
    percentile(ms, 50).toFixed(2),
    percentile(ms, 99).toFixed(2),
    (floorRate / moveRate).toFixed(2),
    String(moves.errors),
  ]);
}

await server.stop();

const header = ["clients", "operation", "ops/s", "p50 ms", "p99 ms", "health÷this", "errors"];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
console.log(`\nbench:api: ${SECONDS}s per measurement, Bun ${Bun.version}, embedded engine in memory, real HTTP on 127.0.0.1`);
console.log("order transition = one PATCH /orders/:id or POST /orders/:id/claim (6 per order, placed → delivered)\n");
console.log(line(header));
console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
for (const r of rows) console.log(line(r));
process.exit(0);

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startEngineProcess, startServerProcess, stopAllProcesses, type EngineProcess, type ServerProcess, openPizzeriaOn, processHttp, registerOn, type ProcessResponse } from "../helpers/processes";

/**
 * Durable timers across server processes (`bun run src/index.ts`) sharing one standalone
 * embedded engine, in real time: a deadline set through one instance fires on another after
 * the first is SIGKILLed, and instances running side by side fire each deadline once.
 */
const ACCEPT_TIMEOUT_MS = 2_000;
const ADMIN = { email: "admin@timers.test", password: "admin-password-1" };
let engine: EngineProcess;
const started: ServerProcess[] = [];
let env: Record<string, string>;

type User = { token: string; id: string };
type Res = ProcessResponse;
const http = processHttp;
const register = (via: ServerProcess, role: string): Promise<User> => registerOn(via, role, "timers.test");
let customer: User;
let restaurantId: string;

async function instance(id: string): Promise<ServerProcess> {
  const s = await startServerProcess({ ...env, INSTANCE_ID: id });
  started.push(s);
  return s;
}

async function placeOrder(via: ServerProcess): Promise<{ id: string; createdAt: string }> {
  const res = await http(via, "POST", "/orders", customer, { restaurantId, items: [{ menuItemId: "pizza", quantity: 1 }], deliveryLocation: { lat: 48.8606, lng: 2.3622 } });
  expect(res.status).toBe(201);
  return res.body;
}

/** The order once it is cancelled (polled through `via`). */
async function cancelled(via: ServerProcess, orderId: string, timeoutMs = 8_000): Promise<any> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const res = await http(via, "GET", `/orders/${orderId}`, customer);
    if (res.body?.status === "cancelled") return res.body;
    if (performance.now() > deadline) throw new Error(`order ${orderId} still ${res.body?.status} after ${timeoutMs} ms`);
    await Bun.sleep(25);
  }
}

function timeoutEntries(order: { history: Array<{ event: string }> }) {
  return order.history.filter((h) => h.event === "ACCEPT_TIMEOUT");
}

beforeAll(async () => {
  engine = await startEngineProcess();
  env = {
    MONGODB_URI: engine.uri,
    ADMIN_EMAIL: ADMIN.email,
    ADMIN_PASSWORD: ADMIN.password,
    PASSWORD_HASH_MEMORY_KIB: "1024",
    PASSWORD_HASH_TIME_COST: "1",
    ACCEPT_TIMEOUT_SECONDS: String(ACCEPT_TIMEOUT_MS / 1000),
    RATE_LIMIT_USER_WRITES: "100000",
    RATE_LIMIT_IP_WRITES: "100000",
  };
  const first = await instance("T0"); // alone first: it creates the indexes and the admin
  customer = await register(first, "customer");
  const owner = await register(first, "restaurant");
  restaurantId = await openPizzeriaOn(first, owner, "Timer Pizza");
}, 30_000);

afterAll(async () => {
  await Promise.all(started.map((s) => s.stop("SIGKILL")));
  await engine?.stop();
  await stopAllProcesses();
});

describe("durable timers across instances", () => {
  test("a deadline set on instance A fires on instance B after A is SIGKILLed, within 2 s of its due time", async () => {
    const A = started[0];
    const B = await instance("T1");
    const order = await placeOrder(A);
    await A.stop("SIGKILL");
    expect(A.proc.signalCode).toBe("SIGKILL");
    const done = await cancelled(B, order.id);
    const due = Date.parse(order.createdAt) + ACCEPT_TIMEOUT_MS;
    const entry = done.history.at(-1);
    expect(entry).toMatchObject({ status: "cancelled", event: "ACCEPT_TIMEOUT", reason: "restaurant_timeout", by: { role: "system" } });
    const late = Date.parse(entry.at) - due;
    if (process.env.DISPATCH_TEST_REPORT) process.stderr.write(`accept timeout fired ${late} ms after due, on the surviving instance\n`);
    expect(late).toBeGreaterThanOrEqual(0);
    expect(late).toBeLessThan(2_000);
    expect(timeoutEntries(done).length).toBe(1);
  }, 20_000);

  test("instances running side by side fire each deadline exactly once (one history entry per order)", async () => {
    const B = started[1];
    const [C, D] = await Promise.all([instance("T2"), instance("T3")]);
    const via = [B, C, D];
    const orders = await Promise.all(Array.from({ length: 24 }, (_, i) => placeOrder(via[i % 3])));
    const finals = await Promise.all(orders.map((o, i) => cancelled(via[(i + 1) % 3], o.id)));
    for (const f of finals) {
      expect(timeoutEntries(f).length).toBe(1);
      expect(f.history.map((h: { seq: number }) => h.seq)).toEqual([1, 2]);
    }
    // Let every sweeper run a few more rounds: nothing fires a second time.
    await Bun.sleep(800);
    const again = await Promise.all(orders.map((o) => http(C, "GET", `/orders/${o.id}`, customer)));
    for (const a of again) expect(a.body.history.length).toBe(2);
  }, 20_000);

  test("with every instance down when it is due, the deadline fires once the next instance starts", async () => {
    const order = await placeOrder(started[1]);
    await Promise.all(started.filter((s) => s.proc.exitCode === null && s.proc.signalCode === null).map((s) => s.stop("SIGKILL")));
    await Bun.sleep(ACCEPT_TIMEOUT_MS + 200);
    const E = await instance("T4");
    const done = await cancelled(E, order.id);
    expect(timeoutEntries(done).length).toBe(1);
    expect(done.history.length).toBe(2);
  }, 20_000);
});

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startRedis } from "../helpers/redis";
import { startTestServer, type Registered, type TestServer } from "../helpers/server";
import { WsClient } from "../helpers/ws";
import { expectProblem, QUIET_DISPATCH_ENV, snapshotDatabase, startEngineBackedServer } from "../helpers/security";
import { cast, placeOrder, type Cast } from "../modules/orders/fixtures";
import { describeSharedLimits } from "./shared-limits";

/**
 * Issue 6, limits: per-user and per-IP limits on writes (429 with Retry-After), WebSocket
 * connections per user, request deadlines; and all of it shared by instances through a real
 * redis-server, falling back to per-instance counting (logged once) while Redis is down
 * (shared-limits.ts, which limits-cluster.test.ts runs on a Redis Cluster).
 */

async function availability(server: TestServer, courier: Registered, available: boolean, headers: Record<string, string> = {}) {
  return server.request("PUT", "/couriers/me/availability", { token: courier.token, body: { available }, headers });
}

describe("write limits on one instance", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ ...QUIET_DISPATCH_ENV, RATE_LIMIT_USER_WRITES: "3", RATE_LIMIT_IP_WRITES: "8", RATE_LIMIT_WINDOW_SECONDS: "60", TRUST_PROXY: "true" });
  });
  afterAll(async () => {
    await server?.stop();
  });

  test("a user's 4th write in the window is 429 with Retry-After and changes nothing; reads and other users go on", async () => {
    const ip = { "x-forwarded-for": "203.0.113.1" };
    const reg = await server.request("POST", "/auth/register", { body: { email: `lim-${crypto.randomUUID().slice(0, 6)}@dispatch.test`, password: "password-123", name: "C", role: "courier" }, headers: ip });
    const courier = { token: reg.body.token, user: reg.body.user } as Registered;
    for (let i = 0; i < 3; i++) expect((await availability(server, courier, i % 2 === 0, ip)).status).toBe(200);
    const before = await snapshotDatabase(server.deps.db.db);
    const refused = await availability(server, courier, false, ip);
    expectProblem(refused, 429);
    const retryAfter = Number(refused.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(await snapshotDatabase(server.deps.db.db)).toBe(before);
    // Refused even where the request itself is malformed: the count comes first.
    expect((await server.request("PUT", "/couriers/me/availability", { token: courier.token, body: { available: "yes" }, headers: ip })).status).toBe(429);
    expect((await server.request("GET", "/couriers/me", { token: courier.token, headers: ip })).status).toBe(200);
    const other = await server.request("POST", "/auth/register", { body: { email: `lim-${crypto.randomUUID().slice(0, 6)}@dispatch.test`, password: "password-123", name: "D", role: "courier" }, headers: ip });
    expect((await availability(server, { token: other.body.token } as Registered, true, ip)).status).toBe(200);
  });

  test("an address's writes are limited across its users; another address is not affected", async () => {
    const ip = { "x-forwarded-for": "198.51.100.7" };
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) {
      const res = await server.request("POST", "/auth/register", { body: { email: `ip-${i}-${crypto.randomUUID().slice(0, 6)}@dispatch.test`, password: "password-123", name: "I", role: "customer" }, headers: ip });
      statuses.push(res.status);
    }
    expect(statuses).toEqual([201, 201, 201, 201, 201, 201, 201, 201, 429, 429]);
    const elsewhere = await server.request("POST", "/auth/register", { body: { email: `ip-x-${crypto.randomUUID().slice(0, 6)}@dispatch.test`, password: "password-123", name: "I", role: "customer" }, headers: { "x-forwarded-for": "198.51.100.8" } });
    expect(elsewhere.status).toBe(201);
  });
});

describe("write limit windows", () => {
  test("a new window starts fresh", async () => {
    const server = await startTestServer({ ...QUIET_DISPATCH_ENV, RATE_LIMIT_USER_WRITES: "2", RATE_LIMIT_WINDOW_SECONDS: "1" });
    try {
      const courier = await server.register("courier");
      expect((await availability(server, courier, true)).status).toBe(200);
      expect((await availability(server, courier, true)).status).toBe(200);
      const refused = await availability(server, courier, true);
      expect(refused.status).toBe(429);
      expect(refused.headers.get("retry-after")).toBe("1");
      await Bun.sleep(1_100);
      expect((await availability(server, courier, true)).status).toBe(200);
    } finally {
      await server.stop();
    }
  });
});

describe("WebSocket connections per user", () => {
  test("past the limit a connection is closed with 1008; closing one frees a slot; other users are not affected", async () => {
    const server = await startTestServer({ ...QUIET_DISPATCH_ENV, WS_MAX_CONNECTIONS_PER_USER: "2" });
    const url = server.url.replace(/^http/, "ws") + "/ws";
    try {
      const c: Cast = await cast(server);
      const first = await WsClient.open(url, c.customer.token);
      const second = await WsClient.open(url, c.customer.token);
      const third = await WsClient.open(url, c.customer.token);
      const closed = await third.closed;
      expect(closed.code).toBe(1008);
      expect(closed.reason).toContain("too many connections");
      // The first two still work.
      for (const ws of [first, second]) {
        ws.send({ op: "ping" });
        expect(await ws.next((f) => f.type === "pong")).toEqual({ type: "pong" });
      }
      const owner = await WsClient.open(url, c.owner.token);
      owner.send({ op: "ping" });
      expect(await owner.next((f) => f.type === "pong")).toEqual({ type: "pong" });
      first.close();
      await first.closed;
      // The slot is freed once the server has seen the close.
      let again: WsClient | null = null;
      for (let attempt = 0; attempt < 50 && !again; attempt++) {
        const candidate = await WsClient.open(url, c.customer.token);
        candidate.send({ op: "ping" });
        const reply = await candidate.next((f) => f.type === "pong", 1_000).catch(() => null);
        if (reply) again = candidate;
        else await Bun.sleep(20);
      }
      expect(again).not.toBeNull();
      for (const ws of [second, owner, again!]) ws.close();
    } finally {
      await server.stop();
    }
  });
});

describe("request deadline", () => {
  test("a request not answered within REQUEST_TIMEOUT_MS gets 503 problem+json with Retry-After; the server keeps serving", async () => {
    const server = await startEngineBackedServer({ ...QUIET_DISPATCH_ENV, REQUEST_TIMEOUT_MS: "300" });
    try {
      const c = await cast(server);
      const order = await placeOrder(server, c);
      // The database stalls the next read of an order for 2 s.
      await server.deps.db.client.db("admin").command({ configureFailPoint: "failCommand", mode: { times: 1 }, data: { failCommands: ["find"], blockConnection: true, blockTimeMS: 2_000 } });
      const started = performance.now();
      const slow = await server.request("GET", `/orders/${order.id}`, { token: c.customer.token });
      const took = performance.now() - started;
      expectProblem(slow, 503);
      expect(slow.headers.get("retry-after")).toBe("1");
      expect(took).toBeGreaterThanOrEqual(290);
      expect(took).toBeLessThan(1_500);
      expect((await server.request("GET", "/health")).status).toBe(200);
    } finally {
      await server.stop();
    }
  });
});

describeSharedLimits({
  name: "one Redis",
  startTimeoutMs: 10_000,
  outage: true,
  start: async () => {
    const redis = await startRedis();
    return { env: { REDIS_URL: redis.url }, outage: redis, stop: () => redis.stop() };
  },
});

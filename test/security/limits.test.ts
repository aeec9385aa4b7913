import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createLogger, type Logger } from "../../src/log";
import { RedisLimits } from "../../src/http/redis-limits";
import { startRedis, type TestRedis } from "../helpers/redis";
import { startTestServer, type Registered, type TestServer } from "../helpers/server";
import { WsClient } from "../helpers/ws";
import { expectProblem, QUIET_DISPATCH_ENV, snapshotDatabase, startEngineBackedServer } from "../helpers/security";
import { EXTERNAL_MONGODB_URI } from "../helpers/database";
import { cast, placeOrder, type Cast } from "../modules/orders/fixtures";

/**
 * Issue 6, limits: per-user and per-IP limits on writes (429 with Retry-After), WebSocket
 * connections per user, request deadlines; and all of it shared by instances through a real
 * redis-server, falling back to per-instance counting (logged once) while Redis is down.
 */

function capture(): { log: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  return { log: createLogger("debug", {}, (l) => lines.push(JSON.parse(l) as Record<string, unknown>)), lines };
}

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

describe("RedisLimits against a real redis-server", () => {
  let redis: TestRedis;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  test("a fixed window: exactly `max` of many concurrent attempts pass, refunds give one back, Retry-After is the window's rest", async () => {
    const { log } = capture();
    const limits = new RedisLimits({ target: { kind: "single", url: redis.url }, prefix: `t-${crypto.randomUUID().slice(0, 6)}:`, instanceId: "a", log });
    try {
      const limiter = limits.rateLimiters()({ name: "burst", max: 5, windowSeconds: 30 });
      await waitForRedis(limits);
      const decisions = await Promise.all(Array.from({ length: 40 }, () => limiter.consume("k")));
      expect(decisions.filter((d) => d.allowed).length).toBe(5);
      const refused = decisions.find((d) => !d.allowed);
      expect(refused).toEqual({ allowed: false, retryAfterSeconds: 30 });
      await limiter.refund("k");
      expect((await limiter.consume("k")).allowed).toBe(true);
      expect((await limiter.consume("k")).allowed).toBe(false);
      expect((await limiter.consume("other")).allowed).toBe(true);
    } finally {
      await limits.close();
    }
  });

  test("connection slots: concurrent acquires never exceed the limit; a dead instance's slots expire", async () => {
    const { log } = capture();
    const prefix = `t-${crypto.randomUUID().slice(0, 6)}:`;
    const a = new RedisLimits({ target: { kind: "single", url: redis.url }, prefix, instanceId: "a", log, connectionTtlMs: 600 });
    const b = new RedisLimits({ target: { kind: "single", url: redis.url }, prefix, instanceId: "b", log, connectionTtlMs: 600 });
    try {
      await Promise.all([waitForRedis(a), waitForRedis(b)]);
      const la = a.connectionLimiter(3);
      const lb = b.connectionLimiter(3);
      const granted = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? la : lb).acquire("u1", `c${i}`)));
      expect(granted.filter(Boolean).length).toBe(3);
      // Instance b goes away without releasing (a crash): its slots lapse; a's are refreshed and stay.
      const heldByA = granted.map((g, i) => (g && i % 2 ? `c${i}` : null)).filter((x): x is string => x !== null);
      await b.close();
      await Bun.sleep(1_000);
      const more = await Promise.all([la.acquire("u1", "n1"), la.acquire("u1", "n2"), la.acquire("u1", "n3")]);
      expect(more.filter(Boolean).length).toBe(3 - heldByA.length);
      await la.release("u1", heldByA[0] ?? "n1");
      expect(await la.acquire("u1", "n4")).toBe(true);
    } finally {
      await a.close();
      await b.close();
    }
  });
});

async function waitForRedis(limits: RedisLimits): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if ((await limits.attempt((r) => r.ping())) === "PONG") return;
    await Bun.sleep(20);
  }
  throw new Error("redis did not answer");
}

describe("two instances sharing Redis", () => {
  let redis: TestRedis;
  let a: TestServer;
  let b: TestServer;
  let logsA: ReturnType<typeof capture>;
  let logsB: ReturnType<typeof capture>;
  let courier: Registered;

  beforeAll(async () => {
    redis = await startRedis();
    const env = { ...QUIET_DISPATCH_ENV, REDIS_URL: redis.url, RATE_LIMIT_USER_WRITES: "4", RATE_LIMIT_WINDOW_SECONDS: "60", WS_MAX_CONNECTIONS_PER_USER: "2" };
    logsA = capture();
    logsB = capture();
    a = await startTestServer(env, { log: logsA.log });
    // The second instance uses the first one's database: one deployment, two processes' worth of app.
    b = await startTestServer({ ...env, MONGODB_URI: EXTERNAL_MONGODB_URI ?? a.deps.db.target, MONGODB_DB: a.deps.config.MONGODB_DB }, { log: logsB.log });
    courier = await a.register("courier");
    for (const s of [a, b]) {
      for (let i = 0; i < 100 && !(await s.request("GET", "/ready")).status.toString().startsWith("2"); i++) await Bun.sleep(20);
    }
  });
  afterAll(async () => {
    await b?.stop();
    await a?.stop();
    await redis?.stop();
  });

  test("a user's writes count on both instances together", async () => {
    const statuses = [];
    for (const s of [a, b, a, b, a, b]) statuses.push((await availability(s, courier, true)).status);
    expect(statuses).toEqual([200, 200, 200, 200, 429, 429]);
  });

  test("WebSocket connections per user count on both instances together", async () => {
    const customer = await a.register("customer");
    const wsA = (s: TestServer) => s.url.replace(/^http/, "ws") + "/ws";
    const one = await WsClient.open(wsA(a), customer.token);
    const two = await WsClient.open(wsA(b), customer.token);
    for (const ws of [one, two]) {
      ws.send({ op: "ping" });
      await ws.next((f) => f.type === "pong");
    }
    const three = await WsClient.open(wsA(a), customer.token);
    expect((await three.closed).code).toBe(1008);
    two.close();
    await two.closed;
    let reopened: WsClient | null = null;
    for (let attempt = 0; attempt < 50 && !reopened; attempt++) {
      const candidate = await WsClient.open(wsA(a), customer.token);
      candidate.send({ op: "ping" });
      if (await candidate.next((f) => f.type === "pong", 1_000).catch(() => null)) reopened = candidate;
      else await Bun.sleep(20);
    }
    expect(reopened).not.toBeNull();
    one.close();
    reopened?.close();
  });

  test("with Redis down each instance limits on its own and says so once; when Redis is back, limits are shared again", async () => {
    const fresh = await a.register("courier");
    await redis.kill();
    // Down: instance a counts alone (4 per window), so does b.
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await availability(a, fresh, true)).status);
    for (let i = 0; i < 5; i++) statuses.push((await availability(b, fresh, true)).status);
    expect(statuses).toEqual([200, 200, 200, 200, 429, 200, 200, 200, 200, 429]);
    const downLines = (lines: Array<Record<string, unknown>>) => lines.filter((l) => String(l.msg).startsWith("redis unavailable: rate limits"));
    expect(downLines(logsA.lines).length).toBe(1);
    expect(downLines(logsB.lines).length).toBe(1);

    await redis.restart();
    const back = await a.register("courier");
    let shared: number[] = [];
    // Until ioredis has reconnected, a write may still be counted locally; wait for the shared count.
    for (let attempt = 0; attempt < 100; attempt++) {
      if (logsA.lines.some((l) => String(l.msg).startsWith("redis answers again")) && logsB.lines.some((l) => String(l.msg).startsWith("redis answers again"))) break;
      await availability(a, await a.register("courier"), true);
      await availability(b, await a.register("courier"), true);
      await Bun.sleep(50);
    }
    shared = [];
    for (const s of [a, b, a, b, a]) shared.push((await availability(s, back, true)).status);
    expect(shared).toEqual([200, 200, 200, 200, 429]);
    expect(downLines(logsA.lines).length).toBe(1);
  }, 30_000);
});

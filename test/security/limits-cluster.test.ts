import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createLogger } from "../../src/log";
import { RedisLimits } from "../../src/http/redis-limits";
import { startRedisCluster, type TestRedisCluster } from "../helpers/redis-cluster";
import { startTestServer, type Registered, type TestServer } from "../helpers/server";
import { WsClient } from "../helpers/ws";
import { QUIET_DISPATCH_ENV } from "../helpers/security";
import { EXTERNAL_MONGODB_URI } from "../helpers/database";

/**
 * The shared limits (writes, WebSocket connections, logins) on a Redis Cluster (3 masters,
 * 3 replicas), as test/security/limits.test.ts checks them on one redis-server. Every limit
 * call touches one key, so none spans slots (no CROSSSLOT).
 */
let cluster: TestRedisCluster;
const log = createLogger("silent");

beforeAll(async () => {
  cluster = await startRedisCluster();
}, 60_000);
afterAll(async () => {
  await cluster?.stop();
});

function limitsOn(prefix: string, instanceId: string, connectionTtlMs?: number): RedisLimits {
  const nodes = cluster.nodes.split(",").map((n) => ({ host: n.split(":")[0], port: Number(n.split(":")[1]) }));
  return new RedisLimits({ target: { kind: "cluster", nodes }, prefix, instanceId, log, ...(connectionTtlMs ? { connectionTtlMs } : {}) });
}

async function waitForRedis(limits: RedisLimits): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if ((await limits.attempt((r) => r.ping())) === "PONG") return;
    await Bun.sleep(20);
  }
  throw new Error("redis cluster did not answer");
}

describe("RedisLimits on a Redis Cluster", () => {
  test("keys of many users spread over every master; per key exactly `max` of many concurrent attempts pass; refunds give one back", async () => {
    const limits = limitsOn(`t-${crypto.randomUUID().slice(0, 6)}:`, "a");
    try {
      await waitForRedis(limits);
      const limiter = limits.rateLimiters()({ name: "burst", max: 5, windowSeconds: 30 });
      const users = Array.from({ length: 12 }, (_, i) => `user-${i}`);
      const decisions = await Promise.all(users.flatMap((u) => Array.from({ length: 15 }, () => limiter.consume(u).then((d) => ({ u, d })))));
      for (const u of users) expect(decisions.filter((x) => x.u === u && x.d.allowed).length).toBe(5);
      expect(decisions.find((x) => !x.d.allowed)?.d).toEqual({ allowed: false, retryAfterSeconds: 30 });
      await limiter.refund("user-0");
      expect((await limiter.consume("user-0")).allowed).toBe(true);
      expect((await limiter.consume("user-0")).allowed).toBe(false);
      // The counters really are spread: each master holds some of them.
      const masters = await Promise.all(users.map((u) => cluster.masterOf(`${limits.key("rl", "burst")}:${u}`)));
      expect(new Set(masters).size).toBe(3);
    } finally {
      await limits.close();
    }
  }, 60_000);

  test("connection slots: concurrent acquires on two instances never exceed the limit; a dead instance's slots expire", async () => {
    const prefix = `t-${crypto.randomUUID().slice(0, 6)}:`;
    const a = limitsOn(prefix, "a", 600);
    const b = limitsOn(prefix, "b", 600);
    try {
      await Promise.all([waitForRedis(a), waitForRedis(b)]);
      const la = a.connectionLimiter(3);
      const lb = b.connectionLimiter(3);
      const granted = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? la : lb).acquire("u1", `c${i}`)));
      expect(granted.filter(Boolean).length).toBe(3);
      const heldByA = granted.map((g, i) => (g && i % 2 ? `c${i}` : null)).filter((x): x is string => x !== null);
      await b.close();
      await Bun.sleep(1_000);
      const more = await Promise.all([la.acquire("u1", "n1"), la.acquire("u1", "n2"), la.acquire("u1", "n3")]);
      expect(more.filter(Boolean).length).toBe(3 - heldByA.length);
    } finally {
      await a.close();
      await b.close();
    }
  }, 60_000);
});

describe("two instances sharing a Redis Cluster", () => {
  let a: TestServer;
  let b: TestServer;
  let courier: Registered;

  beforeAll(async () => {
    const env = {
      ...QUIET_DISPATCH_ENV,
      REDIS_CLUSTER_NODES: cluster.nodes,
      RATE_LIMIT_USER_WRITES: "4",
      RATE_LIMIT_WINDOW_SECONDS: "60",
      WS_MAX_CONNECTIONS_PER_USER: "2",
      LOGIN_MAX_ATTEMPTS: "3",
      TRUST_PROXY: "true",
    };
    a = await startTestServer(env);
    b = await startTestServer({ ...env, MONGODB_URI: EXTERNAL_MONGODB_URI ?? a.deps.db.target, MONGODB_DB: a.deps.config.MONGODB_DB });
    for (const s of [a, b]) {
      for (let i = 0; i < 200 && (await s.request("GET", "/ready")).status !== 200; i++) await Bun.sleep(20);
    }
    courier = await a.register("courier");
  }, 30_000);
  afterAll(async () => {
    await b?.stop();
    await a?.stop();
  });

  test("a user's writes count on both instances together", async () => {
    const statuses = [];
    for (const s of [a, b, a, b, a, b]) statuses.push((await s.request("PUT", "/couriers/me/availability", { token: courier.token, body: { available: true } })).status);
    expect(statuses).toEqual([200, 200, 200, 200, 429, 429]);
  }, 60_000);

  test("failed logins for one email count on both instances together", async () => {
    const victim = await a.register("customer");
    const statuses = [];
    for (const [i, s] of [a, b, a].entries()) {
      statuses.push((await s.request("POST", "/auth/login", { body: { email: victim.email, password: "wrong-password" }, headers: { "x-forwarded-for": `10.9.0.${i}` } })).status);
    }
    const blocked = await b.request("POST", "/auth/login", { body: { email: victim.email, password: victim.password }, headers: { "x-forwarded-for": "10.9.1.1" } });
    expect([...statuses, blocked.status]).toEqual([401, 401, 401, 429]);
  }, 60_000);

  test("WebSocket connections per user count on both instances together", async () => {
    const customer = await a.register("customer");
    const ws = (s: TestServer) => s.url.replace(/^http/, "ws") + "/ws";
    const one = await WsClient.open(ws(a), customer.token);
    const two = await WsClient.open(ws(b), customer.token);
    for (const c of [one, two]) {
      c.send({ op: "ping" });
      await c.next((f) => f.type === "pong");
    }
    const three = await WsClient.open(ws(a), customer.token);
    expect((await three.closed).code).toBe(1008);
    one.close();
    two.close();
  }, 60_000);
});

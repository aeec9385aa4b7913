import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createLogger, type Logger } from "../../src/log";
import { RedisLimits } from "../../src/http/redis-limits";
import { redisTarget, type RedisTarget } from "../../src/redis";
import { startTestServer, type Registered, type TestServer } from "../helpers/server";
import { WsClient } from "../helpers/ws";
import { QUIET_DISPATCH_ENV } from "../helpers/security";
import { EXTERNAL_MONGODB_URI } from "../helpers/database";

/**
 * The shared limits (writes, failed logins, WebSocket connections) as instances share them
 * through Redis, run by limits.test.ts on one redis-server and by limits-cluster.test.ts on a
 * Redis Cluster (every limit call touches one key, so none spans slots: no CROSSSLOT).
 */
export type SharedRedis = {
  /** REDIS_URL or REDIS_CLUSTER_NODES. */
  env: Record<string, string>;
  /** With several masters: where a key lives, to see that counters spread over all `masters`. */
  spread?: { masters: number; masterOf(key: string): Promise<number> };
  /** Redis going away and coming back (SIGKILL, then a restart on the same port). */
  outage?: { kill(): Promise<void>; restart(): Promise<void> };
  stop(): Promise<void>;
};

function capture(): { log: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  return { log: createLogger("debug", {}, (l) => lines.push(JSON.parse(l) as Record<string, unknown>)), lines };
}

async function availability(server: TestServer, courier: Registered, available: boolean) {
  return server.request("PUT", "/couriers/me/availability", { token: courier.token, body: { available } });
}

async function waitForRedis(limits: RedisLimits): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if ((await limits.attempt((r) => r.ping())) === "PONG") return;
    await Bun.sleep(20);
  }
  throw new Error("redis did not answer");
}

export type SharedRedisSetup = {
  /** "one Redis", "a Redis Cluster": goes into the describe titles. */
  name: string;
  start(): Promise<SharedRedis>;
  startTimeoutMs: number;
  /** Whether the Redis can be taken down and back (then the fallback test runs too). */
  outage: boolean;
};

/** Runs every shared-limit test against the Redis `setup.start` gives. */
export function describeSharedLimits(setup: SharedRedisSetup): void {
  const { name } = setup;
  // Its own describe, so the Redis starts for these tests only (not for the rest of the file).
  describe(`limits shared through ${name}`, () => {
    let redis: SharedRedis;
    let target: RedisTarget;
    const limitsOn = (prefix: string, instanceId: string, connectionTtlMs?: number) =>
      new RedisLimits({ target, prefix, instanceId, log: capture().log, ...(connectionTtlMs ? { connectionTtlMs } : {}) });

    beforeAll(async () => {
      redis = await setup.start();
      target = redisTarget({ REDIS_URL: redis.env.REDIS_URL, REDIS_CLUSTER_NODES: redis.env.REDIS_CLUSTER_NODES })!;
    }, setup.startTimeoutMs);
    afterAll(async () => {
      await redis?.stop();
    });

    describe(`RedisLimits on ${name}`, () => {
      test("a fixed window: per key exactly `max` of many concurrent attempts pass, refunds give one back, Retry-After is the window's rest", async () => {
        const limits = limitsOn(`t-${crypto.randomUUID().slice(0, 6)}:`, "a");
        try {
          await waitForRedis(limits);
          const limiter = limits.rateLimiters()({ name: "burst", max: 5, windowSeconds: 30 });
          const users = Array.from({ length: 12 }, (_, i) => `user-${i}`);
          const decisions = await Promise.all(users.flatMap((u) => Array.from({ length: 40 }, () => limiter.consume(u).then((d) => ({ u, d })))));
          for (const u of users) expect(decisions.filter((x) => x.u === u && x.d.allowed).length).toBe(5);
          expect(decisions.find((x) => !x.d.allowed)?.d).toEqual({ allowed: false, retryAfterSeconds: 30 });
          await limiter.refund("user-0");
          expect((await limiter.consume("user-0")).allowed).toBe(true);
          expect((await limiter.consume("user-0")).allowed).toBe(false);
          expect((await limiter.consume("other")).allowed).toBe(true);
          if (redis.spread) {
            // The counters really are spread: each master holds some of them.
            const masters = await Promise.all(users.map((u) => redis.spread!.masterOf(`${limits.key("rl", "burst")}:${u}`)));
            expect(new Set(masters).size).toBe(redis.spread.masters);
          }
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
      }, 60_000);
    });

    describe(`two instances sharing ${name}`, () => {
      let a: TestServer;
      let b: TestServer;
      let logsA: ReturnType<typeof capture>;
      let logsB: ReturnType<typeof capture>;
      let courier: Registered;

      beforeAll(async () => {
        const env = {
          ...QUIET_DISPATCH_ENV,
          ...redis.env,
          RATE_LIMIT_USER_WRITES: "4",
          RATE_LIMIT_WINDOW_SECONDS: "60",
          WS_MAX_CONNECTIONS_PER_USER: "2",
          LOGIN_MAX_ATTEMPTS: "3",
          TRUST_PROXY: "true",
        };
        logsA = capture();
        logsB = capture();
        a = await startTestServer(env, { log: logsA.log });
        // The second instance uses the first one's database: one deployment, two processes' worth of app.
        b = await startTestServer({ ...env, MONGODB_URI: EXTERNAL_MONGODB_URI ?? a.deps.db.target, MONGODB_DB: a.deps.config.MONGODB_DB }, { log: logsB.log });
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
        for (const s of [a, b, a, b, a, b]) statuses.push((await availability(s, courier, true)).status);
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

      test("WebSocket connections per user count on both instances together; closing one frees a slot", async () => {
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
        two.close();
        await two.closed;
        let reopened: WsClient | null = null;
        for (let attempt = 0; attempt < 50 && !reopened; attempt++) {
          const candidate = await WsClient.open(ws(a), customer.token);
          candidate.send({ op: "ping" });
          if (await candidate.next((f) => f.type === "pong", 1_000).catch(() => null)) reopened = candidate;
          else await Bun.sleep(20);
        }
        expect(reopened).not.toBeNull();
        one.close();
        reopened?.close();
      }, 60_000);

      if (!setup.outage) return;
      test("with Redis down each instance limits on its own and says so once; when Redis is back, limits are shared again", async () => {
        const outage = redis.outage!;
        const fresh = await a.register("courier");
        await outage.kill();
        // Down: instance a counts alone (4 per window), so does b.
        const statuses: number[] = [];
        for (let i = 0; i < 5; i++) statuses.push((await availability(a, fresh, true)).status);
        for (let i = 0; i < 5; i++) statuses.push((await availability(b, fresh, true)).status);
        expect(statuses).toEqual([200, 200, 200, 200, 429, 200, 200, 200, 200, 429]);
        const downLines = (lines: Array<Record<string, unknown>>) => lines.filter((l) => String(l.msg).startsWith("redis unavailable: rate limits"));
        expect(downLines(logsA.lines).length).toBe(1);
        expect(downLines(logsB.lines).length).toBe(1);

        await outage.restart();
        const back = await a.register("courier");
        // Until ioredis has reconnected, a write may still be counted locally; wait for the shared count.
        for (let attempt = 0; attempt < 100; attempt++) {
          if (logsA.lines.some((l) => String(l.msg).startsWith("redis answers again")) && logsB.lines.some((l) => String(l.msg).startsWith("redis answers again"))) break;
          await availability(a, await a.register("courier"), true);
          await availability(b, await a.register("courier"), true);
          await Bun.sleep(50);
        }
        const shared: number[] = [];
        for (const s of [a, b, a, b, a]) shared.push((await availability(s, back, true)).status);
        expect(shared).toEqual([200, 200, 200, 200, 429]);
        expect(downLines(logsA.lines).length).toBe(1);
      }, 30_000);
    });
  });
}

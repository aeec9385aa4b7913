import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from "rate-limiter-flexible";
import { toError, type Logger } from "../log";
import { connectRedis, type RedisClient, type RedisTarget } from "../redis";
import { MemoryConnectionLimiter, type ConnectionLimiter } from "./connection-limit";
import type { RateDecision, RateLimiter, RateLimiterFactory, RatePolicy } from "./rate-limit";

/**
 * Rate limits and WebSocket connection counts shared by every instance through Redis (one
 * server or a Redis Cluster: every call touches one key, so no call spans slots).
 *
 * Rate limits are rate-limiter-flexible's RateLimiterRedis with its in-memory insurance limiter:
 * when Redis does not answer, each instance counts on its own (limits then hold per instance)
 * and says so once per outage; it goes back to the shared counters when Redis answers. Its
 * increment script is replaced by one that does not count a refused attempt (as
 * MemoryRateLimiter), so a client hammering past its limit does not push its window's count
 * further and a refund after a refusal gives back a usable attempt.
 *
 * Connection slots stay hand-written: a slot belongs to one connection and must lapse on its own
 * when the instance holding it dies, while the others' are refreshed; that is a sorted set of
 * members scored by expiry, which no rate-limiter-flexible limiter (points per key and window)
 * can express.
 */

// rate-limiter-flexible passes ARGV = points (negative for a reward), window seconds, limit, window seconds.
const CONSUME_UNLESS_OVER = `redis.call('set', KEYS[1], 0, 'EX', ARGV[2], 'NX')
local consumed = tonumber(redis.call('get', KEYS[1]))
local change = tonumber(ARGV[1])
local ttl = redis.call('pttl', KEYS[1])
if ttl == -1 then redis.call('expire', KEYS[1], ARGV[2]); ttl = 1000 * ARGV[2] end
if change > 0 and consumed + change > tonumber(ARGV[3]) then return {consumed + change, ttl} end
if consumed + change < 0 then change = -consumed end
consumed = redis.call('incrby', KEYS[1], change)
return {consumed, ttl}`;

// A user's open connections: a sorted set of members scored by when they expire. Each instance
// refreshes its own members; those of an instance that died expire on their own.
const NOW_MS = `local t = redis.call('TIME'); local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;
const ACQUIRE = `${NOW_MS}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 1 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1`;
const REFRESH = `${NOW_MS}
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 0`;

type LimitCommands = {
  dispatchAcquire(key: string, member: string, max: number, ttlMs: number): Promise<number>;
  dispatchRefresh(key: string, ttlMs: number, ...members: string[]): Promise<number>;
};

export type RedisLimitsOptions = {
  /** One Redis, or a cluster. */
  target: RedisTarget;
  /** Key prefix; instances that share limits share it. */
  prefix: string;
  instanceId: string;
  log: Logger;
  /** How long a connection stays counted without a refresh from its instance. */
  connectionTtlMs?: number;
  /** A Redis command slower than this counts as Redis being down (the request is not held up). */
  commandTimeoutMs?: number;
};

export class RedisLimits {
  private readonly redis: RedisClient & LimitCommands;
  private readonly log: Logger;
  private shared: boolean | null = null;
  private closing = false;
  private everReady = false;
  private readonly startedAt = Date.now();
  private readonly connectionLimiters = new Set<SharedConnectionLimiter>();
  private readonly refresher: ReturnType<typeof setInterval>;
  readonly connectionTtlMs: number;
  /** Members of this process, distinct from a restarted instance with the same INSTANCE_ID. */
  readonly boot = `${crypto.randomUUID().slice(0, 8)}`;

  constructor(private readonly opts: RedisLimitsOptions) {
    this.log = opts.log.child({ component: "redis-limits" });
    this.connectionTtlMs = opts.connectionTtlMs ?? 30_000;
    const redis = connectRedis(opts.target, {
      connectionName: `dispatch-limits:${opts.instanceId}`,
      // No queue while disconnected: a check fails at once and the local counters answer.
      offlineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeoutMs: opts.commandTimeoutMs ?? 500,
    });
    redis.defineCommand("dispatchAcquire", { numberOfKeys: 1, lua: ACQUIRE });
    redis.defineCommand("dispatchRefresh", { numberOfKeys: 1, lua: REFRESH });
    redis.on("error", (err: Error) => this.markDown(err));
    redis.on("ready", () => {
      this.everReady = true;
      void this.refreshConnections();
    });
    this.redis = redis as RedisClient & LimitCommands;
    this.refresher = setInterval(() => void this.refreshConnections(), Math.max(1_000, Math.floor(this.connectionTtlMs / 3)));
    this.refresher.unref?.();
  }

  rateLimiters(): RateLimiterFactory {
    return (policy) => new SharedRateLimiter(this, policy);
  }

  connectionLimiter(max: number): ConnectionLimiter {
    const limiter = new SharedConnectionLimiter(this, max);
    this.connectionLimiters.add(limiter);
    return limiter;
  }

  key(...parts: string[]): string {
    return `${this.opts.prefix}${parts.join(":")}`;
  }

  /** Runs one Redis call; undefined (and the outage noted) when Redis does not answer. */
  async attempt<T>(op: (redis: RedisClient & LimitCommands) => Promise<T>): Promise<T | undefined> {
    if (!this.usable()) return undefined;
    try {
      const result = await op(this.redis);
      this.markUp();
      return result;
    } catch (err) {
      this.markDown(toError(err));
      return undefined;
    }
  }

  /**
   * Whether to ask Redis now; false (and the outage noted) while it is not connected. The rate
   * limiters' insurance takes over on its own; this only keeps the log and the connection
   * counts in step.
   */
  usable(): boolean {
    if (this.closing) return false;
    if (this.redis.status !== "ready") {
      // Still making the first connection at start-up: count locally, but it is no outage yet.
      if (!this.everReady && Date.now() - this.startedAt < 5_000) return false;
      this.markDown(new Error(`connection ${this.redis.status}`));
      return false;
    }
    this.markUp();
    return true;
  }

  /** The client rate-limiter-flexible counts on. */
  get client(): RedisClient {
    return this.redis;
  }

  async close(): Promise<void> {
    this.closing = true;
    clearInterval(this.refresher);
    if (this.redis.status === "ready") await this.redis.quit().catch(() => this.redis.disconnect());
    else this.redis.disconnect();
  }

  /** Re-registers this instance's open connections, so they stay counted (and count again after an outage). */
  private async refreshConnections(): Promise<void> {
    for (const limiter of this.connectionLimiters) await limiter.refresh();
  }

  private markDown(err: Error): void {
    if (this.closing || this.shared === false) return;
    this.shared = false;
    this.log.warn("redis unavailable: rate limits and WebSocket connection counts hold per instance until it answers", { err: err.message });
  }

  private markUp(): void {
    if (this.shared === true) return;
    const wasDown = this.shared === false;
    this.shared = true;
    if (wasDown) this.log.info("redis answers again: rate limits and WebSocket connection counts are shared");
  }
}

class SharedRateLimiter implements RateLimiter {
  private readonly limiter: RateLimiterRedis;

  constructor(
    private readonly store: RedisLimits,
    policy: RatePolicy,
  ) {
    this.limiter = new RateLimiterRedis({
      storeClient: store.client,
      keyPrefix: store.key("rl", policy.name),
      points: policy.max,
      duration: policy.windowSeconds,
      customIncrTtlLuaScript: CONSUME_UNLESS_OVER,
      // Not connected: straight to the insurance, no waiting on a dead socket.
      rejectIfRedisNotReady: true,
      insuranceLimiter: new RateLimiterMemory({ points: policy.max, duration: policy.windowSeconds }),
    });
  }

  async consume(key: string): Promise<RateDecision> {
    this.store.usable(); // logs an outage (or its end) once
    try {
      const res = await this.limiter.consume(key);
      return { allowed: true, remaining: res.remainingPoints };
    } catch (refusal) {
      if (!(refusal instanceof RateLimiterRes)) throw refusal;
      return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(refusal.msBeforeNext / 1000)) };
    }
  }

  async refund(key: string): Promise<void> {
    await this.limiter.reward(key, 1);
  }
}

class SharedConnectionLimiter implements ConnectionLimiter {
  /** This instance's connections: refreshed in Redis, and the limit while Redis is down. */
  private readonly local: MemoryConnectionLimiter;

  constructor(
    private readonly store: RedisLimits,
    private readonly max: number,
  ) {
    this.local = new MemoryConnectionLimiter(max);
  }

  private member(connectionId: string): string {
    return `${this.store.boot}:${connectionId}`;
  }

  async acquire(userId: string, connectionId: string): Promise<boolean> {
    const granted = await this.store.attempt((r) => r.dispatchAcquire(this.store.key("ws", userId), this.member(connectionId), this.max, this.store.connectionTtlMs));
    if (granted === undefined) return this.local.acquireNow(userId, connectionId);
    if (granted !== 1) return false;
    this.local.track(userId, connectionId);
    return true;
  }

  async release(userId: string, connectionId: string): Promise<void> {
    await this.local.release(userId, connectionId);
    await this.store.attempt((r) => r.zrem(this.store.key("ws", userId), this.member(connectionId)));
  }

  async refresh(): Promise<void> {
    for (const [userId, connections] of this.local.entries()) {
      if (connections.size === 0) continue;
      const members = [...connections].map((c) => this.member(c));
      const ok = await this.store.attempt((r) => r.dispatchRefresh(this.store.key("ws", userId), this.store.connectionTtlMs, ...members));
      if (ok === undefined) return; // down: the next refresh (or reconnect) tries again
    }
  }

  async close(): Promise<void> {
    await this.local.close();
  }
}

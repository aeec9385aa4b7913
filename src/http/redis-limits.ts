import { Redis } from "ioredis";
import type { Logger } from "../log";
import { MemoryConnectionLimiter, type ConnectionLimiter } from "./connection-limit";
import { MemoryRateLimiter, type RateDecision, type RateLimiter, type RateLimiterFactory, type RatePolicy } from "./rate-limit";

/**
 * Rate limits and WebSocket connection counts shared by every instance through Redis. Each
 * check is one Lua script, so concurrent instances cannot both take the last slot. When Redis
 * does not answer, each instance falls back to its own counters (limits then hold per
 * instance) and says so once per outage; it goes back to the shared ones when Redis answers.
 */

// Fixed window: the first counted attempt starts it. A refused attempt is not counted (as in MemoryRateLimiter).
const CONSUME = `
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
local ttl
if count >= tonumber(ARGV[1]) then
  ttl = redis.call('PTTL', KEYS[1])
  if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]); ttl = tonumber(ARGV[2]) end
  return {0, count, ttl}
end
count = redis.call('INCR', KEYS[1])
ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]); ttl = tonumber(ARGV[2]) end
return {1, count, ttl}`;

const REFUND = `
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count > 0 then redis.call('DECR', KEYS[1]) end
return 0`;

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
  dispatchConsume(key: string, max: number, windowMs: number): Promise<[number, number, number]>;
  dispatchRefund(key: string): Promise<number>;
  dispatchAcquire(key: string, member: string, max: number, ttlMs: number): Promise<number>;
  dispatchRefresh(key: string, ttlMs: number, ...members: string[]): Promise<number>;
};

export type RedisLimitsOptions = {
  url: string;
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
  private readonly redis: Redis & LimitCommands;
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
    const redis = new Redis(opts.url, {
      connectionName: `dispatch-limits:${opts.instanceId}`,
      // No queue while disconnected: a check fails at once and the local counters answer.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: opts.commandTimeoutMs ?? 500,
      connectTimeout: 2_000,
      retryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 6), 2_000),
    });
    redis.defineCommand("dispatchConsume", { numberOfKeys: 1, lua: CONSUME });
    redis.defineCommand("dispatchRefund", { numberOfKeys: 1, lua: REFUND });
    redis.defineCommand("dispatchAcquire", { numberOfKeys: 1, lua: ACQUIRE });
    redis.defineCommand("dispatchRefresh", { numberOfKeys: 1, lua: REFRESH });
    redis.on("error", (err: Error) => this.markDown(err));
    redis.on("ready", () => {
      this.everReady = true;
      void this.refreshConnections();
    });
    this.redis = redis as Redis & LimitCommands;
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
  async attempt<T>(op: (redis: Redis & LimitCommands) => Promise<T>): Promise<T | undefined> {
    if (this.closing) return undefined;
    if (this.redis.status !== "ready") {
      // Still making the first connection at start-up: count locally, but it is no outage yet.
      if (!this.everReady && Date.now() - this.startedAt < 5_000) return undefined;
      this.markDown(new Error(`connection ${this.redis.status}`));
      return undefined;
    }
    try {
      const result = await op(this.redis);
      this.markUp();
      return result;
    } catch (err) {
      this.markDown(err instanceof Error ? err : new Error(String(err)));
      return undefined;
    }
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
  private readonly local: MemoryRateLimiter;

  constructor(
    private readonly store: RedisLimits,
    private readonly policy: RatePolicy,
  ) {
    this.local = new MemoryRateLimiter(policy);
  }

  async consume(key: string): Promise<RateDecision> {
    const windowMs = this.policy.windowSeconds * 1000;
    const answer = await this.store.attempt((r) => r.dispatchConsume(this.store.key("rl", this.policy.name, key), this.policy.max, windowMs));
    if (!answer) return this.local.consume(key);
    const [allowed, count, ttlMs] = answer;
    return allowed === 1
      ? { allowed: true, remaining: Math.max(0, this.policy.max - count) }
      : { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(ttlMs / 1000)) };
  }

  async refund(key: string): Promise<void> {
    const done = await this.store.attempt((r) => r.dispatchRefund(this.store.key("rl", this.policy.name, key)));
    if (done === undefined) await this.local.refund(key);
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

/**
 * Fixed-window rate limits behind a small interface, so a shared store (Redis) can replace the
 * in-process one without touching callers. Counting happens before the guarded work, so a
 * burst of parallel attempts cannot all slip through before the first is counted.
 */
export type RatePolicy = {
  /** Namespace for the keys, e.g. "login". */
  name: string;
  /** Attempts allowed per key per window. */
  max: number;
  windowSeconds: number;
};

export type RateDecision = { allowed: true; remaining: number } | { allowed: false; retryAfterSeconds: number };

export interface RateLimiter {
  /** Counts one attempt for `key` and says whether it is within the policy. */
  consume(key: string): Promise<RateDecision>;
  /** Takes back one counted attempt (a successful login should not count against anyone). */
  refund(key: string): Promise<void>;
}

/** Makes a limiter for a policy; AppDeps may carry a shared-store one. */
export type RateLimiterFactory = (policy: RatePolicy) => RateLimiter;

type Window = { count: number; resetAt: number };

/** One process's counters; good for a single instance. */
export class MemoryRateLimiter implements RateLimiter {
  private readonly windows = new Map<string, Window>();
  private consumedSinceSweep = 0;

  constructor(
    private readonly policy: RatePolicy,
    private readonly nowMs: () => number = Date.now,
  ) {}

  async consume(key: string): Promise<RateDecision> {
    const now = this.nowMs();
    this.sweep(now);
    let w = this.windows.get(key);
    if (!w || w.resetAt <= now) {
      w = { count: 0, resetAt: now + this.policy.windowSeconds * 1000 };
      this.windows.set(key, w);
    }
    if (w.count >= this.policy.max) {
      return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil((w.resetAt - now) / 1000)) };
    }
    w.count += 1;
    return { allowed: true, remaining: this.policy.max - w.count };
  }

  async refund(key: string): Promise<void> {
    const w = this.windows.get(key);
    if (w && w.resetAt > this.nowMs() && w.count > 0) w.count -= 1;
  }

  /** Drops expired windows now and then, so memory follows the active keys only. */
  private sweep(now: number): void {
    if (++this.consumedSinceSweep < 1000) return;
    this.consumedSinceSweep = 0;
    for (const [key, w] of this.windows) if (w.resetAt <= now) this.windows.delete(key);
  }
}

export function memoryRateLimiters(nowMs: () => number = Date.now): RateLimiterFactory {
  return (policy) => new MemoryRateLimiter(policy, nowMs);
}

/**
 * Counts one attempt against every key (e.g. per email and per IP); if any is over its limit,
 * the attempts just counted are taken back and the longest wait is returned.
 */
export async function consumeAll(limiter: RateLimiter, keys: readonly string[]): Promise<RateDecision> {
  const counted: string[] = [];
  let wait = 0;
  let remaining = Number.POSITIVE_INFINITY;
  for (const key of keys) {
    const d = await limiter.consume(key);
    if (d.allowed) {
      counted.push(key);
      remaining = Math.min(remaining, d.remaining);
    } else wait = Math.max(wait, d.retryAfterSeconds);
  }
  if (wait === 0) return { allowed: true, remaining: Number.isFinite(remaining) ? remaining : 0 };
  await Promise.all(counted.map((k) => limiter.refund(k)));
  return { allowed: false, retryAfterSeconds: wait };
}

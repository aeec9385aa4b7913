import { createHmac, timingSafeEqual } from "node:crypto";
import type { Config } from "../config";
import { RateLimited } from "../errors";
import { memoryRateLimiters, type RateLimiter, type RateLimiterFactory } from "./rate-limit";

export const WRITE_METHODS: ReadonlySet<string> = new Set(["POST", "PUT", "PATCH", "DELETE"]);

/**
 * The user a bearer token names, if its HS256 signature is ours and it has not expired; only
 * to choose a rate-limit key before routing (the auth macro still decides who may do what).
 * An unverified `sub` would let anyone spend someone else's allowance.
 */
export function tokenSubject(authorization: string | null, secret: string, nowSeconds: number): string | null {
  const match = authorization ? /^Bearer\s+(\S+)$/i.exec(authorization) : null;
  if (!match) return null;
  const parts = match[1].split(".");
  if (parts.length !== 3) return null;
  try {
    const header: unknown = JSON.parse(Buffer.from(parts[0], "base64url").toString("utf8"));
    if (typeof header !== "object" || header === null || (header as { alg?: unknown }).alg !== "HS256") return null;
    const expected = createHmac("sha256", secret).update(`${parts[0]}.${parts[1]}`).digest();
    const given = Buffer.from(parts[2], "base64url");
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
    const payload: unknown = JSON.parse(Buffer.from(parts[1], "base64url").toString("utf8"));
    if (typeof payload !== "object" || payload === null) return null;
    const { sub, exp } = payload as { sub?: unknown; exp?: unknown };
    return typeof sub === "string" && typeof exp === "number" && exp > nowSeconds ? sub : null;
  } catch {
    return null;
  }
}

/**
 * Per-user and per-IP limits on writes, counted before the request is parsed or routed, so a
 * flood costs one counter each. A write counts whatever its outcome; reads are not limited.
 */
export class WriteLimits {
  private readonly perUser: RateLimiter | null;
  private readonly perIp: RateLimiter | null;

  constructor(
    config: Pick<Config, "RATE_LIMIT_USER_WRITES" | "RATE_LIMIT_IP_WRITES" | "RATE_LIMIT_WINDOW_SECONDS">,
    limiters: RateLimiterFactory = memoryRateLimiters(),
  ) {
    const windowSeconds = config.RATE_LIMIT_WINDOW_SECONDS;
    this.perUser = config.RATE_LIMIT_USER_WRITES > 0 ? limiters({ name: "writes-user", max: config.RATE_LIMIT_USER_WRITES, windowSeconds }) : null;
    this.perIp = config.RATE_LIMIT_IP_WRITES > 0 ? limiters({ name: "writes-ip", max: config.RATE_LIMIT_IP_WRITES, windowSeconds }) : null;
  }

  /** Counts one write of `userId` (from tokenSubject; null when anonymous); throws RateLimited (429, Retry-After) when the caller or its IP is over. */
  async count(request: Request, ip: string, userId: string | null): Promise<void> {
    if (!WRITE_METHODS.has(request.method)) return;
    if (userId !== null && this.perUser) {
      const decision = await this.perUser.consume(userId);
      if (!decision.allowed) throw new RateLimited(`too many writes from this account; retry in ${decision.retryAfterSeconds} s`, decision.retryAfterSeconds);
    }
    if (this.perIp) {
      const decision = await this.perIp.consume(ip);
      if (!decision.allowed) {
        // The user's count is taken back: the IP refused it, not the account.
        if (userId !== null) await this.perUser?.refund(userId);
        throw new RateLimited(`too many writes from this address; retry in ${decision.retryAfterSeconds} s`, decision.retryAfterSeconds);
      }
    }
  }
}

import { describe, expect, test } from "bun:test";
import { consumeAll, MemoryRateLimiter } from "../../src/http/rate-limit";

describe("MemoryRateLimiter", () => {
  test("allows max attempts per window, then says how long to wait; a new window starts fresh", async () => {
    let now = 1_000_000;
    const limiter = new MemoryRateLimiter({ name: "t", max: 3, windowSeconds: 60 }, () => now);
    for (let i = 0; i < 3; i++) expect((await limiter.consume("k")).allowed).toBe(true);
    now += 20_500;
    expect(await limiter.consume("k")).toEqual({ allowed: false, retryAfterSeconds: 40 });
    expect((await limiter.consume("other")).allowed).toBe(true);
    now += 39_500;
    expect(await limiter.consume("k")).toEqual({ allowed: true, remaining: 2 });
  });

  test("refund gives back one attempt", async () => {
    const limiter = new MemoryRateLimiter({ name: "t", max: 1, windowSeconds: 60 }, () => 0);
    expect((await limiter.consume("k")).allowed).toBe(true);
    await limiter.refund("k");
    expect((await limiter.consume("k")).allowed).toBe(true);
    expect((await limiter.consume("k")).allowed).toBe(false);
  });

  test("consumeAll blocks when any key is over and does not charge the others", async () => {
    const limiter = new MemoryRateLimiter({ name: "t", max: 1, windowSeconds: 10 }, () => 0);
    expect((await consumeAll(limiter, ["email:a", "ip:1"])).allowed).toBe(true);
    expect(await consumeAll(limiter, ["email:b", "ip:1"])).toEqual({ allowed: false, retryAfterSeconds: 10 });
    // email:b was taken back, so it is still free from another IP.
    expect((await consumeAll(limiter, ["email:b", "ip:2"])).allowed).toBe(true);
  });
});

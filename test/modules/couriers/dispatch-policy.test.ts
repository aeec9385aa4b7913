import { describe, expect, test } from "bun:test";
import { decide, isDispatchable, offerMessage, type Candidate, type DispatchPolicy } from "../../../src/modules/couriers/dispatch-policy";

const now = new Date("2030-01-01T12:00:00Z");
const policy: DispatchPolicy = { maxAttempts: 3, radiusMeters: 8000, maxActive: 1, seenWithinMs: 60_000, offerTtlMs: 30_000, retryMs: 30_000 };
const ago = (ms: number) => new Date(now.getTime() - ms);

function courier(id: string, distanceMeters: number, over: Partial<Candidate> = {}): Candidate {
  return { id, available: true, lastSeenAt: ago(1_000), offer: null, distanceMeters, activeOrders: 0, ...over };
}

describe("isDispatchable", () => {
  test("available, seen within 60 s, carrying fewer than COURIER_MAX_ACTIVE, without a live offer", () => {
    expect(isDispatchable(courier("a", 1), now, policy)).toBe(true);
    expect(isDispatchable(courier("a", 1, { available: false }), now, policy)).toBe(false);
    expect(isDispatchable(courier("a", 1, { lastSeenAt: null }), now, policy)).toBe(false);
    expect(isDispatchable(courier("a", 1, { lastSeenAt: ago(60_000) }), now, policy)).toBe(true);
    expect(isDispatchable(courier("a", 1, { lastSeenAt: ago(60_001) }), now, policy)).toBe(false);
    expect(isDispatchable(courier("a", 1, { activeOrders: 1 }), now, policy)).toBe(false);
    expect(isDispatchable(courier("a", 1, { activeOrders: 1 }), now, { ...policy, maxActive: 2 })).toBe(true);
    expect(isDispatchable(courier("a", 1, { offer: { orderId: "o", expiresAt: new Date(now.getTime() + 1) } }), now, policy)).toBe(false);
    // An offer that ran out no longer holds the courier (its instance may have died before freeing it).
    expect(isDispatchable(courier("a", 1, { offer: { orderId: "o", expiresAt: now } }), now, policy)).toBe(true);
  });
});

describe("decide", () => {
  const fresh = { roundAttempts: 0, excluded: [] as string[] };

  test("offers to the nearest dispatchable courier first, then the next ones in distance order", () => {
    const d = decide(fresh, [courier("far", 3000), courier("busy", 100, { activeOrders: 1 }), courier("near", 500), courier("off", 50, { available: false })], now, policy);
    expect(d.kind).toBe("offer");
    if (d.kind !== "offer") return;
    expect(d.ranked.map((c) => c.id)).toEqual(["near", "far"]);
    expect(d.expiresAt.getTime()).toBe(now.getTime() + policy.offerTtlMs);
  });

  test("skips couriers who declined the order or let its offer expire", () => {
    const d = decide({ roundAttempts: 1, excluded: ["near"] }, [courier("near", 100), courier("next", 900)], now, policy);
    expect(d.kind === "offer" && d.ranked.map((c) => c.id)).toEqual(["next"]);
  });

  test("nobody within DISPATCH_RADIUS_METERS: wait and retry", () => {
    const d = decide(fresh, [courier("outside", 8001)], now, policy);
    expect(d).toEqual({ kind: "wait", reason: "no_courier", retryAt: new Date(now.getTime() + policy.retryMs) });
  });

  test("after DISPATCH_MAX_ATTEMPTS offers in a round: wait, even with couriers around", () => {
    const d = decide({ roundAttempts: 3, excluded: [] }, [courier("near", 10)], now, policy);
    expect(d).toEqual({ kind: "wait", reason: "max_attempts", retryAt: new Date(now.getTime() + policy.retryMs) });
  });

  test("equal distances are broken by id, so every instance decides alike", () => {
    const d = decide(fresh, [courier("b", 100), courier("a", 100)], now, policy);
    expect(d.kind === "offer" && d.ranked.map((c) => c.id)).toEqual(["a", "b"]);
  });
});

test("offerMessage has the shape couriers receive on courier:<id>", () => {
  expect(
    offerMessage("courier:k1", { orderId: "o1", expiresAt: now, pickup: { lat: 1, lng: 2 }, dropoff: { lat: 3, lng: 4 }, distanceMeters: 812.6 }),
  ).toEqual({ type: "offer", topic: "courier:k1", orderId: "o1", expiresAt: now.toISOString(), pickup: { lat: 1, lng: 2 }, dropoff: { lat: 3, lng: 4 }, distanceMeters: 813 });
});

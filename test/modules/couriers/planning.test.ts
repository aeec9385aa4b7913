import { describe, expect, test } from "bun:test";
import {
  bestSequence,
  DEFAULT_BATCHED,
  plan,
  planRoute,
  ReadyTimeEstimator,
  type Geometry,
  type PlanCourier,
  type PlanOrder,
  type PolicyParams,
} from "../../../src/modules/couriers/planning";

/** Points on a line, one minute of travel per 100 m (whole minutes, as the MDRP instances). */
type P = { x: number; y: number };
const geometry: Geometry<P> = {
  meters: (a, b) => Math.hypot(a.x - b.x, a.y - b.y),
  travelMinutes: (a, b) => Math.ceil(Math.hypot(a.x - b.x, a.y - b.y) / 100),
};
const service = { pickupMinutes: 4, dropoffMinutes: 4 };
const params: PolicyParams = { nearest: { radiusMeters: 8000, maxActive: 1 }, batched: DEFAULT_BATCHED };
const R1 = { x: 0, y: 0 };
const R2 = { x: 3000, y: 0 };

function order(id: string, over: Partial<PlanOrder<P>> = {}): PlanOrder<P> {
  return { id, restaurantId: "r1", pickup: R1, dropoff: { x: 0, y: 1000 }, placedAt: 0, readyAt: 10, ...over };
}
function courier(id: string, at: P, over: Partial<PlanCourier<P>> = {}): PlanCourier<P> {
  return { id, position: at, carrying: 0, freeAt: 0, freePoint: at, shiftEnd: null, ...over };
}

describe("planRoute: the MDRP timing rules", () => {
  test("pickup waits for the latest ready order and half the pickup service; drop-offs add travel and half their service", () => {
    const r = planRoute({ x: 500, y: 0 }, 0, R1, [
      { orderId: "a", dropoff: { x: 0, y: 300 }, placedAt: 0, readyAt: 3 },
      { orderId: "b", dropoff: { x: 0, y: 700 }, placedAt: 0, readyAt: 9 },
    ], geometry, service);
    expect(r.arriveAt).toBe(5);
    expect(r.pickupAt).toBe(9);
    expect(r.dropoffAt).toEqual([9 + 2 + 3 + 2, 9 + 2 + 3 + 2 + 2 + 4 + 2]);
    expect(r.endAt).toBe(r.dropoffAt[1]! + 2);
    // Busy time: driving and service, not the 2 minutes waiting for food.
    expect(r.busyMinutes).toBe(5 + 4 + 3 + 4 + 4 + 4);
  });

  test("a courier arriving after the food picks up half-way through its service", () => {
    expect(planRoute({ x: 1000, y: 0 }, 0, R1, [{ orderId: "a", dropoff: R1, placedAt: 0, readyAt: 3 }], geometry, service).pickupAt).toBe(12);
  });

  test("the drop-off sequence minimises summed click-to-door", () => {
    const far = { orderId: "far", dropoff: { x: 0, y: 2000 }, placedAt: 0, readyAt: 0 };
    const near = { orderId: "near", dropoff: { x: 0, y: 500 }, placedAt: 0, readyAt: 0 };
    expect(bestSequence(R1, [far, near], geometry).map((s) => s.orderId)).toEqual(["near", "far"]);
  });
});

describe("nearest: today's dispatch", () => {
  test("each order, oldest first, goes alone to the nearest courier carrying nothing, whatever the food's ready time", () => {
    const decisions = plan("nearest", {
      now: 0,
      orders: [order("late", { placedAt: 1, readyAt: 60 }), order("early", { placedAt: 0 })],
      couriers: [courier("far", { x: 2000, y: 0 }), courier("near", { x: 100, y: 0 }), courier("busy", R1, { carrying: 1 })],
      geometry,
      service,
    }, params);
    expect(decisions).toEqual([
      { kind: "offer", courierId: "near", orderIds: ["early"] },
      { kind: "offer", courierId: "far", orderIds: ["late"] },
    ]);
  });

  test("skips couriers beyond the radius, holding an offer, or who turned the order down", () => {
    const decisions = plan("nearest", {
      now: 0,
      orders: [order("o", { excluded: ["declined"] })],
      couriers: [courier("declined", R1), courier("offered", R1, { offered: true }), courier("away", { x: 9000, y: 0 })],
      geometry,
      service,
    }, params);
    expect(decisions).toEqual([]);
  });
});

test("the server's per-order search ranks with the same rule as the nearest policy", async () => {
  const { decide } = await import("../../../src/modules/couriers/dispatch-policy");
  const now = new Date(0);
  const at = [courier("b", { x: 300, y: 0 }), courier("a", { x: 0, y: 300 }), courier("c", { x: 100, y: 0 }), courier("far", { x: 9000, y: 0 })];
  const fresh = { roundAttempts: 0, excluded: ["c"] };
  const d = decide(
    fresh,
    at.map((c) => ({ id: c.id, available: true, lastSeenAt: now, offer: null, distanceMeters: geometry.meters(c.position, R1), activeOrders: 0 })),
    now,
    { maxAttempts: 3, radiusMeters: 8000, maxActive: 1, seenWithinMs: 60_000, offerTtlMs: 30_000, retryMs: 30_000 },
  );
  const p = plan("nearest", { now: 0, orders: [order("o", { excluded: ["c"] })], couriers: at, geometry, service }, params);
  // a and b are equally near: both break the tie by id, and both skip c (declined) and the courier outside the radius.
  expect(d.kind === "offer" && d.ranked.map((c) => c.id)).toEqual(["a", "b"]);
  expect(p).toEqual([{ kind: "offer", courierId: "a", orderIds: ["o"] }]);
});

describe("batched: rolling horizon, bundles, optimal assignment, late commitment", () => {
  test("the assignment is optimal for the whole round, not greedy per order", () => {
    const decisions = plan("batched", {
      now: 0,
      orders: [order("a", { readyAt: 0 }), order("b", { restaurantId: "r2", pickup: R2, dropoff: { x: 3000, y: 1000 }, readyAt: 0 })],
      // c1 is 5 min from a's restaurant and 25 from b's; c2 10 and 40: greedy a→c1, b→c2 drives 45 min, the optimum 35.
      couriers: [courier("c1", { x: 500, y: 0 }), courier("c2", { x: -1000, y: 0 })],
      geometry,
      service,
    }, params);
    expect(decisions.sort((x, y) => x.courierId.localeCompare(y.courierId))).toEqual([
      { kind: "offer", courierId: "c1", orderIds: ["b"] },
      { kind: "offer", courierId: "c2", orderIds: ["a"] },
    ]);
  });

  test("no courier is sent long before the food is ready; it is once waiting a round would make it late", () => {
    const input = (now: number) => ({ now, orders: [order("o", { readyAt: 20 })], couriers: [courier("c", { x: 500, y: 0 }, { freeAt: now })], geometry, service });
    // 5 minutes away, 2 for the pickup: leaving at 0 it would wait 13 minutes.
    expect(plan("batched", input(0), params)).toEqual([]);
    expect(plan("batched", input(12), params)).toEqual([{ kind: "offer", courierId: "c", orderIds: ["o"] }]);
  });

  test("with repositionWithinMinutes, a free courier too early to commit is sent towards the restaurant, nothing committed", () => {
    const input = (now: number, c = courier("c", { x: 500, y: 0 }, { freeAt: now })) => ({ now, orders: [order("o", { readyAt: 20 })], couriers: [c], geometry, service });
    const on = { ...params, batched: { ...params.batched, repositionWithinMinutes: 25 } };
    expect(plan("batched", input(0), on)).toEqual([{ kind: "reposition", courierId: "c", restaurantId: "r1", orderIds: ["o"] }]);
    // Not when the food is further off, nor for a courier already there or still on a trip.
    expect(plan("batched", input(0), { ...params, batched: { ...params.batched, repositionWithinMinutes: 15 } })).toEqual([]);
    expect(plan("batched", input(0, courier("c", R1)), on)).toEqual([]);
    expect(plan("batched", input(0, courier("c", { x: 500, y: 0 }, { carrying: 1, freeAt: 3 })), on)).toEqual([]);
  });

  test("orders beyond the horizon wait", () => {
    expect(plan("batched", { now: 0, orders: [order("o", { readyAt: 100 })], couriers: [courier("c", R1)], geometry, service }, params)).toEqual([]);
  });

  test("when orders outnumber free couriers, orders of one restaurant ready together go as one bundle", () => {
    const decisions = plan("batched", {
      now: 10,
      orders: [order("a", { dropoff: { x: 0, y: 800 } }), order("b", { dropoff: { x: 0, y: 1000 } }), order("c", { restaurantId: "r2", pickup: R2, readyAt: 40 })],
      couriers: [courier("k", { x: 100, y: 0 }, { freeAt: 10 })],
      geometry,
      service,
    }, params);
    expect(decisions).toEqual([{ kind: "offer", courierId: "k", orderIds: ["a", "b"] }]);
  });

  test("a scarce courier goes to the urgent order first", () => {
    const decisions = plan("batched", {
      now: 30,
      orders: [order("old", { placedAt: 0, readyAt: 20 }), order("new", { restaurantId: "r2", pickup: R2, placedAt: 28, readyAt: 31 })],
      couriers: [courier("k", { x: 1500, y: 0 }, { freeAt: 30 })],
      geometry,
      service,
    }, params);
    expect(decisions).toEqual([{ kind: "offer", courierId: "k", orderIds: ["old"] }]);
  });

  test("couriers short, the courier serves the bundle of two rather than the single order a little nearer (unservedMinutes)", () => {
    const input = {
      now: 10,
      orders: [order("a1"), order("a2", { dropoff: { x: 0, y: 1200 } }), order("b", { restaurantId: "r2", pickup: R2, dropoff: { x: 3000, y: 1000 } })],
      couriers: [courier("k", { x: 1300, y: 0 }, { freeAt: 10 })],
      geometry,
      service,
    };
    expect(plan("batched", input, params)).toEqual([{ kind: "offer", courierId: "k", orderIds: ["a1", "a2"] }]);
    // Priced by cost alone, the nearer single order would win the courier.
    expect(plan("batched", input, { ...params, batched: { ...params.batched, unservedMinutes: 0 } })).toEqual([{ kind: "offer", courierId: "k", orderIds: ["b"] }]);
  });

  test("never plans a pickup after the courier's shift, nor offers an order to a courier who declined it", () => {
    const decisions = plan("batched", {
      now: 10,
      orders: [order("o", { excluded: ["declined"] })],
      couriers: [courier("ending", R1, { freeAt: 10, shiftEnd: 11 }), courier("declined", R1, { freeAt: 10 })],
      geometry,
      service,
    }, params);
    expect(decisions).toEqual([]);
  });

  test("a courier finishing its trip soon is planned from its last drop-off, and committed only if it is not late for the food", () => {
    const input = (readyAt: number) => ({
      now: 10,
      orders: [order("o", { readyAt })],
      couriers: [courier("finishing", { x: 5000, y: 0 }, { carrying: 1, freeAt: 12, freePoint: { x: 100, y: 0 } }), courier("idle", { x: 4000, y: 0 }, { freeAt: 10 })],
      geometry,
      service,
    });
    // Free at 12, 1 min from the restaurant, pickup at 15: on time for food ready at 16.
    expect(plan("batched", input(16), params)).toEqual([{ kind: "offer", courierId: "finishing", orderIds: ["o"] }]);
    // Food ready at 10: it would be 5 min late, so the order waits a round rather than commit it.
    expect(plan("batched", input(10), params).map((d) => d.courierId)).not.toContain("finishing");
  });
});

describe("ReadyTimeEstimator", () => {
  test("the default until any restaurant reports, then a weighted mean of each one's preparation times, never before now", () => {
    const e = new ReadyTimeEstimator(15, 0.5);
    expect(e.readyAt("r", 100, 100)).toBe(115);
    e.observe("r", 10);
    expect(e.prepMinutes("r")).toBe(10);
    e.observe("r", 20);
    expect(e.prepMinutes("r")).toBe(15);
    expect(e.readyAt("r", 100, 130)).toBe(130);
    e.observe("r", Number.NaN);
    expect(e.prepMinutes("r")).toBe(15);
    // A restaurant never seen: the mean over all of them (weight 0.5 / 4 across restaurants).
    expect(e.prepMinutes("other")).toBe(10 + 0.125 * (20 - 10));
    expect(new ReadyTimeEstimator(15).prepMinutes("any")).toBe(15);
  });
});

import { describe, expect, test } from "bun:test";
import { estimateEta, type EtaInput } from "../../../src/modules/orders/eta";
import { distanceMeters } from "../../../src/geo";

const T0 = Date.parse("2030-01-01T12:00:00Z");
const pickup = { lat: 48.8566, lng: 2.3522 };
const dropoff = { lat: 48.8606, lng: 2.3622 };
const speed = 6;
const leg = (a: { lat: number; lng: number }, b: { lat: number; lng: number }) => (distanceMeters(a, b) / speed) * 1000;
const ceilS = (ms: number) => Math.ceil(ms / 1000) * 1000;

function input(over: Partial<EtaInput>): EtaInput {
  return { status: "placed", now: T0, pickup, dropoff, prepTimeMinutes: 15, courier: null, history: [{ status: "placed", at: T0 }], speedMps: speed, ...over };
}

describe("estimateEta", () => {
  test("placed: ready after the prep time, then the restaurant-to-customer leg", () => {
    const eta = estimateEta(input({}))!;
    expect(eta.pickupAt).toBe(T0 + 15 * 60_000);
    expect(eta.deliveryAt).toBe(ceilS(T0 + 15 * 60_000 + leg(pickup, dropoff)));
  });

  test("accepted: prep counts from acceptance; a courier further away than the prep time sets the pickup", () => {
    const accepted = [{ status: "placed" as const, at: T0 }, { status: "accepted" as const, at: T0 + 60_000 }];
    const now = T0 + 120_000;
    expect(estimateEta(input({ status: "accepted", history: accepted, now }))!.pickupAt).toBe(T0 + 60_000 + 15 * 60_000);
    const farCourier = { lat: pickup.lat + 0.1, lng: pickup.lng }; // ~11 km: ~31 min at 6 m/s
    const eta = estimateEta(input({ status: "accepted", history: accepted, now, courier: farCourier }))!;
    expect(eta.pickupAt).toBe(ceilS(now + leg(farCourier, pickup)));
    expect(eta.deliveryAt).toBe(ceilS(eta.pickupAt + leg(pickup, dropoff)));
  });

  test("ready_for_pickup: the food waits; the courier's distance decides", () => {
    const courier = { lat: pickup.lat + 0.01, lng: pickup.lng };
    const eta = estimateEta(input({ status: "ready_for_pickup", now: T0 + 1_000_000, courier }))!;
    expect(eta.pickupAt).toBe(ceilS(T0 + 1_000_000 + leg(courier, pickup)));
  });

  test("picked_up: pickup is when it happened; delivery from where the courier is", () => {
    const history = [{ status: "placed" as const, at: T0 }, { status: "picked_up" as const, at: T0 + 900_000 }];
    const courier = { lat: (pickup.lat + dropoff.lat) / 2, lng: (pickup.lng + dropoff.lng) / 2 };
    const now = T0 + 1_000_000;
    expect(estimateEta(input({ status: "picked_up", history, now, courier }))).toEqual({ pickupAt: T0 + 900_000, deliveryAt: ceilS(now + leg(courier, dropoff)) });
  });

  test("delivered reports what happened; cancelled and rejected have none", () => {
    const history = [{ status: "placed" as const, at: T0 }, { status: "picked_up" as const, at: T0 + 5 }, { status: "delivered" as const, at: T0 + 9 }];
    expect(estimateEta(input({ status: "delivered", history }))).toEqual({ pickupAt: T0 + 5, deliveryAt: T0 + 9 });
    expect(estimateEta(input({ status: "cancelled" }))).toBeNull();
    expect(estimateEta(input({ status: "rejected" }))).toBeNull();
  });

  test("a faster average speed gives an earlier delivery", () => {
    const slow = estimateEta(input({ status: "ready_for_pickup" }))!;
    const fast = estimateEta(input({ status: "ready_for_pickup", speedMps: 12 }))!;
    expect(fast.deliveryAt).toBeLessThan(slow.deliveryAt);
  });
});

import { describe, expect, test } from "bun:test";
import { approachFor } from "../../../src/modules/couriers/geofence";
import { distanceMeters } from "../../../src/geo";

const pickup = { lat: 48.8566, lng: 2.3522 };
const dropoff = { lat: 48.8606, lng: 2.3622 };
/** A point `meters` north of `p`. */
const north = (p: { lat: number; lng: number }, meters: number) => ({ lat: p.lat + (meters / 6378100) * (180 / Math.PI), lng: p.lng });
const none = { pickup: false, dropoff: false };

describe("approachFor (arrival geofence)", () => {
  test("before pickup the target is the restaurant; inside APPROACH_METERS it fires, outside it does not", () => {
    for (const status of ["accepted", "preparing", "ready_for_pickup"] as const) {
      const inside = approachFor({ status, pickup, dropoff, approached: none }, north(pickup, 150), 200);
      expect(inside?.target).toBe("pickup");
      expect(inside!.distanceMeters).toBeCloseTo(distanceMeters(north(pickup, 150), pickup), 6);
      expect(approachFor({ status, pickup, dropoff, approached: none }, north(pickup, 250), 200)).toBeNull();
    }
  });

  test("after pickup the target is the delivery point", () => {
    expect(approachFor({ status: "picked_up", pickup, dropoff, approached: { pickup: true, dropoff: false } }, north(dropoff, 100), 200)?.target).toBe("dropoff");
    // Standing at the restaurant after pickup is not approaching anything.
    expect(approachFor({ status: "picked_up", pickup, dropoff, approached: { pickup: true, dropoff: false } }, pickup, 200)).toBeNull();
  });

  test("once per target: an announced target never fires again", () => {
    expect(approachFor({ status: "preparing", pickup, dropoff, approached: { pickup: true, dropoff: false } }, pickup, 200)).toBeNull();
    expect(approachFor({ status: "picked_up", pickup, dropoff, approached: { pickup: true, dropoff: true } }, dropoff, 200)).toBeNull();
  });

  test("orders stored without a pickup point never fire for pickup", () => {
    expect(approachFor({ status: "accepted", pickup: null, dropoff, approached: none }, pickup, 200)).toBeNull();
  });
});

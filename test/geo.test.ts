import { describe, expect, test } from "bun:test";
import { Value } from "@sinclair/typebox/value";
import { distanceMeters } from "../src/geo";
import { latLng } from "../src/vocabulary";

/** The one lat/lng check: the schema every position is taken in with. */
const isValidLatLng = (p: { lat: number; lng: number }) => Value.Check(latLng, p);

describe("distanceMeters", () => {
  test("is zero for the same point and symmetric", () => {
    const a = { lat: 48.8566, lng: 2.3522 };
    const b = { lat: 51.5074, lng: -0.1278 };
    expect(distanceMeters(a, a)).toBe(0);
    expect(distanceMeters(a, b)).toBeCloseTo(distanceMeters(b, a), 6);
  });

  test("one degree of longitude on the equator is R·π/180 (MongoDB's radius)", () => {
    expect(distanceMeters({ lat: 0, lng: 0 }, { lat: 0, lng: 1 })).toBeCloseTo((6378100 * Math.PI) / 180, 3);
  });

  test("Paris to London is about 344 km", () => {
    const d = distanceMeters({ lat: 48.8566, lng: 2.3522 }, { lat: 51.5074, lng: -0.1278 });
    expect(d).toBeGreaterThan(343_000);
    expect(d).toBeLessThan(345_000);
  });

  test("antipodes are half the circumference", () => {
    expect(distanceMeters({ lat: 0, lng: 0 }, { lat: 0, lng: 180 })).toBeCloseTo(6378100 * Math.PI, 3);
  });

  test("the lat/lng schema checks ranges and finiteness", () => {
    expect(isValidLatLng({ lat: 90, lng: -180 })).toBe(true);
    expect(isValidLatLng({ lat: 90.0001, lng: 0 })).toBe(false);
    expect(isValidLatLng({ lat: 0, lng: 180.5 })).toBe(false);
    expect(isValidLatLng({ lat: Number.NaN, lng: 0 })).toBe(false);
    expect(isValidLatLng({ lat: 0, lng: Number.POSITIVE_INFINITY })).toBe(false);
  });
});

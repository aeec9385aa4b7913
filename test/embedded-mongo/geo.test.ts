import { describe, expect, test } from "bun:test";
import { Double, Int32 } from "bson";
import {
  EARTH_RADIUS_METERS,
  GeoSpecError,
  type LngLat,
  SpatialIndex,
  pointFromValue,
  sphereDistanceMeters,
} from "../../src/embedded-mongo/geo";
import { geoWithinMatches } from "../../src/embedded-mongo/geometry";
import { seededRandom } from "../../scripts/lib/random";

// Independent reference: the haversine formula on MongoDB's sphere (6378.1 km).
function haversineMeters(a: LngLat, b: LngLat): number {
  const rad = Math.PI / 180;
  const dLat = (b[1] - a[1]) * rad;
  const dLng = (b[0] - a[0]) * rad;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a[1] * rad) * Math.cos(b[1] * rad) * Math.sin(dLng / 2) ** 2;
  return 2 * 6378100 * Math.asin(Math.min(1, Math.sqrt(h)));
}


function wrapLng(lng: number): number {
  return ((((lng + 180) % 360) + 360) % 360) - 180;
}

function clampLat(lat: number): number {
  return Math.max(-90, Math.min(90, lat));
}

function bruteForce(points: Map<number, LngLat>, center: LngLat, min = 0, max = Infinity): Array<{ key: number; distance: number }> {
  const out: Array<{ key: number; distance: number }> = [];
  for (const [key, p] of points) {
    const distance = sphereDistanceMeters(center, p);
    if (distance >= min && distance <= max) out.push({ key, distance });
  }
  return out.sort((x, y) => x.distance - y.distance);
}

function take<T>(gen: Iterable<T>, n: number): T[] {
  const out: T[] = [];
  if (n <= 0) return out;
  for (const v of gen) {
    out.push(v);
    if (out.length >= n) break;
  }
  return out;
}

describe("sphereDistanceMeters", () => {
  test("uses MongoDB's earth radius", () => {
    expect(EARTH_RADIUS_METERS).toBe(6378100);
    // A quarter of the equator.
    expect(sphereDistanceMeters([0, 0], [90, 0])).toBeCloseTo((Math.PI / 2) * 6378100, 6);
    expect(sphereDistanceMeters([10, -90], [-170, 90])).toBeCloseTo(Math.PI * 6378100, 6);
  });

  test("matches an independent haversine on random pairs, near and far", () => {
    const r = seededRandom(1);
    for (let i = 0; i < 5000; i++) {
      const a: LngLat = [r() * 360 - 180, r() * 180 - 90];
      // Mix of far pairs and pairs a few meters to a few km apart, some across the antimeridian.
      const near = i % 2 === 0;
      const b: LngLat = near ? [wrapLng(a[0] + (r() - 0.5) * 0.05), clampLat(a[1] + (r() - 0.5) * 0.05)] : [r() * 360 - 180, r() * 180 - 90];
      const ours = sphereDistanceMeters(a, b);
      const ref = haversineMeters(a, b);
      expect(Math.abs(ours - ref)).toBeLessThan(Math.max(1e-6, ref * 1e-9));
      expect(sphereDistanceMeters(b, a)).toBeCloseTo(ours, 6);
    }
  });

  test("known short distances: across the antimeridian and at the pole", () => {
    expect(sphereDistanceMeters([179.999, 0], [-179.999, 0])).toBeCloseTo(haversineMeters([179.999, 0], [-179.999, 0]), 6);
    expect(sphereDistanceMeters([179.999, 0], [-179.999, 0])).toBeCloseTo(0.002 * (Math.PI / 180) * 6378100, 6);
    // Two points 1 km from the north pole on opposite meridians are 2 km apart.
    const lat = 90 - (1000 / 6378100) * (180 / Math.PI);
    expect(sphereDistanceMeters([0, lat], [180, lat])).toBeCloseTo(2000, 6);
    expect(sphereDistanceMeters([12, 34], [12, 34])).toBe(0);
  });
});

describe("pointFromValue", () => {
  test("accepts GeoJSON points, legacy pairs and legacy documents", () => {
    expect(pointFromValue({ type: "Point", coordinates: [13.4, 52.5] })).toEqual([13.4, 52.5]);
    expect(pointFromValue([13.4, 52.5])).toEqual([13.4, 52.5]);
    expect(pointFromValue({ lng: 13.4, lat: 52.5 })).toEqual([13.4, 52.5]);
    expect(pointFromValue({ type: "Point", coordinates: [new Double(1.5), new Int32(2)] })).toEqual([1.5, 2]);
  });

  test("rejects out-of-range, non-finite and non-point values", () => {
    expect(pointFromValue({ type: "Point", coordinates: [181, 0] })).toBeNull();
    expect(pointFromValue({ type: "Point", coordinates: [0, -90.5] })).toBeNull();
    expect(pointFromValue([Number.NaN, 0])).toBeNull();
    expect(pointFromValue({ type: "LineString", coordinates: [[0, 0], [1, 1]] })).toBeNull();
    expect(pointFromValue("0,0")).toBeNull();
    expect(pointFromValue([1])).toBeNull();
    expect(pointFromValue(null)).toBeNull();
  });
});

describe("SpatialIndex.nearest", () => {
  function seeded(n: number, seed: number, gen: (r: () => number, i: number) => LngLat): { index: SpatialIndex<number>; points: Map<number, LngLat> } {
    const r = seededRandom(seed);
    const index = new SpatialIndex<number>();
    const points = new Map<number, LngLat>();
    for (let i = 0; i < n; i++) {
      const p = gen(r, i);
      index.add(i, p);
      points.set(i, p);
    }
    return { index, points };
  }

  function expectSameOrder(got: Array<{ key: number; distance: number }>, want: Array<{ key: number; distance: number }>): void {
    expect(got.length).toBe(want.length);
    for (let i = 0; i < want.length; i++) {
      expect(got[i].distance).toBeCloseTo(want[i].distance, 6);
      // Random coordinates make exact ties practically impossible, so the keys agree too.
      expect(got[i].key).toBe(want[i].key);
    }
    for (let i = 1; i < got.length; i++) expect(got[i].distance).toBeGreaterThanOrEqual(got[i - 1].distance);
  }

  test("orders like brute force over random points worldwide", () => {
    const { index, points } = seeded(4000, 2, (r) => [r() * 360 - 180, (Math.asin(2 * r() - 1) * 180) / Math.PI]);
    expect(index.size).toBe(4000);
    const r = seededRandom(3);
    for (let q = 0; q < 40; q++) {
      const c: LngLat = [r() * 360 - 180, r() * 180 - 90];
      expectSameOrder(take(index.nearest(c), 50), bruteForce(points, c).slice(0, 50));
    }
  });

  test("orders like brute force near the antimeridian", () => {
    // A band 2 degrees either side of ±180.
    const { index, points } = seeded(5000, 4, (r) => [wrapLng(178 + r() * 4), r() * 4 - 2]);
    const r = seededRandom(5);
    for (let q = 0; q < 40; q++) {
      const c: LngLat = [q % 2 === 0 ? 180 - r() * 0.01 : -180 + r() * 0.01, r() * 2 - 1];
      const got = take(index.nearest(c), 100);
      expectSameOrder(got, bruteForce(points, c).slice(0, 100));
      const sides = new Set(got.map((g) => Math.sign(points.get(g.key)?.[0] ?? 0)));
      expect(sides.size).toBe(2); // neighbours come from both sides of the line
    }
    // Exactly on the line, either spelling.
    for (const c of [[180, 0], [-180, 0]] as LngLat[]) expectSameOrder(take(index.nearest(c), 30), bruteForce(points, c).slice(0, 30));
  });

  test("orders like brute force around the poles", () => {
    const { index, points } = seeded(3000, 6, (r, i) => [r() * 360 - 180, i % 2 === 0 ? 88 + r() * 2 : -88 - r() * 2]);
    const r = seededRandom(7);
    for (let q = 0; q < 20; q++) {
      const c: LngLat = [r() * 360 - 180, q % 2 === 0 ? 89.9 + r() * 0.1 : -89.9 - r() * 0.1];
      expectSameOrder(take(index.nearest(c), 60), bruteForce(points, c).slice(0, 60));
    }
    expectSameOrder(take(index.nearest([0, 90]), 20), bruteForce(points, [0, 90]).slice(0, 20));
  });

  test("dense city: nearest-20 looks at a small part of the index", () => {
    // 20k points in a 30 × 30 km square (about 0.27 × 0.27 degrees at the equator).
    const { index, points } = seeded(20000, 8, (r) => [r() * 0.27, r() * 0.27]);
    const r = seededRandom(9);
    for (let q = 0; q < 30; q++) {
      const c: LngLat = [r() * 0.27, r() * 0.27];
      index.pointsExamined = 0;
      expectSameOrder(take(index.nearest(c, { maxDistance: 3000 }), 20), bruteForce(points, c, 0, 3000).slice(0, 20));
      expect(index.pointsExamined).toBeLessThan(1000);
    }
  });

  test("maxDistance and minDistance bound the results inclusively and the whole sequence is exact", () => {
    const { index, points } = seeded(3000, 10, (r) => [10 + r() * 2, 50 + r() * 2]);
    const r = seededRandom(11);
    for (let q = 0; q < 20; q++) {
      const c: LngLat = [10 + r() * 2, 50 + r() * 2];
      const min = r() * 20000;
      const max = min + r() * 30000;
      const got = [...index.nearest(c, { minDistance: min, maxDistance: max })];
      expectSameOrder(got, bruteForce(points, c, min, max));
      for (const g of got) {
        expect(g.distance).toBeGreaterThanOrEqual(min);
        expect(g.distance).toBeLessThanOrEqual(max);
      }
    }
    // Inclusive bound: a point exactly at maxDistance is returned.
    const d = sphereDistanceMeters([10.5, 50.5], points.get(0) as LngLat);
    expect([...index.nearest([10.5, 50.5], { minDistance: d, maxDistance: d })].map((g) => g.key)).toEqual([0]);
    expect([...index.nearest([10.5, 50.5], { maxDistance: 0.001 })].length).toBe(0);
  });

  test("maxDistance stops the search without touching far points", () => {
    const { index } = seeded(10000, 12, (r) => [r() * 360 - 180, r() * 180 - 90]);
    index.pointsExamined = 0;
    const got = [...index.nearest([0, 0], { maxDistance: 1000 })];
    expect(got.length).toBe(0);
    expect(index.pointsExamined).toBeLessThan(10);
  });

  test("delete and re-add move points; deleting an absent key is a no-op", () => {
    const index = new SpatialIndex<string>();
    index.add("a", [0, 0]);
    index.add("b", [1, 1]);
    index.add("c", [2, 2]);
    index.delete("nope");
    expect(index.size).toBe(3);
    index.add("a", [3, 3]); // re-add replaces
    expect(index.size).toBe(3);
    expect([...index.nearest([0, 0])].map((g) => g.key)).toEqual(["b", "c", "a"]);
    index.delete("b");
    expect([...index.nearest([0, 0])].map((g) => g.key)).toEqual(["c", "a"]);
    index.delete("c");
    index.delete("a");
    expect(index.size).toBe(0);
    expect([...index.nearest([0, 0])]).toEqual([]);
  });

  test("changes between pulls: deleted keys are skipped, moved keys come at most once", () => {
    const index = new SpatialIndex<number>();
    for (let i = 0; i < 100; i++) index.add(i, [i * 0.001, 0]);
    const gen = index.nearest([0, 0]);
    const got: number[] = [];
    for (let i = 0; i < 5; i++) got.push(gen.next().value.key);
    index.delete(5); // next in line, already queued as a point
    index.delete(50);
    index.add(6, [0.0495, 0]); // moves farther, between 49 and 50: its old entry is queued
    index.add(0, [0.0605, 0]); // already yielded, moves into a cell not yet opened
    index.add(1000, [0.0705, 0]); // new while iterating
    for (let r = gen.next(); !r.done; r = gen.next()) got.push(r.value.key);
    expect(got).not.toContain(5);
    expect(got).not.toContain(50);
    expect(got.filter((k) => k === 0).length).toBe(1);
    expect(new Set(got).size).toBe(got.length);
    // 6 comes once, at its new place.
    expect(got.indexOf(6)).toBeGreaterThan(got.indexOf(49));
    expect(got.indexOf(6)).toBeLessThan(got.indexOf(51));
  });

  test("stays exact under random inserts and deletes", () => {
    const r = seededRandom(13);
    const index = new SpatialIndex<number>();
    const points = new Map<number, LngLat>();
    for (let i = 0; i < 6000; i++) {
      const key = Math.floor(r() * 3000);
      if (r() < 0.3) {
        index.delete(key);
        points.delete(key);
      } else {
        const p: LngLat = [wrapLng(179 + r() * 2), r() * 2 - 1];
        index.add(key, p);
        points.set(key, p);
      }
    }
    expect(index.size).toBe(points.size);
    for (let q = 0; q < 20; q++) {
      const c: LngLat = [wrapLng(179 + r() * 2), r() * 2 - 1];
      expectSameOrder(take(index.nearest(c), 40), bruteForce(points, c).slice(0, 40));
    }
  });
});

describe("geoWithinMatches", () => {
  const point = (lng: number, lat: number) => ({ type: "Point", coordinates: [lng, lat] });

  test("$centerSphere uses radians on MongoDB's sphere", () => {
    const spec = { $centerSphere: [[13.4, 52.5], 5000 / 6378100] };
    expect(geoWithinMatches(point(13.4, 52.5), spec)).toBe(true);
    // 0.07 degrees of latitude ≈ 7.8 km: outside; 0.04 ≈ 4.45 km: inside.
    expect(geoWithinMatches(point(13.4, 52.57), spec)).toBe(false);
    expect(geoWithinMatches(point(13.4, 52.54), spec)).toBe(true);
    expect(geoWithinMatches([13.4, 52.54], spec)).toBe(true);
    expect(geoWithinMatches("not a point", spec)).toBe(false);
    // Across the antimeridian.
    expect(geoWithinMatches(point(-179.99, 0), { $centerSphere: [[179.99, 0], 3000 / 6378100] })).toBe(true);
  });

  test("$centerSphere agrees with the haversine reference on random points", () => {
    const r = seededRandom(14);
    const center: LngLat = [-73.97, 40.77];
    const radius = 20000;
    for (let i = 0; i < 2000; i++) {
      const p: LngLat = [center[0] + (r() - 0.5) * 0.6, center[1] + (r() - 0.5) * 0.6];
      const ref = haversineMeters(center, p);
      if (Math.abs(ref - radius) < 0.01) continue;
      expect(geoWithinMatches(point(p[0], p[1]), { $centerSphere: [center, radius / 6378100] })).toBe(ref <= radius);
    }
  });

  const shell = [[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]];
  const hole = [[4, 4], [6, 4], [6, 6], [4, 6], [4, 4]];

  test("Polygon with a hole", () => {
    const spec = { $geometry: { type: "Polygon", coordinates: [shell, hole] } };
    expect(geoWithinMatches(point(2, 2), spec)).toBe(true);
    expect(geoWithinMatches(point(5, 5), spec)).toBe(false); // in the hole
    expect(geoWithinMatches(point(7, 5), spec)).toBe(true);
    expect(geoWithinMatches(point(11, 5), spec)).toBe(false);
    expect(geoWithinMatches(point(-1, 5), spec)).toBe(false);
    // Antipode of an inside point is outside.
    expect(geoWithinMatches(point(-178, -2), spec)).toBe(false);
  });

  test("Polygon edges are geodesics, not lines of latitude", () => {
    // The edge from (-60, 60) to (60, 60) bulges north: at lng 0 the great circle passes lat ~73.9.
    const spec = { $geometry: { type: "Polygon", coordinates: [[[-60, 60], [60, 60], [0, 10], [-60, 60]]] } };
    expect(geoWithinMatches(point(0, 65), spec)).toBe(true);
    expect(geoWithinMatches(point(0, 75), spec)).toBe(false);
  });

  test("Polygon across the antimeridian", () => {
    const spec = { $geometry: { type: "Polygon", coordinates: [[[179, -1], [-179, -1], [-179, 1], [179, 1], [179, -1]]] } };
    expect(geoWithinMatches(point(180, 0), spec)).toBe(true);
    expect(geoWithinMatches(point(-179.5, 0.5), spec)).toBe(true);
    expect(geoWithinMatches(point(0, 0), spec)).toBe(false);
    expect(geoWithinMatches(point(178.5, 0), spec)).toBe(false);
  });

  test("MultiPolygon: any member, holes respected", () => {
    const spec = { $geometry: { type: "MultiPolygon", coordinates: [[shell, hole], [[[20, 20], [21, 20], [21, 21], [20, 21], [20, 20]]]] } };
    expect(geoWithinMatches(point(1, 1), spec)).toBe(true);
    expect(geoWithinMatches(point(20.5, 20.5), spec)).toBe(true);
    expect(geoWithinMatches(point(5, 5), spec)).toBe(false);
    expect(geoWithinMatches(point(15, 15), spec)).toBe(false);
  });

  test("stored geometries are within when all their vertices are", () => {
    const spec = { $geometry: { type: "Polygon", coordinates: [shell] } };
    expect(geoWithinMatches({ type: "LineString", coordinates: [[1, 1], [2, 2]] }, spec)).toBe(true);
    expect(geoWithinMatches({ type: "LineString", coordinates: [[1, 1], [12, 2]] }, spec)).toBe(false);
  });

  test("legacy $box, $center, $polygon are flat", () => {
    expect(geoWithinMatches([5, 5], { $box: [[0, 0], [10, 10]] })).toBe(true);
    expect(geoWithinMatches([15, 5], { $box: [[0, 0], [10, 10]] })).toBe(false);
    expect(geoWithinMatches([3, 4], { $center: [[0, 0], 5] })).toBe(true);
    expect(geoWithinMatches([3.1, 4], { $center: [[0, 0], 5] })).toBe(false);
    expect(geoWithinMatches([1, 1], { $polygon: [[0, 0], [3, 0], [0, 3]] })).toBe(true);
    expect(geoWithinMatches([2, 2], { $polygon: [[0, 0], [3, 0], [0, 3]] })).toBe(false);
  });

  test("malformed specs throw GeoSpecError with BadValue", () => {
    const bad: Array<Record<string, unknown>> = [
      { $centerSphere: [[200, 0], 0.1] },
      { $centerSphere: [[0, 0], -1] },
      { $centerSphere: [0, 0] },
      { $geometry: { type: "Polygon", coordinates: [[[0, 0], [1, 0], [1, 1], [0, 1]]] } }, // not closed
      { $geometry: { type: "Polygon", coordinates: [[[0, 0], [1, 0], [0, 0]]] } }, // too few
      { $geometry: { type: "Polygon", coordinates: [] } },
      { $geometry: { type: "Circle", coordinates: [0, 0] } },
      { $geometry: "nope" },
      { $nearby: [0, 0] },
      {},
    ];
    for (const spec of bad) {
      let err: unknown;
      try {
        geoWithinMatches(point(0, 0), spec);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(GeoSpecError);
      expect((err as GeoSpecError).code).toBe(2);
    }
  });
});

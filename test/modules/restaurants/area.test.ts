import { describe, expect, test } from "bun:test";
import { areaContains, MAX_AREA_VERTICES, validateDeliveryArea, type DeliveryArea, type Position } from "../../../src/modules/restaurants/area";

/** A square around (lng, lat) with half-side d degrees, counter-clockwise, closed. */
const square = (lng: number, lat: number, d: number): Position[] => [
  [lng - d, lat - d],
  [lng + d, lat - d],
  [lng + d, lat + d],
  [lng - d, lat + d],
  [lng - d, lat - d],
];
const polygon = (...rings: Position[][]): DeliveryArea => ({ type: "Polygon", coordinates: rings });
const messages = (area: DeliveryArea) => validateDeliveryArea(area).map((e) => `${e.path}: ${e.message}`);

describe("validateDeliveryArea", () => {
  test("a square, a square with a hole, and two apart squares are valid", () => {
    expect(messages(polygon(square(2.35, 48.85, 0.02)))).toEqual([]);
    expect(messages(polygon(square(2.35, 48.85, 0.02), square(2.35, 48.85, 0.005)))).toEqual([]);
    expect(messages({ type: "MultiPolygon", coordinates: [[square(2.3, 48.85, 0.01)], [square(2.4, 48.85, 0.01)]] })).toEqual([]);
  });

  test("a ring that is not closed", () => {
    const open = square(2.35, 48.85, 0.02).slice(0, 4).concat([[2.3, 48.9]]);
    expect(messages(polygon(open))).toEqual([expect.stringContaining("/deliveryArea/coordinates/0: the ring is not closed")]);
  });

  test("too few positions, and a zero-length edge", () => {
    expect(messages(polygon([[0, 0], [1, 0], [0, 0]]))[0]).toContain("at least 4 positions");
    expect(messages(polygon([[0, 0], [1, 0], [1, 0], [1, 1], [0, 0]]))[0]).toContain("/deliveryArea/coordinates/0/2: duplicate consecutive position");
  });

  test("a bow tie intersects itself", () => {
    const bowTie: Position[] = [[0, 0], [0.01, 0.01], [0.01, 0], [0, 0.01], [0, 0]];
    expect(messages(polygon(bowTie))).toEqual([expect.stringContaining("the ring intersects itself")]);
  });

  test("a ring whose corners are on one line encloses nothing", () => {
    expect(messages(polygon([[0, 0], [0.01, 0], [0.02, 0], [0, 0]]))[0]).toContain("encloses no area");
  });

  test("holes must be inside their shell, must not cross it, and must not overlap each other", () => {
    const shell = square(2.35, 48.85, 0.02);
    expect(messages(polygon(shell, square(2.5, 48.85, 0.005)))).toEqual([expect.stringContaining("/deliveryArea/coordinates/1: the hole is not inside the outer ring")]);
    expect(messages(polygon(shell, square(2.37, 48.85, 0.005)))).toEqual([expect.stringContaining("/deliveryArea/coordinates/1: the hole meets the outer ring")]);
    expect(messages(polygon(shell, square(2.35, 48.85, 0.005), square(2.352, 48.85, 0.005)))).toEqual([expect.stringContaining("the hole overlaps hole 1")]);
  });

  test("the polygons of a MultiPolygon must not overlap", () => {
    expect(messages({ type: "MultiPolygon", coordinates: [[square(2.3, 48.85, 0.02)], [square(2.31, 48.85, 0.02)]] })).toEqual([
      expect.stringContaining("/deliveryArea/coordinates/1: polygon 1 overlaps polygon 0"),
    ]);
  });

  test(`at most ${MAX_AREA_VERTICES} vertices`, () => {
    const circle = (n: number): Position[] => {
      const ring: Position[] = Array.from({ length: n }, (_, i) => [2.35 + 0.02 * Math.cos((2 * Math.PI * i) / n), 48.85 + 0.02 * Math.sin((2 * Math.PI * i) / n)]);
      return [...ring, ring[0]!];
    };
    expect(messages(polygon(circle(MAX_AREA_VERTICES)))).toEqual([]);
    expect(messages(polygon(circle(MAX_AREA_VERTICES + 1)))).toEqual([`/deliveryArea/coordinates: at most ${MAX_AREA_VERTICES} vertices, got ${MAX_AREA_VERTICES + 1}`]);
  });

  test("an area larger than a hemisphere is refused", () => {
    expect(messages(polygon([[0, 0], [90, 0], [180, 0], [-90, 0], [0, 0]]))).toEqual(["/deliveryArea/coordinates: the area must fit in a hemisphere"]);
  });
});

describe("areaContains (what $geoIntersects answers)", () => {
  const area = polygon(square(2.35, 48.85, 0.02), square(2.35, 48.85, 0.005));

  test("inside the shell, in the hole, outside, and on the boundary", () => {
    expect(areaContains(area, { lng: 2.36, lat: 48.86 })).toBe(true);
    expect(areaContains(area, { lng: 2.35, lat: 48.85 })).toBe(false); // in the hole
    expect(areaContains(area, { lng: 2.4, lat: 48.85 })).toBe(false);
    expect(areaContains(area, { lng: 2.33, lat: 48.83 })).toBe(true); // a corner
    expect(areaContains(area, { lng: 2.37, lat: 48.85 })).toBe(true); // on the eastern edge (a meridian)
    expect(areaContains(area, { lng: 2.355, lat: 48.85 })).toBe(true); // on the hole's edge: still intersects
  });

  test("edges are great circles: a point just north of a long east-west edge's straight lat/lng line is inside", () => {
    // A 40°-wide band between 50°N and 60°N. The northern edge, a great circle between (-20,60) and
    // (20,60), bulges north of latitude 60 at its middle (to about 61.3°N).
    const band = polygon([[-20, 50], [20, 50], [20, 60], [-20, 60], [-20, 50]]);
    expect(areaContains(band, { lng: 0, lat: 60.5 })).toBe(true);
    // And the southern edge bulges north too: 50.5°N at lng 0 lies south of it, outside.
    expect(areaContains(band, { lng: 0, lat: 50.5 })).toBe(false);
  });

  test("MultiPolygon: either part", () => {
    const two: DeliveryArea = { type: "MultiPolygon", coordinates: [[square(2.3, 48.85, 0.01)], [square(2.4, 48.85, 0.01)]] };
    expect(areaContains(two, { lng: 2.3, lat: 48.85 })).toBe(true);
    expect(areaContains(two, { lng: 2.4, lat: 48.855 })).toBe(true);
    expect(areaContains(two, { lng: 2.35, lat: 48.85 })).toBe(false);
  });
});

/**
 * Delivery areas (GeoJSON Polygon / MultiPolygon): what MongoDB's 2dsphere index accepts, checked
 * before it is stored so a bad area is a 400 with the reason, and the same containment test
 * `$geoIntersects` makes, for placing an order. Plain TS, no I/O.
 *
 * Edges are great-circle arcs, as in MongoDB. Every test runs in a gnomonic projection (centred on
 * the area, or on the point asked about), where great circles are straight lines, so plane
 * geometry gives the spherical answer. Areas must fit in a hemisphere, as MongoDB requires.
 */
import type { LatLng } from "../../geo";

export type Position = [lng: number, lat: number];
export type PolygonCoordinates = Position[][];
export type DeliveryArea = { type: "Polygon"; coordinates: PolygonCoordinates } | { type: "MultiPolygon"; coordinates: PolygonCoordinates[] };

export const MAX_AREA_VERTICES = 1000;

export type AreaError = { path: string; message: string };

type Vec3 = [number, number, number];
type Pt = [number, number];

const RAD = Math.PI / 180;

function toVec([lng, lat]: Position): Vec3 {
  const φ = lat * RAD;
  const λ = lng * RAD;
  return [Math.cos(φ) * Math.cos(λ), Math.cos(φ) * Math.sin(λ), Math.sin(φ)];
}

function normalize(v: Vec3): Vec3 | null {
  const n = Math.hypot(v[0], v[1], v[2]);
  return n < 1e-12 ? null : [v[0] / n, v[1] / n, v[2] / n];
}

const dot = (a: Vec3, b: Vec3) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
const cross = (a: Vec3, b: Vec3): Vec3 => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];

/** Gnomonic projection about `centre`: null for a point 90° or more away (not on the near hemisphere). */
function projector(centre: Vec3): (p: Position) => Pt | null {
  const east = normalize(cross([0, 0, 1], centre)) ?? ([0, 1, 0] as Vec3);
  const north = cross(centre, east);
  return (p) => {
    const v = toVec(p);
    const d = dot(v, centre);
    if (d <= 1e-9) return null;
    return [dot(v, east) / d, dot(v, north) / d];
  };
}

function centreOf(positions: Position[]): Vec3 | null {
  const sum: Vec3 = [0, 0, 0];
  for (const p of positions) {
    const v = toVec(p);
    sum[0] += v[0];
    sum[1] += v[1];
    sum[2] += v[2];
  }
  return normalize(sum);
}

// ---- plane geometry on projected points ----

const EPS = 1e-13;
const orient = (a: Pt, b: Pt, c: Pt) => (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]);

function onSegment(p: Pt, a: Pt, b: Pt): boolean {
  const len = Math.hypot(b[0] - a[0], b[1] - a[1]);
  if (Math.abs(orient(a, b, p)) > EPS * Math.max(1, len)) return false;
  return Math.min(a[0], b[0]) - EPS <= p[0] && p[0] <= Math.max(a[0], b[0]) + EPS && Math.min(a[1], b[1]) - EPS <= p[1] && p[1] <= Math.max(a[1], b[1]) + EPS;
}

/** Whether segments ab and cd share any point (crossing, touching or overlapping). */
function segmentsMeet(a: Pt, b: Pt, c: Pt, d: Pt): boolean {
  const o1 = orient(a, b, c);
  const o2 = orient(a, b, d);
  const o3 = orient(c, d, a);
  const o4 = orient(c, d, b);
  if (((o1 > EPS && o2 < -EPS) || (o1 < -EPS && o2 > EPS)) && ((o3 > EPS && o4 < -EPS) || (o3 < -EPS && o4 > EPS))) return true;
  return onSegment(c, a, b) || onSegment(d, a, b) || onSegment(a, c, d) || onSegment(b, c, d);
}

/** Ray casting; points on the boundary are reported by `onRing`, not here. */
function insideRing(p: Pt, ring: Pt[]): boolean {
  let inside = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [xi, yi] = ring[i]!;
    const [xj, yj] = ring[j]!;
    if (yi > p[1] !== yj > p[1] && p[0] < ((xj - xi) * (p[1] - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

function onRing(p: Pt, ring: Pt[]): boolean {
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) if (onSegment(p, ring[j]!, ring[i]!)) return true;
  return false;
}

function ringArea(ring: Pt[]): number {
  let twice = 0;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) twice += ring[j]![0] * ring[i]![1] - ring[i]![0] * ring[j]![1];
  return twice / 2;
}

/** The first pair of edges (i, j) of two rings (or of one ring, skipping neighbours) that meet. */
function meetingEdges(a: Pt[], b: Pt[] | null): [number, number] | null {
  const other = b ?? a;
  for (let i = 0; i < a.length; i++) {
    const a1 = a[i]!;
    const a2 = a[(i + 1) % a.length]!;
    for (let j = b ? 0 : i + 1; j < other.length; j++) {
      if (!b && (j === i + 1 || (i === 0 && j === a.length - 1))) continue; // neighbours share a vertex
      if (segmentsMeet(a1, a2, other[j]!, other[(j + 1) % other.length]!)) return [i, j];
    }
  }
  return null;
}

// ---- validation ----

function polygonsOf(area: DeliveryArea): PolygonCoordinates[] {
  return area.type === "Polygon" ? [area.coordinates] : area.coordinates;
}

/** Everything wrong with an area, with JSON-pointer paths under `base` (empty: it is valid). */
export function validateDeliveryArea(area: DeliveryArea, base = "/deliveryArea"): AreaError[] {
  const errors: AreaError[] = [];
  const polygons = polygonsOf(area);
  const polyPath = (p: number) => (area.type === "Polygon" ? `${base}/coordinates` : `${base}/coordinates/${p}`);
  if (polygons.length === 0) return [{ path: `${base}/coordinates`, message: "a MultiPolygon needs at least one polygon" }];

  let vertices = 0;
  for (const [p, rings] of polygons.entries()) {
    if (rings.length === 0) errors.push({ path: polyPath(p), message: "a polygon needs at least its outer ring" });
    for (const [r, ring] of rings.entries()) {
      const path = `${polyPath(p)}/${r}`;
      vertices += Math.max(0, ring.length - 1);
      if (ring.length < 4) {
        errors.push({ path, message: `a ring needs at least 4 positions (3 corners and the first again), got ${ring.length}` });
        continue;
      }
      const first = ring[0]!;
      const last = ring[ring.length - 1]!;
      if (first[0] !== last[0] || first[1] !== last[1]) errors.push({ path, message: `the ring is not closed: its last position ${JSON.stringify(last)} must repeat the first ${JSON.stringify(first)}` });
      for (let i = 1; i < ring.length; i++) {
        if (ring[i]![0] === ring[i - 1]![0] && ring[i]![1] === ring[i - 1]![1]) {
          errors.push({ path: `${path}/${i}`, message: "duplicate consecutive position (a zero-length edge)" });
          break;
        }
      }
    }
  }
  if (vertices > MAX_AREA_VERTICES) errors.push({ path: `${base}/coordinates`, message: `at most ${MAX_AREA_VERTICES} vertices, got ${vertices}` });
  if (errors.length > 0) return errors;

  const all = polygons.flatMap((rings) => rings.flatMap((ring) => ring.slice(0, -1)));
  const centre = centreOf(all);
  const project = centre && projector(centre);
  const projected = project && polygons.map((rings) => rings.map((ring) => ring.slice(0, -1).map(project)));
  if (!projected || projected.some((rings) => rings.some((ring) => ring.some((pt) => pt === null)))) {
    return [{ path: `${base}/coordinates`, message: "the area must fit in a hemisphere" }];
  }
  const planar = projected as Pt[][][];

  for (const [p, rings] of planar.entries()) {
    for (const [r, ring] of rings.entries()) {
      const path = `${polyPath(p)}/${r}`;
      const self = meetingEdges(ring, null);
      if (self) errors.push({ path, message: `the ring intersects itself: edge ${self[0]} meets edge ${self[1]}` });
      else if (Math.abs(ringArea(ring)) < 1e-16) errors.push({ path, message: "the ring encloses no area (its corners are on one line)" });
    }
    if (errors.length > 0) return errors;
    const [shell, ...holes] = rings;
    for (const [h, hole] of holes.entries()) {
      const path = `${polyPath(p)}/${h + 1}`;
      const crossing = meetingEdges(shell!, hole);
      if (crossing) errors.push({ path, message: `the hole meets the outer ring (its edge ${crossing[1]} meets the shell's edge ${crossing[0]})` });
      else if (!insideRing(hole[0]!, shell!)) errors.push({ path, message: "the hole is not inside the outer ring" });
      for (const [k, other] of holes.slice(0, h).entries()) {
        if (meetingEdges(other, hole) || insideRing(hole[0]!, other) || insideRing(other[0]!, hole)) {
          errors.push({ path, message: `the hole overlaps hole ${k + 1}` });
        }
      }
    }
  }
  // A MultiPolygon's polygons must not overlap (MongoDB refuses them otherwise).
  for (let a = 0; a < planar.length; a++) {
    for (let b = a + 1; b < planar.length; b++) {
      const sa = planar[a]![0]!;
      const sb = planar[b]![0]!;
      if (meetingEdges(sa, sb) || insideRing(sb[0]!, sa) || insideRing(sa[0]!, sb)) {
        errors.push({ path: polyPath(b), message: `polygon ${b} overlaps polygon ${a}` });
      }
    }
  }
  return errors;
}

// ---- containment ----

/**
 * Whether the point is in the area, boundary included: what `{$geoIntersects: {$geometry: point}}`
 * answers for it. Assumes a valid area.
 */
export function areaContains(area: DeliveryArea, point: LatLng): boolean {
  const project = projector(toVec([point.lng, point.lat]));
  const origin: Pt = [0, 0];
  for (const rings of polygonsOf(area)) {
    const planar = rings.map((ring) => ring.slice(0, -1).map(project));
    // A corner 90° or more away: the point is nowhere near this polygon.
    if (planar.some((ring) => ring.some((pt) => pt === null))) continue;
    const [shell, ...holes] = planar as Pt[][];
    if (!shell) continue;
    if (onRing(origin, shell)) return true;
    if (!insideRing(origin, shell)) continue;
    if (holes.some((hole) => insideRing(origin, hole) && !onRing(origin, hole))) continue;
    return true;
  }
  return false;
}

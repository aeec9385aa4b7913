// Spherical geometry for 2dsphere GeoJSON points, as MongoDB computes it (S2: angle between unit
// vectors times kRadiusOfEarthInMeters), plus a hierarchical grid index for nearest-first queries.

export type LngLat = [lng: number, lat: number];

/** MongoDB's kRadiusOfEarthInMeters (src/mongo/db/geo/geoconstants.h): 6378.1 km. */
export const EARTH_RADIUS_METERS = 6378100;

const DEG = Math.PI / 180;

export class GeoSpecError extends Error {
  code: number;
  constructor(message: string, code = 2) {
    super(message);
    this.name = "GeoSpecError";
    this.code = code;
  }
}

/** A plain JS number from a number or a BSON numeric wrapper (compared by _bsontype: the driver may load another bson build). */
export function numberFromValue(v: unknown): number | null {
  if (typeof v === "number") return v;
  if (v !== null && typeof v === "object") {
    const t = (v as { _bsontype?: unknown })._bsontype;
    if (t === "Double" || t === "Int32") return Number((v as { value: unknown }).value);
    if (t === "Long") return (v as { toNumber(): number }).toNumber();
    if (t === "Decimal128") return Number.parseFloat(String(v));
  }
  return null;
}

function validLngLat(lng: number | null, lat: number | null): LngLat | null {
  if (lng === null || lat === null || !Number.isFinite(lng) || !Number.isFinite(lat)) return null;
  if (lng < -180 || lng > 180 || lat < -90 || lat > 90) return null;
  return [lng, lat];
}

/** GeoJSON {type:"Point",coordinates:[lng,lat]} or legacy [lng,lat] / {x,y}-style pair; null if not a valid point. */
export function pointFromValue(v: unknown): LngLat | null {
  if (Array.isArray(v)) {
    if (v.length < 2) return null;
    return validLngLat(numberFromValue(v[0]), numberFromValue(v[1]));
  }
  if (v === null || typeof v !== "object" || "_bsontype" in v) return null;
  const o = v as Record<string, unknown>;
  if ("type" in o) {
    if (o.type !== "Point" || !Array.isArray(o.coordinates) || o.coordinates.length !== 2) return null;
    return validLngLat(numberFromValue(o.coordinates[0]), numberFromValue(o.coordinates[1]));
  }
  // Legacy embedded document: the first two fields, whatever their names.
  const vals = Object.values(o);
  if (vals.length < 2) return null;
  return validLngLat(numberFromValue(vals[0]), numberFromValue(vals[1]));
}

type Vec3 = [number, number, number];

function toVec(p: LngLat): Vec3 {
  const lng = p[0] * DEG;
  const lat = p[1] * DEG;
  const c = Math.cos(lat);
  return [c * Math.cos(lng), c * Math.sin(lng), Math.sin(lat)];
}

/** Angle between unit vectors, atan2(|a×b|, a·b): accurate for tiny and near-antipodal angles alike (as S1Angle does). */
function angleBetween(ax: number, ay: number, az: number, bx: number, by: number, bz: number): number {
  const cx = ay * bz - az * by;
  const cy = az * bx - ax * bz;
  const cz = ax * by - ay * bx;
  return Math.atan2(Math.sqrt(cx * cx + cy * cy + cz * cz), ax * bx + ay * by + az * bz);
}

/** Great-circle angle in radians between two points. */
export function sphereAngleRadians(a: LngLat, b: LngLat): number {
  const va = toVec(a);
  const vb = toVec(b);
  return angleBetween(va[0], va[1], va[2], vb[0], vb[1], vb[2]);
}

/** Great-circle distance in meters, as MongoDB computes it for 2dsphere. */
export function sphereDistanceMeters(a: LngLat, b: LngLat): number {
  return sphereAngleRadians(a, b) * EARTH_RADIUS_METERS;
}

/** Longitude difference folded into [0, 180] degrees. */
function lngGap(a: number, b: number): number {
  let d = Math.abs(a - b) % 360;
  if (d > 180) d = 360 - d;
  return d;
}

/**
 * Smallest angle (radians) from a point to any point of the lat/lng rectangle.
 * If the point's longitude lies inside the rectangle's, the nearest point is on its own meridian;
 * otherwise it lies on the rectangle's nearer meridian edge (distance at fixed latitude grows with |Δλ|).
 */
function minAngleToRect(lng: number, lat: number, sinPhi: number, cosPhi: number, lng0: number, lng1: number, lat0: number, lat1: number): number {
  if (lng >= lng0 && lng <= lng1) {
    if (lat < lat0) return (lat0 - lat) * DEG;
    if (lat > lat1) return (lat - lat1) * DEG;
    return 0;
  }
  const g0 = lngGap(lng, lng0);
  const g1 = lngGap(lng, lng1);
  const dl = (g0 < g1 ? g0 : g1) * DEG;
  // Latitude of the point on that full meridian closest to us (beyond ±90° when |Δλ| > 90°).
  const phiC = Math.atan2(sinPhi, cosPhi * Math.cos(dl)) / DEG;
  if (phiC >= lat0 && phiC <= lat1) return Math.asin(Math.min(1, cosPhi * Math.sin(dl)));
  // Otherwise the nearer end of that edge (haversine; which end depends on the wrap-around, so both).
  const sinHalfDl = Math.sin(dl / 2);
  const h = sinHalfDl * sinHalfDl * cosPhi;
  const s0 = Math.sin(((lat0 - lat) * DEG) / 2);
  const s1 = Math.sin(((lat1 - lat) * DEG) / 2);
  const hav0 = s0 * s0 + h * Math.cos(lat0 * DEG);
  const hav1 = s1 * s1 + h * Math.cos(lat1 * DEG);
  return 2 * Math.asin(Math.sqrt(Math.min(1, hav0 < hav1 ? hav0 : hav1)));
}

interface IndexedPoint<K> {
  key: K;
  x: number;
  y: number;
  z: number;
  leaf: Cell<K>;
  slot: number; // position in leaf.points
}

/** A grid cell: level l spans 180/2^l degrees; inner cells link their non-empty children. */
interface Cell<K> {
  level: number;
  ix: number;
  iy: number;
  count: number;
  parent: Cell<K> | null;
  children: Array<Cell<K> | null> | null; // inner cells: [dx*2 + dy]
  points: IndexedPoint<K>[] | null; // leaf cells
}

// Heap node: a cell, or a point with its exact distance; d is the cell's distance lower bound.
interface HeapNode<K> {
  d: number;
  cell: Cell<K> | null;
  point: IndexedPoint<K> | null;
}

class MinHeap<K> {
  private items: HeapNode<K>[] = [];
  push(n: HeapNode<K>): void {
    const a = this.items;
    let i = a.length;
    a.push(n);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p].d <= n.d) break;
      a[i] = a[p];
      i = p;
    }
    a[i] = n;
  }
  pop(): HeapNode<K> | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last !== undefined) {
      let i = 0;
      const n = a.length;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const c = r < n && a[r].d < a[l].d ? r : l;
        if (a[c].d >= last.d) break;
        a[i] = a[c];
        i = c;
      }
      a[i] = last;
    }
    return top;
  }
}

/** Default finest level: cells of 180/2^16 degrees (~305 m of latitude). */
export const DEFAULT_LEAF_LEVEL = 16;
const CELL_DEGREES = Array.from({ length: 23 }, (_, level) => 180 / 2 ** level);
// Lower bounds are shaved so rounding can never make a cell look farther than a point inside it.
const BOUND_SLACK = 1e-9;

/**
 * Points in a hierarchy of lat/lng grids (level l: 2^(l+1) × 2^l square-degree cells, like a geohash),
 * kept as a tree of non-empty cells with the points in the leaf cells. nearest() is a best-first search
 * (Hjaltason & Samet): a heap of cells keyed by the least possible distance to anything inside them,
 * refined level by level; a point is emitted only once no cell or point left can be closer, so results
 * come lazily and exactly in order, and a cell beyond maxDistance is never opened.
 */
export class SpatialIndex<K> {
  readonly leafLevel: number;
  private readonly roots: Array<Cell<K> | null> = [null, null]; // level 0: western and eastern hemisphere
  private readonly byKey = new Map<K, IndexedPoint<K>>();
  /** Points whose distance nearest() has computed so far (for tests and profiling). */
  pointsExamined = 0;

  constructor(opts?: { leafLevel?: number }) {
    this.leafLevel = opts?.leafLevel ?? DEFAULT_LEAF_LEVEL;
    if (!(this.leafLevel >= 1 && this.leafLevel <= 22)) throw new RangeError("leafLevel must be 1..22");
  }

  get size(): number {
    return this.byKey.size;
  }

  private newCell(level: number, ix: number, iy: number, parent: Cell<K> | null): Cell<K> {
    const leaf = level === this.leafLevel;
    return { level, ix, iy, count: 0, parent, children: leaf ? null : [null, null, null, null], points: leaf ? [] : null };
  }

  add(key: K, p: LngLat): void {
    this.delete(key);
    const [lng, lat] = p;
    const v = toVec(p);
    const size = CELL_DEGREES[this.leafLevel];
    const lx = Math.min(Math.floor((lng + 180) / size), 2 ** (this.leafLevel + 1) - 1);
    const ly = Math.min(Math.floor((lat + 90) / size), 2 ** this.leafLevel - 1);
    const rx = lx >>> this.leafLevel;
    let cell = this.roots[rx] ?? (this.roots[rx] = this.newCell(0, rx, 0, null));
    cell.count++;
    for (let l = 1; l <= this.leafLevel; l++) {
      const ix = lx >>> (this.leafLevel - l);
      const iy = ly >>> (this.leafLevel - l);
      const slot = (ix & 1) * 2 + (iy & 1);
      const children = cell.children as Array<Cell<K> | null>;
      cell = children[slot] ?? (children[slot] = this.newCell(l, ix, iy, cell));
      cell.count++;
    }
    const points = cell.points as IndexedPoint<K>[];
    const entry: IndexedPoint<K> = { key, x: v[0], y: v[1], z: v[2], leaf: cell, slot: points.length };
    points.push(entry);
    this.byKey.set(key, entry);
  }

  delete(key: K): void {
    const entry = this.byKey.get(key);
    if (!entry) return;
    this.byKey.delete(key);
    const points = entry.leaf.points as IndexedPoint<K>[];
    const last = points.pop();
    if (last && last !== entry) {
      points[entry.slot] = last;
      last.slot = entry.slot;
    }
    for (let cell: Cell<K> | null = entry.leaf; cell; cell = cell.parent) {
      cell.count--;
      if (cell.count > 0) continue;
      // Unlink the empty cell so searches never visit it.
      if (cell.parent) (cell.parent.children as Array<Cell<K> | null>)[(cell.ix & 1) * 2 + (cell.iy & 1)] = null;
      else this.roots[cell.ix] = null;
    }
  }

  /**
   * Keys nearest first, lazily, distances in meters; minDistance and maxDistance are inclusive.
   * Changes between pulls are tolerated: a deleted key is not yielded, a moved one at most once.
   */
  *nearest(center: LngLat, opts?: { minDistance?: number; maxDistance?: number }): Generator<{ key: K; distance: number }> {
    if (this.byKey.size === 0) return;
    const [lng, lat] = center;
    const [cx, cy, cz] = toVec(center);
    const minD = opts?.minDistance ?? 0;
    const maxD = opts?.maxDistance ?? Infinity;
    if (maxD < minD) return;
    const R = EARTH_RADIUS_METERS;
    const heap = new MinHeap<K>();
    const sinPhi = Math.sin(lat * DEG);
    const cosPhi = Math.cos(lat * DEG);
    const yielded = new Set<K>();

    const pushCell = (cell: Cell<K>): void => {
      const size = CELL_DEGREES[cell.level];
      const lng0 = cell.ix * size - 180;
      const lat0 = cell.iy * size - 90;
      const lower = minAngleToRect(lng, lat, sinPhi, cosPhi, lng0, lng0 + size, lat0, lat0 + size);
      const d = Math.max(0, lower - BOUND_SLACK) * R;
      if (d > maxD) return;
      if (minD > 0) {
        // Upper bound: to the cell centre, plus half its height and half its width (a parallel arc is longer than the chord).
        const mid: LngLat = [lng0 + size / 2, lat0 + size / 2];
        const upper = (sphereAngleRadians(center, mid) + size * DEG + BOUND_SLACK) * R;
        if (upper < minD) return;
      }
      heap.push({ d, cell, point: null });
    };

    for (const root of this.roots) if (root) pushCell(root);
    for (;;) {
      const n = heap.pop();
      if (n === undefined) return;
      if (n.point !== null) {
        // The caller may change the index between pulls: skip entries deleted or moved since,
        // and keys already yielded (a moved key's new entry may sit in a cell not yet opened).
        const key = n.point.key;
        if (this.byKey.get(key) !== n.point || yielded.has(key)) continue;
        yielded.add(key);
        yield { key, distance: n.d };
        continue;
      }
      const cell = n.cell as Cell<K>;
      if (cell.points !== null) {
        this.pointsExamined += cell.points.length;
        for (const p of cell.points) {
          const d = angleBetween(cx, cy, cz, p.x, p.y, p.z) * R;
          if (d > maxD || d < minD) continue;
          heap.push({ d, cell: null, point: p });
        }
        continue;
      }
      for (const child of cell.children as Array<Cell<K> | null>) if (child) pushCell(child);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// $geoWithin

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v) && !("_bsontype" in v);
}

function positionOf(v: unknown, what: string): LngLat {
  if (!Array.isArray(v) || v.length < 2) throw new GeoSpecError(`${what}: expected a [lng, lat] position`);
  const p = validLngLat(numberFromValue(v[0]), numberFromValue(v[1]));
  if (!p) throw new GeoSpecError(`${what}: longitude/latitude is out of bounds, lng: ${String(v[0])} lat: ${String(v[1])}`);
  return p;
}

function flatPair(v: unknown, what: string): [number, number] {
  const arr = Array.isArray(v) ? v : isRecord(v) ? Object.values(v) : null;
  if (!arr || arr.length < 2) throw new GeoSpecError(`${what}: expected a point`);
  const x = numberFromValue(arr[0]);
  const y = numberFromValue(arr[1]);
  if (x === null || y === null || !Number.isFinite(x) || !Number.isFinite(y)) throw new GeoSpecError(`${what}: expected numeric coordinates`);
  return [x, y];
}

/** Vertices of a stored value for containment: a point, or the positions of a GeoJSON geometry. */
function storedVertices(value: unknown): LngLat[] | null {
  const p = pointFromValue(value);
  if (p) return [p];
  if (!isRecord(value) || typeof value.type !== "string" || !Array.isArray(value.coordinates)) return null;
  const depth: Record<string, number> = { MultiPoint: 1, LineString: 1, Polygon: 2, MultiLineString: 2, MultiPolygon: 3 };
  const dep = depth[value.type];
  if (dep === undefined) return null;
  const out: LngLat[] = [];
  const walk = (v: unknown, d: number): boolean => {
    if (!Array.isArray(v)) return false;
    if (d === 0) {
      const q = validLngLat(numberFromValue(v[0]), numberFromValue(v[1]));
      if (!q) return false;
      out.push(q);
      return true;
    }
    return v.every((c) => walk(c, d - 1));
  };
  return walk(value.coordinates, dep) && out.length > 0 ? out : null;
}

interface PreparedPolygon {
  // Gnomonic projection about `center`: great-circle edges become straight lines, so a planar
  // even-odd test is exact for geodesic edges. `planar` falls back to lat/lng when a ring spans a hemisphere.
  center: Vec3;
  e1: Vec3;
  e2: Vec3;
  planar: boolean;
  rings: Array<Array<[number, number]>>; // projected, ring 0 the shell, others holes
}

function ringOf(v: unknown, what: string): LngLat[] {
  if (!Array.isArray(v)) throw new GeoSpecError(`${what}: a ring must be an array of positions`);
  const ring = v.map((p) => positionOf(p, what));
  if (ring.length < 4) throw new GeoSpecError(`${what}: Loop must have at least 3 different vertices`);
  const a = ring[0];
  const b = ring[ring.length - 1];
  if (a[0] !== b[0] || a[1] !== b[1]) throw new GeoSpecError(`${what}: Loop is not closed, first vertex does not equal last vertex`);
  return ring;
}

function preparePolygon(coords: unknown, what: string): PreparedPolygon {
  if (!Array.isArray(coords) || coords.length === 0) throw new GeoSpecError(`${what}: Polygon coordinates must be an array of rings`);
  const rings = coords.map((r) => ringOf(r, what));
  let sx = 0;
  let sy = 0;
  let sz = 0;
  for (let i = 0; i < rings[0].length - 1; i++) {
    const v = toVec(rings[0][i]);
    sx += v[0];
    sy += v[1];
    sz += v[2];
  }
  const norm = Math.hypot(sx, sy, sz);
  const center: Vec3 = norm > 1e-12 ? [sx / norm, sy / norm, sz / norm] : [1, 0, 0];
  // Orthonormal basis of the tangent plane at `center`.
  const helper: Vec3 = Math.abs(center[2]) < 0.9 ? [0, 0, 1] : [1, 0, 0];
  const e1 = normalize(cross(helper, center));
  const e2 = cross(center, e1);
  let planar = norm <= 1e-12;
  const projected: Array<Array<[number, number]>> = [];
  for (const ring of rings) {
    const out: Array<[number, number]> = [];
    for (const p of ring) {
      const q = project(toVec(p), center, e1, e2);
      if (!q) planar = true;
      else out.push(q);
    }
    projected.push(out);
  }
  if (planar) return { center, e1, e2, planar, rings: rings.map((r) => r.map((p) => [p[0], p[1]] as [number, number])) };
  return { center, e1, e2, planar, rings: projected };
}

function cross(a: Vec3, b: Vec3): Vec3 {
  return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
}

function normalize(a: Vec3): Vec3 {
  const n = Math.hypot(a[0], a[1], a[2]);
  return [a[0] / n, a[1] / n, a[2] / n];
}

function project(v: Vec3, c: Vec3, e1: Vec3, e2: Vec3): [number, number] | null {
  const dot = v[0] * c[0] + v[1] * c[1] + v[2] * c[2];
  if (dot <= 1e-9) return null;
  return [(v[0] * e1[0] + v[1] * e1[1] + v[2] * e1[2]) / dot, (v[0] * e2[0] + v[1] * e2[1] + v[2] * e2[2]) / dot];
}

function inRing(x: number, y: number, ring: Array<[number, number]>): boolean {
  let inside = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [xi, yi] = ring[i];
    const [xj, yj] = ring[j];
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

function polygonContains(poly: PreparedPolygon, p: LngLat): boolean {
  let q: [number, number] | null;
  if (poly.planar) q = [p[0], p[1]];
  else q = project(toVec(p), poly.center, poly.e1, poly.e2);
  if (!q) return false;
  if (!inRing(q[0], q[1], poly.rings[0])) return false;
  for (let i = 1; i < poly.rings.length; i++) if (inRing(q[0], q[1], poly.rings[i])) return false;
  return true;
}

type Region = (p: LngLat) => boolean;

const regionCache = new WeakMap<Record<string, unknown>, Region>();

function regionOf(spec: Record<string, unknown>): Region {
  const cached = regionCache.get(spec);
  if (cached) return cached;
  const region = buildRegion(spec);
  regionCache.set(spec, region);
  return region;
}

function buildRegion(spec: Record<string, unknown>): Region {
  const keys = Object.keys(spec);
  if (keys.length !== 1) throw new GeoSpecError("$geoWithin takes exactly one of $centerSphere, $geometry, $box, $center, $polygon");
  const op = keys[0];
  const arg = spec[op];
  switch (op) {
    case "$centerSphere": {
      if (!Array.isArray(arg) || arg.length !== 2) throw new GeoSpecError("$centerSphere: expected [[lng, lat], radius in radians]");
      const c = positionOf(arg[0], "$centerSphere");
      const r = numberFromValue(arg[1]);
      if (r === null || !Number.isFinite(r) || r < 0) throw new GeoSpecError("$centerSphere: radius must be a non-negative number");
      return (p) => sphereAngleRadians(c, p) <= r;
    }
    case "$geometry": {
      if (!isRecord(arg)) throw new GeoSpecError("$geometry: expected a GeoJSON object");
      if (arg.type === "Polygon") {
        const poly = preparePolygon(arg.coordinates, "$geometry Polygon");
        return (p) => polygonContains(poly, p);
      }
      if (arg.type === "MultiPolygon") {
        if (!Array.isArray(arg.coordinates) || arg.coordinates.length === 0) throw new GeoSpecError("$geometry MultiPolygon: coordinates must be an array of polygons");
        const polys = arg.coordinates.map((c) => preparePolygon(c, "$geometry MultiPolygon"));
        return (p) => polys.some((poly) => polygonContains(poly, p));
      }
      throw new GeoSpecError(`$geometry: $geoWithin supports Polygon and MultiPolygon, got ${String(arg.type)}`);
    }
    case "$box": {
      if (!Array.isArray(arg) || arg.length !== 2) throw new GeoSpecError("$box: expected [[x1, y1], [x2, y2]]");
      const [x1, y1] = flatPair(arg[0], "$box");
      const [x2, y2] = flatPair(arg[1], "$box");
      const [lx, hx, ly, hy] = [Math.min(x1, x2), Math.max(x1, x2), Math.min(y1, y2), Math.max(y1, y2)];
      return (p) => p[0] >= lx && p[0] <= hx && p[1] >= ly && p[1] <= hy;
    }
    case "$center": {
      if (!Array.isArray(arg) || arg.length !== 2) throw new GeoSpecError("$center: expected [[x, y], radius]");
      const [x, y] = flatPair(arg[0], "$center");
      const r = numberFromValue(arg[1]);
      if (r === null || !Number.isFinite(r) || r < 0) throw new GeoSpecError("$center: radius must be a non-negative number");
      return (p) => Math.hypot(p[0] - x, p[1] - y) <= r;
    }
    case "$polygon": {
      if (!Array.isArray(arg) || arg.length < 3) throw new GeoSpecError("$polygon: expected at least 3 points");
      const ring = arg.map((q) => flatPair(q, "$polygon"));
      return (p) => inRing(p[0], p[1], ring);
    }
    default:
      throw new GeoSpecError(`$geoWithin: unknown shape ${op}`);
  }
}

/**
 * $geoWithin for a stored value. Throws GeoSpecError on a malformed spec (so geoWithinMatches(null, spec)
 * validates a spec); a non-geo stored value never matches. Parsed specs are cached per spec object.
 */
export function geoWithinMatches(value: unknown, spec: Record<string, unknown>): boolean {
  const region = regionOf(spec);
  const vertices = storedVertices(value);
  if (!vertices) return false;
  return vertices.every(region);
}

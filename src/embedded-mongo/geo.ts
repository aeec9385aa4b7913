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

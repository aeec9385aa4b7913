// GeoJSON geometries on the sphere as MongoDB's 2dsphere treats them: parsing and validation with
// MongoDB's rules and messages (closed rings, no self-crossing loops, holes inside their shell, no
// shared edges), and the predicates behind $geoWithin, $geoIntersects and $near over any geometry.
// Edges are geodesics. A point counts as touching an edge within ~6 mm (MongoDB tests a point's
// ~1 cm S2 leaf cell against the edge), so points on a polygon's edge are within it and intersect it.

import { EARTH_RADIUS_METERS, GeoSpecError, type LngLat, numberFromValue } from "./geo";

type Vec3 = [number, number, number];

export interface PointShape {
  kind: "point";
  ll: LngLat;
  v: Vec3;
}
export interface LineShape {
  kind: "line";
  v: Vec3[];
}
export interface PolygonShape {
  kind: "polygon";
  /** Open rings (no repeated closing vertex); loop 0 is the shell. */
  loops: Vec3[][];
  /** A cap around the shell: nothing of the polygon lies farther than `radius` from `center`. */
  center: Vec3;
  radius: number;
  /** The rings projected gnomonically about `center` (geodesics become straight lines), or null past a hemisphere. */
  projected: Array<Array<[number, number]>> | null;
  /** Lat/lng rings for the planar fallback. */
  flat: Array<Array<[number, number]>>;
}
export type Shape = PointShape | LineShape | PolygonShape;
/** One geometry: its shapes (several for Multi* and GeometryCollection). */
export type Geometry = Shape[];

/** Within this angle (radians, ~6 mm on the Earth) a point touches an edge or another point. */
const TOUCH = 1e-9;
const DEG = Math.PI / 180;

// ---- vectors --------------------------------------------------------------------------------------

function toVec(p: LngLat): Vec3 {
  const lng = p[0] * DEG;
  const lat = p[1] * DEG;
  const c = Math.cos(lat);
  return [c * Math.cos(lng), c * Math.sin(lng), Math.sin(lat)];
}
function dot(a: Vec3, b: Vec3): number {
  return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}
function cross(a: Vec3, b: Vec3): Vec3 {
  return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
}
function length(a: Vec3): number {
  return Math.hypot(a[0], a[1], a[2]);
}
function angle(a: Vec3, b: Vec3): number {
  return Math.atan2(length(cross(a, b)), dot(a, b));
}
function same(a: Vec3, b: Vec3): boolean {
  return a[0] === b[0] && a[1] === b[1] && a[2] === b[2];
}

/** Angle from p to the geodesic arc a–b (shorter than 180°). */
function arcDistance(p: Vec3, a: Vec3, b: Vec3): number {
  const n = cross(a, b);
  const len = length(n);
  if (len > 1e-15) {
    // p's foot on the great circle lies inside the arc when it is on the inner side of both ends.
    if (dot(cross(a, p), n) > 0 && dot(cross(p, b), n) > 0) return Math.asin(Math.min(1, Math.abs(dot(p, n)) / len));
  }
  return Math.min(angle(p, a), angle(p, b));
}

/** Proper crossing of arcs a–b and c–d at one interior point (S2's SimpleCrossing). */
function arcsCross(a: Vec3, b: Vec3, c: Vec3, d: Vec3): boolean {
  const ab = cross(a, b);
  const acb = -dot(ab, c);
  const bda = dot(ab, d);
  if (acb * bda <= 0) return false;
  const cd = cross(c, d);
  const cbd = -dot(cd, b);
  const dac = dot(cd, a);
  return acb * cbd > 0 && acb * dac > 0;
}

/** Arcs that cross or touch (an end of one on the other). */
function arcsMeet(a: Vec3, b: Vec3, c: Vec3, d: Vec3): boolean {
  return arcsCross(a, b, c, d) || arcDistance(c, a, b) < TOUCH || arcDistance(d, a, b) < TOUCH || arcDistance(a, c, d) < TOUCH || arcDistance(b, c, d) < TOUCH;
}

// ---- parsing ----------------------------------------------------------------------------------------

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v) && !("_bsontype" in v) && !(v instanceof Date);
}

/** MongoDB's rendering of a coordinate array in messages: `[ [ 0, 0 ], [ 1, 0 ] ]`. */
function show(v: unknown): string {
  if (Array.isArray(v)) return v.length === 0 ? "[]" : `[ ${v.map(show).join(", ")} ]`;
  const n = numberFromValue(v);
  if (n !== null) return String(n);
  if (isRecord(v)) return `{ ${Object.entries(v).map(([k, x]) => `${k}: ${show(x)}`).join(", ")} }`;
  return JSON.stringify(v) ?? String(v);
}

function position(v: unknown): LngLat {
  if (!Array.isArray(v)) throw new GeoSpecError(`Point must be an array or object, instead got type ${typeof v}`);
  if (v.length < 2) throw new GeoSpecError(`Point must only contain numeric elements`);
  const lng = numberFromValue(v[0]);
  const lat = numberFromValue(v[1]);
  if (lng === null || lat === null) throw new GeoSpecError("Point must only contain numeric elements");
  if (v.length > 3) throw new GeoSpecError(`Point must only contain two numeric elements`);
  if (!(lng >= -180 && lng <= 180 && lat >= -90 && lat <= 90)) {
    throw new GeoSpecError(`longitude/latitude is out of bounds, lng: ${lng} lat: ${lat}`);
  }
  return [lng, lat];
}

function positions(v: unknown, what: string): LngLat[] {
  if (!Array.isArray(v)) throw new GeoSpecError(`${what} must be an array`);
  return v.map(position);
}

function pointShape(ll: LngLat): PointShape {
  return { kind: "point", ll, v: toVec(ll) };
}

/** Consecutive duplicates removed, as MongoDB does before validating. */
function dedupe(vs: Vec3[]): Vec3[] {
  const out: Vec3[] = [];
  for (const v of vs) if (out.length === 0 || !same(out[out.length - 1], v)) out.push(v);
  return out;
}

function lineShape(coords: unknown): LineShape {
  const pts = positions(coords, "LineString coordinates");
  if (pts.length < 2) throw new GeoSpecError(`GeoJSON LineString must have at least 2 vertices: ${show(coords)}`);
  const v = dedupe(pts.map(toVec));
  if (v.length < 2) throw new GeoSpecError(`Invalid LineString, it must have at least 2 distinct vertices: ${show(coords)}`);
  for (let i = 0; i + 1 < v.length; i++) {
    if (dot(v[i], v[i + 1]) < -1 + 1e-15) throw new GeoSpecError(`Invalid LineString: ${show(coords)} Edge ${i} has antipodal vertices`);
  }
  return { kind: "line", v };
}

function loopOf(ring: unknown): { v: Vec3[]; ll: LngLat[] } {
  if (!Array.isArray(ring)) throw new GeoSpecError("Polygon loop must be an array");
  const pts = ring.map(position);
  if (pts.length < 4) throw new GeoSpecError(`Loop must have at least 3 different vertices: ${show(ring)}`);
  const a = pts[0];
  const b = pts[pts.length - 1];
  if (a[0] !== b[0] || a[1] !== b[1]) throw new GeoSpecError(`Loop is not closed, first vertex does not equal last vertex: ${show(ring)}`);
  const kept: LngLat[] = [];
  const v: Vec3[] = [];
  for (const p of pts.slice(0, -1)) {
    const q = toVec(p);
    if (v.length > 0 && same(v[v.length - 1], q)) continue;
    v.push(q);
    kept.push(p);
  }
  while (v.length > 1 && same(v[0], v[v.length - 1])) {
    v.pop();
    kept.pop();
  }
  if (v.length < 3) throw new GeoSpecError(`Loop must have at least 3 different vertices: ${show(ring)}`);
  // S2Loop validation: distinct vertices, no antipodal neighbours, no two edges crossing or touching.
  const n = v.length;
  for (let i = 0; i < n; i++) {
    if (dot(v[i], v[(i + 1) % n]) < -1 + 1e-15) throw new GeoSpecError(`Loop is not valid: ${show(ring)} Edge ${i} is degenerate (antipodal vertices)`);
    for (let j = i + 1; j < n; j++) if (same(v[i], v[j])) throw new GeoSpecError(`Loop is not valid: ${show(ring)} Duplicate vertices: ${i} and ${j}`);
  }
  for (let i = 0; i < n; i++) {
    const a0 = v[i];
    const a1 = v[(i + 1) % n];
    for (let j = i + 1; j < n; j++) {
      const adjacent = j === i + 1 || (i === 0 && j === n - 1);
      const b0 = v[j];
      const b1 = v[(j + 1) % n];
      if (adjacent) {
        // Neighbours share one vertex; they are invalid only when one folds back over the other.
        const shared = j === i + 1 ? a1 : a0;
        const other = j === i + 1 ? b1 : b0;
        const mine = j === i + 1 ? a0 : a1;
        if (arcDistance(other, shared, mine) < TOUCH || arcDistance(mine, shared, other) < TOUCH) {
          throw new GeoSpecError(`Loop is not valid: ${show(ring)} Edges ${i} and ${j} cross`);
        }
        continue;
      }
      if (arcsMeet(a0, a1, b0, b1)) throw new GeoSpecError(`Loop is not valid: ${show(ring)} Edges ${i} and ${j} cross`);
    }
  }
  return { v, ll: kept };
}

function project(v: Vec3, c: Vec3, e1: Vec3, e2: Vec3): [number, number] | null {
  const d = dot(v, c);
  if (d <= 1e-9) return null;
  return [dot(v, e1) / d, dot(v, e2) / d];
}

function buildPolygon(loops: Array<{ v: Vec3[]; ll: LngLat[] }>): PolygonShape {
  const shell = loops[0].v;
  let sx = 0;
  let sy = 0;
  let sz = 0;
  for (const p of shell) {
    sx += p[0];
    sy += p[1];
    sz += p[2];
  }
  const norm = Math.hypot(sx, sy, sz);
  const center: Vec3 = norm > 1e-12 ? [sx / norm, sy / norm, sz / norm] : [1, 0, 0];
  let radius = 0;
  for (const p of shell) radius = Math.max(radius, angle(center, p));
  // Edges bulge away from the chord; a geodesic edge stays within the cap of its ends' radius plus half its length.
  for (let i = 0; i < shell.length; i++) radius = Math.max(radius, angle(center, shell[i]) + angle(shell[i], shell[(i + 1) % shell.length]) / 2);
  radius = Math.min(Math.PI, radius);
  const helper: Vec3 = Math.abs(center[2]) < 0.9 ? [0, 0, 1] : [1, 0, 0];
  const h = cross(helper, center);
  const hl = length(h);
  const e1: Vec3 = [h[0] / hl, h[1] / hl, h[2] / hl];
  const e2 = cross(center, e1);
  let projected: Array<Array<[number, number]>> | null = norm > 1e-12 ? [] : null;
  for (const loop of loops) {
    if (!projected) break;
    const ring: Array<[number, number]> = [];
    for (const p of loop.v) {
      const q = project(p, center, e1, e2);
      if (!q) {
        projected = null;
        break;
      }
      ring.push(q);
    }
    projected?.push(ring);
  }
  const shape: PolygonShape = { kind: "polygon", loops: loops.map((l) => l.v), center, radius, projected, flat: loops.map((l) => l.ll.map((p) => [p[0], p[1]])) };
  basisCache.set(shape, { e1, e2 });
  return shape;
}

const basisCache = new WeakMap<PolygonShape, { e1: Vec3; e2: Vec3 }>();

function polygonShape(coords: unknown): PolygonShape {
  if (!Array.isArray(coords)) throw new GeoSpecError("Polygon coordinates must be an array");
  if (coords.length === 0) throw new GeoSpecError(`Polygon has no loops.`);
  const loops = coords.map(loopOf);
  const shell = buildPolygon([loops[0]]);
  for (let k = 1; k < loops.length; k++) {
    const hole = loops[k].v;
    const crosses = edgesOf(hole).some(([a, b]) => edgesOf(shell.loops[0]).some(([c, d]) => arcsCross(a, b, c, d)));
    if (crosses || !hole.every((p) => polygonCovers(shell, p))) {
      throw new GeoSpecError(`Secondary loops not contained by first exterior loop - secondary loops must be holes: ${show(coords[k])} first loop: ${show(coords[0])}`);
    }
  }
  // S2Polygon::IsValid: no edge shared by two loops, no two loops crossing.
  for (let i = 0; i < loops.length; i++) {
    for (let j = i + 1; j < loops.length; j++) {
      const ei = edgesOf(loops[i].v);
      const ej = edgesOf(loops[j].v);
      for (let x = 0; x < ei.length; x++) {
        for (let y = 0; y < ej.length; y++) {
          const [a, b] = ei[x];
          const [c, d] = ej[y];
          if ((same(a, c) && same(b, d)) || (same(a, d) && same(b, c))) {
            throw new GeoSpecError(`Polygon isn't valid: Duplicate edge: loop ${i}, edge ${x} and loop ${j}, edge ${y} ${show(coords)}`);
          }
          if (i > 0 && arcsCross(a, b, c, d)) throw new GeoSpecError(`Polygon isn't valid: Loop ${i} edge ${x} crosses loop ${j} edge ${y} ${show(coords)}`);
        }
      }
    }
  }
  return loops.length === 1 ? shell : buildPolygon(loops);
}

function edgesOf(loop: Vec3[]): Array<[Vec3, Vec3]> {
  return loop.map((p, i) => [p, loop[(i + 1) % loop.length]]);
}

const GEOJSON_TYPES = new Set(["Point", "LineString", "Polygon", "MultiPoint", "MultiLineString", "MultiPolygon", "GeometryCollection"]);
const PLAIN_CRS = new Set(["EPSG:4326", "urn:ogc:def:crs:OGC:1.3:CRS84"]);

export function isGeoJSON(v: unknown): v is Record<string, unknown> {
  return isRecord(v) && typeof v.type === "string" && GEOJSON_TYPES.has(v.type);
}

function checkCrs(obj: Record<string, unknown>): void {
  if (obj.crs === undefined) return;
  const crs = obj.crs;
  const name = isRecord(crs) && isRecord(crs.properties) ? crs.properties.name : undefined;
  if (!isRecord(crs) || crs.type !== "name" || typeof name !== "string") throw new GeoSpecError("GeoJSON CRS must be an object with type 'name' and properties.name");
  if (name === "urn:x-mongodb:crs:strictwinding:EPSG:4326") {
    throw new GeoSpecError("custom strict-winding CRS (big polygons) is not supported by the embedded engine", 238);
  }
  if (!PLAIN_CRS.has(name)) throw new GeoSpecError(`Unknown CRS name: ${name}`);
}

/** A GeoJSON object's shapes; throws GeoSpecError (BadValue) with MongoDB's reasons. */
export function parseGeoJSON(obj: Record<string, unknown>): Geometry {
  checkCrs(obj);
  const type = obj.type;
  if (type === "GeometryCollection") {
    if (!Array.isArray(obj.geometries)) throw new GeoSpecError("GeometryCollection geometries must be an array");
    const out: Shape[] = [];
    for (const g of obj.geometries) {
      if (!isGeoJSON(g) || g.type === "GeometryCollection") throw new GeoSpecError(`Element ${show(g)} of "geometries" is not valid GeoJSON`);
      out.push(...parseGeoJSON(g));
    }
    return out;
  }
  const coords = obj.coordinates;
  if (!Array.isArray(coords)) throw new GeoSpecError(`${String(type)} coordinates must be an array`);
  switch (type) {
    case "Point":
      return [pointShape(position(coords))];
    case "LineString":
      return [lineShape(coords)];
    case "Polygon":
      return [polygonShape(coords)];
    case "MultiPoint":
      if (coords.length === 0) throw new GeoSpecError("MultiPoint coordinates must have at least 1 element");
      return coords.map((c) => pointShape(position(c)));
    case "MultiLineString":
      if (coords.length === 0) throw new GeoSpecError("MultiLineString coordinates must have at least 1 element");
      return coords.map(lineShape);
    case "MultiPolygon":
      if (coords.length === 0) throw new GeoSpecError("MultiPolygon coordinates must have at least 1 element");
      return coords.map(polygonShape);
    default:
      throw new GeoSpecError(`unknown GeoJSON type: ${show(obj)}`);
  }
}

/** A legacy point: [x, y] or {a: x, b: y}; null when the value is not one. */
function legacyPoint(v: unknown): LngLat | null {
  const arr = Array.isArray(v) ? v : isRecord(v) && !("type" in v) ? Object.values(v) : null;
  if (!arr || arr.length < 2) return null;
  const x = numberFromValue(arr[0]);
  const y = numberFromValue(arr[1]);
  if (x === null || y === null) return null;
  return [x, y];
}

/** One stored geo value (GeoJSON or a legacy point) as a geometry; throws GeoSpecError when malformed. */
function storedGeometry(v: unknown): Geometry {
  if (isGeoJSON(v)) return parseGeoJSON(v);
  const p = legacyPoint(v);
  if (!p) {
    if (isRecord(v) && "type" in v) throw new GeoSpecError(`unknown GeoJSON type: ${show(v)}`);
    throw new GeoSpecError(`Point must be an array or object, instead got type ${v === null ? "null" : Array.isArray(v) ? "array" : typeof v}`);
  }
  if (!(p[0] >= -180 && p[0] <= 180 && p[1] >= -90 && p[1] <= 90)) throw new GeoSpecError(`longitude/latitude is out of bounds, lng: ${p[0]} lat: ${p[1]}`);
  return [pointShape(p)];
}

const storedCache = new WeakMap<object, Geometry[] | GeoSpecError>();

/**
 * The geometries a stored field value holds: one for a GeoJSON object or legacy point, one per
 * element for an array of them (a multikey location). Throws GeoSpecError when malformed; parsed
 * values are cached per object (stored documents are replaced, not mutated, on update).
 */
export function storedGeometries(value: unknown): Geometry[] {
  if (value === null || typeof value !== "object") return [storedGeometry(value)];
  const hit = storedCache.get(value);
  if (hit instanceof GeoSpecError) throw hit;
  if (hit) return hit;
  let out: Geometry[] | GeoSpecError;
  try {
    out = Array.isArray(value) && legacyPoint(value) === null ? value.map(storedGeometry) : [storedGeometry(value)];
  } catch (e) {
    if (!(e instanceof GeoSpecError)) throw e;
    out = e;
  }
  storedCache.set(value, out);
  if (out instanceof GeoSpecError) throw out;
  return out;
}

/** storedGeometries, or null for a value that is not valid geo data (queries skip such documents). */
export function storedGeometriesOrNull(value: unknown): Geometry[] | null {
  if (value === undefined) return null;
  try {
    return storedGeometries(value);
  } catch (e) {
    if (e instanceof GeoSpecError) return null;
    throw e;
  }
}

// ---- predicates ---------------------------------------------------------------------------------

function inRing(x: number, y: number, ring: Array<[number, number]>): boolean {
  let inside = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [xi, yi] = ring[i];
    const [xj, yj] = ring[j];
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

function onBoundary(poly: PolygonShape, p: Vec3): boolean {
  for (const loop of poly.loops) for (const [a, b] of edgesOf(loop)) if (arcDistance(p, a, b) < TOUCH) return true;
  return false;
}

/** Strictly inside (even-odd over the loops, so nested loops alternate as in S2). */
function polygonInterior(poly: PolygonShape, p: Vec3): boolean {
  let count = 0;
  if (poly.projected) {
    const basis = basisCache.get(poly) as { e1: Vec3; e2: Vec3 };
    const q = project(p, poly.center, basis.e1, basis.e2);
    if (!q) return false;
    for (const ring of poly.projected) if (inRing(q[0], q[1], ring)) count++;
  } else {
    const lng = Math.atan2(p[1], p[0]) / DEG;
    const lat = Math.asin(Math.max(-1, Math.min(1, p[2]))) / DEG;
    for (const ring of poly.flat) if (inRing(lng, lat, ring)) count++;
  }
  return count % 2 === 1;
}

/** Inside or on the boundary (MongoDB counts a point on an edge or vertex as within and intersecting). */
function polygonCovers(poly: PolygonShape, p: Vec3): boolean {
  if (angle(poly.center, p) > poly.radius + TOUCH) return false;
  return onBoundary(poly, p) || polygonInterior(poly, p);
}

function edgesOfShape(s: Shape): Array<[Vec3, Vec3]> {
  if (s.kind === "point") return [];
  if (s.kind === "line") return s.v.slice(0, -1).map((p, i) => [p, s.v[i + 1]]);
  return s.loops.flatMap(edgesOf);
}

function verticesOf(s: Shape): Vec3[] {
  if (s.kind === "point") return [s.v];
  if (s.kind === "line") return s.v;
  return s.loops.flat();
}

/** Whether a polygon holds a whole shape: every vertex covered and no edge crossing out. */
function polygonContains(poly: PolygonShape, s: Shape): boolean {
  if (!verticesOf(s).every((p) => polygonCovers(poly, p))) return false;
  const mine = poly.loops.flatMap(edgesOf);
  if (edgesOfShape(s).some(([a, b]) => mine.some(([c, d]) => arcsCross(a, b, c, d)))) return false;
  // A stored polygon around one of the region's holes is not within it.
  if (s.kind === "polygon") return !poly.loops.slice(1).some((hole) => hole.some((p) => !onBoundary(s, p) && polygonInterior(s, p)));
  return true;
}

function shapesIntersect(a: Shape, b: Shape): boolean {
  if (a.kind === "point" && b.kind === "point") return angle(a.v, b.v) < TOUCH;
  if (a.kind === "point") return shapeTouchesPoint(b, a.v);
  if (b.kind === "point") return shapeTouchesPoint(a, b.v);
  const ea = edgesOfShape(a);
  const eb = edgesOfShape(b);
  if (ea.some(([p, q]) => eb.some(([r, s]) => arcsMeet(p, q, r, s)))) return true;
  // No edges meet: one lies wholly inside the other, or they are apart.
  if (a.kind === "polygon" && polygonCovers(a, verticesOf(b)[0])) return true;
  if (b.kind === "polygon" && polygonCovers(b, verticesOf(a)[0])) return true;
  return false;
}

function shapeTouchesPoint(s: Shape, p: Vec3): boolean {
  if (s.kind === "point") return angle(s.v, p) < TOUCH;
  if (s.kind === "line") return edgesOfShape(s).some(([a, b]) => arcDistance(p, a, b) < TOUCH);
  return polygonCovers(s, p);
}

/** Angle (radians) from a point to the nearest part of a shape; 0 inside a polygon. */
function shapeDistance(p: Vec3, s: Shape): number {
  if (s.kind === "point") return angle(p, s.v);
  if (s.kind === "polygon" && polygonCovers(s, p)) return 0;
  let best = Number.POSITIVE_INFINITY;
  for (const [a, b] of edgesOfShape(s)) best = Math.min(best, arcDistance(p, a, b));
  return best;
}

/** Meters from a point to the nearest part of a geometry. */
export function distanceToGeometryMeters(from: LngLat, g: Geometry): number {
  const v = toVec(from);
  let best = Number.POSITIVE_INFINITY;
  for (const s of g) best = Math.min(best, shapeDistance(v, s));
  return best * EARTH_RADIUS_METERS;
}

/** The single point of a geometry that is one point (what the spatial index holds), else null. */
export function singlePoint(g: Geometry): LngLat | null {
  return g.length === 1 && g[0].kind === "point" ? g[0].ll : null;
}

// ---- query regions --------------------------------------------------------------------------------

interface Region {
  /** Whether a stored geometry lies within the region. */
  within(g: Geometry): boolean;
}

function flatPair(v: unknown, what: string): [number, number] {
  const p = legacyPoint(v);
  if (!p || !Number.isFinite(p[0]) || !Number.isFinite(p[1])) throw new GeoSpecError(`${what}: expected a point with numeric coordinates`);
  return p;
}

/** Legacy flat shapes hold points only (MongoDB: a FLAT region never contains a line or polygon). */
function flatRegion(test: (x: number, y: number) => boolean): Region {
  return { within: (g) => g.length === 1 && g[0].kind === "point" && test(g[0].ll[0], g[0].ll[1]) };
}

/** MongoDB's legacy Polygon::contains (ray casting; its own treatment of boundary points). */
function flatPolygonContains(pts: Array<[number, number]>, x: number, y: number): boolean {
  let counter = 0;
  let p1 = pts[0];
  for (let i = 1; i <= pts.length; i++) {
    const p2 = pts[i % pts.length];
    if (y > Math.min(p1[1], p2[1]) && y <= Math.max(p1[1], p2[1]) && x <= Math.max(p1[0], p2[0]) && p1[1] !== p2[1]) {
      const xinters = ((y - p1[1]) * (p2[0] - p1[0])) / (p2[1] - p1[1]) + p1[0];
      if (p1[0] === p2[0] && x === p1[0]) return true;
      if (p1[0] === p2[0] || x <= xinters) counter++;
    }
    p1 = p2;
  }
  return counter % 2 === 1;
}

function buildRegion(spec: Record<string, unknown>): Region {
  const keys = Object.keys(spec);
  if (keys.length !== 1) throw new GeoSpecError("$geoWithin takes exactly one of $centerSphere, $geometry, $box, $center, $polygon");
  const op = keys[0];
  const arg = spec[op];
  switch (op) {
    case "$centerSphere": {
      if (!Array.isArray(arg) || arg.length !== 2) throw new GeoSpecError("$centerSphere: expected [[lng, lat], radius in radians]");
      const c = toVec(position(arg[0]));
      const r = numberFromValue(arg[1]);
      if (r === null || !Number.isFinite(r) || r < 0) throw new GeoSpecError("$centerSphere: radius must be a non-negative number");
      return { within: (g) => g.every((s) => verticesOf(s).every((p) => angle(c, p) <= r + TOUCH)) };
    }
    case "$geometry": {
      if (!isRecord(arg)) throw new GeoSpecError("$geometry: expected a GeoJSON object");
      if (arg.type !== "Polygon" && arg.type !== "MultiPolygon") {
        if (!isGeoJSON(arg)) throw new GeoSpecError(`unknown GeoJSON type: ${show(arg)}`);
        throw new GeoSpecError(`$geoWithin not supported with provided geometry: ${show(arg)}`);
      }
      const polys = parseGeoJSON(arg) as PolygonShape[];
      return { within: (g) => g.every((s) => polys.some((poly) => polygonContains(poly, s))) };
    }
    case "$box": {
      if (!Array.isArray(arg) || arg.length !== 2) throw new GeoSpecError("$box: expected [[x1, y1], [x2, y2]]");
      const [x1, y1] = flatPair(arg[0], "$box");
      const [x2, y2] = flatPair(arg[1], "$box");
      const [lx, hx, ly, hy] = [Math.min(x1, x2), Math.max(x1, x2), Math.min(y1, y2), Math.max(y1, y2)];
      return flatRegion((x, y) => x >= lx && x <= hx && y >= ly && y <= hy);
    }
    case "$center": {
      if (!Array.isArray(arg) || arg.length !== 2) throw new GeoSpecError("$center: expected [[x, y], radius]");
      const [cx, cy] = flatPair(arg[0], "$center");
      const r = numberFromValue(arg[1]);
      if (r === null || !Number.isFinite(r) || r < 0) throw new GeoSpecError("$center: radius must be a non-negative number");
      return flatRegion((x, y) => Math.hypot(x - cx, y - cy) <= r);
    }
    case "$polygon": {
      if (!Array.isArray(arg) || arg.length < 3) throw new GeoSpecError("Polygon must have at least 3 points");
      const pts = arg.map((q) => flatPair(q, "$polygon"));
      return flatRegion((x, y) => flatPolygonContains(pts, x, y));
    }
    default:
      throw new GeoSpecError(`$geoWithin: unknown shape ${op}`);
  }
}

const regionCache = new WeakMap<Record<string, unknown>, Region>();
const intersectCache = new WeakMap<Record<string, unknown>, Geometry>();

function regionOf(spec: Record<string, unknown>): Region {
  let r = regionCache.get(spec);
  if (!r) regionCache.set(spec, (r = buildRegion(spec)));
  return r;
}

function intersectGeometry(spec: Record<string, unknown>): Geometry {
  let g = intersectCache.get(spec);
  if (g) return g;
  const keys = Object.keys(spec);
  if (keys.length !== 1 || keys[0] !== "$geometry" || !isRecord(spec.$geometry)) {
    throw new GeoSpecError(`$geoIntersects not supported with provided geometry: ${show(spec)}`);
  }
  if (!isGeoJSON(spec.$geometry)) throw new GeoSpecError(`unknown GeoJSON type: ${show(spec.$geometry)}`);
  g = parseGeoJSON(spec.$geometry);
  intersectCache.set(spec, g);
  return g;
}

/**
 * $geoWithin for a stored value: a multikey location matches when any of its geometries lies
 * within. Throws GeoSpecError on a malformed spec (so geoWithinMatches(undefined, spec) validates
 * one); a stored value that is not valid geo data never matches.
 */
export function geoWithinMatches(value: unknown, spec: Record<string, unknown>): boolean {
  const region = regionOf(spec);
  const gs = storedGeometriesOrNull(value);
  return gs !== null && gs.some((g) => region.within(g));
}

/** $geoIntersects (spec `{$geometry: GeoJSON}`) for a stored value. Throws GeoSpecError on a malformed spec. */
export function geoIntersectsMatches(value: unknown, spec: Record<string, unknown>): boolean {
  const query = intersectGeometry(spec);
  const gs = storedGeometriesOrNull(value);
  return gs !== null && gs.some((g) => g.some((s) => query.some((q) => shapesIntersect(q, s))));
}

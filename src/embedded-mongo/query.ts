// Query semantics on top of mingo: filters (plus the geo operators mingo lacks), projections,
// MongoDB sort order, `let` variables, and the analysis the planner needs (equalities, $near).

import type { Document } from "bson";
import { CommandError, ErrorCode, badValue, toCommandError } from "./errors";
import { EARTH_RADIUS_METERS, type LngLat, pointFromValue } from "./geo";
import { type Variables, createAggregator, createQuery, refuseText } from "./mingo";
import { bsonTypeOf, canonicalKey, compareValues, formatValue, isNumeric, isPlainObject, numericValue, pathValues, typeRank } from "./values";

export type { Variables };

export interface Matcher {
  test(doc: Document): boolean;
}

const MATCH_ALL: Matcher = { test: () => true };

/** Compiles a filter; throws BadValue-style CommandErrors for unknown operators. */
export function compileFilter(filter: Document | undefined, variables?: Variables): Matcher {
  if (filter === undefined || filter === null || Object.keys(filter).length === 0) return MATCH_ALL;
  if (!isPlainObject(filter)) throw new CommandError(ErrorCode.TypeMismatch, "filter must be an object");
  const fast = equalityMatcher(filter, () => generalMatcher(filter, variables), variables);
  if (fast) return fast;
  return generalMatcher(filter, variables);
}

function generalMatcher(filter: Document, variables?: Variables): Matcher {
  refuseText(filter);
  try {
    const q = createQuery(filter, { variables });
    return { test: (doc) => q.test(doc) };
  } catch (err) {
    throw toCommandError(err);
  }
}

/** A scalar the fast matcher compares by canonical key: no null (missing semantics), arrays, objects or regexes. */
function isSimpleScalar(v: unknown): boolean {
  switch (typeof v) {
    case "string":
    case "boolean":
      return true;
    case "number":
      return !Number.isNaN(v);
  }
  if (v instanceof Date) return true;
  return bsonTypeOf(v) === "ObjectId";
}

/**
 * Filters that are only `{path: scalar, ...}`, `{path: {$in: [scalars]}}` or comparisons of a
 * path with one number or date (`$eq $ne $gt $gte $lt $lte`, alone, together or under `$not`)
 * are matched without compiling a mingo query. They are the hot paths: lookups by _id, version
 * checks, batches of ids, and conditional writes such as a courier position's
 * `{_id, fixAt: {$not: {$gte: date}}}` (mingo compiled that one per statement: a bulkWrite of
 * 1,000 positions compiled 1,000 queries). An $in list is hashed once per query, not once per
 * document (mingo's $in builds its set per document: 1,000 ids over 1,000 candidates was a
 * million hashes). Semantics as MongoDB's: a path through arrays matches when any element
 * matches; a comparison only matches values of its operand's type (numbers with numbers, dates
 * with dates), so a missing field matches none and `$not`/`$ne` of it match. A document with a
 * NaN at a compared path is left to mingo.
 *
 * A filter that has such clauses beside others (`$or`, `$exists`, a nested document…) is split:
 * its top-level clauses are ANDed, so the fast ones are tested first and only a document that
 * passes them meets the rest, compiled once as one mingo query. The durable-timer sweep
 * `{timerPending: true, nextTimerAt: {$lte: now}, $or: [...]}` ran mingo on every order with a
 * pending timer, twice a second per instance, while the compare-and-sets queued behind it.
 */
function equalityMatcher(filter: Document, general: () => Matcher, variables?: Variables): Matcher | null {
  const clauses: Array<(doc: Document) => boolean | undefined> = [];
  const rest: Document = {};
  for (const [path, value] of Object.entries(filter)) {
    const clause = path.startsWith("$") ? null : fastClause(path, value);
    if (clause) clauses.push(clause);
    else rest[path] = value;
  }
  if (clauses.length === 0) return null;
  // Compiled now, as the whole filter would be: an unknown operator is refused before any document is read.
  const remainder = Object.keys(rest).length > 0 ? generalMatcher(rest, variables) : null;
  // A clause answers undefined for a stored NaN: mingo decides those documents, as before.
  let slow: Matcher | null = null;
  return {
    test: (doc) => {
      let all = true;
      for (const clause of clauses) {
        const holds = clause(doc);
        if (holds === undefined) return (slow ??= general()).test(doc);
        if (!holds) all = false;
      }
      return all && (remainder === null || remainder.test(doc));
    },
  };
}

/** The fast test of one top-level `path: condition`, or null when mingo must decide it. */
function fastClause(path: string, value: unknown): ((doc: Document) => boolean | undefined) | null {
  if (isSimpleScalar(value)) {
    const key = canonicalKey(value);
    return (doc) => pathValues(doc, path).some((v) => v !== undefined && canonicalKey(v) === key);
  }
  if (isScalarIn(value)) {
    const keys = new Set(value.$in.map(canonicalKey));
    return (doc) => pathValues(doc, path).some((v) => v !== undefined && keys.has(canonicalKey(v)));
  }
  return comparisonClause(path, value);
}

const COMPARISONS: Record<string, (c: number) => boolean> = {
  $eq: (c) => c === 0,
  $gt: (c) => c > 0,
  $gte: (c) => c >= 0,
  $lt: (c) => c < 0,
  $lte: (c) => c <= 0,
};

/** A number (not NaN) or a date: the operands the fast comparisons take. */
function isComparable(v: unknown): v is number | Date {
  return (typeof v === "number" && !Number.isNaN(v)) || (v instanceof Date && !Number.isNaN(v.getTime()));
}

/** `{$op: operand, ...}` or `{$not: {$op: operand, ...}}` with number/date operands; null for anything else. */
function comparisonClause(path: string, value: unknown): ((doc: Document) => boolean | undefined) | null {
  if (!isPlainObject(value)) return null;
  const keys = Object.keys(value);
  if (keys.length === 1 && keys[0] === "$not") {
    const inner = isPlainObject(value.$not) && Object.keys(value.$not).length > 0 ? comparisonClause(path, value.$not) : null;
    return inner
      ? (doc) => {
          const holds = inner(doc);
          return holds === undefined ? undefined : !holds;
        }
      : null;
  }
  if (keys.length === 0) return null;
  const tests: Array<(values: unknown[]) => boolean> = [];
  for (const op of keys) {
    const operand = value[op];
    if (!isComparable(operand)) return null;
    const rank = typeRank(operand);
    if (op === "$ne") {
      tests.push((values) => !values.some((v) => v !== undefined && typeRank(v) === rank && compareNumberOrDate(v, operand) === 0));
      continue;
    }
    const holds = COMPARISONS[op];
    if (!holds) return null;
    tests.push((values) => values.some((v) => v !== undefined && typeRank(v) === rank && holds(compareNumberOrDate(v, operand))));
  }
  return (doc) => {
    const values = pathValues(doc, path);
    if (values.some((v) => typeof v === "number" && Number.isNaN(v))) return undefined;
    return tests.every((t) => t(values));
  };
}

/** Compares a stored value with a number or date operand of the same type rank (stored NaNs never get here). */
function compareNumberOrDate(v: unknown, operand: number | Date): number {
  if (operand instanceof Date) return compareValues(v, operand);
  const n = numericValue(v);
  return n === null ? Number.NaN : compareValues(n, operand);
}

function isScalarIn(value: unknown): value is { $in: unknown[] } {
  if (!isPlainObject(value)) return false;
  const keys = Object.keys(value);
  return keys.length === 1 && keys[0] === "$in" && Array.isArray(value.$in) && value.$in.every(isSimpleScalar);
}

/** Evaluates a `let` document's expressions ($$NOW, $rand, $literal, ...) to plain values. */
export function evaluateLet(letDoc: unknown): Variables | undefined {
  if (letDoc === undefined || letDoc === null) return undefined;
  if (!isPlainObject(letDoc)) throw new CommandError(ErrorCode.TypeMismatch, "BSON field 'let' is the wrong type, expected type 'object'");
  if (Object.keys(letDoc).length === 0) return undefined;
  try {
    const [out] = createAggregator([{ $addFields: letDoc }]).run([{}]);
    return out as Variables;
  } catch (err) {
    throw toCommandError(err);
  }
}

/** Applies a find-style projection (inclusion/exclusion, $slice, $elemMatch, positional) to matched documents. */
export function applyProjection(docs: Document[], projection: Document | undefined, filter: Document | undefined, variables?: Variables): Document[] {
  if (!projection || Object.keys(projection).length === 0 || docs.length === 0) return docs;
  // Only a positional projection (`a.$`) needs the filter; the documents already matched it.
  const positional = Object.keys(projection).some((k) => k === "$" || k.endsWith(".$"));
  try {
    const q = createQuery(positional ? stripGeoNear(filter ?? {}) : {}, { variables });
    return q.find(docs, projection).all() as Document[];
  } catch (err) {
    throw toCommandError(err);
  }
}

export type SortSpec = [path: string, direction: 1 | -1][];

export function parseSort(sort: unknown): SortSpec | null {
  if (sort === undefined || sort === null) return null;
  if (!isPlainObject(sort)) throw badValue("sort must be an object");
  const spec: SortSpec = [];
  for (const [path, dir] of Object.entries(sort)) {
    const n = numericValue(dir);
    if (n !== 1 && n !== -1) {
      if (isPlainObject(dir) && "$meta" in dir) throw badValue(`$meta sort by '${String(dir.$meta)}' is not supported`);
      throw badValue(`$sort key ordering must be 1 (for ascending) or -1 (for descending)`);
    }
    spec.push([path, n]);
  }
  return spec.length > 0 ? spec : null;
}

/** Sorts documents in MongoDB order: arrays sort by their smallest (ascending) or largest (descending) element. */
export function sortDocuments(docs: Document[], spec: SortSpec): Document[] {
  const keyed = docs.map((doc) => ({
    doc,
    keys: spec.map(([path, dir]) => {
      const values = pathValues(doc, path);
      let best = values[0];
      for (const v of values) if (dir === 1 ? compareValues(v, best) < 0 : compareValues(v, best) > 0) best = v;
      return best;
    }),
  }));
  keyed.sort((a, b) => {
    for (let i = 0; i < spec.length; i++) {
      const c = compareValues(a.keys[i], b.keys[i]);
      if (c !== 0) return c * spec[i][1];
    }
    return 0;
  });
  return keyed.map((k) => k.doc);
}

/** A value the planner may look up in a hash index: not null/missing, not an array, regex or operator object. */
function indexableValue(v: unknown): boolean {
  if (v === undefined || v === null || Array.isArray(v) || v instanceof RegExp) return false;
  if (bsonTypeOf(v) === "BSONRegExp" || bsonTypeOf(v) === "MinKey" || bsonTypeOf(v) === "MaxKey") return false;
  if (isPlainObject(v)) return !Object.keys(v).some((k) => k.startsWith("$"));
  return true;
}

/**
 * Equality constraints on top-level paths (`{a: 1}`, `{a: {$eq: 1}}`, `{a: {$in: [...]}}`,
 * also inside a top-level $and): path → the values it may equal.
 */
export function equalityConstraints(filter: Document | undefined): Map<string, unknown[]> {
  const out = new Map<string, unknown[]>();
  if (!filter) return out;
  const visit = (f: Document): void => {
    for (const [path, cond] of Object.entries(f)) {
      if (path === "$and" && Array.isArray(cond)) {
        for (const sub of cond) if (isPlainObject(sub)) visit(sub);
        continue;
      }
      if (path.startsWith("$")) continue;
      let values: unknown[] | null = null;
      if (isPlainObject(cond) && Object.keys(cond).some((k) => k.startsWith("$"))) {
        if ("$eq" in cond && indexableValue(cond.$eq)) values = [cond.$eq];
        else if (Array.isArray(cond.$in) && cond.$in.every(indexableValue)) values = cond.$in;
      } else if (indexableValue(cond)) {
        values = [cond];
      }
      if (values && !out.has(path)) out.set(path, values);
    }
  };
  visit(filter);
  return out;
}

export interface NearQuery {
  field: string;
  center: LngLat;
  minDistance?: number;
  maxDistance?: number;
  /** `$near` with a legacy pair: flat geometry, which needs a 2d index (the engine has none). */
  flat: boolean;
  /** The filter without the $near clause. */
  rest: Document;
}

function geoBadValue(message: string): CommandError {
  return badValue(message);
}

function distanceOption(v: unknown, name: string, toMeters: number): number {
  const n = isNumeric(v) ? numericValue(v) : null;
  if (n === null || Number.isNaN(n)) throw geoBadValue(`${name} must be a number`);
  if (n < 0) throw geoBadValue(`${name} must be non-negative`);
  return n * toMeters;
}

/**
 * Parses a `{$near|$nearSphere: ...}` condition as MongoDB does; distances come back in meters.
 * GeoJSON form: `{$near: {$geometry: point, $minDistance, $maxDistance}}` alone, distances in meters.
 * Legacy form: `{$near: point, $minDistance, $maxDistance}` with the distances beside it: in meters
 * for a GeoJSON point, in radians for a legacy pair under $nearSphere (a legacy pair under $near is flat).
 */
function parseNear(cond: Document): Omit<NearQuery, "field" | "rest"> {
  const op = "$near" in cond ? "$near" : "$nearSphere";
  const arg = cond[op];
  if (isPlainObject(arg) && "$geometry" in arg) {
    const extra = Object.keys(cond).find((k) => k !== op);
    if (extra !== undefined) throw geoBadValue(`geo near accepts just one argument when querying for a GeoJSON point. Extra field found: ${extra}: ${formatValue(cond[extra])}`);
    const g = arg.$geometry;
    if (!isPlainObject(g) || g.type !== "Point") throw geoBadValue(`invalid point in geo near query $geometry argument: ${formatValue(g)}`);
    const center = pointFromValue(g);
    if (!center) throw geoBadValue(describeBadCenter(g.coordinates));
    let minDistance: number | undefined;
    let maxDistance: number | undefined;
    for (const [k, v] of Object.entries(arg)) {
      if (k === "$minDistance") minDistance = distanceOption(v, "$minDistance", 1);
      else if (k === "$maxDistance") maxDistance = distanceOption(v, "$maxDistance", 1);
      else if (k !== "$geometry") throw geoBadValue(`invalid argument in geo near query: ${k}`);
    }
    return { center, minDistance, maxDistance, flat: false };
  }
  if (arg === null || typeof arg !== "object") throw geoBadValue(`${op} must be an array or object`);
  const geoJSON = isPlainObject(arg) && "type" in arg;
  if (geoJSON && arg.type !== "Point") throw geoBadValue(`invalid argument in geo near query: ${formatValue(arg)}`);
  const center = pointFromValue(arg);
  if (!center) throw geoBadValue(describeBadCenter(geoJSON ? arg.coordinates : arg));
  // Legacy pairs under $nearSphere measure in radians; GeoJSON points always in meters.
  const scale = geoJSON ? 1 : EARTH_RADIUS_METERS;
  let minDistance: number | undefined;
  let maxDistance: number | undefined;
  if (Array.isArray(arg) && arg.length === 3) maxDistance = distanceOption(arg[2], "max distance", scale);
  for (const [k, v] of Object.entries(cond)) {
    if (k === op || k === "$uniqueDocs") continue;
    if (k === "$minDistance") minDistance = distanceOption(v, "$minDistance", scale);
    else if (k === "$maxDistance") maxDistance = distanceOption(v, "$maxDistance", scale);
    else throw geoBadValue(`invalid argument in geo near query: ${k}`);
  }
  return { center, minDistance, maxDistance, flat: op === "$near" && !geoJSON };
}

export function describeBadCenter(coords: unknown): string {
  const arr = Array.isArray(coords) ? coords : isPlainObject(coords) ? Object.values(coords) : null;
  if (!arr || arr.length < 2) return "invalid argument in geo near query: coordinates must be a [longitude, latitude] pair";
  const [lng, lat] = arr.map((c) => numericValue(c));
  if (lng === null || lat === null || !Number.isFinite(lng ?? Number.NaN) || !Number.isFinite(lat ?? Number.NaN)) {
    return "invalid argument in geo near query: Point must only contain numeric elements";
  }
  return `invalid argument in geo near query: longitude/latitude is out of bounds, lng: ${lng} lat: ${lat}`;
}

function isNearCondition(cond: unknown): cond is Document {
  return isPlainObject(cond) && ("$near" in cond || "$nearSphere" in cond);
}

/** Finds a top-level `$near`/`$nearSphere` clause (also inside a top-level $and). */
export function extractNear(filter: Document | undefined): NearQuery | null {
  if (!filter) return null;
  for (const [path, cond] of Object.entries(filter)) {
    if (isNearCondition(cond)) {
      const rest = { ...filter };
      delete rest[path];
      return { field: path, ...parseNear(cond), rest };
    }
  }
  if (Array.isArray(filter.$and)) {
    const clauses = filter.$and as unknown[];
    for (let i = 0; i < clauses.length; i++) {
      const clause = clauses[i];
      if (!isPlainObject(clause)) continue;
      const inner = extractNear(clause);
      if (inner) {
        const remaining = clauses.filter((_, j) => j !== i);
        if (Object.keys(inner.rest).length > 0) remaining.push(inner.rest);
        const rest = { ...filter };
        if (remaining.length > 0) rest.$and = remaining;
        else delete rest.$and;
        return { ...inner, rest };
      }
    }
  }
  return null;
}

function stripGeoNear(filter: Document): Document {
  return extractNear(filter)?.rest ?? filter;
}

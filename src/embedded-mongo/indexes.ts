// Secondary indexes: hash maps from a canonical key string to the set of document keys, so
// equality and $in lookups never scan; unique and compound constraints are checked against them.
// 2dsphere indexes keep GeoJSON points in a geo.ts SpatialIndex for nearest-first queries.

import type { Document } from "bson";
import { CommandError, ErrorCode } from "./errors";
import { GeoSpecError, SpatialIndex } from "./geo";
import { type Geometry, singlePoint, storedGeometries } from "./geometry";
import { refuseOption } from "./options";
import { compileFilter } from "./query";
import { canonicalKey, formatValue, getPath, isNumeric, isPlainObject, numericValue, pathValues, rawPathValues, setPath } from "./values";

export type IndexKeyType = 1 | -1 | "2dsphere" | "hashed";

export interface IndexField {
  path: string;
  type: IndexKeyType;
}

/** The stored index description, as listIndexes returns it. */
export interface IndexSpec extends Document {
  v: 2;
  key: Document;
  name: string;
}

/** A key a document contributes to an index: its string form and the values it was built from. */
export interface IndexKey {
  str: string;
  values: unknown[];
}

/** Caps the keys one document may add to a compound multikey index (MongoDB forbids parallel arrays). */
const MAX_KEYS_PER_DOCUMENT = 10_000;

/** Index options the engine implements (background is accepted and meaningless here, as in MongoDB 4.2+). */
export const INDEX_OPTIONS: ReadonlySet<string> = new Set(["unique", "sparse", "hidden", "partialFilterExpression", "expireAfterSeconds", "background", "2dsphereIndexVersion", "storageEngine"]);

export const ID_INDEX_SPEC: IndexSpec = { v: 2, key: { _id: 1 }, name: "_id_" };

function parseKeyType(field: string, v: unknown): IndexKeyType {
  if (isNumeric(v)) {
    const n = numericValue(v) ?? 0;
    if (n === 0 || Number.isNaN(n)) throw new CommandError(ErrorCode.CannotCreateIndex, `Values in the index key pattern can't be 0 or NaN: ${field}`);
    return n > 0 ? 1 : -1;
  }
  if (v === "2dsphere" || v === "hashed") return v;
  if (v === "2d" || v === "text" || v === "geoHaystack" || v === "wildcard") {
    throw new CommandError(ErrorCode.NotImplemented, `'${v}' indexes are not implemented by the embedded engine (field '${field}')`);
  }
  throw new CommandError(ErrorCode.CannotCreateIndex, `Unknown index plugin '${String(v)}'`);
}

export function defaultIndexName(key: Document): string {
  return Object.entries(key)
    .map(([f, v]) => `${f}_${String(v)}`)
    .join("_");
}

/** Validates a createIndexes entry and returns the spec to store (v:2, key, name, options). */
export function normalizeIndexSpec(raw: unknown): IndexSpec {
  if (!isPlainObject(raw)) throw new CommandError(ErrorCode.TypeMismatch, "index specification must be an object");
  const key = raw.key;
  if (!isPlainObject(key) || Object.keys(key).length === 0) {
    throw new CommandError(ErrorCode.CannotCreateIndex, "The 'key' field of an index specification must be a non-empty object");
  }
  for (const [f, v] of Object.entries(key)) {
    if (f === "") throw new CommandError(ErrorCode.CannotCreateIndex, "Index keys cannot be empty field names");
    if (f === "$**" || f.endsWith(".$**")) throw new CommandError(ErrorCode.NotImplemented, `wildcard indexes are not implemented by the embedded engine (field '${f}')`);
    parseKeyType(f, v);
  }
  const name = raw.name === undefined ? defaultIndexName(key) : raw.name;
  if (typeof name !== "string" || name === "") throw new CommandError(ErrorCode.CannotCreateIndex, "The index name must be a non-empty string");
  if (name === "*") throw new CommandError(ErrorCode.BadValue, "The index name '*' is not valid");
  const spec: IndexSpec = { v: 2, key, name };
  for (const [k, v] of Object.entries(raw)) {
    if (k === "key" || k === "name" || k === "v" || k === "ns") continue;
    if (!INDEX_OPTIONS.has(k)) {
      refuseOption("createIndexes.indexes", k, v);
      continue; // an option that asks for the default (collation: simple)
    }
    if (k === "unique" || k === "sparse" || k === "hidden") {
      if (v) spec[k] = true;
      continue;
    }
    if (k === "partialFilterExpression" && !isPlainObject(v)) {
      throw new CommandError(ErrorCode.TypeMismatch, "partialFilterExpression must be an object");
    }
    if (k === "expireAfterSeconds" && !isNumeric(v)) {
      throw new CommandError(ErrorCode.CannotCreateIndex, "TTL index 'expireAfterSeconds' option must be numeric");
    }
    spec[k] = v;
  }
  if (Object.values(key).includes("2dsphere") && spec["2dsphereIndexVersion"] === undefined) spec["2dsphereIndexVersion"] = 3;
  if (name === "_id_" && !("_id" in key && Object.keys(key).length === 1)) {
    throw new CommandError(ErrorCode.BadValue, "The index name '_id_' is reserved for the _id index");
  }
  return spec;
}

/** True when two specs describe the same index apart from their names. */
export function sameIndexOptions(a: IndexSpec, b: IndexSpec): boolean {
  const strip = (s: IndexSpec): string => {
    const { name: _name, v: _v, background: _bg, ...rest } = s;
    return canonicalKey(rest);
  };
  return strip(a) === strip(b);
}

export class Index {
  readonly spec: IndexSpec;
  readonly name: string;
  readonly fields: IndexField[];
  readonly unique: boolean;
  readonly sparse: boolean;
  readonly partial: boolean;
  readonly keyPattern: Document;
  /** The 2dsphere field, when this is a geo index. */
  readonly geoField: string | null;
  readonly spatial: SpatialIndex<string> | null;
  /** Documents of a 2dsphere index whose location is not a single point. */
  readonly shapes = new Map<string, Geometry[]>();
  private readonly valueFields: IndexField[];
  private readonly matchesPartial: ((doc: Document) => boolean) | null;
  /** Full key → document keys. */
  private readonly entries = new Map<string, Set<string>>();
  /** First field's key → document keys, so a compound index also serves equality on its prefix. */
  private readonly leadEntries: Map<string, Set<string>> | null;

  constructor(spec: IndexSpec) {
    this.spec = spec;
    this.name = spec.name;
    this.keyPattern = spec.key;
    this.fields = Object.entries(spec.key).map(([path, v]) => ({ path, type: parseKeyType(path, v) }));
    this.unique = spec.unique === true;
    this.sparse = spec.sparse === true;
    this.partial = isPlainObject(spec.partialFilterExpression);
    const geo = this.fields.find((f) => f.type === "2dsphere");
    this.geoField = geo ? geo.path : null;
    this.spatial = geo ? new SpatialIndex<string>() : null;
    // A 2dsphere index serves geo queries only; its other fields are not used for lookups.
    this.valueFields = geo ? [] : this.fields;
    this.leadEntries = this.valueFields.length > 1 ? new Map() : null;
    if (this.partial) {
      const matcher = compileFilter(spec.partialFilterExpression as Document);
      this.matchesPartial = (doc) => matcher.test(doc);
    } else {
      this.matchesPartial = null;
    }
  }

  /** The keys a document contributes (deduplicated); empty when the index skips it. */
  keysOf(doc: Document): IndexKey[] {
    if (this.valueFields.length === 0) return [];
    if (this.matchesPartial && !this.matchesPartial(doc)) return [];
    const perField = this.valueFields.map((f) => dedupe(pathValues(doc, f.path)));
    if (this.sparse && perField.every((vals) => vals.length === 1 && vals[0].value === undefined)) return [];
    let combos: IndexKey[] = [{ str: "", values: [] }];
    for (const vals of perField) {
      const next: IndexKey[] = [];
      for (const c of combos) {
        for (const v of vals) {
          next.push({ str: c.str === "" && c.values.length === 0 ? v.key : `${c.str}\u0001${v.key}`, values: [...c.values, v.value] });
          if (next.length > MAX_KEYS_PER_DOCUMENT) {
            throw new CommandError(ErrorCode.CannotCreateIndex, `cannot index parallel arrays for index ${this.name}`);
          }
        }
      }
      combos = next;
    }
    return combos;
  }

  /**
   * What a document contributes to a 2dsphere index: its geometries (one per value of a multikey
   * location), or null when it has no location. Throws like MongoDB (16755) on malformed geo data.
   */
  geoEntryOf(doc: Document): Geometry[] | null {
    if (!this.geoField) return null;
    if (this.matchesPartial && !this.matchesPartial(doc)) return null;
    const values = rawPathValues(doc, this.geoField).filter((v) => v !== undefined && v !== null);
    if (values.length === 0) return null;
    try {
      return values.flatMap((v) => storedGeometries(v));
    } catch (e) {
      if (!(e instanceof GeoSpecError)) throw e;
      throw new CommandError(ErrorCode.CannotExtractGeoKeys, `Can't extract geo keys: ${formatValue(doc)}  ${e.message}`);
    }
  }

  /** The first key of `doc` already held by another document, for unique indexes. */
  findConflict(doc: Document, docKey: string): IndexKey | null {
    if (!this.unique) return null;
    for (const k of this.keysOf(doc)) {
      const holders = this.entries.get(k.str);
      if (!holders) continue;
      for (const h of holders) if (h !== docKey) return k;
    }
    return null;
  }

  /** Validates that `doc` can be indexed (geo shape); throws like MongoDB otherwise. */
  validate(doc: Document): void {
    this.geoEntryOf(doc);
    this.keysOf(doc);
  }

  add(docKey: string, doc: Document): void {
    for (const k of this.keysOf(doc)) {
      addTo(this.entries, k.str, docKey);
      if (this.leadEntries) addTo(this.leadEntries, canonicalKey(k.values[0]), docKey);
    }
    if (this.spatial) {
      const geometries = this.geoEntryOf(doc);
      const point = geometries?.length === 1 ? singlePoint(geometries[0]) : null;
      // Points go into the spatial grid; other geometries (polygons, lines, multikey locations) are ranked directly.
      if (point) this.spatial.add(docKey, point);
      else if (geometries) this.shapes.set(docKey, geometries);
    }
  }

  remove(docKey: string, doc: Document): void {
    for (const k of this.keysOf(doc)) {
      removeFrom(this.entries, k.str, docKey);
      if (this.leadEntries) removeFrom(this.leadEntries, canonicalKey(k.values[0]), docKey);
    }
    this.spatial?.delete(docKey);
    this.shapes.delete(docKey);
  }

  /** The documents holding one full index key. */
  holders(key: string): ReadonlySet<string> | undefined {
    return this.entries.get(key);
  }

  /** Document keys whose full index key equals one of `keys` (strings built like keysOf). */
  lookup(keys: string[]): Set<string>[] {
    return keys.map((k) => this.entries.get(k)).filter((s): s is Set<string> => s !== undefined);
  }

  /** Document keys whose first-field value has one of the canonical keys given. */
  lookupLead(keys: string[]): Set<string>[] {
    const map = this.leadEntries ?? this.entries;
    return keys.map((k) => map.get(k)).filter((s): s is Set<string> => s !== undefined);
  }

  /** Whether equality lookups can use this index at all (not a geo index). */
  get servesEquality(): boolean {
    return this.valueFields.length > 0;
  }

  /**
   * Whether a query with these equality constraints only matches documents this index holds.
   * Always for a full index; for a partial one when its filter names only plain fields the query
   * pins down and every pinned combination passes the filter (e.g. `{key: "abc"}` for a
   * partial filter `{key: {$type: "string"}}`).
   */
  covers(eq: Map<string, unknown[]>): boolean {
    if (!this.matchesPartial) return true;
    const fields = Object.keys(this.spec.partialFilterExpression as Document);
    if (fields.some((f) => f.startsWith("$") || !eq.has(f))) return false;
    let probes: Document[] = [{}];
    for (const f of fields) {
      probes = probes.flatMap((p) => (eq.get(f) as unknown[]).map((v) => ({ ...p, [f]: v })));
      if (probes.length > 100) return false;
    }
    return probes.every((p) => {
      const doc: Document = {};
      for (const [path, v] of Object.entries(p)) setPath(doc, path, v);
      return this.matchesPartial?.(doc) === true;
    });
  }

  /** Joins per-field canonical keys into full key strings, as keysOf does. */
  static joinKey(parts: string[]): string {
    return parts.join("\u0001");
  }
}

function dedupe(values: unknown[]): { key: string; value: unknown }[] {
  const seen = new Map<string, unknown>();
  for (const v of values) {
    const k = canonicalKey(v);
    if (!seen.has(k)) seen.set(k, v);
  }
  return [...seen].map(([key, value]) => ({ key, value }));
}

function addTo(map: Map<string, Set<string>>, key: string, docKey: string): void {
  let set = map.get(key);
  if (!set) map.set(key, (set = new Set()));
  set.add(docKey);
}

function removeFrom(map: Map<string, Set<string>>, key: string, docKey: string): void {
  const set = map.get(key);
  if (!set) return;
  set.delete(docKey);
  if (set.size === 0) map.delete(key);
}

// Reads and writes on one collection, shared by the commands: find (with index and $near
// planning), insert, update, delete, findAndModify, count and distinct.

import type { Document } from "bson";
import { ObjectId } from "bson";
import type { CollectionAccess } from "./access";
import { type Collection, type QueryPlan, validateId } from "./collection";
import { type OpContext, viewError } from "./engine";
import { CommandError, ErrorCode, failedToParse, toCommandError } from "./errors";
import type { LngLat } from "./geo";
import { type Geometry, distanceToGeometryMeters } from "./geometry";
import type { Index } from "./indexes";
import {
  type NearQuery,
  type SortSpec,
  type Variables,
  applyProjection,
  compileFilter,
  extractNear,
  sortDocuments,
} from "./query";
import { checkFields } from "./options";
import { applyUpdate, buildUpsertDocument, parseUpdate } from "./update";
import { canonicalKey, getPath, idFirst, isPlainObject, numericValue, pathValues } from "./values";

// ---- reads ------------------------------------------------------------------------------------

export type ReadPlan = QueryPlan | { kind: "geo"; index: Index };

export interface ReadStats {
  plan: ReadPlan;
  docsExamined: number;
  keysExamined: number;
}

export interface FindSpec {
  filter?: Document;
  sort?: SortSpec | null;
  projection?: Document;
  skip?: number;
  /** 0 or undefined: no limit. */
  limit?: number;
  hint?: unknown;
  variables?: Variables;
}

export interface Match {
  key: string;
  doc: Document;
  /** Meters from the $near center, for geo reads. */
  distance?: number;
}

/** Matching documents with their keys, before projection (findAndModify and updates need the keys). */
export function findMatches(access: CollectionAccess, spec: FindSpec, stats?: ReadStats): Match[] {
  const near = extractNear(spec.filter);
  const skip = spec.skip ?? 0;
  const want = spec.sort || !spec.limit ? Number.POSITIVE_INFINITY : skip + spec.limit;
  const out: Match[] = [];
  if (near) {
    const index = geoIndexFor(access.collection, near.field, "$geoNear");
    // A flat $near needs a 2d index; a 2dsphere index cannot answer it (MongoDB's planner refuses).
    if (near.flat) throw noGeoNearPlan(access.collection.ns, near.field);
    const matcher = compileFilter(near.rest, spec.variables);
    if (stats) stats.plan = { kind: "geo", index };
    for (const m of nearestDocuments(access, index, near)) {
      if (stats) stats.docsExamined++;
      if (!matcher.test(m.doc)) continue;
      out.push(m);
      if (out.length >= want) break;
    }
  } else {
    const hintName = access.collection.resolveHint(spec.hint);
    const plan = access.collection.plan(spec.filter, hintName);
    const matcher = compileFilter(spec.filter, spec.variables);
    if (stats) stats.plan = plan;
    for (const [key, doc] of access.candidates(plan)) {
      if (stats) {
        stats.docsExamined++;
        if (plan.kind !== "scan") stats.keysExamined++;
      }
      if (!matcher.test(doc)) continue;
      out.push({ key, doc });
      if (out.length >= want) break;
    }
  }
  let result = out;
  if (spec.sort?.length === 1 && spec.sort[0][0] === "$natural") {
    // Natural order is storage order; the matches are already in it.
    if (spec.sort[0][1] === -1) result = [...out].reverse();
  } else if (spec.sort) {
    const byDoc = new Map(out.map((m) => [m.doc, m]));
    result = sortDocuments(out.map((m) => m.doc), spec.sort).map((d) => byDoc.get(d) as Match);
  }
  if (skip > 0 || spec.limit) result = result.slice(skip, spec.limit ? skip + spec.limit : undefined);
  return result;
}

/** find: matching documents, sorted, paged and projected. */
export function findDocuments(access: CollectionAccess | null, spec: FindSpec, stats?: ReadStats): Document[] {
  if (!access) {
    extractNear(spec.filter); // still validates the $near arguments
    compileFilter(spec.filter, spec.variables);
    return [];
  }
  const docs = findMatches(access, spec, stats).map((m) => m.doc);
  return applyProjection(docs, spec.projection, spec.filter, spec.variables);
}

export function newReadStats(): ReadStats {
  return { plan: { kind: "scan" }, docsExamined: 0, keysExamined: 0 };
}

function noGeoNearPlan(ns: string, field: string): CommandError {
  return new CommandError(
    ErrorCode.NoQueryExecutionPlans,
    `error processing query: ns=${ns} GEONEAR field=${field} planner returned error :: caused by :: unable to find index for $geoNear query`,
  );
}

/** The collection's 2dsphere index on `field` (or its only one when field is null), as $near and $geoNear need. */
export function geoIndexFor(coll: Collection, field: string | null, op: "$geoNear" | "key"): Index {
  const geo = [...coll.indexes.values()].filter((i) => i.spatial !== null);
  if (field !== null) {
    const index = geo.find((i) => i.geoField === field);
    if (index) return index;
    if (op === "key") {
      throw new CommandError(ErrorCode.IndexNotFound, `$geoNear requires a 2d or 2dsphere index on the 'key' field ${field}, but none was found`);
    }
    throw noGeoNearPlan(coll.ns, field);
  }
  if (geo.length === 0) throw new CommandError(ErrorCode.IndexNotFound, "$geoNear requires a 2d or 2dsphere index, but none were found");
  if (geo.length > 1) {
    throw new CommandError(ErrorCode.IndexNotFound, `There is more than one 2dsphere index on ${coll.ns}; unsure which to use for $geoNear`);
  }
  return geo[0];
}

/** Meters from `center` to the nearest of a location's geometries. */
function distanceTo(center: LngLat, geometries: Geometry[]): number {
  let best = Number.POSITIVE_INFINITY;
  for (const g of geometries) best = Math.min(best, distanceToGeometryMeters(center, g));
  return best;
}

/**
 * Documents nearest first: points from the spatial index, merged with the documents whose location
 * is another geometry (ranked by their nearest part). Inside a transaction with pending writes the
 * index does not know the transaction's own versions, so the collection is ranked directly.
 */
export function* nearestDocuments(
  access: CollectionAccess,
  index: Index,
  near: Pick<NearQuery, "center" | "minDistance" | "maxDistance">,
): Generator<Match> {
  const minD = near.minDistance ?? 0;
  const maxD = near.maxDistance ?? Number.POSITIVE_INFINITY;
  const inRange = (d: number): boolean => d >= minD && d <= maxD;
  const byDistance = (a: Match, b: Match): number => (a.distance ?? 0) - (b.distance ?? 0);
  if (!access.hasPendingWrites && index.spatial) {
    const shaped: Match[] = [];
    for (const [key, geometries] of index.shapes) {
      const distance = distanceTo(near.center, geometries);
      const doc = inRange(distance) ? access.get(key) : undefined;
      if (doc) shaped.push({ key, doc, distance });
    }
    shaped.sort(byDistance);
    let next = 0;
    for (const { key, distance } of index.spatial.nearest(near.center, { minDistance: near.minDistance, maxDistance: near.maxDistance })) {
      while (next < shaped.length && (shaped[next].distance ?? 0) <= distance) yield shaped[next++];
      const doc = access.get(key);
      if (doc) yield { key, doc, distance };
    }
    while (next < shaped.length) yield shaped[next++];
    return;
  }
  const ranked: Match[] = [];
  for (const [key, doc] of access.scan()) {
    let geometries: Geometry[] | null;
    try {
      geometries = index.geoEntryOf(doc);
    } catch {
      continue; // not indexable: MongoDB would not have it in the index
    }
    if (!geometries) continue;
    const distance = distanceTo(near.center, geometries);
    if (inRange(distance)) ranked.push({ key, doc, distance });
  }
  ranked.sort(byDistance);
  yield* ranked;
}

export function countDocuments(access: CollectionAccess | null, spec: FindSpec): number {
  if (!access) return 0;
  const noFilter = !spec.filter || Object.keys(spec.filter).length === 0;
  if (noFilter && spec.hint === undefined) {
    const n = Math.max(0, access.count() - (spec.skip ?? 0));
    return spec.limit ? Math.min(n, spec.limit) : n;
  }
  return findMatches(access, spec).length;
}

export function distinctValues(access: CollectionAccess | null, key: string, spec: FindSpec): unknown[] {
  if (!access) return [];
  const seen = new Map<string, unknown>();
  for (const { doc } of findMatches(access, spec)) {
    for (const v of pathValues(doc, key)) {
      if (v === undefined) continue;
      const k = canonicalKey(v);
      if (!seen.has(k)) seen.set(k, v);
    }
  }
  return [...seen.values()];
}

// ---- writes -----------------------------------------------------------------------------------

export interface WriteResult {
  n: number;
  nModified?: number;
  upserted?: { index: number; _id: unknown }[];
  writeErrors: Document[];
}

/**
 * Runs a batch's statements one by one, as mongod does: a failing statement becomes a write error
 * with its index, an ordered batch stops there, an unordered one goes on. A WriteConflict is not a
 * statement's error but the whole command's (the transaction's), so it propagates.
 */
function runStatements(result: WriteResult, count: number, ordered: boolean, run: (i: number) => void): WriteResult {
  for (let i = 0; i < count; i++) {
    try {
      run(i);
    } catch (err) {
      const e = toCommandError(err);
      if (e.code === ErrorCode.WriteConflict) throw e;
      result.writeErrors.push(e.toWriteError(i));
      if (ordered) break;
    }
  }
  return result;
}

function writableCollection(ctx: OpContext, name: string, create: boolean): Collection | null {
  const existing = ctx.engine.collection(ctx, name);
  if (existing?.view) throw viewError(existing);
  if (existing || !create) return existing ?? null;
  return ctx.engine.ensureCollection(ctx, name);
}

/** The document as stored: a generated ObjectId when it has no _id, _id first. */
export function prepareInsert(doc: unknown): Document {
  if (!isPlainObject(doc)) throw new CommandError(ErrorCode.TypeMismatch, "document to insert must be an object");
  if (doc._id === undefined) return { _id: new ObjectId(), ...doc };
  validateId(doc._id);
  return idFirst(doc);
}

export function insertDocuments(ctx: OpContext, name: string, docs: unknown[], ordered: boolean): WriteResult {
  const result: WriteResult = { n: 0, writeErrors: [] };
  if (docs.length === 0) return result;
  const coll = writableCollection(ctx, name, true) as Collection;
  const access = ctx.engine.accessTo(ctx, coll);
  return runStatements(result, docs.length, ordered, (i) => {
    access.insert(prepareInsert(docs[i]));
    result.n++;
  });
}

/** The statement fields the engine implements (sampleId is the query sampler's tag: no effect on results). */
export const UPDATE_STATEMENT_FIELDS: ReadonlySet<string> = new Set(["q", "u", "c", "arrayFilters", "hint", "multi", "upsert", "upsertSupplied", "sampleId"]);
export const DELETE_STATEMENT_FIELDS: ReadonlySet<string> = new Set(["q", "limit", "hint", "sampleId"]);

/** mongod parses every statement before running any: unknown fields fail the whole command. */
export function validateStatements(command: "update" | "delete", statements: unknown): Document[] {
  const field = command === "update" ? "updates" : "deletes";
  if (!Array.isArray(statements)) throw new CommandError(ErrorCode.TypeMismatch, `BSON field '${command}.${field}' is missing but a required field`);
  const allowed = command === "update" ? UPDATE_STATEMENT_FIELDS : DELETE_STATEMENT_FIELDS;
  for (const s of statements) {
    if (!isPlainObject(s)) throw new CommandError(ErrorCode.TypeMismatch, `BSON field '${command}.${field}' must contain objects`);
    checkFields(`${command}.${field}`, s, allowed);
    if (!("q" in s)) throw new CommandError(ErrorCode.NoSuchKey, `BSON field '${command}.${field}.q' is missing but a required field`);
    if (command === "update" && !("u" in s)) throw new CommandError(ErrorCode.NoSuchKey, `BSON field 'update.updates.u' is missing but a required field`);
    if (command === "delete" && !("limit" in s)) throw new CommandError(ErrorCode.NoSuchKey, `BSON field 'delete.deletes.limit' is missing but a required field`);
  }
  return statements as Document[];
}

function statementVariables(base: Variables | undefined, constants: unknown): Variables | undefined {
  if (!isPlainObject(constants)) return base;
  return { ...base, ...constants };
}

export function updateDocuments(ctx: OpContext, name: string, statements: Document[], ordered: boolean, variables?: Variables): WriteResult {
  const result: WriteResult = { n: 0, nModified: 0, upserted: [], writeErrors: [] };
  return runStatements(result, statements.length, ordered, (i) => runUpdateStatement(ctx, name, statements[i], i, result, variables));
}

function runUpdateStatement(ctx: OpContext, name: string, s: Document, index: number, result: WriteResult, variables?: Variables): void {
  const spec = parseUpdate(s.u);
  const filter = (s.q ?? {}) as Document;
  if (!isPlainObject(filter)) throw failedToParse("the update filter must be an object");
  const vars = statementVariables(variables, s.c);
  const arrayFilters = Array.isArray(s.arrayFilters) ? (s.arrayFilters as Document[]) : undefined;
  if (spec.kind === "replacement" && s.multi) throw failedToParse("multi update is not supported for replacement-style update");
  const coll = writableCollection(ctx, name, s.upsert === true);
  const matches = coll ? findMatches(ctx.engine.accessTo(ctx, coll), { filter, hint: s.hint, variables: vars, limit: s.multi ? 0 : 1 }) : [];
  if (matches.length === 0) {
    if (s.upsert && coll) {
      const doc = buildUpsertDocument(filter, spec, { arrayFilters, variables: vars });
      validateId(doc._id);
      ctx.engine.accessTo(ctx, coll).insert(doc);
      result.n++;
      result.upserted?.push({ index, _id: doc._id });
    }
    return;
  }
  const access = ctx.engine.accessTo(ctx, coll as Collection);
  for (const m of matches) {
    const current = access.get(m.key);
    if (!current) continue;
    const { doc, modified } = applyUpdate(current, spec, { filter, arrayFilters, variables: vars });
    result.n++;
    if (modified) {
      access.replace(m.key, doc);
      result.nModified = (result.nModified ?? 0) + 1;
    }
  }
}

export function deleteDocuments(ctx: OpContext, name: string, statements: Document[], ordered: boolean, variables?: Variables): WriteResult {
  const result: WriteResult = { n: 0, writeErrors: [] };
  const coll = writableCollection(ctx, name, false);
  return runStatements(result, statements.length, ordered, (i) => {
    const s = statements[i];
    const limit = numericValue(s.limit) ?? 0;
    if (limit !== 0 && limit !== 1) throw failedToParse(`The limit field in delete objects must be 0 or 1. Got ${limit}`);
    if (!coll) return;
    const access = ctx.engine.accessTo(ctx, coll);
    const matches = findMatches(access, { filter: s.q as Document, hint: s.hint, variables, limit });
    for (const m of matches) access.remove(m.key);
    result.n += matches.length;
  });
}

export interface FindAndModifySpec {
  query: Document;
  sort: SortSpec | null;
  remove: boolean;
  update: unknown;
  returnNew: boolean;
  fields?: Document;
  upsert: boolean;
  arrayFilters?: Document[];
  hint?: unknown;
  variables?: Variables;
}

export function findAndModify(ctx: OpContext, name: string, spec: FindAndModifySpec): Document {
  if (spec.remove && spec.update !== undefined) throw failedToParse("Cannot specify both an update and remove=true");
  if (!spec.remove && spec.update === undefined) throw failedToParse("Either an update or remove=true must be specified");
  if (spec.remove && spec.returnNew) throw failedToParse("Cannot specify both new=true and remove=true; 'remove' always returns the deleted document");
  if (spec.remove && spec.upsert) throw failedToParse("Cannot specify both upsert=true and remove=true ");
  const update = spec.remove ? null : parseUpdate(spec.update);
  const coll = writableCollection(ctx, name, spec.upsert);
  // The query only informs positional projections: a new document the update moved out of the
  // query's match (e.g. a lease field in the filter) is still returned, as MongoDB does.
  const project = (doc: Document | null): Document | null =>
    doc === null ? null : (applyProjection([doc], spec.fields, spec.query, spec.variables)[0] ?? applyProjection([doc], spec.fields, undefined, spec.variables)[0] ?? null);
  const access = coll ? ctx.engine.accessTo(ctx, coll) : null;
  const [match] = access ? findMatches(access, { filter: spec.query, sort: spec.sort, hint: spec.hint, variables: spec.variables, limit: 1 }) : [];
  if (!match || !access) {
    if (!update || !spec.upsert || !access) return { lastErrorObject: { n: 0, updatedExisting: false }, value: null, ok: 1 };
    const doc = buildUpsertDocument(spec.query, update, { arrayFilters: spec.arrayFilters, variables: spec.variables });
    validateId(doc._id);
    access.insert(doc);
    return {
      lastErrorObject: { n: 1, updatedExisting: false, upserted: doc._id },
      value: spec.returnNew ? project(doc) : null,
      ok: 1,
    };
  }
  if (!update) {
    access.remove(match.key);
    return { lastErrorObject: { n: 1 }, value: project(match.doc), ok: 1 };
  }
  const { doc, modified } = applyUpdate(match.doc, update, { filter: spec.query, arrayFilters: spec.arrayFilters, variables: spec.variables });
  if (modified) access.replace(match.key, doc);
  return {
    lastErrorObject: { n: 1, updatedExisting: true },
    value: project(spec.returnNew ? doc : match.doc),
    ok: 1,
  };
}

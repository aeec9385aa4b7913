// Aggregation pipelines: mingo runs the stages; the engine supplies the source (an index-backed
// first $match, $geoNear through the spatial index, views, $listLocalSessions) and the stages
// that write ($out, $merge).

import type { Document } from "bson";
import type { CollectionAccess } from "./access";
import type { Collection } from "./collection";
import type { OpContext } from "./engine";
import { CommandError, ErrorCode, badValue } from "./errors";
import { EARTH_RADIUS_METERS, type LngLat, pointFromValue } from "./geo";
import type { Index } from "./indexes";
import {
  type ReadPlan,
  type ReadStats,
  geoIndexFor,
  nearestDocuments,
  newReadStats,
  prepareInsert,
} from "./operations";
import { ProcessingMode, type Variables, createAggregator } from "./mingo";
import { compileFilter, describeBadCenter } from "./query";
import { cloneValue, getPath, isPlainObject, numericValue, setPath } from "./values";

const INITIAL_ONLY_STAGES = new Set(["$geoNear", "$listLocalSessions", "$documents", "$collStats", "$indexStats", "$currentOp"]);
const FINAL_ONLY_STAGES = new Set(["$out", "$merge"]);
/** Views may nest; mongod caps the depth at 20. */
const MAX_VIEW_DEPTH = 20;

export interface PipelineInput {
  /** The collection aggregated, or null for `aggregate: 1` (database-level stages). */
  collectionName: string | null;
  pipeline: Document[];
  variables?: Variables;
}

export interface PipelineResult {
  docs: Iterable<Document>;
  /** The namespace the cursor reports. */
  ns: string;
  stats: ReadStats;
}

/** Validates stage shapes and positions as mongod does before running anything. */
export function validatePipeline(pipeline: unknown): Document[] {
  if (!Array.isArray(pipeline)) throw new CommandError(ErrorCode.TypeMismatch, "'pipeline' option must be specified as an array");
  pipeline.forEach((stage, i) => {
    if (!isPlainObject(stage) || Object.keys(stage).length !== 1) {
      throw new CommandError(40323, "A pipeline stage specification object must contain exactly one field.");
    }
    const name = Object.keys(stage)[0];
    if (INITIAL_ONLY_STAGES.has(name) && i > 0) {
      throw new CommandError(ErrorCode.GeoNearNotFirstStage, `${name} is only valid as the first stage in a pipeline.`);
    }
    if (FINAL_ONLY_STAGES.has(name) && i !== pipeline.length - 1) {
      throw new CommandError(40601, `${name} can only be the final stage in the pipeline`);
    }
  });
  return pipeline as Document[];
}

/** Runs a pipeline lazily (cursors pull batches from it); $out/$merge run to completion here. */
export function runPipeline(ctx: OpContext, input: PipelineInput): PipelineResult {
  let pipeline = validatePipeline(input.pipeline);
  let name = input.collectionName;
  const ns = `${ctx.db}.${name ?? "$cmd.aggregate"}`;
  // Views are their pipeline in front of the caller's, on the underlying collection.
  for (let depth = 0; name !== null; depth++) {
    const view = ctx.engine.collection(ctx, name)?.view;
    if (!view) break;
    if (depth >= MAX_VIEW_DEPTH) throw new CommandError(ErrorCode.InvalidOptions, "View depth too deep or view cycle detected");
    pipeline = [...view.pipeline, ...pipeline];
    name = view.viewOn;
  }
  const stats = newReadStats();
  const last = pipeline[pipeline.length - 1];
  const writeStage = last && FINAL_ONLY_STAGES.has(Object.keys(last)[0]) ? last : null;
  if (writeStage) {
    if (ctx.txn) throw new CommandError(ErrorCode.OperationNotSupportedInTransaction, `${Object.keys(writeStage)[0]} cannot be used in a transaction`);
    // Refused before anything is written: the target could not be written as of an earlier time.
    if (ctx.readAt != null) throw new CommandError(ErrorCode.InvalidOptions, `${Object.keys(writeStage)[0]} cannot be used with readConcern snapshot at an earlier atClusterTime`);
    pipeline = pipeline.slice(0, -1);
  }
  const access = name === null ? null : ctx.engine.access(ctx, name);
  const { source, rest, owned } = pipelineSource(ctx, access, name, pipeline, input.variables, stats);
  let docs = runStages(ctx, source, rest, input.variables, owned);
  if (writeStage) {
    writeResults(ctx, writeStage, [...docs]);
    docs = [];
  }
  return { docs, ns, stats };
}

/** The plan a pipeline would use, for explain. */
export function explainPipeline(ctx: OpContext, input: PipelineInput): ReadPlan {
  const pipeline = validatePipeline(input.pipeline);
  const stats = newReadStats();
  const access = input.collectionName === null ? null : ctx.engine.access(ctx, input.collectionName);
  pipelineSource(ctx, access, input.collectionName, pipeline, input.variables, stats);
  return stats.plan;
}

function pipelineSource(
  ctx: OpContext,
  access: CollectionAccess | null,
  name: string | null,
  pipeline: Document[],
  variables: Variables | undefined,
  stats: ReadStats,
): PipelineSource {
  const first = pipeline[0];
  const firstName = first ? Object.keys(first)[0] : null;
  if (firstName === "$geoNear") {
    const spec = parseGeoNear(first.$geoNear);
    if (!access) return { source: [], rest: pipeline.slice(1), owned: true };
    const index = spec.key !== null ? geoIndexFor(access.collection, spec.key, "key") : geoIndexFor(access.collection, null, "$geoNear");
    stats.plan = { kind: "geo", index };
    return { source: geoNearDocuments(access, index, spec, variables, stats), rest: pipeline.slice(1), owned: true };
  }
  if (name === null) {
    if (firstName === "$listLocalSessions") return { source: localSessions(ctx), rest: pipeline.slice(1), owned: true };
    if (firstName === "$documents") return { source: [{}], rest: pipeline, owned: true };
    throw new CommandError(ErrorCode.InvalidNamespace, "{aggregate: 1} is not valid for '$match'; a collection is required.");
  }
  if (!access) return { source: [], rest: pipeline, owned: true };
  if (firstName === "$match" && isPlainObject(first.$match)) {
    const filter = first.$match;
    const plan = access.collection.plan(filter);
    const matcher = compileFilter(filter, variables);
    stats.plan = plan;
    return { source: filtered(access, plan, matcher, stats), rest: pipeline.slice(1), owned: false };
  }
  return { source: scanAll(access, stats), rest: pipeline, owned: false };
}

interface PipelineSource {
  source: Iterable<Document>;
  /** The stages left for mingo. */
  rest: Document[];
  /** True when the source yields fresh documents (not stored ones) that stages may modify. */
  owned: boolean;
}

/**
 * Runs the stages lazily. mingo's $limit and $skip filter without ever stopping the pull from
 * upstream (a $limit 20 after $geoNear would rank the whole collection), so the pipeline is cut
 * at those stages and they are applied here, pulling no more than they need.
 */
function runStages(ctx: OpContext, source: Iterable<Document>, stages: Document[], variables: Variables | undefined, owned: boolean): Iterable<Document> {
  let docs = source;
  let fresh = owned;
  let segment: Document[] = [];
  const flush = (): void => {
    if (segment.length === 0) return;
    const aggregator = createAggregator(segment, {
      variables,
      // Stored documents must not be modified by stages such as $set on a nested field.
      processingMode: fresh ? ProcessingMode.CLONE_OFF : ProcessingMode.CLONE_INPUT,
      collectionResolver: (from: string) => resolveCollection(ctx, from),
    });
    docs = aggregator.stream(docs) as Iterable<Document>;
    fresh = true;
    segment = [];
  };
  for (const stage of stages) {
    const name = Object.keys(stage)[0];
    if (name === "$lookup" && geoNearLookup(stage.$lookup)) {
      flush();
      docs = lookupWithGeoNear(ctx, docs, stage.$lookup as Document, variables);
      continue;
    }
    const n = name === "$limit" || name === "$skip" ? numericValue(stage[name]) : null;
    if (n === null || !Number.isInteger(n) || n < 0) {
      segment.push(stage);
      continue;
    }
    flush();
    docs = name === "$limit" ? take(docs, n) : drop(docs, n);
  }
  flush();
  return docs;
}

/** A $lookup whose sub-pipeline starts with $geoNear (mingo has no $geoNear; the engine runs it on the index). */
function geoNearLookup(spec: unknown): boolean {
  if (!isPlainObject(spec) || !Array.isArray(spec.pipeline)) return false;
  const first = spec.pipeline[0];
  return isPlainObject(first) && "$geoNear" in first;
}

/** Evaluates an object of expressions (a `let`, or `{near}`) against one document. */
function evaluateFields(doc: Document, fields: Document, variables: Variables | undefined): Document {
  const [out] = createAggregator([{ $replaceWith: fields }], { variables }).run([doc]);
  return out as Document;
}

/** $lookup with a $geoNear sub-pipeline: per input document, the sub-pipeline runs on the foreign collection's 2dsphere index. */
function* lookupWithGeoNear(ctx: OpContext, docs: Iterable<Document>, spec: Document, variables: Variables | undefined): Generator<Document> {
  if (typeof spec.from !== "string") throw new CommandError(ErrorCode.FailedToParse, "$lookup 'from' must be a collection name");
  if (typeof spec.as !== "string" || spec.as === "") throw new CommandError(ErrorCode.FailedToParse, "must specify 'as' field for a $lookup");
  if (spec.localField !== undefined || spec.foreignField !== undefined) {
    throw new CommandError(ErrorCode.NotImplemented, "$lookup with localField/foreignField and a $geoNear sub-pipeline is not supported by the embedded engine");
  }
  if (spec.let !== undefined && !isPlainObject(spec.let)) throw new CommandError(ErrorCode.FailedToParse, "$lookup argument 'let' must be an object");
  const pipeline = validatePipeline(spec.pipeline);
  const geoNear = pipeline[0].$geoNear;
  if (!isPlainObject(geoNear)) throw badValue("$geoNear requires an object as its argument");
  const access = ctx.engine.access(ctx, spec.from);
  for (const doc of docs) {
    const vars: Variables = { ...variables, ...(spec.let ? evaluateFields(doc, spec.let as Document, variables) : {}) };
    // `near` may use the let variables; the rest of $geoNear takes constants.
    const { near } = evaluateFields({}, { near: geoNear.near }, vars);
    const sub = [{ $geoNear: { ...geoNear, near } }, ...pipeline.slice(1)];
    const stats = newReadStats();
    const { source, rest, owned } = pipelineSource(ctx, access, spec.from, sub, vars, stats);
    const out = cloneValue(doc);
    setPath(out, spec.as, [...runStages(ctx, source, rest, vars, owned)]);
    yield out;
  }
}

function* take(docs: Iterable<Document>, n: number): Generator<Document> {
  if (n === 0) return;
  let i = 0;
  for (const d of docs) {
    yield d;
    if (++i >= n) return;
  }
}

function* drop(docs: Iterable<Document>, n: number): Generator<Document> {
  let i = 0;
  for (const d of docs) if (i++ >= n) yield d;
}

function* filtered(
  access: CollectionAccess,
  plan: ReturnType<Collection["plan"]>,
  matcher: { test(doc: Document): boolean },
  stats: ReadStats,
): Generator<Document> {
  for (const [, doc] of access.candidates(plan)) {
    stats.docsExamined++;
    if (matcher.test(doc)) yield doc;
  }
}

function* scanAll(access: CollectionAccess, stats: ReadStats): Generator<Document> {
  for (const [, doc] of access.scan()) {
    stats.docsExamined++;
    yield doc;
  }
}

function resolveCollection(ctx: OpContext, name: string): Document[] {
  const access = ctx.engine.access(ctx, name);
  if (!access) return [];
  // mingo may modify looked-up documents in later stages: hand it copies.
  return [...access.scan()].map(([, d]) => cloneValue(d));
}

function localSessions(ctx: OpContext): Document[] {
  return ctx.engine.sessions.all().map((s) => ({ _id: { id: s.lsid.id }, lastUse: new Date(s.lastUse) }));
}

// ---- $geoNear ----------------------------------------------------------------------------------

interface GeoNearSpec {
  center: LngLat;
  /** Legacy coordinate pairs measure in radians, GeoJSON points in meters. */
  unitMeters: number;
  distanceField: string;
  minDistance?: number;
  maxDistance?: number;
  query?: Document;
  key: string | null;
  includeLocs: string | null;
  distanceMultiplier: number;
}

function optionalDistance(v: unknown, name: string, unitMeters: number): number | undefined {
  if (v === undefined || v === null) return undefined;
  const n = numericValue(v);
  if (n === null || Number.isNaN(n)) throw badValue(`${name} must be a number`);
  if (n < 0) throw badValue(`${name} must be nonnegative`);
  return n * unitMeters;
}

function parseGeoNear(raw: unknown): GeoNearSpec {
  if (!isPlainObject(raw)) throw badValue("$geoNear requires an object as its argument");
  const near = raw.near;
  if (near === undefined) throw badValue("$geoNear requires a 'near' option as an Array");
  let center: LngLat | null;
  let unitMeters = 1;
  if (isPlainObject(near) && "type" in near) {
    if (near.type !== "Point") throw badValue(`$geoNear 'near' must be a GeoJSON Point, not ${String(near.type)}`);
    center = pointFromValue(near);
    if (!center) throw badValue(describeBadCenter(near.coordinates));
  } else if (Array.isArray(near) || isPlainObject(near)) {
    center = pointFromValue(near);
    if (!center) throw badValue(describeBadCenter(near));
    unitMeters = EARTH_RADIUS_METERS;
  } else {
    throw badValue("$geoNear requires a 'near' option as an Array");
  }
  if (typeof raw.distanceField !== "string" || raw.distanceField === "") {
    throw badValue("$geoNear requires a 'distanceField' option as a String");
  }
  if (raw.includeLocs !== undefined && typeof raw.includeLocs !== "string") {
    throw badValue("$geoNear requires that 'includeLocs' option is a String");
  }
  if (raw.key !== undefined && (typeof raw.key !== "string" || raw.key === "")) {
    throw badValue("$geoNear parameter 'key' must be of type string but found type: " + typeof raw.key);
  }
  if (raw.query !== undefined && !isPlainObject(raw.query)) throw badValue("$geoNear parameter 'query' must be of type object");
  const multiplier = raw.distanceMultiplier === undefined ? 1 : numericValue(raw.distanceMultiplier);
  if (multiplier === null || multiplier < 0) throw badValue("distanceMultiplier must be a non-negative number");
  if ("collation" in raw) throw badValue("$geoNear does not accept the 'collation' parameter. Instead, specify a collation for the entire aggregation command.");
  return {
    center,
    unitMeters,
    distanceField: raw.distanceField,
    maxDistance: optionalDistance(raw.maxDistance, "maxDistance", unitMeters),
    minDistance: optionalDistance(raw.minDistance, "minDistance", unitMeters),
    query: raw.query as Document | undefined,
    key: (raw.key as string | undefined) ?? null,
    includeLocs: (raw.includeLocs as string | undefined) ?? null,
    distanceMultiplier: multiplier,
  };
}

function* geoNearDocuments(
  access: CollectionAccess,
  index: Index,
  spec: GeoNearSpec,
  variables: Variables | undefined,
  stats: ReadStats,
): Generator<Document> {
  const matcher = compileFilter(spec.query, variables);
  for (const m of nearestDocuments(access, index, spec)) {
    stats.docsExamined++;
    if (!matcher.test(m.doc)) continue;
    const out = cloneValue(m.doc);
    setPath(out, spec.distanceField, ((m.distance ?? 0) / spec.unitMeters) * spec.distanceMultiplier);
    if (spec.includeLocs) setPath(out, spec.includeLocs, cloneValue(getPath(m.doc, index.geoField ?? "")));
    yield out;
  }
}

// ---- $out / $merge ------------------------------------------------------------------------------

function targetOf(ctx: OpContext, spec: unknown, stage: string): { db: string; coll: string } {
  if (typeof spec === "string") return { db: ctx.db, coll: spec };
  if (isPlainObject(spec)) {
    const coll = spec.coll ?? spec.into;
    if (typeof coll === "string") return { db: typeof spec.db === "string" ? spec.db : ctx.db, coll };
    if (isPlainObject(coll) && typeof coll.coll === "string") return { db: typeof coll.db === "string" ? coll.db : ctx.db, coll: coll.coll };
  }
  throw badValue(`${stage} requires a collection name`);
}

function writeResults(ctx: OpContext, stage: Document, docs: Document[]): void {
  const name = Object.keys(stage)[0];
  const spec = stage[name];
  const target = targetOf(ctx, name === "$merge" && isPlainObject(spec) ? spec.into : spec, name);
  const targetCtx: OpContext = { ...ctx, db: target.db };
  if (name === "$out") {
    // $out replaces the target atomically: build the new contents, then swap them in.
    const existing = ctx.engine.getCollection(target.db, target.coll);
    const indexes = existing ? [...existing.indexes.values()].map((i) => i.spec) : [];
    const options = existing?.options ?? {};
    if (existing?.view) throw new CommandError(ErrorCode.CommandNotSupportedOnView, `Cannot write to view ${existing.ns}`);
    ctx.engine.dropCollection(targetCtx, target.coll);
    const coll = ctx.engine.createCollection(targetCtx, target.coll, options);
    for (const spec of indexes) ctx.engine.createIndex(targetCtx, coll, spec);
    const access = ctx.engine.accessTo(targetCtx, coll);
    for (const doc of docs) access.insert(prepareInsert(doc));
    return;
  }
  mergeInto(targetCtx, target.coll, isPlainObject(spec) ? spec : {}, docs);
}

function mergeInto(ctx: OpContext, collName: string, spec: Document, docs: Document[]): void {
  const on = spec.on === undefined ? ["_id"] : Array.isArray(spec.on) ? (spec.on as string[]) : [String(spec.on)];
  const whenMatched = spec.whenMatched ?? "merge";
  const whenNotMatched = spec.whenNotMatched ?? "insert";
  if (typeof whenMatched !== "string") throw badValue("$merge with a pipeline in 'whenMatched' is not supported by the embedded engine");
  const coll = ctx.engine.ensureCollection(ctx, collName);
  const access = ctx.engine.accessTo(ctx, coll);
  for (const doc of docs) {
    const filter: Document = {};
    for (const f of on) filter[f] = getPath(doc, f) ?? null;
    const matcher = compileFilter(filter);
    let matchKey: string | null = null;
    for (const [key, existing] of access.candidates(coll.plan(filter))) {
      if (matcher.test(existing)) {
        matchKey = key;
        break;
      }
    }
    if (matchKey === null) {
      if (whenNotMatched === "discard") continue;
      if (whenNotMatched === "fail") throw new CommandError(13113, "$merge could not find a matching document in the target collection for at least one document in the source collection");
      access.insert(prepareInsert(doc));
      continue;
    }
    const existing = access.get(matchKey) as Document;
    switch (whenMatched) {
      case "keepExisting":
        break;
      case "fail":
        throw coll.duplicateKey("_id_", { _id: 1 }, { _id: existing._id });
      case "replace":
        access.replace(matchKey, { ...doc, _id: existing._id });
        break;
      default:
        access.replace(matchKey, { ...existing, ...doc, _id: existing._id });
    }
  }
}

// Update documents: validation as mongod does it (codes 9, 14, 2, 28, 40, 52, 66), application
// through mingo (operators, arrayFilters, positional $, pipelines) and upsert seeding.

import type { Document } from "bson";
import { ObjectId } from "bson";
import { CommandError, ErrorCode, badValue, failedToParse, typeMismatch } from "./errors";
import { type Variables, createAggregator, updateInPlace } from "./mingo";
import { equalityConstraints } from "./query";
import { canonicalKey, cloneValue, formatValue, idFirst, isNumeric, isPlainObject, mongoTypeName, setPath } from "./values";

export type UpdateSpec =
  | { kind: "replacement"; doc: Document }
  | { kind: "operators"; ops: Document }
  | { kind: "pipeline"; stages: Document[] };

const MODIFIERS = new Set([
  "$set",
  "$unset",
  "$inc",
  "$mul",
  "$min",
  "$max",
  "$rename",
  "$push",
  "$addToSet",
  "$pop",
  "$pull",
  "$pullAll",
  "$currentDate",
  "$bit",
  "$setOnInsert",
]);
const NUMERIC_ARG = new Set(["$inc", "$mul"]);
const ARRAY_TARGET = new Set(["$push", "$addToSet", "$pop", "$pull", "$pullAll"]);
const PIPELINE_UPDATE_STAGES = new Set(["$addFields", "$set", "$project", "$unset", "$replaceRoot", "$replaceWith"]);

/** Parses and validates the `u` of an update statement (or findAndModify's update). */
export function parseUpdate(u: unknown): UpdateSpec {
  if (Array.isArray(u)) {
    for (const stage of u) {
      if (!isPlainObject(stage) || Object.keys(stage).length !== 1) {
        throw failedToParse("A pipeline stage specification object must contain exactly one field.");
      }
      const name = Object.keys(stage)[0];
      if (!PIPELINE_UPDATE_STAGES.has(name)) {
        throw new CommandError(ErrorCode.InvalidOptions, `${name} is not allowed to be used within an update`);
      }
    }
    return { kind: "pipeline", stages: u as Document[] };
  }
  if (!isPlainObject(u)) throw failedToParse("Update argument must be either an object or an array");
  const keys = Object.keys(u);
  if (keys.length === 0 || !keys[0].startsWith("$")) {
    for (const k of keys) {
      if (k.startsWith("$")) {
        throw new CommandError(
          ErrorCode.DollarPrefixedFieldName,
          `The dollar ($) prefixed field '${k}' in '${k}' is not allowed in the context of an update's replacement document. Consider using an aggregation pipeline with $replaceWith.`,
        );
      }
    }
    return { kind: "replacement", doc: u };
  }
  const seen: string[] = [];
  for (const op of keys) {
    if (!MODIFIERS.has(op)) {
      throw failedToParse(`Unknown modifier: ${op}. Expected a valid update modifier or pipeline-style update specified as an array`);
    }
    const arg = u[op];
    if (!isPlainObject(arg)) {
      throw failedToParse(`Modifiers operate on fields but we found type ${mongoTypeName(arg)} instead. For example: {$mod: {<field>: ...}} not {${op}: ${formatValue(arg)}}`);
    }
    for (const [path, value] of Object.entries(arg)) {
      if (path === "" || path.split(".").some((p) => p === "")) {
        throw new CommandError(ErrorCode.EmptyFieldName, "An empty update path is not valid.");
      }
      if (NUMERIC_ARG.has(op) && !isNumeric(value)) {
        const verb = op === "$inc" ? "increment" : "multiply";
        throw typeMismatch(`Cannot ${verb} with non-numeric argument: {${path}: ${formatValue(value)}}`);
      }
      if (op === "$pop" && value !== 1 && value !== -1) throw failedToParse(`$pop expects 1 or -1, found: ${formatValue(value)}`);
      if ((op === "$push" || op === "$addToSet") && isPlainObject(value) && "$each" in value && !Array.isArray(value.$each)) {
        throw badValue(`The argument to $each in ${op} must be an array but it was of type: ${mongoTypeName(value.$each)}`);
      }
      const paths = op === "$rename" && typeof value === "string" ? [path, value] : [path];
      for (const p of paths) {
        const clash = seen.find((s) => conflicts(s, p));
        if (clash !== undefined) {
          throw new CommandError(ErrorCode.ConflictingUpdateOperators, `Updating the path '${p}' would create a conflict at '${commonPrefix(clash, p)}'`);
        }
        seen.push(p);
      }
    }
  }
  return { kind: "operators", ops: u };
}

function conflicts(a: string, b: string): boolean {
  const pa = a.split(".");
  const pb = b.split(".");
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    if (pa[i] !== pb[i]) return false;
  }
  return true;
}

function commonPrefix(a: string, b: string): string {
  const pa = a.split(".");
  const pb = b.split(".");
  const out: string[] = [];
  for (let i = 0; i < Math.min(pa.length, pb.length) && pa[i] === pb[i]; i++) out.push(pa[i]);
  return out.join(".");
}

export interface ApplyOptions {
  /** The statement's filter, for the positional `$` operator. */
  filter?: Document;
  arrayFilters?: Document[];
  variables?: Variables;
  /** True when the document is being created by an upsert ($setOnInsert applies). */
  inserting?: boolean;
}

export interface ApplyResult {
  doc: Document;
  modified: boolean;
}

/** Applies an update to a stored document, returning a new document (the input is not mutated). */
export function applyUpdate(current: Document, spec: UpdateSpec, opts: ApplyOptions = {}): ApplyResult {
  const simple = spec.kind === "operators" && !opts.inserting ? applyTopLevelSetUnset(current, spec.ops) : null;
  return simple ?? applyUpdateGeneral(current, spec, opts);
}

/** The general path (mingo), for every update; applyUpdate takes a shortcut for top-level $set/$unset. Exported for the tests that hold both to the same results. */
export function applyUpdateGeneral(current: Document, spec: UpdateSpec, opts: ApplyOptions = {}): ApplyResult {
  let next: Document;
  switch (spec.kind) {
    case "replacement": {
      if ("_id" in spec.doc && canonicalKey(spec.doc._id) !== canonicalKey(current._id)) throw immutableId(spec.doc._id);
      next = { _id: current._id, ...cloneValue(spec.doc) };
      if (current._id === undefined) delete next._id;
      break;
    }
    case "operators":
      next = applyOperators(current, spec.ops, opts);
      break;
    case "pipeline":
      next = applyPipeline(current, spec.stages, opts.variables);
      // A pipeline may drop _id ($replaceRoot, $project): the document keeps its own.
      if (next._id === undefined && current._id !== undefined) next = { _id: current._id, ...next };
      break;
  }
  if (current._id !== undefined && canonicalKey(next._id) !== canonicalKey(current._id)) {
    if (spec.kind === "operators") {
      throw new CommandError(ErrorCode.ImmutableField, "Performing an update on the path '_id' would modify the immutable field '_id'");
    }
    throw immutableId(next._id);
  }
  next = idFirst(next);
  return { doc: next, modified: canonicalKey(next) !== canonicalKey(current) };
}

/**
 * `$set`/`$unset` of top-level fields only (no dots, no `$`, not _id), on a stored document: the
 * common update (a courier's position, a status), applied without mingo and without comparing
 * the whole document before and after (that was most of an update's cost). Same result as the
 * general path: a set field keeps its place, a new one goes last in the order given; modified
 * when a value's canonical form changed or an unset field existed. Null for anything else.
 */
function applyTopLevelSetUnset(current: Document, ops: Document): ApplyResult | null {
  if (current._id === undefined) return null;
  let set: Document | undefined;
  let unset: Document | undefined;
  for (const op of Object.keys(ops)) {
    if (op === "$set") set = ops.$set as Document;
    else if (op === "$unset") unset = ops.$unset as Document;
    else if (op !== "$setOnInsert") return null; // applies only when inserting
  }
  const plainField = (f: string) => f !== "_id" && !f.includes(".") && !f.startsWith("$");
  for (const arg of [set, unset]) if (arg && !Object.keys(arg).every(plainField)) return null;
  let modified = false;
  const next: Document = { ...current };
  if (set) {
    for (const [field, value] of Object.entries(set)) {
      if (value === undefined) return null;
      if (!modified && (!(field in current) || !sameValue(current[field], value))) modified = true;
      next[field] = cloneValue(value);
    }
  }
  if (unset) {
    for (const field of Object.keys(unset)) {
      if (field in next) {
        delete next[field];
        modified = true;
      }
    }
  }
  return { doc: modified ? next : current, modified };
}

/** MongoDB equality as canonicalKey decides it, without building keys for the common scalars. */
function sameValue(a: unknown, b: unknown): boolean {
  if (typeof a === "number" && typeof b === "number") return a === b || (Number.isNaN(a) && Number.isNaN(b));
  if (typeof a === "string" && typeof b === "string") return a === b;
  if (a instanceof Date && b instanceof Date) return a.getTime() === b.getTime();
  return canonicalKey(a) === canonicalKey(b);
}

function immutableId(value: unknown): CommandError {
  return new CommandError(
    ErrorCode.ImmutableField,
    `After applying the update, the (immutable) field '_id' was found to have been altered to _id: ${formatValue(value)}`,
  );
}

function applyOperators(current: Document, ops: Document, opts: ApplyOptions): Document {
  const modifier: Document = {};
  for (const [op, arg] of Object.entries(ops)) {
    if (op === "$setOnInsert") {
      if (opts.inserting) modifier.$set = { ...(modifier.$set as Document | undefined), ...(arg as Document) };
      continue;
    }
    modifier[op] = op === "$set" && modifier.$set ? { ...(modifier.$set as Document), ...(arg as Document) } : arg;
  }
  // Setting _id to the value it already has is allowed (and a no-op), as in mongod.
  const set = modifier.$set as Document | undefined;
  if (set && "_id" in set && canonicalKey(set._id) === canonicalKey(current._id)) {
    const { _id: _same, ...rest } = set;
    if (Object.keys(rest).length > 0) modifier.$set = rest;
    else delete modifier.$set;
  }
  checkTargets(current, modifier);
  const doc = cloneValue(current);
  if (Object.keys(modifier).length === 0) return doc;
  try {
    updateInPlace(doc, modifier, opts.arrayFilters, opts.filter, opts.variables);
  } catch (err) {
    throw mapMingoUpdateError(err);
  }
  return doc;
}

function mapMingoUpdateError(err: unknown): unknown {
  if (!(err instanceof Error) || err instanceof CommandError) return err;
  if (/immutable field/.test(err.message)) return new CommandError(ErrorCode.ImmutableField, err.message.replace(/\.$/, ""));
  if (/'\.\$'/.test(err.message) || /positional operator/.test(err.message)) {
    return badValue("The positional operator did not find the match needed from the query.");
  }
  if (/arrayFilter|identifier/i.test(err.message)) return failedToParse(err.message);
  return badValue(err.message);
}

/**
 * The type checks mongod performs against the current document before applying operators
 * (mingo silently skips these cases): non-numeric $inc targets, non-array $push targets and
 * paths running through scalars.
 */
function checkTargets(doc: Document, modifier: Document): void {
  for (const [op, arg] of Object.entries(modifier)) {
    if (op === "$unset") continue;
    for (const [rawPath, value] of Object.entries(arg as Document)) {
      const paths = op === "$rename" ? [typeof value === "string" ? value : rawPath] : [rawPath];
      for (const path of paths) {
        // Positional and array-filter paths resolve per element; mingo handles those.
        if (path.split(".").some((p) => p.startsWith("$"))) continue;
        const target = resolveForWrite(doc, path);
        if (target.blockedAt !== null) {
          if (op === "$pull" || op === "$pullAll" || op === "$pop") continue;
          throw new CommandError(
            ErrorCode.PathNotViable,
            `Cannot create field '${target.blockedField}' in element {${target.blockedAt}: ${formatValue(target.blockedValue)}}`,
          );
        }
        if (target.value === undefined) continue;
        if (NUMERIC_ARG.has(op) && !isNumeric(target.value)) {
          throw typeMismatch(
            `Cannot apply ${op} to a value of non-numeric type. {_id: ${formatValue(doc._id)}} has the field '${path.split(".").pop()}' of non-numeric type ${mongoTypeName(target.value)}`,
          );
        }
        if (ARRAY_TARGET.has(op) && !Array.isArray(target.value)) {
          if (op === "$pull" || op === "$pullAll") throw badValue(`Cannot apply ${op} to a non-array value`);
          throw badValue(
            `The field '${path}' must be an array but is of type ${mongoTypeName(target.value)} in document {_id: ${formatValue(doc._id)}}`,
          );
        }
      }
    }
  }
}

interface WriteTarget {
  value: unknown;
  blockedAt: string | null;
  blockedField: string;
  blockedValue: unknown;
}

function resolveForWrite(doc: Document, path: string): WriteTarget {
  const parts = path.split(".");
  let cur: unknown = doc;
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i];
    if (cur === undefined || cur === null) return { value: undefined, blockedAt: null, blockedField: "", blockedValue: undefined };
    if (Array.isArray(cur)) {
      if (!/^\d+$/.test(part)) return { value: undefined, blockedAt: parts[i - 1] ?? "", blockedField: part, blockedValue: cur };
      cur = cur[Number(part)];
      continue;
    }
    if (!isPlainObject(cur)) {
      return { value: undefined, blockedAt: parts[i - 1] ?? "", blockedField: part, blockedValue: cur };
    }
    cur = cur[part];
  }
  return { value: cur, blockedAt: null, blockedField: "", blockedValue: undefined };
}

function applyPipeline(current: Document, stages: Document[], variables?: Variables): Document {
  try {
    const [out] = createAggregator(stages, { variables }).run([cloneValue(current)]);
    if (!isPlainObject(out)) throw badValue("update pipeline produced no document");
    return out;
  } catch (err) {
    if (err instanceof CommandError) throw err;
    throw badValue(err instanceof Error ? err.message : String(err));
  }
}

/**
 * The document an upsert inserts: the filter's equality fields (for operator and pipeline
 * updates) or the replacement, with the filter's _id when the update does not set one.
 */
export function buildUpsertDocument(filter: Document, spec: UpdateSpec, opts: ApplyOptions): Document {
  const seed: Document = {};
  for (const [path, values] of equalityConstraints(filter)) {
    if (values.length !== 1) continue;
    if (spec.kind === "replacement" && path !== "_id") continue;
    setPath(seed, path, cloneValue(values[0]));
  }
  let doc: Document;
  if (spec.kind === "replacement") {
    doc = { ...seed, ...cloneValue(spec.doc) };
  } else {
    const { doc: applied } = applyUpdate(seed, spec, { ...opts, inserting: true });
    doc = applied;
    if (seed._id !== undefined && canonicalKey(doc._id) !== canonicalKey(seed._id)) throw immutableId(doc._id);
  }
  if (doc._id === undefined) doc._id = new ObjectId();
  return idFirst(doc);
}

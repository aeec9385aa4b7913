// Reads and writes: find, getMore, killCursors, insert, update, delete, findAndModify, count,
// distinct, aggregate and explain.

import { type Document, Long, type Timestamp } from "bson";
import { type PipelineInput, explainPipeline, runPipeline } from "../aggregate";
import type { CursorReply } from "../cursors";
import { viewError } from "../engine";
import { CommandError, ErrorCode, badValue, failedToParse } from "../errors";
import {
  type FindSpec,
  type ReadPlan,
  type ReadStats,
  type WriteResult,
  countDocuments,
  deleteDocuments,
  distinctValues,
  findAndModify,
  findDocuments,
  insertDocuments,
  newReadStats,
  updateDocuments,
  validateStatements,
} from "../operations";
import { isSnapshotRead } from "../options";
import { type Variables, evaluateLet, parseSort } from "../query";
import { bsonTypeOf, isPlainObject, numericValue } from "../values";
import type { CommandContext, CommandSpec } from "./context";

export function collectionName(cmd: Document, field: string): string {
  const name = cmd[field];
  if (typeof name !== "string" || name === "") {
    throw new CommandError(ErrorCode.InvalidNamespace, `collection name has invalid type ${typeof name}`);
  }
  return name;
}

function optionalObject(v: unknown, field: string): Document | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isPlainObject(v)) throw new CommandError(ErrorCode.TypeMismatch, `BSON field '${field}' is the wrong type, expected type 'object'`);
  return v;
}

function nonNegative(v: unknown, field: string): number | undefined {
  if (v === undefined || v === null) return undefined;
  const n = numericValue(v);
  if (n === null) throw new CommandError(ErrorCode.TypeMismatch, `BSON field '${field}' is the wrong type, expected a number`);
  if (n < 0) throw new CommandError(51024, `BSON field '${field}' value must be >= 0, actual value '${n}'`);
  return Math.trunc(n);
}

function cursorBatchSize(cmd: Document): number | undefined {
  const cursor = cmd.cursor;
  if (cursor === undefined) return undefined;
  if (!isPlainObject(cursor)) throw new CommandError(ErrorCode.TypeMismatch, "cursor field must be missing or an object");
  return nonNegative(cursor.batchSize, "cursor.batchSize");
}

/** A snapshot read reports the cluster time it read at (the driver pins a snapshot session's later reads to it). */
function snapshotReply(cmd: Document, ctx: CommandContext, reply: Document): Document {
  if (!isSnapshotRead(cmd)) return reply;
  const given = (cmd.readConcern as Document).atClusterTime as Timestamp | undefined;
  const at = given ?? ctx.engine.clusterTime();
  if (isPlainObject(reply.cursor)) reply.cursor = { ...reply.cursor, atClusterTime: at };
  else reply.atClusterTime = at;
  return reply;
}

function cursorReply(c: CursorReply): Document {
  return { cursor: c, ok: 1 };
}

function sessionKeyOf(ctx: CommandContext): string | null {
  return ctx.session?.key ?? null;
}

function writeReply(result: WriteResult, kind: "insert" | "update" | "delete"): Document {
  const reply: Document = { n: result.n };
  if (kind === "update") {
    reply.nModified = result.nModified ?? 0;
    if (result.upserted && result.upserted.length > 0) reply.upserted = result.upserted;
  }
  if (result.writeErrors.length > 0) reply.writeErrors = result.writeErrors;
  reply.ok = 1;
  return reply;
}

function ordered(cmd: Document): boolean {
  return cmd.ordered !== false;
}

function findSpecOf(cmd: Document, variables: Variables | undefined): FindSpec {
  const limit = numericValue(cmd.limit);
  if (limit !== null && limit < 0) throw badValue("limit must be non-negative");
  return {
    filter: optionalObject(cmd.filter, "filter"),
    sort: parseSort(cmd.sort),
    projection: optionalObject(cmd.projection, "projection"),
    skip: nonNegative(cmd.skip, "skip"),
    limit: nonNegative(cmd.limit, "limit"),
    hint: cmd.hint,
    variables,
  };
}

/** A find on a view runs as the equivalent aggregation. */
function findAsPipeline(spec: FindSpec): Document[] {
  const pipeline: Document[] = [];
  if (spec.filter && Object.keys(spec.filter).length > 0) pipeline.push({ $match: spec.filter });
  if (spec.sort) pipeline.push({ $sort: Object.fromEntries(spec.sort) });
  if (spec.skip) pipeline.push({ $skip: spec.skip });
  if (spec.limit) pipeline.push({ $limit: spec.limit });
  if (spec.projection && Object.keys(spec.projection).length > 0) pipeline.push({ $project: spec.projection });
  return pipeline;
}

function isView(ctx: CommandContext, name: string): boolean {
  return ctx.engine.collection(ctx, name)?.view != null;
}

function find(cmd: Document, ctx: CommandContext): Document {
  const name = collectionName(cmd, "find");
  const ns = `${ctx.db}.${name}`;
  const spec = findSpecOf(cmd, evaluateLet(cmd.let));
  const batchSize = nonNegative(cmd.batchSize, "batchSize");
  const docs = isView(ctx, name)
    ? runPipeline(ctx, { collectionName: name, pipeline: findAsPipeline(spec), variables: spec.variables }).docs
    : findDocuments(ctx.engine.access(ctx, name), spec);
  return snapshotReply(cmd, ctx, cursorReply(
    ctx.engine.cursors.open(ns, isSnapshotRead(cmd) ? [...docs] : docs, {
      batchSize,
      singleBatch: cmd.singleBatch === true,
      sessionKey: sessionKeyOf(ctx),
      noCursorTimeout: cmd.noCursorTimeout === true,
    }),
  ));
}

function cursorId(v: unknown): bigint {
  if (typeof v === "number" && Number.isInteger(v)) return BigInt(v);
  if (typeof v === "bigint") return v;
  if (bsonTypeOf(v) === "Long") return (v as Long).toBigInt();
  throw new CommandError(ErrorCode.TypeMismatch, "cursor id must be a 64-bit integer");
}

function getMore(cmd: Document, ctx: CommandContext): Document {
  const name = collectionName(cmd, "collection");
  const batchSize = nonNegative(cmd.batchSize, "batchSize");
  return cursorReply(ctx.engine.cursors.getMore(cursorId(cmd.getMore), `${ctx.db}.${name}`, batchSize));
}

function killCursors(cmd: Document, ctx: CommandContext): Document {
  collectionName(cmd, "killCursors");
  if (!Array.isArray(cmd.cursors)) throw failedToParse("BSON field 'killCursors.cursors' is missing but a required field");
  const { killed, notFound } = ctx.engine.cursors.kill(cmd.cursors.map(cursorId));
  return {
    cursorsKilled: killed.map((id) => Long.fromBigInt(id)),
    cursorsNotFound: notFound.map((id) => Long.fromBigInt(id)),
    cursorsAlive: [],
    cursorsUnknown: [],
    ok: 1,
  };
}

function insert(cmd: Document, ctx: CommandContext): Document {
  const name = collectionName(cmd, "insert");
  if (!Array.isArray(cmd.documents)) throw failedToParse("BSON field 'insert.documents' is missing but a required field");
  return writeReply(insertDocuments(ctx, name, cmd.documents, ordered(cmd)), "insert");
}

function update(cmd: Document, ctx: CommandContext): Document {
  const name = collectionName(cmd, "update");
  const statements = validateStatements("update", cmd.updates);
  return writeReply(updateDocuments(ctx, name, statements, ordered(cmd), evaluateLet(cmd.let)), "update");
}

function remove(cmd: Document, ctx: CommandContext): Document {
  const name = collectionName(cmd, "delete");
  const statements = validateStatements("delete", cmd.deletes);
  return writeReply(deleteDocuments(ctx, name, statements, ordered(cmd), evaluateLet(cmd.let)), "delete");
}

const FIND_AND_MODIFY_OPTIONS = ["query", "sort", "remove", "update", "new", "fields", "upsert", "arrayFilters", "hint", "let", "bypassDocumentValidation"];

function findAndModifyCommand(cmd: Document, ctx: CommandContext): Document {
  const name = collectionName(cmd, "findAndModify" in cmd ? "findAndModify" : "findandmodify");
  return findAndModify(ctx, name, {
    query: optionalObject(cmd.query, "query") ?? {},
    sort: parseSort(cmd.sort),
    remove: cmd.remove === true,
    update: cmd.update,
    returnNew: cmd.new === true,
    fields: optionalObject(cmd.fields, "fields"),
    upsert: cmd.upsert === true,
    arrayFilters: Array.isArray(cmd.arrayFilters) ? (cmd.arrayFilters as Document[]) : undefined,
    hint: cmd.hint,
    variables: evaluateLet(cmd.let),
  });
}

function count(cmd: Document, ctx: CommandContext): Document {
  const name = collectionName(cmd, "count");
  const limit = Math.abs(numericValue(cmd.limit) ?? 0);
  const spec: FindSpec = { filter: optionalObject(cmd.query, "query"), skip: nonNegative(cmd.skip, "skip"), limit, hint: cmd.hint };
  if (isView(ctx, name)) {
    const pipeline = [...findAsPipeline(spec), { $count: "n" }];
    const [res] = [...runPipeline(ctx, { collectionName: name, pipeline }).docs];
    return { n: (res?.n as number | undefined) ?? 0, ok: 1 };
  }
  return { n: countDocuments(ctx.engine.access(ctx, name), spec), ok: 1 };
}

function distinct(cmd: Document, ctx: CommandContext): Document {
  const name = collectionName(cmd, "distinct");
  if (typeof cmd.key !== "string") throw new CommandError(ErrorCode.TypeMismatch, "BSON field 'distinct.key' is the wrong type, expected type 'string'");
  const filter = optionalObject(cmd.query, "query");
  if (isView(ctx, name)) {
    const pipeline = [...(filter ? [{ $match: filter }] : []), { $unwind: { path: `$${cmd.key}`, preserveNullAndEmptyArrays: false } }, { $group: { _id: null, v: { $addToSet: `$${cmd.key}` } } }];
    const [res] = [...runPipeline(ctx, { collectionName: name, pipeline }).docs];
    return { values: (res?.v as unknown[] | undefined) ?? [], ok: 1 };
  }
  return snapshotReply(cmd, ctx, { values: distinctValues(ctx.engine.access(ctx, name), cmd.key, { filter, hint: cmd.hint }), ok: 1 });
}

function pipelineInput(cmd: Document, ctx: CommandContext): PipelineInput {
  const target = cmd.aggregate;
  let name: string | null;
  if (typeof target === "string") name = target;
  else if (numericValue(target) === 1) name = null;
  else throw new CommandError(ErrorCode.TypeMismatch, "Invalid aggregate namespace: the 'aggregate' field must be a collection name or 1");
  if (name !== null && cmd.hint !== undefined) ctx.engine.collection(ctx, name)?.resolveHint(cmd.hint);
  return { collectionName: name, pipeline: cmd.pipeline as Document[], variables: evaluateLet(cmd.let) };
}

function aggregate(cmd: Document, ctx: CommandContext): Document {
  const input = pipelineInput(cmd, ctx);
  if (cmd.explain === true) return explainReply(ctx, input.collectionName ?? "$cmd.aggregate", explainPipeline(ctx, input), null, cmd);
  if (cmd.cursor === undefined) {
    throw failedToParse("The 'cursor' option is required, except for aggregate with the explain argument");
  }
  const result = runPipeline(ctx, input);
  return snapshotReply(cmd, ctx, cursorReply(ctx.engine.cursors.open(result.ns, isSnapshotRead(cmd) ? [...result.docs] : result.docs, { batchSize: cursorBatchSize(cmd), sessionKey: sessionKeyOf(ctx) })));
}

// ---- explain ----------------------------------------------------------------------------------

function winningPlan(plan: ReadPlan, sort: Document | null): Document {
  let stage: Document;
  switch (plan.kind) {
    case "scan":
      stage = { stage: "COLLSCAN", direction: "forward" };
      break;
    case "id":
      stage = { stage: "FETCH", inputStage: { stage: "IXSCAN", keyPattern: { _id: 1 }, indexName: "_id_", isMultiKey: false, direction: "forward" } };
      break;
    case "index":
      stage = {
        stage: "FETCH",
        inputStage: { stage: "IXSCAN", keyPattern: plan.index.keyPattern, indexName: plan.index.name, isMultiKey: false, isUnique: plan.index.unique, direction: "forward" },
      };
      break;
    case "geo":
      stage = { stage: "GEO_NEAR_2DSPHERE", keyPattern: plan.index.keyPattern, indexName: plan.index.name, indexVersion: 2 };
      break;
  }
  return sort ? { stage: "SORT", sortPattern: sort, inputStage: stage } : stage;
}

function explainReply(ctx: CommandContext, collName: string, plan: ReadPlan, sort: Document | null, command: Document, stats?: ReadStats, nReturned?: number): Document {
  const queryPlanner = {
    namespace: `${ctx.db}.${collName}`,
    indexFilterSet: false,
    parsedQuery: command.filter ?? command.query ?? {},
    winningPlan: winningPlan(plan, sort),
    rejectedPlans: [],
  };
  const reply: Document = { explainVersion: "1", queryPlanner };
  if (stats) {
    reply.executionStats = {
      executionSuccess: true,
      nReturned: nReturned ?? 0,
      executionTimeMillis: 0,
      totalKeysExamined: stats.keysExamined,
      totalDocsExamined: stats.docsExamined,
      executionStages: { ...queryPlanner.winningPlan, nReturned: nReturned ?? 0, docsExamined: stats.docsExamined },
    };
  }
  if ("aggregate" in command) reply.stages = [{ $cursor: { queryPlanner } }];
  reply.command = command;
  reply.serverInfo = { host: ctx.server.address, version: "7.0.0" };
  reply.ok = 1;
  return reply;
}

function explain(cmd: Document, ctx: CommandContext): Document {
  const inner = cmd.explain;
  if (!isPlainObject(inner)) throw failedToParse("explain command requires a nested object");
  const verbosity = typeof cmd.verbosity === "string" ? cmd.verbosity : "allPlansExecution";
  const withStats = verbosity !== "queryPlanner";
  const innerName = Object.keys(inner)[0];
  switch (innerName) {
    case "find":
    case "count":
    case "distinct": {
      const name = collectionName(inner, innerName);
      const coll = ctx.engine.getCollection(ctx.db, name);
      if (coll?.view) throw viewError(coll);
      const spec: FindSpec =
        innerName === "find"
          ? findSpecOf(inner, evaluateLet(inner.let))
          : { filter: optionalObject(inner.query, "query"), hint: inner.hint };
      const stats = newReadStats();
      const access = ctx.engine.access(ctx, name);
      const docs = access ? findDocuments(access, spec, stats) : [];
      return explainReply(ctx, name, stats.plan, (inner.sort as Document | undefined) ?? null, inner, withStats ? stats : undefined, docs.length);
    }
    case "aggregate": {
      const input = pipelineInput(inner, ctx);
      return explainReply(ctx, input.collectionName ?? "$cmd.aggregate", explainPipeline(ctx, input), null, inner);
    }
    case "update":
    case "delete":
    case "findAndModify": {
      const name = collectionName(inner, innerName);
      const first =
        innerName === "findAndModify"
          ? { q: inner.query, hint: inner.hint }
          : ((inner[innerName === "update" ? "updates" : "deletes"] as Document[] | undefined)?.[0] ?? {});
      const coll = ctx.engine.getCollection(ctx.db, name);
      const plan: ReadPlan = coll ? coll.plan(first.q as Document | undefined, coll.resolveHint(first.hint)) : { kind: "scan" };
      return explainReply(ctx, name, plan, null, inner);
    }
    default:
      throw new CommandError(ErrorCode.CommandNotFound, `Explain failed due to unknown command: ${innerName}`);
  }
}

const FIND_OPTIONS = ["filter", "sort", "projection", "skip", "limit", "batchSize", "singleBatch", "hint", "let", "noCursorTimeout", "allowDiskUse", "allowPartialResults"];

export const crudCommands: Record<string, CommandSpec> = {
  find: { handler: find, inTransaction: true, options: FIND_OPTIONS },
  getMore: { handler: getMore, inTransaction: true, options: ["collection", "batchSize", "term", "lastKnownCommittedOpTime"] },
  killCursors: { handler: killCursors, inTransaction: true, options: ["cursors"] },
  insert: { handler: insert, inTransaction: true, retryableWrite: true, options: ["documents", "ordered", "bypassDocumentValidation"] },
  update: { handler: update, inTransaction: true, retryableWrite: true, options: ["updates", "ordered", "let", "bypassDocumentValidation"] },
  delete: { handler: remove, inTransaction: true, retryableWrite: true, options: ["deletes", "ordered", "let"] },
  findAndModify: { handler: findAndModifyCommand, inTransaction: true, retryableWrite: true, options: FIND_AND_MODIFY_OPTIONS },
  findandmodify: { handler: findAndModifyCommand, inTransaction: true, retryableWrite: true, options: FIND_AND_MODIFY_OPTIONS },
  count: { handler: count, options: ["query", "limit", "skip", "hint"] },
  distinct: { handler: distinct, inTransaction: true, options: ["key", "query", "hint"] },
  aggregate: { handler: aggregate, inTransaction: true, options: ["pipeline", "cursor", "explain", "allowDiskUse", "hint", "let", "bypassDocumentValidation"] },
  explain: { handler: explain, options: ["explain", "verbosity"] },
};

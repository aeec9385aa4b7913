// Entity operations of the unified test format mapped onto the official driver's API.
// Every argument is checked against the operation's known parameters: an unknown one is a
// runner error, as the format requires, so a typo never silently drops an option.
import {
  type AbstractCursor,
  type AnyBulkWriteOperation,
  type BulkWriteResult,
  type ClientSession,
  type Collection,
  type Db,
  type DeleteResult,
  type InsertManyResult,
  type InsertOneResult,
  MongoBulkWriteError,
  type MongoClient,
  type UpdateResult,
} from "mongodb";
import { type ClientEntity, collOrDbOptions, type Entity, type EntityMap, readPreference, RunnerError, type SnapshotSession } from "./entities";
import { type Doc, isDocument, show } from "./values";

export interface Operation {
  name: string;
  object: string;
  arguments?: Doc;
  expectResult?: unknown;
  expectError?: unknown;
  saveResultAsEntity?: string;
  ignoreResultAndError?: boolean;
}

export interface OpOutcome {
  value: unknown;
  /** Elements of an array result are root-level documents (iterable results such as find). */
  rootElements?: boolean;
  /** What saveResultAsEntity stores (a cursor, or the value). */
  entity?: Entity;
}

export interface OpContext {
  entities: EntityMap;
  /** Internal client for assertions that must not go through entities. */
  internal: MongoClient;
  failPoints: Array<{ client: MongoClient; name: string }>;
  /** Runs a nested operation with full assertions (withTransaction callbacks). */
  runNested(op: Operation): Promise<void>;
}

// Options every driver operation accepts that the test format may pass.
const COMMON = ["session", "comment", "timeoutMS"];
const READ = [...COMMON, "readConcern", "readPreference", "maxTimeMS"];
const WRITE = [...COMMON, "writeConcern"];
const FIND = [
  ...READ, "filter", "sort", "skip", "limit", "batchSize", "projection", "let", "hint", "max", "min",
  "maxAwaitTimeMS", "returnKey", "showRecordId", "allowDiskUse", "noCursorTimeout", "collation",
  "singleBatch", "cursorType", "oplogReplay", "allowPartialResults", "timeoutMode",
];

/** Copies `args` into driver options, resolving sessions and concern documents; rejects unknown keys. */
function options(ctx: OpContext, op: Operation, allowed: string[], required: string[] = [], positional: string[] = []): Doc {
  const args = op.arguments ?? {};
  if (!isDocument(args)) throw new RunnerError(`${op.name}: arguments must be a document`);
  for (const r of required) if (args[r] === undefined) throw new RunnerError(`${op.name}: missing required argument ${r}`);
  const out: Doc = {};
  for (const [k, v] of Object.entries(args)) {
    if (positional.includes(k)) continue;
    if (!allowed.includes(k)) throw new RunnerError(`${op.name}: unsupported argument ${k}`);
    switch (k) {
      case "session":
        out.session = ctx.entities.session(String(v)).session;
        break;
      case "readPreference":
        out.readPreference = readPreference(v);
        break;
      case "readConcern":
      case "writeConcern":
        Object.assign(out, collOrDbOptions({ [k]: v }));
        break;
      case "returnDocument": {
        const s = String(v).toLowerCase();
        if (s !== "before" && s !== "after") throw new RunnerError(`returnDocument must be Before or After, got ${show(v)}`);
        out.returnDocument = s;
        break;
      }
      default:
        out[k] = v;
    }
  }
  return out;
}

function arg(op: Operation, name: string): unknown {
  return (op.arguments ?? {})[name];
}

function docArg(op: Operation, name: string, fallback?: Doc): Doc {
  const v = arg(op, name) ?? fallback;
  if (!isDocument(v)) throw new RunnerError(`${op.name}: ${name} must be a document, got ${show(v)}`);
  return v;
}

function arrayArg(op: Operation, name: string): unknown[] {
  const v = arg(op, name);
  if (!Array.isArray(v)) throw new RunnerError(`${op.name}: ${name} must be an array, got ${show(v)}`);
  return v;
}

export function bulkWriteResultDoc(r: BulkWriteResult): Doc {
  return {
    deletedCount: r.deletedCount,
    insertedCount: r.insertedCount,
    insertedIds: { ...r.insertedIds },
    matchedCount: r.matchedCount,
    modifiedCount: r.modifiedCount,
    upsertedCount: r.upsertedCount,
    upsertedIds: { ...r.upsertedIds },
  };
}

/** The result a failed operation still carries (a bulk write's partial result), as a document. */
export function errorResult(err: unknown): unknown {
  if (err instanceof MongoBulkWriteError && err.result) return bulkWriteResultDoc(err.result);
  return undefined;
}

function updateResultDoc(r: UpdateResult): Doc {
  const out: Doc = { matchedCount: r.matchedCount, modifiedCount: r.modifiedCount, upsertedCount: r.upsertedCount };
  if (r.upsertedId !== null && r.upsertedId !== undefined) out.upsertedId = r.upsertedId;
  return out;
}

function deleteResultDoc(r: DeleteResult): Doc {
  return { deletedCount: r.deletedCount };
}

function insertOneDoc(r: InsertOneResult<Doc>): Doc {
  return { insertedId: r.insertedId };
}

function insertManyDoc(r: InsertManyResult<Doc>): Doc {
  return { insertedCount: r.insertedCount, insertedIds: { ...r.insertedIds } };
}

const MODEL_KEYS: Record<string, { allowed: string[]; required: string[] }> = {
  insertOne: { allowed: ["document"], required: ["document"] },
  updateOne: { allowed: ["filter", "update", "upsert", "arrayFilters", "collation", "hint", "sort"], required: ["filter", "update"] },
  updateMany: { allowed: ["filter", "update", "upsert", "arrayFilters", "collation", "hint"], required: ["filter", "update"] },
  replaceOne: { allowed: ["filter", "replacement", "upsert", "collation", "hint", "sort"], required: ["filter", "replacement"] },
  deleteOne: { allowed: ["filter", "collation", "hint"], required: ["filter"] },
  deleteMany: { allowed: ["filter", "collation", "hint"], required: ["filter"] },
};

function writeModels(op: Operation): AnyBulkWriteOperation<Doc>[] {
  return arrayArg(op, "requests").map((req, i) => {
    if (!isDocument(req) || Object.keys(req).length !== 1) throw new RunnerError(`bulkWrite: request ${i} is malformed`);
    const [kind] = Object.keys(req);
    const spec = MODEL_KEYS[kind];
    const body = req[kind];
    if (!spec || !isDocument(body)) throw new RunnerError(`bulkWrite: unsupported request type ${kind}`);
    for (const k of Object.keys(body)) if (!spec.allowed.includes(k)) throw new RunnerError(`bulkWrite ${kind}: unsupported argument ${k}`);
    for (const k of spec.required) if (body[k] === undefined) throw new RunnerError(`bulkWrite ${kind}: missing ${k}`);
    return { [kind]: body } as unknown as AnyBulkWriteOperation<Doc>;
  });
}

/** Starts the server-side cursor without consuming a document (hasNext buffers the batch). */
async function openCursor(cursor: AbstractCursor<Doc>, client?: ClientEntity): Promise<OpOutcome> {
  await cursor.hasNext();
  return { value: undefined, entity: { kind: "cursor", cursor, client } };
}

async function collectionOp(ctx: OpContext, op: Operation, coll: Collection<Doc>, client: ClientEntity): Promise<OpOutcome> {
  switch (op.name) {
    case "aggregate": {
      const o = options(ctx, op, [...READ, "writeConcern", "pipeline", "allowDiskUse", "batchSize", "bypassDocumentValidation", "collation", "hint", "let", "maxAwaitTimeMS"], ["pipeline"], ["pipeline"]);
      return { value: await coll.aggregate(arrayArg(op, "pipeline") as Doc[], o).toArray(), rootElements: true };
    }
    case "bulkWrite": {
      const o = options(ctx, op, [...WRITE, "ordered", "bypassDocumentValidation", "let"], ["requests"], ["requests"]);
      return { value: bulkWriteResultDoc(await coll.bulkWrite(writeModels(op), o)) };
    }
    case "count": {
      const o = options(ctx, op, [...READ, "skip", "limit", "hint", "collation"], [], ["filter"]);
      return { value: await coll.count(docArg(op, "filter", {}), o) };
    }
    case "countDocuments": {
      const o = options(ctx, op, [...READ, "skip", "limit", "hint", "collation"], ["filter"], ["filter"]);
      return { value: await coll.countDocuments(docArg(op, "filter"), o) };
    }
    case "estimatedDocumentCount":
      return { value: await coll.estimatedDocumentCount(options(ctx, op, READ)) };
    case "deleteOne":
    case "deleteMany": {
      const o = options(ctx, op, [...WRITE, "hint", "let", "collation"], ["filter"], ["filter"]);
      const r = op.name === "deleteOne" ? await coll.deleteOne(docArg(op, "filter"), o) : await coll.deleteMany(docArg(op, "filter"), o);
      return { value: deleteResultDoc(r) };
    }
    case "distinct": {
      const o = options(ctx, op, [...READ, "hint", "collation"], ["fieldName", "filter"], ["fieldName", "filter"]);
      return { value: await coll.distinct(String(arg(op, "fieldName")), docArg(op, "filter"), o) };
    }
    case "find": {
      const o = options(ctx, op, FIND, [], ["filter"]);
      return { value: await coll.find(docArg(op, "filter", {}), o).toArray(), rootElements: true };
    }
    case "findOne": {
      const o = options(ctx, op, FIND.filter((k) => k !== "batchSize" && k !== "limit" && k !== "singleBatch"), [], ["filter"]);
      return { value: await coll.findOne(docArg(op, "filter", {}), o) };
    }
    case "createFindCursor": {
      const o = options(ctx, op, FIND, [], ["filter"]);
      return openCursor(coll.find(docArg(op, "filter", {}), o), client);
    }
    case "findOneAndDelete": {
      const o = options(ctx, op, [...WRITE, "maxTimeMS", "sort", "projection", "hint", "let", "collation"], ["filter"], ["filter"]);
      return { value: await coll.findOneAndDelete(docArg(op, "filter"), o) };
    }
    case "findOneAndReplace": {
      const o = options(ctx, op, [...WRITE, "maxTimeMS", "sort", "projection", "hint", "let", "collation", "returnDocument", "upsert", "bypassDocumentValidation"], ["filter", "replacement"], ["filter", "replacement"]);
      return { value: await coll.findOneAndReplace(docArg(op, "filter"), docArg(op, "replacement"), o) };
    }
    case "findOneAndUpdate": {
      const o = options(ctx, op, [...WRITE, "maxTimeMS", "sort", "projection", "hint", "let", "collation", "returnDocument", "upsert", "arrayFilters", "bypassDocumentValidation"], ["filter", "update"], ["filter", "update"]);
      return { value: await coll.findOneAndUpdate(docArg(op, "filter"), updateArg(op), o) };
    }
    case "insertOne": {
      const o = options(ctx, op, [...WRITE, "bypassDocumentValidation"], ["document"], ["document"]);
      return { value: insertOneDoc(await coll.insertOne(docArg(op, "document"), o)) };
    }
    case "insertMany": {
      const o = options(ctx, op, [...WRITE, "ordered", "bypassDocumentValidation"], ["documents"], ["documents"]);
      return { value: insertManyDoc(await coll.insertMany(arrayArg(op, "documents") as Doc[], o)) };
    }
    case "replaceOne": {
      const o = options(ctx, op, [...WRITE, "upsert", "hint", "let", "collation", "sort", "bypassDocumentValidation"], ["filter", "replacement"], ["filter", "replacement"]);
      return { value: updateResultDoc(await coll.replaceOne(docArg(op, "filter"), docArg(op, "replacement"), o)) };
    }
    case "updateOne":
    case "updateMany": {
      const allowed = [...WRITE, "upsert", "arrayFilters", "hint", "let", "collation", "bypassDocumentValidation"];
      if (op.name === "updateOne") allowed.push("sort");
      const o = options(ctx, op, allowed, ["filter", "update"], ["filter", "update"]);
      const r = op.name === "updateOne"
        ? await coll.updateOne(docArg(op, "filter"), updateArg(op), o)
        : await coll.updateMany(docArg(op, "filter"), updateArg(op), o);
      return { value: updateResultDoc(r) };
    }
    case "createIndex": {
      const o = options(ctx, op, [...WRITE, "maxTimeMS", "name", "unique", "sparse", "expireAfterSeconds", "partialFilterExpression", "hidden", "2dsphereIndexVersion", "background"], ["keys"], ["keys"]);
      return { value: await coll.createIndex(docArg(op, "keys") as never, o) };
    }
    case "dropIndex": {
      const o = options(ctx, op, [...WRITE, "maxTimeMS"], ["name"], ["name"]);
      return { value: await coll.dropIndex(String(arg(op, "name")), o) };
    }
    case "dropIndexes":
      return { value: await coll.dropIndexes(options(ctx, op, [...WRITE, "maxTimeMS"])) };
    case "listIndexes":
      return { value: await coll.listIndexes(options(ctx, op, [...COMMON, "batchSize"])).toArray(), rootElements: true };
    case "listIndexNames":
      return { value: (await coll.listIndexes(options(ctx, op, [...COMMON, "batchSize"])).toArray()).map((i) => i.name) };
    case "drop":
      return { value: await coll.drop(options(ctx, op, WRITE)) };
    case "rename": {
      const o = options(ctx, op, [...WRITE, "dropTarget"], ["to"], ["to"]);
      await coll.rename(String(arg(op, "to")), o);
      return { value: undefined };
    }
    default:
      throw new RunnerError(`unsupported collection operation ${op.name}`);
  }
}

function updateArg(op: Operation): Doc | Doc[] {
  const u = arg(op, "update");
  if (Array.isArray(u)) return u as Doc[];
  if (isDocument(u)) return u;
  throw new RunnerError(`${op.name}: update must be a document or pipeline, got ${show(u)}`);
}

async function databaseOp(ctx: OpContext, op: Operation, db: Db, client: ClientEntity): Promise<OpOutcome> {
  switch (op.name) {
    case "aggregate": {
      const o = options(ctx, op, [...READ, "writeConcern", "pipeline", "allowDiskUse", "batchSize", "bypassDocumentValidation", "collation", "hint", "let", "maxAwaitTimeMS"], ["pipeline"], ["pipeline"]);
      return { value: await db.aggregate(arrayArg(op, "pipeline") as Doc[], o).toArray(), rootElements: true };
    }
    case "createCollection": {
      const o = options(ctx, op, [...WRITE, "viewOn", "pipeline", "capped", "size", "max", "validator", "validationLevel", "validationAction", "storageEngine", "indexOptionDefaults", "collation", "timeseries", "expireAfterSeconds", "clusteredIndex", "changeStreamPreAndPostImages", "encryptedFields"], ["collection"], ["collection"]);
      await db.createCollection(String(arg(op, "collection")), o);
      return { value: undefined };
    }
    case "dropCollection": {
      const o = options(ctx, op, [...WRITE, "encryptedFields"], ["collection"], ["collection"]);
      return { value: await db.dropCollection(String(arg(op, "collection")), o) };
    }
    case "listCollections": {
      const o = options(ctx, op, [...COMMON, "batchSize", "authorizedCollections", "nameOnly"], [], ["filter"]);
      return { value: await db.listCollections(docArg(op, "filter", {}), o).toArray(), rootElements: true };
    }
    case "listCollectionNames": {
      const o = options(ctx, op, [...COMMON, "batchSize", "authorizedCollections"], [], ["filter"]);
      const list = await db.listCollections(docArg(op, "filter", {}), { ...o, nameOnly: true }).toArray();
      return { value: list.map((c) => c.name) };
    }
    case "runCommand": {
      const o = options(ctx, op, ["session", "readPreference", "timeoutMS"], ["command"], ["command", "commandName"]);
      return { value: await db.command(docArg(op, "command"), o) };
    }
    case "runCursorCommand":
    case "createCommandCursor": {
      const o = options(ctx, op, ["session", "readPreference", "timeoutMS", "batchSize", "comment", "maxTimeMS", "cursorType", "timeoutMode"], ["command"], ["command", "commandName"]);
      const cursor = db.runCursorCommand(docArg(op, "command"), o);
      if (typeof o.batchSize === "number") cursor.setBatchSize(o.batchSize);
      if (op.name === "createCommandCursor") return openCursor(cursor as AbstractCursor<Doc>, client);
      return { value: await cursor.toArray(), rootElements: true };
    }
    default:
      throw new RunnerError(`unsupported database operation ${op.name}`);
  }
}

async function clientOp(ctx: OpContext, op: Operation, entity: ClientEntity): Promise<OpOutcome> {
  switch (op.name) {
    case "listDatabases": {
      const o = options(ctx, op, [...COMMON, "authorizedDatabases", "nameOnly"], [], ["filter"]);
      const r = await entity.client.db("admin").admin().listDatabases({ ...o, filter: docArg(op, "filter", {}) } as never);
      return { value: r.databases, rootElements: true };
    }
    case "listDatabaseNames": {
      const o = options(ctx, op, [...COMMON, "authorizedDatabases"], [], ["filter"]);
      const r = await entity.client.db("admin").admin().listDatabases({ ...o, nameOnly: true, filter: docArg(op, "filter", {}) } as never);
      return { value: r.databases.map((d) => d.name) };
    }
    case "close":
      options(ctx, op, []);
      await entity.client.close();
      return { value: undefined };
    default:
      throw new RunnerError(`unsupported client operation ${op.name}`);
  }
}

async function sessionOp(ctx: OpContext, op: Operation, session: ClientSession): Promise<OpOutcome> {
  switch (op.name) {
    case "startTransaction":
      session.startTransaction(options(ctx, op, ["readConcern", "writeConcern", "readPreference", "maxCommitTimeMS"]));
      return { value: undefined };
    case "commitTransaction":
      options(ctx, op, []);
      await session.commitTransaction();
      return { value: undefined };
    case "abortTransaction":
      options(ctx, op, []);
      await session.abortTransaction();
      return { value: undefined };
    case "endSession":
      options(ctx, op, []);
      await session.endSession();
      return { value: undefined };
    case "withTransaction": {
      const o = options(ctx, op, ["readConcern", "writeConcern", "readPreference", "maxCommitTimeMS"], ["callback"], ["callback"]);
      const callback = arrayArg(op, "callback");
      await session.withTransaction(async () => {
        for (const nested of callback) await ctx.runNested(nested as Operation);
      }, o);
      return { value: undefined };
    }
    case "getSnapshotTime": {
      options(ctx, op, []);
      const time = (session as unknown as SnapshotSession).snapshotTime;
      if (!session.snapshotEnabled || time === undefined) throw new RunnerError("getSnapshotTime: the session has no snapshot time (not a snapshot session, or no read yet)");
      return { value: time };
    }
    default:
      throw new RunnerError(`unsupported session operation ${op.name}`);
  }
}

async function cursorOp(ctx: OpContext, op: Operation, cursor: AbstractCursor<Doc>): Promise<OpOutcome> {
  options(ctx, op, []);
  switch (op.name) {
    case "iterateUntilDocumentOrError": {
      const doc = await cursor.next();
      if (doc === null) throw new RunnerError("iterateUntilDocumentOrError: cursor is exhausted");
      return { value: doc };
    }
    case "iterateOnce":
      return { value: (await cursor.tryNext()) ?? undefined };
    case "close":
      try {
        await cursor.close();
      } catch {
        // the format requires close errors to be suppressed
      }
      return { value: undefined };
    default:
      throw new RunnerError(`unsupported cursor operation ${op.name}`);
  }
}

/** Runs an entity operation (not a testRunner one) and returns its result. */
export async function runEntityOperation(ctx: OpContext, op: Operation): Promise<OpOutcome> {
  const target = ctx.entities.entity(op.object);
  switch (target.kind) {
    case "collection":
      return collectionOp(ctx, op, target.coll, target.client);
    case "database":
      return databaseOp(ctx, op, target.db, target.client);
    case "client":
      return clientOp(ctx, op, target);
    case "session":
      return sessionOp(ctx, op, target.session);
    case "cursor":
      return cursorOp(ctx, op, target.cursor);
    default:
      throw new RunnerError(`entity ${op.object} (${target.kind}) has no operations`);
  }
}

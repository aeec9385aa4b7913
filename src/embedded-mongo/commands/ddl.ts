// Databases, collections and indexes: create, drop, dropDatabase, createIndexes, listIndexes,
// dropIndexes, listCollections, listDatabases, renameCollection, dbStats, collStats.

import { type Document, calculateObjectSize } from "bson";
import { validatePipeline } from "../aggregate";
import type { Collection } from "../collection";
import { type OpContext, validateCollectionName, viewError } from "../engine";
import { CommandError, ErrorCode, badValue, namespaceNotFound } from "../errors";
import { type IndexSpec, normalizeIndexSpec } from "../indexes";
import { compileFilter } from "../query";
import { isPlainObject } from "../values";
import type { CommandContext, CommandSpec } from "./context";
import { collectionName } from "./crud";

function create(cmd: Document, ctx: CommandContext): Document {
  const name = collectionName(cmd, "create");
  const options: Document = {};
  // The dispatcher has refused what the engine does not implement; the rest is stored as given.
  for (const [k, v] of Object.entries(cmd)) if (CREATE_OPTIONS.includes(k) || k === "capped" || k === "collation" || k === "validator") options[k] = v;
  if (options.viewOn !== undefined) {
    if (typeof options.viewOn !== "string" || options.viewOn === "") throw badValue("'viewOn' must be a non-empty string");
    options.pipeline = validatePipeline(options.pipeline ?? []);
  } else if (options.pipeline !== undefined) {
    throw badValue("'pipeline' requires 'viewOn' to also be specified");
  }
  ctx.engine.createCollection(ctx, name, options);
  return { ok: 1 };
}

function drop(cmd: Document, ctx: CommandContext): Document {
  const name = collectionName(cmd, "drop");
  const coll = ctx.engine.getCollection(ctx.db, name);
  if (!coll) throw namespaceNotFound();
  const nIndexesWas = coll.indexSpecs().length;
  ctx.engine.dropCollection(ctx, name);
  return { nIndexesWas, ns: coll.ns, ok: 1 };
}

function dropDatabase(_cmd: Document, ctx: CommandContext): Document {
  ctx.engine.dropDatabase(ctx);
  return { dropped: ctx.db, ok: 1 };
}

function createIndexes(cmd: Document, ctx: CommandContext): Document {
  const name = collectionName(cmd, "createIndexes");
  if (!Array.isArray(cmd.indexes) || cmd.indexes.length === 0) {
    throw new CommandError(ErrorCode.BadValue, "Must specify at least one index to create");
  }
  const specs: IndexSpec[] = cmd.indexes.map(normalizeIndexSpec);
  const existed = ctx.engine.collection(ctx, name);
  if (existed?.view) throw viewError(existed);
  const coll = ctx.engine.ensureCollection(ctx, name);
  const before = coll.indexSpecs().length;
  let created = 0;
  for (const spec of specs) if (ctx.engine.createIndex(ctx, coll, spec)) created++;
  const reply: Document = {
    numIndexesBefore: before,
    numIndexesAfter: coll.indexSpecs().length,
    createdCollectionAutomatically: !existed,
  };
  if (created === 0) reply.note = "all indexes already exist";
  reply.ok = 1;
  return reply;
}

function listIndexes(cmd: Document, ctx: CommandContext): Document {
  const name = collectionName(cmd, "listIndexes");
  const coll = ctx.engine.getCollection(ctx.db, name);
  if (!coll) throw namespaceNotFound(`ns does not exist: ${ctx.db}.${name}`);
  if (coll.view) throw viewError(coll);
  const batchSize = isPlainObject(cmd.cursor) ? (cmd.cursor.batchSize as number | undefined) : undefined;
  return { cursor: ctx.engine.cursors.open(coll.ns, coll.indexSpecs(), { batchSize }), ok: 1 };
}

function dropIndexes(cmd: Document, ctx: CommandContext): Document {
  const name = collectionName(cmd, "dropIndexes" in cmd ? "dropIndexes" : "deleteIndexes");
  const coll = ctx.engine.getCollection(ctx.db, name);
  if (!coll) throw namespaceNotFound();
  if (coll.view) throw viewError(coll);
  const nIndexesWas = coll.indexSpecs().length;
  for (const indexName of indexesToDrop(coll, cmd.index)) ctx.engine.dropIndex(ctx, coll, indexName);
  return { nIndexesWas, ok: 1 };
}

function indexesToDrop(coll: Collection, which: unknown): string[] {
  if (which === "*") return [...coll.indexes.keys()];
  const names = Array.isArray(which) ? which : [which];
  return names.map((w) => {
    if (w === "_id_") throw new CommandError(ErrorCode.InvalidOptions, "cannot drop _id index");
    if (typeof w === "string") {
      if (!coll.indexes.has(w)) throw new CommandError(ErrorCode.IndexNotFound, `index not found with name [${w}]`);
      return w;
    }
    if (isPlainObject(w)) {
      const match = [...coll.indexes.values()].find((i) => JSON.stringify(i.keyPattern) === JSON.stringify(w));
      if (!match) throw new CommandError(ErrorCode.IndexNotFound, `can't find index with key: ${JSON.stringify(w)}`);
      return match.name;
    }
    throw new CommandError(ErrorCode.TypeMismatch, "index must be a string, an object or an array of strings");
  });
}

function collectionInfo(coll: Collection): Document {
  const view = coll.view;
  if (view) {
    return { name: coll.name, type: "view", options: { viewOn: view.viewOn, pipeline: view.pipeline }, info: { readOnly: true } };
  }
  return {
    name: coll.name,
    type: "collection",
    options: coll.options,
    info: { readOnly: false, uuid: coll.uuid },
    idIndex: { v: 2, key: { _id: 1 }, name: "_id_" },
  };
}

function listCollections(cmd: Document, ctx: CommandContext): Document {
  const filter = isPlainObject(cmd.filter) ? cmd.filter : undefined;
  const matcher = compileFilter(filter);
  const colls = [...(ctx.engine.databases.get(ctx.db)?.values() ?? [])];
  let docs = colls.map(collectionInfo).filter((d) => matcher.test(d));
  if (cmd.nameOnly === true) docs = docs.map((d) => ({ name: d.name, type: d.type }));
  const batchSize = isPlainObject(cmd.cursor) ? (cmd.cursor.batchSize as number | undefined) : undefined;
  return { cursor: ctx.engine.cursors.open(`${ctx.db}.$cmd.listCollections`, docs, { batchSize }), ok: 1 };
}

function databaseSize(colls: Iterable<Collection>): number {
  let bytes = 0;
  for (const c of colls) for (const d of c.docs.values()) bytes += calculateObjectSize(d);
  return bytes;
}

function listDatabases(cmd: Document, ctx: CommandContext): Document {
  const filter = isPlainObject(cmd.filter) ? compileFilter(cmd.filter) : null;
  const nameOnly = cmd.nameOnly === true;
  let totalSize = 0;
  const databases: Document[] = [];
  for (const [name, colls] of ctx.engine.databases) {
    const doc: Document = nameOnly ? { name } : { name, sizeOnDisk: databaseSize(colls.values()), empty: false };
    if (filter && !filter.test(doc)) continue;
    totalSize += (doc.sizeOnDisk as number | undefined) ?? 0;
    databases.push(doc);
  }
  return nameOnly ? { databases, ok: 1 } : { databases, totalSize, totalSizeMb: Math.floor(totalSize / 1024 / 1024), ok: 1 };
}

function splitNamespace(ns: unknown, field: string): { db: string; coll: string } {
  if (typeof ns !== "string" || !ns.includes(".")) throw new CommandError(ErrorCode.InvalidNamespace, `Invalid namespace specified for '${field}'`);
  const dot = ns.indexOf(".");
  return { db: ns.slice(0, dot), coll: ns.slice(dot + 1) };
}

/** renameCollection (admin): moves documents and indexes, journaled as create + puts + drop. */
function renameCollection(cmd: Document, ctx: CommandContext): Document {
  const from = splitNamespace(cmd.renameCollection, "renameCollection");
  const to = splitNamespace(cmd.to, "to");
  const source = ctx.engine.getCollection(from.db, from.coll);
  if (!source) throw namespaceNotFound("Source collection does not exist");
  if (source.view) throw viewError(source);
  validateCollectionName(to.db, to.coll);
  const toCtx: OpContext = { ...ctx, db: to.db };
  if (ctx.engine.getCollection(to.db, to.coll)) {
    if (cmd.dropTarget !== true) throw new CommandError(ErrorCode.NamespaceExists, "target namespace exists");
    ctx.engine.dropCollection(toCtx, to.coll);
  }
  const target = ctx.engine.createCollection(toCtx, to.coll, source.options);
  for (const index of source.indexes.values()) ctx.engine.createIndex(toCtx, target, index.spec);
  const access = ctx.engine.accessTo(toCtx, target);
  for (const doc of source.docs.values()) access.insert(doc);
  ctx.engine.dropCollection({ ...ctx, db: from.db }, from.coll);
  return { ok: 1 };
}

function dbStats(_cmd: Document, ctx: CommandContext): Document {
  const colls = [...(ctx.engine.databases.get(ctx.db)?.values() ?? [])];
  const objects = colls.reduce((n, c) => n + c.docs.size, 0);
  const dataSize = databaseSize(colls);
  return {
    db: ctx.db,
    collections: colls.filter((c) => !c.view).length,
    views: colls.filter((c) => c.view).length,
    objects,
    avgObjSize: objects ? dataSize / objects : 0,
    dataSize,
    storageSize: dataSize,
    indexes: colls.reduce((n, c) => n + c.indexSpecs().length, 0),
    ok: 1,
  };
}

function collStats(cmd: Document, ctx: CommandContext): Document {
  const name = collectionName(cmd, "collStats");
  const coll = ctx.engine.getCollection(ctx.db, name);
  if (!coll) throw namespaceNotFound(`Collection [${ctx.db}.${name}] not found.`);
  const size = databaseSize([coll]);
  return { ns: coll.ns, count: coll.docs.size, size, storageSize: size, nindexes: coll.indexSpecs().length, ok: 1 };
}

const CREATE_OPTIONS = ["viewOn", "pipeline", "validationLevel", "validationAction", "storageEngine", "indexOptionDefaults", "idIndex"];

export const ddlCommands: Record<string, CommandSpec> = {
  create: { handler: create, inTransaction: true, options: CREATE_OPTIONS },
  drop: { handler: drop, options: [] },
  dropDatabase: { handler: dropDatabase, options: [] },
  createIndexes: { handler: createIndexes, inTransaction: true, options: ["indexes", "commitQuorum"] },
  listIndexes: { handler: listIndexes, options: ["cursor"] },
  dropIndexes: { handler: dropIndexes, options: ["index"] },
  deleteIndexes: { handler: dropIndexes, options: ["index"] },
  listCollections: { handler: listCollections, options: ["filter", "nameOnly", "cursor", "authorizedCollections"] },
  listDatabases: { handler: listDatabases, options: ["filter", "nameOnly", "authorizedDatabases"] },
  renameCollection: { handler: renameCollection, options: ["to", "dropTarget"] },
  dbStats: { handler: dbStats, options: [] },
  collStats: { handler: collStats, options: [] },
};

// One collection's committed state: documents keyed by the canonical form of their _id, its
// secondary indexes, and the query planner that picks an index for a filter.
// Stored documents are never mutated in place: updates store a new object, so cursors,
// transaction overlays and journal snapshots can hold references safely.

import type { Binary, Document } from "bson";
import { UUID } from "bson";
import { CommandError, ErrorCode, badValue } from "./errors";
import type { History, Version } from "./history";
import { ID_INDEX_SPEC, Index, type IndexKey, type IndexSpec, sameIndexOptions } from "./indexes";
import { equalityConstraints } from "./query";
import { bsonTypeOf, canonicalKey, formatValue, isPlainObject } from "./values";

/** Counts modifications so transactions can detect writes that raced with theirs. */
export class ChangeClock {
  seq = 0;
  /** Only recorded while transactions are open; see Collection.lastChange. */
  tracking = false;
  /** Set while older versions are kept (history.ts); null otherwise, so a write pays one check. */
  history: History | null = null;
}

export type QueryPlan =
  | { kind: "id"; keys: string[] }
  | { kind: "index"; index: Index; keys: string[]; prefix: boolean }
  | { kind: "scan" };

export interface ViewDefinition {
  viewOn: string;
  pipeline: Document[];
}

export class Collection {
  readonly dbName: string;
  readonly name: string;
  readonly uuid: Binary;
  /** Options given to `create` (viewOn/pipeline for views, validator, ...). */
  readonly options: Document;
  readonly docs = new Map<string, Document>();
  readonly indexes = new Map<string, Index>();
  private readonly clock: ChangeClock;
  /** docKey → clock.seq of its last modification, while clock.tracking. */
  private readonly changes = new Map<string, number>();
  /** docKey → the versions it had before, oldest first (history.ts); null while none are kept. */
  versions: Map<string, Version[]> | null = null;
  /** The cluster time (history.timeValue) of the newest kept version: reads at or after it see `docs`. */
  lastVersion = 0;

  constructor(dbName: string, name: string, options: Document, clock: ChangeClock) {
    this.dbName = dbName;
    this.name = name;
    this.options = options;
    this.clock = clock;
    this.uuid = new UUID().toBinary();
  }

  get ns(): string {
    return `${this.dbName}.${this.name}`;
  }

  get view(): ViewDefinition | null {
    if (typeof this.options.viewOn !== "string") return null;
    return { viewOn: this.options.viewOn, pipeline: (this.options.pipeline as Document[] | undefined) ?? [] };
  }

  /** The sequence number of the last change to a document, or 0 (see ChangeClock). */
  lastChange(key: string): number {
    return this.changes.get(key) ?? 0;
  }

  forgetChanges(): void {
    this.changes.clear();
  }

  private touch(key: string): void {
    if (this.clock.tracking) this.changes.set(key, ++this.clock.seq);
  }

  get(key: string): Document | undefined {
    return this.docs.get(key);
  }

  // ---- reads as of a cluster time (the caller checked it is not older than the history) -------

  /** True when the documents as of `at` are the current ones (nothing kept was replaced after it). */
  currentAt(at: number): boolean {
    return this.versions === null || this.versions.size === 0 || this.lastVersion <= at;
  }

  getAt(key: string, at: number): Document | undefined {
    const list = this.versions?.get(key);
    if (list) for (const v of list) if (v.until > at) return v.doc;
    return this.docs.get(key);
  }

  /** True when a kept version shows the document changed after `at`. */
  changedAfter(key: string, at: number): boolean {
    const list = this.versions?.get(key);
    return list !== undefined && list[list.length - 1].until > at;
  }

  hasAt(key: string, at: number): boolean {
    return this.getAt(key, at) !== undefined;
  }

  *scanAt(at: number): Iterable<[string, Document]> {
    const versions = this.versions;
    if (versions === null || this.currentAt(at)) {
      yield* this.docs;
      return;
    }
    for (const [key, doc] of this.docs) {
      if (!versions.has(key)) yield [key, doc];
      else {
        const then = this.getAt(key, at);
        if (then) yield [key, then];
      }
    }
    for (const key of versions.keys()) {
      if (this.docs.has(key)) continue;
      const then = this.getAt(key, at);
      if (then) yield [key, then];
    }
  }

  countAt(at: number): number {
    let n = this.docs.size;
    if (this.versions === null || this.currentAt(at)) return n;
    for (const key of this.versions.keys()) n += (this.hasAt(key, at) ? 1 : 0) - (this.docs.has(key) ? 1 : 0);
    return n;
  }

  /** What a plan selects as of `at`: the indexes know the current documents, so every versioned key is offered too. */
  *candidatesAt(plan: QueryPlan, at: number): Iterable<[string, Document]> {
    const keys = this.planKeys(plan);
    if (keys === null) {
      yield* this.scanAt(at);
      return;
    }
    const seen = new Set<string>();
    for (const key of keys) {
      seen.add(key);
      const doc = this.getAt(key, at);
      if (doc) yield [key, doc];
    }
    if (this.versions === null || this.currentAt(at) || plan.kind === "id") return;
    for (const key of this.versions.keys()) {
      if (seen.has(key)) continue;
      const doc = this.getAt(key, at);
      if (doc) yield [key, doc];
    }
  }

  /** All index specs, _id first, as listIndexes reports them. */
  indexSpecs(): IndexSpec[] {
    return [ID_INDEX_SPEC, ...[...this.indexes.values()].map((i) => i.spec)];
  }

  // ---- constraint checks -------------------------------------------------------------------

  /** Throws a duplicate-key error if `doc` (stored under `key`) would violate a unique index. */
  checkUnique(doc: Document, key: string, isNew: boolean): void {
    if (isNew && this.docs.has(key)) throw this.duplicateKey("_id_", { _id: 1 }, { _id: doc._id });
    for (const index of this.indexes.values()) {
      index.validate(doc);
      const conflict = index.findConflict(doc, key);
      if (conflict) throw this.duplicateKey(index.name, index.keyPattern, keyValue(index, conflict));
    }
  }

  duplicateKey(indexName: string, keyPattern: Document, value: Document): CommandError {
    return new CommandError(
      ErrorCode.DuplicateKey,
      `E11000 duplicate key error collection: ${this.ns} index: ${indexName} dup key: ${formatValue(value)}`,
      { extra: { keyPattern, keyValue: value } },
    );
  }

  // ---- mutations (callers journal them) ------------------------------------------------------

  insert(doc: Document): string {
    const key = documentKey(doc._id);
    this.checkUnique(doc, key, true);
    this.clock.history?.record(this, key, undefined);
    this.store(key, doc);
    return key;
  }

  /** Replaces the document stored under `key` with `doc` (same _id). */
  replace(key: string, doc: Document): void {
    const old = this.docs.get(key);
    if (!old) throw new CommandError(ErrorCode.InternalError, `document ${key} vanished during update`);
    this.checkUnique(doc, key, false);
    this.clock.history?.record(this, key, old);
    for (const index of this.indexes.values()) index.remove(key, old);
    this.docs.set(key, doc);
    for (const index of this.indexes.values()) index.add(key, doc);
    this.touch(key);
  }

  remove(key: string): Document | undefined {
    const old = this.docs.get(key);
    if (!old) return undefined;
    this.clock.history?.record(this, key, old);
    for (const index of this.indexes.values()) index.remove(key, old);
    this.docs.delete(key);
    this.touch(key);
    return old;
  }

  /** Insert-or-replace without constraint checks: journal replay converges through transient states. */
  putUnchecked(doc: Document): void {
    const key = documentKey(doc._id);
    const old = this.docs.get(key);
    this.clock.history?.record(this, key, old);
    if (old) for (const index of this.indexes.values()) index.remove(key, old);
    this.store(key, doc);
  }

  private store(key: string, doc: Document): void {
    this.docs.set(key, doc);
    for (const index of this.indexes.values()) index.add(key, doc);
    this.touch(key);
  }

  // ---- index management --------------------------------------------------------------------

  /** Builds an index over the existing documents; returns false if an identical one exists. */
  createIndex(spec: IndexSpec, options: { checkUnique?: boolean } = {}): boolean {
    // The _id index always exists; asking for it again is a no-op, as in mongod.
    if (canonicalKey(spec.key) === canonicalKey({ _id: 1 })) return false;
    const sameName = this.indexes.get(spec.name);
    if (sameName) {
      if (sameIndexOptions(sameName.spec, spec)) return false;
      throw new CommandError(
        ErrorCode.IndexKeySpecsConflict,
        `An existing index has the same name as the requested index. When index names are not specified, they are auto generated and can cause conflicts. Please refer to our documentation. Requested index: ${formatValue(spec)}, existing index: ${formatValue(sameName.spec)}`,
      );
    }
    for (const other of this.indexes.values()) {
      if (canonicalKey(other.keyPattern) === canonicalKey(spec.key)) {
        if (sameIndexOptions(other.spec, spec)) {
          throw new CommandError(
            ErrorCode.IndexOptionsConflict,
            `Index already exists with a different name: ${other.name}`,
          );
        }
        throw new CommandError(
          ErrorCode.IndexOptionsConflict,
          `An equivalent index already exists with the same name but different options. Requested index: ${formatValue(spec)}, existing index: ${formatValue(other.spec)}`,
        );
      }
    }
    const index = new Index(spec);
    for (const [key, doc] of this.docs) {
      if (options.checkUnique !== false) {
        index.validate(doc);
        const conflict = index.findConflict(doc, key);
        if (conflict) throw this.duplicateKey(index.name, index.keyPattern, keyValue(index, conflict));
      }
      index.add(key, doc);
    }
    this.indexes.set(spec.name, index);
    return true;
  }

  dropIndex(name: string): void {
    if (!this.indexes.delete(name)) throw new CommandError(ErrorCode.IndexNotFound, `index not found with name [${name}]`);
  }

  /** Resolves a hint (index name or key pattern) to an index name; throws BadValue if none matches. */
  resolveHint(hint: unknown): string | null {
    if (hint === undefined || hint === null) return null;
    if (typeof hint === "string") {
      if (hint === "_id_" || this.indexes.has(hint)) return hint;
    } else if (isPlainObject(hint)) {
      if ("$natural" in hint) return "$natural";
      const k = canonicalKey(hint);
      if (k === canonicalKey({ _id: 1 })) return "_id_";
      for (const index of this.indexes.values()) if (canonicalKey(index.keyPattern) === k) return index.name;
    } else {
      throw badValue("hint must be a string or an object");
    }
    throw badValue("error processing query: planner returned error :: caused by :: hint provided does not correspond to an existing index");
  }

  // ---- planning ----------------------------------------------------------------------------

  /** Picks the cheapest index answering the filter's equality constraints, or a collection scan. */
  plan(filter: Document | undefined, hintName: string | null = null): QueryPlan {
    if (hintName === "$natural") return { kind: "scan" };
    const eq = equalityConstraints(filter);
    if (eq.size === 0) return { kind: "scan" };
    const ids = eq.get("_id");
    if (ids && (hintName === null || hintName === "_id_")) {
      return { kind: "id", keys: [...new Set(ids.map(documentKey))] };
    }
    let best: { plan: QueryPlan; cost: number } | null = null;
    for (const index of this.indexes.values()) {
      if (!index.servesEquality || !index.covers(eq)) continue;
      if (hintName !== null && index.name !== hintName) continue;
      const fieldValues = index.fields.map((f) => eq.get(f.path));
      let plan: QueryPlan | null = null;
      if (fieldValues.every((v) => v !== undefined) && product(fieldValues as unknown[][]) <= 1000) {
        const keys = cartesian(fieldValues as unknown[][]).map((combo) => Index.joinKey(combo.map(canonicalKey)));
        plan = { kind: "index", index, keys, prefix: false };
      } else if (fieldValues[0] !== undefined) {
        plan = { kind: "index", index, keys: [...new Set(fieldValues[0].map(canonicalKey))], prefix: true };
      }
      if (!plan) continue;
      const cost = this.planCost(plan);
      if (!best || cost < best.cost) best = { plan, cost };
    }
    return best?.plan ?? { kind: "scan" };
  }

  private planCost(plan: QueryPlan): number {
    if (plan.kind !== "index") return plan.kind === "id" ? 0 : this.docs.size;
    const sets = plan.prefix ? plan.index.lookupLead(plan.keys) : plan.index.lookup(plan.keys);
    return sets.reduce((n, s) => n + s.size, 0);
  }

  /** Document keys a plan yields (deduplicated), in index order, or null for a full scan. */
  planKeys(plan: QueryPlan): Iterable<string> | null {
    switch (plan.kind) {
      case "scan":
        return null;
      case "id":
        return plan.keys;
      case "index": {
        const sets = plan.prefix ? plan.index.lookupLead(plan.keys) : plan.index.lookup(plan.keys);
        if (sets.length === 1) return [...sets[0]];
        const out = new Set<string>();
        for (const s of sets) for (const k of s) out.add(k);
        return out;
      }
    }
  }
}

/** The storage key of a document: the canonical form of its _id. */
export function documentKey(id: unknown): string {
  return canonicalKey(id);
}

/** Validates an _id value as mongod does on insert. */
export function validateId(id: unknown): void {
  if (Array.isArray(id)) throw new CommandError(ErrorCode.InvalidIdField, `The '_id' value cannot be of type array`);
  if (id instanceof RegExp || bsonTypeOf(id) === "BSONRegExp") {
    throw new CommandError(ErrorCode.InvalidIdField, "can't use a regex for _id");
  }
  if (id === undefined) throw new CommandError(ErrorCode.InvalidIdField, "can't use undefined for _id");
}

function keyValue(index: Index, key: IndexKey): Document {
  const out: Document = {};
  index.fields.forEach((f, i) => {
    out[f.path] = key.values[i] === undefined ? null : key.values[i];
  });
  return out;
}

function product(lists: unknown[][]): number {
  return lists.reduce((n, l) => n * l.length, 1);
}

function cartesian(lists: unknown[][]): unknown[][] {
  let out: unknown[][] = [[]];
  for (const l of lists) out = out.flatMap((c) => l.map((v) => [...c, v]));
  return out;
}

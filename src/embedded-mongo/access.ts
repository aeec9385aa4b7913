// How a command sees one collection: directly (writes applied and journaled at once), through a
// transaction overlay (transactions.ts), or as of an earlier cluster time (a snapshot read).
// Commands are written against this interface.

import type { Document } from "bson";
import type { Collection, QueryPlan } from "./collection";
import { CommandError, ErrorCode } from "./errors";
import type { JournalOp } from "./journal";

export interface CollectionAccess {
  readonly collection: Collection;
  /** True when what it reads differs from what the indexes cover (uncommitted writes, older versions). */
  readonly hasPendingWrites: boolean;
  get(key: string): Document | undefined;
  count(): number;
  /** Every document in natural order. */
  scan(): Iterable<[string, Document]>;
  /** The documents a plan selects (a superset of the matches; the caller still filters). */
  candidates(plan: QueryPlan): Iterable<[string, Document]>;
  insert(doc: Document): void;
  replace(key: string, doc: Document): void;
  remove(key: string): void;
}

/** Outside transactions: writes go straight to the collection and into the command's journal batch. */
export class DirectAccess implements CollectionAccess {
  readonly collection: Collection;
  readonly hasPendingWrites = false;
  private readonly journal: JournalOp[];

  constructor(collection: Collection, journal: JournalOp[]) {
    this.collection = collection;
    this.journal = journal;
  }

  get(key: string): Document | undefined {
    return this.collection.get(key);
  }

  count(): number {
    return this.collection.docs.size;
  }

  scan(): Iterable<[string, Document]> {
    return this.collection.docs;
  }

  *candidates(plan: QueryPlan): Iterable<[string, Document]> {
    const keys = this.collection.planKeys(plan);
    if (keys === null) {
      yield* this.collection.docs;
      return;
    }
    for (const key of keys) {
      const doc = this.collection.docs.get(key);
      if (doc) yield [key, doc];
    }
  }

  insert(doc: Document): void {
    this.collection.insert(doc);
    this.journal.push({ op: "put", db: this.collection.dbName, coll: this.collection.name, doc });
  }

  replace(key: string, doc: Document): void {
    this.collection.replace(key, doc);
    this.journal.push({ op: "put", db: this.collection.dbName, coll: this.collection.name, doc });
  }

  remove(key: string): void {
    const old = this.collection.remove(key);
    if (old) this.journal.push({ op: "del", db: this.collection.dbName, coll: this.collection.name, id: old._id });
  }
}

/** A snapshot read at an earlier cluster time (history.ts): read-only. */
export class SnapshotAccess implements CollectionAccess {
  readonly collection: Collection;
  private readonly at: number;

  constructor(collection: Collection, at: number) {
    this.collection = collection;
    this.at = at;
  }

  get hasPendingWrites(): boolean {
    return !this.collection.currentAt(this.at);
  }

  get(key: string): Document | undefined {
    return this.collection.getAt(key, this.at);
  }

  count(): number {
    return this.collection.countAt(this.at);
  }

  scan(): Iterable<[string, Document]> {
    return this.collection.scanAt(this.at);
  }

  candidates(plan: QueryPlan): Iterable<[string, Document]> {
    return this.collection.candidatesAt(plan, this.at);
  }

  insert(): void {
    throw readOnly();
  }

  replace(): void {
    throw readOnly();
  }

  remove(): void {
    throw readOnly();
  }
}

function readOnly(): CommandError {
  return new CommandError(ErrorCode.InvalidOptions, "writes are not allowed with readConcern level snapshot and atClusterTime");
}

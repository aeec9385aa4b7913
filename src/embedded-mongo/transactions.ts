// Multi-document transactions. A transaction buffers its writes in a per-collection overlay that
// only its own reads see; commit applies the overlay to the collections in one step (and one
// journal batch), abort or session end drops it.
//
// Isolation: snapshot. Reads see the data as of the transaction's start (the older versions
// history.ts keeps while it is open) plus its own writes. Writes follow MongoDB's first-writer-wins
// rule: writing a document that another open transaction has written, or that anyone changed
// since this transaction started, fails with WriteConflict (112, TransientTransactionError), so
// the driver's withTransaction retries.

import type { Document, Timestamp } from "bson";
import type { CollectionAccess } from "./access";
import type { ChangeClock, Collection, QueryPlan } from "./collection";
import { documentKey } from "./collection";
import { timeValue } from "./history";
import { CommandError, ErrorCode } from "./errors";
import type { JournalOp } from "./journal";

export const TRANSIENT_TRANSACTION_ERROR = "TransientTransactionError";
/** MongoDB's transactionLifetimeLimitSeconds default. */
export const TRANSACTION_LIFETIME_MS = 60_000;

export type TransactionState = "inProgress" | "committed" | "aborted";

interface Overlay {
  collection: Collection;
  /** docKey → the transaction's version of the document (null: deleted). */
  docs: Map<string, Document | null>;
  /** docKey → _id of the documents it deleted (the journal deletes by _id). */
  deletedIds: Map<string, unknown>;
}

export class Transaction {
  readonly txnNumber: number;
  readonly sessionKey: string;
  readonly startedAt = Date.now();
  /** The change clock when the transaction started: later changes to a written document conflict. */
  readonly startSeq: number;
  /** The cluster time its reads see the data as of (readTime: history.timeValue of it). */
  readonly readTimestamp: Timestamp;
  readonly readTime: number;
  state: TransactionState = "inProgress";
  readonly overlays = new Map<Collection, Overlay>();
  /** Collections it created (ns → collection), registered in the catalog at commit. */
  readonly newCollections = new Map<string, Collection>();
  /** The journal ops of its DDL (createColl, createIndex), journaled at commit before its writes. */
  readonly ddl: JournalOp[] = [];

  constructor(txnNumber: number, sessionKey: string, startSeq: number, readTimestamp: Timestamp) {
    this.txnNumber = txnNumber;
    this.sessionKey = sessionKey;
    this.startSeq = startSeq;
    this.readTimestamp = readTimestamp;
    this.readTime = timeValue(readTimestamp);
  }

  overlayFor(collection: Collection): Overlay {
    let o = this.overlays.get(collection);
    if (!o) this.overlays.set(collection, (o = { collection, docs: new Map(), deletedIds: new Map() }));
    return o;
  }
}

export function writeConflict(): CommandError {
  return new CommandError(
    ErrorCode.WriteConflict,
    "Write conflict during plan execution and yielding is disabled. :: Please retry your operation or multi-document transaction.",
    { errorLabels: [TRANSIENT_TRANSACTION_ERROR] },
  );
}

export class TransactionManager {
  private readonly clock: ChangeClock;
  private readonly open = new Set<Transaction>();
  /** ns + docKey → the open transaction that wrote it. */
  private readonly locks = new Map<string, Transaction>();
  /** Called when the last open transaction ends, so collections can drop their change records. */
  private readonly onIdle: () => void;

  constructor(clock: ChangeClock, onIdle: () => void) {
    this.clock = clock;
    this.onIdle = onIdle;
  }

  get openCount(): number {
    return this.open.size;
  }

  /** Use Engine.beginTransaction, which also keeps the history the transaction reads. */
  begin(txnNumber: number, sessionKey: string, readTimestamp: Timestamp): Transaction {
    this.clock.tracking = true;
    const txn = new Transaction(txnNumber, sessionKey, this.clock.seq, readTimestamp);
    this.open.add(txn);
    return txn;
  }

  /** The earliest cluster time an open transaction reads at (Infinity when none is open). */
  oldestReadTime(): number {
    let t = Infinity;
    for (const txn of this.open) if (txn.readTime < t) t = txn.readTime;
    return t;
  }

  access(txn: Transaction, collection: Collection): CollectionAccess {
    return new TransactionAccess(collection, txn, this);
  }

  /** Claims a document for a transaction's write, or throws WriteConflict. */
  lock(txn: Transaction, collection: Collection, key: string): void {
    const lockKey = `${collection.ns}\u0000${key}`;
    const holder = this.locks.get(lockKey);
    if (holder && holder !== txn) throw writeConflict();
    if (collection.lastChange(key) > txn.startSeq || collection.changedAfter(key, txn.readTime)) throw writeConflict();
    this.locks.set(lockKey, txn);
  }

  /**
   * Applies the transaction's writes to the collections atomically: on any failure (a conflict
   * with a write that raced it, a unique index now violated) nothing is applied and the
   * transaction is aborted. Returns the journal ops of the commit.
   */
  commit(txn: Transaction, isLive: (c: Collection) => boolean): JournalOp[] {
    if (txn.state !== "inProgress") return [];
    try {
      for (const overlay of txn.overlays.values()) {
        if (!isLive(overlay.collection)) throw writeConflict();
        for (const key of overlay.docs.keys()) {
          if (overlay.collection.lastChange(key) > txn.startSeq || overlay.collection.changedAfter(key, txn.readTime)) throw writeConflict();
        }
      }
      const ops = applyAtomically([...txn.overlays.values()]);
      txn.state = "committed";
      return ops;
    } catch (err) {
      txn.state = "aborted";
      throw err;
    } finally {
      this.release(txn);
    }
  }

  abort(txn: Transaction): void {
    if (txn.state === "inProgress") txn.state = "aborted";
    txn.overlays.clear();
    txn.newCollections.clear();
    txn.ddl.length = 0;
    this.release(txn);
  }

  /** Aborts transactions open longer than MongoDB's lifetime limit. */
  expire(now = Date.now()): void {
    for (const txn of [...this.open]) if (now - txn.startedAt > TRANSACTION_LIFETIME_MS) this.abort(txn);
  }

  private release(txn: Transaction): void {
    for (const [k, holder] of this.locks) if (holder === txn) this.locks.delete(k);
    this.open.delete(txn);
    if (this.open.size === 0) {
      this.clock.tracking = false;
      this.onIdle();
    }
  }
}

/**
 * Removes every old version first and then stores every new one, so swaps of unique values
 * inside one transaction succeed; on a unique violation everything is put back.
 */
function applyAtomically(overlays: Overlay[]): JournalOp[] {
  const undo: (() => void)[] = [];
  const ops: JournalOp[] = [];
  try {
    for (const { collection, docs } of overlays) {
      for (const key of docs.keys()) {
        const old = collection.remove(key);
        if (old) undo.push(() => collection.putUnchecked(old));
      }
    }
    for (const { collection, docs, deletedIds } of overlays) {
      for (const [key, doc] of docs) {
        if (doc) {
          collection.insert(doc);
          undo.push(() => collection.remove(key));
          ops.push({ op: "put", db: collection.dbName, coll: collection.name, doc });
        } else {
          ops.push({ op: "del", db: collection.dbName, coll: collection.name, id: deletedIds.get(key) });
        }
      }
    }
    return ops;
  } catch (err) {
    for (const u of undo.reverse()) u();
    throw err;
  }
}

class TransactionAccess implements CollectionAccess {
  readonly collection: Collection;
  private readonly txn: Transaction;
  private readonly manager: TransactionManager;

  constructor(collection: Collection, txn: Transaction, manager: TransactionManager) {
    this.collection = collection;
    this.txn = txn;
    this.manager = manager;
  }

  private get overlay(): Map<string, Document | null> | undefined {
    return this.txn.overlays.get(this.collection)?.docs;
  }

  get hasPendingWrites(): boolean {
    return (this.overlay?.size ?? 0) > 0 || !this.collection.currentAt(this.txn.readTime);
  }

  get(key: string): Document | undefined {
    const o = this.overlay;
    if (o?.has(key)) return o.get(key) ?? undefined;
    return this.collection.getAt(key, this.txn.readTime);
  }

  count(): number {
    const at = this.txn.readTime;
    let n = this.collection.countAt(at);
    for (const [key, doc] of this.overlay ?? []) {
      const inBase = this.collection.hasAt(key, at);
      if (inBase && !doc) n--;
      if (!inBase && doc) n++;
    }
    return n;
  }

  *scan(): Iterable<[string, Document]> {
    const o = this.overlay;
    const at = this.txn.readTime;
    if (!o || o.size === 0) {
      yield* this.collection.scanAt(at);
      return;
    }
    for (const [key, doc] of this.collection.scanAt(at)) {
      if (!o.has(key)) yield [key, doc];
      else {
        const mine = o.get(key);
        if (mine) yield [key, mine];
      }
    }
    for (const [key, doc] of o) if (doc && !this.collection.hasAt(key, at)) yield [key, doc];
  }

  *candidates(plan: QueryPlan): Iterable<[string, Document]> {
    const keys = this.collection.planKeys(plan);
    if (keys === null) {
      yield* this.scan();
      return;
    }
    const o = this.overlay;
    const seen = new Set<string>();
    for (const key of keys) {
      const doc = this.get(key);
      seen.add(key);
      if (doc) yield [key, doc];
    }
    // The indexes only know the current committed documents: offer the older versions this
    // transaction reads and its own writes too (the caller filters).
    const versions = this.collection.versions;
    if (versions && plan.kind !== "id" && !this.collection.currentAt(this.txn.readTime)) {
      for (const key of versions.keys()) {
        if (seen.has(key)) continue;
        seen.add(key);
        const doc = this.get(key);
        if (doc) yield [key, doc];
      }
    }
    for (const [key, doc] of o ?? []) if (doc && !seen.has(key)) yield [key, doc];
  }

  insert(doc: Document): void {
    const key = documentKey(doc._id);
    if (this.get(key)) throw this.collection.duplicateKey("_id_", { _id: 1 }, { _id: doc._id });
    this.write(key, doc);
  }

  replace(key: string, doc: Document): void {
    this.write(key, doc);
  }

  remove(key: string): void {
    const current = this.get(key);
    if (!current) return;
    this.manager.lock(this.txn, this.collection, key);
    const overlay = this.txn.overlayFor(this.collection);
    overlay.deletedIds.set(key, current._id);
    overlay.docs.set(key, null);
  }

  private write(key: string, doc: Document): void {
    this.checkUnique(doc, key);
    this.manager.lock(this.txn, this.collection, key);
    this.txn.overlayFor(this.collection).docs.set(key, doc);
  }

  /** Unique indexes over committed data as this transaction sees it, plus its own pending documents. */
  private checkUnique(doc: Document, key: string): void {
    const overlay = this.overlay;
    for (const index of this.collection.indexes.values()) {
      index.validate(doc);
      if (!index.unique) continue;
      for (const k of index.keysOf(doc)) {
        const conflict = (other: string): boolean => {
          if (other === key) return false;
          const theirs = this.get(other);
          return theirs !== undefined && index.keysOf(theirs).some((x) => x.str === k.str);
        };
        let clash = [...(index.holders(k.str) ?? [])].some(conflict);
        if (!clash && overlay) for (const other of overlay.keys()) if (conflict(other)) clash = true;
        if (clash) {
          const keyValue: Document = {};
          index.fields.forEach((f, i) => {
            keyValue[f.path] = k.values[i] ?? null;
          });
          throw this.collection.duplicateKey(index.name, index.keyPattern, keyValue);
        }
      }
    }
  }
}

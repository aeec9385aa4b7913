// The engine's state: databases and collections, sessions, transactions, cursors and the journal.
// Everything here is synchronous; server.ts feeds it one command at a time per connection.

import { type Document, Timestamp } from "bson";
import { type CollectionAccess, DirectAccess, SnapshotAccess } from "./access";
import { ChangeClock, Collection, documentKey } from "./collection";
import { CursorRegistry } from "./cursors";
import { CommandError, ErrorCode } from "./errors";
import { History, INCREMENT_BITS, SNAPSHOT_WINDOW_MS, snapshotTooOld, timeValue } from "./history";
import { type IndexSpec, normalizeIndexSpec } from "./indexes";
import { type FsyncPolicy, Journal, type JournalOp } from "./journal";
import type { Logger } from "./log";
import { type ServerSession, SessionRegistry } from "./sessions";
import { type Transaction, TransactionManager, writeConflict } from "./transactions";
import { isNumeric, numericValue } from "./values";

export interface EngineOptions {
  /** A directory for the journal, or undefined / ":memory:" for a purely in-memory engine. */
  dataDir?: string;
  fsync?: FsyncPolicy;
  compactAfterBytes?: number;
  /** How often expired TTL-index documents are deleted (mongod: every 60 s). */
  ttlMonitorIntervalMs?: number;
  log: Logger;
}

/** Counters reported by serverStatus (the tests read the compression ones through the driver). */
export interface ServerCounters {
  connectionsCurrent: number;
  connectionsTotal: number;
  bytesIn: number;
  bytesOut: number;
  requests: number;
  compressedIn: number;
  decompressedIn: number;
  compressedOut: number;
  uncompressedOut: number;
  compressedMessagesIn: number;
}

/** The per-command view of the engine: where it runs, in which session/transaction, what it journals. */
export interface OpContext {
  engine: Engine;
  db: string;
  session: ServerSession | null;
  txn: Transaction | null;
  /** Journal ops of this command, appended as one batch before the reply. */
  journal: JournalOp[];
  /** A snapshot read at an earlier cluster time (history.timeValue); null: the current data. */
  readAt?: number | null;
}

const TTL_MONITOR_INTERVAL_MS = 60_000;
const SWEEP_INTERVAL_MS = 30_000;

export class Engine {
  readonly databases = new Map<string, Map<string, Collection>>();
  readonly clock = new ChangeClock();
  readonly sessions = new SessionRegistry();
  readonly cursors = new CursorRegistry();
  readonly transactions: TransactionManager;
  readonly log: Logger;
  readonly startedAt = Date.now();
  readonly counters: ServerCounters = {
    connectionsCurrent: 0,
    connectionsTotal: 0,
    bytesIn: 0,
    bytesOut: 0,
    requests: 0,
    compressedIn: 0,
    decompressedIn: 0,
    compressedOut: 0,
    uncompressedOut: 0,
    compressedMessagesIn: 0,
  };
  private readonly journal: Journal | null;
  /** The cluster time (seconds, increment): every command that writes gets a later one. */
  private clusterSeconds = 0;
  private clusterIncrement = 0;
  /** The cluster time of the command writing now, taken at its first versioned write (see writeTime). */
  private pendingWrite: Timestamp | null = null;
  /** Until when a snapshot read's session may come back with atClusterTime (history is kept until then). */
  private snapshotReadsUntil = 0;
  private readonly timers: ReturnType<typeof setInterval>[] = [];

  constructor(options: EngineOptions) {
    this.log = options.log;
    this.transactions = new TransactionManager(this.clock, () => {
      for (const c of this.allCollections()) c.forgetChanges();
      this.stopHistoryIfIdle();
    });
    const dir = options.dataDir;
    if (dir && dir !== ":memory:") {
      this.journal = Journal.open(dir, { fsync: options.fsync, compactAfterBytes: options.compactAfterBytes });
      try {
        const stats = this.journal.replay((op) => this.applyJournalOp(op));
        this.log.info("journal replayed", { dataDir: dir, ...stats });
      } catch (err) {
        this.journal.close();
        throw err;
      }
    } else {
      this.journal = null;
    }
    this.timers.push(
      setInterval(() => this.expireTtl(), options.ttlMonitorIntervalMs ?? TTL_MONITOR_INTERVAL_MS),
      setInterval(() => this.sweep(), SWEEP_INTERVAL_MS),
    );
    for (const t of this.timers) t.unref?.();
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.cursors.clear();
    for (const s of this.sessions.clear()) if (s.txn) this.transactions.abort(s.txn);
    if (this.journal) {
      await this.journal.idle();
      this.journal.close();
    }
  }

  // ---- catalog -----------------------------------------------------------------------------

  *allCollections(): Iterable<Collection> {
    for (const db of this.databases.values()) yield* db.values();
  }

  getCollection(db: string, name: string): Collection | undefined {
    return this.databases.get(db)?.get(name);
  }

  isLive(c: Collection): boolean {
    return this.getCollection(c.dbName, c.name) === c;
  }

  /** The collection a command sees: its transaction's new collections, then the catalog. */
  collection(ctx: OpContext, name: string, db = ctx.db): Collection | undefined {
    return ctx.txn?.newCollections.get(`${db}.${name}`) ?? this.getCollection(db, name);
  }

  createCollection(ctx: OpContext, name: string, options: Document = {}): Collection {
    validateCollectionName(ctx.db, name);
    if (this.collection(ctx, name)) throw new CommandError(ErrorCode.NamespaceExists, `Collection ${ctx.db}.${name} already exists.`);
    if (ctx.txn) {
      // Created inside a transaction: visible to it alone until commit, as on MongoDB.
      if (options.viewOn !== undefined) {
        throw new CommandError(ErrorCode.OperationNotSupportedInTransaction, "Cannot create a view in a multi-document transaction.");
      }
      const coll = new Collection(ctx.db, name, options, this.clock);
      ctx.txn.newCollections.set(coll.ns, coll);
      ctx.txn.ddl.push({ op: "createColl", db: ctx.db, coll: name, options });
      return coll;
    }
    const coll = this.addCollection(ctx.db, name, options);
    ctx.journal.push({ op: "createColl", db: ctx.db, coll: name, options });
    return coll;
  }

  /** The collection, created implicitly (as an insert or createIndexes does) if missing. */
  ensureCollection(ctx: OpContext, name: string): Collection {
    const existing = this.collection(ctx, name);
    if (existing) {
      if (existing.view) throw viewError(existing);
      return existing;
    }
    return this.createCollection(ctx, name);
  }

  dropCollection(ctx: OpContext, name: string): boolean {
    const db = this.databases.get(ctx.db);
    const coll = db?.get(name);
    if (!db || !coll) return false;
    db.delete(name);
    if (db.size === 0) this.databases.delete(ctx.db);
    ctx.journal.push({ op: "dropColl", db: ctx.db, coll: name });
    return true;
  }

  dropDatabase(ctx: OpContext): void {
    if (!this.databases.delete(ctx.db)) return;
    ctx.journal.push({ op: "dropDb", db: ctx.db });
  }

  createIndex(ctx: OpContext, coll: Collection, spec: IndexSpec): boolean {
    if (ctx.txn) {
      // MongoDB builds an index in a transaction only on a collection that transaction created.
      if (ctx.txn.newCollections.get(coll.ns) !== coll) {
        throw new CommandError(ErrorCode.OperationNotSupportedInTransaction, `Cannot create new indexes on existing collection ${coll.ns} in a multi-document transaction.`);
      }
      const created = coll.createIndex(spec);
      if (created) ctx.txn.ddl.push({ op: "createIndex", db: coll.dbName, coll: coll.name, spec });
      return created;
    }
    const created = coll.createIndex(spec);
    if (created) ctx.journal.push({ op: "createIndex", db: coll.dbName, coll: coll.name, spec });
    return created;
  }

  dropIndex(ctx: OpContext, coll: Collection, name: string): void {
    coll.dropIndex(name);
    ctx.journal.push({ op: "dropIndex", db: coll.dbName, coll: coll.name, name });
  }

  private addCollection(db: string, name: string, options: Document): Collection {
    return this.register(new Collection(db, name, options, this.clock));
  }

  private register(coll: Collection): Collection {
    let colls = this.databases.get(coll.dbName);
    if (!colls) this.databases.set(coll.dbName, (colls = new Map()));
    colls.set(coll.name, coll);
    return coll;
  }

  private unregister(coll: Collection): void {
    const db = this.databases.get(coll.dbName);
    if (db?.get(coll.name) !== coll) return;
    db.delete(coll.name);
    if (db.size === 0) this.databases.delete(coll.dbName);
  }

  /**
   * Commits a transaction: its new collections join the catalog and its writes are applied, all
   * or nothing. A name someone else created meanwhile is a write conflict. Returns the journal ops.
   */
  commitTransaction(txn: Transaction): JournalOp[] {
    if (txn.state !== "inProgress") return [];
    const created = [...txn.newCollections.values()];
    if (created.some((c) => this.getCollection(c.dbName, c.name))) {
      this.transactions.abort(txn);
      throw writeConflict();
    }
    const ddl = [...txn.ddl];
    for (const c of created) this.register(c);
    try {
      return [...ddl, ...this.transactions.commit(txn, (c) => this.isLive(c))];
    } catch (err) {
      for (const c of created) this.unregister(c);
      throw err;
    }
  }

  /** How the command reads and writes a collection: through its transaction if it has one. Null if it does not exist. */
  access(ctx: OpContext, name: string): CollectionAccess | null {
    const coll = this.collection(ctx, name);
    if (!coll) return null;
    return this.accessTo(ctx, coll);
  }

  accessTo(ctx: OpContext, coll: Collection): CollectionAccess {
    if (ctx.txn) {
      const { readTime, readTimestamp } = ctx.txn;
      if (this.clock.history && readTime < this.clock.history.from) throw snapshotTooOld(readTimestamp, ["TransientTransactionError"]);
      return this.transactions.access(ctx.txn, coll);
    }
    if (ctx.readAt != null) return new SnapshotAccess(coll, ctx.readAt);
    return new DirectAccess(coll, ctx.journal);
  }

  // ---- snapshots: transactions and snapshot reads (history.ts) -------------------------------

  /** Starts a transaction reading the data as of now, or of `at` (readConcern snapshot atClusterTime), plus its own writes. */
  beginTransaction(txnNumber: number, sessionKey: string, at?: Timestamp): Transaction {
    const now = this.clusterTime();
    this.keepHistory(timeValue(now));
    let readTimestamp = now;
    if (at !== undefined && timeValue(at) < timeValue(now)) {
      (this.clock.history as History).check(timeValue(at), at, ["TransientTransactionError"]);
      readTimestamp = at;
    }
    return this.transactions.begin(txnNumber, sessionKey, readTimestamp);
  }

  /**
   * For a snapshot read outside a transaction: the cluster time to read at when it is older than
   * the current one (null: the current data). Keeps history for the session's later reads.
   */
  snapshotReadAt(cmd: Document): number | null {
    const now = this.clusterTime();
    this.snapshotReadsUntil = Date.now() + SNAPSHOT_WINDOW_MS;
    this.keepHistory(timeValue(now));
    const at = (cmd.readConcern as Document).atClusterTime as Timestamp | undefined;
    if (at === undefined) return null;
    const value = timeValue(at);
    if (value >= timeValue(now)) return null;
    const history = this.clock.history as History;
    history.check(value, at);
    return value;
  }

  private keepHistory(from: number): void {
    if (!this.clock.history) this.clock.history = new History(from, () => timeValue(this.writeTime()));
  }

  /** Drops what no open transaction or recent snapshot read can need; all of it once none is open. */
  private stopHistoryIfIdle(now = Date.now()): void {
    const history = this.clock.history;
    if (!history) return;
    if (this.transactions.openCount === 0 && now > this.snapshotReadsUntil) {
      history.clear();
      this.clock.history = null;
      return;
    }
    const windowStart = (Math.floor((now - SNAPSHOT_WINDOW_MS) / 1000)) * INCREMENT_BITS;
    const oldestTxn = this.transactions.oldestReadTime();
    history.trim(now > this.snapshotReadsUntil ? oldestTxn : Math.min(windowStart, oldestTxn));
  }

  /** The cluster time of the current command's writes (advanced once, at its first versioned write). */
  private writeTime(): Timestamp {
    if (!this.pendingWrite) this.pendingWrite = this.clusterTime(true);
    return this.pendingWrite;
  }

  /**
   * Ends a command: its operationTime, later than the last one if it wrote. Called as soon as the
   * handler returns, before any await, so no other command sees its writes under an earlier time.
   */
  finishCommand(wrote: boolean): Timestamp {
    const stamped = this.pendingWrite;
    this.pendingWrite = null;
    return stamped ?? this.clusterTime(wrote);
  }

  // ---- durability --------------------------------------------------------------------------

  /** Group commit so far (serverStatus.journal): fsyncs, the commits they covered, fsyncs per group size. */
  journalStats(): { fsyncs: number; commits: number; groups: Record<string, number> } | null {
    if (!this.journal) return null;
    const s = this.journal.groupCommitStats();
    return { fsyncs: s.fsyncs, commits: s.appends, groups: Object.fromEntries([...s.sizes].map(([size, n]) => [String(size), n])) };
  }

  /**
   * Journals one command's writes (in the order commands ran); resolves once they are durable,
   * and the reply waits for that. Starts a compaction when the journal asks.
   */
  commit(ops: JournalOp[]): Promise<void> {
    if (!this.journal || ops.length === 0) return Promise.resolve();
    const durable = this.journal.append(ops);
    if (this.journal.wantsCompaction) {
      this.journal.compact(() => this.dump()).catch((err: unknown) => this.log.error("journal compaction failed", { error: String(err) }));
    }
    return durable;
  }

  /** The current cluster time; `advance` moves it past the last one (a command that wrote). */
  clusterTime(advance = false): Timestamp {
    if (advance || this.clusterSeconds === 0) {
      const now = Math.floor(Date.now() / 1000);
      if (now > this.clusterSeconds) {
        this.clusterSeconds = now;
        this.clusterIncrement = 1;
      } else if (this.clusterIncrement + 1 >= INCREMENT_BITS) {
        // history.timeValue packs the increment in 21 bits: run a second ahead rather than overflow.
        this.clusterSeconds++;
        this.clusterIncrement = 1;
      } else {
        this.clusterIncrement++;
      }
    }
    return new Timestamp({ t: this.clusterSeconds, i: this.clusterIncrement });
  }

  /** The whole state as journal ops (collections, their indexes, their documents). */
  private dump(): JournalOp[] {
    const ops: JournalOp[] = [];
    for (const coll of this.allCollections()) {
      ops.push({ op: "createColl", db: coll.dbName, coll: coll.name, options: coll.options });
      for (const index of coll.indexes.values()) ops.push({ op: "createIndex", db: coll.dbName, coll: coll.name, spec: index.spec });
      for (const doc of coll.docs.values()) ops.push({ op: "put", db: coll.dbName, coll: coll.name, doc });
    }
    return ops;
  }

  /** Replays one journal op. Ops are absolute and idempotent, so replays converge. */
  private applyJournalOp(op: JournalOp): void {
    switch (op.op) {
      case "createColl":
        if (!this.getCollection(op.db, op.coll)) this.addCollection(op.db, op.coll, op.options ?? {});
        return;
      case "dropColl": {
        const db = this.databases.get(op.db);
        db?.delete(op.coll);
        if (db && db.size === 0) this.databases.delete(op.db);
        return;
      }
      case "dropDb":
        this.databases.delete(op.db);
        return;
      case "createIndex": {
        const coll = this.getCollection(op.db, op.coll) ?? this.addCollection(op.db, op.coll, {});
        if (!coll.indexes.has(op.spec.name as string)) coll.createIndex(normalizeIndexSpec(op.spec), { checkUnique: false });
        return;
      }
      case "dropIndex":
        this.getCollection(op.db, op.coll)?.indexes.delete(op.name);
        return;
      case "put": {
        const coll = this.getCollection(op.db, op.coll) ?? this.addCollection(op.db, op.coll, {});
        coll.putUnchecked(op.doc);
        return;
      }
      case "del":
        this.getCollection(op.db, op.coll)?.remove(documentKey(op.id));
        return;
    }
  }

  // ---- housekeeping ------------------------------------------------------------------------

  endSessions(sessions: ServerSession[]): void {
    for (const s of sessions) {
      if (s.txn) this.transactions.abort(s.txn);
      s.txn = null;
      this.cursors.killForSession(s.key);
    }
  }

  private sweep(): void {
    this.cursors.reap();
    this.transactions.expire();
    this.endSessions(this.sessions.expired());
    this.stopHistoryIfIdle();
  }

  /** Deletes documents whose TTL index date has passed, as mongod's TTL monitor does every minute. */
  expireTtl(now = Date.now()): number {
    const journal: JournalOp[] = [];
    let removed = 0;
    for (const coll of this.allCollections()) {
      for (const index of coll.indexes.values()) {
        const ttl = index.spec.expireAfterSeconds;
        if (!isNumeric(ttl) || index.fields.length !== 1) continue;
        const cutoff = now - (numericValue(ttl) ?? 0) * 1000;
        const access = new DirectAccess(coll, journal);
        for (const [key, doc] of [...coll.docs]) {
          if (isExpired(doc[index.fields[0].path], cutoff)) {
            access.remove(key);
            removed++;
          }
        }
      }
    }
    this.finishCommand(removed > 0);
    const failed = (err: unknown) => this.log.error("journal append failed for TTL deletes", { error: String(err) });
    try {
      this.commit(journal).catch(failed);
    } catch (err) {
      failed(err);
    }
    return removed;
  }
}

function isExpired(value: unknown, cutoff: number): boolean {
  const dates = Array.isArray(value) ? value : [value];
  return dates.some((d) => d instanceof Date && d.getTime() <= cutoff);
}

export function viewError(coll: Collection): CommandError {
  return new CommandError(ErrorCode.CommandNotSupportedOnView, `Namespace ${coll.ns} is a view, not a collection`);
}

export function validateCollectionName(db: string, name: unknown): asserts name is string {
  if (typeof name !== "string") throw new CommandError(ErrorCode.InvalidNamespace, "collection name has invalid type");
  if (name === "" || name.includes("\0") || name.startsWith(".") || name.includes("$")) {
    throw new CommandError(ErrorCode.InvalidNamespace, `Invalid collection name: ${db}.${name}`);
  }
  if (db === "" || /[/\\. "$]/.test(db)) throw new CommandError(ErrorCode.InvalidNamespace, `Invalid database name: '${db}'`);
}

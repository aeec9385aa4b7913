// Older versions of documents, so a transaction reads the data as of its start and a snapshot
// read (readConcern snapshot with atClusterTime) the data as of that cluster time.
//
// Versions are kept only while someone could read them: an open transaction, or a snapshot read
// in the last SNAPSHOT_WINDOW_MS (its session may come back with atClusterTime). Otherwise
// ChangeClock.history is null and a write pays one null check. Each version is tagged with the
// cluster time of the write that replaced it; they are dropped once no open transaction reads
// before that time and it is older than the window (MongoDB's minSnapshotHistoryWindowInSeconds),
// or when more than MAX_VERSIONS are kept. A read older than what is kept is refused with
// SnapshotTooOld (239), as MongoDB refuses one older than its history.

import type { Document, Timestamp } from "bson";
import { CommandError, ErrorCode } from "./errors";

/** MongoDB's minSnapshotHistoryWindowInSeconds default. */
export const SNAPSHOT_WINDOW_MS = 300_000;
/** Bound on the versions kept (beyond it the oldest go first and older reads get SnapshotTooOld). */
export const MAX_VERSIONS = 200_000;

/** Cluster time as a number that orders like it: seconds × 2^21 + increment (the engine keeps increments below 2^21). */
export const INCREMENT_BITS = 2 ** 21;
export function timeValue(ts: Timestamp): number {
  return ts.high * INCREMENT_BITS + ts.low;
}

/** What a collection keeps its versions in (collection.ts). */
export interface Versioned {
  /** docKey → the versions it had before, oldest first; null while none are kept. */
  versions: Map<string, Version[]> | null;
  /** The time of the newest version kept. */
  lastVersion: number;
}

/** What a document was before `until` (undefined: it did not exist). */
export interface Version {
  coll: Versioned;
  key: string;
  until: number;
  doc: Document | undefined;
}

export class History {
  /** Reads at or after this time are answered; earlier ones lost versions they would need. */
  from: number;
  /** Every kept version, in the order written (so by ascending `until`); `head` is the oldest still kept. */
  private queue: Version[] = [];
  private head = 0;
  private readonly writeTime: () => number;
  private readonly maxVersions: number;

  constructor(from: number, writeTime: () => number, maxVersions = MAX_VERSIONS) {
    this.from = from;
    this.writeTime = writeTime;
    this.maxVersions = maxVersions;
  }

  get size(): number {
    return this.queue.length - this.head;
  }

  /** Keeps the version a write is about to replace (the first one only, when a command writes a document twice). */
  record(coll: Versioned, key: string, old: Document | undefined): void {
    const until = this.writeTime();
    let versions = coll.versions;
    if (!versions) coll.versions = versions = new Map();
    let list = versions.get(key);
    if (!list) versions.set(key, (list = []));
    else if (list[list.length - 1].until === until) return;
    const v: Version = { coll, key, until, doc: old };
    list.push(v);
    coll.lastVersion = until;
    this.queue.push(v);
    if (this.size > this.maxVersions) this.trim(-Infinity);
  }

  /** Drops versions no read at or after `horizon` needs, and the oldest beyond the bound. */
  trim(horizon: number): void {
    while (this.head < this.queue.length) {
      const v = this.queue[this.head];
      if (v.until > horizon && this.size <= this.maxVersions) break;
      this.queue[this.head++] = undefined as unknown as Version;
      const list = v.coll.versions?.get(v.key);
      if (list?.[0] === v) {
        list.shift();
        if (list.length === 0) v.coll.versions?.delete(v.key);
      }
      if (v.until > this.from) this.from = v.until;
    }
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    if (horizon > this.from) this.from = horizon;
  }

  /** Forgets every version (history is switched off). */
  clear(): void {
    for (let i = this.head; i < this.queue.length; i++) this.queue[i].coll.versions = null;
    this.queue = [];
    this.head = 0;
  }

  /** Throws SnapshotTooOld unless reads at `at` can be answered. */
  check(at: number, ts: Timestamp, labels: string[] = []): void {
    if (at < this.from) throw snapshotTooOld(ts, labels);
  }
}

export function snapshotTooOld(ts: Timestamp, labels: string[] = []): CommandError {
  return new CommandError(
    ErrorCode.SnapshotTooOld,
    `Read timestamp ${formatTimestamp(ts)} is older than the oldest available timestamp.`,
    { errorLabels: labels },
  );
}

export function formatTimestamp(ts: Timestamp): string {
  return `Timestamp(${ts.high}, ${ts.low})`;
}

// Server-side cursors: results are handed out in batches (firstBatch, then getMore) under
// Int64 ids; idle cursors are reaped after MongoDB's default 10 minutes.

import { type Document, Long, calculateObjectSize } from "bson";
import { CommandError, ErrorCode } from "./errors";

/** MongoDB's default first batch (find/aggregate without batchSize). */
export const DEFAULT_FIRST_BATCH = 101;
/** Replies stay under the 16 MiB BSON limit (minus room for the envelope). */
const MAX_BATCH_BYTES = 16 * 1024 * 1024 - 16 * 1024;
const CURSOR_TIMEOUT_MS = 10 * 60 * 1000;

interface OpenCursor {
  id: bigint;
  ns: string;
  source: Iterator<Document>;
  /** A document pulled to learn whether the source is exhausted, served first on the next batch. */
  peeked: Document | null;
  /** Set once the source reported done: some iterators (mingo's) must not be pulled again. */
  exhausted: boolean;
  lastUse: number;
  sessionKey: string | null;
  noTimeout: boolean;
}

export interface CursorReply {
  id: Long;
  ns: string;
  firstBatch?: Document[];
  nextBatch?: Document[];
}

export interface OpenOptions {
  batchSize?: number;
  singleBatch?: boolean;
  sessionKey?: string | null;
  noCursorTimeout?: boolean;
}

export class CursorRegistry {
  private readonly cursors = new Map<bigint, OpenCursor>();

  get size(): number {
    return this.cursors.size;
  }

  /** Serves the first batch; keeps a cursor open only if more results remain. */
  open(ns: string, results: Iterable<Document>, opts: OpenOptions = {}): CursorReply {
    const cursor: OpenCursor = {
      id: 0n,
      ns,
      source: results[Symbol.iterator](),
      peeked: null,
      exhausted: false,
      lastUse: Date.now(),
      sessionKey: opts.sessionKey ?? null,
      noTimeout: opts.noCursorTimeout === true,
    };
    const firstBatch = this.takeBatch(cursor, opts.batchSize ?? DEFAULT_FIRST_BATCH);
    if (!opts.singleBatch && this.hasMore(cursor)) {
      cursor.id = newCursorId(this.cursors);
      this.cursors.set(cursor.id, cursor);
    }
    return { id: Long.fromBigInt(cursor.id), ns, firstBatch };
  }

  getMore(id: bigint, ns: string, batchSize: number | undefined): CursorReply {
    const cursor = this.cursors.get(id);
    if (!cursor) throw new CommandError(ErrorCode.CursorNotFound, `cursor id ${id} not found`);
    if (cursor.ns !== ns) {
      throw new CommandError(13, `Requested getMore on namespace '${ns}', but cursor belongs to a different namespace ${cursor.ns}`);
    }
    cursor.lastUse = Date.now();
    let nextBatch: Document[];
    try {
      nextBatch = this.takeBatch(cursor, batchSize && batchSize > 0 ? batchSize : Number.POSITIVE_INFINITY);
    } catch (err) {
      // A pipeline that fails mid-stream kills its cursor, as in mongod.
      this.cursors.delete(id);
      throw err;
    }
    if (!this.hasMore(cursor)) {
      this.cursors.delete(id);
      return { id: Long.fromBigInt(0n), ns, nextBatch };
    }
    return { id: Long.fromBigInt(id), ns, nextBatch };
  }

  kill(ids: bigint[]): { killed: bigint[]; notFound: bigint[] } {
    const killed: bigint[] = [];
    const notFound: bigint[] = [];
    for (const id of ids) (this.cursors.delete(id) ? killed : notFound).push(id);
    return { killed, notFound };
  }

  killForSession(sessionKey: string): void {
    for (const [id, c] of this.cursors) if (c.sessionKey === sessionKey) this.cursors.delete(id);
  }

  /** Closes cursors idle for longer than the timeout. */
  reap(now = Date.now()): void {
    for (const [id, c] of this.cursors) if (!c.noTimeout && now - c.lastUse > CURSOR_TIMEOUT_MS) this.cursors.delete(id);
  }

  clear(): void {
    this.cursors.clear();
  }

  private next(cursor: OpenCursor): Document | null {
    if (cursor.peeked) {
      const d = cursor.peeked;
      cursor.peeked = null;
      return d;
    }
    if (cursor.exhausted) return null;
    const r = cursor.source.next();
    if (r.done) {
      cursor.exhausted = true;
      return null;
    }
    return r.value;
  }

  private hasMore(cursor: OpenCursor): boolean {
    if (cursor.peeked) return true;
    cursor.peeked = this.next(cursor);
    return cursor.peeked !== null;
  }

  private takeBatch(cursor: OpenCursor, limit: number): Document[] {
    const batch: Document[] = [];
    let bytes = 0;
    while (batch.length < limit) {
      const doc = this.next(cursor);
      if (doc === null) break;
      bytes += calculateObjectSize(doc);
      if (bytes > MAX_BATCH_BYTES && batch.length > 0) {
        cursor.peeked = doc;
        break;
      }
      batch.push(doc);
    }
    return batch;
  }
}

function newCursorId(taken: Map<bigint, unknown>): bigint {
  for (;;) {
    const bytes = crypto.getRandomValues(new Uint8Array(8));
    bytes[0] &= 0x7f; // positive Int64
    const id = Buffer.from(bytes).readBigInt64BE(0);
    if (id !== 0n && !taken.has(id)) return id;
  }
}

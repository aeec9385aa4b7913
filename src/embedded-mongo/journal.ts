// Append-only journal for the embedded engine's data dir.
//
// Layout of DIR:
//   LOCK                       flock(2)-held while open; holds the owner's pid for the error message
//   journal-<seq>.log          segments: records [u32 length][u32 crc32][payload], little endian
//   snapshot-<seq>.snap        full state before segment <seq>: header record, op records, trailer record
//   snapshot-<seq>.<pid>.tmp   a snapshot being written (deleted on open)
// A record's payload is a run of BSON documents, one per JournalOp: a record is one append() batch,
// so replay sees either a whole write command or none of it.

import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { crc32 } from "node:zlib";
import { FFIType, dlopen } from "bun:ffi";
import { type DeserializeOptions, type Document, deserialize, serialize } from "bson";

export type JournalOp =
  | { op: "put"; db: string; coll: string; doc: Document } // insert or full replace (by doc._id)
  | { op: "del"; db: string; coll: string; id: unknown } // delete by _id
  | { op: "createColl"; db: string; coll: string; options?: Document }
  | { op: "dropColl"; db: string; coll: string }
  | { op: "createIndex"; db: string; coll: string; spec: Document } // {key, name, unique?, ...} as in listIndexes
  | { op: "dropIndex"; db: string; coll: string; name: string }
  | { op: "dropDb"; db: string };

/** always: fsync before append() returns (default); batch: fsync within batchIntervalMs; never: leave it to the OS. */
export type FsyncPolicy = "always" | "batch" | "never";

export class DataDirLockedError extends Error {
  readonly dir: string;
  readonly pid: number | null;
  constructor(dir: string, pid: number | null) {
    super(
      `data dir ${dir} is locked by another embedded-mongo${pid !== null ? ` (pid ${pid})` : ""}; ` +
        "stop that process or use another --data-dir",
    );
    this.name = "DataDirLockedError";
    this.dir = dir;
    this.pid = pid;
  }
}

/** A snapshot that is not complete or fails its checksum: replay refuses to guess. */
export class JournalCorruptError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "JournalCorruptError";
  }
}

export interface JournalOptions {
  fsync?: FsyncPolicy;
  /** Bytes appended since the last snapshot after which wantsCompaction turns true (default 64 MiB). */
  compactAfterBytes?: number;
  /** With fsync "batch": the longest an appended record waits for its fsync (default 10 ms). */
  batchIntervalMs?: number;
  /** How replayed documents are decoded: pass what the engine uses for wire documents so replayed state matches live state. */
  deserialize?: DeserializeOptions;
}

export interface ReplayStats {
  snapshot: string | null;
  snapshotOps: number;
  segments: number;
  records: number;
  ops: number;
  /** Segments whose torn or corrupt tail was cut off, with the offset they were cut at and the bytes dropped. */
  truncated: Array<{ file: string; at: number; dropped: number }>;
}

const HEADER_BYTES = 8;
const SNAPSHOT_MAGIC = "dispatch-embedded-mongo-snapshot";
const SNAPSHOT_CHUNK_BYTES = 1 << 20;
const SEGMENT_RE = /^journal-(\d{16})\.log$/;
const SNAPSHOT_RE = /^snapshot-(\d{16})\.snap$/;
const TMP_RE = /^snapshot-\d{16}\.\d+\.tmp$/;

const segmentName = (seq: number) => `journal-${String(seq).padStart(16, "0")}.log`;
const snapshotName = (seq: number) => `snapshot-${String(seq).padStart(16, "0")}.snap`;

function frame(parts: Uint8Array[]): Buffer {
  let len = 0;
  for (const p of parts) len += p.length;
  const buf = Buffer.allocUnsafe(HEADER_BYTES + len);
  let off = HEADER_BYTES;
  for (const p of parts) {
    buf.set(p, off);
    off += p.length;
  }
  const payload = buf.subarray(HEADER_BYTES);
  buf.writeUInt32LE(len, 0);
  buf.writeUInt32LE(crc32(payload), 4);
  return buf;
}

/** Records of a file, stopping at the first torn or corrupt one; `end` is where the valid prefix ends. */
function readRecords(buf: Buffer): { payloads: Buffer[]; end: number } {
  const payloads: Buffer[] = [];
  let off = 0;
  while (off + HEADER_BYTES <= buf.length) {
    const len = buf.readUInt32LE(off);
    const sum = buf.readUInt32LE(off + 4);
    if (len === 0 || off + HEADER_BYTES + len > buf.length) break;
    const payload = buf.subarray(off + HEADER_BYTES, off + HEADER_BYTES + len);
    if (crc32(payload) !== sum) break;
    payloads.push(payload);
    off += HEADER_BYTES + len;
  }
  return { payloads, end: off };
}

function* docsOf(payload: Buffer, opts: DeserializeOptions): Generator<Document> {
  let off = 0;
  while (off < payload.length) {
    const len = payload.readInt32LE(off);
    if (len < 5 || off + len > payload.length) throw new JournalCorruptError("malformed BSON inside a checksummed record");
    yield deserialize(payload.subarray(off, off + len), opts);
    off += len;
  }
}

function writeFully(fd: number, buf: Uint8Array): void {
  let done = 0;
  while (done < buf.length) done += fs.writeSync(fd, buf, done, buf.length - done);
}

function fsyncDir(dir: string): void {
  let fd: number | null = null;
  try {
    fd = fs.openSync(dir, "r");
    fs.fsyncSync(fd);
  } catch {
    // Some platforms cannot fsync a directory; the rename is still atomic there.
  } finally {
    if (fd !== null) fs.closeSync(fd);
  }
}

// flock(2) through libc: the kernel drops it when the holder dies (kill -9 included), so a dead
// owner never leaves a stale lock. Without libc (not Linux) the pid in LOCK is checked instead.
type FlockFn = (fd: number, op: number) => number;
function loadFlock(): FlockFn | null {
  try {
    const lib = dlopen(process.platform === "darwin" ? "libc.dylib" : "libc.so.6", {
      flock: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    });
    return (fd, op) => lib.symbols.flock(fd, op) as number;
  } catch {
    return null;
  }
}
const flockFn = loadFlock();
const LOCK_EX = 2;
const LOCK_NB = 4;
const LOCK_UN = 8;

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

function takeLock(dir: string): number {
  const file = path.join(dir, "LOCK");
  const fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
  const holder = (): number | null => {
    const n = Number.parseInt(fs.readFileSync(file, "utf8").trim(), 10);
    return Number.isFinite(n) && n > 0 ? n : null;
  };
  try {
    if (flockFn) {
      if (flockFn(fd, LOCK_EX | LOCK_NB) !== 0) throw new DataDirLockedError(dir, holder());
    } else {
      const pid = holder();
      if (pid !== null && pid !== process.pid && pidAlive(pid)) throw new DataDirLockedError(dir, pid);
    }
    fs.ftruncateSync(fd, 0);
    writeFully(fd, Buffer.from(`${process.pid}\n`));
    return fd;
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}

export class Journal {
  readonly dir: string;
  private readonly policy: FsyncPolicy;
  private readonly compactAfterBytes: number;
  private readonly batchIntervalMs: number;
  private readonly bsonOptions: DeserializeOptions;
  private lockFd: number | null;
  private segFd: number | null = null;
  private segSeq: number; // segment appends go to (opened lazily)
  private segBytes = 0;
  private segmentSizes = new Map<number, number>(); // live segments at or after the latest snapshot
  private snapshotSeq: number; // 0: no snapshot yet
  private syncTimer: ReturnType<typeof setTimeout> | null = null;
  private compaction: Promise<void> | null = null;
  private appended = false;
  private failed: Error | null = null;
  private closed = false;
  /** Group commit (fsync "always"): the fsync in flight, and appends written since it began. */
  private syncing: Promise<void> | null = null;
  private waiting: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];
  private readonly groups = { fsyncs: 0, appends: 0, sizes: new Map<number, number>() };

  private constructor(dir: string, lockFd: number, opts: JournalOptions) {
    this.dir = dir;
    this.lockFd = lockFd;
    this.policy = opts.fsync ?? "always";
    this.compactAfterBytes = opts.compactAfterBytes ?? 64 * 1024 * 1024;
    this.batchIntervalMs = opts.batchIntervalMs ?? 10;
    this.bsonOptions = opts.deserialize ?? {};
    let maxSeg = 0;
    let maxSnap = 0;
    for (const name of fs.readdirSync(dir)) {
      const seg = SEGMENT_RE.exec(name);
      if (seg) maxSeg = Math.max(maxSeg, Number(seg[1]));
      const snap = SNAPSHOT_RE.exec(name);
      if (snap) maxSnap = Math.max(maxSnap, Number(snap[1]));
      if (TMP_RE.test(name)) fs.rmSync(path.join(dir, name), { force: true });
    }
    this.snapshotSeq = maxSnap;
    // Never append to an existing segment: its tail may be torn until replay has cut it.
    this.segSeq = Math.max(maxSeg + 1, maxSnap, 1);
  }

  /** Creates the dir if needed and takes an exclusive lock (held by a live process → DataDirLockedError naming the dir and pid). */
  static open(dir: string, opts: JournalOptions = {}): Journal {
    const abs = path.resolve(dir);
    fs.mkdirSync(abs, { recursive: true });
    const lockFd = takeLock(abs);
    try {
      return new Journal(abs, lockFd, opts);
    } catch (e) {
      fs.closeSync(lockFd);
      throw e;
    }
  }

  /** Latest snapshot then every later segment, in order; a torn/corrupt tail record (crash mid-write) is dropped and truncated. */
  replay(apply: (op: JournalOp) => void): ReplayStats {
    if (this.appended) throw new Error("Journal.replay must run before the first append");
    const stats: ReplayStats = { snapshot: null, snapshotOps: 0, segments: 0, records: 0, ops: 0, truncated: [] };
    const names = fs.readdirSync(this.dir);
    if (this.snapshotSeq > 0) {
      const name = snapshotName(this.snapshotSeq);
      stats.snapshot = name;
      stats.snapshotOps = this.replaySnapshot(path.join(this.dir, name), apply);
    }
    const segments = names
      .map((n) => SEGMENT_RE.exec(n))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .sort((a, b) => a - b);
    for (const seq of segments) {
      const file = path.join(this.dir, segmentName(seq));
      // Superseded by the snapshot: a compaction was cut short between rename and clean-up.
      if (seq < this.snapshotSeq) {
        fs.rmSync(file, { force: true });
        continue;
      }
      const buf = fs.readFileSync(file);
      const { payloads, end } = readRecords(buf);
      for (const payload of payloads) {
        for (const doc of docsOf(payload, this.bsonOptions)) {
          apply(doc as JournalOp);
          stats.ops++;
        }
      }
      stats.records += payloads.length;
      stats.segments++;
      if (end < buf.length) {
        const fd = fs.openSync(file, "r+");
        try {
          fs.ftruncateSync(fd, end);
          fs.fsyncSync(fd);
        } finally {
          fs.closeSync(fd);
        }
        stats.truncated.push({ file: path.basename(file), at: end, dropped: buf.length - end });
      }
      this.segmentSizes.set(seq, end);
    }
    for (const n of names) {
      const snap = SNAPSHOT_RE.exec(n);
      if (snap && Number(snap[1]) < this.snapshotSeq) fs.rmSync(path.join(this.dir, n), { force: true });
    }
    return stats;
  }

  private replaySnapshot(file: string, apply: (op: JournalOp) => void): number {
    const buf = fs.readFileSync(file);
    const { payloads, end } = readRecords(buf);
    if (payloads.length < 2 || end !== buf.length) throw new JournalCorruptError(`snapshot ${file} is incomplete or corrupt`);
    const header = deserialize(payloads[0]);
    const trailer = deserialize(payloads[payloads.length - 1]);
    if (header.magic !== SNAPSHOT_MAGIC || trailer.end !== true) throw new JournalCorruptError(`snapshot ${file} has no valid header/trailer`);
    let n = 0;
    for (let i = 1; i < payloads.length - 1; i++) {
      for (const doc of docsOf(payloads[i], this.bsonOptions)) {
        apply(doc as JournalOp);
        n++;
      }
    }
    if (n !== trailer.ops) throw new JournalCorruptError(`snapshot ${file} holds ${n} ops, its trailer says ${String(trailer.ops)}`);
    return n;
  }

  private ensureSegment(): number {
    if (this.segFd !== null) return this.segFd;
    const file = path.join(this.dir, segmentName(this.segSeq));
    this.segFd = fs.openSync(file, "a");
    this.segBytes = fs.fstatSync(this.segFd).size;
    this.segmentSizes.set(this.segSeq, this.segBytes);
    // The new directory entry must be durable too, or a crash could lose the whole file.
    if (this.policy === "always") fsyncDir(this.dir);
    return this.segFd;
  }

  /**
   * One record, atomically (length + checksum), written now (records keep the order of the
   * calls); the promise resolves once it is durable per policy. With fsync "always" that is
   * group commit: records written while an fsync is in flight share the next one, which
   * starts as soon as it returns, so each resolves only after an fsync that began after its
   * write. A write that fails throws here; an fsync that fails rejects every record it covered.
   */
  append(batch: JournalOp[]): Promise<void> {
    if (this.closed) throw new Error("journal is closed");
    if (this.failed) throw new Error(`journal is unusable after a failed write: ${this.failed.message}`);
    if (batch.length === 0) return Promise.resolve();
    this.appended = true;
    const record = frame(batch.map((op) => serialize(op)));
    const fd = this.ensureSegment();
    const before = this.segBytes;
    try {
      writeFully(fd, record);
    } catch (e) {
      // A half-written record would hide every later record from replay: cut it off, or stop for good.
      try {
        fs.ftruncateSync(fd, before);
      } catch {
        this.failed = e as Error;
      }
      throw e;
    }
    this.segBytes += record.length;
    this.segmentSizes.set(this.segSeq, this.segBytes);
    if (this.policy === "batch" && this.syncTimer === null) {
      this.syncTimer = setTimeout(() => this.syncNow(), this.batchIntervalMs);
      this.syncTimer.unref?.();
    }
    if (this.policy !== "always") return Promise.resolve();
    const durable = new Promise<void>((resolve, reject) => this.waiting.push({ resolve, reject }));
    if (this.syncing === null) this.startGroupSync();
    return durable;
  }

  /** One fsync for every record written so far and not yet covered; the next group starts when it returns. */
  private startGroupSync(): void {
    const group = this.waiting;
    this.waiting = [];
    const fd = this.segFd;
    if (group.length === 0 || fd === null) return;
    this.groups.fsyncs++;
    this.groups.appends += group.length;
    this.groups.sizes.set(group.length, (this.groups.sizes.get(group.length) ?? 0) + 1);
    this.syncing = new Promise<void>((done) => {
      fs.fdatasync(fd, (err) => {
        if (err) {
          this.failed ??= err;
          for (const w of group) w.reject(err);
        } else {
          for (const w of group) w.resolve();
        }
        this.syncing = null;
        done();
        if (this.waiting.length > 0 && !this.closed) this.startGroupSync();
      });
    });
  }

  /** Settles every record written and not yet covered: the caller has just fsynced them (rotation, close), or could not. */
  private settleWaiting(err: Error | null): void {
    const group = this.waiting;
    this.waiting = [];
    for (const w of group) {
      if (err) w.reject(err);
      else w.resolve();
    }
  }

  /** Closes a segment fd once no fsync on it is in flight. */
  private closeSegment(fd: number): void {
    const inFlight = this.syncing;
    if (inFlight) void inFlight.then(() => fs.closeSync(fd));
    else fs.closeSync(fd);
  }

  /**
   * Group commit so far: fsyncs, the appends they covered, and how many fsyncs covered each
   * number of appends (bench:db reports them).
   */
  groupCommitStats(): { fsyncs: number; appends: number; sizes: Map<number, number> } {
    return { fsyncs: this.groups.fsyncs, appends: this.groups.appends, sizes: new Map(this.groups.sizes) };
  }

  private syncNow(): void {
    if (this.syncTimer !== null) clearTimeout(this.syncTimer);
    this.syncTimer = null;
    if (this.segFd !== null && this.policy !== "never") fs.fdatasyncSync(this.segFd);
  }

  /** Bytes in the segments a new snapshot would supersede. */
  get bytesSinceSnapshot(): number {
    let n = 0;
    for (const v of this.segmentSizes.values()) n += v;
    return n;
  }

  /** True when the journal has grown past compactAfterBytes since the last snapshot and no compaction runs. */
  get wantsCompaction(): boolean {
    return !this.closed && this.compaction === null && this.bytesSinceSnapshot > this.compactAfterBytes;
  }

  /** Resolves when no compaction is running (for an orderly shutdown). */
  async idle(): Promise<void> {
    while (this.compaction || this.syncing) {
      await this.compaction?.catch(() => undefined);
      await this.syncing;
    }
  }

  /**
   * Rotates to a new segment now and takes dump() synchronously (the state at the rotation point), then
   * writes the snapshot in the background (tmp file, fsync, rename) and deletes what it supersedes.
   * Appends continue meanwhile. The documents dump() yields are serialized later, in chunks: the engine
   * must not mutate them in place afterwards (replace stored documents on update, or yield copies).
   * A call while a compaction runs returns that compaction.
   */
  compact(dump: () => Iterable<JournalOp>): Promise<void> {
    if (this.closed) return Promise.reject(new Error("journal is closed"));
    if (this.compaction) return this.compaction;
    this.appended = true;
    if (this.segFd !== null) {
      try {
        if (this.policy !== "never") fs.fdatasyncSync(this.segFd);
      } catch (e) {
        this.settleWaiting(e as Error);
        throw e;
      }
      this.settleWaiting(null); // covered by that fsync
      this.closeSegment(this.segFd);
      this.segFd = null;
    }
    if (this.syncTimer !== null) clearTimeout(this.syncTimer);
    this.syncTimer = null;
    const seq = this.segSeq + 1;
    this.segSeq = seq;
    this.ensureSegment();
    const ops = Array.from(dump());
    const run = this.writeSnapshot(seq, ops).finally(() => {
      this.compaction = null;
    });
    this.compaction = run;
    return run;
  }

  private async writeSnapshot(seq: number, ops: JournalOp[]): Promise<void> {
    // Let the caller's write command finish before the first chunk is serialized.
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (this.closed) return;
    const tmp = path.join(this.dir, `${snapshotName(seq).replace(/\.snap$/, "")}.${process.pid}.tmp`);
    const fh = await fsp.open(tmp, "w");
    let renamed = false;
    try {
      await fh.write(frame([serialize({ magic: SNAPSHOT_MAGIC, version: 1, seq, createdAt: new Date() })]));
      let parts: Uint8Array[] = [];
      let size = 0;
      for (const op of ops) {
        const bytes = serialize(op);
        parts.push(bytes);
        size += bytes.length;
        if (size >= SNAPSHOT_CHUNK_BYTES) {
          // Each awaited write yields to the event loop, so appends interleave with the snapshot.
          await fh.write(frame(parts));
          if (this.closed) return;
          parts = [];
          size = 0;
        }
      }
      if (parts.length > 0) await fh.write(frame(parts));
      await fh.write(frame([serialize({ end: true, ops: ops.length })]));
      await fh.sync();
      await fh.close();
      if (this.closed) return;
      fs.renameSync(tmp, path.join(this.dir, snapshotName(seq)));
      renamed = true;
      fsyncDir(this.dir);
      const previous = this.snapshotSeq;
      this.snapshotSeq = seq;
      for (const s of [...this.segmentSizes.keys()]) {
        if (s >= seq) continue;
        fs.rmSync(path.join(this.dir, segmentName(s)), { force: true });
        this.segmentSizes.delete(s);
      }
      if (previous > 0 && previous < seq) fs.rmSync(path.join(this.dir, snapshotName(previous)), { force: true });
    } finally {
      if (!renamed) {
        await fh.close().catch(() => undefined);
        fs.rmSync(tmp, { force: true });
      }
    }
  }

  /** Flushes, closes the segment and releases the lock; a running compaction is abandoned (its tmp file removed). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.syncTimer !== null) clearTimeout(this.syncTimer);
    this.syncTimer = null;
    if (this.segFd !== null) {
      let err: Error | null = this.failed;
      try {
        if (this.policy !== "never" && !this.failed) fs.fdatasyncSync(this.segFd);
      } catch (e) {
        err = e as Error;
      }
      this.settleWaiting(err);
      this.closeSegment(this.segFd);
      this.segFd = null;
    }
    if (this.lockFd !== null) {
      if (flockFn) flockFn(this.lockFd, LOCK_UN);
      fs.closeSync(this.lockFd);
      this.lockFd = null;
    }
  }
}

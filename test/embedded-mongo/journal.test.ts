import { afterEach, describe, expect, test } from "bun:test";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Decimal128, type Document, Long, ObjectId } from "bson";
import { DataDirLockedError, Journal, type JournalOp } from "../../src/embedded-mongo/journal";

const WRITER = path.join(import.meta.dir, "fixtures", "journal-writer.ts");

const dirs: string[] = [];
const children: Array<ReturnType<typeof Bun.spawn>> = [];
const journals: Journal[] = [];

function tempDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "journal-test-"));
  dirs.push(d);
  return d;
}

function open(dir: string, opts?: Parameters<typeof Journal.open>[1]): Journal {
  const j = Journal.open(dir, opts);
  journals.push(j);
  return j;
}

afterEach(() => {
  for (const j of journals.splice(0)) j.close();
  for (const c of children.splice(0)) c.kill(9);
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function replayAll(dir: string, opts?: Parameters<typeof Journal.open>[1]): JournalOp[] {
  const j = Journal.open(dir, opts);
  const ops: JournalOp[] = [];
  try {
    j.replay((op) => ops.push(op));
  } finally {
    j.close();
  }
  return ops;
}

/** Applies ops the way the engine does: collections of documents keyed by _id. */
function applyTo(state: Map<string, Map<string, Document>>, op: JournalOp): void {
  const ns = `${op.db}.${"coll" in op ? op.coll : ""}`;
  switch (op.op) {
    case "put": {
      if (!state.has(ns)) state.set(ns, new Map());
      state.get(ns)?.set(String(op.doc._id), op.doc);
      break;
    }
    case "del":
      state.get(ns)?.delete(String(op.id));
      break;
    case "createColl":
      if (!state.has(ns)) state.set(ns, new Map());
      break;
    case "dropColl":
      state.delete(ns);
      break;
    default:
      break;
  }
}

function segments(dir: string): string[] {
  return fs.readdirSync(dir).filter((n) => n.endsWith(".log")).sort();
}

/** Reads a child's stdout line by line. */
function lines(child: ReturnType<typeof Bun.spawn>): AsyncGenerator<string> {
  const stream = child.stdout as ReadableStream<Uint8Array>;
  return (async function* () {
    const decoder = new TextDecoder();
    let buf = "";
    for await (const chunk of stream) {
      buf += decoder.decode(chunk, { stream: true });
      let i = buf.indexOf("\n");
      while (i >= 0) {
        yield buf.slice(0, i);
        buf = buf.slice(i + 1);
        i = buf.indexOf("\n");
      }
    }
  })();
}

describe("replay", () => {
  test("returns every appended op in order with BSON types intact", () => {
    const dir = tempDir();
    const oid = new ObjectId();
    const batches: JournalOp[][] = [
      [{ op: "createColl", db: "shop", coll: "orders", options: { capped: false } }],
      [{ op: "createIndex", db: "shop", coll: "orders", spec: { key: { email: 1 }, name: "email_1", unique: true } }],
      [
        { op: "put", db: "shop", coll: "orders", doc: { _id: oid, at: new Date(1700000000000), n: Long.fromString("9007199254740993"), price: Decimal128.fromString("12.50"), tags: ["a", { b: null }] } },
        { op: "put", db: "shop", coll: "orders", doc: { _id: 2, loc: { type: "Point", coordinates: [13.4, 52.5] } } },
      ],
      [{ op: "del", db: "shop", coll: "orders", id: 2 }],
      [{ op: "dropIndex", db: "shop", coll: "orders", name: "email_1" }],
      [{ op: "dropColl", db: "shop", coll: "old" }],
      [{ op: "dropDb", db: "scratch" }],
    ];
    const j = open(dir);
    const stats = j.replay(() => {
      throw new Error("fresh dir has nothing to replay");
    });
    expect(stats.ops).toBe(0);
    for (const b of batches) j.append(b);
    j.close();

    const ops = replayAll(dir, { deserialize: { promoteLongs: false } });
    expect(ops.map((o) => o.op)).toEqual(["createColl", "createIndex", "put", "put", "del", "dropIndex", "dropColl", "dropDb"]);
    const first = ops[2] as Extract<JournalOp, { op: "put" }>;
    expect((first.doc._id as ObjectId).toHexString()).toBe(oid.toHexString());
    expect((first.doc.at as Date).getTime()).toBe(1700000000000);
    expect(String(first.doc.n)).toBe("9007199254740993");
    expect(String(first.doc.price)).toBe("12.50");
    expect(first.doc.tags).toEqual(["a", { b: null }]);
    expect(ops[4]).toEqual({ op: "del", db: "shop", coll: "orders", id: 2 });
    expect(ops[1]).toEqual({ op: "createIndex", db: "shop", coll: "orders", spec: { key: { email: 1 }, name: "email_1", unique: true } });
  });

  test("each run appends to a new segment and replay reads them all in order", () => {
    const dir = tempDir();
    for (let run = 0; run < 3; run++) {
      const j = Journal.open(dir);
      j.replay(() => undefined);
      j.append([{ op: "put", db: "d", coll: "c", doc: { _id: run } }]);
      j.close();
    }
    expect(segments(dir).length).toBe(3);
    expect(replayAll(dir).map((o) => (o as Extract<JournalOp, { op: "put" }>).doc._id)).toEqual([0, 1, 2]);
  });

  test("fsync policies batch and never still journal every append", async () => {
    for (const fsync of ["batch", "never"] as const) {
      const dir = tempDir();
      const j = open(dir, { fsync, batchIntervalMs: 5 });
      j.replay(() => undefined);
      for (let i = 0; i < 100; i++) j.append([{ op: "put", db: "d", coll: "c", doc: { _id: i } }]);
      await Bun.sleep(20);
      j.close();
      expect(replayAll(dir).length).toBe(100);
    }
  });
});

describe("group commit (fsync always)", () => {
  test("appends written while an fsync is in flight share the next one; every append resolves, in order", async () => {
    const dir = tempDir();
    const j = open(dir, { fsync: "always" });
    j.replay(() => undefined);
    const resolved: number[] = [];
    const first = j.append([{ op: "put", db: "d", coll: "c", doc: { _id: 0 } }]).then(() => resolved.push(0));
    // The first append's fsync is in flight now: these 50 are written and wait for the next one.
    const rest = Array.from({ length: 50 }, (_, i) => j.append([{ op: "put", db: "d", coll: "c", doc: { _id: i + 1 } }]).then(() => resolved.push(i + 1)));
    expect(resolved).toEqual([]); // nothing is acknowledged before an fsync returns
    await Promise.all([first, ...rest]);
    expect(resolved).toEqual(Array.from({ length: 51 }, (_, i) => i));
    const stats = j.groupCommitStats();
    expect({ fsyncs: stats.fsyncs, appends: stats.appends, sizes: [...stats.sizes].sort((a, b) => a[0] - b[0]) }).toEqual({
      fsyncs: 2,
      appends: 51,
      sizes: [
        [1, 1],
        [50, 1],
      ],
    });
    // Sequential appends (each awaited) get an fsync each.
    for (let i = 51; i < 54; i++) await j.append([{ op: "put", db: "d", coll: "c", doc: { _id: i } }]);
    expect(j.groupCommitStats().fsyncs).toBe(5);
    j.close();
    expect(replayAll(dir).length).toBe(54);
  });

  test("appends waiting for an fsync are settled by a close (after its own fsync) and by a compaction's rotation", async () => {
    const dir = tempDir();
    const j = open(dir, { fsync: "always" });
    j.replay(() => undefined);
    const all = Array.from({ length: 10 }, (_, i) => j.append([{ op: "put", db: "d", coll: "c", doc: { _id: i } }]));
    const compacted = j.compact(() => []);
    const more = Array.from({ length: 5 }, (_, i) => j.append([{ op: "put", db: "d", coll: "c", doc: { _id: 10 + i } }]));
    j.close();
    await Promise.all([...all, ...more]);
    await compacted.catch(() => undefined);
    expect(replayAll(dir).filter((o) => o.op === "put").length).toBe(15);
  });
});

describe("torn tail", () => {
  function writeThree(dir: string): string {
    const j = Journal.open(dir);
    j.replay(() => undefined);
    for (let i = 1; i <= 3; i++) j.append([{ op: "put", db: "d", coll: "c", doc: { _id: i, v: "x".repeat(50) } }]);
    j.close();
    return path.join(dir, segments(dir)[0]);
  }

  test("a half-written last record is dropped and cut off; later runs are unaffected", () => {
    const dir = tempDir();
    const seg = writeThree(dir);
    const good = fs.statSync(seg).size;
    // Crash mid-write: the length header and part of a fourth record's payload.
    const torn = Buffer.alloc(40);
    torn.writeUInt32LE(200, 0);
    torn.writeUInt32LE(12345, 4);
    fs.appendFileSync(seg, torn);

    const j = Journal.open(dir);
    const ops: JournalOp[] = [];
    const stats = j.replay((op) => ops.push(op));
    expect(ops.length).toBe(3);
    expect(stats.truncated).toEqual([{ file: path.basename(seg), at: good, dropped: 40 }]);
    expect(fs.statSync(seg).size).toBe(good);
    j.append([{ op: "put", db: "d", coll: "c", doc: { _id: 4 } }]);
    j.close();
    expect(replayAll(dir).map((o) => (o as Extract<JournalOp, { op: "put" }>).doc._id)).toEqual([1, 2, 3, 4]);
  });

  test("a last record whose checksum fails is dropped", () => {
    const dir = tempDir();
    const seg = writeThree(dir);
    const bytes = fs.readFileSync(seg);
    bytes[bytes.length - 3] ^= 0xff; // flip a byte in the third record's payload
    fs.writeFileSync(seg, bytes);
    const ops = replayAll(dir);
    expect(ops.map((o) => (o as Extract<JournalOp, { op: "put" }>).doc._id)).toEqual([1, 2]);
  });

  test("a length header cut short is dropped", () => {
    const dir = tempDir();
    const seg = writeThree(dir);
    fs.appendFileSync(seg, Buffer.from([7, 0, 0]));
    expect(replayAll(dir).length).toBe(3);
    expect(replayAll(dir).length).toBe(3);
  });
});

describe("compaction", () => {
  test("runs in the background while appends continue, then replay rebuilds the same state", async () => {
    const dir = tempDir();
    const j = open(dir, { compactAfterBytes: 64 * 1024, fsync: "batch" });
    j.replay(() => undefined);
    const state = new Map<string, Map<string, Document>>();
    const write = (op: JournalOp) => {
      j.append([op]);
      applyTo(state, op);
    };
    const dump = function* (): Iterable<JournalOp> {
      for (const [ns, docs] of state) {
        const [db, coll] = ns.split(".");
        yield { op: "createColl", db, coll };
        // Copies: the test keeps mutating `state` while the snapshot is written.
        for (const doc of docs.values()) yield { op: "put", db, coll, doc: { ...doc } };
      }
    };

    let compactions = 0;
    let appendsDuringCompaction = 0;
    let running: Promise<void> | null = null;
    for (let i = 0; i < 6000; i++) {
      const id = i % 1500;
      if (i % 7 === 3) write({ op: "del", db: "app", coll: "orders", id: String((id * 13) % 1500) });
      else write({ op: "put", db: "app", coll: "orders", doc: { _id: String(id), v: i, pad: "p".repeat(200) } });
      if (running) appendsDuringCompaction++;
      if (j.wantsCompaction) {
        compactions++;
        running = j.compact(dump).then(() => {
          running = null;
        });
      }
      // Yield now and then so the background writer makes progress between appends.
      if (i % 50 === 0) await new Promise<void>((r) => setImmediate(r));
    }
    await j.idle();
    expect(compactions).toBeGreaterThanOrEqual(2);
    expect(appendsDuringCompaction).toBeGreaterThan(0);
    const files = fs.readdirSync(dir);
    expect(files.filter((f) => f.endsWith(".snap")).length).toBe(1);
    expect(files.filter((f) => f.endsWith(".tmp")).length).toBe(0);
    j.close();

    const replayed = new Map<string, Map<string, Document>>();
    const stats = (() => {
      const r = Journal.open(dir);
      try {
        return r.replay((op) => applyTo(replayed, op));
      } finally {
        r.close();
      }
    })();
    expect(stats.snapshot).not.toBeNull();
    expect(stats.snapshotOps).toBeGreaterThan(0);
    expect(stats.ops).toBeLessThan(6000); // the snapshot replaced most of the history
    const want = state.get("app.orders");
    const got = replayed.get("app.orders");
    expect(got?.size).toBe(want?.size);
    for (const [id, doc] of want ?? []) expect(got?.get(id)).toEqual(doc);
  }, 30_000);

  test("wantsCompaction turns true past the threshold and false once compacted", async () => {
    const dir = tempDir();
    const j = open(dir, { compactAfterBytes: 1000 });
    j.replay(() => undefined);
    expect(j.wantsCompaction).toBe(false);
    for (let i = 0; i < 20; i++) j.append([{ op: "put", db: "d", coll: "c", doc: { _id: i, pad: "y".repeat(100) } }]);
    expect(j.wantsCompaction).toBe(true);
    const p = j.compact(() => [{ op: "put", db: "d", coll: "c", doc: { _id: "all" } }]);
    expect(j.wantsCompaction).toBe(false); // running
    expect(j.compact(() => [])).toBe(p); // one at a time
    await p;
    expect(j.wantsCompaction).toBe(false);
    expect(j.bytesSinceSnapshot).toBe(0);
  });

  test("leftovers of a crash mid-compaction are cleaned up and ignored", async () => {
    const dir = tempDir();
    const j = Journal.open(dir);
    j.replay(() => undefined);
    j.append([{ op: "put", db: "d", coll: "c", doc: { _id: 1 } }]);
    await j.compact(() => [{ op: "put", db: "d", coll: "c", doc: { _id: 1 } }]);
    j.append([{ op: "put", db: "d", coll: "c", doc: { _id: 2 } }]);
    j.close();
    // A half-written snapshot from a process that died, and an old segment a snapshot supersedes.
    fs.writeFileSync(path.join(dir, "snapshot-0000000000000099.4242.tmp"), "garbage");
    fs.writeFileSync(path.join(dir, "journal-0000000000000000.log"), Buffer.alloc(0));
    const ops = replayAll(dir);
    expect(ops.map((o) => (o as Extract<JournalOp, { op: "put" }>).doc._id)).toEqual([1, 2]);
    const files = fs.readdirSync(dir);
    expect(files.some((f) => f.endsWith(".tmp"))).toBe(false);
    expect(files.includes("journal-0000000000000000.log")).toBe(false);
  });

  test("close during a compaction abandons it without losing data", async () => {
    const dir = tempDir();
    const j = Journal.open(dir, { fsync: "never" });
    j.replay(() => undefined);
    const docs: JournalOp[] = [];
    for (let i = 0; i < 3000; i++) docs.push({ op: "put", db: "d", coll: "c", doc: { _id: i, pad: "z".repeat(1000) } });
    for (const d of docs) j.append([d]);
    const p = j.compact(() => docs);
    j.close();
    await p.catch(() => undefined);
    expect(fs.readdirSync(dir).some((f) => f.endsWith(".tmp"))).toBe(false);
    expect(replayAll(dir).length).toBe(3000);
  });
});

describe("lock", () => {
  test("a second open in the same process is refused until the first closes", () => {
    const dir = tempDir();
    const j = Journal.open(dir);
    expect(() => Journal.open(dir)).toThrow(DataDirLockedError);
    j.close();
    open(dir);
  });

  test("another live process holding the dir gets a clear error naming dir and pid; after kill -9 the lock is taken over", async () => {
    const dir = tempDir();
    const child = Bun.spawn(["bun", WRITER, dir, "hold"], { stdout: "pipe", stderr: "inherit" });
    children.push(child);
    const out = lines(child);
    const first = await out.next();
    expect(first.value).toBe(`ready ${child.pid}`);

    let err: unknown;
    try {
      Journal.open(dir);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DataDirLockedError);
    expect((err as DataDirLockedError).pid).toBe(child.pid);
    expect((err as Error).message).toContain(path.resolve(dir));
    expect((err as Error).message).toContain(`pid ${child.pid}`);

    child.kill(9);
    await child.exited;
    const j = open(dir); // the dead owner's LOCK file is still there: taken over
    expect(fs.readFileSync(path.join(dir, "LOCK"), "utf8").trim()).toBe(String(process.pid));
    j.close();
  }, 30_000);
});

describe("kill -9", () => {
  test("every acknowledged append survives a SIGKILL mid-stream", async () => {
    const dir = tempDir();
    const child = Bun.spawn(["bun", WRITER, dir, "write"], { stdout: "pipe", stderr: "inherit" });
    children.push(child);
    let acked = 0;
    for await (const line of lines(child)) {
      if (line.startsWith("ready")) continue;
      acked = Number(line);
      if (acked >= 400) {
        child.kill(9);
        break;
      }
    }
    await child.exited;
    const ids = new Set(replayAll(dir).map((o) => (o as Extract<JournalOp, { op: "put" }>).doc._id as number));
    for (let i = 1; i <= acked; i++) expect(ids.has(i)).toBe(true);
    // Nothing beyond what the writer could have appended, and no gaps.
    expect(Math.max(...ids)).toBe(ids.size);
  }, 30_000);
});

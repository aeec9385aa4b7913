// The wire front end through the official driver and a raw socket: handshake, topology,
// OP_COMPRESSED, partial reads, moreToCome and unknown commands.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connect, type Socket } from "node:net";
import { deflateSync, inflateSync } from "node:zlib";
import { type Document, deserialize, serialize } from "bson";
import { MongoClient, MongoServerError } from "mongodb";
import { type TestMongo, startTestMongo } from "../helpers/embedded-mongo";

let mongo: TestMongo;
beforeAll(async () => {
  mongo = await startTestMongo();
});
afterAll(() => mongo.close());

async function withClient<T>(uri: string, options: ConstructorParameters<typeof MongoClient>[1], fn: (c: MongoClient) => Promise<T>): Promise<T> {
  const client = new MongoClient(uri, { serverSelectionTimeoutMS: 5_000, ...options });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}

describe("connecting with the official driver", () => {
  test("a plain mongodb://127.0.0.1:PORT/ URI connects and pings", async () => {
    expect(mongo.uri).toBe(`mongodb://127.0.0.1:${mongo.engine.port}/`);
    expect(await mongo.client.db("admin").command({ ping: 1 })).toMatchObject({ ok: 1 });
  });

  test("the engine presents itself as a single-node replica-set primary on wire version 21", async () => {
    const hello = await mongo.client.db("admin").command({ hello: 1 });
    expect(hello.isWritablePrimary).toBe(true);
    expect(hello.setName).toBe("rs0");
    expect(hello.hosts).toEqual([`127.0.0.1:${mongo.engine.port}`]);
    expect(hello.maxWireVersion).toBeGreaterThanOrEqual(17);
    expect(hello.logicalSessionTimeoutMinutes).toBe(30);
    expect(hello.topologyVersion).toBeUndefined();
    expect(mongo.client.options.replicaSet).toBeUndefined();
    const buildInfo = await mongo.client.db("admin").command({ buildInfo: 1 });
    expect(buildInfo.version).toBe("7.0.0");
  });

  test("directConnection=true and a localhost URI work too", async () => {
    const port = mongo.engine.port;
    for (const uri of [`mongodb://127.0.0.1:${port}/?directConnection=true`, `mongodb://localhost:${port}/`]) {
      const n = await withClient(uri, {}, async (c) => {
        await c.db("conn").collection("c").insertOne({ uri });
        return c.db("conn").collection("c").countDocuments({ uri });
      });
      expect(n).toBe(1);
    }
  });

  test("an unknown command fails with CommandNotFound (59)", async () => {
    const err = await mongo.client.db("admin").command({ noSuchCommand: 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MongoServerError);
    expect((err as MongoServerError).code).toBe(59);
    expect((err as MongoServerError).codeName).toBe("CommandNotFound");
  });
});

describe("large messages", () => {
  test("multi-megabyte documents and replies cross the socket intact (partial reads and writes)", async () => {
    const coll = mongo.client.db("large").collection<{ _id: number; blob: string }>("docs");
    const blob = (i: number) => String.fromCharCode(65 + i).repeat(3 * 1024 * 1024);
    for (let i = 0; i < 8; i++) await coll.insertOne({ _id: i, blob: blob(i) });
    // 24 MiB of results: more than one 16 MiB reply, each written in many socket writes.
    const docs = await coll.find({}).sort({ _id: 1 }).toArray();
    expect(docs).toHaveLength(8);
    docs.forEach((d, i) => {
      expect(d._id).toBe(i);
      expect(d.blob === blob(i)).toBe(true);
    });
  }, 30_000);
});

describe("OP_COMPRESSED", () => {
  test("a client offering zlib sends compressed frames the engine decompresses", async () => {
    const status = () => mongo.client.db("admin").command({ serverStatus: 1 });
    const before = (await status()).network.compression.zlib.decompressor.messages as number;
    const docs = await withClient(mongo.uri, { compressors: ["zlib"] }, async (c) => {
      const coll = c.db("compressed").collection("c");
      await coll.insertMany(Array.from({ length: 50 }, (_, i) => ({ i, text: "compress me ".repeat(20) })));
      return coll.find({ i: { $lt: 5 } }).toArray();
    });
    expect(docs.map((d) => d.i)).toEqual([0, 1, 2, 3, 4]);
    const after = (await status()).network.compression.zlib;
    expect(after.decompressor.messages).toBeGreaterThan(before);
    expect(after.compressor.bytesOut).toBeGreaterThan(0);
  }, 30_000);
});

// ---- raw socket helpers -------------------------------------------------------------------

let requestId = 1;

function opMsg(body: Document, flags = 0): Buffer {
  const bson = serialize(body);
  const buf = Buffer.alloc(16 + 4 + 1 + bson.length);
  buf.writeInt32LE(buf.length, 0);
  buf.writeInt32LE(requestId++, 4);
  buf.writeInt32LE(0, 8);
  buf.writeInt32LE(2013, 12);
  buf.writeUInt32LE(flags, 16);
  buf[20] = 0;
  Buffer.from(bson).copy(buf, 21);
  return buf;
}

function opQuery(collection: string, query: Document): Buffer {
  const name = Buffer.from(`${collection}\0`);
  const bson = Buffer.from(serialize(query));
  const buf = Buffer.alloc(16 + 4 + name.length + 8 + bson.length);
  buf.writeInt32LE(buf.length, 0);
  buf.writeInt32LE(requestId++, 4);
  buf.writeInt32LE(2004, 12);
  name.copy(buf, 20);
  buf.writeInt32LE(0, 20 + name.length);
  buf.writeInt32LE(-1, 24 + name.length);
  bson.copy(buf, 28 + name.length);
  return buf;
}

function compressed(frame: Buffer): Buffer {
  const body = frame.subarray(16);
  const payload = deflateSync(body);
  const buf = Buffer.alloc(16 + 9 + payload.length);
  buf.writeInt32LE(buf.length, 0);
  buf.writeInt32LE(frame.readInt32LE(4), 4);
  buf.writeInt32LE(2012, 12);
  buf.writeInt32LE(frame.readInt32LE(12), 16);
  buf.writeInt32LE(body.length, 20);
  buf[24] = 2; // zlib
  payload.copy(buf, 25);
  return buf;
}

/** A raw connection that collects whole reply frames. */
class RawClient {
  private buffer = Buffer.alloc(0);
  private waiters: ((frame: Buffer) => void)[] = [];
  private frames: Buffer[] = [];
  private constructor(private readonly socket: Socket) {
    socket.on("data", (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      while (this.buffer.length >= 4 && this.buffer.length >= this.buffer.readInt32LE(0)) {
        const len = this.buffer.readInt32LE(0);
        const frame = this.buffer.subarray(0, len);
        this.buffer = this.buffer.subarray(len);
        const w = this.waiters.shift();
        if (w) w(frame);
        else this.frames.push(frame);
      }
    });
  }

  static open(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, "127.0.0.1", () => resolve(new RawClient(socket)));
      socket.once("error", reject);
    });
  }

  write(data: Buffer): Promise<void> {
    return new Promise((resolve) => this.socket.write(data, () => resolve()));
  }

  next(): Promise<Buffer> {
    const f = this.frames.shift();
    if (f) return Promise.resolve(f);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  close(): void {
    this.socket.destroy();
  }
}

/** The reply document of an OP_MSG, OP_REPLY or OP_COMPRESSED frame, with its opCode. */
function replyOf(frame: Buffer): { opCode: number; doc: Document; responseTo: number } {
  let opCode = frame.readInt32LE(12);
  let body = frame.subarray(16);
  if (opCode === 2012) {
    opCode = body.readInt32LE(0);
    body = inflateSync(body.subarray(9));
  }
  const doc = opCode === 1 ? deserialize(body.subarray(20)) : deserialize(body.subarray(5));
  return { opCode, doc, responseTo: frame.readInt32LE(8) };
}

describe("wire protocol framing", () => {
  test("the legacy OP_QUERY handshake is answered with OP_REPLY, later commands with OP_MSG", async () => {
    const raw = await RawClient.open(mongo.engine.port);
    try {
      const q = opQuery("admin.$cmd", { isMaster: 1, helloOk: true });
      await raw.write(q);
      const hello = replyOf(await raw.next());
      expect(hello.opCode).toBe(1);
      expect(hello.responseTo).toBe(q.readInt32LE(4));
      expect(hello.doc.ismaster).toBe(true);
      expect(hello.doc.maxWireVersion).toBe(21);
      await raw.write(opMsg({ ping: 1, $db: "admin" }));
      const ping = replyOf(await raw.next());
      expect(ping.opCode).toBe(2013);
      expect(ping.doc).toMatchObject({ ok: 1 });
    } finally {
      raw.close();
    }
  });

  test("messages split across writes (and several in one write) are reassembled", async () => {
    const raw = await RawClient.open(mongo.engine.port);
    try {
      const insert = opMsg({ insert: "frames", documents: [{ _id: 1, s: "x".repeat(5000) }], $db: "wire" });
      for (let i = 0; i < insert.length; i += 7) {
        await raw.write(insert.subarray(i, Math.min(i + 7, insert.length)));
      }
      expect(replyOf(await raw.next()).doc).toMatchObject({ n: 1, ok: 1 });
      const two = Buffer.concat([opMsg({ count: "frames", $db: "wire" }), opMsg({ ping: 1, $db: "admin" })]);
      await raw.write(two);
      expect(replyOf(await raw.next()).doc).toMatchObject({ n: 1, ok: 1 });
      expect(replyOf(await raw.next()).doc).toMatchObject({ ok: 1 });
    } finally {
      raw.close();
    }
  });

  test("moreToCome gets no reply but the write is applied; kind-1 document sequences are read", async () => {
    const raw = await RawClient.open(mongo.engine.port);
    try {
      await raw.write(opMsg({ insert: "fireAndForget", documents: [{ _id: "a" }], $db: "wire" }, 2));
      // A kind-1 section carries the documents outside the body.
      const body = Buffer.from(serialize({ insert: "fireAndForget", $db: "wire" }));
      const docs = [Buffer.from(serialize({ _id: "b" })), Buffer.from(serialize({ _id: "c" }))];
      const ident = Buffer.from("documents\0");
      const seqSize = 4 + ident.length + docs[0].length + docs[1].length;
      const frame = Buffer.alloc(16 + 4 + 1 + body.length + 1 + seqSize);
      frame.writeInt32LE(frame.length, 0);
      frame.writeInt32LE(requestId++, 4);
      frame.writeInt32LE(2013, 12);
      let o = 20;
      frame[o++] = 0;
      body.copy(frame, o);
      o += body.length;
      frame[o++] = 1;
      frame.writeInt32LE(seqSize, o);
      o += 4;
      ident.copy(frame, o);
      o += ident.length;
      for (const d of docs) {
        d.copy(frame, o);
        o += d.length;
      }
      await raw.write(frame);
      const reply = replyOf(await raw.next());
      expect(reply.responseTo).toBe(frame.readInt32LE(4));
      expect(reply.doc).toMatchObject({ n: 2, ok: 1 });
      const ids: unknown[] = await mongo.client.db("wire").collection("fireAndForget").distinct("_id");
      expect(ids).toEqual(["a", "b", "c"]);
    } finally {
      raw.close();
    }
  });

  test("a zlib OP_COMPRESSED request is answered compressed", async () => {
    const raw = await RawClient.open(mongo.engine.port);
    try {
      await raw.write(compressed(opMsg({ ping: 1, $db: "admin" })));
      const frame = await raw.next();
      expect(frame.readInt32LE(12)).toBe(2012);
      expect(replyOf(frame).doc).toMatchObject({ ok: 1 });
    } finally {
      raw.close();
    }
  });
});

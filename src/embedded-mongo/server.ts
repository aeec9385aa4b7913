// The TCP front end: frames requests out of the byte stream (partial reads are buffered),
// runs them one at a time per connection, and queues replies until the socket drains.

import type { Socket, TCPSocketListener } from "bun";
import type { Document } from "bson";
import type { CommandDispatcher, ConnectionInfo } from "./commands";
import type { Engine } from "./engine";
import {
  type CompressorId,
  HEADER_SIZE,
  MAX_MESSAGE_SIZE,
  compressFrame,
  decodeFrame,
  encodeMsgReply,
  encodeOpReply,
} from "./wire";

/** Commands whose replies are never compressed (as mongod, per the compression spec). */
const UNCOMPRESSIBLE = new Set(["hello", "isMaster", "ismaster", "saslStart", "saslContinue", "getnonce", "authenticate", "createUser", "updateUser", "copydbSaslStart", "copydbgetnonce", "copydb"]);

class Connection implements ConnectionInfo {
  readonly id: number;
  compressors: string[] = [];
  appName: string | null = null;
  private readonly socket: Socket<Connection>;
  private readonly engine: Engine;
  private readonly dispatcher: CommandDispatcher;
  private chunks: Buffer[] = [];
  private buffered = 0;
  private readonly inbox: Buffer[] = [];
  private readonly outbox: Buffer[] = [];
  private processing = false;
  private closed = false;

  constructor(id: number, socket: Socket<Connection>, engine: Engine, dispatcher: CommandDispatcher) {
    this.id = id;
    this.socket = socket;
    this.engine = engine;
    this.dispatcher = dispatcher;
  }

  /**
   * Buffers a chunk and queues every complete frame. Chunks are copied once on arrival (the
   * socket may reuse its buffer) and joined only when a whole frame is there, so a large
   * message arriving in many small reads is not copied over and over.
   */
  onData(chunk: Buffer): void {
    this.engine.counters.bytesIn += chunk.length;
    this.chunks.push(Buffer.from(chunk));
    this.buffered += chunk.length;
    while (this.buffered >= 4) {
      const length = this.peekLength();
      if (length < HEADER_SIZE || length > MAX_MESSAGE_SIZE) {
        this.engine.log.warn("invalid message length, closing connection", { connectionId: this.id, length });
        this.close();
        return;
      }
      if (this.buffered < length) break;
      this.inbox.push(this.take(length));
    }
    void this.processInbox();
  }

  private peekLength(): number {
    if (this.chunks[0].length < 4) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0].readInt32LE(0);
  }

  /** Removes and returns the first `n` buffered bytes. */
  private take(n: number): Buffer {
    let head = this.chunks[0];
    if (head.length < n) {
      head = Buffer.concat(this.chunks);
      this.chunks = [head];
    }
    const frame = head.subarray(0, n);
    if (head.length === n) this.chunks.shift();
    else this.chunks[0] = head.subarray(n);
    this.buffered -= n;
    return frame;
  }

  private async processInbox(): Promise<void> {
    if (this.processing) return;
    this.processing = true;
    try {
      while (!this.closed && this.inbox.length > 0) await this.handleFrame(this.inbox.shift() as Buffer);
    } catch (err) {
      // A bug, not a client error (those become error replies): drop this connection, keep serving others.
      this.engine.log.error("connection failed", { connectionId: this.id, error: String(err), stack: err instanceof Error ? err.stack : undefined });
      this.close();
    } finally {
      this.processing = false;
    }
  }

  private async handleFrame(frame: Buffer): Promise<void> {
    this.engine.counters.requests++;
    let decoded: ReturnType<typeof decodeFrame>;
    try {
      decoded = decodeFrame(frame);
    } catch (err) {
      this.engine.log.warn("malformed message, closing connection", { connectionId: this.id, error: String(err) });
      this.close();
      return;
    }
    const { request, compressor } = decoded;
    if (compressor !== null) {
      this.engine.counters.compressedMessagesIn++;
      this.engine.counters.compressedIn += decoded.compressedBytes ?? 0;
      this.engine.counters.decompressedIn += decoded.uncompressedBytes ?? 0;
    }
    let cmd: Document;
    let defaultDb: string;
    if (request.kind === "query") {
      // Legacy OP_QUERY is only used for the first handshake: `db.$cmd` with the command as the query.
      cmd = unwrapLegacyQuery(request.query);
      defaultDb = request.fullCollectionName.split(".")[0] || "admin";
    } else {
      cmd = request.body;
      defaultDb = "admin";
    }
    const result = await this.dispatcher.dispatch(cmd, defaultDb, this);
    if ("close" in result) {
      this.close();
      return;
    }
    if (request.kind === "msg" && request.moreToCome) return;
    const encode = (doc: Document): Buffer =>
      request.kind === "query" ? encodeOpReply(0, request.requestId, doc) : encodeMsgReply(0, request.requestId, doc);
    let out: Buffer;
    try {
      out = encode(result.reply);
    } catch (err) {
      // e.g. a reply over the BSON size limit: answer with an error rather than nothing.
      out = encode({ ok: 0, errmsg: `could not encode the reply: ${String(err)}`, code: 10334, codeName: "BSONObjectTooLarge" });
    }
    if (compressor !== null && !UNCOMPRESSIBLE.has(Object.keys(cmd)[0] ?? "")) {
      const before = out.length;
      out = compressFrame(out, compressor as CompressorId);
      this.engine.counters.uncompressedOut += before - HEADER_SIZE;
      this.engine.counters.compressedOut += out.length - HEADER_SIZE - 9;
    }
    this.send(out);
  }

  private send(data: Buffer): void {
    if (this.closed) return;
    this.engine.counters.bytesOut += data.length;
    if (this.outbox.length > 0) {
      this.outbox.push(data);
      return;
    }
    const written = this.socket.write(data);
    if (written < 0) return this.close();
    if (written < data.length) this.outbox.push(data.subarray(written));
  }

  /** The socket can take more: flush queued reply bytes in order. */
  onDrain(): void {
    while (this.outbox.length > 0) {
      const head = this.outbox[0];
      const written = this.socket.write(head);
      if (written < 0) return this.close();
      if (written < head.length) {
        this.outbox[0] = head.subarray(written);
        return;
      }
      this.outbox.shift();
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.end();
  }

  onClose(): void {
    this.closed = true;
  }
}

function unwrapLegacyQuery(query: Document): Document {
  // Drivers may wrap the command as {$query: {...}, $readPreference: ...}.
  if (query.$query && typeof query.$query === "object") return query.$query as Document;
  return query;
}

export interface ServerHandle {
  readonly port: number;
  stop(): Promise<void>;
}

export function listen(engine: Engine, dispatcher: CommandDispatcher, opts: { host: string; port: number }): ServerHandle {
  let nextId = 1;
  const connections = new Set<Connection>();
  const listener: TCPSocketListener<Connection> = Bun.listen<Connection>({
    hostname: opts.host,
    port: opts.port,
    socket: {
      open(socket) {
        const conn = new Connection(nextId++, socket, engine, dispatcher);
        socket.data = conn;
        connections.add(conn);
        engine.counters.connectionsCurrent++;
        engine.counters.connectionsTotal++;
      },
      data(socket, chunk) {
        socket.data.onData(chunk);
      },
      drain(socket) {
        socket.data.onDrain();
      },
      close(socket) {
        socket.data.onClose();
        connections.delete(socket.data);
        engine.counters.connectionsCurrent--;
      },
      error(socket, err) {
        engine.log.debug("socket error", { connectionId: socket.data?.id, error: String(err) });
      },
    },
  });
  return {
    port: listener.port,
    async stop() {
      for (const c of connections) c.close();
      listener.stop(true);
    },
  };
}

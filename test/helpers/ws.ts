import { connect, type Socket } from "node:net";
import { createHash, randomBytes } from "node:crypto";

export type Frame = Record<string, any>;

/**
 * A real WebSocket client (Bun's global WebSocket) that records every frame, so a test can
 * await the next matching one instead of sleeping.
 */
export class WsClient {
  readonly frames: Frame[] = [];
  readonly ws: WebSocket;
  closeCode: number | null = null;
  closeReason = "";
  private cursor = 0;
  private wake: (() => void) | null = null;
  readonly closed: Promise<{ code: number; reason: string }>;

  private constructor(url: string) {
    this.ws = new WebSocket(url);
    this.ws.onmessage = (e) => {
      this.frames.push(typeof e.data === "string" ? (JSON.parse(e.data) as Frame) : { binary: true });
      this.wake?.();
    };
    this.closed = new Promise((resolve) => {
      this.ws.onclose = (e) => {
        this.closeCode = e.code;
        this.closeReason = e.reason;
        this.wake?.();
        resolve({ code: e.code, reason: e.reason });
      };
    });
  }

  /** Opens a connection; rejects when the upgrade is refused. */
  static async open(baseWsUrl: string, token: string | null): Promise<WsClient> {
    const client = new WsClient(token === null ? baseWsUrl : `${baseWsUrl}?token=${encodeURIComponent(token)}`);
    await new Promise<void>((resolve, reject) => {
      client.ws.onopen = () => resolve();
      client.ws.onerror = () => reject(new Error("websocket upgrade failed"));
    });
    return client;
  }

  send(message: unknown): void {
    this.ws.send(typeof message === "string" ? message : JSON.stringify(message));
  }

  /** The next frame after the ones already taken that matches; frames skipped over stay readable via `frames`. */
  async next(match: (f: Frame) => boolean = () => true, timeoutMs = 5_000): Promise<Frame> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      while (this.cursor < this.frames.length) {
        const frame = this.frames[this.cursor++];
        if (match(frame)) return frame;
      }
      if (this.closeCode !== null) throw new Error(`socket closed (${this.closeCode}) before a matching frame; got ${JSON.stringify(this.frames.slice(-5))}`);
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`no matching frame within ${timeoutMs} ms; got ${JSON.stringify(this.frames.slice(-5))}`);
      await this.nextFrameOrTimeout(left);
    }
  }

  /** Waits until `check` holds over everything received so far (does not move the `next` cursor). */
  async until(check: (frames: Frame[]) => boolean, timeoutMs = 5_000): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (!check(this.frames)) {
      if (this.closeCode !== null) throw new Error(`socket closed (${this.closeCode}) before the condition held`);
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`condition not met within ${timeoutMs} ms; last frames ${JSON.stringify(this.frames.slice(-5))}`);
      await this.nextFrameOrTimeout(left);
    }
  }

  /** Resolves when the next frame (or the close) arrives, or after `ms`. */
  private async nextFrameOrTimeout(ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.wake = null;
  }

  /** Subscribes and waits for the ack (or the error). */
  async subscribe(topic: string, since?: number): Promise<Frame> {
    this.send(since === undefined ? { op: "subscribe", topic } : { op: "subscribe", topic, since });
    return this.next((f) => (f.type === "subscribed" || f.type === "error") && f.topic === topic);
  }

  /** Sends a ping and returns every frame that arrived before the pong (a barrier: nothing else is in flight). */
  async drain(): Promise<Frame[]> {
    const start = this.cursor;
    this.send({ op: "ping" });
    await this.next((f) => f.type === "pong");
    return this.frames.slice(start, this.cursor - 1);
  }

  /** Order events of one topic received so far, as seqs. */
  seqs(topic: string, type?: string): number[] {
    return this.frames.filter((f) => f.topic === topic && (type ? f.type === type : f.type === "order.updated" || f.type === "order.created")).map((f) => f.seq as number);
  }

  close(): void {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close();
  }
}

/**
 * A hand-rolled WebSocket client over a raw TCP socket, for what a browser client cannot do:
 * stop reading (a slow consumer) or never answer pings (a dead peer).
 */
export class RawWsClient {
  private buffered = Buffer.alloc(0);
  private ended = false;
  private waiters: Array<() => void> = [];

  private constructor(readonly socket: Socket) {
    socket.on("data", (chunk: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, chunk]);
      this.notify();
    });
    socket.on("close", () => {
      this.ended = true;
      this.notify();
    });
    socket.on("error", () => {
      this.ended = true;
      this.notify();
    });
  }

  static async open(port: number, token: string): Promise<RawWsClient> {
    const socket = connect({ host: "127.0.0.1", port });
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", () => resolve());
      socket.once("error", reject);
    });
    const client = new RawWsClient(socket);
    const key = randomBytes(16).toString("base64");
    socket.write(
      `GET /ws?token=${encodeURIComponent(token)} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    const head = await client.readUntil((buf) => {
      const end = buf.indexOf("\r\n\r\n");
      return end < 0 ? null : end + 4;
    });
    const text = head.toString("latin1");
    const accept = createHash("sha1").update(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest("base64");
    if (!text.startsWith("HTTP/1.1 101") || !text.includes(accept)) throw new Error(`upgrade failed: ${text.split("\r\n")[0]}`);
    return client;
  }

  /** Sends one masked text frame (clients must mask). */
  sendText(text: string): void {
    const payload = Buffer.from(text);
    const mask = randomBytes(4);
    const header =
      payload.length < 126
        ? Buffer.from([0x81, 0x80 | payload.length])
        : Buffer.from([0x81, 0x80 | 126, payload.length >> 8, payload.length & 0xff]);
    const masked = Buffer.alloc(payload.length);
    for (let i = 0; i < payload.length; i++) masked[i] = payload[i] ^ mask[i % 4];
    this.socket.write(Buffer.concat([header, mask, masked]));
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  get isEnded(): boolean {
    return this.ended;
  }

  /** Reads frames until a close frame (returns its code) or the end of the stream (null). */
  async readUntilClose(timeoutMs = 10_000): Promise<{ code: number | null; textFrames: number; pings: number }> {
    const deadline = performance.now() + timeoutMs;
    let textFrames = 0;
    let pings = 0;
    for (;;) {
      const frame = this.takeFrame();
      if (frame) {
        if (frame.opcode === 0x8) return { code: frame.payload.length >= 2 ? frame.payload.readUInt16BE(0) : null, textFrames, pings };
        if (frame.opcode === 0x1) textFrames++;
        if (frame.opcode === 0x9) pings++;
        continue;
      }
      if (this.ended) return { code: null, textFrames, pings };
      const left = deadline - performance.now();
      if (left <= 0) throw new Error("no close frame in time");
      await this.wait(left);
    }
  }

  /** Reads the next text frame's payload. */
  async nextText(timeoutMs = 5_000): Promise<string> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const frame = this.takeFrame();
      if (frame?.opcode === 0x1) return frame.payload.toString("utf8");
      if (frame) continue;
      if (this.ended) throw new Error("stream ended");
      const left = deadline - performance.now();
      if (left <= 0) throw new Error("no text frame in time");
      await this.wait(left);
    }
  }

  destroy(): void {
    this.socket.destroy();
  }

  private takeFrame(): { opcode: number; payload: Buffer } | null {
    const buf = this.buffered;
    if (buf.length < 2) return null;
    let len = buf[1] & 0x7f;
    let offset = 2;
    if (len === 126) {
      if (buf.length < 4) return null;
      len = buf.readUInt16BE(2);
      offset = 4;
    } else if (len === 127) {
      if (buf.length < 10) return null;
      len = Number(buf.readBigUInt64BE(2));
      offset = 10;
    }
    if (buf.length < offset + len) return null;
    const frame = { opcode: buf[0] & 0x0f, payload: buf.subarray(offset, offset + len) };
    this.buffered = buf.subarray(offset + len);
    return frame;
  }

  private async readUntil(complete: (buf: Buffer) => number | null): Promise<Buffer> {
    for (;;) {
      const end = complete(this.buffered);
      if (end !== null) {
        const out = this.buffered.subarray(0, end);
        this.buffered = this.buffered.subarray(end);
        return out;
      }
      if (this.ended) throw new Error("stream ended during handshake");
      await this.wait(5_000);
    }
  }

  private wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.waiters.push(done);
    });
  }

  private notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}

/**
 * The subscriber side of `bun run bench:ws`, in its own process so the subscribers do not run on
 * the server's event loop. Commands arrive as JSON lines on stdin, answers leave as JSON lines
 * on stdout.
 *
 * Each subscriber is a minimal WebSocket client over a raw TCP socket (Bun.connect): the receive
 * path stamps the time when the socket hands bytes over (`performance.timeOrigin +
 * performance.now()`, comparable across processes on one machine), cuts frames, and reads only
 * the event's key (orderId and seq) from the start of each; no JSON is parsed. That keeps the
 * client's cost per event to a few microseconds, so what is timed is mostly the server. The same
 * code speaks dispatch's protocol and Socket.IO's wire protocol (Engine.IO v4 over the websocket
 * transport: open `0{…}`, connect `40{auth}`, event `42[…]`, ack `43<id>[…]`, ping `2` / pong
 * `3`), so both servers face the same client.
 */
import type { Socket } from "bun";
import { randomBytes } from "node:crypto";

type Protocol = "dispatch" | "socketio";

type OpenCommand = {
  cmd: "open";
  protocol: Protocol;
  /** ws://host:port of each instance. */
  urls: string[];
  token: string;
  /** One entry per connection: [index into urls, topics to subscribe]. */
  plan: Array<[number, string[]]>;
  /** Handshakes in flight at once. */
  concurrency: number;
  /** Give up after this many failed connections (capacity probing). */
  maxFailures: number;
};

type Command =
  | OpenCommand
  /** Answer `{reached: id}` once each key ("orderId:seq") has been delivered n times. */
  | { cmd: "await"; id: number; keys: Array<[string, number]> }
  | { cmd: "collect" }
  | { cmd: "reset" }
  | { cmd: "clock" }
  /** Answer `{sample}`: the first dispatch-protocol event frame since the last sample (the floor pushes the same bytes). */
  | { cmd: "sample" }
  | { cmd: "close" }
  | { cmd: "exit" };

const now = () => performance.timeOrigin + performance.now();
const out = (line: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(line)}\n`);
const utf8 = new TextDecoder();

type Conn = {
  socket: Socket<undefined> | null;
  url: number;
  protocol: Protocol;
  /** Bytes received and not yet cut into frames. */
  buf: Uint8Array | null;
  phase: "handshake" | "setup" | "live" | "closed";
  /** Text frames before the connection goes live (handshake, acks). */
  onSetupText: (text: string) => void;
  onClosed: (why: string) => void;
};

let conns: Conn[] = [];

// Recorded events: parallel arrays keep the hot path to a few pushes.
let stamps: number[] = [];
let keys: string[] = [];
let sizes: number[] = [];
let urlOf: number[] = [];
/** Deliveries per "orderId:seq", and the keys an `await` still waits for. */
let counts = new Map<string, number>();
let waiting: { id: number; need: Map<string, number> } | null = null;
let sample: string | null = null;

/** One masked client frame (RFC 6455 §5.3: clients mask). */
function frame(opcode: number, payload: Uint8Array): Uint8Array {
  const len = payload.length;
  const head = len < 126 ? 2 : len < 65536 ? 4 : 10;
  const out = new Uint8Array(head + 4 + len);
  out[0] = 0x80 | opcode;
  if (len < 126) out[1] = 0x80 | len;
  else if (len < 65536) {
    out[1] = 0x80 | 126;
    out[2] = len >> 8;
    out[3] = len & 0xff;
  } else {
    out[1] = 0x80 | 127;
    new DataView(out.buffer).setBigUint64(2, BigInt(len));
  }
  const mask = randomBytes(4);
  out.set(mask, head);
  for (let i = 0; i < len; i++) out[head + 4 + i] = payload[i] ^ mask[i & 3];
  return out;
}

function sendText(conn: Conn, text: string): void {
  conn.socket?.write(frame(0x1, new TextEncoder().encode(text)));
}

function onData(conn: Conn, chunk: Uint8Array): void {
  const t = now();
  let buf: Uint8Array = conn.buf ? concat(conn.buf, chunk) : chunk;
  if (conn.phase === "handshake") {
    const end = indexOfHeadEnd(buf);
    if (end < 0) {
      conn.buf = buf;
      return;
    }
    const head = utf8.decode(buf.subarray(0, end));
    if (!head.startsWith("HTTP/1.1 101")) return conn.onClosed(`upgrade refused: ${head.split("\r\n")[0]}`);
    buf = buf.subarray(end + 4);
    conn.phase = "setup";
    if (conn.protocol === "dispatch") conn.onSetupText(""); // open: dispatch needs no further handshake
  }
  for (;;) {
    if (buf.length < 2) break;
    const opcode = buf[0] & 0x0f;
    let len = buf[1] & 0x7f;
    let offset = 2;
    if (len === 126) {
      if (buf.length < 4) break;
      len = (buf[2] << 8) | buf[3];
      offset = 4;
    } else if (len === 127) {
      if (buf.length < 10) break;
      len = Number(new DataView(buf.buffer, buf.byteOffset + 2, 8).getBigUint64(0));
      offset = 10;
    }
    if (buf.length < offset + len) break;
    const payload = buf.subarray(offset, offset + len);
    buf = buf.subarray(offset + len);
    if (opcode === 0x1) {
      if (conn.phase === "live") {
        // Socket.IO keeps the connection alive with text pings ("2") that want a "3".
        if (conn.protocol === "socketio" && len === 1 && payload[0] === 0x32) sendText(conn, "3");
        else record(conn, t, payload);
      } else conn.onSetupText(utf8.decode(payload));
    } else if (opcode === 0x9) conn.socket?.write(frame(0xa, payload));
    else if (opcode === 0x8) {
      conn.phase = "closed";
      conn.onClosed(`close frame ${len >= 2 ? (payload[0] << 8) | payload[1] : ""}`);
      return;
    }
  }
  conn.buf = buf.length ? buf.slice() : null; // copy: the socket may reuse its read buffer
}

/** Both servers put `"orderId":"…","seq":N` near the start of an event; anything else (acks, positions) is not an order event. */
const EVENT_KEY = /"orderId":"([^"]+)","seq":(\d+)/;

function record(conn: Conn, t: number, payload: Uint8Array): void {
  const m = EVENT_KEY.exec(utf8.decode(payload.subarray(0, 320)));
  if (!m) return;
  const key = `${m[1]}:${m[2]}`;
  if (sample === null && conn.protocol === "dispatch") sample = utf8.decode(payload);
  stamps.push(t);
  keys.push(key);
  sizes.push(payload.length);
  urlOf.push(conn.url);
  const n = (counts.get(key) ?? 0) + 1;
  counts.set(key, n);
  if (waiting && waiting.need.get(key) === n) {
    waiting.need.delete(key);
    if (waiting.need.size === 0) {
      out({ reached: waiting.id });
      waiting = null;
    }
  }
}

function awaitKeys(id: number, wanted: Array<[string, number]>): void {
  const need = new Map<string, number>();
  for (const [key, n] of wanted) if ((counts.get(key) ?? 0) < n) need.set(key, n);
  if (need.size === 0) out({ reached: id });
  else waiting = { id, need };
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const c = new Uint8Array(a.length + b.length);
  c.set(a);
  c.set(b, a.length);
  return c;
}

function indexOfHeadEnd(buf: Uint8Array): number {
  for (let i = 0; i + 3 < buf.length; i++) if (buf[i] === 13 && buf[i + 1] === 10 && buf[i + 2] === 13 && buf[i + 3] === 10) return i;
  return -1;
}

/** Opens one connection, subscribes its topics, resolves once every ack is in. */
function openOne(protocol: Protocol, url: string, urlIndex: number, token: string, topics: string[]): Promise<Conn> {
  const { hostname, port } = new URL(url);
  const path = protocol === "dispatch" ? `/ws?token=${encodeURIComponent(token)}` : "/socket.io/?EIO=4&transport=websocket";
  return new Promise<Conn>((resolve, reject) => {
    const pending = new Set(topics);
    let settled = false;
    const conn: Conn = {
      socket: null,
      url: urlIndex,
      protocol,
      buf: null,
      phase: "handshake",
      onSetupText: () => undefined,
      onClosed: (why) => fail(why),
    };
    const fail = (why: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      conn.phase = "closed";
      conn.socket?.end();
      reject(new Error(why));
    };
    const ready = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      conn.phase = "live";
      conn.onClosed = () => undefined;
      resolve(conn);
    };
    const timer = setTimeout(() => fail("timed out opening/subscribing"), 60_000);
    const subscribeAll = () => {
      if (pending.size === 0) return ready();
      let id = 0;
      for (const topic of topics) {
        sendText(conn, protocol === "dispatch" ? JSON.stringify({ op: "subscribe", topic }) : `42${id++}${JSON.stringify(["subscribe", { topic }])}`);
      }
    };
    const ack = (msg: { type?: string; topic?: string; code?: string }) => {
      if (msg.type === "subscribed" && msg.topic !== undefined) {
        pending.delete(msg.topic);
        if (pending.size === 0) ready();
      } else if (msg.type === "error") fail(`subscribe refused: ${msg.code}`);
    };
    conn.onSetupText =
      protocol === "dispatch"
        ? (text) => (text === "" ? subscribeAll() : ack(JSON.parse(text)))
        : (text) => {
            if (text[0] === "0")
              sendText(conn, `40${JSON.stringify({ token })}`); // Engine.IO open → Socket.IO connect with auth
            else if (text.startsWith("40"))
              subscribeAll(); // connected to the namespace
            else if (text.startsWith("44")) fail(`connect refused: ${text.slice(2)}`);
            else if (text === "2") sendText(conn, "3");
            else if (text.startsWith("43")) ack((JSON.parse(text.slice(text.indexOf("["))) as Array<{ type?: string; topic?: string; code?: string }>)[0]);
          };
    Bun.connect({
      hostname,
      port: Number(port),
      socket: {
        open(socket) {
          conn.socket = socket;
          const key = randomBytes(16).toString("base64");
          socket.write(
            `GET ${path} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
          );
        },
        data(_socket, chunk) {
          onData(conn, chunk);
        },
        close() {
          const was = conn.phase;
          conn.phase = "closed";
          if (was !== "live") conn.onClosed("socket closed");
        },
        error(_socket, err) {
          conn.onClosed(`socket error: ${err.message}`);
        },
        connectError(_socket, err) {
          fail(`connect failed: ${err.message}`);
        },
      },
    }).catch((err: unknown) => fail(`connect failed: ${err instanceof Error ? err.message : String(err)}`));
  });
}

async function open(c: OpenCommand): Promise<void> {
  const started = now();
  let next = 0;
  let failures = 0;
  let firstError = "";
  const opened: Conn[] = [];
  const worker = async () => {
    while (next < c.plan.length && failures < c.maxFailures) {
      const [urlIndex, topics] = c.plan[next++];
      try {
        opened.push(await openOne(c.protocol, c.urls[urlIndex], urlIndex, c.token, topics));
      } catch (err) {
        failures++;
        firstError ||= err instanceof Error ? err.message : String(err);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(c.concurrency, c.plan.length) }, worker));
  conns.push(...opened);
  const alive = opened.filter((conn) => conn.phase === "live").length;
  out({ opened: alive, failed: failures + (opened.length - alive), firstError, ms: Math.round(now() - started) });
}

function clear(): void {
  stamps = [];
  keys = [];
  sizes = [];
  urlOf = [];
  counts = new Map();
  waiting = null;
}

/** Samples: [orderId, seq, receivedAt, urlIndex, frameBytes]. */
function collect(): void {
  const samples: Array<[string, number, number, number, number]> = [];
  for (let i = 0; i < keys.length; i++) {
    const cut = keys[i].lastIndexOf(":");
    samples.push([keys[i].slice(0, cut), Number(keys[i].slice(cut + 1)), stamps[i], urlOf[i], sizes[i]]);
  }
  clear();
  out({ samples, alive: conns.filter((c) => c.phase === "live").length });
}

async function closeAll(): Promise<void> {
  for (const c of conns) {
    if (c.phase !== "closed") c.socket?.write(frame(0x8, new Uint8Array([0x03, 0xe8])));
    c.phase = "closed";
    c.socket?.end();
  }
  conns = [];
  clear();
  await Bun.sleep(200);
  out({ closed: true });
}

const decoder = new TextDecoder();
let rest = "";
for await (const chunk of Bun.stdin.stream()) {
  rest += decoder.decode(chunk, { stream: true });
  let nl: number;
  while ((nl = rest.indexOf("\n")) >= 0) {
    const line = rest.slice(0, nl);
    rest = rest.slice(nl + 1);
    if (!line.trim()) continue;
    const c = JSON.parse(line) as Command;
    switch (c.cmd) {
      case "open":
        await open(c);
        break;
      case "await":
        awaitKeys(c.id, c.keys);
        break;
      case "collect":
        collect();
        break;
      case "reset":
        clear();
        out({ reset: true });
        break;
      case "clock":
        out({ now: now() });
        break;
      case "sample":
        out({ sample });
        sample = null;
        break;
      case "close":
        await closeAll();
        break;
      case "exit":
        process.exit(0);
    }
  }
}

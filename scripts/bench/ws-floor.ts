/**
 * The floor of `bun run bench:ws`: a bare Bun server, no framework, no database, no auth, in its
 * own process. It speaks just enough of dispatch's protocol for the same subscriber client:
 * `{"op":"subscribe","topic"}` subscribes the socket to the native topic and acks
 * `{"type":"subscribed","topic"}`; `PATCH /orders/:id` publishes one frame to `order:<id>` with
 * `server.publish` and answers `{"version": seq}`. The frame is the one dispatch sent for an order
 * event in the same run (`PUT /frame`, its order id and seq replaced), so both push the same bytes
 * to the same sockets: the difference in fan-out spread is dispatch's own cost.
 */
import type { ServerWebSocket } from "bun";

/** Until a real frame arrives: the shape and about the size of dispatch's order event. */
let template = JSON.stringify({ type: "order.updated", orderId: "00000000-0000-0000-0000-000000000000", seq: 0, topic: "order:00000000-0000-0000-0000-000000000000", pad: "x".repeat(900) });
const KEY = /"orderId":"([^"]+)","seq":(\d+)/;
const seqs = new Map<string, number>();
let nextId = 0;

/** A fresh id as long as the template's, so every frame has the template's size. */
function newId(): string {
  const length = KEY.exec(template)?.[1].length ?? 36;
  return `floor-${(nextId++).toString(36)}-${crypto.randomUUID().replaceAll("-", "")}`.padEnd(length, "0").slice(0, length);
}

function frameFor(orderId: string, seq: number): string {
  const m = KEY.exec(template);
  if (!m) return template;
  // The id appears in the key and again in the topic and the order itself: replace it everywhere.
  return template.split(m[1]).join(orderId).replace(`"seq":${m[2]}`, `"seq":${seq}`);
}

const server = Bun.serve({
  port: Number(process.env.PORT ?? 0),
  hostname: "127.0.0.1",
  async fetch(req, srv) {
    const url = new URL(req.url);
    if (url.pathname === "/ws") return srv.upgrade(req, { data: undefined }) ? undefined : new Response("upgrade failed", { status: 400 });
    if (req.method === "PUT" && url.pathname === "/frame") {
      const text = await req.text();
      if (!KEY.test(text)) return new Response("no order key in the frame", { status: 400 });
      template = text;
      return Response.json({ bytes: Buffer.byteLength(text) });
    }
    if (req.method === "POST" && url.pathname === "/orders") {
      const id = newId();
      seqs.set(id, 0);
      return Response.json({ id }, { status: 201 });
    }
    const patch = /^\/orders\/([^/]+)$/.exec(url.pathname);
    if (req.method === "PATCH" && patch) {
      const id = patch[1];
      const seq = (seqs.get(id) ?? 0) + 1;
      seqs.set(id, seq);
      srv.publish(`order:${id}`, frameFor(id, seq));
      return Response.json({ id, version: seq });
    }
    return new Response("not found", { status: 404 });
  },
  websocket: {
    // As dispatch configures its sockets (src/realtime/ws.ts).
    perMessageDeflate: false,
    publishToSelf: false,
    message(ws: ServerWebSocket<undefined>, message) {
      const msg = JSON.parse(String(message)) as { op?: string; topic?: string };
      if (msg.op === "subscribe" && typeof msg.topic === "string") {
        ws.subscribe(msg.topic);
        ws.send(JSON.stringify({ type: "subscribed", topic: msg.topic }));
      }
    },
  },
});

console.log(JSON.stringify({ msg: "listening", port: server.port }));
process.on("SIGTERM", () => {
  void server.stop(true);
  process.exit(0);
});

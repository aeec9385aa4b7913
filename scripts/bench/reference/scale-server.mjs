// bench:scale reference: the fan-out across instances the way Socket.IO scales it on Redis 7 —
// Socket.IO 4, one room per order, @socket.io/redis-adapter's sharded adapter in `dynamic` mode
// (a channel per room, subscribed while the room has a local socket, SPUBLISH/SSUBSCRIBE) on a
// node-redis cluster client. Only the relay path bench:scale measures: a client's `subscribe`
// joins the order's room (no database read, as bench:scale's load does not go through one either).
// Not part of the product; run by `bun run bench:scale`.
//
// ROLE=server (default): Env PORT (0 = any free port), REDIS_CLUSTER_NODES (host:port,…). Prints
//   {"msg":"listening","port":N} once it accepts connections.
// ROLE=generator: the load, from one more Socket.IO server with the same adapter and no sockets:
//   RATE (changes/s), SECONDS, ORDERS (ids, comma-separated), POSITION_EVERY (one courier position
//   per that many changes); emits to each order's room, open loop; prints {"msg":"done",…}.

import { createServer } from "node:http";
import { Server } from "socket.io";
import { createShardedAdapter } from "@socket.io/redis-adapter";
import { createCluster } from "redis";

const { ROLE = "server", PORT = "0", REDIS_CLUSTER_NODES } = process.env;
if (!REDIS_CLUSTER_NODES) {
  process.stderr.write("REDIS_CLUSTER_NODES is required\n");
  process.exit(78);
}
const rootNodes = REDIS_CLUSTER_NODES.split(",").map((n) => ({ url: `redis://${n}` }));
const pub = createCluster({ rootNodes });
const sub = pub.duplicate();
await Promise.all([pub.connect(), sub.connect()]);
const adapter = createShardedAdapter(pub, sub, { subscriptionMode: "dynamic" });

if (ROLE === "generator") {
  const rate = Number(process.env.RATE);
  const seconds = Number(process.env.SECONDS);
  const orders = process.env.ORDERS.split(",");
  const positionEvery = Number(process.env.POSITION_EVERY ?? 4);
  const io = new Server({ adapter });
  const seqs = new Map(orders.map((id) => [id, Number(process.env.FIRST_SEQ ?? 1)]));
  let changes = 0;
  let messages = 0;
  const started = performance.now();
  const endAt = started + seconds * 1000;
  while (performance.now() < endAt) {
    const due = Math.floor(((performance.now() - started) / 1000) * rate);
    while (changes < due) {
      const id = orders[changes % orders.length];
      const seq = seqs.get(id) + 1;
      seqs.set(id, seq);
      const at = new Date().toISOString();
      const room = `order:${id}`;
      io.to(room).emit("order.updated", {
        type: "order.updated", topic: room, orderId: id, seq, status: "preparing", prevStatus: "accepted", event: "START_PREPARING", at,
        by: { role: "restaurant", id: "bench" },
        order: { id, status: "preparing", version: seq, items: [{ menuItemId: "pizza", name: "Pizza", quantity: 1, unitPriceCents: 1250 }], subtotalCents: 1250, deliveryFeeCents: 199, totalCents: 1449, deliveryLocation: { lat: 48.8606, lng: 2.3622 }, createdAt: at, updatedAt: at, history: [] },
      });
      changes++;
      messages++;
      if (changes % positionEvery === 0) {
        io.to(room).emit("courier.location", { type: "courier.location", topic: room, orderId: id, lat: 48.86, lng: 2.36, sentAt: Date.now() });
        messages++;
      }
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  await new Promise((r) => setTimeout(r, 200));
  process.stdout.write(`${JSON.stringify({ msg: "done", changes, messages })}\n`);
  await Promise.allSettled([pub.quit(), sub.quit()]);
  process.exit(0);
} else {
  const http = createServer();
  const io = new Server(http, { transports: ["websocket"], adapter, serveClient: false });
  io.on("connection", (socket) => {
    socket.on("subscribe", async (topic, ack) => {
      await socket.join(topic); // dynamic mode: SSUBSCRIBE for the room's channel when it appears here
      if (typeof ack === "function") ack({ ok: true });
    });
  });
  http.listen(Number(PORT), "127.0.0.1", () => {
    process.stdout.write(`${JSON.stringify({ msg: "listening", port: http.address().port })}\n`);
  });
  const stop = async () => {
    io.close();
    await Promise.allSettled([pub.quit(), sub.quit()]);
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

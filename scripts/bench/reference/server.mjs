// bench:ws reference: order fan-out built the way most Node teams build it — Node's http
// server, Socket.IO 4 (one room per order), @socket.io/redis-adapter across instances,
// jsonwebtoken, and the official mongodb driver against the same database engine as dispatch.
// It mirrors what dispatch does for the benchmarked path, no more and no less:
//   - JWT (HS256, same secret and claims as dispatch) checked on connect (io.use middleware);
//   - `subscribe {topic: "order:<id>"}` reads the order and lets only its parties (customer,
//     restaurant owner, courier) and admins join the room, then acks;
//   - `PATCH /orders/:id {status}` verifies the bearer token, reads the order, checks the
//     caller and the move against the same transition table as dispatch's state machine,
//     commits with one compare-and-set on `version` (findOneAndUpdate: $set status, $inc
//     version, $push history), and emits the same `order.updated` message to the room;
//   - `POST /orders` (benchmark set-up only, not measured) inserts an order shaped like dispatch's.
// Not part of the product; run by `bun run bench:ws`.
//
// Env: PORT (0 = any free port), MONGODB_URI, MONGODB_DB, JWT_SECRET, REDIS_URL (optional).
// Prints {"msg":"listening","port":N} on stdout once it accepts connections.

import { createServer } from "node:http";
import { Server } from "socket.io";
import { createAdapter } from "@socket.io/redis-adapter";
import { createClient } from "redis";
import { MongoClient, ObjectId } from "mongodb";
import jwt from "jsonwebtoken";

const { PORT = "0", MONGODB_URI, MONGODB_DB = "reference", JWT_SECRET, REDIS_URL } = process.env;
if (!MONGODB_URI || !JWT_SECRET) {
  process.stderr.write("MONGODB_URI and JWT_SECRET are required\n");
  process.exit(78);
}

const mongo = new MongoClient(MONGODB_URI);
await mongo.connect();
const orders = mongo.db(MONGODB_DB).collection("orders");
// The same secondary indexes as dispatch's orders collection, so each write maintains as many.
await orders.createIndexes([
  { key: { customerId: 1, createdAt: -1, _id: -1 } },
  { key: { restaurantOwnerId: 1, createdAt: -1, _id: -1 } },
  { key: { restaurantId: 1, createdAt: -1, _id: -1 } },
  { key: { courierId: 1, createdAt: -1, _id: -1 } },
  { key: { status: 1, createdAt: -1, _id: -1 } },
  { key: { createdAt: -1, _id: -1 } },
  { key: { restaurantId: 1, updatedAt: 1 } },
  { key: { courierId: 1, updatedAt: 1 } },
  { key: { customerId: 1, idempotencyKey: 1 }, unique: true, partialFilterExpression: { idempotencyKey: { $type: "string" } } },
]);

// Who may make which move: the same table as dispatch's XState machine (src/modules/orders/machine.ts).
const owner = (o, who) => who.role === "restaurant" && who.id === o.restaurantOwnerId;
const customer = (o, who) => who.role === "customer" && who.id === o.customerId;
const admin = (_o, who) => who.role === "admin";
const assignedCourier = (o, who) => who.role === "courier" && o.courierId !== null && who.id === o.courierId;
const any = (...guards) => (o, who) => guards.some((g) => g(o, who));
const MOVES = {
  placed: { accepted: ["ACCEPT", owner], rejected: ["REJECT", owner], cancelled: ["CANCEL", any(customer, owner, admin)] },
  accepted: { preparing: ["START_PREPARING", owner], cancelled: ["CANCEL", any(owner, admin)] },
  preparing: { ready_for_pickup: ["MARK_READY", owner], cancelled: ["CANCEL", any(owner, admin)] },
  ready_for_pickup: { picked_up: ["PICK_UP", assignedCourier], cancelled: ["CANCEL", admin] },
  picked_up: { delivered: ["DELIVER", assignedCourier], cancelled: ["CANCEL", admin] },
};

function isParty(o, who) {
  if (who.role === "admin") return true;
  if (who.role === "customer") return o.customerId === who.id;
  if (who.role === "restaurant") return o.restaurantOwnerId === who.id;
  if (who.role === "courier") return o.courierId === who.id;
  return false;
}

function verify(token) {
  try {
    const p = jwt.verify(token, JWT_SECRET, { algorithms: ["HS256"] });
    return typeof p.sub === "string" && typeof p.role === "string" ? { id: p.sub, role: p.role } : null;
  } catch {
    return null;
  }
}

function toApi(doc) {
  return {
    id: doc._id.toHexString(),
    status: doc.status,
    version: doc.version,
    customerId: doc.customerId,
    restaurantId: doc.restaurantId,
    courierId: doc.courierId,
    items: doc.items,
    subtotalCents: doc.subtotalCents,
    deliveryFeeCents: doc.deliveryFeeCents,
    totalCents: doc.totalCents,
    deliveryLocation: doc.deliveryLocation,
    createdAt: doc.createdAt.toISOString(),
    updatedAt: doc.updatedAt.toISOString(),
    history: doc.history.map((h) => ({ seq: h.seq, status: h.status, event: h.event, at: h.at.toISOString(), by: h.by })),
  };
}

const oid = (id) => (/^[0-9a-f]{24}$/i.test(id) ? new ObjectId(id) : null);

function send(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

async function readJson(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}");
}

const http = createServer(async (req, res) => {
  try {
    if (req.method === "GET" && req.url === "/health") return send(res, 200, { status: "ok" });
    const who = verify(/^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? "")?.[1] ?? "");
    if (!who) return send(res, 401, { title: "invalid or missing token" });
    const m = /^\/orders(?:\/([^/?]+))?$/.exec(req.url ?? "");
    if (!m) return send(res, 404, { title: "not found" });

    if (req.method === "POST" && !m[1]) {
      const body = await readJson(req);
      const at = new Date();
      const doc = {
        _id: new ObjectId(),
        status: "placed",
        version: 1,
        customerId: who.id,
        restaurantId: body.restaurantId,
        restaurantOwnerId: body.restaurantOwnerId,
        courierId: null,
        items: [{ menuItemId: "dish", name: "Dish", quantity: 1, unitPriceCents: 1000 }],
        subtotalCents: 1000,
        deliveryFeeCents: 250,
        totalCents: 1250,
        deliveryLocation: body.deliveryLocation ?? { lat: 48.86, lng: 2.36 },
        createdAt: at,
        updatedAt: at,
        history: [{ seq: 1, status: "placed", event: "PLACE", at, by: { role: who.role, id: who.id } }],
      };
      await orders.insertOne(doc);
      return send(res, 201, toApi(doc));
    }

    if (req.method === "PATCH" && m[1]) {
      const _id = oid(m[1]);
      const body = await readJson(req);
      const doc = _id && (await orders.findOne({ _id }));
      if (!doc || !isParty(doc, who)) return send(res, 404, { title: "order not found" });
      const move = MOVES[doc.status]?.[body.status];
      if (!move || !move[1](doc, who)) return send(res, 409, { title: `cannot move ${doc.status} → ${body.status}` });
      const at = new Date();
      const by = { role: who.role, id: who.id };
      const seq = doc.version + 1;
      const after = await orders.findOneAndUpdate(
        { _id, version: doc.version },
        { $set: { status: body.status, updatedAt: at }, $inc: { version: 1 }, $push: { history: { seq, status: body.status, event: move[0], at, by } } },
        { returnDocument: "after" },
      );
      if (!after) return send(res, 409, { title: "version conflict; retry" });
      const order = toApi(after);
      const topic = `order:${order.id}`;
      io.to(topic).emit("order.updated", {
        type: "order.updated",
        topic,
        orderId: order.id,
        seq,
        status: body.status,
        prevStatus: doc.status,
        event: move[0],
        at: at.toISOString(),
        by,
        order,
      });
      return send(res, 200, order);
    }
    return send(res, 405, { title: "method not allowed" });
  } catch (err) {
    send(res, 500, { title: String(err?.message ?? err) });
  }
});

const io = new Server(http, { serveClient: false });

if (REDIS_URL) {
  const pubClient = createClient({ url: REDIS_URL });
  const subClient = pubClient.duplicate();
  await Promise.all([pubClient.connect(), subClient.connect()]);
  io.adapter(createAdapter(pubClient, subClient));
}

io.use((socket, next) => {
  const who = verify(socket.handshake.auth?.token ?? socket.handshake.query?.token ?? "");
  if (!who) return next(new Error("unauthorized"));
  socket.data.who = who;
  next();
});

io.on("connection", (socket) => {
  socket.on("subscribe", async (msg, ack) => {
    const reply = typeof ack === "function" ? ack : () => {};
    try {
      const topic = typeof msg?.topic === "string" ? msg.topic : "";
      const _id = oid(topic.startsWith("order:") ? topic.slice(6) : "");
      const doc = _id && (await orders.findOne({ _id }));
      if (!doc || !isParty(doc, socket.data.who)) return reply({ type: "error", code: "forbidden", topic });
      await socket.join(topic);
      reply({ type: "subscribed", topic, seq: doc.version });
    } catch {
      reply({ type: "error", code: "unavailable" });
    }
  });
});

http.listen(Number(PORT), "127.0.0.1", () => {
  process.stdout.write(`${JSON.stringify({ msg: "listening", port: http.address().port, pid: process.pid, redis: Boolean(REDIS_URL) })}\n`);
});

const stop = () => {
  io.close();
  void mongo.close().finally(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);

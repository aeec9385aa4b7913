import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startTestServer, type Registered, type TestServer } from "../helpers/server";
import { RawWsClient, WsClient, type Frame } from "../helpers/ws";
import { cast, createRestaurant, orderIn, patch, placeOrder, type Cast } from "../modules/orders/fixtures";
import { CourierRepository } from "../../src/modules/couriers/repository";
import { COLLECTIONS } from "../../src/db/mongo";
import { topics } from "../../src/events/topics";

/**
 * /ws against an in-process server on the embedded engine, with real WebSocket clients
 * (Bun's global WebSocket) and real HTTP. The idle timeout is Bun's minimum (8 s): a dead
 * peer opened in beforeAll is checked in the last tests, so waiting for it overlaps the rest.
 */
let server: TestServer;
let wsUrl: string;
let c: Cast;
let deadPeer: RawWsClient;
let keptAlive: WsClient;
const clients: WsClient[] = [];

async function open(who: Registered | null): Promise<WsClient> {
  const client = await WsClient.open(wsUrl, who ? who.token : null);
  clients.push(client);
  return client;
}

beforeAll(async () => {
  server = await startTestServer({
    WS_IDLE_TIMEOUT_SECONDS: "8",
    WS_MAX_SUBSCRIPTIONS: "4",
    COURIER_LOCATION_INTERVAL_MS: "300",
    // The cast's one courier claims orders across tests without delivering them.
    COURIER_MAX_ACTIVE: "100",
  });
  wsUrl = server.url.replace(/^http/, "ws") + "/ws";
  c = await cast(server);
  deadPeer = await RawWsClient.open(server.port, c.customer.token);
  deadPeer.pause(); // reads nothing from now on, so it never answers the server's pings
  keptAlive = await open(c.customer);
});

afterAll(async () => {
  for (const client of clients) client.close();
  deadPeer?.destroy();
  await server?.stop();
});

describe("GET /ws upgrade", () => {
  const upgradeHeaders = {
    upgrade: "websocket",
    connection: "Upgrade",
    "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
    "sec-websocket-version": "13",
  };

  test("without a token the upgrade is refused with 401", async () => {
    const res = await fetch(`${server.url}/ws`, { headers: upgradeHeaders });
    expect(res.status).toBe(401);
    expect(res.headers.get("content-type")).toContain("application/problem+json");
    expect(res.headers.get("upgrade")).toBeNull();
    await expect(WsClient.open(wsUrl, null)).rejects.toThrow("upgrade failed");
  });

  test("with a forged or malformed token the upgrade is refused with 401", async () => {
    const [header, payload] = c.customer.token.split(".");
    const forged = `${header}.${payload}.${"A".repeat(43)}`;
    for (const token of [forged, "not-a-jwt"]) {
      const res = await fetch(`${server.url}/ws?token=${token}`, { headers: upgradeHeaders });
      expect(res.status).toBe(401);
      await expect(WsClient.open(wsUrl, token)).rejects.toThrow("upgrade failed");
    }
  });

  test("with a valid token the socket opens and answers ping with pong", async () => {
    const client = await open(c.customer);
    client.send({ op: "ping" });
    expect(await client.next()).toEqual({ type: "pong" });
  });
});

describe("order topics", () => {
  test("a party subscribes, learns the current seq, then gets every change in order", async () => {
    const order = await placeOrder(server, c);
    const topic = topics.order(order.id);
    const client = await open(c.customer);
    expect(await client.subscribe(topic)).toEqual({ type: "subscribed", topic, seq: 1 });
    expect((await patch(server, c.owner, order.id, "accepted")).status).toBe(200);
    expect((await patch(server, c.owner, order.id, "preparing")).status).toBe(200);
    const first = await client.next((f) => f.type === "order.updated");
    expect(first).toMatchObject({ type: "order.updated", topic, orderId: order.id, seq: 2, status: "accepted", prevStatus: "placed", by: { role: "restaurant", id: c.owner.user.id } });
    expect(first.order).toMatchObject({ id: order.id, status: "accepted", version: 2 });
    await client.next((f) => f.seq === 3);
    expect(client.seqs(topic)).toEqual([2, 3]);
  });

  test("unsubscribe stops the events", async () => {
    const order = await placeOrder(server, c);
    const topic = topics.order(order.id);
    const client = await open(c.customer);
    await client.subscribe(topic);
    client.send({ op: "unsubscribe", topic });
    expect(await client.next()).toEqual({ type: "unsubscribed", topic });
    expect((await patch(server, c.owner, order.id, "accepted")).status).toBe(200);
    const watcher = await open(c.owner);
    await watcher.subscribe(topic);
    await patch(server, c.owner, order.id, "preparing");
    await watcher.next((f) => f.seq === 3);
    expect(await client.drain()).toEqual([]);
  });

  test("subscribing twice, or past the per-connection limit, is an error", async () => {
    const orders = await Promise.all([1, 2, 3, 4, 5].map(() => placeOrder(server, c)));
    const client = await open(c.admin);
    for (const o of orders.slice(0, 4)) expect((await client.subscribe(topics.order(o.id))).type).toBe("subscribed");
    expect(await client.subscribe(topics.order(orders[0].id))).toMatchObject({ type: "error", code: "already_subscribed" });
    expect(await client.subscribe(topics.order(orders[4].id))).toMatchObject({ type: "error", code: "too_many_subscriptions" });
  });
});

describe("topic authorisation", () => {
  test("a stranger's subscribe to an order is refused and it gets no events", async () => {
    const order = await placeOrder(server, c);
    const topic = topics.order(order.id);
    const stranger = await server.register("customer");
    const otherOwner = await server.register("restaurant");
    const party = await open(c.customer);
    await party.subscribe(topic);
    const strangers = await Promise.all([open(stranger), open(otherOwner), open(c.courier)]);
    for (const s of strangers) expect(await s.subscribe(topic)).toMatchObject({ type: "error", code: "forbidden", topic });
    await patch(server, c.owner, order.id, "accepted");
    await party.next((f) => f.seq === 2);
    for (const s of strangers) expect(await s.drain()).toEqual([]);
  });

  test("access is checked against the database: a courier may follow an order once it claims it", async () => {
    const order = await orderIn(server, c, "accepted");
    const topic = topics.order(order.id);
    const courier = await server.register("courier");
    const client = await open(courier);
    // The token is valid and says "courier", but this courier has nothing to do with the order yet.
    expect(await client.subscribe(topic)).toMatchObject({ type: "error", code: "forbidden" });
    const claimed = await server.request("POST", `/orders/${order.id}/claim`, { token: courier.token });
    expect(claimed.status).toBe(200);
    expect(await client.subscribe(topic)).toEqual({ type: "subscribed", topic, seq: claimed.body.version });
  });

  test("restaurant topics: only the owner and admins", async () => {
    const topic = topics.restaurant(c.restaurant.id);
    const otherOwner = await server.register("restaurant");
    const [owner, admin, other, customer] = await Promise.all([open(c.owner), open(c.admin), open(otherOwner), open(c.customer)]);
    expect(await owner.subscribe(topic)).toEqual({ type: "subscribed", topic });
    expect(await admin.subscribe(topic)).toEqual({ type: "subscribed", topic });
    expect(await other.subscribe(topic)).toMatchObject({ type: "error", code: "forbidden" });
    expect(await customer.subscribe(topic)).toMatchObject({ type: "error", code: "forbidden" });
    expect(await owner.subscribe(topics.restaurant("000000000000000000000000"))).toMatchObject({ type: "error", code: "forbidden" });
    const order = await placeOrder(server, c);
    const created = await owner.next((f) => f.type === "order.created");
    expect(created).toMatchObject({ type: "order.created", topic, orderId: order.id, seq: 1, order: { id: order.id, status: "placed" } });
    await admin.next((f) => f.type === "order.created" && f.orderId === order.id);
    expect(await other.drain()).toEqual([]);
  });

  test("courier topics: only that courier; it learns of orders assigned to it", async () => {
    const topic = topics.courier(c.courier.user.id);
    const otherCourier = await server.register("courier");
    const [mine, theirs, admin] = await Promise.all([open(c.courier), open(otherCourier), open(c.admin)]);
    expect(await mine.subscribe(topic)).toEqual({ type: "subscribed", topic });
    expect(await theirs.subscribe(topic)).toMatchObject({ type: "error", code: "forbidden" });
    expect(await admin.subscribe(topic)).toMatchObject({ type: "error", code: "forbidden" });
    const order = await orderIn(server, c, "accepted");
    const claimed = await server.request("POST", `/orders/${order.id}/claim`, { token: c.courier.token });
    const event = await mine.next((f) => f.orderId === order.id);
    expect(event).toMatchObject({ type: "order.updated", topic, orderId: order.id, seq: claimed.body.version, order: { courierId: c.courier.user.id } });
  });

  test("malformed topics are refused", async () => {
    const client = await open(c.admin);
    for (const topic of ["orders:abc", "order:", "order:../x", "restaurant:a b"]) {
      expect(await client.subscribe(topic)).toMatchObject({ type: "error", code: "invalid_topic" });
    }
  });
});

describe("invalid frames", () => {
  test("each gets an error frame; after repeated abuse the connection closes with 1008", async () => {
    const client = await open(c.customer);
    client.ws.send(new Uint8Array([1, 2, 3]));
    expect(await client.next()).toMatchObject({ type: "error", code: "binary_not_supported" });
    client.send("{not json");
    expect(await client.next()).toMatchObject({ type: "error", code: "bad_json" });
    client.send({ op: "dance" });
    expect(await client.next()).toMatchObject({ type: "error", code: "invalid_message" });
    client.send({ op: "subscribe", since: -1, topic: "order:x" });
    expect(await client.next()).toMatchObject({ type: "error", code: "invalid_message" });
    client.send({ op: "ping", pad: "x".repeat(20 * 1024) });
    expect(await client.next()).toMatchObject({ type: "error", code: "frame_too_large" });
    expect((await client.closed).code).toBe(1008);
  });

  test("a few mistakes are tolerated; the server keeps serving", async () => {
    const client = await open(c.customer);
    for (const junk of ["[]", "42", '"op"', "null"]) client.send(junk);
    for (let i = 0; i < 4; i++) expect(await client.next()).toMatchObject({ type: "error", code: "invalid_message" });
    client.send({ op: "ping" });
    expect(await client.next()).toEqual({ type: "pong" });
    expect((await fetch(`${server.url}/health`)).status).toBe(200);
  });

  test("a flood of frames is rate limited, and a sustained one closes the connection", async () => {
    const client = await open(c.customer);
    for (let i = 0; i < 150; i++) client.send({ op: "ping" });
    const { code } = await client.closed;
    expect(code).toBe(1008);
    const pongs = client.frames.filter((f) => f.type === "pong").length;
    expect(pongs).toBeGreaterThanOrEqual(100);
    expect(pongs).toBeLessThan(110);
    expect(client.frames.filter((f) => f.code === "rate_limited").length).toBe(5);
  });

  test("a frame beyond the hard cap (4× the limit) is cut by Bun with 1009", async () => {
    const client = await open(c.customer);
    client.send("x".repeat(80 * 1024));
    expect((await client.closed).code).toBe(1009);
  });
});

describe("resume with since", () => {
  /** An order moved to version 3 (placed → accepted → preparing). */
  async function preparingOrder() {
    const order = await orderIn(server, c, "preparing");
    expect(order.version).toBe(3);
    return order;
  }

  test("replays every later event from the history, then live ones", async () => {
    const order = await preparingOrder();
    const topic = topics.order(order.id);
    const client = await open(c.customer);
    expect(await client.subscribe(topic, 1)).toEqual({ type: "subscribed", topic, seq: 3 });
    await client.next((f) => f.seq === 3);
    const claimed = await server.request("POST", `/orders/${order.id}/claim`, { token: c.courier.token });
    expect(claimed.status).toBe(200);
    await client.next((f) => f.seq === 4);
    expect(client.seqs(topic)).toEqual([2, 3, 4]);
    const replayed = client.frames.find((f) => f.seq === 2)!;
    expect(replayed).toMatchObject({ type: "order.updated", status: "accepted", prevStatus: "placed", event: order.history[1].event, at: order.history[1].at });
  });

  test("since at the current version replays nothing", async () => {
    const order = await preparingOrder();
    const topic = topics.order(order.id);
    const client = await open(c.customer);
    await client.subscribe(topic, 3);
    expect(await client.drain()).toEqual([]);
  });

  /** Holds one subscribe at a hook until released; returns when the hook is reached. */
  function holdAt(stage: "beforeRead" | "beforeSend", topic: string) {
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let reached!: () => void;
    const atHook = new Promise<void>((r) => (reached = r));
    server.deps.realtimeHooks = {
      [stage]: async (info: { topic: string }) => {
        if (info.topic !== topic) return;
        reached();
        await released;
      },
    };
    return { atHook, release };
  }

  test("race: changes committed after the history read reach the client once, after the replay, in order", async () => {
    const order = await preparingOrder();
    const topic = topics.order(order.id);
    const hold = holdAt("beforeSend", topic);
    try {
      const client = await open(c.customer);
      client.send({ op: "subscribe", topic, since: 1 });
      await hold.atHook; // history read at version 3; nothing sent yet
      expect((await server.request("POST", `/orders/${order.id}/claim`, { token: c.courier.token })).status).toBe(200); // seq 4
      expect((await patch(server, c.owner, order.id, "ready_for_pickup")).status).toBe(200); // seq 5
      hold.release();
      const ack = await client.next((f) => f.type === "subscribed");
      expect(ack.seq).toBe(3);
      await client.next((f) => f.seq === 5);
      expect((await patch(server, c.courier, order.id, "picked_up")).status).toBe(200); // seq 6, live
      await client.next((f) => f.seq === 6);
      expect(await client.drain()).toEqual([]);
      expect(client.seqs(topic)).toEqual([2, 3, 4, 5, 6]);
    } finally {
      server.deps.realtimeHooks = undefined;
    }
  });

  test("race: changes committed while the subscribe is listening but before the read appear once, not twice", async () => {
    const order = await preparingOrder();
    const topic = topics.order(order.id);
    const hold = holdAt("beforeRead", topic);
    try {
      const client = await open(c.customer);
      client.send({ op: "subscribe", topic, since: 2 });
      await hold.atHook; // buffering, history not read yet
      expect((await server.request("POST", `/orders/${order.id}/claim`, { token: c.courier.token })).status).toBe(200); // seq 4
      expect((await patch(server, c.owner, order.id, "ready_for_pickup")).status).toBe(200); // seq 5
      hold.release();
      const ack = await client.next((f) => f.type === "subscribed");
      expect(ack.seq).toBe(5); // the read saw both changes; the buffer has them too
      await client.next((f) => f.seq === 5);
      expect((await patch(server, c.courier, order.id, "picked_up")).status).toBe(200);
      await client.next((f) => f.seq === 6);
      expect(await client.drain()).toEqual([]);
      expect(client.seqs(topic)).toEqual([3, 4, 5, 6]);
    } finally {
      server.deps.realtimeHooks = undefined;
    }
  });

  /** Holds the orders registry between the commit of (orderId, seq) and its publish; returns when it is held there. */
  function holdPublish(orderId: string, seq: number) {
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let reached!: () => void;
    const atHook = new Promise<void>((r) => (reached = r));
    server.deps.realtimeHooks = {
      beforePublish: async (committed) => {
        if (committed.orderId !== orderId || committed.seq !== seq) return;
        reached();
        await released;
      },
    };
    return { atHook, release };
  }

  test("race: a change committed before the read but published after the subscribe reaches the client once", async () => {
    const order = await preparingOrder();
    const topic = topics.order(order.id);
    const hold = holdPublish(order.id, 4);
    try {
      const claiming = server.request("POST", `/orders/${order.id}/claim`, { token: c.courier.token });
      await hold.atHook; // seq 4 is in the database; the bus has delivered only up to 3
      const client = await open(c.customer);
      expect(await client.subscribe(topic, 2)).toEqual({ type: "subscribed", topic, seq: 4 });
      await client.next((f) => f.seq === 4); // replayed from the history
      hold.release(); // now the bus delivers seq 4, which the client already has
      expect((await claiming).status).toBe(200);
      expect((await patch(server, c.owner, order.id, "ready_for_pickup")).status).toBe(200); // seq 5, live
      await client.next((f) => f.seq === 5);
      expect(await client.drain()).toEqual([]);
      expect(client.seqs(topic)).toEqual([3, 4, 5]);
    } finally {
      server.deps.realtimeHooks = undefined;
    }
  });

  test("race: without since, a change at or below the announced seq never follows the ack", async () => {
    const order = await preparingOrder();
    const topic = topics.order(order.id);
    const hold = holdPublish(order.id, 4);
    try {
      const claiming = server.request("POST", `/orders/${order.id}/claim`, { token: c.courier.token });
      await hold.atHook;
      const client = await open(c.customer);
      expect(await client.subscribe(topic)).toEqual({ type: "subscribed", topic, seq: 4 });
      hold.release();
      expect((await claiming).status).toBe(200);
      expect((await patch(server, c.owner, order.id, "ready_for_pickup")).status).toBe(200);
      await client.next((f) => f.seq === 5);
      expect(await client.drain()).toEqual([]);
      expect(client.seqs(topic)).toEqual([5]);
    } finally {
      server.deps.realtimeHooks = undefined;
    }
  });

  test("while a subscription catches up it still gets courier positions; unsubscribe and close end it", async () => {
    // A courier of its own: other tests send fixes from the past for c.courier.
    const rc: Cast = { ...c, courier: await server.register("courier") };
    const order = await orderIn(server, rc, "accepted", { claim: true }); // v3, carried by rc.courier
    const topic = topics.order(order.id);
    const hold = holdPublish(order.id, 4);
    try {
      const preparing = patch(server, c.owner, order.id, "preparing");
      await hold.atHook;
      const [watching, leaving, closing] = await Promise.all([open(c.customer), open(c.customer), open(c.owner)]);
      for (const client of [watching, leaving, closing]) expect(await client.subscribe(topic)).toEqual({ type: "subscribed", topic, seq: 4 });
      leaving.send({ op: "unsubscribe", topic });
      expect(await leaving.next()).toEqual({ type: "unsubscribed", topic });
      closing.close();
      await closing.closed;

      // A position published while the bus is behind the subscriber still reaches it.
      const courier = await open(rc.courier);
      courier.send({ op: "location", lat: 48.8571, lng: 2.3531, at: Date.now() });
      expect(await watching.next((f) => f.type === "courier.location")).toMatchObject({ topic, orderId: order.id, courierId: rc.courier.user.id, lat: 48.8571 });

      hold.release();
      expect((await preparing).status).toBe(200);
      expect((await patch(server, c.owner, order.id, "ready_for_pickup")).status).toBe(200);
      await watching.next((f) => f.seq === 5);
      expect(await watching.drain()).toEqual([]);
      expect(watching.seqs(topic)).toEqual([5]);
      expect(watching.frames.filter((f) => f.type === "courier.location" && f.topic === topic)).toHaveLength(1);
      // The unsubscribed connection hears nothing more of the topic, from the bus or the topic.
      expect(await leaving.drain()).toEqual([]);
      expect(leaving.seqs(topic)).toEqual([]);
    } finally {
      server.deps.realtimeHooks = undefined;
    }
  });

  test("restaurant topics are joined at once: a change published after the subscribe arrives live", async () => {
    const order = await preparingOrder();
    const topic = topics.restaurant(c.restaurant.id);
    const hold = holdPublish(order.id, 4);
    try {
      const claiming = server.request("POST", `/orders/${order.id}/claim`, { token: c.courier.token });
      await hold.atHook;
      const client = await open(c.owner);
      expect(await client.subscribe(topic)).toEqual({ type: "subscribed", topic });
      hold.release();
      expect((await claiming).status).toBe(200);
      expect(await client.next((f) => f.orderId === order.id)).toMatchObject({ type: "order.updated", topic, seq: 4 });
      expect((await patch(server, c.owner, order.id, "ready_for_pickup")).status).toBe(200);
      await client.next((f) => f.orderId === order.id && f.seq === 5);
      expect(client.frames.filter((f) => f.orderId === order.id).map((f) => f.seq)).toEqual([4, 5]);
    } finally {
      server.deps.realtimeHooks = undefined;
    }
  });

  test("restaurant topics: since is a time (epoch ms); every event at or after it is replayed, each order in seq order", async () => {
    const owner = await server.register("restaurant");
    const restaurant = await createRestaurant(server, owner);
    const rc: Cast = { ...c, owner, restaurant };
    const before = await placeOrder(server, rc);
    await Bun.sleep(5);
    const since = Date.now();
    await Bun.sleep(5);
    const a = await placeOrder(server, rc);
    const b = await placeOrder(server, rc);
    await patch(server, owner, a.id, "accepted");
    await patch(server, owner, b.id, "rejected");
    const topic = topics.restaurant(restaurant.id);
    const client = await open(owner);
    await client.subscribe(topic, since);
    const replay = await client.drain();
    expect(replay.map((f) => [f.orderId, f.seq, f.type])).toEqual([
      [a.id, 1, "order.created"],
      [b.id, 1, "order.created"],
      [a.id, 2, "order.updated"],
      [b.id, 2, "order.updated"],
    ]);
    expect(replay.some((f) => f.orderId === before.id)).toBe(false);
    await patch(server, owner, a.id, "preparing");
    expect(await client.next((f) => f.orderId === a.id && f.seq === 3)).toMatchObject({ status: "preparing" });
  });
});

describe("courier location", () => {
  test("stored as GeoJSON with its times, throttled with coalescing, and forwarded to the orders it carries", async () => {
    const order = await orderIn(server, c, "accepted", { claim: true });
    const topic = topics.order(order.id);
    const customer = await open(c.customer);
    await customer.subscribe(topic);
    const courier = await open(c.courier);
    const t0 = Date.now() - 10_000;
    const fixes = [0, 1, 2, 3, 4].map((i) => ({ op: "location", lat: 48.85 + i / 1000, lng: 2.35, heading: 90, speedMps: 4, at: new Date(t0 + i * 100).toISOString() }));
    for (const fix of fixes) courier.send(fix);

    const first = await customer.next((f) => f.type === "courier.location");
    expect(first).toEqual({ type: "courier.location", topic, orderId: order.id, courierId: c.courier.user.id, lat: fixes[0].lat, lng: 2.35, at: fixes[0].at, heading: 90, speedMps: 4 });
    // The four fixes sent within the interval coalesce into one write of the latest.
    const second = await customer.next((f) => f.type === "courier.location");
    expect(second.lat).toBe(fixes[4].lat);
    expect(second.at).toBe(fixes[4].at);
    await Bun.sleep(400);
    expect((await customer.drain()).filter((f) => f.type === "courier.location")).toEqual([]);
    expect(await courier.drain()).toEqual([]); // accepted fixes are not acknowledged

    const stored = await new CourierRepository(server.deps.db.db).findPosition(c.courier.user.id);
    expect(stored).toMatchObject({ courierId: c.courier.user.id, lat: fixes[4].lat, lng: 2.35, heading: 90, speedMps: 4, fixAt: fixes[4].at });
    expect(Date.parse(stored!.lastSeenAt)).toBeGreaterThan(t0);
    const raw = await server.deps.db.db.collection(COLLECTIONS.couriers).findOne({ _id: c.courier.user.id as never });
    expect(raw?.position).toEqual({ type: "Point", coordinates: [2.35, fixes[4].lat] });
    const indexes = await server.deps.db.db.collection(COLLECTIONS.couriers).listIndexes().toArray();
    expect(indexes.some((i) => i.key.position === "2dsphere")).toBe(true);
  });

  test("a fix older than the stored one, or more than 30 s ahead, is dropped", async () => {
    const courierUser = await server.register("courier");
    const courier = await open(courierUser);
    const now = Date.now();
    courier.send({ op: "location", lat: 1, lng: 1, at: now - 1_000 });
    courier.send({ op: "location", lat: 2, lng: 2, at: now - 5_000 });
    expect(await courier.next()).toMatchObject({ type: "error", code: "stale_location" });
    courier.send({ op: "location", lat: 3, lng: 3, at: now + 60_000 });
    expect(await courier.next()).toMatchObject({ type: "error", code: "future_location" });
    // Positions are written in batches (POSITION_FLUSH_MS): wait for the one holding this fix.
    const repo = new CourierRepository(server.deps.db.db);
    let stored = await repo.findPosition(courierUser.user.id);
    for (let i = 0; i < 100 && !stored; i++) {
      await Bun.sleep(20);
      stored = await repo.findPosition(courierUser.user.id);
    }
    await Bun.sleep(300); // and one more batch: nothing later (the refused fixes) may replace it
    expect(await repo.findPosition(courierUser.user.id)).toMatchObject({ lat: 1, lng: 1, fixAt: new Date(now - 1_000).toISOString() });
  });

  test("the stored fix wins over an older one from another connection", async () => {
    const courierUser = await server.register("courier");
    const repo = new CourierRepository(server.deps.db.db);
    const now = Date.now();
    expect(await repo.recordPosition(courierUser.user.id, { lat: 5, lng: 5, at: new Date(now) }, new Date())).toBe(true);
    // A second connection (its own tracker state) reports an older fix: the database refuses it.
    expect(await repo.recordPosition(courierUser.user.id, { lat: 6, lng: 6, at: new Date(now - 1) }, new Date())).toBe(false);
    expect(await repo.findPosition(courierUser.user.id)).toMatchObject({ lat: 5, lng: 5 });
  });

  test("only couriers report locations", async () => {
    const client = await open(c.customer);
    client.send({ op: "location", lat: 1, lng: 1 });
    expect(await client.next()).toMatchObject({ type: "error", code: "forbidden" });
  });
});

describe("connection management", () => {
  test("a client that stops reading is closed with 1013 once its queue passes the limit", async () => {
    const order = await placeOrder(server, c);
    const topic = topics.order(order.id);
    const slow = await RawWsClient.open(server.port, c.customer.token);
    try {
      slow.sendText(JSON.stringify({ op: "subscribe", topic }));
      expect(JSON.parse(await slow.nextText())).toMatchObject({ type: "subscribed", topic });
      slow.pause();
      const pad = "x".repeat(64 * 1024);
      for (let i = 0; i < 300; i++) {
        server.deps.bus.publishTransient(topic, { type: "courier.location", topic, pad });
        await Bun.sleep(2);
      }
      slow.resume();
      const end = await slow.readUntilClose();
      expect(end.code).toBe(1013);
      expect(end.textFrames).toBeLessThan(300);
    } finally {
      slow.destroy();
    }
  });

  test("a peer that never answers pings is dropped after the idle timeout; a live one stays", async () => {
    // Opened in beforeAll and paused since; Bun pinged it and closed it at 8 s.
    deadPeer.resume();
    const end = await deadPeer.readUntilClose(15_000);
    expect(end.pings).toBeGreaterThanOrEqual(1);
    expect(deadPeer.isEnded).toBe(true);
    expect(keptAlive.closeCode).toBeNull();
    keptAlive.send({ op: "ping" });
    expect(await keptAlive.next((f) => f.type === "pong")).toEqual({ type: "pong" });
  }, 20_000);

  test("stopping the server closes sockets with 1001 and does not hang", async () => {
    const client = await open(c.customer);
    const started = performance.now();
    await server.stop();
    expect(performance.now() - started).toBeLessThan(3_000);
    expect((await client.closed).code).toBe(1001);
  });
});

export type { Frame };

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createLogger } from "../../src/log";
import { OrderActorRegistry } from "../../src/modules/orders/registry";
import { OrderRepository } from "../../src/modules/orders/repository";
import { LocalEventBus } from "../../src/realtime/bus";
import type { EventBus } from "../../src/events/bus";
import type { OrderChange } from "../../src/events/change";
import { changesFromOrder } from "../../src/events/change";
import { RedisEventBus } from "../../src/realtime/redis-relay";
import { topics } from "../../src/events/topics";
import { startRedis, type TestRedis } from "../helpers/redis";
import { startTestServer, type TestServer } from "../helpers/server";
import { WsClient } from "../helpers/ws";
import { cast, orderIn, patch, type Cast } from "../modules/orders/fixtures";

/**
 * Resume on an instance whose relay is behind the database: the subscriber reads seq v from the
 * database, and the relay delivers seqs up to v only afterwards (a late publish from another
 * instance, or a gap read back from the database). The server under test is in-process with
 * a real Redis; the other instances are real order registries in this process: "C" publishes
 * through its own RedisEventBus on the same channel, "B" commits and never publishes (it died).
 */
let redis: TestRedis;
let server: TestServer;
let c: Cast;
let relay: RedisEventBus; // the server's own bus
let busC: RedisEventBus;
let repo: OrderRepository;
const clients: WsClient[] = [];
const registries: OrderActorRegistry[] = [];
const log = createLogger("silent");

function registry(instanceId: string, bus: EventBus, beforePublish?: (committed: { orderId: string; seq: number }) => Promise<void>) {
  const r = new OrderActorRegistry({ repo, bus, clock: { now: () => new Date() }, log, instanceId, idleSeconds: 300, ...(beforePublish ? { beforePublish } : {}) });
  r.start();
  registries.push(r);
  return r;
}

/** The server's own gap filler (as src/server.ts builds it). */
async function fillFromDatabase(orderId: string, afterSeq: number, beforeSeq: number): Promise<OrderChange[]> {
  const stored = await repo.findById(orderId);
  return stored ? changesFromOrder(stored.order, afterSeq, beforeSeq) : [];
}

/** Resolves once the server's bus has delivered (orderId, seq) to its local topics. */
function delivered(orderId: string, seq: number): Promise<void> {
  return new Promise((resolve) => {
    if ((relay.deliveredSeq(orderId) ?? 0) >= seq) return resolve();
    const off = relay.onChange((change) => {
      if (change.orderId === orderId && change.seq >= seq) {
        off();
        resolve();
      }
    });
  });
}

async function open(): Promise<WsClient> {
  const client = await WsClient.open(server.url.replace(/^http/, "ws") + "/ws", c.customer.token);
  clients.push(client);
  return client;
}

const courierActor = () => ({ role: "courier" as const, id: c.courier.user.id });
const ownerActor = () => ({ role: "restaurant" as const, id: c.owner.user.id });

beforeAll(async () => {
  redis = await startRedis();
  // Broadcast: these cases need the server to hear C's changes of orders none of its sockets
  // watches yet (the interest relay's own races are in interest-relay.test.ts).
  server = await startTestServer({ REDIS_URL: redis.url, RELAY_GAP_WAIT_MS: "20", RELAY_MODE: "broadcast" });
  if (!(server.deps.bus instanceof RedisEventBus)) throw new Error("expected the Redis relay");
  relay = server.deps.bus;
  c = await cast(server);
  repo = new OrderRepository(server.deps.db.db);
  busC = new RedisEventBus({ redis: { kind: "single", url: redis.url }, instanceId: "C", channel: `dispatch:${server.deps.config.MONGODB_DB}:changes`, log });
  // Both subscriptions are up once a message from C reaches the server (pub/sub keeps nothing for late subscribers).
  let seen = false;
  const off = relay.onTransient((topic) => (seen ||= topic === "order:warmup"));
  const deadline = Date.now() + 5_000;
  while (!seen) {
    if (Date.now() > deadline) throw new Error("relay between C and the server never came up");
    busC.publishTransient("order:warmup", { type: "warmup" });
    await Bun.sleep(20);
  }
  off();
}, 20_000);

afterAll(async () => {
  for (const client of clients) client.close();
  await Promise.all(registries.map((r) => r.stop()));
  await busC?.close();
  await server?.stop();
  await redis?.stop();
});

describe("resume while the relay is behind the database", () => {
  test("a change another instance publishes after the subscriber read it reaches the subscriber once", async () => {
    const order = await orderIn(server, c, "preparing"); // seqs 1-3 through the server
    const topic = topics.order(order.id);
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let reached!: () => void;
    const held = new Promise<void>((r) => (reached = r));
    const onC = registry("C", busC, async ({ orderId, seq }) => {
      if (orderId !== order.id || seq !== 4) return;
      reached();
      await released;
    });
    const claiming = onC.send(order.id, { event: { type: "ASSIGN_COURIER", actor: courierActor() } });
    await held; // seq 4 committed on C, not yet relayed

    const client = await open();
    expect(await client.subscribe(topic, 2)).toEqual({ type: "subscribed", topic, seq: 4 });
    await client.next((f) => f.seq === 4);
    release();
    expect((await claiming).version).toBe(4);
    await delivered(order.id, 4); // the relayed seq 4 is on the server's topics now

    expect((await patch(server, c.owner, order.id, "ready_for_pickup")).status).toBe(200); // seq 5, live
    await client.next((f) => f.seq === 5);
    expect(await client.drain()).toEqual([]);
    expect(client.seqs(topic)).toEqual([3, 4, 5]);
  });

  test("a gap read back from the database after the subscriber read it does not repeat what it has", async () => {
    const order = await orderIn(server, c, "preparing");
    const topic = topics.order(order.id);
    const onB = registry("B", new LocalEventBus(log)); // commits, never relays
    const onC = registry("C", busC);
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let asked!: (range: [number, number]) => void;
    const gapSeen = new Promise<[number, number]>((r) => (asked = r));
    relay.setGapFiller(async (orderId, afterSeq, beforeSeq) => {
      if (orderId === order.id) {
        asked([afterSeq, beforeSeq]);
        await released;
      }
      return fillFromDatabase(orderId, afterSeq, beforeSeq);
    });
    try {
      expect((await onB.send(order.id, { event: { type: "ASSIGN_COURIER", actor: courierActor() } })).version).toBe(4);
      expect((await onC.send(order.id, { event: { type: "MARK_READY", actor: ownerActor() } })).version).toBe(5);
      expect(await gapSeen).toEqual([3, 5]); // the server holds seq 5 and is reading seq 4 back

      const client = await open();
      expect(await client.subscribe(topic, 3)).toEqual({ type: "subscribed", topic, seq: 5 });
      await client.next((f) => f.seq === 5);
      release(); // the server now delivers seqs 4 and 5 to its topics
      await delivered(order.id, 5);

      expect((await patch(server, c.courier, order.id, "picked_up")).status).toBe(200); // seq 6, live
      await client.next((f) => f.seq === 6);
      expect(await client.drain()).toEqual([]);
      expect(client.seqs(topic)).toEqual([4, 5, 6]);
    } finally {
      relay.setGapFiller(fillFromDatabase);
    }
  });

  test("a subscriber ahead of the server's relay is caught up from the relay before it joins the topic", async () => {
    const order = await orderIn(server, c, "accepted");
    const topic = topics.order(order.id);
    const onB = registry("B", new LocalEventBus(log)); // commits, never relays
    const onC = registry("C", busC);
    // Seqs 3-4 committed by an instance that never relayed them: the server knows seq 2 only.
    await onB.send(order.id, { event: { type: "START_PREPARING", actor: ownerActor() } });
    await onB.send(order.id, { event: { type: "ASSIGN_COURIER", actor: courierActor() } });
    const client = await open();
    expect(await client.subscribe(topic, 2)).toEqual({ type: "subscribed", topic, seq: 4 });
    await client.next((f) => f.seq === 4);
    // C's seq 5 shows the server the gap; it reads 3-4 back (the client has them), then sends 5.
    expect((await onC.send(order.id, { event: { type: "MARK_READY", actor: ownerActor() } })).version).toBe(5);
    await client.next((f) => f.seq === 5);
    expect((await patch(server, c.courier, order.id, "picked_up")).status).toBe(200);
    await client.next((f) => f.seq === 6);
    expect(await client.drain()).toEqual([]);
    expect(client.seqs(topic)).toEqual([3, 4, 5, 6]);
  });
});

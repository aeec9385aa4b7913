import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { redisCluster, singleRedis, type RedisDeployment } from "../helpers/redis-deployments";
import { startServerProcess, startSharedDatabase, stopAllProcesses, type ServerProcess, type SharedDatabase, openPizzeriaOn, processHttp, registerOn, type ProcessResponse } from "../helpers/processes";
import { WsClient } from "../helpers/ws";
import { topics } from "../../src/events/topics";

/**
 * Several server processes (`bun run src/index.ts`) sharing one database (a standalone embedded
 * engine, or MONGODB_URI) and one Redis deployment, each on a free port; real HTTP and WebSocket
 * clients. Everything runs twice: on one redis-server (REDIS_URL) and on a Redis Cluster of
 * 3 masters and 3 replicas (REDIS_CLUSTER_NODES); on the cluster, interest routing and failover
 * are checked first.
 */
multiInstance("one Redis", singleRedis);
multiInstance("a Redis Cluster", redisCluster);

function multiInstance(deployment: string, startDeployment: () => Promise<RedisDeployment>): void {
describe(deployment, () => {
let redis: RedisDeployment;
let database: SharedDatabase;
let A: ServerProcess;
let B: ServerProcess;
let C: ServerProcess;
const clients: WsClient[] = [];

type User = { token: string; id: string };
const ADMIN = { email: "admin@multi.test", password: "admin-password-1" };
let customer: User;
let owner: User;
let courier: User;
let restaurantId: string;

type Res = ProcessResponse;
const http = processHttp;
const register = (role: string): Promise<User> => registerOn(A, role, "multi.test");

async function placeOrder(via: ServerProcess): Promise<{ id: string; version: number }> {
  const res = await http(via, "POST", "/orders", customer, {
    restaurantId,
    items: [{ menuItemId: "pizza", quantity: 1 }],
    deliveryLocation: { lat: 48.8606, lng: 2.3622 },
  });
  expect(res.status).toBe(201);
  return res.body;
}

/** The moves that take a placed order to delivered, with who makes each. */
const LIFE: Array<["owner" | "courier", string]> = [
  ["owner", "accepted"],
  ["owner", "preparing"],
  ["courier", "claim"],
  ["owner", "ready_for_pickup"],
  ["courier", "picked_up"],
  ["courier", "delivered"],
];

function move(via: ServerProcess, orderId: string, step: number): Promise<Res> {
  const [who, to] = LIFE[step];
  const user = who === "owner" ? owner : courier;
  return to === "claim" ? http(via, "POST", `/orders/${orderId}/claim`, user) : http(via, "PATCH", `/orders/${orderId}`, user, { status: to });
}

async function open(instance: ServerProcess, who: User): Promise<WsClient> {
  const client = await WsClient.open(instance.wsUrl, who.token);
  clients.push(client);
  return client;
}

beforeAll(async () => {
  [redis, database] = await Promise.all([startDeployment(), startSharedDatabase()]);
  const env = {
    ...database.env,
    ...redis.env,
    RELAY_MODE: "interest",
    RELAY_UNSUBSCRIBE_GRACE_MS: "300",
    ADMIN_EMAIL: ADMIN.email,
    ADMIN_PASSWORD: ADMIN.password,
    PASSWORD_HASH_MEMORY_KIB: "1024",
    PASSWORD_HASH_TIME_COST: "1",
    LOGIN_MAX_ATTEMPTS: "1000",
    RELAY_GAP_WAIT_MS: "100",
    // One courier carries many of these orders at once.
    COURIER_MAX_ACTIVE: "100",
  };
  A = await startServerProcess({ ...env, INSTANCE_ID: "A" }); // first alone: it creates the admin and the indexes
  [B, C] = await Promise.all([startServerProcess({ ...env, INSTANCE_ID: "B" }), startServerProcess({ ...env, INSTANCE_ID: "C" })]);
  for (const instance of [A, B, C]) {
    const deadline = Date.now() + 5_000;
    while ((await fetch(`${instance.url}/ready`)).status !== 200) {
      if (Date.now() > deadline) throw new Error(`${instance.name} never became ready`);
      await Bun.sleep(20);
    }
  }
  [customer, owner, courier] = await Promise.all([register("customer"), register("restaurant"), register("courier")]);
  restaurantId = await openPizzeriaOn(A, owner, "Relay Pizza");
}, 60_000);

afterAll(async () => {
  for (const client of clients) client.close();
  await Promise.all([A, B, C].filter(Boolean).map((s) => s.stop("SIGTERM")));
  await database?.stop();
  await redis?.stop();
  await stopAllProcesses();
});

describe(`several instances behind ${deployment}`, () => {
  if (deployment === "a Redis Cluster") clusterOnly();
  test("/ready reports Redis", async () => {
    const ready = await http(B, "GET", "/ready");
    expect(ready).toEqual({ status: 200, body: { status: "ready", database: "up", redis: "up" } });
  }, 60_000);

  test("a client on A sees a PATCH made through B, and a restaurant on C sees an order placed through B", async () => {
    const restaurantFeed = await open(C, owner);
    await restaurantFeed.subscribe(topics.restaurant(restaurantId));
    const order = await placeOrder(B);
    const created = await restaurantFeed.next((f) => f.type === "order.created" && f.orderId === order.id);
    expect(created.seq).toBe(1);

    const topic = topics.order(order.id);
    const onA = await open(A, customer);
    expect(await onA.subscribe(topic)).toEqual({ type: "subscribed", topic, seq: 1 });
    expect((await move(B, order.id, 0)).status).toBe(200);
    const event = await onA.next((f) => f.type === "order.updated");
    expect(event).toMatchObject({ topic, orderId: order.id, seq: 2, status: "accepted", prevStatus: "placed" });
    expect(await onA.drain()).toEqual([]); // once, no echo
  }, 60_000);

  test("a client that misses changes made elsewhere resumes on another instance with exactly the missed ones", async () => {
    const order = await placeOrder(A);
    const topic = topics.order(order.id);
    const first = await open(A, customer);
    await first.subscribe(topic);
    expect((await move(B, order.id, 0)).status).toBe(200);
    await first.next((f) => f.seq === 2);
    const lastSeen = Math.max(...first.seqs(topic));
    first.close();
    await first.closed;

    // Missed while disconnected, through two other instances.
    expect((await move(B, order.id, 1)).status).toBe(200);
    expect((await move(C, order.id, 2)).status).toBe(200);
    expect((await move(B, order.id, 3)).status).toBe(200);

    const resumed = await open(C, customer);
    expect(await resumed.subscribe(topic, lastSeen)).toEqual({ type: "subscribed", topic, seq: 5 });
    expect((await move(A, order.id, 4)).status).toBe(200); // live, through a third instance
    await resumed.next((f) => f.seq === 6);
    expect(await resumed.drain()).toEqual([]);
    expect(resumed.seqs(topic)).toEqual([3, 4, 5, 6]);
  }, 60_000);

  test("SIGKILL of an instance while orders move loses no committed change for clients that resume elsewhere", async () => {
    const orders = await Promise.all([1, 2, 3, 4, 5, 6].map(() => placeOrder(A)));
    const onB = await open(B, customer); // its instance will die
    const onA = await open(A, customer); // stays connected throughout
    for (const o of orders) {
      await onB.subscribe(topics.order(o.id));
      await onA.subscribe(topics.order(o.id));
    }

    // Orders move through B; B is killed mid-stream, with requests in flight.
    let answered = 0;
    let killed: Promise<unknown> | null = null;
    const throughB = orders.map(async (o) => {
      for (let step = 0; step < 3; step++) {
        const res = await move(B, o.id, step).catch(() => null);
        if (!res) return;
        answered++;
        if (answered === 8 && !killed) killed = B.stop("SIGKILL");
      }
    });
    await Promise.all(throughB);
    await killed;
    expect(B.proc.signalCode).toBe("SIGKILL");
    await onB.closed;

    // The orders keep moving through A, from wherever B left each of them.
    await Promise.all(
      orders.map(async (o) => {
        const current = (await http(A, "GET", `/orders/${o.id}`, customer)).body;
        for (let step = current.history.length - 1; step < LIFE.length; step++) expect((await move(A, o.id, step)).status).toBe(200);
      }),
    );
    const finals = await Promise.all(orders.map((o) => http(A, "GET", `/orders/${o.id}`, customer)));
    for (const f of finals) {
      expect(f.body.status).toBe("delivered");
      expect(f.body.history.map((h: { seq: number }) => h.seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    }

    // The client of the dead instance resumes on C from the last seq it saw of each order.
    const resumed = await open(C, customer);
    for (const o of orders) {
      const topic = topics.order(o.id);
      const seen = onB.seqs(topic);
      await resumed.subscribe(topic, seen.length ? Math.max(...seen) : 1);
    }
    const complete = (client: WsClient) =>
      orders.every((o) => client.seqs(topics.order(o.id)).includes(7));
    await resumed.until(() => complete(resumed));
    await onA.until(() => complete(onA));
    for (const o of orders) {
      const topic = topics.order(o.id);
      expect([...onB.seqs(topic), ...resumed.seqs(topic)]).toEqual([2, 3, 4, 5, 6, 7]);
      // The client that stayed on A got every change too: what B committed but never relayed
      // was read back from the database when the next change of that order showed the gap.
      expect(onA.seqs(topic)).toEqual([2, 3, 4, 5, 6, 7]);
    }
  }, 60_000);

  test("with Redis down an instance keeps serving its own clients, logs it once, and relays again once Redis is back", async () => {
    const order = await placeOrder(A);
    const topic = topics.order(order.id);
    const onA = await open(A, customer);
    const onC = await open(C, customer);
    await onA.subscribe(topic);
    await onC.subscribe(topic);

    await redis.kill();
    const deadline = Date.now() + 5_000;
    while ((await fetch(`${A.url}/ready`)).status !== 503) {
      if (Date.now() > deadline) throw new Error("A still ready with Redis down");
      await Bun.sleep(20);
    }
    expect((await move(A, order.id, 0)).status).toBe(200);
    await onA.next((f) => f.seq === 2); // local clients are served as before
    expect((await move(A, order.id, 1)).status).toBe(200);
    await onA.next((f) => f.seq === 3);
    await Bun.sleep(300); // reconnect attempts keep failing meanwhile
    const outage = (line: Record<string, unknown>) => typeof line.msg === "string" && line.msg.startsWith("redis relay unavailable");
    expect(A.lines.filter(outage).length).toBe(1);

    await redis.restart();
    for (const instance of [A, C]) {
      const until = Date.now() + 8_000;
      while ((await fetch(`${instance.url}/ready`)).status !== 200) {
        if (Date.now() > until) throw new Error(`${instance.name} did not reconnect to Redis`);
        await Bun.sleep(20);
      }
    }
    await A.waitForLine((l) => l.msg === "redis relay reconnected");
    // C missed seqs 2 and 3 (never relayed); the next change shows the gap and C reads it back.
    await Bun.sleep(100); // let the re-subscribe settle
    expect((await move(A, order.id, 2)).status).toBe(200);
    await onC.until((frames) => frames.some((f) => f.topic === topic && f.seq === 4));
    expect(onC.seqs(topic)).toEqual([2, 3, 4]);
    // A's own client gets seq 4 over its socket too, not necessarily before C's does.
    await onA.until((frames) => frames.some((f) => f.topic === topic && f.seq === 4));
    expect(onA.seqs(topic)).toEqual([2, 3, 4]);
  }, 60_000);

  test("a change committed elsewhere while Redis was down reaches subscribers even when it was the order's last", async () => {
    const order = await placeOrder(A);
    const topic = topics.order(order.id);
    const onC = await open(C, customer);
    await onC.subscribe(topic);

    await redis.kill();
    const deadline = Date.now() + 5_000;
    while ((await fetch(`${A.url}/ready`)).status !== 503) {
      if (Date.now() > deadline) throw new Error("A still ready with Redis down");
      await Bun.sleep(20);
    }
    // The restaurant rejects through A: a final change, so no later seq will ever show C the gap.
    const rejected = await http(A, "PATCH", `/orders/${order.id}`, owner, { status: "rejected" });
    expect(rejected.status).toBe(200);
    await redis.restart();
    // C compares its subscribed orders with the database and delivers what the relay lost.
    await onC.until((frames) => frames.some((f) => f.topic === topic && f.seq === 2), 10_000);
    expect(onC.seqs(topic)).toEqual([2]);
  }, 60_000);

  /** Kills Redis and waits until `via` notices (its /ready answers 503). */
  async function redisDown(via: ServerProcess) {
    await redis.kill();
    const deadline = Date.now() + 5_000;
    while ((await fetch(`${via.url}/ready`)).status !== 503) {
      if (Date.now() > deadline) throw new Error("still ready with Redis down");
      await Bun.sleep(20);
    }
  }

  /** The (orderId, seq) pairs a feed client got for one order, repeats dropped (resuming by time may repeat some). */
  const pairs = (client: WsClient, topic: string, orderId: string) => [...new Set(client.frames.filter((f) => f.topic === topic && f.orderId === orderId).map((f) => f.seq as number))];

  test("restaurant and courier topics (chaos F5): changes committed elsewhere while Redis was down reach their watchers, the last one included", async () => {
    const feedTopic = topics.restaurant(restaurantId);
    const courierTopic = topics.courier(courier.id);
    const onC = await open(C, owner);
    await onC.subscribe(feedTopic);
    const courierOnC = await open(C, courier);
    await courierOnC.subscribe(courierTopic);
    const order = await placeOrder(A);
    await onC.until((frames) => frames.some((f) => f.orderId === order.id && f.seq === 1), 5_000);

    await redisDown(A);
    // Accepted, claimed and cancelled through A while C hears nothing: no order topic is watched on C.
    expect((await move(A, order.id, 0)).status).toBe(200); // accepted
    expect((await move(A, order.id, 2)).status).toBe(200); // claimed by the courier
    expect((await http(A, "PATCH", `/orders/${order.id}`, owner, { status: "cancelled" })).status).toBe(200);
    await redis.restart();
    await onC.until((frames) => frames.some((f) => f.orderId === order.id && f.seq === 4), 15_000);
    expect(pairs(onC, feedTopic, order.id)).toEqual([1, 2, 3, 4]);
    // The assignment (seq 3) and what followed reach the courier's topic too (rebuilt from the
    // history, as a resume's replay is, earlier entries of its order may come along).
    await courierOnC.until((frames) => frames.some((f) => f.orderId === order.id && f.seq === 4), 15_000);
    expect(pairs(courierOnC, courierTopic, order.id).filter((seq) => seq >= 3)).toEqual([3, 4]);
    // Leave no topic watched: later tests count what each instance receives.
    onC.close();
    courierOnC.close();
  }, 30_000);

  test("restaurant topics (chaos F5): an order C first hears of mid-way after an outage reaches C's watcher from its first change, in order", async () => {
    const feedTopic = topics.restaurant(restaurantId);
    const onC = await open(C, owner);
    await onC.subscribe(feedTopic);
    await redisDown(A);
    // Placed and accepted through A while Redis is down: C never hears of seqs 1 and 2 live.
    const order = await placeOrder(A);
    expect((await move(A, order.id, 0)).status).toBe(200);
    await redis.restart();
    const deadline = Date.now() + 10_000;
    // Once A relays again, its next change (seq 3) is the first C sees of this order.
    while ((await fetch(`${A.url}/ready`)).status !== 200 || (await fetch(`${C.url}/ready`)).status !== 200) {
      if (Date.now() > deadline) throw new Error("not ready again after Redis came back");
      await Bun.sleep(20);
    }
    expect((await move(A, order.id, 1)).status).toBe(200);
    await onC.until((frames) => frames.some((f) => f.orderId === order.id && f.seq === 3), 10_000);
    const got = onC.frames.filter((f) => f.topic === feedTopic && f.orderId === order.id).map((f) => f.seq as number);
    // In seq order per order: never a lower seq after a higher one (repeats of a pair are allowed).
    expect(got.every((seq, i) => i === 0 || seq >= got[i - 1] || got.slice(0, i).includes(seq))).toBe(true);
    expect(pairs(onC, feedTopic, order.id)).toEqual([1, 2, 3]);
    onC.close();
  }, 30_000);

  test("SIGTERM with WebSockets open: clients get 1001 and the process exits 0 promptly", async () => {
    const client = await open(C, courier);
    expect(await client.subscribe(topics.courier(courier.id))).toMatchObject({ type: "subscribed" });
    const started = performance.now();
    const code = await C.stop("SIGTERM");
    expect(code).toBe(0);
    expect(performance.now() - started).toBeLessThan(5_000);
    expect((await client.closed).code).toBe(1001);
  }, 60_000);
});

/** Interest routing and failover on the cluster (issue 13, 5a-5c); they run first, while B has no sockets. */
function clusterOnly(): void {
  const metric = async (instance: ServerProcess, name: string) => {
    const text = await (await fetch(`${instance.url}/metrics`)).text();
    const line = text.split("\n").find((l) => l.startsWith(`${name} `));
    return line ? Number(line.split(" ")[1]) : 0;
  };
  const channelOf = (orderId: string) => `dispatch:${database.env.MONGODB_DB}:{${topics.order(orderId)}}`;
  const shardSubscribers = async (channel: string) => {
    const cluster = redis.cluster!;
    return Number((await cluster.cli(await cluster.masterOf(channel), "pubsub", "shardnumsub", channel)).split("\n")[1]);
  };

  test("interest: orders watched only on A and changed 102 times through C reach A in order; B receives nothing; the channel empties after A leaves", async () => {
    const orders = await Promise.all(Array.from({ length: 17 }, () => placeOrder(C)));
    const feed = await open(A, owner);
    await feed.subscribe(topics.restaurant(restaurantId));
    const watcher = await open(A, customer);
    await watcher.subscribe(topics.order(orders[0].id));
    const [receivedB, receivedA, watchedA] = await Promise.all([metric(B, "dispatch_relay_received_total"), metric(A, "dispatch_relay_received_total"), metric(A, "dispatch_relay_received_watched_total")]);
    // 17 orders × 6 moves = 102 changes, all through C (an order takes about 6 visible changes in its life).
    await Promise.all(orders.map(async (o) => { for (let step = 0; step < LIFE.length; step++) expect((await move(C, o.id, step)).status).toBe(200); }));
    await feed.until(() => orders.every((o) => feed.frames.filter((f) => f.orderId === o.id && f.seq === 7).length === 1), 15_000);
    for (const o of orders) expect(feed.frames.filter((f) => f.orderId === o.id && f.type === "order.updated").map((f) => f.seq)).toEqual([2, 3, 4, 5, 6, 7]);
    await watcher.until(() => watcher.seqs(topics.order(orders[0].id)).includes(7));
    expect(watcher.seqs(topics.order(orders[0].id))).toEqual([2, 3, 4, 5, 6, 7]);
    expect((await metric(A, "dispatch_relay_received_watched_total")) - watchedA).toBeGreaterThanOrEqual(102);
    expect((await metric(A, "dispatch_relay_received_total")) - receivedA).toBe((await metric(A, "dispatch_relay_received_watched_total")) - watchedA);
    expect((await metric(B, "dispatch_relay_received_total")) - receivedB).toBe(0);

    const channel = channelOf(orders[0].id);
    expect(await shardSubscribers(channel)).toBe(1);
    watcher.close();
    await watcher.closed;
    const deadline = Date.now() + 5_000;
    while ((await shardSubscribers(channel)) !== 0) {
      if (Date.now() > deadline) throw new Error("the order's channel still has a subscriber after A's last socket left");
      await Bun.sleep(50);
    }
    feed.close();
    await feed.closed;
    // The next test counts what each instance receives: A must have left the restaurant's channel too.
    const feedChannel = `dispatch:${database.env.MONGODB_DB}:{${topics.restaurant(restaurantId)}}`;
    while ((await shardSubscribers(feedChannel)) !== 0) {
      if (Date.now() > deadline + 5_000) throw new Error("the restaurant's channel still has a subscriber after A's feed left");
      await Bun.sleep(50);
    }
  }, 60_000);

  test("proportionality: with disjoint watched orders each instance receives only the changes of its own", async () => {
    const instances = [A, B, C];
    const orders = await Promise.all(Array.from({ length: 6 }, () => placeOrder(A)));
    const mine = (i: number) => orders.filter((_, k) => k % 3 === i);
    const watchers = await Promise.all(instances.map(async (instance, i) => {
      const client = await open(instance, customer);
      for (const o of mine(i)) await client.subscribe(topics.order(o.id));
      return client;
    }));
    const before = await Promise.all(instances.map(async (x) => [await metric(x, "dispatch_relay_received_total"), await metric(x, "dispatch_relay_received_watched_total")]));
    // Every order moves through every instance in turn.
    await Promise.all(orders.map(async (o, k) => { for (let step = 0; step < LIFE.length; step++) expect((await move(instances[(k + step) % 3], o.id, step)).status).toBe(200); }));
    for (const [i, client] of watchers.entries()) {
      await client.until(() => mine(i).every((o) => client.seqs(topics.order(o.id)).includes(7)), 10_000);
      for (const o of mine(i)) expect(client.seqs(topics.order(o.id))).toEqual([2, 3, 4, 5, 6, 7]);
    }
    for (const [i, x] of instances.entries()) {
      const received = (await metric(x, "dispatch_relay_received_total")) - before[i][0];
      const watched = (await metric(x, "dispatch_relay_received_watched_total")) - before[i][1];
      expect(received).toBe(watched);
      // Its 2 orders × 6 changes, of which it made some itself (those are not received).
      expect(received).toBeGreaterThanOrEqual(1);
      expect(received).toBeLessThanOrEqual(12);
    }
    for (const client of watchers) client.close();
  }, 60_000);

  test("failover: SIGKILL of the master serving a watched order's channel while it changes; delivery resumes within 5 s of the takeover, last seqs equal the database's", async () => {
    const order = await placeOrder(C);
    const onA = await open(A, customer);
    const onB = await open(B, customer);
    for (const client of [onA, onB]) await client.subscribe(topics.order(order.id));
    expect((await move(C, order.id, 0)).status).toBe(200);
    expect((await move(C, order.id, 1)).status).toBe(200);
    await onA.until(() => onA.seqs(topics.order(order.id)).includes(3));
    const master = await redis.cluster!.masterOf(channelOf(order.id));
    const killing = redis.cluster!.killMaster(master);
    expect((await move(C, order.id, 2)).status).toBe(200); // committed while the master dies
    await killing;
    const tookOver = performance.now();
    expect((await move(C, order.id, 3)).status).toBe(200);
    for (const client of [onA, onB]) await client.until(() => client.seqs(topics.order(order.id)).includes(5), 5_000);
    expect(performance.now() - tookOver).toBeLessThan(5_000);
    for (let step = 4; step < LIFE.length; step++) expect((await move(C, order.id, step)).status).toBe(200);
    const stored = (await http(A, "GET", `/orders/${order.id}`, customer)).body;
    for (const client of [onA, onB]) {
      await client.until(() => client.seqs(topics.order(order.id)).includes(stored.version), 5_000);
      expect(client.seqs(topics.order(order.id))).toEqual([2, 3, 4, 5, 6, 7]);
    }
    onA.close();
    onB.close();
    await redis.cluster!.restart(master); // back as a replica: 3 masters and 3 replicas again
  }, 60_000);
}
});
}

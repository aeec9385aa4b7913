import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { RedisEventBus } from "../../src/realtime/redis-relay";
import { topics } from "../../src/events/topics";
import type { OrderChange } from "../../src/events/change";
import { startRedis, type TestRedis } from "../helpers/redis";
import { capturingLogger, changeFor, RecordingServer } from "./fixtures";

let redis: TestRedis;
const buses: RedisEventBus[] = [];

beforeAll(async () => {
  redis = await startRedis();
});

afterAll(async () => {
  await Promise.all(buses.map((b) => b.close()));
  await redis?.stop();
});

async function instance(instanceId: string, channel: string) {
  const { log, lines } = capturingLogger();
  const bus = new RedisEventBus({ redis: { kind: "single", url: redis.url }, instanceId, channel, log, gapWaitMs: 50 });
  buses.push(bus);
  const server = new RecordingServer();
  bus.attach(server);
  const deadline = Date.now() + 5_000;
  while (!(await bus.ready())) {
    if (Date.now() > deadline) throw new Error("relay never became ready");
    await Bun.sleep(10);
  }
  // SUBSCRIBE is acknowledged before ready() can see it; one round trip settles it.
  await Bun.sleep(20);
  return { bus, server, lines };
}

describe("RedisEventBus", () => {
  test("a change published on A reaches A's and B's topics exactly once, with no echo", async () => {
    const channel = `t:${crypto.randomUUID()}`;
    const a = await instance("A", channel);
    const b = await instance("B", channel);
    const listenedOnA: OrderChange[] = [];
    const listenedOnB: OrderChange[] = [];
    a.bus.onChange((c) => listenedOnA.push(c));
    b.bus.onChange((c) => listenedOnB.push(c));

    for (const seq of [1, 2, 3]) a.bus.publish(changeFor("o1", seq, "A"));
    const orderTopic = topics.order("o1");
    await b.server.until(() => b.server.seqs(orderTopic).length === 3);
    // Give an echo time to arrive if there were one.
    await Bun.sleep(100);

    expect(a.server.seqs(orderTopic)).toEqual([1, 2, 3]);
    expect(b.server.seqs(orderTopic)).toEqual([1, 2, 3]);
    expect(b.server.seqs(topics.restaurant("r1"))).toEqual([1, 2, 3]);
    expect(b.server.published.find((p) => p.topic === topics.restaurant("r1"))?.message.type).toBe("order.created");
    // Listeners (the orders registry among them) see each change once; on B its origin says
    // another instance wrote it, so B's cached actor is stale.
    expect(listenedOnA.map((c) => [c.seq, c.origin])).toEqual([[1, "A"], [2, "A"], [3, "A"]]);
    expect(listenedOnB.map((c) => [c.seq, c.origin])).toEqual([[1, "A"], [2, "A"], [3, "A"]]);
  });

  test("changes of one order written on two instances reach a third in seq order", async () => {
    const channel = `t:${crypto.randomUUID()}`;
    const a = await instance("A", channel);
    const b = await instance("B", channel);
    const c = await instance("C", channel);
    a.bus.publish(changeFor("o2", 1, "A"));
    await c.server.until(() => c.server.seqs(topics.order("o2")).length === 1);
    // B commits seq 3 after A's seq 2, but B's publish reaches Redis first.
    b.bus.publish(changeFor("o2", 3, "B"));
    await Bun.sleep(10);
    a.bus.publish(changeFor("o2", 2, "A"));
    await c.server.until(() => c.server.seqs(topics.order("o2")).length === 3);
    expect(c.server.seqs(topics.order("o2"))).toEqual([1, 2, 3]);
    // On A itself its own seq 2 went out before B's seq 3.
    await a.server.until(() => a.server.seqs(topics.order("o2")).length === 3);
    expect(a.server.seqs(topics.order("o2"))).toEqual([1, 2, 3]);
  });

  test("a change that never reaches Redis is filled in from the database", async () => {
    const channel = `t:${crypto.randomUUID()}`;
    const a = await instance("A", channel);
    const b = await instance("B", channel);
    b.bus.setGapFiller(async (orderId, after, before) => {
      const out: OrderChange[] = [];
      for (let seq = after + 1; seq < before; seq++) out.push(changeFor(orderId, seq, "db"));
      return out;
    });
    a.bus.publish(changeFor("o3", 1, "A"));
    await b.server.until(() => b.server.seqs(topics.order("o3")).length === 1);
    // Seq 2 was committed by an instance that died before publishing; seq 3 arrives.
    a.bus.publish(changeFor("o3", 3, "A"));
    await b.server.until(() => b.server.seqs(topics.order("o3")).length === 3);
    expect(b.server.seqs(topics.order("o3"))).toEqual([1, 2, 3]);
  });

  test("transient messages (courier positions) are relayed without echo", async () => {
    const channel = `t:${crypto.randomUUID()}`;
    const a = await instance("A", channel);
    const b = await instance("B", channel);
    const topic = topics.order("o4");
    a.bus.publishTransient(topic, { type: "courier.location", topic, orderId: "o4", courierId: "k1", lat: 1, lng: 2, at: "x" });
    await b.server.until(() => b.server.published.length === 1);
    await Bun.sleep(50);
    expect(a.server.published.length).toBe(1);
    expect(b.server.published[0]).toEqual({ topic, message: { type: "courier.location", topic, orderId: "o4", courierId: "k1", lat: 1, lng: 2, at: "x" } });
  });

  test("when Redis goes down the instance keeps serving locally, logs once, and reconnects", async () => {
    const channel = `t:${crypto.randomUUID()}`;
    const a = await instance("A", channel);
    const b = await instance("B", channel);
    await redis.kill();
    const deadline = Date.now() + 5_000;
    while (await a.bus.ready()) {
      if (Date.now() > deadline) throw new Error("relay still ready after redis died");
      await Bun.sleep(10);
    }
    for (const seq of [1, 2]) a.bus.publish(changeFor("o5", seq, "A"));
    expect(a.server.seqs(topics.order("o5"))).toEqual([1, 2]);
    await Bun.sleep(600); // several reconnect attempts fail meanwhile
    const outageLogs = a.lines.filter((l) => l.msg === "redis relay unavailable; serving this instance's clients only, reconnecting");
    expect(outageLogs.length).toBe(1);

    await redis.restart();
    for (const bus of [a.bus, b.bus]) {
      const until = Date.now() + 8_000;
      while (!(await bus.ready())) {
        if (Date.now() > until) throw new Error("relay did not reconnect");
        await Bun.sleep(20);
      }
    }
    await Bun.sleep(50); // resubscribe
    expect(a.lines.some((l) => l.msg === "redis relay reconnected")).toBe(true);
    a.bus.publish(changeFor("o5", 3, "A"));
    await b.server.until(() => b.server.seqs(topics.order("o5")).length === 1);
    expect(b.server.seqs(topics.order("o5"))).toEqual([3]);
  });
});

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { InterestEventBus } from "../../src/realtime/interest-relay";
import type { RelayMetrics } from "../../src/realtime/relay";
import { topics } from "../../src/events/topics";
import type { RedisTarget } from "../../src/redis";
import { startRedis, type TestRedis } from "../helpers/redis";
import { startRedisCluster, type TestRedisCluster } from "../helpers/redis-cluster";
import { capturingLogger, changeFor, RecordingServer } from "./fixtures";

/**
 * The interest relay on its own, on one redis-server and on a Redis Cluster (3 masters,
 * 3 replicas): what reaches an instance is what it watches, channels come and go with the
 * watchers, and a subscriber left deaf is found by the probe and subscribed again.
 */
let redis: TestRedis;
let cluster: TestRedisCluster;
const buses: InterestEventBus[] = [];

beforeAll(async () => {
  [redis, cluster] = await Promise.all([startRedis(), startRedisCluster()]);
}, 60_000);

afterAll(async () => {
  await Promise.all(buses.map((b) => b.close()));
  await Promise.all([redis?.stop(), cluster?.stop()]);
});

type Counts = { received: number; watched: number; channels: number; resubscribed: number; probeFailures: number };

function countingMetrics(counts: Counts): RelayMetrics {
  return {
    redisError() {},
    relayed() {},
    lag() {},
    received: (watched) => {
      counts.received++;
      if (watched) counts.watched++;
    },
    channels: (n) => (counts.channels = n),
    resubscribed: (n) => (counts.resubscribed += n),
    probeFailed: () => counts.probeFailures++,
  };
}

const deployments: Array<[string, () => RedisTarget, (channel: string) => Promise<number>]> = [
  ["one redis-server", () => ({ kind: "single", url: redis.url }), async (channel) => Number((await cli(redis.port, "pubsub", "numsub", channel)).split("\n")[1])],
  [
    "a Redis Cluster",
    () => ({ kind: "cluster", nodes: cluster.nodes.split(",").map((n) => ({ host: "127.0.0.1", port: Number(n.split(":")[1]) })) }),
    async (channel) => Number((await cluster.cli(await cluster.masterOf(channel), "pubsub", "shardnumsub", channel)).split("\n")[1]),
  ],
];

async function eventually(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await Bun.sleep(20);
  }
}

async function cli(port: number, ...args: string[]): Promise<string> {
  const proc = Bun.spawn(["redis-cli", "-p", String(port), ...args], { stdout: "pipe" });
  return (await new Response(proc.stdout).text()).trim();
}

for (const [name, target, subscribers] of deployments) {
  describe(`InterestEventBus on ${name}`, () => {
    async function instance(instanceId: string, namespace: string, opts: { graceMs?: number; probeMs?: number } = {}) {
      const { log, lines } = capturingLogger();
      const counts: Counts = { received: 0, watched: 0, channels: 0, resubscribed: 0, probeFailures: 0 };
      const bus = new InterestEventBus({
        redis: target(),
        instanceId,
        namespace,
        log,
        gapWaitMs: 50,
        unsubscribeGraceMs: opts.graceMs ?? 100,
        // Probes only where the test is about them: a probe late under load resubscribes (harmless, but it reads the database).
        probeIntervalMs: opts.probeMs ?? 60_000,
        metrics: countingMetrics(counts),
      });
      buses.push(bus);
      const server = new RecordingServer();
      bus.attach(server);
      const deadline = Date.now() + 10_000;
      while (!(await bus.ready())) {
        if (Date.now() > deadline) throw new Error("relay never became ready");
        await Bun.sleep(20);
      }
      return { bus, server, counts, lines };
    }

    test("an instance receives the changes of the topics it watches and nothing else", async () => {
      const ns = `t:${crypto.randomUUID().slice(0, 8)}:`;
      const a = await instance("A", ns);
      const b = await instance("B", ns);
      const c = await instance("C", ns);
      const watchA = a.bus.watch(topics.order("o1"));
      const watchB = b.bus.watch(topics.restaurant("r2"));
      await Promise.all([watchA.ready, watchB.ready]);

      for (let seq = 1; seq <= 20; seq++) c.bus.publish(changeFor("o1", seq, "C", "r1"));
      for (let seq = 1; seq <= 5; seq++) c.bus.publish(changeFor("o2", seq, "C", "r2"));
      c.bus.publishTransient(topics.order("o1"), { type: "courier.location", topic: topics.order("o1") });
      await a.server.until(() => a.server.seqs(topics.order("o1")).length === 21);
      await b.server.until(() => b.server.seqs(topics.restaurant("r2")).length === 5);
      await Bun.sleep(100); // anything that should not come has had time to

      // The transient has no seq and no order relative to the changes.
      expect(a.server.seqs(topics.order("o1")).filter((seq) => seq !== undefined)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
      expect(a.server.published.some((p) => p.message.type === "courier.location")).toBe(true);
      // A watches order o1 only: its changes and its transient, none of o2's.
      expect(a.counts).toMatchObject({ received: 21, watched: 21 });
      expect(a.server.seqs(topics.order("o2"))).toEqual([]);
      // B watches restaurant r2: o2's changes (through its restaurant's channel), none of o1's.
      expect(b.counts).toMatchObject({ received: 5, watched: 5 });
      expect(b.server.seqs(topics.order("o1"))).toEqual([]);
      watchA.release();
      watchB.release();
    }, 60_000);

    test("a change on two watched channels (order and restaurant) is delivered once", async () => {
      const ns = `t:${crypto.randomUUID().slice(0, 8)}:`;
      const a = await instance("A", ns);
      const c = await instance("C", ns);
      const w1 = a.bus.watch(topics.order("o3"));
      const w2 = a.bus.watch(topics.restaurant("r3"));
      await Promise.all([w1.ready, w2.ready]);
      for (let seq = 1; seq <= 3; seq++) c.bus.publish(changeFor("o3", seq, "C", "r3"));
      await eventually(() => a.counts.received === 6, "six messages (three changes on two channels)");
      await Bun.sleep(50);
      expect(a.server.seqs(topics.order("o3"))).toEqual([1, 2, 3]);
      expect(a.server.seqs(topics.restaurant("r3"))).toEqual([1, 2, 3]);
      w1.release();
      w2.release();
    }, 60_000);

    test("the channel is subscribed while watched, kept through the grace period, and dropped after it", async () => {
      const ns = `t:${crypto.randomUUID().slice(0, 8)}:`;
      const a = await instance("A", ns, { graceMs: 1_500 });
      const channel = a.bus.channelOf(topics.order("o4"));
      expect(channel).toBe(`${ns}{order:o4}`);
      const first = a.bus.watch(topics.order("o4"));
      const second = a.bus.watch(topics.order("o4"));
      await first.ready;
      expect(await subscribers(channel)).toBe(1);
      expect(a.counts.channels).toBe(1);
      first.release();
      first.release(); // twice is once
      second.release();
      await Bun.sleep(100);
      expect(await subscribers(channel)).toBe(1); // within the grace period
      const again = a.bus.watch(topics.order("o4")); // back in time: nothing to redo
      await again.ready;
      again.release();
      await eventually(async () => (await subscribers(channel)) === 0, "channel unsubscribed after the grace period");
      expect(a.counts.channels).toBe(0);
    }, 60_000);

    test("rejoining an order heard of before reads what it missed, so the next change goes out at once", async () => {
      const ns = `t:${crypto.randomUUID().slice(0, 8)}:`;
      const a = await instance("A", ns, { graceMs: 0 });
      const c = await instance("C", ns);
      const missed = [2, 3, 4].map((seq) => changeFor("o5", seq, "C"));
      const asked: Array<[number, number]> = [];
      a.bus.setGapFiller(async (_orderId, after, before) => {
        asked.push([after, before]);
        return missed.filter((m) => m.seq > after && m.seq < before);
      });
      const w = a.bus.watch(topics.order("o5"));
      await w.ready;
      c.bus.publish(changeFor("o5", 1, "C"));
      await a.server.until(() => a.server.seqs(topics.order("o5")).length === 1);
      w.release();
      await Bun.sleep(100); // unsubscribed; seqs 2-4 are committed meanwhile and not heard
      const back = a.bus.watch(topics.order("o5"));
      await back.ready;
      expect(asked).toEqual([[1, Number.MAX_SAFE_INTEGER]]);
      expect(a.bus.deliveredSeq("o5")).toBe(4);
      c.bus.publish(changeFor("o5", 5, "C"));
      await a.server.until(() => a.server.seqs(topics.order("o5")).length === 5);
      expect(a.server.seqs(topics.order("o5"))).toEqual([1, 2, 3, 4, 5]);
      expect(asked.length).toBe(1); // no gap fill for seq 5
      back.release();
    }, 60_000);

    test("a subscriber whose subscriptions vanished without a word is found by the probe and subscribed again", async () => {
      const ns = `t:${crypto.randomUUID().slice(0, 8)}:`;
      const a = await instance("A", ns, { probeMs: 100 });
      const c = await instance("C", ns);
      const w = a.bus.watch(topics.order("o6"));
      await w.ready;
      await Bun.sleep(300); // probe channels are up
      // What a failover can leave behind: the connection looks fine, the server forgot the
      // subscriptions (here dropped behind the relay's back, on its own connection).
      const sub = Reflect.get(a.bus, "sub") as { sunsubscribe(...c: string[]): Promise<unknown>; unsubscribe(...c: string[]): Promise<unknown> };
      const probeChannels = [...(Reflect.get(a.bus, "probes") as Map<string, unknown>).keys()];
      for (const channel of [a.bus.channelOf(topics.order("o6")), ...probeChannels]) {
        await (name === "a Redis Cluster" ? sub.sunsubscribe(channel) : sub.unsubscribe(channel));
      }
      // Every shard's probe misses; each shard has its channels subscribed again (probe + o6 on one of them).
      const shards = probeChannels.length;
      await eventually(() => a.counts.resubscribed >= shards + 1, "every shard resubscribed");
      expect(a.counts.probeFailures).toBeGreaterThanOrEqual(2);
      c.bus.publish(changeFor("o6", 1, "C"));
      await a.server.until(() => a.server.seqs(topics.order("o6")).length === 1);
      w.release();
    }, 60_000);
  });
}

import calculateSlot from "cluster-key-slot";
import type { Cluster } from "ioredis";
import { connectRedis, type RedisClient, type RedisTarget } from "../redis";
import { errorField, toError } from "../log";
import type { TopicWatch } from "../events/bus";
import { topicsOf, type OrderChange } from "../events/change";
import { RelayEventBus, type RelayOptions } from "./relay";
import { parseTopic } from "../events/topics";

export type InterestEventBusOptions = RelayOptions & {
  redis: RedisTarget;
  /** Prefix of every channel of one deployment; a topic's channel is `<namespace>{<topic>}`. */
  namespace: string;
  /** How long a channel stays subscribed after its last local watcher left. */
  unsubscribeGraceMs: number;
  /** How often a probe goes through each shard (a deaf subscriber is resubscribed after two misses). */
  probeIntervalMs: number;
  /** How long a watch waits for its SUBSCRIBE while Redis is connected before going ahead anyway (the hub's reconciliation repairs). */
  joinTimeoutMs?: number;
};

type Interest = {
  topic: string;
  watchers: number;
  ready: Promise<void>;
  leaveTimer: ReturnType<typeof setTimeout> | null;
};

type Probe = {
  /** The master serving the probe channel's slot (single Redis: "redis"). */
  shard: string;
  /** The nonce sent last and not seen back yet. */
  pending: string | null;
  misses: number;
};

/**
 * The interest relay (RELAY_MODE=interest, the default): one channel per topic, hash-tagged by
 * the topic (`<namespace>{order:<id>}`), so on a Redis Cluster a topic's channel lives in the
 * topic's slot. An instance subscribes to a topic's channel when its first local watcher comes
 * (SUBSCRIBE on one Redis; SSUBSCRIBE on a cluster, one subscriber connection per master through
 * ioredis' shardedSubscribers) and unsubscribes a grace period after the last one leaves. A
 * committed change is published on the channel of each of its topics (order, restaurant,
 * courier), a transient message on its topic's channel. An instance none of whose sockets
 * watches an order receives nothing about it.
 *
 * A change reaching this instance on two channels (its order's and its restaurant's, both
 * watched) is delivered once: the sequencer drops seqs it delivered.
 *
 * A subscriber connection can survive a failover looking healthy and receive nothing
 * (centrifugo#1189). Each instance therefore sends itself a probe on a channel of each shard
 * every `probeIntervalMs`; a shard whose probe missed twice has its channels subscribed again,
 * one by one, and its orders read back from the database. Channels are always left one by one
 * (SUNSUBSCRIBE with no channel throws in ioredis 6, ioredis#2133).
 */
export class InterestEventBus extends RelayEventBus {
  protected readonly pub: RedisClient;
  protected readonly sub: RedisClient;
  private readonly sharded: boolean;
  private readonly interests = new Map<string, Interest>();
  private readonly probes = new Map<string, Probe>();
  private readonly prober: ReturnType<typeof setInterval>;
  private probing = false;
  private readonly subscribersReady: Promise<void>;
  private slowJoinLogged = false;

  constructor(private readonly opts: InterestEventBusOptions) {
    super(opts);
    this.sharded = opts.redis.kind === "cluster";
    const name = `dispatch:${opts.instanceId}`;
    this.pub = connectRedis(opts.redis, { connectionName: name, offlineQueue: false, maxRetriesPerRequest: 1 });
    // Offline queue on: a SUBSCRIBE made while Redis is away is sent when it is back.
    this.sub = connectRedis(opts.redis, { connectionName: name, offlineQueue: true, maxRetriesPerRequest: null, shardedSubscribers: true });
    this.watchConnections();
    this.sub.on(this.sharded ? "smessage" : "message", (channel: string, payload: string) => this.onMessage(channel, payload));
    // ioredis routes an SSUBSCRIBE by its slot map, which it has only once its sharded
    // subscribers are set up; one sent before that is refused (not queued).
    this.subscribersReady = this.sharded ? new Promise<void>((resolve) => this.sub.once("subscribersReady", () => resolve())) : Promise.resolve();
    this.prober = setInterval(() => void this.probe(), opts.probeIntervalMs);
    this.prober.unref?.();
  }

  /** The Redis channel of a topic (its hash tag is the topic). */
  channelOf(topic: string): string {
    return `${this.opts.namespace}{${topic}}`;
  }

  /** Channels subscribed now (topics with a watcher or in their grace period). */
  get channelCount(): number {
    return this.interests.size;
  }

  override watch(topic: string): TopicWatch {
    const channel = this.channelOf(topic);
    let interest = this.interests.get(channel);
    if (!interest) {
      const fresh: Interest = { topic, watchers: 0, ready: Promise.resolve(), leaveTimer: null };
      this.interests.set(channel, fresh);
      fresh.ready = this.join(channel, fresh);
      this.relay.metrics?.channels?.(this.interests.size);
      interest = fresh;
    }
    interest.watchers++;
    if (interest.leaveTimer) {
      clearTimeout(interest.leaveTimer);
      interest.leaveTimer = null;
    }
    const held = interest;
    let released = false;
    return {
      ready: held.ready,
      release: () => {
        if (released) return;
        released = true;
        this.unwatch(channel, held);
      },
    };
  }

  override publish(change: OrderChange): void {
    this.sequencer.offer(change);
    this.send(
      topicsOf(change).map((topic) => this.channelOf(topic)),
      this.envelope("change", change),
      this.sharded,
    );
  }

  override publishTransient(topic: string, message: Record<string, unknown>): void {
    super.publishTransient(topic, message);
    this.send([this.channelOf(topic)], this.envelope("transient", topic, message), this.sharded);
  }

  override async close(): Promise<void> {
    clearInterval(this.prober);
    for (const interest of this.interests.values()) if (interest.leaveTimer) clearTimeout(interest.leaveTimer);
    this.interests.clear();
    await super.close();
  }

  protected describe(): Record<string, unknown> {
    return { mode: "interest", sharded: this.sharded, namespace: this.opts.namespace };
  }

  private unwatch(channel: string, interest: Interest): void {
    interest.watchers--;
    if (interest.watchers > 0 || this.closing) return;
    interest.leaveTimer = setTimeout(() => this.leave(channel, interest), this.opts.unsubscribeGraceMs);
    interest.leaveTimer.unref?.();
  }

  private leave(channel: string, interest: Interest): void {
    if (this.interests.get(channel) !== interest || interest.watchers > 0) return;
    this.interests.delete(channel);
    this.relay.metrics?.channels?.(this.interests.size);
    this.unsubscribe(channel).catch((err: unknown) => this.relayLog.warn("unsubscribing from a topic's channel failed", { channel, err: errorField(err) }));
  }

  private subscribe(channel: string): Promise<unknown> {
    return this.sharded ? this.sub.ssubscribe(channel) : this.sub.subscribe(channel);
  }

  private unsubscribe(channel: string): Promise<unknown> {
    return this.sharded ? this.sub.sunsubscribe(channel) : this.sub.unsubscribe(channel);
  }

  /**
   * SUBSCRIBE, then (for an order this instance heard of before and then stopped listening to)
   * what the order committed meanwhile, from the database: the sequencer is current again before
   * the watcher reads, so its first relayed change does not wait for a gap fill.
   */
  private async join(channel: string, interest: Interest): Promise<void> {
    const subscribed = this.subscribeUntilDone(channel, interest);
    // Connected: wait for the acknowledgement (a watcher must not read before it holds). Redis
    // away: go ahead at once; the SUBSCRIBE waits in the offline queue and the reconciliation
    // repairs what the relay misses meanwhile.
    const timeout = Bun.sleep(this.sub.status === "ready" ? (this.opts.joinTimeoutMs ?? 10_000) : 0).then(() => false);
    if (!(await Promise.race([subscribed, timeout]))) {
      if (!this.slowJoinLogged) this.relayLog.warn("a topic's channel is not subscribed yet; going ahead (the reconciliation repairs what the relay misses)", { channel });
      this.slowJoinLogged = true;
      return;
    }
    this.slowJoinLogged = false;
    await this.catchUp(interest.topic);
  }

  /**
   * SUBSCRIBE (SSUBSCRIBE) a watched channel, again and again with a backoff while it is refused
   * (cluster not set up yet, failover), until it holds or nobody here watches the topic any more.
   */
  private async subscribeUntilDone(channel: string, interest: Interest): Promise<boolean> {
    for (let attempt = 0; ; attempt++) {
      if (this.closing || this.interests.get(channel) !== interest) return false;
      try {
        await Promise.race([this.subscribersReady, Bun.sleep(2_000)]);
        await this.subscribe(channel);
        return true;
      } catch (err) {
        this.markDown("subscriber", toError(err));
        await Bun.sleep(Math.min(50 * 2 ** attempt, 2_000));
      }
    }
  }

  /** Delivers what an order this instance heard of before committed while it was not listening. */
  private async catchUp(topic: string): Promise<void> {
    const parsed = parseTopic(topic);
    if (parsed?.kind !== "order" || !this.gapFiller) return;
    const last = this.sequencer.lastSeq(parsed.id);
    if (last === undefined) return;
    try {
      this.redeliver(await this.gapFiller(parsed.id, last, Number.MAX_SAFE_INTEGER));
    } catch (err) {
      this.relayLog.warn("reading an order's changes after joining its channel failed; the next change fills the gap", { orderId: parsed.id, err: errorField(err) });
    }
  }

  private onMessage(channel: string, payload: string): void {
    const probe = this.probes.get(channel);
    if (probe) {
      if (probe.pending !== null && payload.includes(probe.pending)) probe.pending = null;
      return;
    }
    const interest = this.interests.get(channel);
    this.receive(payload, interest !== undefined && interest.watchers > 0);
  }

  /** One probe round: a shard whose last probe did not come back is missed; two misses resubscribe its channels. */
  private async probe(): Promise<void> {
    if (this.probing || this.closing || this.pub.status !== "ready" || this.sub.status !== "ready") return;
    this.probing = true;
    try {
      await this.syncProbeChannels();
      for (const [channel, probe] of this.probes) {
        if (probe.pending !== null) {
          probe.misses++;
          this.relay.metrics?.probeFailed?.();
          if (probe.misses >= 2) {
            probe.misses = 0;
            await this.resubscribeShard(probe.shard, channel);
          }
        } else probe.misses = 0;
        const nonce = crypto.randomUUID();
        probe.pending = nonce;
        const payload = JSON.stringify({ probe: nonce });
        (this.sharded ? this.pub.spublish(channel, payload) : this.pub.publish(channel, payload)).catch(() => {
          // Not sent (the shard is failing over): nothing to learn about the subscriber this round.
          if (probe.pending === nonce) probe.pending = null;
        });
      }
    } catch (err) {
      this.relayLog.warn("relay probe round failed", { err: errorField(err) });
    } finally {
      this.probing = false;
    }
  }

  /** The master serving a channel's slot now ("redis" on a single server). */
  private shardOf(channel: string): string | undefined {
    if (!this.sharded) return "redis";
    return (this.pub as Cluster).slots[calculateSlot(channel)]?.[0];
  }

  /** One probe channel per master (it moves with failovers): subscribed when a master appears, dropped when it goes. */
  private async syncProbeChannels(): Promise<void> {
    const wanted = new Map<string, string>();
    if (!this.sharded) wanted.set("redis", this.channelOf(`probe:${this.relay.instanceId}`));
    else {
      const masters = new Set((this.pub as Cluster).slots.map((nodes) => nodes?.[0]).filter((n): n is string => typeof n === "string"));
      for (const [channel, probe] of this.probes) if (masters.has(probe.shard) && this.shardOf(channel) === probe.shard) wanted.set(probe.shard, channel);
      for (let n = 0; wanted.size < masters.size && n < 100_000; n++) {
        const channel = this.channelOf(`probe:${this.relay.instanceId}:${n}`);
        const shard = this.shardOf(channel);
        if (shard && masters.has(shard) && !wanted.has(shard)) wanted.set(shard, channel);
      }
    }
    const keep = new Set(wanted.values());
    for (const channel of [...this.probes.keys()]) {
      if (keep.has(channel)) continue;
      this.probes.delete(channel);
      await this.unsubscribe(channel).catch(() => undefined);
    }
    for (const [shard, channel] of wanted) {
      const probe = this.probes.get(channel);
      if (probe) {
        probe.shard = shard;
        continue;
      }
      await this.subscribe(channel);
      this.probes.set(channel, { shard, pending: null, misses: 0 });
    }
  }

  /**
   * Subscribes again, channel by channel, to every channel of a shard whose probes stopped
   * coming back, then reads back what its orders committed meanwhile. No unsubscribe first: a
   * probe late under load would otherwise open a gap on a subscription that was fine, and
   * subscribing to a channel one is subscribed to changes nothing.
   */
  private async resubscribeShard(shard: string, probeChannel: string): Promise<void> {
    const channels = [probeChannel, ...[...this.interests.keys()].filter((c) => this.shardOf(c) === shard)];
    this.relayLog.warn("a relay subscriber receives nothing; subscribing its channels again", { shard, channels: channels.length });
    for (const channel of channels) {
      const interest = this.interests.get(channel);
      if (channel !== probeChannel && !interest) continue; // left meanwhile
      await this.subscribe(channel).catch(() => undefined);
      if (interest) await this.catchUp(interest.topic);
    }
    this.relay.metrics?.resubscribed?.(channels.length);
  }
}

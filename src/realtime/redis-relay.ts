import { Redis } from "ioredis";
import type { Logger } from "../log";
import { LocalEventBus } from "./bus";
import type { OrderChange } from "../events/change";
import { ChangeSequencer } from "./sequencer";

/** What travels on the Redis channel: one committed change, or one transient topic message. */
type RelayEnvelope =
  | { v: 1; origin: string; sentAt?: number; kind: "change"; change: OrderChange }
  | { v: 1; origin: string; sentAt?: number; kind: "transient"; topic: string; message: Record<string, unknown> };

/** What the relay reports to /metrics. */
export type RelayMetrics = {
  redisError(connection: "publisher" | "subscriber"): void;
  relayed(direction: "published" | "received" | "dropped"): void;
  /** Seconds from the publisher's send to our receipt (two hosts' wall clocks). */
  lag(seconds: number): void;
};

export type GapFiller = (orderId: string, afterSeq: number, beforeSeq: number) => Promise<OrderChange[]>;

export type RedisEventBusOptions = {
  url: string;
  /** This instance's id; envelopes carrying it are our own and are not delivered twice. */
  instanceId: string;
  /** Pub/sub channel shared by the instances of one deployment. */
  channel: string;
  log: Logger;
  /** How long a change waits for a missing earlier seq before the gap is filled from the database. */
  gapWaitMs?: number;
  maxTrackedOrders?: number;
  metrics?: RelayMetrics;
};

function isEnvelope(value: unknown): value is RelayEnvelope {
  if (value === null || typeof value !== "object") return false;
  const v = value as Record<string, unknown>;
  if (v.v !== 1 || typeof v.origin !== "string") return false;
  if (v.kind === "transient") return typeof v.topic === "string" && v.message !== null && typeof v.message === "object";
  if (v.kind !== "change" || v.change === null || typeof v.change !== "object") return false;
  const c = v.change as Record<string, unknown>;
  return typeof c.orderId === "string" && typeof c.seq === "number" && Number.isInteger(c.seq) && c.order !== null && typeof c.order === "object";
}

/**
 * The event bus across instances. Every committed change goes to this instance's sockets and
 * to Redis; changes other instances publish come back from Redis and go to this instance's
 * sockets exactly once (our own envelopes are recognised by origin and skipped). Per order,
 * local and relayed changes pass one sequencer, so sockets see each order's seqs in order.
 *
 * Two connections, because a subscribed Redis connection can only (un)subscribe. The
 * publishing one has no offline queue: while Redis is down, publishes fail at once instead of
 * piling up in memory and replaying stale events later; local clients are served as usual,
 * the outage is logged once, ioredis keeps reconnecting, and clients elsewhere repair the
 * gap by resuming with `since` (or the sequencer fills it when that order changes again).
 */
export class RedisEventBus extends LocalEventBus {
  private readonly pub: Redis;
  private readonly sub: Redis;
  private readonly sequencer: ChangeSequencer;
  private readonly relayLog: Logger;
  private gapFiller: GapFiller | null = null;
  private relayUp: boolean | null = null;
  private droppedWhileDown = 0;
  private closing = false;

  constructor(private readonly opts: RedisEventBusOptions) {
    const log = opts.log.child({ component: "redis-relay" });
    super(log, { maxTrackedOrders: opts.maxTrackedOrders ?? 50_000 });
    this.relayLog = log;
    this.sequencer = new ChangeSequencer({
      deliver: (change) => this.deliverLocally(change),
      fillGap: (orderId, afterSeq, beforeSeq) => (this.gapFiller ? this.gapFiller(orderId, afterSeq, beforeSeq) : Promise.resolve([])),
      gapWaitMs: opts.gapWaitMs ?? 250,
      maxOrders: opts.maxTrackedOrders ?? 50_000,
      onGapSkipped: (orderId, fromSeq, toSeq) => this.relayLog.warn("order change gap skipped", { orderId, fromSeq, toSeq }),
    });
    const common = {
      connectionName: `dispatch:${opts.instanceId}`,
      retryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 6), 2_000),
      connectTimeout: 2_000,
      maxRetriesPerRequest: 1,
    };
    this.pub = new Redis(opts.url, { ...common, enableOfflineQueue: false });
    // The subscriber keeps its offline queue (and retries without limit) so the first SUBSCRIBE
    // waits for Redis however long it is down; ioredis re-subscribes after every reconnect.
    this.sub = new Redis(opts.url, { ...common, autoResubscribe: true, maxRetriesPerRequest: null });
    for (const [name, conn] of [["publisher", this.pub], ["subscriber", this.sub]] as const) {
      conn.on("error", (err: Error) => {
        opts.metrics?.redisError(name);
        this.markDown(name, err);
      });
      conn.on("ready", () => this.markMaybeUp());
      conn.on("end", () => this.markDown(name, new Error("connection ended")));
    }
    this.sub.on("message", (_channel: string, payload: string) => this.receive(payload));
    this.sub.subscribe(opts.channel).catch((err: unknown) => this.markDown("subscriber", err instanceof Error ? err : new Error(String(err))));
  }

  /** Reads missing changes from the database when the sequencer sees a gap (set once the orders repository exists). */
  setGapFiller(filler: GapFiller): void {
    this.gapFiller = filler;
  }

  override publish(change: OrderChange): void {
    this.sequencer.offer(change);
    this.relay({ v: 1, origin: this.opts.instanceId, sentAt: Date.now(), kind: "change", change });
  }

  override publishTransient(topic: string, message: Record<string, unknown>): void {
    super.publishTransient(topic, message);
    this.relay({ v: 1, origin: this.opts.instanceId, sentAt: Date.now(), kind: "transient", topic, message });
  }

  redeliver(changes: OrderChange[]): void {
    for (const change of [...changes].sort((a, b) => a.seq - b.seq)) this.sequencer.offer(change);
  }

  /** Whether Redis answers a PING now (for /ready). */
  async ready(): Promise<boolean> {
    if (this.pub.status !== "ready" || this.sub.status !== "ready") return false;
    try {
      const answer = await Promise.race([this.pub.ping(), Bun.sleep(1_000).then(() => "timeout")]);
      return answer === "PONG";
    } catch {
      return false;
    }
  }

  override async close(): Promise<void> {
    this.closing = true;
    this.sequencer.close();
    await Promise.all([this.pub, this.sub].map((conn) => (conn.status === "ready" ? conn.quit().catch(() => conn.disconnect()) : conn.disconnect())));
    await super.close();
  }

  private relay(envelope: RelayEnvelope): void {
    if (this.pub.status !== "ready") {
      this.droppedWhileDown++;
      this.opts.metrics?.relayed("dropped");
      return;
    }
    this.opts.metrics?.relayed("published");
    this.pub.publish(this.opts.channel, JSON.stringify(envelope)).catch((err: unknown) => {
      this.droppedWhileDown++;
      this.opts.metrics?.relayed("dropped");
      this.opts.metrics?.redisError("publisher");
      this.markDown("publisher", err instanceof Error ? err : new Error(String(err)));
    });
  }

  private receive(payload: string): void {
    let envelope: unknown;
    try {
      envelope = JSON.parse(payload);
    } catch {
      this.relayLog.warn("relay message is not JSON; ignored", { bytes: payload.length });
      return;
    }
    if (!isEnvelope(envelope)) {
      this.relayLog.warn("relay message has an unknown shape; ignored", { bytes: payload.length });
      return;
    }
    if (envelope.origin === this.opts.instanceId) return; // our own, already delivered locally
    this.opts.metrics?.relayed("received");
    if (typeof envelope.sentAt === "number") this.opts.metrics?.lag(Math.max(0, Date.now() - envelope.sentAt) / 1000);
    if (envelope.kind === "transient") {
      super.publishTransient(envelope.topic, envelope.message);
      return;
    }
    // Sequenced, then delivered to sockets and to onChange listeners; those see origin ≠ this
    // instance, which is how the orders registry learns that its cached actor is stale.
    this.sequencer.offer(envelope.change);
  }

  private markDown(connection: string, err: Error): void {
    if (this.closing) return;
    if (this.relayUp === false) return; // logged once per outage
    this.relayUp = false;
    this.relayLog.warn("redis relay unavailable; serving this instance's clients only, reconnecting", {
      connection,
      err: err.message,
    });
  }

  private markMaybeUp(): void {
    if (this.closing || this.pub.status !== "ready" || this.sub.status !== "ready") return;
    if (this.relayUp === true) return;
    const wasDown = this.relayUp === false;
    this.relayUp = true;
    if (wasDown) {
      this.relayLog.info("redis relay reconnected", { changesNotRelayedWhileDown: this.droppedWhileDown });
    } else {
      this.relayLog.info("redis relay connected", { channel: this.opts.channel });
    }
    this.droppedWhileDown = 0;
  }
}

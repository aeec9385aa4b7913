import { Cluster, type Redis } from "ioredis";
import { toError, type Logger } from "../log";
import type { RedisClient } from "../redis";
import type { OrderChange } from "../events/change";
import { LocalEventBus } from "./bus";
import { ChangeSequencer } from "./sequencer";

/** A change an instance first sees brings along its order's earlier entries of this last while (sequencer.ts, chaos F5). */
const FIRST_SIGHT_WINDOW_MS = 60_000;

/** What travels on a Redis channel: one committed change, or one transient topic message. */
export type RelayEnvelope =
  | { v: 1; origin: string; sentAt?: number; kind: "change"; change: OrderChange }
  | { v: 1; origin: string; sentAt?: number; kind: "transient"; topic: string; message: Record<string, unknown> };

/** What a relay reports to /metrics. */
export type RelayMetrics = {
  redisError(connection: "publisher" | "subscriber"): void;
  relayed(direction: "published" | "received" | "dropped"): void;
  /** Seconds from the publisher's send to our receipt (two hosts' wall clocks). */
  lag(seconds: number): void;
  /** One message from another instance; `watched`: its topic has a local watcher now. */
  received?(watched: boolean): void;
  /** Channels this instance is subscribed to now. */
  channels?(count: number): void;
  /** Channels subscribed again after a probe showed their connection deaf (failover). */
  resubscribed?(channels: number): void;
  /** A probe message that did not come back through its shard in time. */
  probeFailed?(): void;
};

export type GapFiller = (orderId: string, afterSeq: number, beforeSeq: number) => Promise<OrderChange[]>;

export type RelayOptions = {
  /** This instance's id; envelopes carrying it are our own and are not delivered twice. */
  instanceId: string;
  log: Logger;
  /** How long a change waits for a missing earlier seq before the gap is filled from the database. */
  gapWaitMs?: number;
  maxTrackedOrders?: number;
  metrics?: RelayMetrics;
};

export function isEnvelope(value: unknown): value is RelayEnvelope {
  if (value === null || typeof value !== "object") return false;
  const v = value as Record<string, unknown>;
  if (v.v !== 1 || typeof v.origin !== "string") return false;
  if (v.kind === "transient") return typeof v.topic === "string" && v.message !== null && typeof v.message === "object";
  if (v.kind !== "change" || v.change === null || typeof v.change !== "object") return false;
  const c = v.change as Record<string, unknown>;
  return typeof c.orderId === "string" && typeof c.seq === "number" && Number.isInteger(c.seq) && c.order !== null && typeof c.order === "object";
}

/**
 * What every Redis relay shares: a publisher and a subscriber connection (a subscribed
 * connection can only (un)subscribe), one sequencer through which local and relayed changes
 * of an order reach local sockets in seq order, envelope checks, and the outage log.
 *
 * The publisher has no offline queue: while Redis is down, publishes fail at once instead of
 * piling up in memory and replaying stale events later; local clients are served as usual, the
 * outage is logged once, ioredis keeps reconnecting, and clients elsewhere repair the gap by
 * resuming with `since` (or the sequencer fills it when that order changes again, or the hub's
 * reconciliation finds it).
 */
export abstract class RelayEventBus extends LocalEventBus {
  protected readonly sequencer: ChangeSequencer;
  protected readonly relayLog: Logger;
  protected gapFiller: GapFiller | null = null;
  protected closing = false;
  private relayUp: boolean | null = null;
  private droppedWhileDown = 0;

  protected abstract readonly pub: RedisClient;
  protected abstract readonly sub: RedisClient;

  constructor(protected readonly relay: RelayOptions) {
    const log = relay.log.child({ component: "redis-relay" });
    super(log, { maxTrackedOrders: relay.maxTrackedOrders ?? 50_000 });
    this.relayLog = log;
    const startedAtMs = Date.now();
    this.sequencer = new ChangeSequencer({
      deliver: (change) => this.deliverLocally(change),
      fillGap: (orderId, afterSeq, beforeSeq) => (this.gapFiller ? this.gapFiller(orderId, afterSeq, beforeSeq) : Promise.resolve([])),
      gapWaitMs: relay.gapWaitMs ?? 250,
      maxOrders: relay.maxTrackedOrders ?? 50_000,
      onGapSkipped: (orderId, fromSeq, toSeq) => this.relayLog.warn("order change gap skipped", { orderId, fromSeq, toSeq }),
      // Changes of the last minute since this instance started (older ones it may have delivered and forgotten).
      firstSightSinceMs: () => Math.max(startedAtMs, Date.now() - FIRST_SIGHT_WINDOW_MS),
    });
  }

  /** Wires the connections' state to the outage log; call once both exist. */
  protected watchConnections(): void {
    // A cluster client connects to each node on its first command, and with no offline queue it
    // refuses (and later re-routes, out of order) the commands sent while that connection is
    // being made: connect to every node as soon as the client knows of it.
    if (this.pub instanceof Cluster) this.pub.on("+node", (node: Redis) => void node.ping().catch(() => undefined));
    for (const [name, conn] of [["publisher", this.pub], ["subscriber", this.sub]] as const) {
      conn.on("error", (err: Error) => {
        this.relay.metrics?.redisError(name);
        this.markDown(name, err);
      });
      conn.on("ready", () => this.markMaybeUp());
      conn.on("end", () => this.markDown(name, new Error("connection ended")));
    }
  }

  /** Reads missing changes from the database when the sequencer sees a gap (set once the orders repository exists). */
  setGapFiller(filler: GapFiller): void {
    this.gapFiller = filler;
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
    await Promise.all([this.pub, this.sub].map((conn) => (conn.status === "ready" ? conn.quit().then(() => undefined, () => conn.disconnect()) : conn.disconnect())));
    await super.close();
  }

  /** Sends one envelope on each channel (PUBLISH, or SPUBLISH on a cluster); counted and never queued. */
  protected send(channels: readonly string[], envelope: RelayEnvelope, sharded: boolean): void {
    const payload = JSON.stringify(envelope);
    for (const channel of channels) {
      if (this.pub.status !== "ready") {
        this.droppedWhileDown++;
        this.relay.metrics?.relayed("dropped");
        continue;
      }
      this.relay.metrics?.relayed("published");
      const sent = sharded ? this.pub.spublish(channel, payload) : this.pub.publish(channel, payload);
      sent.catch((err: unknown) => {
        this.droppedWhileDown++;
        this.relay.metrics?.relayed("dropped");
        this.relay.metrics?.redisError("publisher");
        this.markDown("publisher", toError(err));
      });
    }
  }

  protected envelope(kind: "change", change: OrderChange): RelayEnvelope;
  protected envelope(kind: "transient", topic: string, message: Record<string, unknown>): RelayEnvelope;
  protected envelope(kind: "change" | "transient", a: OrderChange | string, message?: Record<string, unknown>): RelayEnvelope {
    const head = { v: 1 as const, origin: this.relay.instanceId, sentAt: Date.now() };
    return kind === "change" ? { ...head, kind, change: a as OrderChange } : { ...head, kind, topic: a as string, message: message! };
  }

  /**
   * One message from a channel: our own are skipped (delivered locally already); a change goes
   * through the sequencer, then to sockets and to onChange listeners (which see origin ≠ this
   * instance: how the orders registry learns its cached actor is stale).
   */
  protected receive(payload: string, watched: boolean): void {
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
    if (envelope.origin === this.relay.instanceId) return;
    this.relay.metrics?.relayed("received");
    this.relay.metrics?.received?.(watched);
    if (typeof envelope.sentAt === "number") this.relay.metrics?.lag(Math.max(0, Date.now() - envelope.sentAt) / 1000);
    if (envelope.kind === "transient") {
      super.publishTransient(envelope.topic, envelope.message);
      return;
    }
    this.sequencer.offer(envelope.change);
  }

  protected markDown(connection: string, err: Error): void {
    if (this.closing) return;
    if (this.relayUp === false) return; // logged once per outage
    this.relayUp = false;
    this.relayLog.warn("redis relay unavailable; serving this instance's clients only, reconnecting", { connection, err: err.message });
  }

  private markMaybeUp(): void {
    if (this.closing || this.pub.status !== "ready" || this.sub.status !== "ready") return;
    if (this.relayUp === true) return;
    const wasDown = this.relayUp === false;
    this.relayUp = true;
    if (wasDown) this.relayLog.info("redis relay reconnected", { changesNotRelayedWhileDown: this.droppedWhileDown });
    else this.relayLog.info("redis relay connected", this.describe());
    this.droppedWhileDown = 0;
  }

  /** What the "connected" log line says about this relay. */
  protected abstract describe(): Record<string, unknown>;
}

import type { OrderModel } from "../modules/orders/model";
import type { Logger } from "../log";
import { topics } from "./topics";

/** One committed change of an order, as the repository wrote it. */
export type OrderChange = {
  type: "order.created" | "order.updated";
  orderId: string;
  seq: number;
  status: OrderModel.status;
  prevStatus: OrderModel.status | null;
  event: string;
  at: string;
  by: OrderModel.actor;
  order: OrderModel.order;
  /** Instance that committed it (relay loop prevention). */
  origin: string;
};

/** Bun's server, as far as the bus needs it. */
export type TopicPublisher = { publish(topic: string, data: string): number };

export type ChangeListener = (change: OrderChange) => void;

/** A transient message as it went to a local topic (already JSON). */
export type TransientListener = (topic: string, data: string) => void;

/**
 * This instance's interest in a topic (a socket subscribed to it). `ready` resolves once
 * messages of the topic published from now on reach this instance; `release` ends the interest.
 */
export type TopicWatch = { ready: Promise<void>; release(): void };

const NO_RELAY_WATCH: TopicWatch = { ready: Promise.resolve(), release() {} };

/**
 * Publishes committed changes to WebSocket topics and to in-process listeners.
 * The realtime layer adds a Redis relay behind the same interface.
 */
export interface EventBus {
  /** Call only after the change is committed. */
  publish(change: OrderChange): void;
  /** A message with no seq and no history (courier positions): local topics, and other instances when relayed. */
  publishTransient(topic: string, message: Record<string, unknown>): void;
  /** In-process listeners (resume buffers, relay, cache invalidation); returns an unsubscribe. */
  onChange(listener: ChangeListener): () => void;
  /** In-process listeners of transient messages sent to local topics; returns an unsubscribe. */
  onTransient(listener: TransientListener): () => void;
  /**
   * The highest seq of an order this bus has sent to local topics; undefined when unknown
   * (not seen since start, or forgotten). Every later local delivery of that order has a
   * greater seq.
   */
  deliveredSeq(orderId: string): number | undefined;
  /**
   * Committed changes read back from the database because this instance may have missed them
   * (relay loss): delivered locally in seq order, what was delivered already is dropped.
   * Only buses that relay between instances can miss changes, so only they implement it.
   */
  redeliver?(changes: OrderChange[]): void;
  /**
   * Declares interest in a topic. Buses that route by interest (interest-relay.ts) receive a
   * topic's messages from other instances only while someone here watches it; a subscriber
   * awaits `ready` before reading the database, so no change falls between read and relay.
   */
  watch(topic: string): TopicWatch;
  /** Binds the bus to the running server once it listens. */
  attach(server: TopicPublisher): void;
  close(): Promise<void>;
}

/** The topics a change goes to: its order's, its restaurant's, and its courier's once it has one. */
export function topicsOf(change: OrderChange): string[] {
  const { order } = change;
  const targets = [topics.order(order.id), topics.restaurant(order.restaurantId)];
  if (order.courierId) targets.push(topics.courier(order.courierId));
  return targets;
}

/** The topics a change goes to, each with its message. */
export function messagesFor(change: OrderChange): Array<{ topic: string; message: Record<string, unknown> }> {
  const { order } = change;
  const out: Array<{ topic: string; message: Record<string, unknown> }> = [];
  for (const topic of topicsOf(change)) {
    const message =
      change.type === "order.created" && topic !== topics.order(order.id)
        ? { type: "order.created", topic, orderId: change.orderId, seq: change.seq, order }
        : {
            type: "order.updated",
            topic,
            orderId: change.orderId,
            seq: change.seq,
            status: change.status,
            prevStatus: change.prevStatus,
            event: change.event,
            at: change.at,
            by: change.by,
            order,
          };
    out.push({ topic, message });
  }
  return out;
}

export type LocalEventBusOptions = {
  /** Orders whose delivered seq is remembered (least recently delivered are forgotten first). */
  maxTrackedOrders?: number;
};

/**
 * Single-instance bus: Bun topics plus local listeners. Per order, local topics only ever see
 * increasing seqs: a change at or below the order's delivered seq is a duplicate and goes to
 * no topic (listeners still hear it; they compare versions themselves). That is what lets a
 * subscriber that has seq v join a native topic once the bus has delivered v: nothing at or
 * below v can follow there.
 */
export class LocalEventBus implements EventBus {
  private server: TopicPublisher | null = null;
  private readonly listeners = new Set<ChangeListener>();
  private readonly transientListeners = new Set<TransientListener>();
  /** orderId → highest seq delivered; insertion order is recency (oldest first). */
  private readonly delivered = new Map<string, number>();
  private readonly maxTrackedOrders: number;

  constructor(
    private readonly log: Logger,
    opts: LocalEventBusOptions = {},
  ) {
    this.maxTrackedOrders = Math.max(1, opts.maxTrackedOrders ?? 50_000);
  }

  attach(server: TopicPublisher): void {
    this.server = server;
  }

  publish(change: OrderChange): void {
    this.deliverLocally(change);
  }

  publishTransient(topic: string, message: Record<string, unknown>): void {
    const data = JSON.stringify(message);
    this.server?.publish(topic, data);
    for (const listener of this.transientListeners) {
      try {
        listener(topic, data);
      } catch (err) {
        this.log.error("transient listener failed", { topic, err: err instanceof Error ? err : String(err) });
      }
    }
  }

  deliveredSeq(orderId: string): number | undefined {
    return this.delivered.get(orderId);
  }

  /** Every local message reaches this instance already; relays that route by interest override it. */
  watch(_topic: string): TopicWatch {
    return NO_RELAY_WATCH;
  }

  /**
   * Sends to this instance's sockets and listeners (also used for relayed changes): topics
   * first, then listeners, so a listener hears a change only after every topic has it.
   */
  protected deliverLocally(change: OrderChange): void {
    const last = this.delivered.get(change.orderId);
    if (last !== undefined && change.seq <= last) {
      this.log.warn("order change at or below the delivered seq; not sent to topics", { orderId: change.orderId, seq: change.seq, delivered: last });
    } else {
      this.delivered.delete(change.orderId); // re-insert: most recently delivered last
      this.delivered.set(change.orderId, change.seq);
      if (this.delivered.size > this.maxTrackedOrders) this.delivered.delete(this.delivered.keys().next().value as string);
      if (this.server) {
        for (const { topic, message } of messagesFor(change)) this.server.publish(topic, JSON.stringify(message));
      }
    }
    for (const listener of this.listeners) {
      try {
        listener(change);
      } catch (err) {
        this.log.error("change listener failed", { orderId: change.orderId, err: err instanceof Error ? err : String(err) });
      }
    }
  }

  onChange(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  onTransient(listener: TransientListener): () => void {
    this.transientListeners.add(listener);
    return () => this.transientListeners.delete(listener);
  }

  async close(): Promise<void> {
    this.listeners.clear();
    this.transientListeners.clear();
    this.delivered.clear();
    this.server = null;
  }
}

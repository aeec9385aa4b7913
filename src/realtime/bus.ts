import type { ChangeListener, EventBus, TopicPublisher, TopicWatch, TransientListener } from "../events/bus";
import { messagesFor, type OrderChange } from "../events/change";
import { errorField, type Logger } from "../log";

const NO_RELAY_WATCH: TopicWatch = { ready: Promise.resolve(), release() {} };

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
        this.log.error("transient listener failed", { topic, err: errorField(err) });
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
        this.log.error("change listener failed", { orderId: change.orderId, err: errorField(err) });
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

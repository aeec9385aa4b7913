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
  /** Binds the bus to the running server once it listens. */
  attach(server: TopicPublisher): void;
  close(): Promise<void>;
}

/** The topics a change goes to, each with its message. */
export function messagesFor(change: OrderChange): Array<{ topic: string; message: Record<string, unknown> }> {
  const { order } = change;
  const out: Array<{ topic: string; message: Record<string, unknown> }> = [];
  const targets = [topics.order(order.id), topics.restaurant(order.restaurantId)];
  if (order.courierId) targets.push(topics.courier(order.courierId));
  for (const topic of targets) {
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

/** Single-instance bus: Bun topics plus local listeners. */
export class LocalEventBus implements EventBus {
  private server: TopicPublisher | null = null;
  private readonly listeners = new Set<ChangeListener>();

  constructor(private readonly log: Logger) {}

  attach(server: TopicPublisher): void {
    this.server = server;
  }

  publish(change: OrderChange): void {
    this.deliverLocally(change);
  }

  publishTransient(topic: string, message: Record<string, unknown>): void {
    this.server?.publish(topic, JSON.stringify(message));
  }

  /** Sends to this instance's sockets and listeners (also used for relayed changes). */
  protected deliverLocally(change: OrderChange): void {
    if (this.server) {
      for (const { topic, message } of messagesFor(change)) this.server.publish(topic, JSON.stringify(message));
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

  async close(): Promise<void> {
    this.listeners.clear();
    this.server = null;
  }
}

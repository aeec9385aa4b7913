import type { OrderStatus } from "../vocabulary";
import type { HistoryEntry, Order, OrderActor } from "./order";
import { topics } from "./topics";

/** One committed change of an order, as the repository wrote it. */
export type OrderChange = {
  type: "order.created" | "order.updated";
  orderId: string;
  seq: number;
  status: OrderStatus;
  prevStatus: OrderStatus | null;
  event: string;
  at: string;
  by: OrderActor;
  order: Order;
  /** Instance that committed it (relay loop prevention), or "history" when read back. */
  origin: string;
};

/**
 * The one way a change is built: from one entry of the order's history. `order` is the order
 * as it is now, so a change read back later carries a newer order than its entry; `seq`,
 * `status`, `prevStatus`, `event`, `at` and `by` are exactly those of the entry.
 */
export function changeFromEntry(order: Order, entry: HistoryEntry, prevStatus: OrderStatus | null, origin: string): OrderChange {
  return {
    type: entry.seq === 1 ? "order.created" : "order.updated",
    orderId: order.id,
    seq: entry.seq,
    status: entry.status,
    prevStatus,
    event: entry.event,
    at: entry.at,
    by: entry.by,
    order,
    origin,
  };
}

/** The change the order's latest history entry records (what a commit publishes). */
export function latestChange(order: Order, origin: string): OrderChange {
  const { history } = order;
  const entry = history[history.length - 1];
  return changeFromEntry(order, entry, history.length > 1 ? history[history.length - 2].status : null, origin);
}

/** Changes rebuilt from an order's persisted history with afterSeq < seq < beforeSeq (resume, relay gaps). */
export function changesFromOrder(order: Order, afterSeq: number, beforeSeq = Number.POSITIVE_INFINITY, origin = "history"): OrderChange[] {
  const out: OrderChange[] = [];
  let prevStatus: OrderStatus | null = null;
  for (const entry of order.history) {
    if (entry.seq > afterSeq && entry.seq < beforeSeq) out.push(changeFromEntry(order, entry, prevStatus, origin));
    prevStatus = entry.status;
  }
  return out;
}

/** A message as it goes to one topic. */
export type TopicMessage = { topic: string; message: Record<string, unknown> };

/** The topics a change goes to: its order's, its restaurant's, and its courier's once it has one. */
export function topicsOf(change: OrderChange): string[] {
  const { order } = change;
  const targets = [topics.order(order.id), topics.restaurant(order.restaurantId)];
  if (order.courierId) targets.push(topics.courier(order.courierId));
  return targets;
}

/** The topics a change goes to, each with its message. */
export function messagesFor(change: OrderChange): TopicMessage[] {
  const { order } = change;
  const out: TopicMessage[] = [];
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

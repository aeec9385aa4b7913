import type { OrderModel } from "../modules/orders/model";
import { messagesFor, type OrderChange } from "./bus";

/**
 * Changes rebuilt from an order's persisted history, for resume and for relay gaps. Each
 * carries the order as it is now (the history keeps entries, not past snapshots), so a
 * replayed event's `order` may be newer than the event itself; `seq`, `status`,
 * `prevStatus`, `event`, `at` and `by` are exactly those of the entry.
 */
export function changesFromOrder(order: OrderModel.order, afterSeq: number, beforeSeq = Number.POSITIVE_INFINITY, origin = "history"): OrderChange[] {
  const out: OrderChange[] = [];
  let prevStatus: OrderModel.status | null = null;
  for (const entry of order.history) {
    if (entry.seq > afterSeq && entry.seq < beforeSeq) {
      out.push({
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
      });
    }
    prevStatus = entry.status;
  }
  return out;
}

/** One event ready to send on a topic. */
export type TopicEvent = { orderId: string; seq: number; atMs: number; data: string };

/** The frame a change produces on one topic, or null when the change does not go there. */
export function eventOnTopic(change: OrderChange, topic: string): TopicEvent | null {
  const found = messagesFor(change).find((m) => m.topic === topic);
  return found ? { orderId: change.orderId, seq: change.seq, atMs: Date.parse(change.at), data: JSON.stringify(found.message) } : null;
}

/** Replay of one order topic: entries after `since`, in seq order. */
export function orderTopicReplay(order: OrderModel.order, topic: string, since: number): TopicEvent[] {
  const out: TopicEvent[] = [];
  for (const change of changesFromOrder(order, since)) {
    const event = eventOnTopic(change, topic);
    if (event) out.push(event);
  }
  return out;
}

/**
 * Replay of a restaurant or courier topic: every entry at or after `sinceMs` of the given
 * orders, merged by time while each order keeps its seq order.
 */
export function feedTopicReplay(orders: OrderModel.order[], topic: string, sinceMs: number): TopicEvent[] {
  const perOrder: TopicEvent[][] = [];
  for (const order of orders) {
    const events: TopicEvent[] = [];
    for (const change of changesFromOrder(order, 0)) {
      if (Date.parse(change.at) < sinceMs) continue;
      const event = eventOnTopic(change, topic);
      if (event) events.push(event);
    }
    if (events.length) perOrder.push(events);
  }
  const out: TopicEvent[] = [];
  const next = perOrder.map(() => 0);
  for (;;) {
    let pick = -1;
    for (let i = 0; i < perOrder.length; i++) {
      const candidate = perOrder[i][next[i]];
      if (candidate && (pick < 0 || candidate.atMs < perOrder[pick][next[pick]].atMs)) pick = i;
    }
    if (pick < 0) return out;
    out.push(perOrder[pick][next[pick]++]);
  }
}

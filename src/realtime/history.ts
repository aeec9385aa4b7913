import { changesFromOrder, messagesFor, type OrderChange } from "../events/change";
import type { Order } from "../events/order";

/** One event ready to send on a topic. */
export type TopicEvent = { orderId: string; seq: number; atMs: number; data: string };

/** The frame a change produces on one topic, or null when the change does not go there. */
export function eventOnTopic(change: OrderChange, topic: string): TopicEvent | null {
  const found = messagesFor(change).find((m) => m.topic === topic);
  return found ? { orderId: change.orderId, seq: change.seq, atMs: Date.parse(change.at), data: JSON.stringify(found.message) } : null;
}

/** Replay of one order topic: entries after `since`, in seq order. */
export function orderTopicReplay(order: Order, topic: string, since: number): TopicEvent[] {
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
export function feedTopicReplay(orders: Order[], topic: string, sinceMs: number): TopicEvent[] {
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

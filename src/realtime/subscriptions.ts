import type { EventBus, TopicWatch } from "../events/bus";
import { parseTopic, type TopicKind } from "../events/topics";
import type { RealtimeHooks } from "../deps";
import { checkTopicAccess } from "./access";
import type { Client, PendingSubscription } from "./client";
import { feedTopicReplay, orderTopicReplay, type TopicEvent } from "./history";
import type { CatchUps } from "./recovery";
import type { RealtimeSources } from "./sources";

export type SubscriptionsDeps = {
  bus: EventBus;
  sources: RealtimeSources;
  catchUps: CatchUps;
  /** Test seams, read at each subscribe. */
  hooks(): RealtimeHooks | undefined;
  maxSubscriptions: number;
  replayMaxEvents: number;
};

/**
 * Subscribes and unsubscribes. A subscribe is made gapless by listening on the bus before the
 * database is read, buffering what arrives meanwhile, sending the replay, draining the buffer
 * past what the replay covered, and only then joining the native topic, all in one synchronous
 * step after the last await, so no event can fall between buffer and topic.
 *
 * An order topic is joined only once the bus has delivered the seq the subscriber has (the
 * bus never delivers an order's seq twice or backwards, so nothing it has can follow); until
 * then the subscription catches up from the bus listener (see CatchUps).
 */
export class Subscriptions {
  private readonly pendingByTopic = new Map<string, Set<PendingSubscription>>();

  constructor(private readonly deps: SubscriptionsDeps) {}

  get pending(): boolean {
    return this.pendingByTopic.size > 0;
  }

  waitsFor(topic: string): boolean {
    return this.pendingByTopic.has(topic);
  }

  /** An event the bus delivered on `topic` while subscribes to it read their replay. */
  buffer(topic: string, event: TopicEvent): void {
    const waiting = this.pendingByTopic.get(topic);
    if (waiting) for (const pending of waiting) pending.buffer.push(event);
  }

  async subscribe(client: Client, topic: string, since: number | undefined): Promise<void> {
    const { maxSubscriptions } = this.deps;
    const parsed = parseTopic(topic);
    if (!parsed) return client.sendError("invalid_topic", "topics are order:<id>, restaurant:<id> or courier:<id>", topic);
    if (client.subscribed.has(topic) || client.pending.has(topic)) return client.sendError("already_subscribed", "already subscribed; unsubscribe first to resubscribe", topic);
    if (client.subscribed.size + client.pending.size >= maxSubscriptions) {
      return client.sendError("too_many_subscriptions", `at most ${maxSubscriptions} subscriptions per connection`, topic);
    }

    const pending: PendingSubscription = { topic, buffer: [], cancelled: false };
    client.pending.set(topic, pending);
    let waiting = this.pendingByTopic.get(topic);
    if (!waiting) this.pendingByTopic.set(topic, (waiting = new Set()));
    waiting.add(pending);
    const hooks = this.deps.hooks();
    const info = { topic, principalId: client.principal.id };
    // Join the topic's relay channel before anything is read: a change committed elsewhere
    // after the read then reaches this instance, and the buffer, for sure.
    const watch = this.deps.bus.watch(topic);
    client.watches.set(topic, watch);
    try {
      await watch.ready;
      await hooks?.beforeRead?.(info);
      const grant = await checkTopicAccess(this.deps.sources, client.principal, parsed.kind, parsed.id);
      if (pending.cancelled) return;
      if (!grant.ok) return client.sendError("forbidden", grant.message, topic);

      let replay: TopicEvent[] = [];
      let seq: number | undefined;
      if (parsed.kind === "order" && grant.order) {
        seq = grant.order.version;
        if (since !== undefined) replay = orderTopicReplay(grant.order, topic, since);
      } else if (since !== undefined) {
        const feed = await this.feedReplay(parsed.kind, parsed.id, topic, since);
        if (feed === null) {
          return client.sendError("replay_too_large", `more than ${this.deps.replayMaxEvents} events since then; reload with GET /orders and subscribe without since`, topic);
        }
        replay = feed;
      }
      await hooks?.beforeSend?.(info);
      if (pending.cancelled || client.closed) return;

      // No await from here on: the switch from buffer to native topic is atomic.
      client.socket.cork(() => {
        client.send(seq === undefined ? { type: "subscribed", topic } : { type: "subscribed", topic, seq });
        const sent = new Map<string, number>();
        for (const event of replay) {
          client.sendRaw(event.data);
          sent.set(event.orderId, event.seq);
        }
        const buffered = parsed.kind === "order" ? [...pending.buffer].sort((a, b) => a.seq - b.seq) : pending.buffer;
        // Order topics: the subscriber has everything up to the version read (or since, if later).
        const floor = parsed.kind === "order" ? Math.max(seq ?? 0, since ?? 0) : Number.NEGATIVE_INFINITY;
        for (const event of buffered) {
          if (parsed.kind !== "order" && since !== undefined && event.atMs < since) continue;
          const last = sent.get(event.orderId) ?? floor;
          if (event.seq <= last) continue;
          client.sendRaw(event.data);
          sent.set(event.orderId, event.seq);
        }
        client.subscribed.add(topic);
        if (parsed.kind === "order") {
          const lastSent = Math.max(floor, sent.get(parsed.id) ?? floor);
          const delivered = this.deps.bus.deliveredSeq(parsed.id);
          if (delivered === undefined || delivered < lastSent) return this.deps.catchUps.start({ client, topic, orderId: parsed.id, lastSent });
        }
        // Restaurant and courier topics carry many orders and are joined at once (clients skip
        // (orderId, seq) pairs they have, as documented).
        client.socket.subscribe(topic);
      });
    } finally {
      this.cancel(pending);
      if (client.pending.get(topic) === pending) client.pending.delete(topic);
      if (!client.subscribed.has(topic)) this.release(client, topic, watch);
    }
  }

  unsubscribe(client: Client, topic: string): void {
    const pending = client.pending.get(topic);
    const catchingUp = client.catchingUp.get(topic);
    if (pending) {
      this.cancel(pending);
      client.pending.delete(topic);
    } else if (catchingUp) {
      this.deps.catchUps.stop(catchingUp);
      client.subscribed.delete(topic);
    } else if (client.subscribed.has(topic)) {
      client.socket.unsubscribe(topic);
      client.subscribed.delete(topic);
    } else {
      return client.sendError("not_subscribed", "not subscribed to this topic", topic);
    }
    const watch = client.watches.get(topic);
    if (watch) this.release(client, topic, watch);
    client.send({ type: "unsubscribed", topic });
  }

  /** Forgets what a closed connection had in progress, and its interest in every topic. */
  drop(client: Client): void {
    for (const pending of client.pending.values()) this.cancel(pending);
    client.pending.clear();
    for (const entry of client.catchingUp.values()) this.deps.catchUps.stop(entry);
    for (const watch of client.watches.values()) watch.release();
    client.watches.clear();
  }

  /** Ends this subscription's interest (a later subscribe to the topic holds its own). */
  private release(client: Client, topic: string, watch: TopicWatch): void {
    watch.release();
    if (client.watches.get(topic) === watch) client.watches.delete(topic);
  }

  /** Events of a restaurant's or courier's orders at or after `sinceMs`; null when there are too many. */
  private async feedReplay(kind: TopicKind, id: string, topic: string, sinceMs: number): Promise<TopicEvent[] | null> {
    const max = this.deps.replayMaxEvents;
    const scope = kind === "restaurant" ? { restaurantId: id } : { courierId: id };
    const orders = await this.deps.sources.ordersChangedSince(scope, new Date(sinceMs), max + 1);
    if (orders.length > max) return null;
    const events = feedTopicReplay(orders, topic, sinceMs);
    return events.length > max ? null : events;
  }

  private cancel(pending: PendingSubscription): void {
    pending.cancelled = true;
    const waiting = this.pendingByTopic.get(pending.topic);
    if (!waiting) return;
    waiting.delete(pending);
    if (waiting.size === 0) this.pendingByTopic.delete(pending.topic);
  }
}

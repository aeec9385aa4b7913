import type { OrderChange } from "./change";

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

/**
 * Publishes committed changes to WebSocket topics and to in-process listeners. Features
 * publish through it; realtime/ implements it (in-process, and across instances through Redis).
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
   * Declares interest in a topic. Buses that route by interest (realtime/interest-relay.ts)
   * receive a topic's messages from other instances only while someone here watches it; a
   * subscriber awaits `ready` before reading the database, so no change falls between read and relay.
   */
  watch(topic: string): TopicWatch;
  /**
   * Buses that relay between instances read back from here the changes of an order that a
   * relay gap lost (afterSeq < seq < beforeSeq); the composition root sets it once the orders
   * repository exists.
   */
  setGapFiller?(filler: (orderId: string, afterSeq: number, beforeSeq: number) => Promise<OrderChange[]>): void;
  /** Binds the bus to the running server once it listens. */
  attach(server: TopicPublisher): void;
  close(): Promise<void>;
}

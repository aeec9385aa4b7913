import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { ORDER_STATUSES, type OrderStatus } from "./vocabulary";

/**
 * The server's Prometheus metrics, one registry per app (never prom-client's global one), so
 * two apps in one process keep separate counts. Features reach it through `deps.metrics`;
 * values that already live somewhere (open sockets, live actors, orders in the database) are
 * read at scrape time from sources the features register with `observe`.
 */

/** Values read when /metrics is scraped. */
export type MetricSources = {
  /** Open WebSocket connections. */
  wsConnections: () => number;
  /** Live order actors in the registry. */
  orderActors: () => number;
  /** Orders per status, from the database. */
  ordersByStatus: () => Promise<Partial<Record<OrderStatus, number>>>;
};

export type MetricsOptions = {
  /** Add prom-client's process_* and nodejs_* metrics (CPU, memory, event-loop lag). */
  defaultMetrics?: boolean;
  /** How long the orders-per-status counts are reused between scrapes (one aggregation per period). */
  ordersCacheMs?: number;
};

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const LAG_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export class Metrics {
  readonly registry = new Registry();

  readonly httpRequests = this.counter("dispatch_http_requests_total", "HTTP requests answered, by method, matched route pattern and status", ["method", "route", "status"]);
  readonly httpRequestDuration = this.histogram("dispatch_http_request_duration_seconds", "Time from request received to response sent, by method, matched route pattern and status", LATENCY_BUCKETS, ["method", "route", "status"]);

  readonly wsConnectionsOpened = this.counter("dispatch_ws_connections_opened_total", "WebSocket connections accepted");
  readonly wsMessagesReceived = this.counter("dispatch_ws_messages_received_total", "WebSocket frames received from clients, by op (invalid: refused before decoding)", ["op"]);
  readonly wsMessagesSent = this.counter("dispatch_ws_messages_sent_total", "WebSocket frames sent to clients: replies (acks, replays, errors) and topic messages per subscriber, by topic kind", ["kind"]);

  readonly orderTransitions = this.counter("dispatch_order_transitions_total", "Order changes committed by this instance, by previous and new status (from=none: placed)", ["from", "to"]);
  readonly orderTransitionDuration = this.histogram("dispatch_order_transition_duration_seconds", "Time to apply an order event (queue, load, machine, compare-and-set commit), by event and outcome", LATENCY_BUCKETS, ["event", "outcome"]);

  readonly relayMessages = this.counter("dispatch_relay_messages_total", "Redis relay envelopes, by direction (published, received, dropped: not sent while Redis was down)", ["direction"]);
  readonly relayLag = this.histogram("dispatch_relay_lag_seconds", "Time from another instance publishing a change to this instance receiving it from Redis (wall clocks of both hosts)", LAG_BUCKETS);

  readonly relayReceived = this.counter("dispatch_relay_received_total", "Messages from other instances received through Redis (probes excluded)");
  readonly relayReceivedWatched = this.counter("dispatch_relay_received_watched_total", "Messages from other instances received through Redis for a topic a local socket watches (broadcast relay: every message counts as watched)");
  readonly relayChannels = this.gauge("dispatch_relay_channels", "Redis channels this instance is subscribed to (interest relay: topics watched here, or in their grace period; broadcast: 1)");
  readonly relayResubscriptions = this.counter("dispatch_relay_resubscriptions_total", "Channels subscribed again after the probe of their shard stopped coming back (a subscriber left deaf by a failover)");
  readonly relayProbeFailures = this.counter("dispatch_relay_probe_failures_total", "Relay probes (one per shard per RELAY_PROBE_INTERVAL_MS) that did not come back before the next");

  /** For durable timers (dispatch offers, timeouts): observe how late each one fired. */
  readonly timerLag = this.histogram("dispatch_timer_lag_seconds", "How late a durable timer fired after its due time, by timer kind", LAG_BUCKETS, ["timer"]);

  readonly dbErrors = this.counter("dispatch_db_errors_total", "Database errors: requests that failed on one (request), failed heartbeats (heartbeat), failed connection checkouts (pool), failed metric reads (metrics)", ["kind"]);
  readonly redisErrors = this.counter("dispatch_redis_errors_total", "Redis errors, by connection (publisher, subscriber)", ["connection"]);

  private readonly sources: Partial<MetricSources> = {};
  private readonly ordersCacheMs: number;
  private ordersCache: { atMs: number; counts: Promise<Partial<Record<OrderStatus, number>>> } | null = null;

  constructor(opts: MetricsOptions = {}) {
    this.ordersCacheMs = opts.ordersCacheMs ?? 5_000;
    if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    const sources = this.sources;
    this.gauge("dispatch_ws_connections", "Open WebSocket connections", [], function () {
      this.set(sources.wsConnections?.() ?? 0);
    });
    this.gauge("dispatch_order_actors", "Live order actors held in memory (the actor registry's size)", [], function () {
      this.set(sources.orderActors?.() ?? 0);
    });
    const readOrders = () => this.ordersByStatus();
    this.gauge("dispatch_orders", "Orders in the database by status (read on scrape, cached briefly)", ["status"], async function () {
      const counts = await readOrders();
      if (counts === null) return;
      for (const status of ORDER_STATUSES) this.set({ status }, counts[status] ?? 0);
    });
  }

  // Instruments registered in this app's registry only.
  private counter<L extends string = string>(name: string, help: string, labelNames: readonly L[] = []): Counter<L> {
    return new Counter<L>({ name, help, labelNames, registers: [this.registry] });
  }

  private histogram<L extends string = string>(name: string, help: string, buckets: number[], labelNames: readonly L[] = []): Histogram<L> {
    return new Histogram<L>({ name, help, buckets, labelNames, registers: [this.registry] });
  }

  /** `collect`, when given, sets the value at scrape time. */
  private gauge<L extends string = string>(name: string, help: string, labelNames: readonly L[] = [], collect?: (this: Gauge<L>) => void | Promise<void>): Gauge<L> {
    return new Gauge<L>({ name, help, labelNames, registers: [this.registry], ...(collect ? { collect } : {}) });
  }

  /** Registers where a scrape-time value comes from (the last registration wins). */
  observe<K extends keyof MetricSources>(name: K, source: MetricSources[K]): void {
    this.sources[name] = source;
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The exposition text (Prometheus text format 0.0.4). */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  /** Counts per status, at most one database read per cache period; null when no source or the read failed. */
  private async ordersByStatus(): Promise<Partial<Record<OrderStatus, number>> | null> {
    const read = this.sources.ordersByStatus;
    if (!read) return null;
    const now = performance.now();
    let cache = this.ordersCache;
    if (!cache || now - cache.atMs >= this.ordersCacheMs) {
      const counts = read();
      cache = this.ordersCache = { atMs: now, counts };
      // A failed read is counted and not cached, so the next scrape tries again.
      counts.catch(() => {
        if (this.ordersCache?.counts === counts) this.ordersCache = null;
      });
    }
    try {
      return await cache.counts;
    } catch {
      this.dbErrors.inc({ kind: "metrics" });
      return null;
    }
  }
}

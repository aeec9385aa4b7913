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

  readonly httpRequests = new Counter({
    name: "dispatch_http_requests_total",
    help: "HTTP requests answered, by method, matched route pattern and status",
    labelNames: ["method", "route", "status"] as const,
    registers: [this.registry],
  });
  readonly httpRequestDuration = new Histogram({
    name: "dispatch_http_request_duration_seconds",
    help: "Time from request received to response sent, by method, matched route pattern and status",
    labelNames: ["method", "route", "status"] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });

  readonly wsConnectionsOpened = new Counter({
    name: "dispatch_ws_connections_opened_total",
    help: "WebSocket connections accepted",
    registers: [this.registry],
  });
  readonly wsMessagesReceived = new Counter({
    name: "dispatch_ws_messages_received_total",
    help: "WebSocket frames received from clients, by op (invalid: refused before decoding)",
    labelNames: ["op"] as const,
    registers: [this.registry],
  });
  readonly wsMessagesSent = new Counter({
    name: "dispatch_ws_messages_sent_total",
    help: "WebSocket frames sent to clients: replies (acks, replays, errors) and topic messages per subscriber, by topic kind",
    labelNames: ["kind"] as const,
    registers: [this.registry],
  });

  readonly orderTransitions = new Counter({
    name: "dispatch_order_transitions_total",
    help: "Order changes committed by this instance, by previous and new status (from=none: placed)",
    labelNames: ["from", "to"] as const,
    registers: [this.registry],
  });
  readonly orderTransitionDuration = new Histogram({
    name: "dispatch_order_transition_duration_seconds",
    help: "Time to apply an order event (queue, load, machine, compare-and-set commit), by event and outcome",
    labelNames: ["event", "outcome"] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });

  readonly relayMessages = new Counter({
    name: "dispatch_relay_messages_total",
    help: "Redis relay envelopes, by direction (published, received, dropped: not sent while Redis was down)",
    labelNames: ["direction"] as const,
    registers: [this.registry],
  });
  readonly relayLag = new Histogram({
    name: "dispatch_relay_lag_seconds",
    help: "Time from another instance publishing a change to this instance receiving it from Redis (wall clocks of both hosts)",
    buckets: LAG_BUCKETS,
    registers: [this.registry],
  });

  readonly relayReceived = new Counter({
    name: "dispatch_relay_received_total",
    help: "Messages from other instances received through Redis (probes excluded)",
    registers: [this.registry],
  });
  readonly relayReceivedWatched = new Counter({
    name: "dispatch_relay_received_watched_total",
    help: "Messages from other instances received through Redis for a topic a local socket watches (broadcast relay: every message counts as watched)",
    registers: [this.registry],
  });
  readonly relayChannels = new Gauge({
    name: "dispatch_relay_channels",
    help: "Redis channels this instance is subscribed to (interest relay: topics watched here, or in their grace period; broadcast: 1)",
    registers: [this.registry],
  });
  readonly relayResubscriptions = new Counter({
    name: "dispatch_relay_resubscriptions_total",
    help: "Channels subscribed again after the probe of their shard stopped coming back (a subscriber left deaf by a failover)",
    registers: [this.registry],
  });
  readonly relayProbeFailures = new Counter({
    name: "dispatch_relay_probe_failures_total",
    help: "Relay probes (one per shard per RELAY_PROBE_INTERVAL_MS) that did not come back before the next",
    registers: [this.registry],
  });

  /** For durable timers (dispatch offers, timeouts): observe how late each one fired. */
  readonly timerLag = new Histogram({
    name: "dispatch_timer_lag_seconds",
    help: "How late a durable timer fired after its due time, by timer kind",
    labelNames: ["timer"] as const,
    buckets: LAG_BUCKETS,
    registers: [this.registry],
  });

  readonly dbErrors = new Counter({
    name: "dispatch_db_errors_total",
    help: "Database errors: requests that failed on one (request), failed heartbeats (heartbeat), failed connection checkouts (pool), failed metric reads (metrics)",
    labelNames: ["kind"] as const,
    registers: [this.registry],
  });
  readonly redisErrors = new Counter({
    name: "dispatch_redis_errors_total",
    help: "Redis errors, by connection (publisher, subscriber)",
    labelNames: ["connection"] as const,
    registers: [this.registry],
  });

  private readonly sources: Partial<MetricSources> = {};
  private readonly ordersCacheMs: number;
  private ordersCache: { atMs: number; counts: Promise<Partial<Record<OrderStatus, number>>> } | null = null;

  constructor(opts: MetricsOptions = {}) {
    this.ordersCacheMs = opts.ordersCacheMs ?? 5_000;
    if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    const sources = this.sources;
    new Gauge({
      name: "dispatch_ws_connections",
      help: "Open WebSocket connections",
      registers: [this.registry],
      collect() {
        this.set(sources.wsConnections?.() ?? 0);
      },
    });
    new Gauge({
      name: "dispatch_order_actors",
      help: "Live order actors held in memory (the actor registry's size)",
      registers: [this.registry],
      collect() {
        this.set(sources.orderActors?.() ?? 0);
      },
    });
    const readOrders = () => this.ordersByStatus();
    new Gauge({
      name: "dispatch_orders",
      help: "Orders in the database by status (read on scrape, cached briefly)",
      labelNames: ["status"] as const,
      registers: [this.registry],
      async collect() {
        const counts = await readOrders();
        if (counts === null) return;
        for (const status of ORDER_STATUSES) this.set({ status }, counts[status] ?? 0);
      },
    });
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

import type { Server } from "bun";
import { createApp } from "./app";
import { acceleratedClock, systemClock, type Clock } from "./clock";
import { withJwtSecret, type Config, type EnvConfig } from "./config";
import { deploymentJwtSecret } from "./db/jwt-secret";
import { COLLECTIONS, connectDatabase, type Database } from "./db/mongo";
import type { AppDeps } from "./deps";
import type { EventBus, TopicPublisher } from "./events/bus";
import { MAX_BODY_BYTES } from "./http/problem";
import { RedisLimits } from "./http/redis-limits";
import { createLogger, type Logger } from "./log";
import { Metrics } from "./metrics";
import { LocalEventBus } from "./realtime/bus";
import { InterestEventBus } from "./realtime/interest-relay";
import { RedisEventBus } from "./realtime/redis-relay";
import { RelayEventBus, type RelayOptions } from "./realtime/relay";
import { redisTarget } from "./redis";
import { inSpanSync, startTracing } from "./tracing";

export type RunningServer = {
  url: string;
  port: number;
  deps: AppDeps;
  /** Stops accepting, lets in-flight requests finish, then closes actors, bus and database. */
  stop(): Promise<void>;
};

export type StartOptions = { log?: Logger; clock?: Clock; db?: Database; bus?: EventBus; metrics?: Metrics };

/** Start-up in one place (config → connect → token key → bus → app (indexes, admin) → listen), exported so tests control it. */
export async function startServer(envConfig: EnvConfig, opts: StartOptions = {}): Promise<RunningServer> {
  const log = opts.log ?? createLogger(envConfig.LOG_LEVEL, { instance: envConfig.INSTANCE_ID });
  // First, so the database and Redis connections made below are traced too.
  const tracing = await startTracing(envConfig);
  if (tracing) log.info("tracing to OTLP/HTTP", { endpoint: envConfig.OTEL_EXPORTER_OTLP_ENDPOINT });
  const metrics = opts.metrics ?? new Metrics({ ordersCacheMs: envConfig.METRICS_ORDERS_CACHE_MS });
  const db = opts.db ?? (await connectDatabase(envConfig, log));
  // CLOCK_SPEEDUP: tests and benchmarks only (a replayed day in seconds).
  const clock = opts.clock ?? (envConfig.CLOCK_SPEEDUP !== 1 ? acceleratedClock(envConfig.CLOCK_SPEEDUP) : systemClock);
  let config: Config;
  try {
    config = await resolveJwtSecret(envConfig, db, log, clock);
  } catch (err) {
    if (!opts.db) await db.close();
    await tracing?.shutdown();
    throw err;
  }
  countDatabaseErrors(db, metrics);
  const bus = opts.bus ?? createBus(config, log, metrics);
  const deps: AppDeps = { config, db, bus, log, clock, metrics };
  if (bus instanceof RelayEventBus) deps.redisReady = () => bus.ready();
  // Rate limits and WebSocket connection counts hold across instances through Redis.
  const redis = redisTarget(config);
  const limits = redis ? new RedisLimits({ target: redis, prefix: `dispatch:${config.MONGODB_DB}:`, instanceId: config.INSTANCE_ID, log }) : null;
  if (limits) {
    deps.rateLimiters = limits.rateLimiters();
    deps.connectionLimiter = limits.connectionLimiter(config.WS_MAX_CONNECTIONS_PER_USER);
  }
  let composed: Awaited<ReturnType<typeof createApp>>;
  try {
    composed = await createApp(deps);
  } catch (err) {
    await limits?.close();
    if (!opts.bus) await bus.close();
    if (!opts.db) await db.close();
    await tracing?.shutdown();
    throw err;
  }
  const app = composed.app.listen({
    port: config.PORT,
    hostname: config.HOST,
    // The request policy refuses bodies over MAX_BODY_BYTES with a problem+json 413, by
    // Content-Length before reading or by counting a chunked one, and never reads further; Bun's
    // own cap would answer a bare 413 first, so it sits far above.
    maxRequestBodySize: 16_384 * MAX_BODY_BYTES,
    // Longer than the request deadline, so a slow request gets its 503 before Bun drops the connection.
    idleTimeout: Math.min(255, Math.max(30, Math.ceil(config.REQUEST_TIMEOUT_MS / 1000) + 5)),
  });
  const server = app.server as Server<unknown>;
  bus.attach(countingPublisher(server, metrics));
  const port = server.port ?? config.PORT;
  log.info("listening", { port, host: config.HOST, database: db.target, embedded: db.embedded });

  let stopping: Promise<void> | null = null;
  return {
    url: `http://${config.HOST === "0.0.0.0" ? "127.0.0.1" : config.HOST}:${port}`,
    port,
    deps,
    stop() {
      stopping ??= (async () => {
        await composed.stop(); // sockets, dispatch, in-flight requests, actors (see createApp)
        await bus.close();
        await limits?.close();
        if (!opts.db) await db.close();
        await tracing?.shutdown();
        log.info("stopped");
      })();
      return stopping;
    },
  };
}

/** JWT_SECRET when set; otherwise the deployment's generated key, shared through the database. */
async function resolveJwtSecret(config: EnvConfig, db: Database, log: Logger, clock: Clock): Promise<Config> {
  if (config.JWT_SECRET !== undefined) return withJwtSecret(config, config.JWT_SECRET);
  const { secret, created } = await deploymentJwtSecret(db.db, clock.now());
  // Never the key itself: only where it lives.
  log.info(created ? "JWT_SECRET is not set: generated a random token key and stored it in the database" : "JWT_SECRET is not set: using the token key stored in the database", {
    collection: COLLECTIONS.secrets,
    database: config.MONGODB_DB,
  });
  return withJwtSecret(config, secret);
}

/**
 * The relay across instances when Redis is configured (one server or a cluster): by interest
 * or broadcast (RELAY_MODE); local topics only otherwise.
 */
function createBus(config: Config, log: Logger, metrics: Metrics): EventBus {
  const redis = redisTarget(config);
  if (!redis) return new LocalEventBus(log);
  const relay: RelayOptions = {
    instanceId: config.INSTANCE_ID,
    log,
    gapWaitMs: config.RELAY_GAP_WAIT_MS,
    metrics: {
      redisError: (connection) => metrics.redisErrors.inc({ connection }),
      relayed: (direction) => metrics.relayMessages.inc({ direction }),
      lag: (seconds) => metrics.relayLag.observe(seconds),
      received: (watched) => {
        metrics.relayReceived.inc();
        if (watched) metrics.relayReceivedWatched.inc();
      },
      channels: (count) => metrics.relayChannels.set(count),
      resubscribed: (channels) => metrics.relayResubscriptions.inc(channels),
      probeFailed: () => metrics.relayProbeFailures.inc(),
    },
  };
  // Instances sharing a database share channels.
  const namespace = `dispatch:${config.MONGODB_DB}:`;
  return config.RELAY_MODE === "broadcast"
    ? new RedisEventBus({ ...relay, redis, channel: `${namespace}changes` })
    : new InterestEventBus({ ...relay, redis, namespace, unsubscribeGraceMs: config.RELAY_UNSUBSCRIBE_GRACE_MS, probeIntervalMs: config.RELAY_PROBE_INTERVAL_MS });
}

/** Topic messages counted once per subscriber that receives them on this instance. */
function countingPublisher(server: Server<unknown>, metrics: Metrics): TopicPublisher {
  return {
    publish(topic, data) {
      const sent = inSpanSync("ws.publish", { "messaging.system": "websocket", "messaging.destination.name": topic }, () => server.publish(topic, data));
      const subscribers = server.subscriberCount(topic);
      if (subscribers > 0) metrics.wsMessagesSent.inc({ kind: topic.slice(0, topic.indexOf(":")) || "other" }, subscribers);
      return sent;
    },
  };
}

/** Driver-level failures that never reach a request (heartbeats, pool checkouts). */
function countDatabaseErrors(db: Database, metrics: Metrics): void {
  db.client.on("serverHeartbeatFailed", () => metrics.dbErrors.inc({ kind: "heartbeat" }));
  db.client.on("connectionCheckOutFailed", (event) => {
    if (event.reason !== "poolClosed") metrics.dbErrors.inc({ kind: "pool" });
  });
}

import { Cluster, Redis, type Command } from "ioredis";
import { startClientSpan, tracingEnabled } from "./tracing";
import type { Config } from "./config";

/**
 * Where Redis is: one server (REDIS_URL) or a Redis Cluster (REDIS_CLUSTER_NODES). Everything
 * that talks to Redis (relay, limits) builds its connections here, so both deployments share
 * one code path.
 */
export type RedisTarget = { kind: "single"; url: string } | { kind: "cluster"; nodes: Array<{ host: string; port: number }> };

/** A connection to either deployment; both speak the same commands (a cluster routes each by its key's slot). */
export type RedisClient = Redis | Cluster;

export function redisTarget(config: Pick<Config, "REDIS_URL" | "REDIS_CLUSTER_NODES">): RedisTarget | null {
  if (config.REDIS_CLUSTER_NODES) {
    const nodes = config.REDIS_CLUSTER_NODES.split(",").map((entry) => {
      const at = entry.lastIndexOf(":");
      return { host: entry.slice(0, at), port: Number(entry.slice(at + 1)) };
    });
    return { kind: "cluster", nodes };
  }
  return config.REDIS_URL ? { kind: "single", url: config.REDIS_URL } : null;
}

export type RedisConnectionOptions = {
  connectionName: string;
  /** Commands fail at once while disconnected (true: they wait for the connection). */
  offlineQueue: boolean;
  maxRetriesPerRequest: number | null;
  commandTimeoutMs?: number;
  /** Cluster: one subscriber connection per master for SSUBSCRIBE (ioredis' shardedSubscribers). */
  shardedSubscribers?: boolean;
};

const retryStrategy = (times: number) => Math.min(50 * 2 ** Math.min(times, 6), 2_000);

/**
 * One connection (single) or one cluster client. Auto-pipelining stays off (ioredis' default):
 * with it, publishes to a shard that failed over kept failing for about 15 s (ioredis#2075).
 */
export function connectRedis(target: RedisTarget, opts: RedisConnectionOptions): RedisClient {
  const client = createRedisClient(target, opts);
  if (tracingEnabled()) traceCommands(client);
  return client;
}

/** One client span per command sent (`redis PUBLISH`, …), ended when its reply arrives. */
function traceCommands(client: RedisClient): void {
  const send = client.sendCommand.bind(client) as (command: Command, ...rest: unknown[]) => unknown;
  (client as { sendCommand: (command: Command, ...rest: unknown[]) => unknown }).sendCommand = (command, ...rest) => {
    const span = startClientSpan(`redis ${command.name.toUpperCase()}`, { "db.system.name": "redis", "db.operation.name": command.name.toUpperCase() });
    if (span) command.promise.then(() => span.end(), (err: unknown) => span.end(err));
    return send(command, ...rest);
  };
}

function createRedisClient(target: RedisTarget, opts: RedisConnectionOptions): RedisClient {
  const common = {
    connectionName: opts.connectionName,
    connectTimeout: 2_000,
    maxRetriesPerRequest: opts.maxRetriesPerRequest,
    enableAutoPipelining: false,
    ...(opts.commandTimeoutMs !== undefined ? { commandTimeout: opts.commandTimeoutMs } : {}),
  };
  if (target.kind === "single") {
    return new Redis(target.url, { ...common, enableOfflineQueue: opts.offlineQueue, retryStrategy, autoResubscribe: true });
  }
  return new Cluster(target.nodes, {
    enableOfflineQueue: opts.offlineQueue,
    enableAutoPipelining: false,
    clusterRetryStrategy: retryStrategy,
    shardedSubscribers: opts.shardedSubscribers ?? false,
    // A failover moves slots: ask the cluster for its map often enough to notice without MOVED.
    slotsRefreshInterval: 2_000,
    slotsRefreshTimeout: 2_000,
    retryDelayOnFailover: 100,
    retryDelayOnClusterDown: 100,
    redisOptions: common,
  });
}

/** The deployment kind for logs and metrics. */
export function describeTarget(target: RedisTarget): string {
  return target.kind === "single" ? "redis" : `redis cluster (${target.nodes.length} seed nodes)`;
}

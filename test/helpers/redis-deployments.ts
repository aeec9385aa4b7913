// The two Redis deployments the multi-instance tests run on: one redis-server, or a Redis Cluster.

import { startRedis } from "./redis";
import { startRedisCluster, type TestRedisCluster } from "./redis-cluster";

export type RedisDeployment = {
  /** What a server process needs to use it (REDIS_URL or REDIS_CLUSTER_NODES). */
  env: Record<string, string>;
  /** The cluster, when the deployment is one. */
  cluster?: TestRedisCluster;
  /** All of Redis down at once (SIGKILL), and back. */
  kill(): Promise<void>;
  restart(): Promise<void>;
  stop(): Promise<void>;
};

export async function singleRedis(): Promise<RedisDeployment> {
  const redis = await startRedis();
  return { env: { REDIS_URL: redis.url }, kill: () => redis.kill(), restart: () => redis.restart(), stop: () => redis.stop() };
}

export async function redisCluster(): Promise<RedisDeployment> {
  const cluster = await startRedisCluster();
  return { env: { REDIS_CLUSTER_NODES: cluster.nodes }, cluster, kill: () => cluster.killAll(), restart: () => cluster.restartAll(), stop: () => cluster.stop() };
}

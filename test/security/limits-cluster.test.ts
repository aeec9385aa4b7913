import { startRedisCluster } from "../helpers/redis-cluster";
import { describeSharedLimits } from "./shared-limits";

/**
 * The shared limits (writes, failed logins, WebSocket connections) on a Redis Cluster
 * (3 masters, 3 replicas), as limits.test.ts runs them on one redis-server: the same tests
 * (shared-limits.ts), plus the check that the counters spread over every master.
 */
describeSharedLimits({
  name: "a Redis Cluster",
  startTimeoutMs: 60_000,
  outage: false,
  start: async () => {
    const cluster = await startRedisCluster();
    return { env: { REDIS_CLUSTER_NODES: cluster.nodes }, spread: { masters: 3, masterOf: (key) => cluster.masterOf(key) }, stop: () => cluster.stop() };
  },
});

import type { Clock } from "./clock";
import type { Config } from "./config";
import type { Database } from "./db/mongo";
import type { EventBus } from "./events/bus";
import type { ConnectionLimiter } from "./http/connection-limit";
import type { RateLimiterFactory } from "./http/rate-limit";
import type { Logger } from "./log";
import type { Metrics } from "./metrics";

/**
 * Test seams around a subscribe, so a test can commit changes at the racy moments instead of
 * sleeping. `beforeRead`: the live buffer is listening, nothing is read yet (changes committed
 * now appear in both the replay and the buffer). `beforeSend`: the replay is read, nothing is
 * sent yet (changes committed now appear only in the buffer). `beforePublish`: the orders
 * registry has committed a change and not yet published it (a subscribe that reads now sees
 * it, and the bus delivers it later).
 */
export type RealtimeHooks = {
  beforeRead?: (info: { topic: string; principalId: string }) => Promise<void>;
  beforeSend?: (info: { topic: string; principalId: string }) => Promise<void>;
  beforePublish?: (committed: { orderId: string; seq: number }) => Promise<void>;
};

/** Everything the composition root hands to the features; passed in, never imported as a singleton. */
export type AppDeps = {
  config: Config;
  db: Database;
  bus: EventBus;
  log: Logger;
  clock: Clock;
  /** This app's Prometheus registry and instruments (GET /metrics). */
  metrics: Metrics;
  /** Whether Redis answers (null when no REDIS_URL is configured). */
  redisReady?: () => Promise<boolean>;
  /** Rate-limit store; in-process counters when absent. */
  rateLimiters?: RateLimiterFactory;
  /** WebSocket connections per user; in-process counts when absent. */
  connectionLimiter?: ConnectionLimiter;
  /** Test seams in the WebSocket subscribe path; read at each subscribe (tests set them on a running server). */
  realtimeHooks?: RealtimeHooks;
};

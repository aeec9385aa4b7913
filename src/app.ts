import { Elysia } from "elysia";
import { openapi } from "@elysiajs/openapi";
import type { Config } from "./config";
import type { Database } from "./db/mongo";
import type { EventBus } from "./realtime/bus";
import type { Logger } from "./log";
import type { RateLimiterFactory } from "./http/rate-limit";
import { problemPlugin } from "./http/problem";
import { requestPolicyPlugin, type RouteInfo } from "./http/request-policy";
import type { ConnectionLimiter } from "./http/connection-limit";
import { authPlugin } from "./http/auth";
import { healthModule } from "./modules/health";
import { authModule } from "./modules/auth";
import { restaurantsModule } from "./modules/restaurants";
import { createOrders, ordersModule } from "./modules/orders";
import { couriersModule, createDispatch, etaEstimator } from "./modules/couriers";
import { realtimeModule, realtimeServerOptions, type RealtimeHooks } from "./realtime/ws";
import type { Metrics } from "./metrics";
import { httpMetricsPlugin, metricsModule } from "./http/metrics";
import { demoModule } from "./demo";
import { OrderRepository } from "./modules/orders/repository";
import { UserRepository } from "./modules/auth/repository";

/** Time source, injected so tests can move it. */
export type Clock = { now(): Date };
export const systemClock: Clock = { now: () => new Date() };

/** Everything a feature plugin may depend on; passed in, never imported as a singleton. */
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
  /** Test seams in the WebSocket subscribe path (see RealtimeHooks); read at each subscribe. */
  realtimeHooks?: RealtimeHooks;
};

/** The auth plugin instance every feature uses, so its macro and token helpers are typed. */
export function guardFor(deps: Pick<AppDeps, "config" | "db">) {
  const users = new UserRepository(deps.db.db);
  return authPlugin({ secret: deps.config.JWT_SECRET, ttlSeconds: deps.config.JWT_TTL_SECONDS, currentRole: (id) => users.roleOf(id) });
}

export function createApp(deps: AppDeps) {
  // The request policy reads each route's body schema; the routes exist once the app is built.
  let routes = (): readonly RouteInfo[] => [];
  // Orders and dispatch share one actor registry; couriers' positions feed both /ws and /couriers.
  const orders = createOrders(deps, { estimate: etaEstimator(deps) });
  const dispatch = createDispatch(deps, orders);
  const app = new Elysia({ name: "dispatch", websocket: realtimeServerOptions(deps.config) })
    .use(httpMetricsPlugin(deps)) // first: its hooks time and count every request
    .use(problemPlugin(deps.log))
    .use(requestPolicyPlugin(deps, () => routes()))
    .use(
      openapi({
        path: "/docs",
        specPath: "/openapi",
        documentation: {
          info: { title: "dispatch", version: "0.1.0", description: "Real-time order and delivery server" },
          components: { securitySchemes: { bearer: { type: "http", scheme: "bearer", bearerFormat: "JWT" } } },
          // Elysia leaves WebSocket routes out of the document; the upgrade is part of the contract.
          paths: {
            "/ws": {
              get: {
                summary: "WebSocket upgrade for live order events (messages: docs/realtime.md)",
                tags: ["realtime", "websocket"],
                parameters: [{ name: "token", in: "query", required: true, schema: { type: "string", maxLength: 4096 }, description: "a JWT from /auth" }],
                responses: { "101": { description: "switching protocols" }, "401": { description: "missing or bad token" } },
              },
            },
          },
        },
      }),
    )
    .use(healthModule(deps))
    .use(metricsModule(deps))
    .use(authModule(deps))
    .use(restaurantsModule(deps))
    .use(ordersModule(deps, orders))
    .use(couriersModule(deps, dispatch))
    .use(realtimeModule(deps, dispatch.locations))
    .use(demoModule());
  routes = () => app.routes as readonly RouteInfo[];
  observeApp(deps, () => app.decorator.realtime.connectionCount);
  return app;
}

/** Scrape-time sources and the committed-transition count for /metrics. */
function observeApp(deps: AppDeps, wsConnections: () => number): void {
  const { metrics } = deps;
  const orders = new OrderRepository(deps.db.db);
  metrics.observe("wsConnections", wsConnections);
  metrics.observe("ordersByStatus", () => orders.countByStatus());
  deps.bus.onChange((change) => {
    // Relayed changes were counted by the instance that committed them.
    if (change.origin === deps.config.INSTANCE_ID) metrics.orderTransitions.inc({ from: change.prevStatus ?? "none", to: change.status });
  });
}

/** The app's type, for a typed client (Eden treaty). */
export type App = ReturnType<typeof createApp>;

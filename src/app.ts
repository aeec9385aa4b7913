import { Elysia } from "elysia";
import { openapi } from "@elysiajs/openapi";
import type { AppDeps } from "./deps";
import { problemPlugin } from "./http/problem";
import { requestPolicyPlugin, type RouteInfo } from "./http/request-policy";

import { healthModule } from "./modules/health";
import { authModule } from "./modules/auth";
import { restaurantsModule } from "./modules/restaurants";
import { createOrders, ordersModule } from "./modules/orders";
import { couriersModule, createDispatch, etaEstimator } from "./modules/couriers";
import { realtimeModule, realtimeServerOptions } from "./realtime/ws";

import { httpMetricsPlugin, metricsModule } from "./http/metrics";
import { demoModule } from "./demo";
import { OrderRepository } from "./modules/orders/repository";

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
    .use(demoModule(deps.config));
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

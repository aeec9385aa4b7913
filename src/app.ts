import { Elysia } from "elysia";
import { openapi } from "@elysiajs/openapi";
import type { AppDeps } from "./deps";
import { changesFromOrder } from "./events/change";
import { authPlugin } from "./http/auth";
import { httpMetricsPlugin, metricsModule } from "./http/metrics";
import { problemPlugin } from "./http/problem";
import { requestPolicyPlugin, type RouteInfo } from "./http/request-policy";
import { demoModule } from "./demo";
import { authModule } from "./modules/auth";
import { ensureUserIndexes, UserRepository } from "./modules/auth/repository";
import { bootstrapAdmin } from "./modules/auth/service";
import { courierCapacity, couriersModule, createDispatch, etaEstimator } from "./modules/couriers";
import { MAX_FIX_FUTURE_MS } from "./modules/couriers/locations";
import { CourierRepository, ensureCourierIndexes } from "./modules/couriers/repository";
import { healthModule } from "./modules/health";
import { createOrders, ordersModule } from "./modules/orders";
import { ensureIdempotencyKeyIndexes, IdempotencyKeys } from "./modules/orders/idempotency-keys";
import { ensureOrderIndexes, OrderRepository } from "./modules/orders/repository";
import { restaurantsModule } from "./modules/restaurants";
import { ensureRestaurantIndexes, RestaurantRepository } from "./modules/restaurants/repository";
import { RealtimeHub } from "./realtime/hub";
import type { RealtimeSources } from "./realtime/sources";
import { realtimeModule, realtimeServerOptions } from "./realtime/ws";

/**
 * The composition root. Builds each repository, service and runtime once, makes sure the
 * database has what they need (indexes, the bootstrap admin), composes the feature plugins,
 * and says how to stop it all, each step once:
 *
 *   repositories ─▶ orders (registry, service) ─▶ dispatch (dispatcher, timers, positions)
 *                                              ─▶ realtime hub (reads through RealtimeSources)
 *
 * Only the entry points (server.ts) and tests import this file; features never do.
 */
export async function createApp(deps: AppDeps) {
  const { db } = deps;
  const repos = {
    users: new UserRepository(db.db, { roleCacheMs: deps.config.AUTH_ROLE_CACHE_MS }),
    restaurants: new RestaurantRepository(db.db),
    orders: new OrderRepository(db.db),
    idempotencyKeys: new IdempotencyKeys(db.db),
    couriers: new CourierRepository(db.db),
  };
  // A relay gap (a change another instance published that never arrived) is read back here.
  deps.bus.setGapFiller?.(async (orderId, afterSeq, beforeSeq) => {
    const stored = await repos.orders.findById(orderId);
    return stored ? changesFromOrder(stored.order, afterSeq, beforeSeq) : [];
  });
  for (const ensure of [ensureUserIndexes, ensureRestaurantIndexes, ensureOrderIndexes, ensureIdempotencyKeyIndexes, ensureCourierIndexes]) await ensure(db.db);
  await bootstrapAdmin(repos.users, deps);

  // One auth plugin: tokens are checked against the user's current role.
  const auth = authPlugin({ config: deps.config, currentRole: (userId) => repos.users.roleOf(userId) });
  // Orders and dispatch share one actor registry; couriers' positions feed both /ws and /couriers.
  const capacity = courierCapacity(deps, repos);
  const orders = createOrders(deps, repos, { estimate: etaEstimator(deps, repos.couriers), capacity });
  const dispatch = createDispatch(deps, repos, orders, capacity);
  const realtime = new RealtimeHub({
    ...deps,
    sources: realtimeSources(repos),
    positions: { report: (courierId, fix) => dispatch.locations.report(courierId, fix), maxFutureMs: MAX_FIX_FUTURE_MS },
    hooks: () => deps.realtimeHooks,
  });
  observeMetrics(deps, repos.orders, () => realtime.connectionCount);

  // The request policy reads each route's body schema; the routes exist once the app is built.
  let routes = (): readonly RouteInfo[] => [];
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
    .use(authModule(deps, repos.users, auth))
    .use(restaurantsModule(deps, repos.restaurants, auth))
    .use(ordersModule(orders, auth))
    .use(couriersModule(dispatch, auth))
    .use(realtimeModule(deps, realtime, auth))
    .use(demoModule(deps.config));
  routes = () => app.routes as readonly RouteInfo[];

  let stopping: Promise<void> | null = null;
  /**
   * Stops in this order, once: sockets closed (open WebSockets would keep the server draining),
   * dispatch stopped (timers and searches: other instances take over), the HTTP server drained
   * when it listens (in-flight requests answered), then the order actors.
   */
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      await realtime.shutdown();
      await dispatch.stop();
      const server = app.server;
      if (server) {
        await server.stop(false); // resolves once in-flight requests are answered
        await app.stop(true).catch(() => undefined); // idle keep-alive connections go too
      }
      await orders.registry.stop();
    })());
  return { app, stop };
}

/** What realtime reads of orders, restaurants and users, through the interfaces it declares. */
function realtimeSources(repos: { orders: OrderRepository; restaurants: RestaurantRepository; users: UserRepository }): RealtimeSources {
  return {
    findOrder: (id) => repos.orders.findById(id),
    findRestaurant: (id) => repos.restaurants.findById(id),
    findUser: (id) => repos.users.findById(id),
    ordersChangedSince: (scope, since, limit) => repos.orders.changedSince(scope, since, limit),
    orderVersions: (ids) => repos.orders.versionsOf(ids),
    versionsChangedSince: (scope, since, limit) => repos.orders.versionsChangedSince(scope, since, limit),
  };
}

/** Scrape-time sources and the committed-transition count for /metrics. */
function observeMetrics(deps: AppDeps, orders: OrderRepository, wsConnections: () => number): void {
  const { metrics } = deps;
  metrics.observe("wsConnections", wsConnections);
  metrics.observe("ordersByStatus", () => orders.countByStatus());
  deps.bus.onChange((change) => {
    // Relayed changes were counted by the instance that committed them.
    if (change.origin === deps.config.INSTANCE_ID) metrics.orderTransitions.inc({ from: change.prevStatus ?? "none", to: change.status });
  });
}

/** The app's type, for a typed client (Eden treaty). */
export type App = Awaited<ReturnType<typeof createApp>>["app"];

import { Elysia, t } from "elysia";
import type { AuthPlugin } from "../../http/auth";
import type { AppDeps } from "../../deps";
import type { Principal } from "../../vocabulary";
import { Unauthorized } from "../../errors";
import { problemSchema } from "../../http/problem";
import { numericQuery } from "../../http/query";
import type { RestaurantRepository } from "../restaurants/repository";
import { OrderModel } from "./model";
import { OrderActorRegistry, type RegistryDeps } from "./registry";
import { parseIdempotencyKey } from "./idempotency";
import type { IdempotencyKeys } from "./idempotency-keys";
import type { OrderRepository } from "./repository";
import { OrderService } from "./service";

/** `If-Match: 3`, `"3"` or `W/"3"` → 3. */
function parseIfMatch(header: string | undefined): number | undefined {
  if (header === undefined) return undefined;
  return Number(header.replace(/^W\//, "").replaceAll('"', ""));
}

/** The orders' running parts, built once by the composition root and shared with dispatch (modules/couriers). */
export type OrdersRuntime = { repo: OrderRepository; registry: OrderActorRegistry; service: OrderService };

/**
 * Builds and starts the orders' actor registry and service on repositories built once.
 * `estimate`: the ETA written with each transition; `capacity`: COURIER_MAX_ACTIVE (modules/couriers provides both).
 */
export function createOrders(
  deps: AppDeps,
  repos: { orders: OrderRepository; idempotencyKeys: IdempotencyKeys; restaurants: RestaurantRepository },
  hooks: Pick<RegistryDeps, "estimate" | "capacity"> = {},
): OrdersRuntime {
  const repo = repos.orders;
  const registry = new OrderActorRegistry({
    repo,
    bus: deps.bus,
    clock: deps.clock,
    log: deps.log.child({ module: "orders" }),
    instanceId: deps.config.INSTANCE_ID,
    idleSeconds: deps.config.ACTOR_IDLE_SECONDS,
    timing: { searchTimeoutMs: deps.config.DISPATCH_RETRY_SECONDS * 1000 },
    contentionRetryMs: deps.config.ORDER_CONTENTION_RETRY_MS,
    beforePublish: (committed) => deps.realtimeHooks?.beforePublish?.(committed),
    ...hooks,
    metrics: deps.metrics,
  });
  registry.start();
  deps.metrics.observe("orderActors", () => registry.size);
  const orders = new OrderService({
    repo,
    keys: repos.idempotencyKeys,
    restaurants: repos.restaurants,
    registry,
    bus: deps.bus,
    clock: deps.clock,
    config: deps.config,
    log: deps.log.child({ module: "orders" }),
  });
  return { repo, registry, service: orders };
}

/** Orders (API.md, Orders): placing, seeing, listing, moving and claiming them. */
export function ordersModule(runtime: OrdersRuntime, auth: AuthPlugin) {
  const { service: orders } = runtime;
  return new Elysia({ name: "orders", prefix: "/orders" })
    .use(auth)
    .macro({
      /**
       * Only a party of order `:id` (its customer, its restaurant's owner, its courier, an admin)
       * gets past; anyone else gets 404, as for a missing order. "read" loads the order from the
       * database; "write" may use the registry's live copy (the move itself is checked there).
       */
      orderParty: (mode: "read" | "write") => ({
        auth: true,
        async resolve(ctx) {
          // The `auth` macro above resolved `principal` first; its type does not reach here.
          const { params, principal } = ctx as typeof ctx & { principal?: Principal };
          if (!principal) throw new Unauthorized("missing bearer token (Authorization: Bearer <token>)");
          const stored = await orders.visibleTo(principal, (params as { id: string }).id, { cached: mode === "write" });
          return { stored };
        },
      }),
    })
    .post(
      "",
      async ({ body, headers, principal, status }) => {
        const key = headers["idempotency-key"];
        const { created, order } = await orders.place(principal, body, key === undefined ? undefined : parseIdempotencyKey(key));
        return created ? status(201, order) : status(200, order);
      },
      {
        auth: ["customer"],
        body: OrderModel.create,
        headers: OrderModel.createHeaders,
        response: { 200: OrderModel.order, 201: OrderModel.order, 409: problemSchema, 422: problemSchema },
        detail: {
          summary:
            "Place an order (customer); prices come from the menu. Idempotency-Key (IETF draft): a repeat with the same body returns the same order with 200; another body with the same key is 422; a repeat while the first is in flight is 409",
          tags: ["orders"],
          security: [{ bearer: [] }],
        },
      },
    )
    .get("", ({ query, principal }) => orders.list(principal, query), {
      auth: true,
      query: OrderModel.listQuery,
      transform: numericQuery(OrderModel.listQuery),
      response: OrderModel.page,
      detail: {
        summary: "Orders the caller takes part in (all orders for admins), newest first",
        tags: ["orders"],
        security: [{ bearer: [] }],
      },
    })
    .get("/:id", ({ stored }) => stored.order, {
      params: OrderModel.params,
      orderParty: "read",
      response: OrderModel.order,
      detail: { summary: "One order, for its customer, its restaurant's owner, its courier and admins", tags: ["orders"], security: [{ bearer: [] }] },
    })
    .patch(
      "/:id",
      ({ params, body, headers, principal, stored }) => orders.changeStatus(principal, params.id, body, parseIfMatch(headers["if-match"]), stored),
      {
        params: OrderModel.params,
        orderParty: "write",
        body: OrderModel.patch,
        headers: OrderModel.patchHeaders,
        response: { 200: OrderModel.order, 409: problemSchema, 412: problemSchema, 503: problemSchema },
        detail: {
          summary:
            "Move an order to another status (409 with `allowed` when this caller may not; 412 on an If-Match mismatch; 503 with Retry-After when other writers kept it busy past ORDER_CONTENTION_RETRY_MS)",
          tags: ["orders"],
          security: [{ bearer: [] }],
        },
      },
    )
    .post("/:id/claim", ({ params, principal }) => orders.claim(principal, params.id), {
      params: OrderModel.params,
      auth: ["courier"],
      response: { 200: OrderModel.order, 409: problemSchema },
      detail: {
        summary: "Claim an accepted, preparing or ready_for_pickup order that has no courier (courier)",
        tags: ["orders"],
        security: [{ bearer: [] }],
      },
    });
}

import { Elysia, t } from "elysia";
import type { AuthPlugin } from "../../http/auth";
import type { AppDeps } from "../../deps";
import type { Config } from "../../config";
import { TimerSweeper } from "../../db/timers";
import { problemSchema } from "../../http/problem";
import { numericQuery } from "../../http/query";
import { isCarryingStatus } from "../../vocabulary";
import { estimateEta, etaInputOf } from "../orders/eta";
import type { OrdersRuntime } from "../orders";
import type { OrderRepository } from "../orders/repository";
import { statusOf } from "../orders/machine";
import { OrderModel } from "../orders/model";
import type { CourierCapacityPort } from "../orders/courier-slots";
import type { RegistryDeps } from "../orders/registry";
import type { RestaurantRepository } from "../restaurants/repository";
import type { DispatchPolicy } from "./dispatch-policy";
import { CourierCapacity } from "./capacity";
import { Dispatcher } from "./dispatcher";
import { Planner } from "./planner";
import { DEFAULT_BATCHED } from "./planning";
import { Lease } from "../../db/leases";
import { CourierLocations } from "./locations";
import { CourierModel } from "./model";
import type { CourierRepository } from "./repository";
import { CourierService } from "./service";

export function dispatchPolicyOf(config: Config): DispatchPolicy {
  return {
    maxAttempts: config.DISPATCH_MAX_ATTEMPTS,
    radiusMeters: config.DISPATCH_RADIUS_METERS,
    maxActive: config.COURIER_MAX_ACTIVE,
    seenWithinMs: config.COURIER_SEEN_SECONDS * 1000,
    offerTtlMs: config.OFFER_TTL_SECONDS * 1000,
    retryMs: config.DISPATCH_RETRY_SECONDS * 1000,
  };
}

/** The ETA each order transition writes: prep time, the assigned courier's last position, COURIER_SPEED_MPS. */
export function etaEstimator(deps: Pick<AppDeps, "config">, couriers: CourierRepository): NonNullable<RegistryDeps["estimate"]> {
  return async ({ stored, next, at }) => {
    const status = statusOf(next);
    const courierId = next.context.courierId;
    const position = courierId !== null && isCarryingStatus(status) ? await couriers.findPosition(courierId) : null;
    const eta = estimateEta(
      etaInputOf(stored.order, {
        status,
        pickup: stored.pickup,
        prepTimeMinutes: stored.prepTimeMinutes,
        courier: position && { lat: position.lat, lng: position.lng },
        now: at.getTime(),
        speedMps: deps.config.COURIER_SPEED_MPS,
      }),
    );
    return eta && { pickupAt: new Date(eta.pickupAt), deliveryAt: new Date(eta.deliveryAt) };
  };
}

/** COURIER_MAX_ACTIVE on every assignment (offer accept, claim, bundles), shared by all instances through the database. */
export function courierCapacity(deps: AppDeps, repos: { couriers: CourierRepository; orders: OrderRepository }): CourierCapacity {
  return new CourierCapacity({
    couriers: repos.couriers,
    orders: repos.orders,
    clock: deps.clock,
    log: deps.log.child({ module: "couriers" }),
    maxActive: deps.config.COURIER_MAX_ACTIVE,
  });
}

/** Dispatch's running parts: built once by the composition root, started at once, stopped before the server stops. */
export type DispatchRuntime = {
  locations: CourierLocations;
  dispatcher: Dispatcher;
  /** The batched policy's planning rounds (null with DISPATCH_POLICY=nearest). */
  planner: Planner | null;
  service: CourierService;
  /** Stops the timer sweeper and the position stream, and waits for dispatch work in flight (other instances take over). */
  stop(): Promise<void>;
};

export function createDispatch(
  deps: AppDeps,
  repos: { couriers: CourierRepository; restaurants: RestaurantRepository },
  orders: OrdersRuntime,
  capacity?: CourierCapacityPort,
): DispatchRuntime {
  const log = deps.log.child({ module: "dispatch" });
  const { couriers } = repos;
  const policy = dispatchPolicyOf(deps.config);
  const locations = new CourierLocations({ couriers, orders: orders.repo, bus: deps.bus, clock: deps.clock, log: deps.log.child({ module: "couriers" }), config: deps.config });
  const dispatcher = new Dispatcher({
    registry: orders.registry,
    orders: orders.repo,
    couriers,
    restaurants: repos.restaurants,
    bus: deps.bus,
    clock: deps.clock,
    log,
    policy,
    mode: deps.config.DISPATCH_POLICY,
    ...(capacity ? { capacity } : {}),
  });
  const planner =
    deps.config.DISPATCH_POLICY === "batched"
      ? new Planner({
          registry: orders.registry,
          orders: orders.repo,
          couriers,
          bus: deps.bus,
          clock: deps.clock,
          log,
          lease: new Lease(deps.db.db, "dispatch-planner", deps.config.INSTANCE_ID),
          intervalMs: deps.config.DISPATCH_INTERVAL_SECONDS * 1000,
          offerTtlMs: policy.offerTtlMs,
          seenWithinMs: policy.seenWithinMs,
          maxActive: policy.maxActive,
          speedMps: deps.config.COURIER_SPEED_MPS,
          readyDefaultMinutes: deps.config.READY_DEFAULT_MINUTES,
          params: { ...DEFAULT_BATCHED, intervalMinutes: deps.config.DISPATCH_INTERVAL_SECONDS / 60,
            repositionWithinMinutes: deps.config.DISPATCH_REPOSITION_MINUTES,
            radiusMeters: policy.radiusMeters },
        })
      : null;
  const unlistenReady = planner
    ? orders.registry.onCommit(({ prev, next, stored }) => {
        if (statusOf(next) !== "ready_for_pickup" || statusOf(prev) === "ready_for_pickup") return;
        const accepted = stored.order.history.find((h) => h.status === "accepted");
        const ready = stored.order.history.find((h) => h.status === "ready_for_pickup");
        if (accepted && ready) planner.observeReady(stored.order.restaurantId, new Date(accepted.at), new Date(ready.at));
      })
    : () => undefined;
  const sweeper = new TimerSweeper({
    store: orders.repo.timerStore(),
    owner: deps.config.INSTANCE_ID,
    clock: deps.clock,
    log: deps.log.child({ module: "timers" }),
    intervalMs: deps.config.TIMER_SWEEP_INTERVAL_MS,
    leaseMs: deps.config.TIMER_LEASE_MS,
    fire: (id, timer) => dispatcher.fireTimer(id, timer),
    metrics: deps.metrics,
  });
  dispatcher.start();
  planner?.start();
  sweeper.start();
  const service = new CourierService({ couriers, orders: orders.repo, locations, clock: deps.clock, policy });
  let stopping: Promise<void> | null = null;
  return {
    locations,
    dispatcher,
    planner,
    service,
    stop: () => {
      unlistenReady();
      return (stopping ??= Promise.all([sweeper.stop(), planner?.stop(), dispatcher.stop()]).then(() => locations.stop()));
    },
  };
}

/**
 * Couriers (docs/dispatch.md): their availability, position and the admins' map, under
 * /couriers; answering an offer, under /orders/:id/offer.
 */
export function couriersModule(runtime: DispatchRuntime, auth: AuthPlugin) {
  const { service, dispatcher } = runtime;
  const security = [{ bearer: [] }];

  const couriers = new Elysia({ name: "couriers", prefix: "/couriers" })
    .use(auth)
    .get("/me", ({ principal }) => service.me(principal.id), {
      auth: ["courier"],
      response: { 200: CourierModel.courier },
      detail: { summary: "The calling courier: availability, last position, orders carried, whether it is dispatchable, its live offer", tags: ["couriers"], security },
    })
    .put("/me/availability", ({ principal, body }) => service.setAvailability(principal.id, body.available), {
      auth: ["courier"],
      body: CourierModel.availability,
      response: { 200: CourierModel.courier },
      detail: { summary: "Go on or off duty (only available couriers get offers)", tags: ["couriers"], security },
    })
    .put(
      "/me/location",
      ({ principal, body, status }) => {
        service.reportLocation(principal.id, body);
        return status(202, { accepted: true as const });
      },
      {
        auth: ["courier"],
        body: CourierModel.location,
        response: { 202: CourierModel.locationAccepted, 409: problemSchema, 422: problemSchema },
        detail: {
          summary: "Report a position, like the WebSocket `location` op (same throttle; 409 for a fix older than a known one, 422 for one from the future)",
          tags: ["couriers"],
          security,
        },
      },
    )
    .get("", ({ query }) => service.nearby(query), {
      auth: ["admin"],
      query: CourierModel.nearbyQuery,
      transform: numericQuery(CourierModel.nearbyQuery),
      response: { 200: CourierModel.nearbyPage },
      detail: { summary: "Couriers near a point, nearest first ($geoNear; admins)", tags: ["couriers"], security },
    });

  const offers = new Elysia({ name: "offers", prefix: "/orders" })
    .use(auth)
    .post("/:id/offer/accept", ({ principal, params }) => dispatcher.accept(principal, params.id), {
      auth: ["courier"],
      params: OrderModel.params,
      response: { 200: OrderModel.order, 404: problemSchema, 409: problemSchema },
      detail: {
        summary: "Accept the offer of this order (the offered courier only): the order is assigned to the caller. 409 when the offer is over",
        tags: ["orders", "couriers"],
        security,
      },
    })
    .post(
      "/:id/offer/decline",
      async ({ principal, params, status }) => {
        await dispatcher.decline(principal, params.id);
        return status(204, undefined);
      },
      {
        auth: ["courier"],
        params: OrderModel.params,
        response: { 204: t.Void(), 404: problemSchema, 409: problemSchema },
        detail: { summary: "Decline the offer of this order (the offered courier only); it goes to the next courier", tags: ["orders", "couriers"], security },
      },
    );

  return new Elysia({ name: "couriers-and-offers" }).use(couriers).use(offers);
}

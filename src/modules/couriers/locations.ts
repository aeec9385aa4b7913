import type { Clock } from "../../clock";
import type { Config } from "../../config";
import { errorField, type Logger } from "../../log";
import type { EventBus } from "../../events/bus";
import { topics } from "../../events/topics";
import { estimateEta } from "../orders/eta";
import type { CarriedOrder, OrderRepository } from "../orders/repository";
import { approachFor } from "./geofence";
import type { CourierModel } from "./model";
import type { CourierRepository } from "./repository";
import { CourierLocationTracker, type FixVerdict } from "./tracker";

/** Fixes further than this ahead of server time are refused. */
export const MAX_FIX_FUTURE_MS = 30_000;

export type CourierLocationsDeps = {
  couriers: CourierRepository;
  orders: OrderRepository;
  bus: EventBus;
  clock: Clock;
  log: Logger;
  config: Pick<Config, "COURIER_LOCATION_INTERVAL_MS" | "APPROACH_METERS" | "COURIER_SPEED_MPS" | "ETA_REFRESH_SECONDS">;
};

/**
 * The courier position stream, shared by the WebSocket `location` op and PUT /couriers/me/location:
 * one tracker (throttle, stale and future fixes refused), and after each stored fix, for every
 * order the courier carries: `courier.location` to the order's topic, the arrival geofence
 * (`courier.approaching` once per target), and the ETA refreshed at most every ETA_REFRESH_SECONDS.
 */
export class CourierLocations {
  private readonly tracker: CourierLocationTracker<CarriedOrder>;

  constructor(private readonly deps: CourierLocationsDeps) {
    this.tracker = new CourierLocationTracker<CarriedOrder>({
      record: (courierId, fix, seenAt) => deps.couriers.recordPosition(courierId, fix, seenAt),
      activeOrders: (courierId) => deps.orders.carriedBy(courierId),
      forward: (courierId, fix, orders) => this.afterFix(courierId, fix, orders),
      clock: deps.clock,
      log: deps.log,
      minIntervalMs: deps.config.COURIER_LOCATION_INTERVAL_MS,
      maxFutureMs: MAX_FIX_FUTURE_MS,
    });
  }

  report(courierId: string, fix: CourierModel.fix): FixVerdict {
    return this.tracker.report(courierId, fix);
  }

  /** Position writes since start (for tests and metrics). */
  get writeCount(): number {
    return this.tracker.writeCount;
  }

  stop(): void {
    this.tracker.stop();
  }

  private afterFix(courierId: string, fix: CourierModel.fix, orders: CarriedOrder[]): void {
    const { bus, config } = this.deps;
    for (const order of orders) {
      const topic = topics.order(order.id);
      const message: Record<string, unknown> = { type: "courier.location", topic, orderId: order.id, courierId, lat: fix.lat, lng: fix.lng, at: fix.at.toISOString() };
      if (fix.heading !== undefined) message.heading = fix.heading;
      if (fix.speedMps !== undefined) message.speedMps = fix.speedMps;
      bus.publishTransient(topic, message);

      const approach = approachFor(order, fix, config.APPROACH_METERS);
      if (approach) void this.announceApproach(courierId, order, approach.target, approach.distanceMeters);
      void this.refreshEta(order, fix);
    }
  }

  /** Once per target: the conditional write decides which fix (on whichever instance) announces it. */
  private async announceApproach(courierId: string, order: CarriedOrder, target: "pickup" | "dropoff", distance: number): Promise<void> {
    try {
      if (!(await this.deps.orders.markApproached(order.id, courierId, target))) return;
      const body = { type: "courier.approaching", orderId: order.id, courierId, target, distanceMeters: Math.round(distance) };
      for (const topic of [topics.order(order.id), topics.restaurant(order.restaurantId)]) this.deps.bus.publishTransient(topic, { ...body, topic });
    } catch (err) {
      this.deps.log.warn("announcing an approaching courier failed", { orderId: order.id, err: errorField(err) });
    }
  }

  private async refreshEta(order: CarriedOrder, fix: CourierModel.fix): Promise<void> {
    const now = this.deps.clock.now();
    const minIntervalMs = this.deps.config.ETA_REFRESH_SECONDS * 1000;
    // Cheap local check first; the write re-checks atomically across instances.
    if (order.etaRefreshedAt && now.getTime() - order.etaRefreshedAt.getTime() < minIntervalMs) return;
    const eta = estimateEta({
      status: order.status,
      now: now.getTime(),
      pickup: order.pickup,
      dropoff: order.dropoff,
      prepTimeMinutes: order.prepTimeMinutes,
      courier: { lat: fix.lat, lng: fix.lng },
      history: order.history.map((h) => ({ status: h.status, at: h.at.getTime() })),
      speedMps: this.deps.config.COURIER_SPEED_MPS,
    });
    if (!eta) return;
    try {
      const dates = { pickupAt: new Date(eta.pickupAt), deliveryAt: new Date(eta.deliveryAt) };
      if (!(await this.deps.orders.refreshEta(order.id, dates, now, minIntervalMs))) return;
      const body = { type: "order.eta", orderId: order.id, eta: { pickupAt: dates.pickupAt.toISOString(), deliveryAt: dates.deliveryAt.toISOString() } };
      for (const topic of [topics.order(order.id), topics.restaurant(order.restaurantId)]) this.deps.bus.publishTransient(topic, { ...body, topic });
    } catch (err) {
      this.deps.log.warn("refreshing an ETA failed", { orderId: order.id, err: errorField(err) });
    }
  }
}

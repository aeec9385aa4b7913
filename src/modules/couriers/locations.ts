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
/** How often couriers' latest positions are written (one bulkWrite across couriers); a crash loses at most this much. */
export const POSITION_FLUSH_MS = 200;

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
  /**
   * The orders each courier carries, read once and then kept current by the bus: any change of
   * an order the courier carries, or that names it as courier, drops its entry (read again at
   * its next fix). So a fix costs no read; a change costs at most one.
   */
  private readonly carried = new Map<string, Promise<CarriedOrder[]>>();
  /** Which courier's entry holds each order. */
  private readonly carrierOf = new Map<string, string>();
  private readonly unlisten: () => void;
  private reads = 0;

  constructor(private readonly deps: CourierLocationsDeps) {
    this.tracker = new CourierLocationTracker<CarriedOrder>({
      recordMany: (positions) => deps.couriers.recordPositions(positions),
      activeOrders: (courierId) => this.carriedBy(courierId),
      forward: (courierId, fix, orders) => this.afterFix(courierId, fix, orders),
      clock: deps.clock,
      log: deps.log,
      minIntervalMs: deps.config.COURIER_LOCATION_INTERVAL_MS,
      maxFutureMs: MAX_FIX_FUTURE_MS,
      flushMs: POSITION_FLUSH_MS,
    });
    this.unlisten = deps.bus.onChange((change) => {
      const holder = this.carrierOf.get(change.orderId);
      if (holder !== undefined) this.forget(holder);
      const courierId = change.order.courierId;
      if (courierId) this.forget(courierId);
    });
  }

  /** Database reads of carried orders since start (for tests). */
  get carriedReads(): number {
    return this.reads;
  }

  private carriedBy(courierId: string): Promise<CarriedOrder[]> {
    const cached = this.carried.get(courierId);
    if (cached) return cached;
    this.reads++;
    const loading = this.deps.orders.carriedBy(courierId);
    this.carried.set(courierId, loading);
    loading.then(
      (orders) => {
        if (this.carried.get(courierId) !== loading) return; // a change arrived meanwhile: the next fix reads again
        for (const o of orders) this.carrierOf.set(o.id, courierId);
      },
      () => {
        if (this.carried.get(courierId) === loading) this.carried.delete(courierId);
      },
    );
    return loading;
  }

  private forget(courierId: string): void {
    const entry = this.carried.get(courierId);
    if (!entry) return;
    this.carried.delete(courierId);
    for (const [orderId, holder] of this.carrierOf) if (holder === courierId) this.carrierOf.delete(orderId);
  }

  report(courierId: string, fix: CourierModel.fix): FixVerdict {
    return this.tracker.report(courierId, fix);
  }

  /** Position writes since start (for tests and metrics). */
  get writeCount(): number {
    return this.tracker.writeCount;
  }

  /** Stops, after writing the positions still pending (graceful shutdown). */
  async stop(): Promise<void> {
    this.unlisten();
    await this.tracker.stop();
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
      const mine = await this.deps.orders.markApproached(order.id, courierId, target);
      order.approached[target] = true; // announced, here or elsewhere: the cached copy stops trying
      if (!mine) return;
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
      const written = await this.deps.orders.refreshEta(order.id, dates, now, minIntervalMs);
      order.etaRefreshedAt = now; // written here, or recently elsewhere: the cached copy waits the interval
      if (!written) return;
      const body = { type: "order.eta", orderId: order.id, eta: { pickupAt: dates.pickupAt.toISOString(), deliveryAt: dates.deliveryAt.toISOString() } };
      for (const topic of [topics.order(order.id), topics.restaurant(order.restaurantId)]) this.deps.bus.publishTransient(topic, { ...body, topic });
    } catch (err) {
      this.deps.log.warn("refreshing an ETA failed", { orderId: order.id, err: errorField(err) });
    }
  }
}

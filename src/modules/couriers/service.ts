import type { Clock } from "../../clock";
import { Conflict, InvalidInput, Unprocessable } from "../../errors";
import type { OrderRepository } from "../orders/repository";
import { isDispatchable, type DispatchPolicy } from "./dispatch-policy";
import type { CourierLocations } from "./locations";
import { MAX_FIX_FUTURE_MS } from "./locations";
import type { CourierModel } from "./model";
import type { CourierRepository } from "./repository";

export type CourierServiceDeps = {
  couriers: CourierRepository;
  orders: OrderRepository;
  locations: CourierLocations;
  clock: Clock;
  policy: Pick<DispatchPolicy, "maxActive" | "seenWithinMs">;
};

/** A courier's own state (availability, position, offer) and the admins' map of couriers. */
export class CourierService {
  constructor(private readonly deps: CourierServiceDeps) {}

  async me(courierId: string): Promise<CourierModel.courier> {
    const [record, carried] = await Promise.all([this.deps.couriers.find(courierId), this.deps.orders.countCarried([courierId])]);
    return this.view(record, carried.get(courierId) ?? 0);
  }

  async setAvailability(courierId: string, available: boolean): Promise<CourierModel.courier> {
    const [record, carried] = await Promise.all([this.deps.couriers.setAvailability(courierId, available), this.deps.orders.countCarried([courierId])]);
    return this.view(record, carried.get(courierId) ?? 0);
  }

  /** The same rules as the WebSocket `location` op (one tracker): 409 for a fix older than a known one, 422 for one from the future. */
  reportLocation(courierId: string, body: CourierModel.location): void {
    const at = body.at === undefined ? this.deps.clock.now() : new Date(body.at);
    if (Number.isNaN(at.getTime())) throw new InvalidInput("at is not a time", [{ path: "/at", message: "expected an ISO 8601 time or epoch milliseconds" }]);
    const fix: CourierModel.fix = { lat: body.lat, lng: body.lng, at };
    if (body.heading !== undefined) fix.heading = body.heading;
    if (body.speedMps !== undefined) fix.speedMps = body.speedMps;
    const verdict = this.deps.locations.report(courierId, fix);
    if (verdict === "stale") throw new Conflict("a newer fix is already known; this one was dropped");
    if (verdict === "future") throw new Unprocessable(`fix time is more than ${MAX_FIX_FUTURE_MS / 1000} s ahead of server time`);
  }

  async nearby(query: CourierModel.nearbyQuery): Promise<CourierModel.nearbyPage> {
    const found = await this.deps.couriers.nearby({ point: { lat: query.lat, lng: query.lng }, radiusMeters: query.radius ?? 5000, limit: query.limit ?? 20 });
    const carried = await this.deps.orders.countCarried(found.map((c) => c.id));
    return { items: found.map((c) => ({ ...this.view(c, carried.get(c.id) ?? 0), distanceMeters: c.distanceMeters })) };
  }

  private view(record: CourierModel.record, activeOrders: number, now = this.deps.clock.now()): CourierModel.courier {
    const liveOffer = record.offer && record.offer.expiresAt.getTime() > now.getTime() ? record.offer : null;
    const position = record.position
      ? {
          lat: record.position.lat,
          lng: record.position.lng,
          ...(record.position.heading !== undefined ? { heading: record.position.heading } : {}),
          ...(record.position.speedMps !== undefined ? { speedMps: record.position.speedMps } : {}),
          fixAt: record.position.fixAt.toISOString(),
        }
      : null;
    return {
      id: record.id,
      available: record.available,
      position,
      lastSeenAt: record.lastSeenAt?.toISOString() ?? null,
      activeOrders,
      dispatchable: isDispatchable({ ...record, activeOrders }, now, this.deps.policy),
      offer: liveOffer ? { orderId: liveOffer.orderId, expiresAt: liveOffer.expiresAt.toISOString() } : null,
    };
  }
}

import type { Clock } from "../../clock";
import type { Lease } from "../../db/leases";
import { distanceMeters, type LatLng } from "../../geo";
import { errorField, type Logger } from "../../log";
import type { EventBus } from "../../events/bus";
import { topics } from "../../events/topics";
import { dispatchStateOf } from "../orders/machine";
import type { OrderActorRegistry } from "../orders/registry";
import type { OrderRepository } from "../orders/repository";
import { plan, ReadyTimeEstimator, type BatchedParams, type PlanCourier, type PlanOrder } from "./planning";
import type { CourierRepository } from "./repository";
import { DISPATCH_ACTOR } from "./dispatcher";

const MINUTE = 60_000;
/** Orders and couriers read per round (oldest orders first). */
const MAX_ORDERS = 500;
const MAX_COURIERS = 1000;
/** Minutes at the restaurant and at the door the plan allows for (the MDRP instances' figures). */
const SERVICE = { pickupMinutes: 4, dropoffMinutes: 4 };

export type PlannerDeps = {
  registry: OrderActorRegistry;
  orders: OrderRepository;
  couriers: CourierRepository;
  bus: EventBus;
  clock: Clock;
  log: Logger;
  /** One planner at a time across instances. */
  lease: Lease;
  intervalMs: number;
  offerTtlMs: number;
  seenWithinMs: number;
  /** COURIER_MAX_ACTIVE: orders a courier may carry, bundles included. */
  maxActive: number;
  speedMps: number;
  readyDefaultMinutes: number;
  params: BatchedParams;
};

/**
 * Runs the batched policy (planning/batched.ts) in the server: every interval, on the one
 * instance holding the planning lease, it reads the orders waiting for a courier and the
 * dispatchable couriers, plans, and turns each decision into one offer: the courier is reserved
 * for the whole bundle with one atomic write, then each order records the offer through its
 * machine (refused for an order that moved on meanwhile, which simply leaves the bundle), and
 * the courier gets one `offer` frame listing the orders.
 */
export class Planner {
  private timer: ReturnType<typeof setInterval> | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;
  /** Preparation minutes per restaurant, learnt from accepted → ready_for_pickup durations seen. */
  readonly estimator: ReadyTimeEstimator;
  private readonly learnt = new Set<string>();
  /** The restaurant each courier was last asked to head for (so a hint is not repeated every round). */
  private readonly repositioned = new Map<string, string>();

  constructor(private readonly deps: PlannerDeps) {
    this.estimator = new ReadyTimeEstimator(deps.readyDefaultMinutes);
  }

  start(): void {
    // The interval is in clock time: an accelerated clock (tests, benchmarks) plans as often in its own time.
    this.timer = setInterval(() => void this.tick(), Math.max(1, this.deps.intervalMs / (this.deps.clock.speedup ?? 1)));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.running;
    await this.deps.lease.release().catch(() => undefined);
  }

  private async tick(): Promise<void> {
    if (this.running || this.stopped) return;
    this.running = this.round()
      .catch((err: unknown) => this.deps.log.warn("planning round failed", { err: errorField(err) }))
      .then(() => undefined)
      .finally(() => (this.running = null));
    await this.running;
  }

  /** One planning round: the number of offers made, or null when another instance holds the lease. */
  async round(): Promise<number | null> {
    const { orders, couriers, clock, lease } = this.deps;
    const now = clock.now();
    if (!(await lease.acquire(now, 2 * this.deps.intervalMs + 10_000))) return null;
    const open = await orders.openForDispatch(MAX_ORDERS);
    if (open.length === 0) return 0;
    const free = await couriers.dispatchable(now, new Date(now.getTime() - this.deps.seenWithinMs), MAX_COURIERS);
    const carried = await orders.countCarried(free.map((c) => c.id));
    const nowMin = now.getTime() / MINUTE;

    const planOrders: PlanOrder<LatLng>[] = [];
    for (const o of open) {
      if (!o.pickup) continue;
      const acceptedAt = o.history.find((h) => h.status === "accepted")?.at ?? o.createdAt;
      const readyAt = o.history.find((h) => h.status === "ready_for_pickup")?.at;
      const { snapshot } = await this.deps.registry.inspect(o.id);
      if (dispatchStateOf(snapshot) !== "searching") continue;
      planOrders.push({
        id: o.id,
        restaurantId: o.restaurantId,
        pickup: o.pickup,
        dropoff: o.dropoff,
        placedAt: o.createdAt.getTime() / MINUTE,
        readyAt: readyAt
          ? readyAt.getTime() / MINUTE
          : o.expectedReadyAt
            ? Math.max(o.expectedReadyAt.getTime() / MINUTE, nowMin)
            : this.expectedReady(o.restaurantId, acceptedAt, o.prepTimeMinutes, nowMin),
        excluded: snapshot.context.dispatch.excluded,
      });
    }
    const planCouriers: PlanCourier<LatLng>[] = [];
    for (const c of free) {
      const carrying = carried.get(c.id) ?? 0;
      if (!c.position || carrying >= this.deps.maxActive) continue;
      const at = { lat: c.position.lat, lng: c.position.lng };
      // Its trip's end is not known here: planned as free now, its load counting against COURIER_MAX_ACTIVE.
      planCouriers.push({ id: c.id, position: at, carrying, freeAt: nowMin, freePoint: at, shiftEnd: null });
    }
    const speed = this.deps.speedMps * 60;
    const decisions = plan(
      "batched",
      {
        now: nowMin,
        orders: planOrders,
        couriers: planCouriers,
        geometry: { meters: distanceMeters, travelMinutes: (a, b) => distanceMeters(a, b) / speed },
        service: SERVICE,
      },
      { nearest: { radiusMeters: 0, maxActive: this.deps.maxActive }, batched: { ...this.deps.params, maxBundle: Math.min(this.deps.params.maxBundle, this.deps.maxActive) } },
    );
    this.deps.log.debug("planning round", { orders: planOrders.length, couriers: planCouriers.length, decisions: decisions.length });
    let offers = 0;
    const byId = new Map(planOrders.map((o) => [o.id, o]));
    const courierAt = new Map(planCouriers.map((c) => [c.id, c.position]));
    for (const d of decisions) {
      if (this.stopped) break;
      if (d.kind === "reposition") {
        this.reposition(d.courierId, d.restaurantId, d.orderIds, byId, now);
        continue;
      }
      if (await this.offer(d.courierId, d.orderIds, byId, courierAt.get(d.courierId)!, now)) offers++;
    }
    return offers;
  }

  /**
   * A hint, not an offer: `courier.reposition` on courier:<id> asks a free courier to head for a
   * restaurant whose food will be ready soon; nothing is reserved, and the bundle is offered in a later
   * round (to whoever is then best placed, most often this courier). Sent again only when the target changes.
   */
  private reposition(courierId: string, restaurantId: string, orderIds: string[], orders: Map<string, PlanOrder<LatLng>>, now: Date): void {
    const first = orders.get(orderIds[0]!);
    if (!first || this.repositioned.get(courierId) === restaurantId) return;
    this.repositioned.set(courierId, restaurantId);
    const topic = topics.courier(courierId);
    const readyAt = Math.max(...orderIds.map((id) => orders.get(id)?.readyAt ?? 0));
    this.deps.bus.publishTransient(topic, {
      type: "courier.reposition",
      topic,
      restaurantId,
      pickup: { lat: first.pickup.lat, lng: first.pickup.lng },
      expectedReadyAt: new Date(Math.max(readyAt * MINUTE, now.getTime())).toISOString(),
    });
  }

  /** The restaurant's word (readyInMinutes), else what its recent orders took, else the default; never before now. */
  private expectedReady(restaurantId: string, acceptedAt: Date, prepTimeMinutes: number | null, nowMin: number): number {
    const prep = this.learnt.has(restaurantId) ? this.estimator.prepMinutes(restaurantId) : (prepTimeMinutes ?? this.estimator.prepMinutes(restaurantId));
    return Math.max(acceptedAt.getTime() / MINUTE + prep, nowMin);
  }

  /** Learns a restaurant's preparation time from an order that became ready. */
  observeReady(restaurantId: string, acceptedAt: Date, readyAt: Date): void {
    this.learnt.add(restaurantId);
    this.estimator.observe(restaurantId, (readyAt.getTime() - acceptedAt.getTime()) / MINUTE);
  }

  private async offer(courierId: string, orderIds: string[], orders: Map<string, PlanOrder<LatLng>>, courierAt: LatLng, now: Date): Promise<boolean> {
    const { couriers, registry } = this.deps;
    const expiresAt = new Date(now.getTime() + this.deps.offerTtlMs);
    if (!(await couriers.reserveOffer(courierId, orderIds[0]!, expiresAt, now, orderIds))) return false;
    const offered: string[] = [];
    for (const orderId of orderIds) {
      const { snapshot } = await registry.inspect(orderId);
      if (dispatchStateOf(snapshot) !== "searching") continue;
      try {
        await registry.send(orderId, {
          event: {
            type: "OFFER",
            actor: DISPATCH_ACTOR,
            searchId: snapshot.context.dispatch.searchId,
            courierId,
            expiresAt: expiresAt.getTime(),
            distanceMeters: Math.round(distanceMeters(courierAt, orders.get(orderId)!.pickup)),
            bundle: orderIds,
          },
        });
        offered.push(orderId);
      } catch (err) {
        this.deps.log.debug("bundle order not offered", { orderId, err: errorField(err) });
      }
    }
    if (offered.length === 0) {
      await couriers.releaseOffer(courierId, orderIds[0]!);
      return false;
    }
    if (offered.length < orderIds.length) await couriers.narrowOffer(courierId, expiresAt, offered);
    this.repositioned.delete(courierId);
    const topic = topics.courier(courierId);
    const first = orders.get(offered[0]!)!;
    this.deps.bus.publishTransient(topic, {
      type: "offer",
      topic,
      orderId: offered[0],
      orderIds: offered,
      orders: offered.map((id) => ({ orderId: id, dropoff: orders.get(id)!.dropoff })),
      expiresAt: expiresAt.toISOString(),
      pickup: { lat: first.pickup.lat, lng: first.pickup.lng },
      dropoff: { lat: first.dropoff.lat, lng: first.dropoff.lng },
      distanceMeters: Math.round(distanceMeters(courierAt, first.pickup)),
    });
    return true;
  }
}

import type { Clock } from "../../clock";
import type { TimerDocId, FireOutcome, StoredTimer } from "../../db/timers";
import { isFinalStatus, type Principal } from "../../vocabulary";
import { Conflict, IllegalTransition, NotFound } from "../../errors";
import { errorField, type Logger } from "../../log";
import type { EventBus } from "../../events/bus";
import { topics } from "../../events/topics";
import { dispatchStateOf, statusOf, timerEvent, type OrderActor, type TimerKind } from "../orders/machine";
import type { OrderModel } from "../orders/model";
import type { CommittedTransition, OrderActorRegistry } from "../orders/registry";
import type { OrderRepository } from "../orders/repository";
import type { RestaurantRepository } from "../restaurants/repository";
import { CourierAtLimit } from "./capacity";
import type { CourierCapacityPort } from "../orders/courier-slots";
import { decide, offerMessage, type Candidate, type DispatchPolicy, type RevokeReason } from "./dispatch-policy";
import type { CourierRepository } from "./repository";

/** Who dispatch events are by, in history entries. */
export const DISPATCH_ACTOR: OrderActor = { role: "system", id: "dispatch" };

/** Couriers read per search (nearest first); the choice then drops busy ones. */
const CANDIDATES_PER_SEARCH = 50;

export type DispatcherDeps = {
  registry: OrderActorRegistry;
  orders: OrderRepository;
  couriers: CourierRepository;
  restaurants: RestaurantRepository;
  bus: EventBus;
  clock: Clock;
  log: Logger;
  policy: DispatchPolicy;
  /** `nearest`: a search per order as it starts; `batched`: the planner (planner.ts) makes the offers. */
  mode: "nearest" | "batched";
  /** COURIER_MAX_ACTIVE across instances: a bundle's slots are taken all or none before it is accepted. */
  capacity?: CourierCapacityPort;
};

function isRefusal(err: unknown): boolean {
  return err instanceof IllegalTransition || err instanceof Conflict || err instanceof NotFound;
}

/**
 * Runs automatic dispatch. It follows the transitions this instance commits: when an order
 * starts a search it picks the nearest dispatchable courier (dispatch-policy.ts), reserves that
 * courier atomically and reports OFFER to the order's actor (or NO_COURIER); when an offer is
 * made it tells the courier on `courier:<id>`; when an offer ends it frees the courier.
 * Everything it decides goes through the order's machine, so a stale search (another instance
 * moved the order on) is refused there and undone here.
 */
export class Dispatcher {
  private unlisten: (() => void) | null = null;
  private readonly inflight = new Set<Promise<void>>();
  private stopped = false;

  constructor(private readonly deps: DispatcherDeps) {}

  start(): void {
    this.unlisten = this.deps.registry.onCommit((c) => this.afterCommit(c));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unlisten?.();
    await Promise.all([...this.inflight]);
  }

  /** POST /orders/:id/offer/accept: the offered courier takes the order (200 order). */
  async accept(courier: Principal, orderId: string): Promise<OrderModel.order> {
    const actor = { role: courier.role, id: courier.id };
    // A bundle is accepted whole: its other orders with this one (each its own compare-and-set).
    const others = await this.otherBundleOrders(courier.id, orderId);
    // The whole bundle counts against COURIER_MAX_ACTIVE: its slots all or none (409 when it does not fit).
    if (others.length) await this.deps.capacity?.reserve(courier.id, [orderId, ...others]);
    let accepted: OrderModel.order;
    try {
      accepted = await this.deps.registry.send(orderId, { event: { type: "OFFER_ACCEPT", actor } });
    } catch (err) {
      if (!isRefusal(err) || err instanceof CourierAtLimit) {
        if (others.length) await this.deps.capacity?.release(courier.id, [orderId, ...others]);
        throw err;
      }
      const { stored } = await this.deps.registry.inspect(orderId);
      if (others.length) await this.deps.capacity?.release(courier.id, stored.order.courierId === courier.id ? others : [orderId, ...others]);
      // Accepting twice is a retry.
      if (stored.order.courierId === courier.id) return stored.order;
      throw await this.whyNoOffer(courier, orderId);
    }
    for (const other of others) {
      try {
        await this.deps.registry.send(other, { event: { type: "OFFER_ACCEPT", actor } });
      } catch (err) {
        // Cancelled or claimed meanwhile: it leaves the bundle (it has one courier, or none, never
        // two) and frees its slot.
        await this.deps.capacity?.release(courier.id, [other]);
        if (!isRefusal(err)) throw err;
      }
    }
    return accepted;
  }

  /** The other orders of the bundle the courier holds with `orderId` ([] for a single order). */
  private async otherBundleOrders(courierId: string, orderId: string): Promise<string[]> {
    // Only the planner makes bundles: the per-order flow pays no extra read.
    if (this.deps.mode !== "batched") return [];
    const bundle = await this.deps.couriers.offeredOrders(courierId, this.deps.clock.now());
    return bundle.includes(orderId) ? bundle.filter((id) => id !== orderId) : [];
  }

  /** POST /orders/:id/offer/decline: the offered courier passes; the order goes to the next one. */
  async decline(courier: Principal, orderId: string): Promise<void> {
    const actor = { role: courier.role, id: courier.id };
    const others = await this.otherBundleOrders(courier.id, orderId);
    try {
      await this.deps.registry.send(orderId, { event: { type: "OFFER_DECLINE", actor }, reason: "declined" });
    } catch (err) {
      if (!isRefusal(err)) throw err;
      throw await this.whyNoOffer(courier, orderId);
    }
    for (const other of others) {
      try {
        await this.deps.registry.send(other, { event: { type: "OFFER_DECLINE", actor }, reason: "declined" });
      } catch (err) {
        if (!isRefusal(err)) throw err;
      }
    }
  }

  /** Fires one durable timer of an order through its actor (the sweeper's callback). */
  async fireTimer(id: TimerDocId, timer: StoredTimer): Promise<FireOutcome> {
    const { event, reason } = timerEvent({ kind: timer.kind as TimerKind, ref: timer.ref });
    try {
      await this.deps.registry.send(String(id), { event, ...(reason !== undefined ? { reason } : {}) });
      return "fired";
    } catch (err) {
      if (isRefusal(err)) return "stale";
      throw err;
    }
  }

  /** 404 for a courier this order was never offered to (it may not see it), 409 for one whose offer is over. */
  private async whyNoOffer(courier: Principal, orderId: string): Promise<Error> {
    const { stored, snapshot } = await this.deps.registry.inspect(orderId);
    if (stored.order.courierId === courier.id) return new Conflict(`you already accepted order ${orderId}`);
    if (snapshot.context.dispatch.offeredTo.includes(courier.id)) {
      return new Conflict(`the offer of order ${orderId} is no longer open (it expired, was declined or went to someone else)`);
    }
    return new NotFound(`order ${orderId} not found`);
  }

  private track(work: Promise<void>): void {
    const p = work.catch((err: unknown) => this.deps.log.warn("dispatch step failed", { err: errorField(err) }));
    this.inflight.add(p);
    void p.finally(() => this.inflight.delete(p));
  }

  private afterCommit({ orderId, prev, next, stored, event }: CommittedTransition): void {
    const before = prev.context.dispatch;
    const after = next.context.dispatch;
    const prevOffer = before.offer;
    const nextOffer = after.offer;

    if (prevOffer && nextOffer?.attempt !== prevOffer.attempt) {
      this.track(this.deps.couriers.releaseOffer(prevOffer.courierId, orderId));
      if (next.context.courierId !== prevOffer.courierId && event.type !== "OFFER_DECLINE") {
        const reason: RevokeReason = isFinalStatus(statusOf(next)) ? "cancelled" : event.type === "OFFER_EXPIRE" ? "expired" : "taken";
        const topic = topics.courier(prevOffer.courierId);
        this.deps.bus.publishTransient(topic, { type: "offer.revoked", topic, orderId, reason });
      }
    }

    // A planner's bundle goes out as one frame from the planner, not one per order.
    const bundled = event.type === "OFFER" && "bundle" in event && event.bundle !== undefined;
    if (nextOffer && nextOffer.attempt !== prevOffer?.attempt && !bundled) {
      const topic = topics.courier(nextOffer.courierId);
      const publish = (pickup: { lat: number; lng: number }) =>
        this.deps.bus.publishTransient(
          topic,
          offerMessage(topic, { orderId, expiresAt: new Date(nextOffer.expiresAt), pickup, dropoff: stored.order.deliveryLocation, distanceMeters: nextOffer.distanceMeters }),
        );
      if (stored.pickup) publish(stored.pickup);
      else this.track(this.pickupOf(stored.order.restaurantId).then((pickup) => pickup && publish(pickup)).then(() => undefined));
    }

    const searching = dispatchStateOf(next) === "searching";
    if (this.deps.mode === "nearest" && searching && !this.stopped && (dispatchStateOf(prev) !== "searching" || before.searchId !== after.searchId)) {
      this.track(this.search(orderId, after.searchId));
    }
  }

  /** Orders stored before the pickup point was copied onto them: the restaurant's location. */
  private async pickupOf(restaurantId: string): Promise<{ lat: number; lng: number } | null> {
    return (await this.deps.restaurants.findById(restaurantId))?.location ?? null;
  }

  /** One search: offer the order to the nearest courier that can be reserved, or report that none can. */
  private async search(orderId: string, searchId: number): Promise<void> {
    const { registry, couriers, orders, policy } = this.deps;
    const { stored, snapshot } = await registry.inspect(orderId);
    if (dispatchStateOf(snapshot) !== "searching" || snapshot.context.dispatch.searchId !== searchId) return;
    const ctx = snapshot.context.dispatch;
    const pickup = stored.pickup ?? (await this.pickupOf(stored.order.restaurantId));
    const now = this.deps.clock.now();

    let candidates: Candidate[] = [];
    if (pickup && ctx.roundAttempts < policy.maxAttempts) {
      const near = await couriers.nearby({
        point: pickup,
        radiusMeters: policy.radiusMeters,
        limit: CANDIDATES_PER_SEARCH,
        dispatchable: { now, seenSince: new Date(now.getTime() - policy.seenWithinMs), exclude: ctx.excluded, maxActive: policy.maxActive },
      });
      const carried = await orders.countCarried(near.map((c) => c.id));
      candidates = near.map((c) => ({
        id: c.id,
        available: c.available,
        lastSeenAt: c.lastSeenAt,
        offer: c.offer,
        distanceMeters: c.distanceMeters,
        activeOrders: carried.get(c.id) ?? 0,
      }));
    }
    const decision = decide(ctx, candidates, now, policy);
    if (decision.kind === "offer") {
      for (const courier of decision.ranked) {
        if (this.stopped) return;
        if (!(await couriers.reserveOffer(courier.id, orderId, decision.expiresAt, now))) continue; // taken meanwhile
        try {
          await registry.send(orderId, {
            event: {
              type: "OFFER",
              actor: DISPATCH_ACTOR,
              searchId,
              courierId: courier.id,
              expiresAt: decision.expiresAt.getTime(),
              distanceMeters: Math.round(courier.distanceMeters),
            },
          });
        } catch (err) {
          // The order moved on (claimed, cancelled, another search): free the courier again.
          await couriers.releaseOffer(courier.id, orderId);
          if (!isRefusal(err)) throw err;
        }
        return;
      }
    }
    const reason = decision.kind === "wait" ? (pickup ? decision.reason : "no_pickup_point") : "no_courier";
    const retryAt = decision.kind === "wait" ? decision.retryAt : new Date(now.getTime() + policy.retryMs);
    try {
      await registry.send(orderId, { event: { type: "NO_COURIER", actor: DISPATCH_ACTOR, searchId, retryAt: retryAt.getTime() }, reason });
    } catch (err) {
      if (!isRefusal(err)) throw err;
    }
  }
}

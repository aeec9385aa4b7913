import type { Clock } from "../../clock";
import { Conflict } from "../../errors";
import type { Logger } from "../../log";
import { isFinalStatus } from "../../vocabulary";
import type { CourierCapacityPort } from "../orders/courier-slots";
import type { OrderRepository } from "../orders/repository";
import type { CarrySlot, CourierRepository } from "./repository";

/** 409: the courier already carries COURIER_MAX_ACTIVE orders (or this bundle would take it past). */
export class CourierAtLimit extends Conflict {}

/**
 * A slot taken for an order that is still unassigned is kept this long before a reconciliation
 * may free it: the taker renews it just before each compare-and-set of the assignment, so only
 * a taker that died (or a commit delayed longer than this) leaves one that old.
 */
export const PENDING_SLOT_GRACE_MS = 30_000;

export type CourierCapacityDeps = {
  couriers: CourierRepository;
  orders: Pick<OrderRepository, "holdersOf" | "activeForCourier">;
  clock: Clock;
  log: Logger;
  maxActive: number;
};

/**
 * COURIER_MAX_ACTIVE, held on every path that gives a courier an order (offer accept, claim,
 * a planned bundle), atomically across instances: before an assignment is committed the
 * courier's slot for that order is taken with one conditional write on its document
 * (repository.takeSlots); the slot is freed when the order ends (or if the assignment is not
 * committed). Slots left behind by a crash are found by `reconcile` against the orders
 * themselves the next time the courier is refused, so none is lost for good. docs/dispatch.md.
 */
export class CourierCapacity implements CourierCapacityPort {
  constructor(private readonly deps: CourierCapacityDeps) {}

  /**
   * Takes the courier's slots for `orderIds` (all or none), or throws CourierAtLimit. Taking a
   * slot it already holds renews it. Call before committing the assignments; release the slots
   * of those that are then not committed.
   */
  async reserve(courierId: string, orderIds: string[]): Promise<"taken" | "held"> {
    const { couriers, maxActive } = this.deps;
    if (orderIds.length > maxActive) throw this.refusal(courierId, orderIds);
    // Orders assigned before slots existed (or a courier never seen here) are counted first.
    if ((await couriers.slots(courierId)) === null) await this.reconcile(courierId);
    let outcome = await couriers.takeSlots(courierId, orderIds, maxActive, this.deps.clock.now());
    if (outcome === "full" && (await this.reconcile(courierId))) {
      outcome = await couriers.takeSlots(courierId, orderIds, maxActive, this.deps.clock.now());
    }
    if (outcome === "full") throw this.refusal(courierId, orderIds);
    return outcome;
  }

  /** Frees the courier's slots of these orders (they ended, or their assignment was not committed). */
  release(courierId: string, orderIds: string[]): Promise<void> {
    return this.deps.couriers.releaseSlots(courierId, orderIds);
  }

  /**
   * Makes the courier's slots agree with the orders: a slot is kept while its order is assigned
   * to the courier and not final, or unassigned and taken less than PENDING_SLOT_GRACE_MS ago
   * (an assignment in flight); every order assigned to it and not final gets a slot. Written
   * only if the slots did not change meanwhile. True when it freed a slot.
   */
  async reconcile(courierId: string): Promise<boolean> {
    const { couriers, orders } = this.deps;
    for (let attempt = 0; attempt < 3; attempt++) {
      const before = await couriers.slots(courierId);
      const slots = before ?? [];
      const [holders, carried] = await Promise.all([orders.holdersOf(slots.map((s) => s.orderId)), orders.activeForCourier(courierId)]);
      const now = this.deps.clock.now();
      const keep: CarrySlot[] = slots.filter((slot) => {
        const order = holders.get(slot.orderId);
        if (!order || isFinalStatus(order.status)) return false;
        if (order.courierId === courierId) return true;
        return order.courierId === null && now.getTime() - slot.at.getTime() < PENDING_SLOT_GRACE_MS;
      });
      const kept = new Set(keep.map((s) => s.orderId));
      const next = [...keep, ...carried.filter((o) => !kept.has(o.id)).map((o) => ({ orderId: o.id, at: now }))];
      const freed = slots.filter((s) => !next.some((n) => n.orderId === s.orderId));
      if (before !== null && freed.length === 0 && next.length === slots.length) return false;
      if (await couriers.replaceSlots(courierId, before, next)) {
        if (freed.length) this.deps.log.warn("freed courier slots of orders it no longer carries", { courierId, orderIds: freed.map((s) => s.orderId) });
        return freed.length > 0;
      }
    }
    return false;
  }

  private refusal(courierId: string, orderIds: string[]): CourierAtLimit {
    const what = orderIds.length === 1 ? `order ${orderIds[0]}` : `${orderIds.length} more orders`;
    return new CourierAtLimit(`courier ${courierId} already carries the most orders allowed (COURIER_MAX_ACTIVE ${this.deps.maxActive}); it cannot take ${what} now`);
  }
}

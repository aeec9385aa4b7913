import { isFinalStatus } from "../../vocabulary";
import { errorField, type Logger } from "../../log";
import type { OrderRepository } from "./repository";

/**
 * COURIER_MAX_ACTIVE across instances (modules/couriers/capacity.ts implements it): a courier's
 * slot for an order is reserved before an assignment is committed, and released when the order
 * ends or the assignment is not committed. `reserve` throws a 409 when the courier is full.
 */
export type CourierCapacityPort = {
  /** "taken" when this call took the slot, "held" when it was already there (another attempt's, or a bundle's). */
  reserve(courierId: string, orderIds: string[]): Promise<"taken" | "held">;
  release(courierId: string, orderIds: string[]): Promise<void>;
};

/** A held slot is renewed before a compare-and-set attempt when older than this (the grace to free one is 30 s). */
const SLOT_RENEW_MS = 5_000;

/**
 * The courier slot one move reserved (capacity): whether this move took it (only then may it
 * give it back) and whether its assignment was committed.
 */
export type HeldSlot = { courierId: string | null; atMs: number; took: boolean; committed: boolean };

export function noSlot(): HeldSlot {
  return { courierId: null, atMs: 0, took: false, committed: false };
}

type SlotDeps = { capacity?: CourierCapacityPort; repo: Pick<OrderRepository, "findById">; log: Logger };

/** The registry's side of courier slots: reserve before an assignment, settle after the move. */
export class CourierSlots {
  constructor(private readonly deps: SlotDeps) {}

  /**
   * Whether a move that gives the order to `taker` must first reserve (or renew) its slot:
   * renewed before later attempts so no reconciliation takes it from an assignment in flight.
   */
  needsReservation(slot: HeldSlot, taker: string): boolean {
    return this.deps.capacity !== undefined && (slot.courierId !== taker || Date.now() - slot.atMs > SLOT_RENEW_MS);
  }

  /** Reserves `taker`'s slot for the order (one conditional write; 409 when it is full), giving back one this move took for another courier. */
  async reserve(slot: HeldSlot, taker: string, orderId: string): Promise<void> {
    const capacity = this.deps.capacity;
    if (!capacity) return;
    const tookBefore = slot.took && slot.courierId === taker;
    if (slot.courierId !== null && slot.courierId !== taker && slot.took) await this.releaseUnlessHeld(slot.courierId, orderId);
    slot.courierId = null;
    const outcome = await capacity.reserve(taker, [orderId]);
    slot.took = outcome === "taken" || tookBefore;
    slot.courierId = taker;
    slot.atMs = Date.now();
  }

  /** The courier already holds the order (a retried claim): its slot stays. */
  keepHeld(slot: HeldSlot, courierId: string): void {
    if (slot.courierId === courierId) slot.committed = true;
  }

  /**
   * After a commit: the assigned courier keeps its slot, and the previous carrier's slot goes
   * back when the order ended.
   */
  async committed(slot: HeldSlot, orderId: string, committed: { courierId: string | null; final: boolean }, carrier: string | null): Promise<void> {
    if (slot.courierId !== null && committed.courierId === slot.courierId) {
      slot.committed = true;
      // Another attempt took this slot; if it gave it back meanwhile (it lost and read the order
      // before this commit), take it again so the courier's count stays right.
      if (!slot.took) await this.ensure(slot.courierId, orderId);
    }
    if (carrier !== null && committed.final) await this.release(carrier, orderId);
  }

  /**
   * When the move is over: a slot it took for an assignment it did not commit goes back, unless
   * the order is the courier's anyway (the same courier's accept or claim won on another instance).
   */
  async settle(slot: HeldSlot, orderId: string): Promise<void> {
    if (slot.courierId !== null && slot.took && !slot.committed) await this.releaseUnlessHeld(slot.courierId, orderId);
  }

  private async ensure(courierId: string, orderId: string): Promise<void> {
    try {
      await this.deps.capacity?.reserve(courierId, [orderId]);
    } catch (err) {
      this.deps.log.error("a committed assignment found no slot for its courier", { orderId, courierId, err: errorField(err) });
    }
  }

  /** Frees the courier's slot of an order not assigned to it (read now); a held one stays. */
  private async releaseUnlessHeld(courierId: string, orderId: string): Promise<void> {
    try {
      const now = await this.deps.repo.findById(orderId);
      if (now && now.order.courierId === courierId && !isFinalStatus(now.order.status)) return;
    } catch {
      return; // unreadable: leave it to the reconciliation rather than free a slot that may be in use
    }
    await this.release(courierId, orderId);
  }

  /** Frees a courier's slot; a failure is left to the next reconciliation (capacity.ts) rather than failing the move. */
  private async release(courierId: string, orderId: string): Promise<void> {
    try {
      await this.deps.capacity?.release(courierId, [orderId]);
    } catch (err) {
      this.deps.log.warn("releasing a courier slot failed; the next reconciliation frees it", { orderId, courierId, err: errorField(err) });
    }
  }
}

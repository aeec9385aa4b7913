import type { Order, OrderParties } from "../events/order";
import type { PositionFix, Role } from "../vocabulary";

/**
 * What realtime reads of the features, declared here and wired by the composition root
 * (app.ts), so realtime/ imports no feature and no repository class.
 */

/** An order with who takes part in it. */
export type PartiedOrder = OrderParties & { order: Order };

/** The reads topic authorisation needs. */
export type AccessSources = {
  findOrder(id: string): Promise<PartiedOrder | null>;
  findRestaurant(id: string): Promise<{ ownerId: string } | null>;
  findUser(id: string): Promise<{ role: Role } | null>;
};

/** The reads subscribe replay and reconciliation need, besides access checks. */
export type RealtimeSources = AccessSources & {
  /** Orders of a restaurant or a courier changed at or after `since`, least recently changed first. */
  ordersChangedSince(scope: { restaurantId: string } | { courierId: string }, since: Date, limit: number): Promise<Order[]>;
  /** The current version of each of these orders (missing ones are absent). */
  orderVersions(ids: string[]): Promise<Map<string, number>>;
  /** Id, version and last change of a restaurant's or courier's orders changed at or after `since` (no history read). */
  versionsChangedSince(scope: { restaurantId: string } | { courierId: string }, since: Date, limit: number): Promise<Array<{ id: string; version: number; updatedAt: Date }>>;
};

/** Where the `location` op hands a courier's fix (the same stream as PUT /couriers/me/location). */
export type CourierPositions = {
  report(courierId: string, fix: PositionFix): "accepted" | "stale" | "future";
  /** Fixes further than this ahead of server time are refused. */
  readonly maxFutureMs: number;
};

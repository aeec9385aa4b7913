import { t } from "elysia";
import { actorRole, latLng, literalUnion, orderStatus, type Principal } from "../vocabulary";

/**
 * An order as the API shows it (API.md, Orders) and as every change carries it: the part of
 * the orders' model that the event contract, realtime and dispatch read too.
 */

export const orderActor = t.Object({ role: actorRole, id: t.String() });
export type OrderActor = typeof orderActor.static;

export const historyEntry = t.Object({
  seq: t.Integer({ minimum: 1 }),
  status: orderStatus,
  event: t.String(),
  at: t.String({ format: "date-time" }),
  by: orderActor,
  reason: t.Optional(t.String()),
});
export type HistoryEntry = typeof historyEntry.static;

export const orderItem = t.Object({
  menuItemId: t.String(),
  name: t.String(),
  quantity: t.Integer({ minimum: 1, maximum: 50 }),
  unitPriceCents: t.Integer({ minimum: 1 }),
});

/** Where finding a courier stands (additive to API.md; see docs/dispatch.md). */
export const dispatchView = t.Object({
  state: literalUnion(["idle", "searching", "offered", "assigned"]),
  /** Offers made so far. */
  attempts: t.Integer({ minimum: 0 }),
});
export type DispatchView = typeof dispatchView.static;

/** Estimated pickup and delivery times (additive to API.md); null once they no longer apply. */
export const orderEta = t.Object({ pickupAt: t.String({ format: "date-time" }), deliveryAt: t.String({ format: "date-time" }) });

export const order = t.Object({
  id: t.String(),
  status: orderStatus,
  version: t.Integer({ minimum: 1 }),
  customerId: t.String(),
  restaurantId: t.String(),
  courierId: t.Union([t.String(), t.Null()]),
  items: t.Array(orderItem),
  subtotalCents: t.Integer({ minimum: 0 }),
  deliveryFeeCents: t.Integer({ minimum: 0 }),
  totalCents: t.Integer({ minimum: 0 }),
  deliveryLocation: latLng,
  notes: t.Optional(t.String()),
  createdAt: t.String({ format: "date-time" }),
  updatedAt: t.String({ format: "date-time" }),
  history: t.Array(historyEntry),
  dispatch: t.Optional(dispatchView),
  eta: t.Optional(t.Union([orderEta, t.Null()])),
});
export type Order = typeof order.static;

/** Who takes part in an order: its customer, its restaurant's owner, its courier. */
export type OrderParties = { order: Pick<Order, "customerId" | "courierId">; restaurantOwnerId: string };

/** Whether `who` takes part in the order (and so may see it and follow it); admins take part in all. */
export function isParty(who: Principal, parties: OrderParties): boolean {
  switch (who.role) {
    case "admin":
      return true;
    case "customer":
      return parties.order.customerId === who.id;
    case "restaurant":
      return parties.restaurantOwnerId === who.id;
    case "courier":
      return parties.order.courierId === who.id;
  }
}

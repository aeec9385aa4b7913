import { t } from "elysia";

/** Order schemas, as in API.md (Orders). Types derive from them. */
export namespace OrderModel {
  export const statuses = ["placed", "accepted", "preparing", "ready_for_pickup", "picked_up", "delivered", "cancelled", "rejected"] as const;
  export const finalStatuses = ["delivered", "cancelled", "rejected"] as const;

  export const status = t.Union(statuses.map((s) => t.Literal(s)));
  export type status = (typeof statuses)[number];

  export const role = t.Union([t.Literal("customer"), t.Literal("restaurant"), t.Literal("courier"), t.Literal("admin"), t.Literal("system")]);

  export const actor = t.Object({ role, id: t.String() });
  export type actor = typeof actor.static;

  export const latLng = t.Object({
    lat: t.Number({ minimum: -90, maximum: 90 }),
    lng: t.Number({ minimum: -180, maximum: 180 }),
  });
  export type latLng = typeof latLng.static;

  export const historyEntry = t.Object({
    seq: t.Integer({ minimum: 1 }),
    status,
    event: t.String(),
    at: t.String({ format: "date-time" }),
    by: actor,
    reason: t.Optional(t.String()),
  });
  export type historyEntry = typeof historyEntry.static;

  export const item = t.Object({
    menuItemId: t.String(),
    name: t.String(),
    quantity: t.Integer({ minimum: 1, maximum: 50 }),
    unitPriceCents: t.Integer({ minimum: 1 }),
  });

  export const order = t.Object({
    id: t.String(),
    status,
    version: t.Integer({ minimum: 1 }),
    customerId: t.String(),
    restaurantId: t.String(),
    courierId: t.Union([t.String(), t.Null()]),
    items: t.Array(item),
    subtotalCents: t.Integer({ minimum: 0 }),
    deliveryFeeCents: t.Integer({ minimum: 0 }),
    totalCents: t.Integer({ minimum: 0 }),
    deliveryLocation: latLng,
    notes: t.Optional(t.String()),
    createdAt: t.String({ format: "date-time" }),
    updatedAt: t.String({ format: "date-time" }),
    history: t.Array(historyEntry),
  });
  export type order = typeof order.static;
}

import { t } from "elysia";

/** Order schemas, as in API.md (Orders). Types derive from them. */
export namespace OrderModel {
  export const statuses = ["placed", "accepted", "preparing", "ready_for_pickup", "picked_up", "delivered", "cancelled", "rejected"] as const;
  export const finalStatuses = ["delivered", "cancelled", "rejected"] as const;

  // Spelled out: a mapped array would type as `never` (TypeBox needs a tuple).
  export const status = t.Union([
    t.Literal("placed"),
    t.Literal("accepted"),
    t.Literal("preparing"),
    t.Literal("ready_for_pickup"),
    t.Literal("picked_up"),
    t.Literal("delivered"),
    t.Literal("cancelled"),
    t.Literal("rejected"),
  ]);
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

  /** Where finding a courier stands (additive to API.md; see docs/dispatch.md). */
  export const dispatchView = t.Object({
    state: t.Union([t.Literal("idle"), t.Literal("searching"), t.Literal("offered"), t.Literal("assigned")]),
    /** Offers made so far. */
    attempts: t.Integer({ minimum: 0 }),
  });
  export type dispatchView = typeof dispatchView.static;

  /** Estimated pickup and delivery times (additive to API.md); null once they no longer apply. */
  export const eta = t.Object({ pickupAt: t.String({ format: "date-time" }), deliveryAt: t.String({ format: "date-time" }) });
  export type eta = typeof eta.static;

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
    dispatch: t.Optional(dispatchView),
    eta: t.Optional(t.Union([eta, t.Null()])),
  });
  export type order = typeof order.static;

  export const MAX_PAGE_SIZE = 100;

  export const id = t.String({ minLength: 1, maxLength: 64 });
  export const params = t.Object({ id });

  export const create = t.Object(
    {
      restaurantId: id,
      items: t.Array(
        t.Object({ menuItemId: t.String({ minLength: 1, maxLength: 64 }), quantity: t.Integer({ minimum: 1, maximum: 50 }) }, { additionalProperties: false }),
        { minItems: 1, maxItems: 100 },
      ),
      deliveryLocation: latLng,
      notes: t.Optional(t.String({ maxLength: 1000 })),
    },
    { additionalProperties: false },
  );
  export type create = typeof create.static;

  // additionalProperties: otherwise Elysia strips the other headers (Authorization among them).
  export const createHeaders = t.Object({
    "idempotency-key": t.Optional(
      t.String({ minLength: 1, maxLength: 255, pattern: "^[\\x21-\\x7E]+$", description: "repeat a request safely (IETF Idempotency-Key draft; a Structured Field String such as \"k-1\", or a bare token): same key + customer + body → the same order (200); another body → 422; while the first is in flight → 409. Keys expire after IDEMPOTENCY_KEY_TTL_SECONDS (default 24 h)" }),
    ),
  }, { additionalProperties: true });

  export const patch = t.Object(
    { status, reason: t.Optional(t.String({ minLength: 1, maxLength: 500 })) },
    { additionalProperties: false },
  );
  export type patch = typeof patch.static;

  export const patchHeaders = t.Object({
    "if-match": t.Optional(t.String({ pattern: '^(W/)?"?[0-9]{1,15}"?$', description: "the order version the change applies to; 412 when it is not the current one" })),
  }, { additionalProperties: true });

  export const listQuery = t.Object({
    status: t.Optional(status),
    restaurantId: t.Optional(t.String({ minLength: 1, maxLength: 64, description: "only this restaurant's orders (within those the caller takes part in)" })),
    limit: t.Optional(t.Integer({ minimum: 1, maximum: MAX_PAGE_SIZE, default: 20 })),
    cursor: t.Optional(t.String({ minLength: 1, maxLength: 512, description: "nextCursor of the previous page" })),
  });
  export type listQuery = typeof listQuery.static;

  export const page = t.Object({ items: t.Array(order), nextCursor: t.Union([t.String(), t.Null()]) });
  export type page = typeof page.static;
}

import { t } from "elysia";
import { orderActor, order as orderSchema, type DispatchView, type HistoryEntry, type Order, type OrderActor } from "../../events/order";
import { latLng, orderStatus, type LatLng, type OrderStatus } from "../../vocabulary";

/** Order schemas, as in API.md (Orders). Types derive from them; the order itself is in events/order.ts. */
export namespace OrderModel {
  export const status = orderStatus;
  export type status = OrderStatus;

  export const actor = orderActor;
  export type actor = OrderActor;

  export type latLng = LatLng;
  export type historyEntry = HistoryEntry;
  export type dispatchView = DispatchView;

  export const order = orderSchema;
  export type order = Order;

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
    {
      status,
      reason: t.Optional(t.String({ minLength: 1, maxLength: 500 })),
      /** With `accepted` or `preparing`: the restaurant's word on when the food is ready (dispatch plans on it). */
      readyInMinutes: t.Optional(t.Integer({ minimum: 0, maximum: 600, description: "with accepted or preparing: minutes until the food is ready (dispatch plans on it)" })),
    },
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

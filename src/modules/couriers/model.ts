import { t } from "elysia";
import { latitude, longitude, type PositionFix } from "../../vocabulary";

/** Couriers: positions (issue 4), availability and dispatch (docs/dispatch.md). */
export namespace CourierModel {
  export const position = t.Object({
    courierId: t.String(),
    lat: latitude,
    lng: longitude,
    heading: t.Optional(t.Number({ minimum: 0, maximum: 360 })),
    speedMps: t.Optional(t.Number({ minimum: 0 })),
    /** When the device took the fix. */
    fixAt: t.String({ format: "date-time" }),
    /** When the server received it. */
    lastSeenAt: t.String({ format: "date-time" }),
  });
  export type position = typeof position.static;

  /** One fix as a courier reports it, with its time already resolved. */
  export type fix = PositionFix;

  const latLngFields = { lat: latitude, lng: longitude };

  /** The offer a courier holds now (at most one). */
  export const offer = t.Object({ orderId: t.String(), expiresAt: t.String({ format: "date-time" }) });
  export type offer = typeof offer.static;

  /** A courier as GET /couriers/me and the admin list show it. */
  export const courier = t.Object({
    id: t.String(),
    available: t.Boolean(),
    position: t.Union([
      t.Object({
        ...latLngFields,
        heading: t.Optional(t.Number({ minimum: 0, maximum: 360 })),
        speedMps: t.Optional(t.Number({ minimum: 0 })),
        fixAt: t.String({ format: "date-time" }),
      }),
      t.Null(),
    ]),
    lastSeenAt: t.Union([t.String({ format: "date-time" }), t.Null()]),
    /** Orders assigned to it and not final. */
    activeOrders: t.Integer({ minimum: 0 }),
    /** Whether it would get an offer now: available, seen recently, below COURIER_MAX_ACTIVE, no live offer. */
    dispatchable: t.Boolean(),
    offer: t.Union([offer, t.Null()]),
  });
  export type courier = typeof courier.static;

  export const availability = t.Object({ available: t.Boolean() }, { additionalProperties: false });
  export type availability = typeof availability.static;

  /** PUT /couriers/me/location: the same fix as the WebSocket `location` op. */
  export const location = t.Object({
    ...latLngFields,
    heading: t.Optional(t.Number({ minimum: 0, maximum: 360 })),
    speedMps: t.Optional(t.Number({ minimum: 0, maximum: 150 })),
    /** When the fix was taken: ISO 8601 or epoch ms. Server time when absent. */
    at: t.Optional(t.Union([t.String({ minLength: 1, maxLength: 40 }), t.Integer({ minimum: 0 })])),
  });
  export type location = typeof location.static;

  export const locationAccepted = t.Object({ accepted: t.Literal(true) });

  export const MAX_RADIUS_METERS = 50_000;

  export const nearbyQuery = t.Object({
    lat: latitude,
    lng: longitude,
    radius: t.Optional(t.Number({ exclusiveMinimum: 0, maximum: MAX_RADIUS_METERS, default: 5000, description: "meters" })),
    limit: t.Optional(t.Integer({ minimum: 1, maximum: 100, default: 20 })),
  });
  export type nearbyQuery = typeof nearbyQuery.static;

  export const nearbyItem = t.Composite([courier, t.Object({ distanceMeters: t.Number({ minimum: 0 }) })]);
  export type nearbyItem = typeof nearbyItem.static;

  export const nearbyPage = t.Object({ items: t.Array(nearbyItem) });
  export type nearbyPage = typeof nearbyPage.static;

  /** A courier as the repository returns it (domain times as Dates). */
  export type record = {
    id: string;
    available: boolean;
    position: { lat: number; lng: number; heading?: number; speedMps?: number; fixAt: Date } | null;
    lastSeenAt: Date | null;
    offer: { orderId: string; expiresAt: Date } | null;
  };
}

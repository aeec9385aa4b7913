import { t } from "elysia";

/** A courier's last known position (issue 4: courier location). */
export namespace CourierModel {
  export const position = t.Object({
    courierId: t.String(),
    lat: t.Number({ minimum: -90, maximum: 90 }),
    lng: t.Number({ minimum: -180, maximum: 180 }),
    heading: t.Optional(t.Number({ minimum: 0, maximum: 360 })),
    speedMps: t.Optional(t.Number({ minimum: 0 })),
    /** When the device took the fix. */
    fixAt: t.String({ format: "date-time" }),
    /** When the server received it. */
    lastSeenAt: t.String({ format: "date-time" }),
  });
  export type position = typeof position.static;

  /** One fix as a courier reports it, with its time already resolved. */
  export type fix = { lat: number; lng: number; heading?: number; speedMps?: number; at: Date };
}

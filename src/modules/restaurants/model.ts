import { t } from "elysia";
import { latitude, latLng as latLngSchema, longitude, type LatLng } from "../../vocabulary";
import { MAX_AREA_VERTICES } from "./area";

/** Restaurant schemas, as in API.md (Restaurants). Types derive from them. */
export namespace RestaurantModel {
  export const MAX_RADIUS_METERS = 50_000;
  export const MAX_PAGE_SIZE = 100;
  export const MAX_DELIVERY_RADIUS_METERS = 100_000;
  export const DEFAULT_DELIVERY_RADIUS_METERS = 5000;
  export const DEFAULT_PREP_TIME_MINUTES = 15;

  export const id = t.String({ minLength: 1, maxLength: 64 });

  export const latLng = latLngSchema;
  export type latLng = LatLng;

  const clock = "([01][0-9]|2[0-3]):[0-5][0-9]";
  export const openingPeriod = t.Object(
    {
      day: t.Integer({ minimum: 0, maximum: 6, description: "0 = Sunday … 6 = Saturday, in the restaurant's time zone" }),
      open: t.String({ pattern: `^${clock}$`, maxLength: 5, description: "HH:MM local time" }),
      close: t.String({
        pattern: `^(${clock}|24:00)$`,
        maxLength: 5,
        description: "HH:MM local time; earlier than or equal to `open` means it closes after midnight (22:00–02:00)",
      }),
    }
  );
  export type openingPeriod = typeof openingPeriod.static;

  export const openingHours = t.Object(
    {
      tz: t.String({ minLength: 1, maxLength: 64, description: "IANA time zone, e.g. Europe/Paris" }),
      weekly: t.Array(openingPeriod, { maxItems: 50 }),
    }
  );
  export type openingHours = typeof openingHours.static;

  export const menuItem = t.Object({
    id: t.String({ minLength: 1, maxLength: 64 }),
    name: t.String({ minLength: 1, maxLength: 200 }),
    priceCents: t.Integer({ minimum: 1, maximum: 10_000_000 }),
    available: t.Boolean(),
  });
  export type menuItem = typeof menuItem.static;

  /** A menu item as a client sends it: the server generates `id` when absent. */
  export const menuItemInput = t.Object(
    {
      id: t.Optional(t.String({ minLength: 1, maxLength: 64, pattern: "^[A-Za-z0-9_-]+$" })),
      name: t.String({ minLength: 1, maxLength: 200 }),
      priceCents: t.Integer({ minimum: 1, maximum: 10_000_000 }),
      available: t.Optional(t.Boolean({ default: true })),
    }
  );
  export type menuItemInput = typeof menuItemInput.static;

  /** GeoJSON position: [longitude, latitude] (no altitude). */
  const position = t.Tuple([t.Number({ minimum: -180, maximum: 180 }), t.Number({ minimum: -90, maximum: 90 })], { description: "[lng, lat]" });
  // The schema only bounds the input; the 1,000-vertex limit is checked (with its reason) in area.ts.
  const ring = t.Array(position, { minItems: 4, maxItems: 2 * MAX_AREA_VERTICES, description: "closed: the last position repeats the first" });
  const polygonCoordinates = t.Array(ring, { minItems: 1, maxItems: 100, description: "the outer ring, then holes" });
  /**
   * Where the restaurant delivers, as GeoJSON; when set it decides instead of deliveryRadiusMeters.
   * Checked beyond the schema (area.ts): closed rings, no self-intersection, holes inside their shell, ≤ 1,000 vertices.
   */
  export const deliveryArea = t.Union(
    [
      t.Object({ type: t.Literal("Polygon"), coordinates: polygonCoordinates }, { additionalProperties: false }),
      t.Object({ type: t.Literal("MultiPolygon"), coordinates: t.Array(polygonCoordinates, { minItems: 1, maxItems: 100 }) }, { additionalProperties: false }),
    ],
    { description: "GeoJSON Polygon or MultiPolygon ([lng, lat] positions); when set, orders must be delivered inside it (deliveryRadiusMeters is then not used)" },
  );
  export type deliveryArea = typeof deliveryArea.static;

  const name = t.String({ minLength: 1, maxLength: 200 });
  const cuisines = t.Array(t.String({ minLength: 1, maxLength: 64 }), { maxItems: 20 });
  const address = t.String({ minLength: 1, maxLength: 500 });
  const deliveryRadiusMeters = t.Integer({ minimum: 0, maximum: MAX_DELIVERY_RADIUS_METERS });
  const prepTimeMinutes = t.Integer({ minimum: 0, maximum: 24 * 60 });
  const menu = t.Array(menuItemInput, { maxItems: 500 });

  export const restaurant = t.Object({
    id: t.String(),
    ownerId: t.String(),
    name,
    cuisines: t.Array(t.String()),
    location: latLng,
    address: t.Optional(t.String()),
    deliveryRadiusMeters: t.Integer({ minimum: 0 }),
    deliveryArea: t.Optional(deliveryArea),
    prepTimeMinutes: t.Integer({ minimum: 0 }),
    isOpen: t.Boolean(),
    openingHours: t.Optional(openingHours),
    menu: t.Array(menuItem),
    rating: t.Optional(t.Number({ minimum: 0, maximum: 5 })),
    createdAt: t.String({ format: "date-time" }),
  });
  export type restaurant = typeof restaurant.static;

  export const create = t.Object(
    {
      name,
      cuisines: t.Optional(cuisines),
      location: latLng,
      address: t.Optional(address),
      deliveryRadiusMeters: t.Optional(deliveryRadiusMeters),
      deliveryArea: t.Optional(deliveryArea),
      prepTimeMinutes: t.Optional(prepTimeMinutes),
      isOpen: t.Optional(t.Boolean()),
      openingHours: t.Optional(openingHours),
      menu: t.Optional(menu),
    }
  );
  export type create = typeof create.static;

  /** Any subset; `null` removes `address`, `openingHours` (no hours: open whenever isOpen) or `deliveryArea` (the radius decides again). Other fields are ignored. */
  export const patch = t.Object(
    {
      name: t.Optional(name),
      cuisines: t.Optional(cuisines),
      address: t.Optional(t.Union([address, t.Null()])),
      isOpen: t.Optional(t.Boolean()),
      openingHours: t.Optional(t.Union([openingHours, t.Null()])),
      deliveryRadiusMeters: t.Optional(deliveryRadiusMeters),
      deliveryArea: t.Optional(t.Union([deliveryArea, t.Null()])),
      prepTimeMinutes: t.Optional(prepTimeMinutes),
      menu: t.Optional(menu),
    }
  );
  export type patch = typeof patch.static;

  export const params = t.Object({ id });

  export const nearbyQuery = t.Object({
    lat: t.Number({ minimum: latitude.minimum, maximum: latitude.maximum, error: "lat must be a number from -90 to 90" }),
    lng: t.Number({ minimum: longitude.minimum, maximum: longitude.maximum, error: "lng must be a number from -180 to 180" }),
    radius: t.Optional(t.Number({ minimum: 0, maximum: MAX_RADIUS_METERS, default: 5000, description: "meters", error: `radius must be a number of meters from 0 to ${MAX_RADIUS_METERS}` })),
    cuisine: t.Optional(t.String({ minLength: 1, maxLength: 64 })),
    openNow: t.Optional(t.Boolean({ description: "true: only restaurants open now (isOpen and inside opening hours)", error: "openNow must be true or false" })),
    delivers: t.Optional(t.Boolean({ description: "true: only restaurants that deliver to the point: its deliveryArea contains it ($geoIntersects), or, without an area, its delivery radius reaches it", error: "delivers must be true or false" })),
    limit: t.Optional(t.Integer({ minimum: 1, maximum: MAX_PAGE_SIZE, default: 20, error: `limit must be an integer from 1 to ${MAX_PAGE_SIZE}` })),
    cursor: t.Optional(t.String({ minLength: 1, maxLength: 512, description: "nextCursor of the previous page" })),
  });
  export type nearbyQuery = typeof nearbyQuery.static;

  export const nearbyItem = t.Composite([restaurant, t.Object({ distanceMeters: t.Number({ minimum: 0 }) })]);
  export type nearbyItem = typeof nearbyItem.static;

  export const nearbyPage = t.Object({
    items: t.Array(nearbyItem),
    nextCursor: t.Union([t.String(), t.Null()]),
  });
  export type nearbyPage = typeof nearbyPage.static;
}

import { Type as t, type SchemaOptions, type TLiteral, type TUnion } from "@sinclair/typebox";

/**
 * The words every feature shares, each spelled once: roles, order statuses and their groups,
 * the lat/lng schema. Types derive from the schemas. Plain TypeBox (what Elysia's `t` is for
 * these), so the domain files can use these words without importing Elysia.
 */

/**
 * A union of string literals built from one list, so the list, the schema and the type never
 * drift apart. Not `t.UnionEnum`: that one fills a missing field with its first value (its
 * schema carries a `default`) and reports "Expected kind 'UnionEnum'" instead of the field
 * errors clients get today.
 */
export function literalUnion<const T extends readonly [string, ...string[]]>(
  values: T,
  options?: SchemaOptions,
): TUnion<{ -readonly [K in keyof T]: TLiteral<T[K]> }> {
  return t.Union(
    values.map((v) => t.Literal(v)),
    options,
  ) as unknown as TUnion<{ -readonly [K in keyof T]: TLiteral<T[K]> }>;
}

/** Who signs in. Admins only come from the start-up bootstrap. */
export const ROLES = ["customer", "restaurant", "courier", "admin"] as const;
export const role = literalUnion(ROLES);
export type Role = typeof role.static;

/** Roles a user may pick at registration. */
export const SELF_ROLES = ["customer", "restaurant", "courier"] as const satisfies readonly Role[];

/** Who acts on an order in its history: a user's role, or the server itself (timers, dispatch). */
export const actorRole = literalUnion([...ROLES, "system"]);
export type ActorRole = typeof actorRole.static;

/** Who is calling, as proven by the token. */
export type Principal = { id: string; role: Role };

export function isRole(value: unknown): value is Role {
  return typeof value === "string" && (ROLES as readonly string[]).includes(value);
}

/** Order statuses, in the API's order (so `allowed` lists read the same way everywhere). */
export const ORDER_STATUSES = ["placed", "accepted", "preparing", "ready_for_pickup", "picked_up", "delivered", "cancelled", "rejected"] as const;
export const orderStatus = literalUnion(ORDER_STATUSES);
export type OrderStatus = typeof orderStatus.static;

/** Statuses no move leaves. */
export const FINAL_STATUSES = ["delivered", "cancelled", "rejected"] as const satisfies readonly OrderStatus[];
/** Statuses in which a courier may claim (or be offered) an order that has no courier. */
export const CLAIMABLE_STATUSES = ["accepted", "preparing", "ready_for_pickup"] as const satisfies readonly OrderStatus[];
/** Statuses in which an assigned courier carries the order (COURIER_MAX_ACTIVE counts these). */
export const CARRYING_STATUSES = ["accepted", "preparing", "ready_for_pickup", "picked_up"] as const satisfies readonly OrderStatus[];

const inGroup = (group: readonly OrderStatus[]) => (status: OrderStatus) => group.includes(status);
export const isFinalStatus: (status: OrderStatus) => boolean = inGroup(FINAL_STATUSES);
export const isClaimableStatus: (status: OrderStatus) => boolean = inGroup(CLAIMABLE_STATUSES);
export const isCarryingStatus: (status: OrderStatus) => boolean = inGroup(CARRYING_STATUSES);

/** Degrees; the same ranges wherever a position is taken in. */
export const latitude = t.Number({ minimum: -90, maximum: 90, description: "latitude, degrees" });
export const longitude = t.Number({ minimum: -180, maximum: 180, description: "longitude, degrees" });
export const latLng = t.Object({ lat: latitude, lng: longitude });
export type LatLng = typeof latLng.static;

/** One position fix as a courier reports it, its time already resolved. */
export type PositionFix = LatLng & { heading?: number; speedMps?: number; at: Date };

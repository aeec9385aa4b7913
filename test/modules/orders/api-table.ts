/*
 * The transition table of API.md (Orders), written out independently of the machine, so the
 * machine and the HTTP API are checked against the contract rather than against themselves.
 */
export type Who = "customer" | "otherCustomer" | "owner" | "otherRestaurant" | "assignedCourier" | "otherCourier" | "admin";

export const STATUSES = ["placed", "accepted", "preparing", "ready_for_pickup", "picked_up", "delivered", "cancelled", "rejected"] as const;
export type Status = (typeof STATUSES)[number];

export const API_TABLE: Record<Status, Partial<Record<Status, Who[]>>> = {
  placed: { accepted: ["owner"], rejected: ["owner"], cancelled: ["customer", "owner", "admin"] },
  accepted: { preparing: ["owner"], cancelled: ["owner", "admin"] },
  preparing: { ready_for_pickup: ["owner"], cancelled: ["owner", "admin"] },
  ready_for_pickup: { picked_up: ["assignedCourier"], cancelled: ["admin"] },
  picked_up: { delivered: ["assignedCourier"], cancelled: ["admin"] },
  delivered: {},
  cancelled: {},
  rejected: {},
};

/** Claim: any courier, when no courier is assigned and the order is in one of these. */
export const CLAIMABLE: Status[] = ["accepted", "preparing", "ready_for_pickup"];

/** The targets `who` may move an order in `from` to (the assigned courier only exists when one is assigned). */
export function expectedAllowed(from: Status, who: Who, courierAssigned: boolean): Status[] {
  return STATUSES.filter((to) => (API_TABLE[from][to] ?? []).includes(who) && !(who === "assignedCourier" && !courierAssigned));
}

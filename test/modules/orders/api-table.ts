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

/*
 * The dispatch lifecycle (docs/dispatch.md), written out independently of the machine.
 * States: idle (no search: not accepted yet), searching (looking for a courier), offered (one
 * courier holds an offer), waiting (nobody found; retries later), assigned, closed (order final).
 */
export type DispatchState = "idle" | "searching" | "offered" | "waiting" | "assigned" | "closed";
export type DispatchEventKind = "OFFER" | "NO_COURIER" | "DISPATCH_RETRY" | "OFFER_ACCEPT" | "OFFER_DECLINE" | "OFFER_EXPIRE";
/** Who may send a dispatch event: the server itself (dispatcher, timers) or the courier holding the offer. */
export type DispatchWho = "system" | "offeredCourier" | "otherCourier" | "owner" | "customer" | "admin";

/** Each dispatch event: who sends it and where it leads; only for the current search or offer (a stale one is refused). */
export const DISPATCH_TABLE: Record<DispatchState, Partial<Record<DispatchEventKind, { by: DispatchWho; to: DispatchState }>>> = {
  idle: {},
  searching: {
    OFFER: { by: "system", to: "offered" },
    NO_COURIER: { by: "system", to: "waiting" },
    DISPATCH_RETRY: { by: "system", to: "searching" },
  },
  offered: {
    OFFER_ACCEPT: { by: "offeredCourier", to: "assigned" },
    OFFER_DECLINE: { by: "offeredCourier", to: "searching" },
    OFFER_EXPIRE: { by: "system", to: "searching" },
  },
  waiting: { DISPATCH_RETRY: { by: "system", to: "searching" } },
  assigned: {},
  closed: {},
};

/** The dispatch states an order in `status` can be in (with a courier exactly when `assigned`). */
export function dispatchStatesFor(status: Status): DispatchState[] {
  if (status === "placed") return ["idle"];
  if (status === "delivered" || status === "cancelled" || status === "rejected") return ["closed"];
  if (status === "picked_up") return ["assigned"];
  return ["searching", "offered", "waiting", "assigned"];
}

/** Where a status move takes the dispatch region: acceptance starts a search, a claim ends it, a final status closes it. */
export function dispatchAfterStatusMove(from: DispatchState, to: Status, courierAfter: boolean): DispatchState {
  if (to === "delivered" || to === "cancelled" || to === "rejected") return "closed";
  if (courierAfter) return "assigned";
  if (from === "idle" && to === "accepted") return "searching";
  return from;
}

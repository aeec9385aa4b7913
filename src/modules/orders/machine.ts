import { and, assign, initialTransition, not, or, setup, stateIn, type Snapshot, type SnapshotFrom } from "xstate";
import { CLAIMABLE_STATUSES, FINAL_STATUSES, isFinalStatus, ORDER_STATUSES } from "../../vocabulary";
import type { DispatchView } from "../../events/order";
import type { OrderModel } from "./model";

/**
 * The order's life as one XState machine: states are the API statuses, events are the moves,
 * guards say who may make each move (API.md, Orders). No I/O here: the registry persists and
 * publishes; effects, when some are needed, are injected with `orderMachine.provide()`.
 *
 * The root is a parallel state with two regions: `status` (the API status) and `dispatch`
 * (finding a courier: idle → searching → offered → assigned, with `waiting` between rounds).
 * Deadlines are not XState `after` delays (a restored actor loses those): they are times kept
 * in the context, turned into durable timers by `timersOf` and fired back as events.
 */

/** Bumped whenever a persisted snapshot of an older machine would not restore faithfully. */
export const ORDER_MACHINE_VERSION = 2;

export type OrderActor = OrderModel.actor;

/** Where the search for a courier stands; times are epoch milliseconds. */
export type DispatchContext = {
  /** Bumped each time a search starts; OFFER, NO_COURIER and retries name the search they belong to. */
  searchId: number;
  searchStartedAt: number | null;
  /** Offers made for this order, in total (shown to parties). */
  attempts: number;
  /** Offers made since the last wait (DISPATCH_MAX_ATTEMPTS applies per round). */
  roundAttempts: number;
  offer: { courierId: string; expiresAt: number; distanceMeters: number; attempt: number } | null;
  /** Every courier this order was offered to. */
  offeredTo: string[];
  /** Couriers who declined it or let their offer expire: never offered it again. */
  excluded: string[];
  /** When a waiting order searches again. */
  retryAt: number | null;
};

export type OrderContext = {
  customerId: string;
  restaurantOwnerId: string;
  courierId: string | null;
  /** The restaurant must accept by then, or the order is cancelled (restaurant_timeout). */
  acceptBy: number | null;
  dispatch: DispatchContext;
};

/** What a new actor starts from; the dispatch part defaults to "nothing happened yet". */
export type OrderInput = {
  customerId: string;
  restaurantOwnerId: string;
  courierId: string | null;
  acceptBy?: number | null;
  dispatch?: DispatchContext;
};

export const EMPTY_DISPATCH: DispatchContext = {
  searchId: 0,
  searchStartedAt: null,
  attempts: 0,
  roundAttempts: 0,
  offer: null,
  offeredTo: [],
  excluded: [],
  retryAt: null,
};

function contextFrom(input: OrderInput): OrderContext {
  return {
    customerId: input.customerId,
    restaurantOwnerId: input.restaurantOwnerId,
    courierId: input.courierId,
    acceptBy: input.acceptBy ?? null,
    dispatch: input.dispatch ?? { ...EMPTY_DISPATCH },
  };
}


/** Moves that change the status; each carries who makes it. */
export const STATUS_EVENTS = {
  accepted: "ACCEPT",
  rejected: "REJECT",
  preparing: "START_PREPARING",
  ready_for_pickup: "MARK_READY",
  picked_up: "PICK_UP",
  delivered: "DELIVER",
  cancelled: "CANCEL",
} as const satisfies Partial<Record<OrderModel.status, string>>;

export type StatusEventType = (typeof STATUS_EVENTS)[keyof typeof STATUS_EVENTS];
/** Events a person makes (through the API). */
export type OrderEventType = StatusEventType | "ASSIGN_COURIER" | "OFFER_ACCEPT" | "OFFER_DECLINE";
/** `at`: when the event happened (epoch ms); the registry stamps it before the machine sees it. */
type Stamp = { at?: number };
export type OrderEvent =
  | ({ type: OrderEventType; actor: OrderActor } & Stamp)
  /** Timers (actor: system): the restaurant did not accept in time. */
  | ({ type: "ACCEPT_TIMEOUT"; actor: OrderActor } & Stamp)
  /** The dispatcher reserved a courier for search `searchId` (`bundle`: every order of the offer, when the planner bundled it). */
  | ({ type: "OFFER"; actor: OrderActor; searchId: number; courierId: string; expiresAt: number; distanceMeters: number; bundle?: string[] } & Stamp)
  /** The dispatcher found nobody for search `searchId` (or the round's attempts are used up). */
  | ({ type: "NO_COURIER"; actor: OrderActor; searchId: number; retryAt: number } & Stamp)
  /** Timer: offer number `attempt` was not answered in time. */
  | ({ type: "OFFER_EXPIRE"; actor: OrderActor; attempt: number } & Stamp)
  /** Timer: search `searchId` should run (again): after a wait, or when a search never reported. */
  | ({ type: "DISPATCH_RETRY"; actor: OrderActor; searchId: number } & Stamp);

/** The event that moves an order to `target`, or null when no move leads there (e.g. `placed`). */
export function eventForTarget(target: OrderModel.status): StatusEventType | null {
  return target in STATUS_EVENTS ? STATUS_EVENTS[target as keyof typeof STATUS_EVENTS] : null;
}


export const orderMachine = setup({
  types: {
    context: {} as OrderContext,
    events: {} as OrderEvent,
    input: {} as OrderInput,
  },
  guards: {
    byRestaurantOwner: ({ context, event }) => event.actor.role === "restaurant" && event.actor.id === context.restaurantOwnerId,
    byCustomer: ({ context, event }) => event.actor.role === "customer" && event.actor.id === context.customerId,
    byAdmin: ({ event }) => event.actor.role === "admin",
    byAssignedCourier: ({ context, event }) =>
      event.actor.role === "courier" && context.courierId !== null && event.actor.id === context.courierId,
    byCourier: ({ event }) => event.actor.role === "courier",
    bySystem: ({ event }) => event.actor.role === "system",
    hasCourier: ({ context }) => context.courierId !== null,
    statusFinal: or(FINAL_STATUSES.map((s) => stateIn({ status: s }))),
    statusDispatchable: or(CLAIMABLE_STATUSES.map((s) => stateIn({ status: s }))),
    /** OFFER / NO_COURIER / DISPATCH_RETRY for the search that is running now. */
    forThisSearch: ({ context, event }) => "searchId" in event && event.actor.role === "system" && event.searchId === context.dispatch.searchId,
    byOfferedCourier: ({ context, event }) =>
      event.actor.role === "courier" && context.dispatch.offer !== null && event.actor.id === context.dispatch.offer.courierId,
    forThisOffer: ({ context, event }) =>
      event.type === "OFFER_EXPIRE" && event.actor.role === "system" && context.dispatch.offer !== null && event.attempt === context.dispatch.offer.attempt,
  },
  actions: {
    assignCourier: assign({ courierId: ({ event }) => event.actor.id }),
    clearAcceptDeadline: assign({ acceptBy: null }),
    startSearch: assign({
      dispatch: ({ context, event }) => ({ ...context.dispatch, searchId: context.dispatch.searchId + 1, searchStartedAt: event.at ?? 0, retryAt: null }),
    }),
    newRound: assign({ dispatch: ({ context }) => ({ ...context.dispatch, roundAttempts: 0 }) }),
    recordOffer: assign({
      dispatch: ({ context, event }) => {
        if (event.type !== "OFFER") return context.dispatch;
        const attempt = context.dispatch.attempts + 1;
        return {
          ...context.dispatch,
          attempts: attempt,
          roundAttempts: context.dispatch.roundAttempts + 1,
          offer: { courierId: event.courierId, expiresAt: event.expiresAt, distanceMeters: event.distanceMeters, attempt },
          offeredTo: context.dispatch.offeredTo.includes(event.courierId) ? context.dispatch.offeredTo : [...context.dispatch.offeredTo, event.courierId],
        };
      },
    }),
    recordWait: assign({
      dispatch: ({ context, event }) => (event.type === "NO_COURIER" ? { ...context.dispatch, retryAt: event.retryAt } : context.dispatch),
    }),
    /** The offered courier said no or let it expire: never offer them this order again. */
    excludeOfferedCourier: assign({
      dispatch: ({ context }) => {
        const offer = context.dispatch.offer;
        if (!offer) return context.dispatch;
        const excluded = context.dispatch.excluded.includes(offer.courierId) ? context.dispatch.excluded : [...context.dispatch.excluded, offer.courierId];
        return { ...context.dispatch, offer: null, excluded };
      },
    }),
    dropOffer: assign({ dispatch: ({ context }) => ({ ...context.dispatch, offer: null, retryAt: null }) }),
    assignOfferedCourier: assign({
      courierId: ({ context }) => context.dispatch.offer?.courierId ?? context.courierId,
      dispatch: ({ context }) => ({ ...context.dispatch, offer: null }),
    }),
  },
}).createMachine({
  id: "order",
  type: "parallel",
  context: ({ input }) => contextFrom(input),
  states: {
    status: {
      initial: "placed",
      states: {
        placed: {
          on: {
            ACCEPT: { target: "accepted", guard: "byRestaurantOwner", actions: "clearAcceptDeadline" },
            REJECT: { target: "rejected", guard: "byRestaurantOwner", actions: "clearAcceptDeadline" },
            CANCEL: { target: "cancelled", guard: or(["byCustomer", "byRestaurantOwner", "byAdmin"]), actions: "clearAcceptDeadline" },
            ACCEPT_TIMEOUT: { target: "cancelled", guard: "bySystem", actions: "clearAcceptDeadline" },
          },
        },
        accepted: {
          on: {
            START_PREPARING: { target: "preparing", guard: "byRestaurantOwner" },
            CANCEL: { target: "cancelled", guard: or(["byRestaurantOwner", "byAdmin"]) },
            ASSIGN_COURIER: { guard: and(["byCourier", not("hasCourier")]), actions: "assignCourier" },
          },
        },
        preparing: {
          on: {
            MARK_READY: { target: "ready_for_pickup", guard: "byRestaurantOwner" },
            CANCEL: { target: "cancelled", guard: or(["byRestaurantOwner", "byAdmin"]) },
            ASSIGN_COURIER: { guard: and(["byCourier", not("hasCourier")]), actions: "assignCourier" },
          },
        },
        ready_for_pickup: {
          on: {
            PICK_UP: { target: "picked_up", guard: "byAssignedCourier" },
            CANCEL: { target: "cancelled", guard: "byAdmin" },
            ASSIGN_COURIER: { guard: and(["byCourier", not("hasCourier")]), actions: "assignCourier" },
          },
        },
        picked_up: {
          on: {
            DELIVER: { target: "delivered", guard: "byAssignedCourier" },
            CANCEL: { target: "cancelled", guard: "byAdmin" },
          },
        },
        delivered: { type: "final" },
        cancelled: { type: "final" },
        rejected: { type: "final" },
      },
    },
    /*
     * Finding a courier. Status changes drive it through eventless transitions: an accepted
     * order starts searching, a courier (offer accepted or manual claim) ends it, a final status
     * closes it. The dispatcher (couriers/dispatcher.ts) reports OFFER or NO_COURIER for the
     * search that is running; timers report expiries and retries.
     */
    dispatch: {
      initial: "idle",
      states: {
        idle: {
          always: [
            { target: "closed", guard: "statusFinal" },
            { target: "assigned", guard: "hasCourier" },
            { target: "searching", guard: "statusDispatchable", actions: "startSearch" },
          ],
        },
        searching: {
          always: [
            { target: "closed", guard: "statusFinal" },
            { target: "assigned", guard: "hasCourier" },
          ],
          on: {
            OFFER: { target: "offered", guard: "forThisSearch", actions: "recordOffer" },
            NO_COURIER: { target: "waiting", guard: "forThisSearch", actions: "recordWait" },
            // The search never reported (its instance died): search again.
            DISPATCH_RETRY: { target: "searching", reenter: true, guard: "forThisSearch", actions: "startSearch" },
          },
        },
        offered: {
          always: [
            { target: "closed", guard: "statusFinal", actions: "dropOffer" },
            // A manual claim won while the offer was out.
            { target: "assigned", guard: "hasCourier", actions: "dropOffer" },
          ],
          on: {
            OFFER_ACCEPT: { target: "assigned", guard: "byOfferedCourier", actions: "assignOfferedCourier" },
            OFFER_DECLINE: { target: "searching", guard: "byOfferedCourier", actions: ["excludeOfferedCourier", "startSearch"] },
            OFFER_EXPIRE: { target: "searching", guard: "forThisOffer", actions: ["excludeOfferedCourier", "startSearch"] },
          },
        },
        /** Nobody found this round: unassigned until the retry timer starts a new round. */
        waiting: {
          always: [
            { target: "closed", guard: "statusFinal", actions: "dropOffer" },
            { target: "assigned", guard: "hasCourier", actions: "dropOffer" },
          ],
          on: {
            DISPATCH_RETRY: { target: "searching", guard: "forThisSearch", actions: ["newRound", "startSearch"] },
          },
        },
        assigned: {
          always: [{ target: "closed", guard: "statusFinal" }],
        },
        closed: { type: "final" },
      },
    },
  },
});

export type OrderSnapshot = SnapshotFrom<typeof orderMachine>;

/** What the database stores next to the order: enough to restore the actor exactly. */
export type PersistedOrderMachine = { machineVersion: number; snapshot: unknown };

export function statusOf(snapshot: OrderSnapshot): OrderModel.status {
  return (snapshot.value as { status: OrderModel.status }).status;
}

export type DispatchState = "idle" | "searching" | "offered" | "waiting" | "assigned" | "closed";

export function dispatchStateOf(snapshot: OrderSnapshot): DispatchState {
  return (snapshot.value as { dispatch: DispatchState }).dispatch;
}

/** The machine state of a just-placed order. */
export function initialOrderSnapshot(input: OrderInput): OrderSnapshot {
  return initialTransition(orderMachine, input)[0];
}

export function persistSnapshot(snapshot: OrderSnapshot): PersistedOrderMachine {
  return { machineVersion: ORDER_MACHINE_VERSION, snapshot: orderMachine.getPersistedSnapshot(snapshot) };
}

/** The dispatch state an order's fields imply, for rebuilding a snapshot without one. */
function impliedDispatchState(status: OrderModel.status, courierId: string | null): DispatchState {
  if (isFinalStatus(status)) return "closed";
  if (courierId !== null) return "assigned";
  // An accepted order without a courier starts searching at its next event (idle's eventless move).
  return "idle";
}

/**
 * The persisted snapshot to restore an order's actor from (`createActor(orderMachine, { snapshot })`).
 * One written by another machine version is rebuilt from the order's own fields (status, the
 * ids the guards read); the dispatch region restarts from what those imply.
 */
export function restorableSnapshot(
  persisted: PersistedOrderMachine | null | undefined,
  fallback: { status: OrderModel.status } & OrderInput,
): Snapshot<unknown> {
  if (persisted && persisted.machineVersion === ORDER_MACHINE_VERSION) return persisted.snapshot as Snapshot<unknown>;
  const { status, ...input } = fallback;
  const value = { status, dispatch: impliedDispatchState(status, input.courierId) };
  return orderMachine.getPersistedSnapshot(orderMachine.resolveState({ value, context: contextFrom(input) }));
}

/** The statuses `actor` may move the order to now, by asking the machine (guards included). */
export function allowedTargets(snapshot: OrderSnapshot, actor: OrderActor): OrderModel.status[] {
  const out: OrderModel.status[] = [];
  for (const target of ORDER_STATUSES) {
    const type = eventForTarget(target);
    if (type !== null && snapshot.can({ type, actor })) out.push(target);
  }
  return out;
}

/** What parties see of the dispatch (API: `order.dispatch`). */
export type { DispatchView };

export function dispatchViewOf(snapshot: OrderSnapshot): DispatchView {
  const { dispatch, courierId } = snapshot.context;
  const region = dispatchStateOf(snapshot);
  const view: DispatchView = { state: "idle", attempts: dispatch.attempts };
  if (region === "searching" || region === "waiting") view.state = "searching";
  else if (region === "offered") view.state = "offered";
  else if (region === "assigned" || (region === "closed" && courierId !== null)) view.state = "assigned";
  return view;
}

/**
 * Whether parties can see a transition: its status, courier or dispatch view changed. Those
 * that change nothing visible (waiting between searches, a retry) are committed without a
 * history entry or a new version.
 */
export function isVisibleTransition(prev: OrderSnapshot, next: OrderSnapshot): boolean {
  if (statusOf(prev) !== statusOf(next) || prev.context.courierId !== next.context.courierId) return true;
  const a = dispatchViewOf(prev);
  const b = dispatchViewOf(next);
  return a.state !== b.state || a.attempts !== b.attempts;
}

/** Kinds of durable timer, each turned back into one machine event when it fires. */
export type TimerKind = "accept_timeout" | "offer_expiry" | "dispatch_retry";

/** A deadline of the order (dueAt in epoch ms); `ref` names the offer or search it belongs to. */
export type OrderTimer = { kind: TimerKind; dueAt: number; ref: number };

export type TimerTiming = {
  /** A search that has not reported by then is started again (its instance may have died). */
  searchTimeoutMs: number;
};

/**
 * The deadlines a snapshot implies. Derived from the context (never kept beside it), so the
 * timers written with a transition are exactly the machine's, and a restored actor has the
 * same ones: nothing is lost or duplicated by persisting and restoring.
 */
export function timersOf(snapshot: OrderSnapshot, timing: TimerTiming): OrderTimer[] {
  const { acceptBy, dispatch } = snapshot.context;
  const out: OrderTimer[] = [];
  if (statusOf(snapshot) === "placed" && acceptBy !== null) out.push({ kind: "accept_timeout", dueAt: acceptBy, ref: 0 });
  switch (dispatchStateOf(snapshot)) {
    case "searching":
      out.push({ kind: "dispatch_retry", dueAt: (dispatch.searchStartedAt ?? 0) + timing.searchTimeoutMs, ref: dispatch.searchId });
      break;
    case "waiting":
      out.push({ kind: "dispatch_retry", dueAt: dispatch.retryAt ?? 0, ref: dispatch.searchId });
      break;
    case "offered":
      if (dispatch.offer) out.push({ kind: "offer_expiry", dueAt: dispatch.offer.expiresAt, ref: dispatch.offer.attempt });
      break;
  }
  return out;
}

/** The actor timers act as in history entries. */
export const TIMER_ACTOR: OrderActor = { role: "system", id: "timer" };

/** The event a fired timer sends, and the reason its history entry gives. */
export function timerEvent(timer: Pick<OrderTimer, "kind" | "ref">): { event: OrderEvent; reason?: string } {
  switch (timer.kind) {
    case "accept_timeout":
      return { event: { type: "ACCEPT_TIMEOUT", actor: TIMER_ACTOR }, reason: "restaurant_timeout" };
    case "offer_expiry":
      return { event: { type: "OFFER_EXPIRE", actor: TIMER_ACTOR, attempt: timer.ref }, reason: "offer_expired" };
    case "dispatch_retry":
      return { event: { type: "DISPATCH_RETRY", actor: TIMER_ACTOR, searchId: timer.ref } };
  }
}

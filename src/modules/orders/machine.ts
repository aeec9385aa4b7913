import { and, assign, initialTransition, not, or, setup, type Snapshot, type SnapshotFrom } from "xstate";
import type { OrderModel } from "./model";

/**
 * The order's life as one XState machine: states are the API statuses, events are the moves,
 * guards say who may make each move (API.md, Orders). No I/O here: the registry persists and
 * publishes; effects, when some are needed, are injected with `orderMachine.provide()`.
 *
 * The root is a parallel state with one region, `status`, so the dispatch lifecycle can be
 * added later as a sibling region without changing how a status is read or stored.
 */

/** Bumped whenever a persisted snapshot of an older machine would not restore faithfully. */
export const ORDER_MACHINE_VERSION = 1;

export type OrderActor = OrderModel.actor;

export type OrderContext = {
  customerId: string;
  restaurantOwnerId: string;
  courierId: string | null;
};

/** In the API's order, so `allowed` lists read the same way everywhere. */
const ORDER_STATUSES: readonly OrderModel.status[] = ["placed", "accepted", "preparing", "ready_for_pickup", "picked_up", "delivered", "cancelled", "rejected"];

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
export type OrderEventType = StatusEventType | "ASSIGN_COURIER";
export type OrderEvent = { type: OrderEventType; actor: OrderActor };

/** The event that moves an order to `target`, or null when no move leads there (e.g. `placed`). */
export function eventForTarget(target: OrderModel.status): StatusEventType | null {
  return target in STATUS_EVENTS ? STATUS_EVENTS[target as keyof typeof STATUS_EVENTS] : null;
}

export const orderMachine = setup({
  types: {
    context: {} as OrderContext,
    events: {} as OrderEvent,
    input: {} as OrderContext,
  },
  guards: {
    byRestaurantOwner: ({ context, event }) => event.actor.role === "restaurant" && event.actor.id === context.restaurantOwnerId,
    byCustomer: ({ context, event }) => event.actor.role === "customer" && event.actor.id === context.customerId,
    byAdmin: ({ event }) => event.actor.role === "admin",
    byAssignedCourier: ({ context, event }) =>
      event.actor.role === "courier" && context.courierId !== null && event.actor.id === context.courierId,
    byCourier: ({ event }) => event.actor.role === "courier",
    hasCourier: ({ context }) => context.courierId !== null,
  },
  actions: {
    assignCourier: assign({ courierId: ({ event }) => event.actor.id }),
  },
}).createMachine({
  id: "order",
  type: "parallel",
  context: ({ input }) => ({ ...input }),
  states: {
    status: {
      initial: "placed",
      states: {
        placed: {
          on: {
            ACCEPT: { target: "accepted", guard: "byRestaurantOwner" },
            REJECT: { target: "rejected", guard: "byRestaurantOwner" },
            CANCEL: { target: "cancelled", guard: or(["byCustomer", "byRestaurantOwner", "byAdmin"]) },
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
  },
});

export type OrderSnapshot = SnapshotFrom<typeof orderMachine>;

/** What the database stores next to the order: enough to restore the actor exactly. */
export type PersistedOrderMachine = { machineVersion: number; snapshot: unknown };

export function statusOf(snapshot: OrderSnapshot): OrderModel.status {
  return (snapshot.value as { status: OrderModel.status }).status;
}

/** The machine state of a just-placed order. */
export function initialOrderSnapshot(context: OrderContext): OrderSnapshot {
  return initialTransition(orderMachine, context)[0];
}

export function persistSnapshot(snapshot: OrderSnapshot): PersistedOrderMachine {
  return { machineVersion: ORDER_MACHINE_VERSION, snapshot: orderMachine.getPersistedSnapshot(snapshot) };
}

/**
 * The persisted snapshot to restore an order's actor from (`createActor(orderMachine, { snapshot })`).
 * One written by another machine version is rebuilt from the order's own fields (status and
 * the ids the guards read), which is all this machine's state is.
 */
export function restorableSnapshot(
  persisted: PersistedOrderMachine | null | undefined,
  fallback: { status: OrderModel.status } & OrderContext,
): Snapshot<unknown> {
  if (persisted && persisted.machineVersion === ORDER_MACHINE_VERSION) return persisted.snapshot as Snapshot<unknown>;
  const { status, ...context } = fallback;
  return orderMachine.getPersistedSnapshot(orderMachine.resolveState({ value: { status }, context }));
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

export function isFinalStatus(status: OrderModel.status): boolean {
  return (["delivered", "cancelled", "rejected"] as readonly string[]).includes(status);
}

import { describe, expect, test } from "bun:test";
import { createActor, type Snapshot } from "xstate";
import {
  allowedTargets,
  dispatchStateOf,
  dispatchViewOf,
  EMPTY_DISPATCH,
  eventForTarget,
  isVisibleTransition,
  timerEvent,
  timersOf,
  type OrderEvent,
  type OrderSnapshot,
  orderMachine,
  persistSnapshot,
  restorableSnapshot,
  statusOf,
  ORDER_MACHINE_VERSION,
  type OrderActor,
} from "../../../src/modules/orders/machine";
import { FINAL_STATUSES, ORDER_STATUSES } from "../../../src/vocabulary";
import { OrderModel } from "../../../src/modules/orders/model";

import {
  API_TABLE as TABLE,
  CLAIMABLE,
  DISPATCH_TABLE,
  dispatchAfterStatusMove,
  dispatchStatesFor,
  type DispatchEventKind,
  type DispatchState,
  type DispatchWho,
  type Who,
} from "./api-table";

const ids = { customerId: "cust-1", restaurantOwnerId: "owner-1" };
const COURIER = "courier-1";
const actors: Record<Who, OrderActor> = {
  customer: { role: "customer", id: ids.customerId },
  otherCustomer: { role: "customer", id: "cust-2" },
  owner: { role: "restaurant", id: ids.restaurantOwnerId },
  otherRestaurant: { role: "restaurant", id: "owner-2" },
  assignedCourier: { role: "courier", id: COURIER },
  otherCourier: { role: "courier", id: "courier-2" },
  admin: { role: "admin", id: "admin-1" },
};

function snapshotAt(status: OrderModel.status, courierId: string | null) {
  const actor = createActor(orderMachine, {
    snapshot: restorableSnapshot(null, { status, ...ids, courierId }),
    input: { ...ids, courierId },
  });
  return actor.getSnapshot();
}

describe("order machine against the API.md transition table", () => {
  const cases: Array<[OrderModel.status, string | null, Who, OrderModel.status]> = [];
  for (const from of ORDER_STATUSES)
    for (const courierId of [null, COURIER])
      for (const who of Object.keys(actors) as Who[])
        for (const to of ORDER_STATUSES) cases.push([from, courierId, who, to]);

  test(`every (state, courier assigned or not, caller, target) combination: ${cases.length} cases`, () => {
    const mismatches: string[] = [];
    for (const [from, courierId, who, to] of cases) {
      // "assigned courier" only means something when a courier is assigned.
      const expected = (TABLE[from][to] ?? []).includes(who) && !(who === "assignedCourier" && courierId === null);
      const type = eventForTarget(to);
      const snap = snapshotAt(from, courierId);
      const actual = type !== null && snap.can({ type, actor: actors[who] });
      if (actual !== expected) mismatches.push(`${from} -> ${to} by ${who} (courier ${courierId ?? "none"}): expected ${expected}, machine ${actual}`);
      if (actual) {
        const a = createActor(orderMachine, { snapshot: persistSnapshot(snap).snapshot as Snapshot<unknown>, input: snap.context }).start();
        a.send({ type: type!, actor: actors[who] });
        if (statusOf(a.getSnapshot()) !== to) mismatches.push(`${from} -> ${to} by ${who}: landed in ${statusOf(a.getSnapshot())}`);
        a.stop();
      }
    }
    expect(mismatches).toEqual([]);
  });

  test("allowedTargets lists exactly the table's targets for each caller", () => {
    for (const from of ORDER_STATUSES)
      for (const courierId of [null, COURIER])
        for (const who of Object.keys(actors) as Who[]) {
          const expected = ORDER_STATUSES.filter(
            (to) => (TABLE[from][to] ?? []).includes(who) && !(who === "assignedCourier" && courierId === null),
          );
          expect({ from, courierId, who, allowed: allowedTargets(snapshotAt(from, courierId), actors[who]) }).toEqual({
            from,
            courierId,
            who,
            allowed: expected,
          });
        }
  });

  test("no event leads back to placed", () => {
    expect(eventForTarget("placed")).toBeNull();
  });

  test("claim: any courier, only when no courier is assigned and the order is accepted, preparing or ready_for_pickup", () => {
    for (const from of ORDER_STATUSES)
      for (const courierId of [null, COURIER])
        for (const who of Object.keys(actors) as Who[]) {
          const expected = CLAIMABLE.includes(from) && courierId === null && actors[who].role === "courier";
          const snap = snapshotAt(from, courierId);
          expect({ from, courierId, who, can: snap.can({ type: "ASSIGN_COURIER", actor: actors[who] }) }).toEqual({
            from,
            courierId,
            who,
            can: expected,
          });
          if (expected) {
            const a = createActor(orderMachine, { snapshot: persistSnapshot(snap).snapshot as Snapshot<unknown>, input: snap.context }).start();
            a.send({ type: "ASSIGN_COURIER", actor: actors[who] });
            expect(a.getSnapshot().context.courierId).toBe(actors[who].id);
            expect(statusOf(a.getSnapshot())).toBe(from);
            a.stop();
          }
        }
  });
});

describe("persisted snapshots", () => {
  test("a persisted snapshot restores to the same status and context", () => {
    const a = createActor(orderMachine, { input: { ...ids, courierId: null } }).start();
    a.send({ type: "ACCEPT", actor: actors.owner });
    a.send({ type: "ASSIGN_COURIER", actor: actors.assignedCourier });
    const persisted = JSON.parse(JSON.stringify(persistSnapshot(a.getSnapshot())));
    expect(persisted.machineVersion).toBe(ORDER_MACHINE_VERSION);
    const b = createActor(orderMachine, { snapshot: restorableSnapshot(persisted, { status: "placed", ...ids, courierId: null }), input: { ...ids, courierId: null } }).start();
    expect(statusOf(b.getSnapshot())).toBe("accepted");
    expect(b.getSnapshot().context).toMatchObject({ ...ids, courierId: COURIER, acceptBy: null });
    expect(b.getSnapshot().context).toEqual(a.getSnapshot().context);
    a.stop();
    b.stop();
  });

  test("a snapshot from another machine version is rebuilt from the order's fields", () => {
    const stale = { machineVersion: ORDER_MACHINE_VERSION - 1, snapshot: { value: "garbage" } };
    const b = createActor(orderMachine, { snapshot: restorableSnapshot(stale, { status: "preparing", ...ids, courierId: COURIER }), input: { ...ids, courierId: COURIER } }).start();
    expect(statusOf(b.getSnapshot())).toBe("preparing");
    expect(allowedTargets(b.getSnapshot(), actors.owner)).toEqual(["ready_for_pickup", "cancelled"]);
    b.stop();
  });

  test("final statuses end the machine", () => {
    for (const s of FINAL_STATUSES) expect(snapshotAt(s, null).status).toBe("done");
  });
});

/*
 * The dispatch region, against the independent DISPATCH_TABLE: every reachable (status,
 * dispatch state) pair, every dispatch event from every kind of caller, for the current search
 * or offer and for a stale one; and every status move's effect on the dispatch region.
 */
const OFFERED = "courier-offered";
const SEARCH_ID = 3;
const OFFER_ATTEMPT = 2;
const TIMING = { searchTimeoutMs: 30_000 };
const dispatchActors: Record<DispatchWho, OrderActor> = {
  system: { role: "system", id: "dispatch" },
  offeredCourier: { role: "courier", id: OFFERED },
  otherCourier: { role: "courier", id: "courier-2" },
  owner: actors.owner,
  customer: actors.customer,
  admin: actors.admin,
};

function dispatchSnapshot(status: OrderModel.status, state: DispatchState): OrderSnapshot {
  const courierId = state === "assigned" || (state === "closed" && status === "delivered") ? COURIER : null;
  const dispatch = {
    ...EMPTY_DISPATCH,
    searchId: SEARCH_ID,
    searchStartedAt: 1_000,
    attempts: OFFER_ATTEMPT,
    roundAttempts: 1,
    offer: state === "offered" ? { courierId: OFFERED, expiresAt: 5_000, distanceMeters: 120, attempt: OFFER_ATTEMPT } : null,
    offeredTo: ["courier-x", OFFERED],
    excluded: ["courier-x"],
    retryAt: state === "waiting" ? 9_000 : null,
  };
  return orderMachine.resolveState({
    value: { status, dispatch: state },
    context: { ...ids, courierId, acceptBy: status === "placed" ? 7_000 : null, dispatch },
  });
}

function dispatchEvent(kind: DispatchEventKind, actor: OrderActor, fresh: boolean): OrderEvent {
  const searchId = fresh ? SEARCH_ID : SEARCH_ID - 1;
  switch (kind) {
    case "OFFER":
      return { type: "OFFER", actor, searchId, courierId: "courier-new", expiresAt: 60_000, distanceMeters: 80, at: 50_000 };
    case "NO_COURIER":
      return { type: "NO_COURIER", actor, searchId, retryAt: 80_000, at: 50_000 };
    case "DISPATCH_RETRY":
      return { type: "DISPATCH_RETRY", actor, searchId, at: 50_000 };
    case "OFFER_EXPIRE":
      return { type: "OFFER_EXPIRE", actor, attempt: fresh ? OFFER_ATTEMPT : OFFER_ATTEMPT - 1, at: 50_000 };
    case "OFFER_ACCEPT":
    case "OFFER_DECLINE":
      return { type: kind, actor, at: 50_000 };
  }
}

const DISPATCH_KINDS: DispatchEventKind[] = ["OFFER", "NO_COURIER", "DISPATCH_RETRY", "OFFER_ACCEPT", "OFFER_DECLINE", "OFFER_EXPIRE"];
const REACHABLE: Array<[OrderModel.status, DispatchState]> = ORDER_STATUSES.flatMap((s) => dispatchStatesFor(s).map((d) => [s, d] as [OrderModel.status, DispatchState]));

function landed(snapshot: OrderSnapshot, event: OrderEvent): OrderSnapshot {
  const a = createActor(orderMachine, { snapshot: persistSnapshot(snapshot).snapshot as Snapshot<unknown>, input: snapshot.context }).start();
  a.send(event);
  const out = a.getSnapshot();
  a.stop();
  return out;
}

describe("order machine: the dispatch region against the dispatch table", () => {
  test(`every reachable (status, dispatch state) × dispatch event × caller × current or stale: ${REACHABLE.length * DISPATCH_KINDS.length * 6 * 2} cases`, () => {
    const mismatches: string[] = [];
    for (const [status, state] of REACHABLE)
      for (const kind of DISPATCH_KINDS)
        for (const who of Object.keys(dispatchActors) as DispatchWho[])
          for (const fresh of [true, false]) {
            // Offer answers carry no reference: only "current" exists for them.
            if (!fresh && (kind === "OFFER_ACCEPT" || kind === "OFFER_DECLINE")) continue;
            const entry = DISPATCH_TABLE[state][kind];
            const expected = entry !== undefined && entry.by === who && fresh;
            const snap = dispatchSnapshot(status, state);
            const event = dispatchEvent(kind, dispatchActors[who], fresh);
            const actual = snap.can(event);
            const label = `${status}/${state} ${kind} by ${who} (${fresh ? "current" : "stale"})`;
            if (actual !== expected) mismatches.push(`${label}: expected ${expected}, machine ${actual}`);
            if (!actual || !entry) continue;
            const next = landed(snap, event);
            if (dispatchStateOf(next) !== entry.to) mismatches.push(`${label}: landed in ${dispatchStateOf(next)}, table says ${entry.to}`);
            if (statusOf(next) !== status) mismatches.push(`${label}: status moved to ${statusOf(next)}`);
            const d = next.context.dispatch;
            if (kind === "OFFER_ACCEPT" && next.context.courierId !== OFFERED) mismatches.push(`${label}: courier ${next.context.courierId}`);
            if ((kind === "OFFER_DECLINE" || kind === "OFFER_EXPIRE") && (!d.excluded.includes(OFFERED) || d.offer !== null || d.searchId !== SEARCH_ID + 1)) {
              mismatches.push(`${label}: ${JSON.stringify(d)}`);
            }
            if (kind === "OFFER" && (d.attempts !== OFFER_ATTEMPT + 1 || d.offer?.courierId !== "courier-new" || d.offer.attempt !== OFFER_ATTEMPT + 1)) mismatches.push(`${label}: ${JSON.stringify(d)}`);
            if (kind === "NO_COURIER" && d.retryAt !== 80_000) mismatches.push(`${label}: retryAt ${d.retryAt}`);
            if (kind === "DISPATCH_RETRY" && (d.searchId !== SEARCH_ID + 1 || d.searchStartedAt !== 50_000 || d.roundAttempts !== (state === "waiting" ? 0 : 1))) {
              mismatches.push(`${label}: ${JSON.stringify(d)}`);
            }
          }
    expect(mismatches).toEqual([]);
  });

  test("every status move the API allows, from every reachable dispatch state, moves the dispatch region as the table says", () => {
    const mismatches: string[] = [];
    for (const [status, state] of REACHABLE)
      for (const who of Object.keys(actors) as Who[]) {
        const snap = dispatchSnapshot(status, state);
        const moves: Array<[OrderEvent, OrderModel.status]> = ORDER_STATUSES.flatMap((to) => {
          const type = eventForTarget(to);
          return type ? [[{ type, actor: actors[who], at: 60_000 }, to] as [OrderEvent, OrderModel.status]] : [];
        });
        moves.push([{ type: "ASSIGN_COURIER", actor: actors[who], at: 60_000 }, status]);
        for (const [event, to] of moves) {
          if (!snap.can(event)) continue;
          const next = landed(snap, event);
          const expected = dispatchAfterStatusMove(state, to, next.context.courierId !== null);
          if (dispatchStateOf(next) !== expected) mismatches.push(`${status}/${state} ${event.type} by ${who}: ${dispatchStateOf(next)}, expected ${expected}`);
          // A claim during an offer withdraws it; a final status drops it.
          if (dispatchStateOf(next) !== "offered" && next.context.dispatch.offer !== null) mismatches.push(`${status}/${state} ${event.type}: offer left behind`);
          // Entering the search starts one; moves during a search leave it running.
          const started = next.context.dispatch.searchStartedAt === 60_000;
          if (started !== (state === "idle" && expected === "searching")) mismatches.push(`${status}/${state} ${event.type}: search started ${started}`);
        }
      }
    expect(mismatches).toEqual([]);
  });

  test("the restaurant's deadline: only the system's ACCEPT_TIMEOUT, only while placed, cancels", () => {
    for (const [status, state] of REACHABLE)
      for (const who of Object.keys(dispatchActors) as DispatchWho[]) {
        const snap = dispatchSnapshot(status, state);
        const event: OrderEvent = { type: "ACCEPT_TIMEOUT", actor: dispatchActors[who], at: 7_000 };
        const expected = status === "placed" && who === "system";
        expect({ status, who, can: snap.can(event) }).toEqual({ status, who, can: expected });
        if (expected) expect(statusOf(landed(snap, event))).toBe("cancelled");
      }
  });

  test("parties see searching/offered/assigned (waiting reads as searching); moves that change nothing visible are marked invisible", () => {
    const view: Record<DispatchState, "idle" | "searching" | "offered" | "assigned"> = { idle: "idle", searching: "searching", waiting: "searching", offered: "offered", assigned: "assigned", closed: "idle" };
    for (const [status, state] of REACHABLE) {
      const snap = dispatchSnapshot(status, state);
      const expected = state === "closed" && snap.context.courierId !== null ? "assigned" : view[state];
      expect({ status, state, view: dispatchViewOf(snap) }).toEqual({ status, state, view: { state: expected, attempts: OFFER_ATTEMPT } });
    }
    const searching = dispatchSnapshot("accepted", "searching");
    const system = dispatchActors.system;
    expect(isVisibleTransition(searching, landed(searching, { type: "NO_COURIER", actor: system, searchId: SEARCH_ID, retryAt: 1, at: 1 }))).toBe(false);
    expect(isVisibleTransition(searching, landed(searching, { type: "DISPATCH_RETRY", actor: system, searchId: SEARCH_ID, at: 1 }))).toBe(false);
    expect(isVisibleTransition(searching, landed(searching, { type: "OFFER", actor: system, searchId: SEARCH_ID, courierId: "k", expiresAt: 2, distanceMeters: 1, at: 1 }))).toBe(true);
    const offered = dispatchSnapshot("accepted", "offered");
    expect(isVisibleTransition(offered, landed(offered, { type: "OFFER_DECLINE", actor: dispatchActors.offeredCourier, at: 1 }))).toBe(true);
  });
});

describe("order machine: deadlines as durable timers", () => {
  const expectedTimers: Record<DispatchState, (status: OrderModel.status) => unknown[]> = {
    idle: (s) => (s === "placed" ? [{ kind: "accept_timeout", dueAt: 7_000, ref: 0 }] : []),
    searching: () => [{ kind: "dispatch_retry", dueAt: 1_000 + TIMING.searchTimeoutMs, ref: SEARCH_ID }],
    waiting: () => [{ kind: "dispatch_retry", dueAt: 9_000, ref: SEARCH_ID }],
    offered: () => [{ kind: "offer_expiry", dueAt: 5_000, ref: OFFER_ATTEMPT }],
    assigned: () => [],
    closed: () => [],
  };

  test("each reachable state has exactly its deadlines", () => {
    for (const [status, state] of REACHABLE) {
      expect({ status, state, timers: timersOf(dispatchSnapshot(status, state), TIMING) }).toEqual({ status, state, timers: expectedTimers[state](status) as never });
    }
  });

  test("persisting and restoring a snapshot neither loses nor duplicates a deadline", () => {
    for (const [status, state] of REACHABLE) {
      const snap = dispatchSnapshot(status, state);
      const persisted = JSON.parse(JSON.stringify(persistSnapshot(snap)));
      const restored = createActor(orderMachine, { snapshot: restorableSnapshot(persisted, { status, ...ids, courierId: null }), input: { ...ids, courierId: null } }).start();
      expect(restored.getSnapshot().value).toEqual(snap.value);
      expect(timersOf(restored.getSnapshot(), TIMING)).toEqual(timersOf(snap, TIMING));
      restored.stop();
    }
  });

  test("a timer's event is accepted once: after it, the same timer's event is refused (a second instance firing it changes nothing)", () => {
    for (const [status, state] of REACHABLE) {
      const snap = dispatchSnapshot(status, state);
      for (const timer of timersOf(snap, TIMING)) {
        const { event } = timerEvent(timer);
        const stamped = { ...event, at: timer.dueAt } as OrderEvent;
        expect({ status, state, kind: timer.kind, first: snap.can(stamped) }).toEqual({ status, state, kind: timer.kind, first: true });
        const after = landed(snap, stamped);
        expect({ status, state, kind: timer.kind, again: after.can(stamped) }).toEqual({ status, state, kind: timer.kind, again: false });
        expect(timersOf(after, TIMING)).not.toContainEqual(timer);
      }
    }
  });
});

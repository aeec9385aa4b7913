import { describe, expect, test } from "bun:test";
import { createActor, type Snapshot } from "xstate";
import {
  allowedTargets,
  eventForTarget,
  orderMachine,
  persistSnapshot,
  restorableSnapshot,
  statusOf,
  ORDER_MACHINE_VERSION,
  type OrderActor,
} from "../../../src/modules/orders/machine";
import { OrderModel } from "../../../src/modules/orders/model";

import { API_TABLE as TABLE, CLAIMABLE, type Who } from "./api-table";

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
  for (const from of OrderModel.statuses)
    for (const courierId of [null, COURIER])
      for (const who of Object.keys(actors) as Who[])
        for (const to of OrderModel.statuses) cases.push([from, courierId, who, to]);

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
    for (const from of OrderModel.statuses)
      for (const courierId of [null, COURIER])
        for (const who of Object.keys(actors) as Who[]) {
          const expected = OrderModel.statuses.filter(
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
    for (const from of OrderModel.statuses)
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
    for (const s of OrderModel.finalStatuses) expect(snapshotAt(s, null).status).toBe("done");
  });
});

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startEngineProcess, startServerProcess, stopAllProcesses, type EngineProcess, type ServerProcess, openPizzeriaOn, processHttp, registerOn, type ProcessResponse } from "../../helpers/processes";

/**
 * Issue 11: COURIER_MAX_ACTIVE across instances. Two server processes on one engine; one
 * courier at its limit's edge claims two orders at the same moment, one through each. Without
 * an atomic check both claims committed (each instance saw the courier free).
 */
let engine: EngineProcess;
let A: ServerProcess;
let B: ServerProcess;

type User = { token: string; id: string };
type Res = ProcessResponse;
const http = processHttp;
const register = (role: string): Promise<User> => registerOn(A, role, "capacity-multi.test");

beforeAll(async () => {
  engine = await startEngineProcess();
  const env = {
    MONGODB_URI: engine.uri,
    PASSWORD_HASH_MEMORY_KIB: "1024",
    PASSWORD_HASH_TIME_COST: "1",
    RATE_LIMIT_USER_WRITES: "100000",
    RATE_LIMIT_IP_WRITES: "100000",
    COURIER_MAX_ACTIVE: "1",
    DISPATCH_RETRY_SECONDS: "3600",
  };
  [A, B] = await Promise.all([startServerProcess({ ...env, INSTANCE_ID: "CA" }), startServerProcess({ ...env, INSTANCE_ID: "CB" })]);
}, 30_000);

afterAll(async () => {
  await Promise.all([A, B].filter(Boolean).map((s) => s.stop("SIGTERM")));
  await engine?.stop();
  await stopAllProcesses();
});

describe("COURIER_MAX_ACTIVE across instances", () => {
  test("two concurrent claims by one courier, one through each instance: exactly one wins, every round", async () => {
    const [customer, owner] = await Promise.all([register("customer"), register("restaurant")]);
    const restaurantId = await openPizzeriaOn(A, owner, "Race Pizza");
    const acceptedOrder = async () => {
      const placed = await http(A, "POST", "/orders", customer, { restaurantId, items: [{ menuItemId: "pizza", quantity: 1 }], deliveryLocation: { lat: 48.8606, lng: 2.3622 } });
      expect(placed.status).toBe(201);
      expect((await http(B, "PATCH", `/orders/${placed.body.id}`, owner, { status: "accepted" })).status).toBe(200);
      return placed.body.id as string;
    };
    const rounds = 3;
    for (let round = 0; round < rounds; round++) {
      const courier = await register("courier");
      const [x, y] = await Promise.all([acceptedOrder(), acceptedOrder()]);
      const [viaA, viaB] = await Promise.all([http(A, "POST", `/orders/${x}/claim`, courier), http(B, "POST", `/orders/${y}/claim`, courier)]);
      expect([viaA.status, viaB.status].sort()).toEqual([200, 409]);
      const held = await http(A, "GET", "/orders?limit=10", courier);
      expect(held.body.items.map((o: { id: string }) => o.id)).toHaveLength(1);
      expect((await http(B, "GET", "/couriers/me", courier)).body.activeOrders).toBe(1);
      // The winner delivers through the other instance; then the loser's order can be claimed.
      const [won, lost] = viaA.status === 200 ? [x, y] : [y, x];
      for (const [who, status] of [[owner, "preparing"], [owner, "ready_for_pickup"], [courier, "picked_up"], [courier, "delivered"]] as const) {
        expect((await http(round % 2 ? A : B, "PATCH", `/orders/${won}`, who, { status })).status).toBe(200);
      }
      expect((await http(round % 2 ? B : A, "POST", `/orders/${lost}/claim`, courier)).status).toBe(200);
    }
  }, 60_000);
});

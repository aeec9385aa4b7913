import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { runSimulation } from "../../scripts/simulate";
import { startTestServer, type TestServer } from "../helpers/server";
import { apiFor } from "../helpers/eden";
import { COLLECTIONS } from "../../src/db/mongo";

/** The simulator (scripts/simulate.ts) against a real server: what it reports is what the server holds. */
let server: TestServer;

beforeAll(async () => {
  server = await startTestServer({ COURIER_LOCATION_INTERVAL_MS: "0" });
});

afterAll(async () => {
  await server?.stop();
});

describe("scripts/simulate.ts", () => {
  test("orders are placed, moved by restaurants and couriers, and end delivered or rejected; couriers report positions", async () => {
    const events: Array<Record<string, unknown>> = [];
    const result = await runSimulation({ url: server.url, orders: 5, restaurants: 2, couriers: 2, customers: 3, stepMs: 15, durationSeconds: 30, seed: 3, onEvent: (e) => events.push(e) });
    expect(result.ordersPlaced).toBe(5);
    expect(result.delivered + result.rejected).toBe(5);
    expect(result.unfinished).toBe(0);
    expect(result.locationsSent).toBeGreaterThan(0);

    const admin = apiFor(server.url, (await server.register("admin")).token);
    const statuses = await Promise.all(
      result.orderIds.map(async (id) => {
        const res = await admin.orders({ id }).get();
        if (!res.data) throw new Error(`order ${id}: ${res.status}`);
        return res.data;
      }),
    );
    expect(statuses.filter((o) => o.status === "delivered").length).toBe(result.delivered);
    expect(statuses.filter((o) => o.status === "rejected").length).toBe(result.rejected);
    for (const order of statuses.filter((o) => o.status === "delivered")) {
      expect(order.history.map((h) => h.status)).toEqual(["placed", "accepted", "accepted", "preparing", "ready_for_pickup", "picked_up", "delivered"]);
    }
    // Positions came over the WebSocket and were stored for the couriers that drove.
    const drivers = new Set(statuses.map((o) => o.courierId).filter((id): id is string => id !== null));
    expect(drivers.size).toBeGreaterThan(0);
    const positions = await server.deps.db.db.collection(COLLECTIONS.couriers).countDocuments({ _id: { $in: [...drivers] as never[] } });
    expect(positions).toBe(drivers.size);
    expect(events.filter((e) => e.event === "placed").length).toBe(5);
  });

  test("stops by itself at its time limit, whatever is still moving", async () => {
    const started = performance.now();
    const result = await runSimulation({ url: server.url, orders: 50, restaurants: 1, couriers: 1, customers: 1, stepMs: 100, durationSeconds: 0.6, seed: 9 });
    const elapsed = performance.now() - started;
    expect(elapsed).toBeLessThan(3_000);
    expect(result.ordersPlaced).toBeLessThan(50);
    expect(result.unfinished).toBeGreaterThan(0);
  });
});

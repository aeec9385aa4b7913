import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createLogger } from "../../../src/log";
import { CourierAtLimit, CourierCapacity, PENDING_SLOT_GRACE_MS } from "../../../src/modules/couriers/capacity";
import { CourierRepository } from "../../../src/modules/couriers/repository";
import { OrderRepository } from "../../../src/modules/orders/repository";
import { OrderActorRegistry } from "../../../src/modules/orders/registry";
import { LocalEventBus } from "../../../src/realtime/bus";
import { startTestServer, type Registered, type TestServer } from "../../helpers/server";
import { WsClient } from "../../helpers/ws";
import { cast, orderIn, patch, type Cast } from "../orders/fixtures";
import { onDuty } from "./fixtures";

/*
 * Issue 11: COURIER_MAX_ACTIVE holds on every path that gives a courier an order. Here one
 * in-process server (limit 1); capacity-multi.test.ts races claims on two server processes.
 */
let server: TestServer;
let c: Cast;
let couriers: CourierRepository;
const log = createLogger("silent");

beforeAll(async () => {
  server = await startTestServer({ COURIER_MAX_ACTIVE: "1", DISPATCH_RETRY_SECONDS: "3600", ACCEPT_TIMEOUT_SECONDS: "3600" });
  c = await cast(server);
  couriers = new CourierRepository(server.deps.db.db);
});
afterAll(async () => {
  await server?.stop();
});

const claim = (who: Registered, orderId: string) => server.request("POST", `/orders/${orderId}/claim`, { token: who.token });
const me = async (who: Registered) => (await server.request("GET", "/couriers/me", { token: who.token })).body as { activeOrders: number };

async function deliver(orderId: string, courier: Registered) {
  expect((await patch(server, c.owner, orderId, "preparing")).status).toBe(200);
  expect((await patch(server, c.owner, orderId, "ready_for_pickup")).status).toBe(200);
  expect((await patch(server, courier, orderId, "picked_up")).status).toBe(200);
  expect((await patch(server, courier, orderId, "delivered")).status).toBe(200);
}

function capacity(maxActive: number) {
  return new CourierCapacity({ couriers, orders: new OrderRepository(server.deps.db.db), clock: { now: () => new Date() }, log, maxActive });
}

describe("POST /orders/:id/claim with COURIER_MAX_ACTIVE 1", () => {
  test("a courier holding an order cannot claim another (409); once it is delivered it can", async () => {
    const courier = await server.register("courier");
    const [a, b, d] = await Promise.all([orderIn(server, c, "accepted"), orderIn(server, c, "accepted"), orderIn(server, c, "accepted")]);
    expect((await claim(courier, a.id)).status).toBe(200);
    const refused = await claim(courier, b.id);
    expect(refused.status).toBe(409);
    expect(refused.body.detail).toContain("COURIER_MAX_ACTIVE");
    expect((await claim(courier, d.id)).status).toBe(409);
    expect((await me(courier)).activeOrders).toBe(1);
    // The refused orders are untouched: still unassigned, no new history entry.
    const stored = await server.request("GET", `/orders/${b.id}`, { token: c.customer.token });
    expect(stored.body.courierId).toBeNull();
    expect(stored.body.version).toBe(b.version);
    // A repeat of the claim it holds is still a no-op 200.
    expect((await claim(courier, a.id)).status).toBe(200);

    await deliver(a.id, courier);
    expect((await claim(courier, b.id)).status).toBe(200);
    expect((await me(courier)).activeOrders).toBe(1);
  });

  test("a cancelled order frees the slot", async () => {
    const courier = await server.register("courier");
    const [a, b] = await Promise.all([orderIn(server, c, "accepted"), orderIn(server, c, "accepted")]);
    expect((await claim(courier, a.id)).status).toBe(200);
    expect((await claim(courier, b.id)).status).toBe(409);
    expect((await patch(server, c.owner, a.id, "cancelled")).status).toBe(200);
    expect((await claim(courier, b.id)).status).toBe(200);
  });

  test("concurrent claims of five orders by one courier: exactly one wins", async () => {
    const courier = await server.register("courier");
    const orders = await Promise.all(Array.from({ length: 5 }, () => orderIn(server, c, "accepted")));
    const answers = await Promise.all(orders.map((o) => claim(courier, o.id)));
    expect(answers.map((r) => r.status).sort()).toEqual([200, 409, 409, 409, 409]);
    expect((await me(courier)).activeOrders).toBe(1);
  });
});

describe("POST /orders/:id/offer/accept with COURIER_MAX_ACTIVE 1", () => {
  test("a courier offered an order that meanwhile claimed another cannot accept the offer (409); the order stays unassigned", async () => {
    const courier = await server.register("courier");
    await onDuty(server, courier, 300);
    const ws = await WsClient.open(server.url.replace("http", "ws") + "/ws", courier.token);
    try {
      await ws.subscribe(`courier:${courier.user.id}`);
      const offered = await orderIn(server, c, "accepted");
      await ws.next((f) => f.type === "offer" && f.orderId === offered.id);
      // Offers are made only to couriers below the limit; a claim meanwhile fills it.
      const claimed = await orderIn(server, c, "accepted");
      expect((await claim(courier, claimed.id)).status).toBe(200);
      const accept = await server.request("POST", `/orders/${offered.id}/offer/accept`, { token: courier.token });
      expect(accept.status).toBe(409);
      expect(accept.body.detail).toContain("COURIER_MAX_ACTIVE");
      const stored = await server.request("GET", `/orders/${offered.id}`, { token: c.customer.token });
      expect(stored.body.courierId).toBeNull();
      expect((await me(courier)).activeOrders).toBe(1);
    } finally {
      ws.close();
      await server.request("PUT", "/couriers/me/availability", { token: courier.token, body: { available: false } });
    }
  });
});

describe("slots left behind (a crash between taking a slot and committing, or before freeing it)", () => {
  test("a slot of a delivered order is freed by the next refused claim", async () => {
    const courier = await server.register("courier");
    const [a, b] = await Promise.all([orderIn(server, c, "accepted"), orderIn(server, c, "accepted")]);
    expect((await claim(courier, a.id)).status).toBe(200);
    await deliver(a.id, courier);
    // As if the instance died after committing `delivered` and before freeing the slot.
    expect(await couriers.takeSlots(courier.user.id, [a.id], 1, new Date())).toBe("taken");
    expect((await claim(courier, b.id)).status).toBe(200);
    expect((await couriers.slots(courier.user.id))?.map((s) => s.orderId)).toEqual([b.id]);
  });

  test("a slot for an order never assigned is kept during the grace (an assignment may be in flight), then freed", async () => {
    const courier = await server.register("courier");
    const [a, b] = await Promise.all([orderIn(server, c, "accepted"), orderIn(server, c, "accepted")]);
    // As if an instance took the slot for `a` and died before its compare-and-set.
    expect(await couriers.takeSlots(courier.user.id, [a.id], 1, new Date())).toBe("taken");
    expect((await claim(courier, b.id)).status).toBe(409);
    await couriers.replaceSlots(courier.user.id, await couriers.slots(courier.user.id), [{ orderId: a.id, at: new Date(Date.now() - PENDING_SLOT_GRACE_MS - 1) }]);
    expect((await claim(courier, b.id)).status).toBe(200);
    const stored = await server.request("GET", `/orders/${a.id}`, { token: c.customer.token });
    expect(stored.body.courierId).toBeNull();
  });

  test("orders assigned before slots existed are counted (the first reservation seeds them from the orders)", async () => {
    const courier = await server.register("courier");
    const [a, b] = await Promise.all([orderIn(server, c, "accepted"), orderIn(server, c, "accepted")]);
    expect((await claim(courier, a.id)).status).toBe(200);
    // Drop the slots field entirely, as on a database written by an older server.
    await server.deps.db.db.collection("couriers").updateOne({ _id: courier.user.id as never }, { $unset: { carrying: "" } });
    expect(await couriers.slots(courier.user.id)).toBeNull();
    expect((await claim(courier, b.id)).status).toBe(409);
    expect((await couriers.slots(courier.user.id))?.map((s) => s.orderId)).toEqual([a.id]);
  });
});

describe("the same courier's claim of one order through two instances at once (chaos F4, second cause)", () => {
  test("the losing attempt does not give back the slot the winner holds: the courier stays at its limit", async () => {
    const courier = await server.register("courier");
    const [a, b] = await Promise.all([orderIn(server, c, "accepted"), orderIn(server, c, "accepted")]);
    const repo = new OrderRepository(server.deps.db.db);
    const instance = (id: string) => {
      const r = new OrderActorRegistry({ repo, bus: new LocalEventBus(log), clock: { now: () => new Date() }, log, instanceId: id, idleSeconds: 300, capacity: capacity(1) });
      r.start();
      return r;
    };
    const [one, two] = [instance("I1"), instance("I2")];
    const actor = { role: "courier" as const, id: courier.user.id };
    // Both load the order unassigned, both find the slot (one takes it), one commits, the other loses and sees it done.
    await Promise.all([one.inspect(a.id), two.inspect(a.id)]);
    const results = await Promise.allSettled([one.send(a.id, { event: { type: "ASSIGN_COURIER", actor } }), two.send(a.id, { event: { type: "ASSIGN_COURIER", actor } })]);
    expect(results.every((r) => r.status === "fulfilled")).toBe(true);
    expect((await couriers.slots(courier.user.id))?.map((s) => s.orderId)).toEqual([a.id]);
    expect((await claim(courier, b.id)).status).toBe(409);
    await Promise.all([one.stop(), two.stop()]);
  });
});

describe("bundles (several orders for one courier at once)", () => {
  test("slots for a bundle are taken all or none, and count against the limit like single orders", async () => {
    const courier = await server.register("courier");
    const [a, b, d] = await Promise.all([orderIn(server, c, "accepted"), orderIn(server, c, "accepted"), orderIn(server, c, "accepted")]);
    const three = capacity(2);
    await expect(three.reserve(courier.user.id, [a.id, b.id, d.id])).rejects.toBeInstanceOf(CourierAtLimit);
    await three.reserve(courier.user.id, [a.id, b.id]);
    // Renewing the bundle is not a second reservation.
    await three.reserve(courier.user.id, [a.id, b.id]);
    await expect(three.reserve(courier.user.id, [d.id])).rejects.toBeInstanceOf(CourierAtLimit);
    expect((await couriers.slots(courier.user.id))?.map((s) => s.orderId).sort()).toEqual([a.id, b.id].sort());
    // Two bundles raced for one courier with room for two: one wins whole, the other gets nothing.
    const other = await server.register("courier");
    const [e, f, g, h] = await Promise.all([orderIn(server, c, "accepted"), orderIn(server, c, "accepted"), orderIn(server, c, "accepted"), orderIn(server, c, "accepted")]);
    const results = await Promise.allSettled([three.reserve(other.user.id, [e.id, f.id]), capacity(2).reserve(other.user.id, [g.id, h.id])]);
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    expect((await couriers.slots(other.user.id))?.length).toBe(2);
  });
});

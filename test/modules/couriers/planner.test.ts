import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Lease } from "../../../src/db/leases";
import { startTestServer, type Registered, type TestServer } from "../../helpers/server";
import type { WsClient } from "../../helpers/ws";
import { createRestaurant, RESTAURANT_AT } from "../orders/fixtures";
import { courierSocket, north, onDuty, type LatLng } from "./fixtures";

/**
 * DISPATCH_POLICY=batched over real HTTP and WebSocket (docs/dispatch.md, Planning): the planner
 * runs every DISPATCH_INTERVAL_SECONDS under a lease, bundles orders of one restaurant when they
 * outnumber free couriers, and a bundle is one offer, accepted or declined whole.
 */
let server: TestServer;
let scenes = 0;
const sockets: WsClient[] = [];

beforeAll(async () => {
  server = await startTestServer({
    DISPATCH_POLICY: "batched",
    DISPATCH_INTERVAL_SECONDS: "1",
    DISPATCH_REPOSITION_MINUTES: "40",
    COURIER_MAX_ACTIVE: "3",
    COURIER_LOCATION_INTERVAL_MS: "0",
    TIMER_SWEEP_INTERVAL_MS: "50",
    OFFER_TTL_SECONDS: "30",
  });
});
afterAll(async () => {
  for (const s of sockets) s.close();
  await server?.stop();
});

type Scene = { owner: Registered; customer: Registered; restaurantId: string; at: LatLng };

async function scene(overrides: Record<string, unknown> = {}): Promise<Scene> {
  const at = north(RESTAURANT_AT, 30_000 * ++scenes);
  const [owner, customer] = await Promise.all([server.register("restaurant"), server.register("customer")]);
  const r = await createRestaurant(server, owner, { location: at, ...overrides });
  return { owner, customer, restaurantId: r.id, at };
}

/** An order of the scene's restaurant, moved to ready_for_pickup (the planner plans it at once). */
async function readyOrder(s: Scene, dropoffMeters: number): Promise<string> {
  const placed = await server.request("POST", "/orders", {
    token: s.customer.token,
    body: { restaurantId: s.restaurantId, items: [{ menuItemId: "pizza", quantity: 1 }], deliveryLocation: north(s.at, dropoffMeters) },
  });
  expect(placed.status).toBe(201);
  for (const status of ["accepted", "preparing", "ready_for_pickup"]) {
    expect((await server.request("PATCH", `/orders/${placed.body.id}`, { token: s.owner.token, body: { status } })).status).toBe(200);
  }
  return placed.body.id;
}

async function courierAt(s: Scene, meters: number): Promise<{ who: Registered; ws: WsClient }> {
  const who = await server.register("courier");
  // Listening before going on duty: offers are transient frames, and a round may come at once.
  const ws = await courierSocket(server, who);
  sockets.push(ws);
  await onDuty(server, who, north(s.at, meters));
  return { who, ws };
}

describe("DISPATCH_POLICY=batched", () => {
  test("two ready orders of one restaurant and one free courier: one offer frame lists both; accepting it assigns both", async () => {
    const s = await scene();
    const a = await readyOrder(s, 800);
    const b = await readyOrder(s, 1_000);
    const k = await courierAt(s, 300);
    const offer = await k.ws.next((f) => f.type === "offer", 20_000);
    expect([...(offer.orderIds as string[])].sort()).toEqual([a, b].sort());
    expect(offer.orders).toHaveLength(2);
    expect(offer.orderId).toBe((offer.orderIds as string[])[0]);
    const me = await server.request("GET", "/couriers/me", { token: k.who.token });
    expect(me.body.offer?.orderId).toBe(offer.orderId);

    const accepted = await server.request("POST", `/orders/${offer.orderId}/offer/accept`, { token: k.who.token });
    expect(accepted.status).toBe(200);
    for (const id of [a, b]) {
      const o = await server.request("GET", `/orders/${id}`, { token: s.customer.token });
      expect(o.body.courierId).toBe(k.who.user.id);
      expect(o.body.dispatch.state).toBe("assigned");
    }
  }, 60_000);

  test("declining a bundle declines every order of it: neither is offered to that courier again, another courier gets them", async () => {
    const s = await scene();
    const a = await readyOrder(s, 800);
    const b = await readyOrder(s, 900);
    const first = await courierAt(s, 200);
    const offer = await first.ws.next((f) => f.type === "offer", 20_000);
    expect([...(offer.orderIds as string[])].sort()).toEqual([a, b].sort());
    expect((await server.request("POST", `/orders/${offer.orderId}/offer/decline`, { token: first.who.token })).status).toBe(204);
    const second = await courierAt(s, 2_000);
    // The declining courier is free again but excluded from both, so it no longer counts against
    // bundling: the second courier may get them one at a time.
    const got = new Set<string>();
    while (got.size < 2) {
      const next = await second.ws.next((f) => f.type === "offer", 20_000);
      for (const id of next.orderIds as string[]) got.add(id);
      expect((await server.request("POST", `/orders/${next.orderId}/offer/accept`, { token: second.who.token })).status).toBe(200);
    }
    expect([...got].sort()).toEqual([a, b].sort());
    expect(first.ws.frames.filter((f) => f.type === "offer")).toHaveLength(1);
  }, 60_000);
});

describe("ready times: readyInMinutes (PATCH accepted|preparing)", () => {
  async function acceptedOrder(s: Scene, body: Record<string, unknown>) {
    const placed = await server.request("POST", "/orders", {
      token: s.customer.token,
      body: { restaurantId: s.restaurantId, items: [{ menuItemId: "pizza", quantity: 1 }], deliveryLocation: north(s.at, 1_000) },
    });
    expect(placed.status).toBe(201);
    const res = await server.request("PATCH", `/orders/${placed.body.id}`, { token: s.owner.token, body: { status: "accepted", ...body } });
    return { id: placed.body.id as string, res };
  }

  test("a courier is not sent 30 minutes before the food (the restaurant's prepTimeMinutes), only told to head there (DISPATCH_REPOSITION_MINUTES), but is offered food ready now (readyInMinutes: 0) at once", async () => {
    const slow = await scene({ prepTimeMinutes: 30 });
    const fast = await scene({ prepTimeMinutes: 30 });
    const a = await acceptedOrder(slow, {});
    const b = await acceptedOrder(fast, { readyInMinutes: 0 });
    expect([a.res.status, b.res.status]).toEqual([200, 200]);
    const k1 = await courierAt(slow, 300);
    const k2 = await courierAt(fast, 300);
    const offer = await k2.ws.next((f) => f.type === "offer", 20_000);
    expect(offer.orderIds).toEqual([b.id]);
    // Several rounds later the courier near the slow kitchen has still not been sent.
    const hint = await k1.ws.next((f) => f.type === "courier.reposition", 20_000);
    expect(hint).toMatchObject({ topic: `courier:${k1.who.user.id}`, restaurantId: slow.restaurantId, pickup: { lat: slow.at.lat, lng: slow.at.lng } });
    expect(new Date(hint.expectedReadyAt as string).getTime()).toBeGreaterThan(Date.now() + 25 * 60_000);
    await Bun.sleep(3_000);
    expect(k1.ws.frames.filter((f) => f.type === "offer")).toHaveLength(0);
    // A hint, not a reservation, and sent once while its target stays the same.
    expect(k1.ws.frames.filter((f) => f.type === "courier.reposition")).toHaveLength(1);
    expect((await server.request("GET", "/couriers/me", { token: k1.who.token })).body.offer ?? null).toBeNull();
  }, 60_000);

  test("readyInMinutes with another status is refused (422) and changes nothing; out of range is a 400", async () => {
    const s = await scene();
    const { id } = await acceptedOrder(s, {});
    const bad = await server.request("PATCH", `/orders/${id}`, { token: s.owner.token, body: { status: "cancelled", readyInMinutes: 5 } });
    expect(bad.status).toBe(422);
    expect((await server.request("GET", `/orders/${id}`, { token: s.owner.token })).body.status).toBe("accepted");
    const range = await server.request("PATCH", `/orders/${id}`, { token: s.owner.token, body: { status: "preparing", readyInMinutes: -1 } });
    expect(range.status).toBe(400);
    expect((await server.request("PATCH", `/orders/${id}`, { token: s.owner.token, body: { status: "preparing", readyInMinutes: 12 } })).status).toBe(200);
  });
});

describe("the planning lease", () => {
  test("one holder at a time; another takes it once it lapses or is released", async () => {
    const db = server.deps.db.db;
    const name = `test-${crypto.randomUUID()}`;
    const a = new Lease(db, name, "a");
    const b = new Lease(db, name, "b");
    const t0 = new Date("2030-01-01T00:00:00Z");
    expect(await a.acquire(t0, 1_000)).toBe(true);
    expect(await b.acquire(t0, 1_000)).toBe(false);
    expect(await a.acquire(new Date(t0.getTime() + 500), 1_000)).toBe(true);
    expect(await b.acquire(new Date(t0.getTime() + 1_200), 1_000)).toBe(false);
    expect(await b.acquire(new Date(t0.getTime() + 1_600), 1_000)).toBe(true);
    await b.release();
    expect(await a.acquire(new Date(t0.getTime() + 1_700), 1_000)).toBe(true);
  });
});

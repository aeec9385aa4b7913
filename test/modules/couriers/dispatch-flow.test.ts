import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startTestServer, type Registered, type TestServer } from "../../helpers/server";
import { WsClient } from "../../helpers/ws";
import { createRestaurant, RESTAURANT_AT, type Order } from "../orders/fixtures";
import { courierSocket, eventually, isOffer, north, onDuty, type LatLng } from "./fixtures";

/**
 * Automatic dispatch over real HTTP and WebSocket (docs/dispatch.md). Each test gets its own
 * restaurant 30 km from the others, so couriers of one test are never in range of another's.
 */
let server: TestServer;
let admin: Registered;
let scenes = 0;
const sockets: WsClient[] = [];

const OFFER_TTL_SECONDS = 2;

beforeAll(async () => {
  server = await startTestServer({
    COURIER_LOCATION_INTERVAL_MS: "0",
    TIMER_SWEEP_INTERVAL_MS: "50",
    OFFER_TTL_SECONDS: String(OFFER_TTL_SECONDS),
    DISPATCH_RETRY_SECONDS: "1",
    DISPATCH_MAX_ATTEMPTS: "3",
  });
  admin = await server.register("admin");
});
afterAll(async () => {
  for (const s of sockets) s.close();
  await server?.stop();
});

type Scene = { owner: Registered; customer: Registered; restaurantId: string; at: LatLng; dropoff: LatLng };

async function scene(): Promise<Scene> {
  const at = north(RESTAURANT_AT, 30_000 * ++scenes);
  const [owner, customer] = await Promise.all([server.register("restaurant"), server.register("customer")]);
  const r = await createRestaurant(server, owner, { location: at });
  return { owner, customer, restaurantId: r.id, at, dropoff: north(at, 1_500) };
}

/** A courier on duty `meters` from the scene's restaurant, listening on its topic. */
async function courierAt(s: Scene, meters: number): Promise<{ who: Registered; ws: WsClient }> {
  const who = await server.register("courier");
  await onDuty(server, who, north(s.at, meters));
  const ws = await courierSocket(server, who);
  sockets.push(ws);
  return { who, ws };
}

async function acceptedOrder(s: Scene): Promise<Order> {
  const placed = await server.request("POST", "/orders", {
    token: s.customer.token,
    body: { restaurantId: s.restaurantId, items: [{ menuItemId: "pizza", quantity: 1 }], deliveryLocation: s.dropoff },
  });
  expect(placed.status).toBe(201);
  const accepted = await server.request("PATCH", `/orders/${placed.body.id}`, { token: s.owner.token, body: { status: "accepted" } });
  expect(accepted.status).toBe(200);
  return accepted.body;
}

const getOrder = (who: Registered, id: string) => server.request("GET", `/orders/${id}`, { token: who.token });
const offerAction = (who: Registered, id: string, action: "accept" | "decline") => server.request("POST", `/orders/${id}/offer/${action}`, { token: who.token });
const dispatchOf = async (s: Scene, id: string) => (await getOrder(s.customer, id)).body.dispatch;

describe("automatic dispatch: the nearest dispatchable courier gets the offer", () => {
  test("accepting an order offers it on courier:<id> to the nearest available courier; accepting the offer assigns it", async () => {
    const s = await scene();
    const near = await courierAt(s, 300);
    const far = await courierAt(s, 2_000);
    const closerButOff = await server.register("courier");
    await onDuty(server, closerButOff, north(s.at, 50));
    await server.request("PUT", "/couriers/me/availability", { token: closerButOff.token, body: { available: false } });
    const customerWs = await WsClient.open(server.url.replace(/^http/, "ws") + "/ws", s.customer.token);
    sockets.push(customerWs);

    const order = await acceptedOrder(s);
    expect((await customerWs.subscribe(`order:${order.id}`)).type).toBe("subscribed");
    const offer = await near.ws.next(isOffer(order.id));
    expect(offer).toEqual({
      type: "offer",
      topic: `courier:${near.who.user.id}`,
      orderId: order.id,
      expiresAt: expect.any(String),
      pickup: s.at,
      dropoff: s.dropoff,
      distanceMeters: 300,
    });
    const ttl = Date.parse(offer.expiresAt) - Date.now();
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(OFFER_TTL_SECONDS * 1000);
    expect(await dispatchOf(s, order.id)).toEqual({ state: "offered", attempts: 1 });
    expect((await server.request("GET", "/couriers/me", { token: near.who.token })).body.offer).toEqual({ orderId: order.id, expiresAt: offer.expiresAt });

    const taken = await offerAction(near.who, order.id, "accept");
    expect(taken.status).toBe(200);
    expect(taken.body).toMatchObject({ courierId: near.who.user.id, status: "accepted", dispatch: { state: "assigned", attempts: 1 } });
    expect(taken.body.history.slice(-3).map((h: { event: string; by: { role: string; id: string } }) => [h.event, h.by.role])).toEqual([
      ["ACCEPT", "restaurant"],
      ["OFFER", "system"],
      ["OFFER_ACCEPT", "courier"],
    ]);
    // order.updated to the parties: the customer's order topic sees the assignment.
    const updated = await customerWs.next((f) => f.type === "order.updated" && f.event === "OFFER_ACCEPT");
    expect(updated.order.courierId).toBe(near.who.user.id);
    // Accepting twice is a retry; the courier now carries it and gets no more offers.
    expect((await offerAction(near.who, order.id, "accept")).status).toBe(200);
    const me = (await server.request("GET", "/couriers/me", { token: near.who.token })).body;
    expect(me).toMatchObject({ offer: null, activeOrders: 1, dispatchable: false });
    // The others never heard of it.
    expect((await far.ws.drain()).filter((f) => f.type === "offer")).toEqual([]);
    expect((await offerAction(far.who, order.id, "accept")).status).toBe(404);
  });

  test("a decline moves the order to the next courier; a decliner is never offered it again; after the last, it waits unassigned", async () => {
    const s = await scene();
    const first = await courierAt(s, 200);
    const second = await courierAt(s, 1_200);
    const order = await acceptedOrder(s);
    await first.ws.next(isOffer(order.id));
    expect((await offerAction(second.who, order.id, "decline")).status).toBe(404); // not its offer
    expect((await offerAction(first.who, order.id, "decline")).status).toBe(204);
    await second.ws.next(isOffer(order.id));
    expect(await dispatchOf(s, order.id)).toEqual({ state: "offered", attempts: 2 });
    expect((await offerAction(first.who, order.id, "accept")).status).toBe(409); // its offer is over
    expect((await offerAction(second.who, order.id, "decline")).status).toBe(204);
    // Nobody left who has not declined: searching (unassigned), retried every DISPATCH_RETRY_SECONDS without re-offering.
    await eventually(() => dispatchOf(s, order.id), (d) => d.state === "searching");
    await Bun.sleep(1_300);
    expect(await dispatchOf(s, order.id)).toEqual({ state: "searching", attempts: 2 });
    expect(first.ws.frames.filter(isOffer(order.id)).length).toBe(1);
    expect(second.ws.frames.filter(isOffer(order.id)).length).toBe(1);
    const events = (await getOrder(s.customer, order.id)).body.history.map((h: { event: string }) => h.event);
    expect(events).toEqual(["PLACE", "ACCEPT", "OFFER", "OFFER_DECLINE", "OFFER", "OFFER_DECLINE"]);
  });

  test("an offer nobody answers expires after OFFER_TTL_SECONDS and goes to the next courier (offer.revoked to the first)", async () => {
    const s = await scene();
    const sleepy = await courierAt(s, 100);
    const next = await courierAt(s, 900);
    const order = await acceptedOrder(s);
    const offer = await sleepy.ws.next(isOffer(order.id));
    const second = await next.ws.next(isOffer(order.id), (OFFER_TTL_SECONDS + 3) * 1000);
    const late = Date.now() - Date.parse(offer.expiresAt);
    expect(late).toBeGreaterThanOrEqual(0);
    expect(late).toBeLessThan(1_500);
    expect(second.orderId).toBe(order.id);
    expect(await sleepy.ws.next((f) => f.type === "offer.revoked")).toMatchObject({ orderId: order.id, reason: "expired" });
    const history = (await getOrder(s.customer, order.id)).body.history;
    expect(history.map((h: { event: string }) => h.event)).toEqual(["PLACE", "ACCEPT", "OFFER", "OFFER_EXPIRE", "OFFER"]);
    expect(history[3]).toMatchObject({ by: { role: "system" }, reason: "offer_expired" });
    expect((await offerAction(sleepy.who, order.id, "accept")).status).toBe(409);
    expect((await offerAction(next.who, order.id, "accept")).status).toBe(200);
  });

  test("nobody within DISPATCH_RADIUS_METERS: the order waits unassigned and is retried until a courier comes in range", async () => {
    const s = await scene();
    const outside = await server.register("courier");
    await onDuty(server, outside, north(s.at, 8_500));
    const ws = await courierSocket(server, outside);
    sockets.push(ws);
    const order = await acceptedOrder(s);
    await eventually(() => server.request("GET", `/orders/${order.id}`, { token: s.owner.token }), (r) => r.body.dispatch?.state === "searching");
    expect((await ws.drain()).filter((f) => f.type === "offer")).toEqual([]);
    // Nothing a party sees changed while it waits: no history entries, same version.
    expect((await getOrder(s.customer, order.id)).body.version).toBe(order.version);
    await onDuty(server, outside, north(s.at, 7_000));
    const offer = await ws.next(isOffer(order.id), 3_000);
    expect(offer.distanceMeters).toBe(7_000);
  });

  test("after DISPATCH_MAX_ATTEMPTS offers in a round the order waits, then a new round starts", async () => {
    const s = await scene();
    const couriers = await Promise.all([100, 200, 300, 400].map((m) => courierAt(s, m)));
    const order = await acceptedOrder(s);
    for (const c of couriers.slice(0, 3)) {
      await c.ws.next(isOffer(order.id));
      expect((await offerAction(c.who, order.id, "decline")).status).toBe(204);
    }
    // Three offers in this round (DISPATCH_MAX_ATTEMPTS=3): the fourth courier waits for the next round.
    await eventually(() => dispatchOf(s, order.id), (d) => d.state === "searching" && d.attempts === 3);
    expect(couriers[3].ws.frames.filter(isOffer(order.id))).toEqual([]);
    const fourth = await couriers[3].ws.next(isOffer(order.id), 3_000);
    expect(fourth.distanceMeters).toBe(400);
  });
});

describe("dispatch invariants", () => {
  test("one courier never holds two offers at once: a second order waits until the courier is free of the first", async () => {
    const s = await scene();
    const only = await courierAt(s, 150);
    const [a, b] = await Promise.all([acceptedOrder(s), acceptedOrder(s)]);
    const firstOffer = await only.ws.next((f) => f.type === "offer");
    const other = firstOffer.orderId === a.id ? b : a;
    expect(await dispatchOf(s, other.id)).toEqual({ state: "searching", attempts: 0 });
    expect((await only.ws.drain()).filter((f) => f.type === "offer")).toEqual([]);
    // Declined: the courier is free again, and the waiting order's next round offers it.
    expect((await offerAction(only.who, firstOffer.orderId, "decline")).status).toBe(204);
    const secondOffer = await only.ws.next(isOffer(other.id), 3_000);
    expect(secondOffer.orderId).toBe(other.id);
  });

  test("two couriers never hold the same order: the offered courier's accept races a manual claim, exactly one wins", async () => {
    const s = await scene();
    for (let round = 0; round < 6; round++) {
      const offered = await courierAt(s, 100 + round);
      const claimer = await server.register("courier");
      const order = await acceptedOrder(s);
      await offered.ws.next(isOffer(order.id));
      const [accept, claim] = await Promise.all([
        offerAction(offered.who, order.id, "accept"),
        server.request("POST", `/orders/${order.id}/claim`, { token: claimer.token }),
      ]);
      expect([accept.status, claim.status].sort()).toEqual([200, 409]);
      const final = (await getOrder(admin, order.id)).body;
      const winner = accept.status === 200 ? offered.who.user.id : claimer.user.id;
      expect(final.courierId).toBe(winner);
      expect(final.history.filter((h: { event: string }) => h.event === "OFFER_ACCEPT" || h.event === "ASSIGN_COURIER").length).toBe(1);
      await server.request("PATCH", `/orders/${order.id}`, { token: admin.token, body: { status: "cancelled" } });
      await server.request("PUT", "/couriers/me/availability", { token: offered.who.token, body: { available: false } });
    }
    // Six rounds of sign-ups and races: about 6 s on a loaded 2-core machine, past the 5 s default.
  }, 20_000);

  test("a manual claim wins while an offer is out (the offer is revoked and the courier freed); nobody claims an assigned order", async () => {
    const s = await scene();
    const offered = await courierAt(s, 100);
    const claimer = await server.register("courier");
    const order = await acceptedOrder(s);
    await offered.ws.next(isOffer(order.id));
    const claim = await server.request("POST", `/orders/${order.id}/claim`, { token: claimer.token });
    expect(claim.status).toBe(200);
    expect(claim.body).toMatchObject({ courierId: claimer.user.id, dispatch: { state: "assigned", attempts: 1 } });
    expect(await offered.ws.next((f) => f.type === "offer.revoked")).toMatchObject({ orderId: order.id, reason: "taken" });
    expect((await offerAction(offered.who, order.id, "accept")).status).toBe(409);
    await eventually(() => server.request("GET", "/couriers/me", { token: offered.who.token }), (r) => r.body.offer === null && r.body.dispatchable === true);
    const third = await server.register("courier");
    expect((await server.request("POST", `/orders/${order.id}/claim`, { token: third.token })).status).toBe(409);
  });

  test("cancelling an offered order revokes the offer and frees the courier", async () => {
    const s = await scene();
    const offered = await courierAt(s, 100);
    const order = await acceptedOrder(s);
    await offered.ws.next(isOffer(order.id));
    expect((await server.request("PATCH", `/orders/${order.id}`, { token: s.owner.token, body: { status: "cancelled" } })).status).toBe(200);
    expect(await offered.ws.next((f) => f.type === "offer.revoked")).toMatchObject({ orderId: order.id, reason: "cancelled" });
    await eventually(() => server.request("GET", "/couriers/me", { token: offered.who.token }), (r) => r.body.offer === null);
    expect((await offerAction(offered.who, order.id, "accept")).status).toBe(409);
  });

  test("restaurant and customer see dispatch progress on the order and on their topics", async () => {
    const s = await scene();
    const courier = await courierAt(s, 100);
    const restaurantWs = await WsClient.open(server.url.replace(/^http/, "ws") + "/ws", s.owner.token);
    sockets.push(restaurantWs);
    expect((await restaurantWs.subscribe(`restaurant:${s.restaurantId}`)).type).toBe("subscribed");
    const order = await acceptedOrder(s);
    expect((order as Order & { dispatch: unknown }).dispatch).toEqual({ state: "searching", attempts: 0 });
    const offered = await restaurantWs.next((f) => f.type === "order.updated" && f.orderId === order.id && f.event === "OFFER");
    expect(offered.order.dispatch).toEqual({ state: "offered", attempts: 1 });
    await courier.ws.next(isOffer(order.id));
    await offerAction(courier.who, order.id, "accept");
    const assigned = await restaurantWs.next((f) => f.type === "order.updated" && f.orderId === order.id && f.event === "OFFER_ACCEPT");
    expect(assigned.order.dispatch).toEqual({ state: "assigned", attempts: 1 });
    expect((await getOrder(s.owner, order.id)).body.dispatch).toEqual({ state: "assigned", attempts: 1 });
  });
});

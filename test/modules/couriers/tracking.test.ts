import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { distanceMeters } from "../../../src/geo";
import { startTestServer, type Registered, type TestServer } from "../../helpers/server";
import { WsClient, type Frame } from "../../helpers/ws";
import { createRestaurant, RESTAURANT_AT } from "../orders/fixtures";
import { courierSocket, isOffer, north, onDuty, type LatLng } from "./fixtures";

/**
 * What the position stream does for an assigned order: the arrival geofence
 * (`courier.approaching` once per target) and ETAs (on every transition, and from positions at
 * most every ETA_REFRESH_SECONDS), over real WebSocket clients.
 */
let server: TestServer;
const sockets: WsClient[] = [];
const SPEED = 6;

beforeAll(async () => {
  server = await startTestServer({ COURIER_LOCATION_INTERVAL_MS: "0", ETA_REFRESH_SECONDS: "1", APPROACH_METERS: "200", COURIER_SPEED_MPS: String(SPEED) });
});
afterAll(async () => {
  for (const s of sockets) s.close();
  await server?.stop();
});

async function socket(who: Registered, topic: string): Promise<WsClient> {
  const ws = await WsClient.open(server.url.replace(/^http/, "ws") + "/ws", who.token);
  sockets.push(ws);
  expect((await ws.subscribe(topic)).type).toBe("subscribed");
  return ws;
}

describe("an assigned courier's positions", () => {
  test("announce courier.approaching once per target (pickup, then dropoff) and refresh the ETA at most every ETA_REFRESH_SECONDS", async () => {
    const at = north(RESTAURANT_AT, 300_000);
    const dropoff = north(at, 2_000);
    const [owner, customer, courier] = await Promise.all([server.register("restaurant"), server.register("customer"), server.register("courier")]);
    const restaurant = await createRestaurant(server, owner, { location: at, prepTimeMinutes: 10 });
    const start = north(at, 3_000);
    await onDuty(server, courier, start);
    const courierWs = await courierSocket(server, courier);
    sockets.push(courierWs);
    const restaurantWs = await socket(owner, `restaurant:${restaurant.id}`);

    const placed = await server.request("POST", "/orders", { token: customer.token, body: { restaurantId: restaurant.id, items: [{ menuItemId: "pizza", quantity: 1 }], deliveryLocation: dropoff } });
    expect(placed.status).toBe(201);
    const orderId: string = placed.body.id;
    // Placed: ready after the prep time, then the ride to the customer.
    const placedAt = Date.parse(placed.body.createdAt);
    expect(Date.parse(placed.body.eta.pickupAt) - placedAt).toBeGreaterThanOrEqual(10 * 60_000);
    expect(Date.parse(placed.body.eta.pickupAt) - placedAt).toBeLessThanOrEqual(10 * 60_000 + 1_000);
    const customerWs = await socket(customer, `order:${orderId}`);
    await server.request("PATCH", `/orders/${orderId}`, { token: owner.token, body: { status: "accepted" } });
    await courierWs.next(isOffer(orderId));
    const accepted = await server.request("POST", `/orders/${orderId}/offer/accept`, { token: courier.token });
    expect(accepted.status).toBe(200);
    // Refreshed with the transition: the courier 3 km away (~500 s at 6 m/s) is sooner than the food (10 min).
    const assignedEta = accepted.body.eta;
    expect(Date.parse(assignedEta.pickupAt) - Date.parse(accepted.body.updatedAt)).toBeGreaterThan(9 * 60_000);

    // One fix at a time, each awaited until it is forwarded to the order (fix times strictly increase).
    let lastFixAt = 0;
    const send = async (p: LatLng) => {
      lastFixAt = Math.max(Date.now(), lastFixAt + 1);
      courierWs.send({ op: "location", lat: p.lat, lng: p.lng, at: lastFixAt });
      await customerWs.next((f) => f.type === "courier.location" && f.lat === p.lat && Date.parse(f.at) === lastFixAt);
    };
    const approaching = (ws: WsClient, target: string) => ws.frames.filter((f: Frame) => f.type === "courier.approaching" && f.orderId === orderId && f.target === target);

    // Far away: forwarded positions only. Then within 200 m of the restaurant: announced, once.
    await send(north(at, 1_500));
    await send(north(at, 150));
    const near = await customerWs.next((f) => f.type === "courier.approaching");
    expect(near).toEqual({ type: "courier.approaching", topic: `order:${orderId}`, orderId, courierId: courier.user.id, target: "pickup", distanceMeters: 150 });
    expect(await restaurantWs.next((f) => f.type === "courier.approaching")).toMatchObject({ topic: `restaurant:${restaurant.id}`, orderId, target: "pickup" });
    await send(north(at, 100));
    await send(at);
    await customerWs.drain();
    expect(approaching(customerWs, "pickup").length).toBe(1);

    // ETA from positions: one refresh per ETA_REFRESH_SECONDS, whatever the number of fixes.
    await Bun.sleep(1_050);
    const etaFramesBefore = customerWs.frames.filter((f) => f.type === "order.eta").length;
    const here = north(at, 600);
    await send(here);
    const etaFrame = await customerWs.next((f) => f.type === "order.eta");
    const refreshedAt = Date.now();
    for (let i = 1; i <= 4; i++) await send(north(at, 600 - i * 10));
    await customerWs.drain();
    if (Date.now() - refreshedAt < 1_000) expect(customerWs.frames.filter((f) => f.type === "order.eta").length).toBe(etaFramesBefore + 1);
    const stored = (await server.request("GET", `/orders/${orderId}`, { token: customer.token })).body;
    expect(stored.eta).toEqual(etaFrame.eta);
    // Food ready ~10 min after acceptance decides the pickup; the ride then takes 2 km at 6 m/s.
    expect(Date.parse(etaFrame.eta.deliveryAt) - Date.parse(etaFrame.eta.pickupAt)).toBeCloseTo((distanceMeters(at, dropoff) / SPEED) * 1000, -4);

    // Picked up: the target is now the customer's door.
    for (const status of ["preparing", "ready_for_pickup"]) expect((await server.request("PATCH", `/orders/${orderId}`, { token: owner.token, body: { status } })).status).toBe(200);
    const picked = await server.request("PATCH", `/orders/${orderId}`, { token: courier.token, body: { status: "picked_up" } });
    expect(picked.status).toBe(200);
    expect(picked.body.eta.pickupAt).toBe(picked.body.history.at(-1).at);
    const pickedUpdate = await customerWs.next((f) => f.type === "order.updated" && f.status === "picked_up");
    expect(pickedUpdate.order.eta).toEqual(picked.body.eta);
    await send(north(dropoff, 180));
    expect(await customerWs.next((f) => f.type === "courier.approaching" && f.target === "dropoff")).toMatchObject({ distanceMeters: 180 });
    await send(north(dropoff, 50));
    await send(dropoff);
    await customerWs.drain();
    expect(approaching(customerWs, "dropoff").length).toBe(1);
    expect(approaching(customerWs, "pickup").length).toBe(1);

    const delivered = await server.request("PATCH", `/orders/${orderId}`, { token: courier.token, body: { status: "delivered" } });
    expect(delivered.body.eta).toEqual({ pickupAt: picked.body.eta.pickupAt, deliveryAt: delivered.body.history.at(-1).at });
  });
});

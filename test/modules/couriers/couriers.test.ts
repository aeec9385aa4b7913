import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startTestServer, type Registered, type TestServer } from "../../helpers/server";
import { RESTAURANT_AT } from "../orders/fixtures";
import { north, onDuty } from "./fixtures";

/** The couriers' own routes and the admins' map (docs/dispatch.md), over real HTTP. */
let server: TestServer;
let admin: Registered;

beforeAll(async () => {
  server = await startTestServer({ COURIER_LOCATION_INTERVAL_MS: "0" });
  admin = await server.register("admin");
});
afterAll(async () => {
  await server?.stop();
});

describe("GET /couriers/me and PUT /couriers/me/availability", () => {
  test("a courier starts off duty with no position; going available is stored; only couriers may call", async () => {
    const courier = await server.register("courier");
    const me = await server.request("GET", "/couriers/me", { token: courier.token });
    expect(me.status).toBe(200);
    expect(me.body).toEqual({ id: courier.user.id, available: false, position: null, lastSeenAt: null, activeOrders: 0, dispatchable: false, offer: null });

    const on = await server.request("PUT", "/couriers/me/availability", { token: courier.token, body: { available: true } });
    expect(on.status).toBe(200);
    expect(on.body).toMatchObject({ available: true, dispatchable: false }); // no position yet
    expect((await server.request("GET", "/couriers/me", { token: courier.token })).body.available).toBe(true);
    const off = await server.request("PUT", "/couriers/me/availability", { token: courier.token, body: { available: false } });
    expect(off.body.available).toBe(false);

    const customer = await server.register("customer");
    expect((await server.request("GET", "/couriers/me", { token: customer.token })).status).toBe(403);
    expect((await server.request("PUT", "/couriers/me/availability", { token: customer.token, body: { available: true } })).status).toBe(403);
    expect((await server.request("GET", "/couriers/me")).status).toBe(401);
    const bad = await server.request("PUT", "/couriers/me/availability", { token: courier.token, body: { available: "yes" } });
    expect(bad.status).toBe(400);
  });
});

describe("PUT /couriers/me/location", () => {
  test("a fix is stored (202) and makes an available courier dispatchable; it follows the WebSocket op's rules", async () => {
    const courier = await server.register("courier");
    const at = await onDuty(server, courier, 300);
    const me = (await server.request("GET", "/couriers/me", { token: courier.token })).body;
    expect(me.position).toMatchObject({ lat: at.lat, lng: at.lng });
    expect(Date.now() - Date.parse(me.lastSeenAt)).toBeLessThan(5_000);
    expect(me.dispatchable).toBe(true);

    // Older than the newest known fix: refused, as on the socket.
    const stale = await server.request("PUT", "/couriers/me/location", { token: courier.token, body: { ...at, at: Date.now() - 60_000 } });
    expect(stale.status).toBe(409);
    const future = await server.request("PUT", "/couriers/me/location", { token: courier.token, body: { ...at, at: Date.now() + 120_000 } });
    expect(future.status).toBe(422);
    const invalid = await server.request("PUT", "/couriers/me/location", { token: courier.token, body: { lat: 91, lng: 0 } });
    expect(invalid.status).toBe(400);
    const badTime = await server.request("PUT", "/couriers/me/location", { token: courier.token, body: { ...at, at: "not a time" } });
    expect(badTime.status).toBe(400);
    const customer = await server.register("customer");
    expect((await server.request("PUT", "/couriers/me/location", { token: customer.token, body: at })).status).toBe(403);
  });
});

describe("GET /couriers (admins)", () => {
  test("couriers near a point, nearest first, with distances; radius bounds the search", async () => {
    const center = north(RESTAURANT_AT, 40_000); // away from the other tests' couriers
    const [a, b, c] = await Promise.all([server.register("courier"), server.register("courier"), server.register("courier")]);
    await onDuty(server, a, north(center, 900));
    await onDuty(server, b, north(center, 100));
    await onDuty(server, c, north(center, 3_000));
    const near = await server.request("GET", `/couriers?lat=${center.lat}&lng=${center.lng}&radius=1000`, { token: admin.token });
    expect(near.status).toBe(200);
    expect(near.body.items.map((i: { id: string }) => i.id)).toEqual([b.user.id, a.user.id]);
    expect(near.body.items[0].distanceMeters).toBeCloseTo(100, 0);
    expect(near.body.items[1].distanceMeters).toBeCloseTo(900, 0);
    expect(near.body.items[0]).toMatchObject({ available: true, dispatchable: true, activeOrders: 0, offer: null });
    const wide = await server.request("GET", `/couriers?lat=${center.lat}&lng=${center.lng}&radius=5000&limit=2`, { token: admin.token });
    expect(wide.body.items.map((i: { id: string }) => i.id)).toEqual([b.user.id, a.user.id]);

    expect((await server.request("GET", `/couriers?lat=${center.lat}&lng=${center.lng}`, { token: a.token })).status).toBe(403);
    expect((await server.request("GET", `/couriers?lat=${center.lat}&lng=${center.lng}&radius=60000`, { token: admin.token })).status).toBe(400);
    expect((await server.request("GET", `/couriers?lng=${center.lng}`, { token: admin.token })).status).toBe(400);
  });
});

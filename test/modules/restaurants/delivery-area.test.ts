import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { COLLECTIONS } from "../../../src/db/mongo";
import type { Position } from "../../../src/modules/restaurants/area";
import { startTestServer, type Registered, type TestServer } from "../../helpers/server";

/** Delivery areas over real HTTP: validation (400 with the reason), discovery's delivers=true, orders outside (422). */
let server: TestServer;
let owner: Registered;
let customer: Registered;

beforeAll(async () => {
  server = await startTestServer();
  owner = await server.register("restaurant");
  customer = await server.register("customer");
});
afterAll(async () => {
  await server?.stop();
});

const HOME = { lat: 48.8566, lng: 2.3522 };
/** A closed square ring around (lng, lat), half-side d degrees. */
const square = (lng: number, lat: number, d: number): Position[] => [
  [lng - d, lat - d],
  [lng + d, lat - d],
  [lng + d, lat + d],
  [lng - d, lat + d],
  [lng - d, lat - d],
];
const MENU = [{ id: "pizza", name: "Pizza", priceCents: 1000 }];

async function create(body: Record<string, unknown>) {
  return server.request("POST", "/restaurants", { token: owner.token, body: { name: `R-${crypto.randomUUID().slice(0, 6)}`, location: HOME, menu: MENU, ...body } });
}
const place = (restaurantId: string, at: { lat: number; lng: number }) =>
  server.request("POST", "/orders", { token: customer.token, body: { restaurantId, items: [{ menuItemId: "pizza", quantity: 1 }], deliveryLocation: at } });
const restaurantCount = () => server.deps.db.db.collection(COLLECTIONS.restaurants).countDocuments({});

describe("deliveryArea on POST and PATCH /restaurants", () => {
  test("a Polygon with a hole is stored and returned as sent", async () => {
    const area = { type: "Polygon", coordinates: [square(2.3522, 48.8566, 0.02), square(2.3522, 48.8566, 0.004)] };
    const res = await create({ deliveryArea: area });
    expect(res.status).toBe(201);
    expect(res.body.deliveryArea).toEqual(area);
    expect((await server.request("GET", `/restaurants/${res.body.id}`)).body.deliveryArea).toEqual(area);
  });

  const invalid: Array<[string, unknown, string, string]> = [
    ["a ring that is not closed", { type: "Polygon", coordinates: [square(2.35, 48.85, 0.01).slice(0, 4).concat([[2.3, 48.9]])] }, "/deliveryArea/coordinates/0", "not closed"],
    ["a ring that crosses itself", { type: "Polygon", coordinates: [[[2.35, 48.85], [2.36, 48.86], [2.36, 48.85], [2.35, 48.86], [2.35, 48.85]]] }, "/deliveryArea/coordinates/0", "intersects itself"],
    ["a hole outside its shell", { type: "Polygon", coordinates: [square(2.35, 48.85, 0.01), square(2.45, 48.85, 0.001)] }, "/deliveryArea/coordinates/1", "not inside the outer ring"],
    ["overlapping polygons", { type: "MultiPolygon", coordinates: [[square(2.35, 48.85, 0.01)], [square(2.355, 48.85, 0.01)]] }, "/deliveryArea/coordinates/1", "overlaps"],
    [
      "1,001 vertices",
      {
        type: "Polygon",
        coordinates: [(() => {
          const ring: Position[] = Array.from({ length: 1001 }, (_, i) => [2.35 + 0.02 * Math.cos((2 * Math.PI * i) / 1001), 48.85 + 0.02 * Math.sin((2 * Math.PI * i) / 1001)]);
          return [...ring, ring[0]!];
        })()],
      },
      "/deliveryArea/coordinates",
      "at most 1000 vertices",
    ],
    ["a Point instead of an area", { type: "Point", coordinates: [2.35, 48.85] }, "/deliveryArea", ""],
    ["a position with a latitude of 91", { type: "Polygon", coordinates: [[[2.35, 48.85], [2.36, 91], [2.36, 48.85], [2.35, 48.85]]] }, "/deliveryArea", ""],
  ];
  for (const [what, area, path, reason] of invalid) {
    test(`${what}: 400 with the reason, nothing stored`, async () => {
      const before = await restaurantCount();
      const res = await create({ deliveryArea: area });
      expect(res.status).toBe(400);
      expect(res.headers.get("content-type")).toContain("application/problem+json");
      const errors = res.body.errors as Array<{ path: string; message: string }>;
      expect(errors.some((e) => e.path.startsWith(path) && e.message.includes(reason))).toBe(true);
      expect(await restaurantCount()).toBe(before);
    });
  }

  test("PATCH sets, refuses a bad area (400, unchanged) and removes it with null", async () => {
    const r = (await create({})).body;
    const area = { type: "MultiPolygon", coordinates: [[square(2.34, 48.85, 0.005)], [square(2.37, 48.85, 0.005)]] };
    const set = await server.request("PATCH", `/restaurants/${r.id}`, { token: owner.token, body: { deliveryArea: area } });
    expect(set.status).toBe(200);
    expect(set.body.deliveryArea).toEqual(area);
    const bad = await server.request("PATCH", `/restaurants/${r.id}`, { token: owner.token, body: { deliveryArea: { type: "Polygon", coordinates: [[[2.35, 48.85], [2.36, 48.86], [2.36, 48.85], [2.35, 48.86], [2.35, 48.85]]] } } });
    expect(bad.status).toBe(400);
    expect((await server.request("GET", `/restaurants/${r.id}`)).body.deliveryArea).toEqual(area);
    const removed = await server.request("PATCH", `/restaurants/${r.id}`, { token: owner.token, body: { deliveryArea: null } });
    expect(removed.status).toBe(200);
    expect(removed.body.deliveryArea).toBeUndefined();
  });

  test("the areas have a 2dsphere index", async () => {
    const indexes = await server.deps.db.db.collection(COLLECTIONS.restaurants).listIndexes().toArray();
    expect(indexes.find((i) => i.name === "deliveryArea_2dsphere")?.key).toEqual({ deliveryArea: "2dsphere" });
  });
});

describe("delivery areas decide discovery (delivers=true) and orders", () => {
  // A fresh corner of the map so other tests' restaurants stay out of the results.
  const C = { lat: 45.764, lng: 4.8357 };
  let shaped: { id: string };
  let ring: { id: string };
  let radiusOnly: { id: string };
  let elsewhere: { id: string };

  beforeAll(async () => {
    // An area reaching 3 km east of the restaurant although its radius is only 100 m.
    shaped = (await create({ location: C, deliveryRadiusMeters: 100, deliveryArea: { type: "Polygon", coordinates: [[[C.lng - 0.005, C.lat - 0.01], [C.lng + 0.04, C.lat - 0.01], [C.lng + 0.04, C.lat + 0.01], [C.lng - 0.005, C.lat + 0.01], [C.lng - 0.005, C.lat - 0.01]]] } })).body;
    // An area with a hole around the point (2 km east) asked below.
    ring = (await create({ location: C, deliveryArea: { type: "Polygon", coordinates: [square(C.lng + 0.026, C.lat, 0.02), square(C.lng + 0.026, C.lat, 0.003)] } })).body;
    // No area: a 5 km radius.
    radiusOnly = (await create({ location: C, deliveryRadiusMeters: 5000 })).body;
    // An area far west, with a huge radius: the area decides, the radius is not used.
    elsewhere = (await create({ location: C, deliveryRadiusMeters: 100_000, deliveryArea: { type: "Polygon", coordinates: [square(C.lng - 0.2, C.lat, 0.01)] } })).body;
  });

  const ids = async (at: { lat: number; lng: number }, delivers: boolean) => {
    const res = await server.request("GET", `/restaurants?lat=${at.lat}&lng=${at.lng}&radius=20000&limit=100${delivers ? "&delivers=true" : ""}`);
    expect(res.status).toBe(200);
    return new Set((res.body.items as Array<{ id: string }>).map((i) => i.id));
  };

  test("a point 2 km east: in the shaped area, in the other's hole, within the radius, outside the far area", async () => {
    const point = { lat: C.lat, lng: C.lng + 0.026 };
    const all = await ids(point, false);
    for (const r of [shaped, ring, radiusOnly, elsewhere]) expect(all.has(r.id)).toBe(true);
    const delivering = await ids(point, true);
    expect(delivering.has(shaped.id)).toBe(true);
    expect(delivering.has(ring.id)).toBe(false);
    expect(delivering.has(radiusOnly.id)).toBe(true);
    expect(delivering.has(elsewhere.id)).toBe(false);
  });

  test("a point 2.6 km east and 1.7 km north: in the ring area (outside its hole), outside the shaped one, within the 5 km radius", async () => {
    const point = { lat: C.lat + 0.015, lng: C.lng + 0.026 };
    const delivering = await ids(point, true);
    expect(delivering.has(ring.id)).toBe(true);
    expect(delivering.has(shaped.id)).toBe(false);
    expect(delivering.has(radiusOnly.id)).toBe(true);
  });

  test("placing an order: inside the area beyond the radius is 201; outside the area is 422 with the reason; nothing is created", async () => {
    expect((await place(shaped.id, { lat: C.lat, lng: C.lng + 0.03 })).status).toBe(201);
    const before = await server.deps.db.db.collection(COLLECTIONS.orders).countDocuments({ customerId: customer.user.id });
    const outside = await place(shaped.id, { lat: C.lat + 0.02, lng: C.lng });
    expect(outside.status).toBe(422);
    expect(outside.body.detail).toContain("outside the restaurant's delivery area");
    const inHole = await place(ring.id, { lat: C.lat, lng: C.lng + 0.026 });
    expect(inHole.status).toBe(422);
    const radiusIgnored = await place(elsewhere.id, { lat: C.lat, lng: C.lng + 0.001 });
    expect(radiusIgnored.status).toBe(422);
    expect(await server.deps.db.db.collection(COLLECTIONS.orders).countDocuments({ customerId: customer.user.id })).toBe(before);
  });
});

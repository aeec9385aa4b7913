import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { ObjectId } from "mongodb";
import { startTestServer, type Registered, type TestServer } from "../../helpers/server";

let srv: TestServer;
let owner: Registered;
let otherOwner: Registered;
let customer: Registered;
let admin: Registered;

beforeAll(async () => {
  srv = await startTestServer();
  [owner, otherOwner, customer, admin] = await Promise.all([srv.register("restaurant"), srv.register("restaurant"), srv.register("customer"), srv.register("admin")]);
});
afterAll(async () => {
  await srv?.stop();
});

const pizzeria = {
  name: "Pizzeria Uno",
  cuisines: ["Italian", "pizza"],
  location: { lat: 48.8566, lng: 2.3522 },
  address: "1 rue de Rivoli, Paris",
  openingHours: { tz: "Europe/Paris", weekly: [{ day: 5, open: "18:00", close: "01:00" }] },
  menu: [
    { name: "Margherita", priceCents: 950 },
    { id: "diavola", name: "Diavola", priceCents: 1150, available: false },
  ],
};

async function createRestaurant(by: Registered, body: Record<string, unknown> = pizzeria) {
  const res = await srv.request("POST", "/restaurants", { token: by.token, body });
  expect(res.status).toBe(201);
  return res.body;
}

describe("POST /restaurants", () => {
  test("when a restaurant user creates one then 201, the caller owns it, defaults apply and menu ids are made", async () => {
    const r = await createRestaurant(owner);
    // (Bun's toMatchObject writes asymmetric matchers into the received object, so none are used in it.)
    expect(r.id).toMatch(/^[0-9a-f]{24}$/);
    expect(r).toMatchObject({
      ownerId: owner.user.id,
      name: "Pizzeria Uno",
      cuisines: ["Italian", "pizza"],
      location: { lat: 48.8566, lng: 2.3522 },
      address: "1 rue de Rivoli, Paris",
      deliveryRadiusMeters: 5000,
      prepTimeMinutes: 15,
      isOpen: true,
      openingHours: pizzeria.openingHours,
    });
    expect(new Date(r.createdAt).toISOString()).toBe(r.createdAt);
    expect(r.menu).toHaveLength(2);
    expect(r.menu[0]).toEqual({ id: expect.any(String), name: "Margherita", priceCents: 950, available: true });
    expect(r.menu[0].id.length).toBeGreaterThan(0);
    expect(r.menu[1]).toEqual({ id: "diavola", name: "Diavola", priceCents: 1150, available: false });
    // Stored as GeoJSON for the 2dsphere index; the API shape stays {lat, lng}.
    const doc = await srv.deps.db.db.collection("restaurants").findOne({ _id: ObjectId.createFromHexString(r.id) });
    expect(doc?.location).toEqual({ type: "Point", coordinates: [2.3522, 48.8566] });
  });

  test("when an admin creates one then the admin owns it", async () => {
    const r = await createRestaurant(admin, { name: "Admin's Diner", location: { lat: 1, lng: 2 } });
    expect(r.ownerId).toBe(admin.user.id);
    expect(r.menu).toEqual([]);
    expect(r.cuisines).toEqual([]);
  });

  test("when a customer or courier tries then 403; without a token 401", async () => {
    const courier = await srv.register("courier");
    for (const who of [customer, courier]) {
      const res = await srv.request("POST", "/restaurants", { token: who.token, body: pizzeria });
      expect(res.status).toBe(403);
      expect(res.headers.get("content-type")).toContain("application/problem+json");
    }
    expect((await srv.request("POST", "/restaurants", { body: pizzeria })).status).toBe(401);
  });

  test("when the input is invalid then 400 with the path of each bad field", async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ ...pizzeria, location: { lat: 91, lng: 0 } }, "/location/lat"],
      [{ ...pizzeria, location: { lat: 0, lng: -180.5 } }, "/location/lng"],
      [{ ...pizzeria, location: { lat: "48", lng: 2 } }, "/location/lat"],
      [{ ...pizzeria, name: "" }, "/name"],
      [{ ...pizzeria, menu: [{ name: "Free", priceCents: 0 }] }, "/menu/0/priceCents"],
      [{ ...pizzeria, menu: [{ name: "Half", priceCents: 9.5 }] }, "/menu/0/priceCents"],
      [{ ...pizzeria, deliveryRadiusMeters: -1 }, "/deliveryRadiusMeters"],
      [{ ...pizzeria, openingHours: { tz: "Europe/Paris", weekly: [{ day: 7, open: "10:00", close: "12:00" }] } }, "/openingHours/weekly/0/day"],
      [{ ...pizzeria, openingHours: { tz: "Europe/Paris", weekly: [{ day: 1, open: "25:00", close: "12:00" }] } }, "/openingHours/weekly/0/open"],
      [{ ...pizzeria, openingHours: { tz: "Mars/Base", weekly: [] } }, "/openingHours/tz"],
      [{ ...pizzeria, menu: [{ id: "a", name: "A", priceCents: 1 }, { id: "a", name: "B", priceCents: 2 }] }, "/menu/1/id"],
    ];
    for (const [body, path] of cases) {
      const res = await srv.request("POST", "/restaurants", { token: owner.token, body });
      expect({ path, status: res.status }).toEqual({ path, status: 400 });
      expect(res.headers.get("content-type")).toContain("application/problem+json");
      expect(res.body.errors.map((e: { path: string }) => e.path)).toContain(path);
    }
    const missing = await srv.request("POST", "/restaurants", { token: owner.token, body: { name: "No location" } });
    expect(missing.status).toBe(400);
    expect(missing.body.errors.map((e: { path: string }) => e.path)).toContain("/location");
    const notJson = await srv.request("POST", "/restaurants", { token: owner.token, body: "{nope", headers: { "content-type": "application/json" } });
    expect(notJson.status).toBe(400);
  });
});

describe("GET /restaurants/:id", () => {
  test("when it exists then 200 for anyone, no token needed", async () => {
    const r = await createRestaurant(owner);
    const res = await srv.request("GET", `/restaurants/${r.id}`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual(r);
  });

  test("when it does not exist then 404 problem+json", async () => {
    for (const id of ["0123456789abcdef01234567", "not-an-id"]) {
      const res = await srv.request("GET", `/restaurants/${id}`);
      expect(res.status).toBe(404);
      expect(res.headers.get("content-type")).toContain("application/problem+json");
    }
  });
});

describe("PATCH /restaurants/:id", () => {
  test("when the owner changes fields then 200 with them changed and the rest kept", async () => {
    const r = await createRestaurant(owner);
    const res = await srv.request("PATCH", `/restaurants/${r.id}`, {
      token: owner.token,
      body: {
        name: "Pizzeria Due",
        isOpen: false,
        prepTimeMinutes: 25,
        deliveryRadiusMeters: 3000,
        menu: [{ id: r.menu[0].id, name: "Margherita", priceCents: 990 }, { name: "Calzone", priceCents: 1200 }],
      },
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: r.id, ownerId: owner.user.id, name: "Pizzeria Due", isOpen: false, prepTimeMinutes: 25, deliveryRadiusMeters: 3000, cuisines: r.cuisines, location: r.location });
    expect(res.body.menu[0]).toEqual({ id: r.menu[0].id, name: "Margherita", priceCents: 990, available: true });
    expect(res.body.menu[1]).toMatchObject({ name: "Calzone", priceCents: 1200, available: true });
    expect(res.body.menu[1].id).not.toBe(r.menu[0].id);
    expect((await srv.request("GET", `/restaurants/${r.id}`)).body).toEqual(res.body);
  });

  test("when openingHours or address is null then it is removed", async () => {
    const r = await createRestaurant(owner);
    const res = await srv.request("PATCH", `/restaurants/${r.id}`, { token: owner.token, body: { openingHours: null, address: null } });
    expect(res.status).toBe(200);
    expect(res.body.openingHours).toBeUndefined();
    expect(res.body.address).toBeUndefined();
  });

  test("when another restaurant user tries then 403; a customer 403; an admin 200", async () => {
    const r = await createRestaurant(owner);
    const other = await srv.request("PATCH", `/restaurants/${r.id}`, { token: otherOwner.token, body: { name: "Hijacked" } });
    expect(other.status).toBe(403);
    expect(other.headers.get("content-type")).toContain("application/problem+json");
    expect((await srv.request("PATCH", `/restaurants/${r.id}`, { token: customer.token, body: { name: "Hijacked" } })).status).toBe(403);
    expect((await srv.request("PATCH", `/restaurants/${r.id}`, { body: { name: "Hijacked" } })).status).toBe(401);
    expect((await srv.request("GET", `/restaurants/${r.id}`)).body.name).toBe(pizzeria.name);
    const byAdmin = await srv.request("PATCH", `/restaurants/${r.id}`, { token: admin.token, body: { name: "Renamed by admin" } });
    expect(byAdmin.status).toBe(200);
    expect(byAdmin.body).toMatchObject({ name: "Renamed by admin", ownerId: owner.user.id });
  });

  test("when the restaurant does not exist then 404", async () => {
    expect((await srv.request("PATCH", "/restaurants/0123456789abcdef01234567", { token: owner.token, body: { name: "X" } })).status).toBe(404);
  });

  test("when the change is invalid then 400; fields that cannot change (ownerId, location, id) are refused as unknown and nothing changes", async () => {
    const r = await createRestaurant(owner);
    const bad = await srv.request("PATCH", `/restaurants/${r.id}`, { token: owner.token, body: { prepTimeMinutes: -5 } });
    expect(bad.status).toBe(400);
    expect(bad.body.errors.map((e: { path: string }) => e.path)).toContain("/prepTimeMinutes");
    const sneaky = await srv.request("PATCH", `/restaurants/${r.id}`, {
      token: owner.token,
      body: { ownerId: otherOwner.user.id, id: "0123456789abcdef01234567", location: { lat: 0, lng: 0 }, rating: 5, name: "Only this" },
    });
    expect(sneaky.status).toBe(400);
    expect(sneaky.body.errors.map((e: { path: string }) => e.path).sort()).toEqual(["/id", "/location", "/ownerId", "/rating"]);
    expect((await srv.request("GET", `/restaurants/${r.id}`)).body).toEqual(r);
    const renamed = await srv.request("PATCH", `/restaurants/${r.id}`, { token: owner.token, body: { name: "Only this" } });
    expect(renamed.body).toEqual({ ...r, name: "Only this" });
  });
});

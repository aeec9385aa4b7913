import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startTestServer, type Registered, type TestServer } from "../helpers/server";
import { WsClient } from "../helpers/ws";
import { operationsOf, type OpenApiDocument } from "../helpers/bad-input";
import { buildWorld, findLeaks, hostileTokens, QUIET_DISPATCH_ENV, type World } from "../helpers/security";
import { DELIVER_TO, orderIn, placeOrder, RESTAURANT_AT, type Order } from "../modules/orders/fixtures";

/**
 * Issue 6, access: every route and topic × every role × owner / non-owner / anonymous, against
 * the rules of API.md, written out here independently of the server's guards. Also: tokens
 * the server never issued are refused everywhere, an order's existence never shows to someone
 * who takes no part in it, and no answer carries another user's email or any password hash.
 */
const SECRET = "test-secret-0123456789abcdef";

let server: TestServer;
let world: World;
let wsUrl: string;

type Who = "anonymous" | "customerA" | "customerB" | "ownerA" | "ownerB" | "courierA" | "courierB" | "admin";
const EVERYONE: Who[] = ["anonymous", "customerA", "customerB", "ownerA", "ownerB", "courierA", "courierB", "admin"];

function user(who: Who): Registered | null {
  switch (who) {
    case "anonymous":
      return null;
    case "customerA":
      return world.a.customer;
    case "customerB":
      return world.b.customer;
    case "ownerA":
      return world.a.owner;
    case "ownerB":
      return world.b.owner;
    case "courierA":
      return world.a.courier;
    case "courierB":
      return world.b.courier;
    case "admin":
      return world.a.admin;
  }
}

type Answer = { status: number; text: string; json: any };
const seen: Array<{ viewer: Registered | null; what: string; text: string }> = [];

async function call(who: Who | { token: string }, method: string, path: string, body?: unknown): Promise<Answer> {
  const viewer = typeof who === "string" ? user(who) : null;
  const token = typeof who === "string" ? viewer?.token : who.token;
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(server.url + path, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  const text = await res.text();
  seen.push({ viewer, what: `${typeof who === "string" ? who : "token"} ${method} ${path}`, text });
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = null;
  }
  return { status: res.status, text, json };
}

/** Runs the cells and compares all statuses at once, so a failure shows the whole row. */
async function expectStatuses(cells: Array<[Who, number]>, run: (who: Who) => Promise<Answer>): Promise<void> {
  const got: Array<[Who, number]> = [];
  for (const [who] of cells) got.push([who, (await run(who)).status]);
  expect(got).toEqual(cells);
}

/** Who takes part in each of world.a's orders (API.md: its customer, its restaurant's owner, its courier, admins). */
function isParty(who: Who, order: Order): boolean {
  if (who === "admin" || who === "customerA" || who === "ownerA") return true;
  if (who === "courierA") return order.courierId === world.a.courier.user.id;
  return false;
}

beforeAll(async () => {
  server = await startTestServer(QUIET_DISPATCH_ENV);
  wsUrl = server.url.replace(/^http/, "ws") + "/ws";
  world = await buildWorld(server);
});

afterAll(async () => {
  await server?.stop();
});

const freshEmail = () => `acc-${crypto.randomUUID().slice(0, 8)}@dispatch.test`;

/** Every HTTP route of the OpenAPI document and the rule this file checks it against. */
const RULES: Record<string, string> = {
  "GET /health": "anyone",
  "GET /ready": "anyone",
  "GET /metrics": "anyone (METRICS_TOKEN unset in tests; see docs/monitoring.md)",
  "GET /demo": "anyone (a static page; data comes through the API with the user's token)",
  "POST /auth/register": "anyone; never an admin",
  "POST /auth/login": "anyone with the credentials",
  "GET /auth/me": "signed in; only oneself",
  "POST /restaurants": "restaurant or admin",
  "GET /restaurants": "anyone",
  "GET /restaurants/{id}": "anyone",
  "PATCH /restaurants/{id}": "its owner or an admin; other signed-in users 403",
  "POST /orders": "customers",
  "GET /orders": "signed in; only orders one takes part in (admins: all)",
  "GET /orders/{id}": "parties; anyone else 404 as if missing",
  "PATCH /orders/{id}": "parties, per the transition table (409 otherwise); anyone else 404",
  "POST /orders/{id}/claim": "couriers; an order outside the claim window that is not theirs is 404",
  "GET /couriers/me": "couriers (docs/dispatch.md)",
  "PUT /couriers/me/availability": "couriers",
  "PUT /couriers/me/location": "couriers",
  "GET /couriers": "admins",
  "POST /orders/{id}/offer/accept": "couriers it was offered to; anyone else's order 404",
  "POST /orders/{id}/offer/decline": "couriers it was offered to; anyone else's order 404",
};

describe("the matrix covers the whole API", () => {
  test("every route in the OpenAPI document has a rule here (a new route needs one before it ships)", async () => {
    const doc = (await (await fetch(`${server.url}/openapi`)).json()) as OpenApiDocument;
    const routes = operationsOf(doc).map((o) => `${o.method} ${o.path}`);
    expect(routes.filter((r) => !(r in RULES))).toEqual([]);
  });
});

describe("public routes", () => {
  test("health, readiness, discovery and a restaurant answer everyone, with or without a token", async () => {
    const cells = EVERYONE.map((w): [Who, number] => [w, 200]);
    await expectStatuses(cells, (w) => call(w, "GET", "/health"));
    await expectStatuses(cells, (w) => call(w, "GET", "/ready"));
    await expectStatuses(cells, (w) => call(w, "GET", `/restaurants?lat=${RESTAURANT_AT.lat}&lng=${RESTAURANT_AT.lng}`));
    await expectStatuses(cells, (w) => call(w, "GET", `/restaurants/${world.a.restaurant.id}`));
    await expectStatuses(cells, (w) => call(w, "GET", "/metrics"));
    await expectStatuses(cells, (w) => call(w, "GET", "/demo"));
  });

  test("anyone may register (never as admin) and sign in; the token names the new user", async () => {
    for (const who of EVERYONE) {
      const email = freshEmail();
      const reg = await call(who, "POST", "/auth/register", { email, password: "password-123", name: "N", role: "courier" });
      expect(reg.status).toBe(201);
      expect(reg.json.user.email).toBe(email);
      expect((await call(who, "POST", "/auth/register", { email: freshEmail(), password: "password-123", name: "N", role: "admin" })).status).toBe(400);
      const login = await call(who, "POST", "/auth/login", { email, password: "password-123" });
      expect(login.status).toBe(200);
      expect(login.json.user.id).toBe(reg.json.user.id);
    }
  });
});

describe("signed-in routes by role", () => {
  test("GET /auth/me: 401 without a token; otherwise the caller itself", async () => {
    for (const who of EVERYONE) {
      const res = await call(who, "GET", "/auth/me");
      const u = user(who);
      if (!u) expect(res.status).toBe(401);
      else expect({ status: res.status, body: res.json }).toEqual({ status: 200, body: { id: u.user.id, email: u.email.toLowerCase(), name: u.user.name, role: u.user.role } });
    }
  });

  test("POST /restaurants: restaurants and admins", async () => {
    const body = { name: "Matrix Diner", location: RESTAURANT_AT, menu: [{ name: "Soup", priceCents: 500 }] };
    await expectStatuses(
      [["anonymous", 401], ["customerA", 403], ["customerB", 403], ["ownerA", 201], ["ownerB", 201], ["courierA", 403], ["courierB", 403], ["admin", 201]],
      (w) => call(w, "POST", "/restaurants", body),
    );
  });

  test("PATCH /restaurants/:id: its owner and admins; another restaurant 403; a missing one 404", async () => {
    await expectStatuses(
      [["anonymous", 401], ["customerA", 403], ["customerB", 403], ["ownerA", 200], ["ownerB", 403], ["courierA", 403], ["courierB", 403], ["admin", 200]],
      (w) => call(w, "PATCH", `/restaurants/${world.a.restaurant.id}`, { prepTimeMinutes: 16 }),
    );
    expect((await call("ownerA", "PATCH", "/restaurants/0123456789abcdef01234567", { prepTimeMinutes: 16 })).status).toBe(404);
    expect((await call("ownerB", "GET", `/restaurants/${world.a.restaurant.id}`)).json.ownerId).toBe(world.a.owner.user.id);
  });

  test("POST /orders: customers only", async () => {
    const body = { restaurantId: world.a.restaurant.id, items: [{ menuItemId: "pizza", quantity: 1 }], deliveryLocation: DELIVER_TO };
    await expectStatuses(
      [["anonymous", 401], ["customerA", 201], ["customerB", 201], ["ownerA", 403], ["ownerB", 403], ["courierA", 403], ["courierB", 403], ["admin", 403]],
      (w) => call(w, "POST", "/orders", body),
    );
  });

  test("courier routes: GET /couriers/me and PUT /couriers/me/{availability,location} for couriers; GET /couriers for admins", async () => {
    const couriersOnly = (ok: number): Array<[Who, number]> => EVERYONE.map((w): [Who, number] => [w, w === "anonymous" ? 401 : w.startsWith("courier") ? ok : 403]);
    await expectStatuses(couriersOnly(200), (w) => call(w, "GET", "/couriers/me"));
    await expectStatuses(couriersOnly(200), (w) => call(w, "PUT", "/couriers/me/availability", { available: false }));
    await expectStatuses(couriersOnly(202), (w) => call(w, "PUT", "/couriers/me/location", { lat: 48.85, lng: 2.35, at: new Date(Date.now() - 60_000 + EVERYONE.indexOf(w) * 1000).toISOString() }));
    await expectStatuses(
      EVERYONE.map((w): [Who, number] => [w, w === "anonymous" ? 401 : w === "admin" ? 200 : 403]),
      (w) => call(w, "GET", `/couriers?lat=${RESTAURANT_AT.lat}&lng=${RESTAURANT_AT.lng}`),
    );
  });
});

describe("orders: parties see them, anyone else gets the answer for a missing order", () => {
  test("GET /orders/:id for every status × every role: parties 200, others 404, anonymous 401", async () => {
    const got: string[] = [];
    const want: string[] = [];
    for (const [status, order] of Object.entries(world.orders)) {
      for (const who of EVERYONE) {
        const res = await call(who, "GET", `/orders/${order.id}`);
        got.push(`${status} ${who} ${res.status}`);
        want.push(`${status} ${who} ${who === "anonymous" ? 401 : isParty(who, order) ? 200 : 404}`);
      }
    }
    expect(got).toEqual(want);
  });

  test("a hidden order's 404 is the same as a missing order's, apart from the id and request id", async () => {
    const missing = "0123456789abcdef01234567";
    const shape = (a: Answer, id: string) => ({ ...a.json, requestId: "-", detail: String(a.json.detail).replaceAll(id, "<id>"), status: a.status });
    for (const who of ["customerB", "ownerB", "courierB"] as const) {
      for (const order of Object.values(world.orders)) {
        const hidden = await call(who, "GET", `/orders/${order.id}`);
        const absent = await call(who, "GET", `/orders/${missing}`);
        expect(shape(hidden, order.id)).toEqual(shape(absent, missing));
        const hiddenPatch = await call(who, "PATCH", `/orders/${order.id}`, { status: "cancelled" });
        const absentPatch = await call(who, "PATCH", `/orders/${missing}`, { status: "cancelled" });
        expect(shape(hiddenPatch, order.id)).toEqual(shape(absentPatch, missing));
      }
    }
  });

  test("GET /orders lists exactly the orders one takes part in (admins: every order)", async () => {
    const ids = async (who: Who) => {
      const res = await call(who, "GET", "/orders?limit=100");
      expect(res.status).toBe(200);
      return new Set<string>(res.json.items.map((o: { id: string }) => o.id));
    };
    const aIds = Object.values(world.orders).map((o) => o.id);
    for (const who of ["customerB", "ownerB", "courierB"] as const) {
      const mine = await ids(who);
      expect(aIds.filter((id) => mine.has(id))).toEqual([]);
    }
    for (const who of ["customerA", "ownerA", "admin"] as const) {
      const all = await ids(who);
      expect({ who, missing: aIds.filter((id) => !all.has(id)) }).toEqual({ who, missing: [] });
    }
    const carried = await ids("courierA");
    expect(aIds.filter((id) => carried.has(id)).sort()).toEqual([world.orders.picked_up.id, world.orders.delivered.id].sort());
    expect((await call("anonymous", "GET", "/orders")).status).toBe(401);
  });

  test("PATCH /orders/:id: non-parties 404 on every order and nothing changes; parties get 409 for a move they may not make", async () => {
    for (const [status, order] of Object.entries(world.orders)) {
      for (const who of ["customerB", "ownerB", "courierB"] as const) {
        expect({ status, who, res: (await call(who, "PATCH", `/orders/${order.id}`, { status: "cancelled" })).status }).toEqual({ status, who, res: 404 });
      }
      const now = await call("admin", "GET", `/orders/${order.id}`);
      expect(now.json.version).toBe(order.version);
    }
    const placed = world.orders.placed;
    expect((await call("customerA", "PATCH", `/orders/${placed.id}`, { status: "accepted" })).status).toBe(409);
    expect((await call("admin", "PATCH", `/orders/${placed.id}`, { status: "accepted" })).status).toBe(409);
    expect((await call("courierA", "PATCH", `/orders/${placed.id}`, { status: "picked_up" })).status).toBe(404);
    expect((await call("anonymous", "PATCH", `/orders/${placed.id}`, { status: "cancelled" })).status).toBe(401);
  });

  test("PATCH /orders/:id: each allowed mover succeeds (API.md table)", async () => {
    const a = world.a;
    const moves: Array<[string, Who, string]> = [
      ["placed", "ownerA", "accepted"],
      ["placed", "ownerA", "rejected"],
      ["placed", "customerA", "cancelled"],
      ["placed", "ownerA", "cancelled"],
      ["placed", "admin", "cancelled"],
      ["accepted", "ownerA", "preparing"],
      ["accepted", "ownerA", "cancelled"],
      ["preparing", "ownerA", "ready_for_pickup"],
      ["preparing", "admin", "cancelled"],
      ["picked_up", "courierA", "delivered"],
      ["picked_up", "admin", "cancelled"],
    ];
    for (const [from, who, to] of moves) {
      const order = await orderIn(server, a, from);
      const res = await call(who, "PATCH", `/orders/${order.id}`, { status: to });
      expect({ from, who, to, status: res.status, now: res.json?.status }).toEqual({ from, who, to, status: 200, now: to });
    }
    const ready = await orderIn(server, a, "ready_for_pickup", { claim: true });
    expect((await call("courierA", "PATCH", `/orders/${ready.id}`, { status: "picked_up" })).status).toBe(200);
  });

  test("POST /orders/:id/claim: couriers only; a courier outside an order's claim window sees 404, inside it 409 when taken", async () => {
    const accepted = await orderIn(server, world.a, "accepted");
    await expectStatuses(
      [["anonymous", 401], ["customerA", 403], ["ownerA", 403], ["admin", 403]],
      (w) => call(w, "POST", `/orders/${accepted.id}/claim`),
    );
    expect((await call("courierB", "POST", `/orders/${accepted.id}/claim`)).status).toBe(200);
    // Taken, still in the window: API.md says 409 to the courier who lost the race.
    expect((await call("courierA", "POST", `/orders/${accepted.id}/claim`)).status).toBe(409);
    // Outside the window (placed, picked up, final) a courier who takes no part learns nothing.
    for (const status of ["placed", "picked_up", "delivered", "cancelled", "rejected"] as const) {
      const res = await call("courierB", "POST", `/orders/${world.orders[status].id}/claim`);
      expect({ status, res: res.status }).toEqual({ status, res: 404 });
    }
    expect((await call("courierB", "POST", "/orders/0123456789abcdef01234567/claim")).status).toBe(404);
  });

  test("offers: only couriers; an order never offered to the caller is 404", async () => {
    for (const action of ["accept", "decline"]) {
      await expectStatuses(
        [["anonymous", 401], ["customerA", 403], ["ownerA", 403], ["admin", 403], ["courierB", 404]],
        (w) => call(w, "POST", `/orders/${world.orders.accepted.id}/offer/${action}`),
      );
    }
  });
});

describe("tokens the server never issued", () => {
  test("expired, other secret, alg none, tampered role, wrong algorithm, no exp, unknown role: 401 on every signed-in route and on /ws", async () => {
    const order = world.orders.placed;
    const requests: Array<[string, string, unknown?]> = [
      ["GET", "/auth/me"],
      ["POST", "/restaurants", { name: "X", location: RESTAURANT_AT }],
      ["PATCH", `/restaurants/${world.a.restaurant.id}`, { name: "X" }],
      ["POST", "/orders", { restaurantId: world.a.restaurant.id, items: [{ menuItemId: "pizza", quantity: 1 }], deliveryLocation: DELIVER_TO }],
      ["GET", "/orders"],
      ["GET", `/orders/${order.id}`],
      ["PATCH", `/orders/${order.id}`, { status: "cancelled" }],
      ["POST", `/orders/${order.id}/claim`],
      ["GET", "/couriers/me"],
      ["GET", `/couriers?lat=1&lng=1`],
    ];
    for (const [base, real] of [["customer", world.a.customer.token], ["admin", world.a.admin.token], ["courier", world.a.courier.token]] as const) {
      for (const [what, token] of hostileTokens(real, SECRET)) {
        for (const [method, path, body] of requests) {
          const res = await call({ token }, method, path, body);
          expect({ base, what, method, path, status: res.status }).toEqual({ base, what, method, path, status: 401 });
        }
        await expect(WsClient.open(wsUrl, token)).rejects.toThrow("upgrade failed");
      }
    }
    expect((await call("admin", "GET", `/orders/${order.id}`)).json.version).toBe(order.version);
  });
});

describe("topics", () => {
  async function subscribe(who: Who, topic: string): Promise<"subscribed" | "forbidden" | string> {
    const u = user(who);
    if (!u) {
      const refused = await WsClient.open(wsUrl, null).then(
        () => "opened",
        () => "refused",
      );
      return refused === "refused" ? "forbidden" : "opened without a token";
    }
    const client = await WsClient.open(wsUrl, u.token);
    try {
      const frame = await client.subscribe(topic);
      seen.push({ viewer: u, what: `${who} subscribe ${topic}`, text: JSON.stringify(frame) });
      return frame.type === "subscribed" ? "subscribed" : frame.code;
    } finally {
      client.close();
    }
  }

  test("order topics: parties only, for every status; a non-party's refusal reads like a missing order's", async () => {
    const got: string[] = [];
    const want: string[] = [];
    for (const [status, order] of Object.entries(world.orders)) {
      for (const who of EVERYONE) {
        got.push(`${status} ${who} ${await subscribe(who, `order:${order.id}`)}`);
        want.push(`${status} ${who} ${who === "anonymous" ? "forbidden" : isParty(who, order) ? "subscribed" : "forbidden"}`);
      }
    }
    expect(got).toEqual(want);
    const client = await WsClient.open(wsUrl, world.b.customer.token);
    const hidden = await client.subscribe(`order:${world.orders.placed.id}`);
    const missing = await client.subscribe("order:0123456789abcdef01234567");
    client.close();
    expect({ ...hidden, topic: "-", message: hidden.message.replace(world.orders.placed.id, "<id>") }).toEqual({ ...missing, topic: "-", message: missing.message.replace("0123456789abcdef01234567", "<id>") });
  });

  test("restaurant topics: its owner and admins; courier topics: that courier only", async () => {
    const restaurant = `restaurant:${world.a.restaurant.id}`;
    const courier = `courier:${world.a.courier.user.id}`;
    const got: string[] = [];
    for (const who of EVERYONE) got.push(`${who} ${await subscribe(who, restaurant)} ${await subscribe(who, courier)}`);
    expect(got).toEqual([
      "anonymous forbidden forbidden",
      "customerA forbidden forbidden",
      "customerB forbidden forbidden",
      "ownerA subscribed forbidden",
      "ownerB forbidden forbidden",
      "courierA forbidden subscribed",
      "courierB forbidden forbidden",
      "admin subscribed forbidden",
    ]);
  });

  test("only couriers report locations over the socket", async () => {
    for (const who of EVERYONE.filter((w) => w !== "anonymous")) {
      const client = await WsClient.open(wsUrl, user(who)!.token);
      client.send({ op: "location", lat: 48.85, lng: 2.35 });
      const frames = await client.drain();
      client.close();
      const refused = frames.some((f) => f.type === "error" && f.code === "forbidden");
      expect({ who, refused }).toEqual({ who, refused: !who.startsWith("courier") });
    }
  });
});

describe("what answers never contain", () => {
  test("no response in this file carried another user's email, a password or a password hash", async () => {
    // A few more reads that show users' ids next to data: order lists and the admin's views.
    for (const who of EVERYONE) await call(who, "GET", "/orders?limit=100");
    await call("admin", "GET", `/couriers?lat=${RESTAURANT_AT.lat}&lng=${RESTAURANT_AT.lng}`);
    const order = await placeOrder(server, world.a);
    await call("admin", "GET", `/orders/${order.id}`);
    const leaks = seen.flatMap((s) => findLeaks(s.text, world.users, s.viewer).map((l) => `${s.what}: ${l}`));
    expect(leaks).toEqual([]);
    expect(seen.length).toBeGreaterThan(300);
  });
});

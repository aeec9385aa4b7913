import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startTestServer, TEST_ADMIN, type TestServer } from "../helpers/server";
import { apiFor, type Api } from "../helpers/eden";
import { WsClient } from "../helpers/ws";
import { topics } from "../../src/events/topics";

/**
 * The whole life of an order through the typed client (Eden treaty over `type App`): the
 * paths, bodies, headers, queries and response shapes below are checked by tsc against the
 * server's own schemas, and run against a real server (embedded engine, or MONGODB_URI).
 */
let server: TestServer;
let anonymous: Api;

beforeAll(async () => {
  server = await startTestServer();
  anonymous = apiFor(server.url);
});

afterAll(async () => {
  await server?.stop();
});

/** Unwraps a treaty answer, failing with the server's problem+json when it is an error. */
function ok<T>(res: { data: T | null; error: { status: unknown; value: unknown } | null; status: number }, status = 200): T {
  if (res.error || res.data === null) throw new Error(`expected ${status}, got ${res.status}: ${JSON.stringify(res.error?.value)}`);
  expect(res.status).toBe(status);
  return res.data;
}

async function signUp(role: "customer" | "restaurant" | "courier") {
  const email = `${role}-${crypto.randomUUID().slice(0, 8)}@eden.test`;
  const res = await anonymous.auth.register.post({ email, password: "password-123", name: `Eden ${role}`, role });
  const { token, user } = ok(res, 201);
  return { token, user, api: apiFor(server.url, token) };
}

describe("auth through the typed client", () => {
  test("register → login → me; a duplicate email is 409; a bad password is 401", async () => {
    const email = `eden-${crypto.randomUUID().slice(0, 8)}@eden.test`;
    const registered = ok(await anonymous.auth.register.post({ email, password: "password-123", name: "Ada", role: "customer" }), 201);
    expect(registered.user).toMatchObject({ email, name: "Ada", role: "customer" });

    const duplicate = await anonymous.auth.register.post({ email, password: "password-123", name: "Ada", role: "customer" });
    expect(duplicate.status).toBe(409);
    expect(duplicate.error?.value).toMatchObject({ status: 409, title: "Conflict" });

    const wrong = await anonymous.auth.login.post({ email, password: "wrong-password" });
    expect(wrong.status).toBe(401);

    const login = ok(await anonymous.auth.login.post({ email, password: "password-123" }));
    const me = ok(await apiFor(server.url, login.token).auth.me.get());
    expect(me).toEqual(registered.user);

    expect((await anonymous.auth.me.get()).status).toBe(401);
  });
});

describe("an order's whole life through the typed client", () => {
  test("restaurant → discovery → order (idempotent) → every move, seen live over /ws → delivered", async () => {
    const [customer, owner, courier] = await Promise.all([signUp("customer"), signUp("restaurant"), signUp("courier")]);
    const admin = ok(await anonymous.auth.login.post({ email: TEST_ADMIN.email, password: TEST_ADMIN.password }));

    const restaurant = ok(
      await owner.api.restaurants.post({
        name: "Treaty Trattoria",
        cuisines: ["italian"],
        location: { lat: 41.9028, lng: 12.4964 },
        menu: [
          { id: "carbonara", name: "Carbonara", priceCents: 1400 },
          { id: "tiramisu", name: "Tiramisu", priceCents: 650 },
        ],
      }),
      201,
    );
    expect(restaurant.ownerId).toBe(owner.user.id);

    const nearby = ok(await anonymous.restaurants.get({ query: { lat: 41.903, lng: 12.497, radius: 1000 } }));
    const found = nearby.items.find((r) => r.id === restaurant.id);
    expect(found?.distanceMeters).toBeGreaterThan(0);

    const body = { restaurantId: restaurant.id, items: [{ menuItemId: "carbonara", quantity: 2 }, { menuItemId: "tiramisu", quantity: 1 }], deliveryLocation: { lat: 41.9, lng: 12.5 } };
    const placed = ok(await customer.api.orders.post(body, { headers: { "idempotency-key": "eden-life-1" } }), 201);
    expect(placed).toMatchObject({ status: "placed", version: 1, subtotalCents: 3450, courierId: null });
    const again = ok(await customer.api.orders.post(body, { headers: { "idempotency-key": "eden-life-1" } }), 200);
    expect(again.id).toBe(placed.id);

    // The customer follows the order live while it moves.
    const live = await WsClient.open(server.url.replace(/^http/, "ws") + "/ws", customer.token);
    try {
      expect(await live.subscribe(topics.order(placed.id))).toMatchObject({ type: "subscribed", seq: 1 });

      // A move the table does not allow: 409 with what this caller may do now.
      const refused = await courier.api.orders({ id: placed.id }).patch({ status: "picked_up" });
      expect(refused.status).toBe(404); // not yet a party: the courier cannot see the order
      const illegal = await owner.api.orders({ id: placed.id }).patch({ status: "delivered" });
      expect(illegal.status).toBe(409);
      expect(illegal.error?.value).toMatchObject({ title: "Illegal transition", allowed: ["accepted", "cancelled", "rejected"] });

      let order = ok(await owner.api.orders({ id: placed.id }).patch({ status: "accepted" }, { headers: { "if-match": "1" } }));
      const stale = await owner.api.orders({ id: placed.id }).patch({ status: "preparing" }, { headers: { "if-match": "1" } });
      expect(stale.status).toBe(412);
      order = ok(await courier.api.orders({ id: placed.id }).claim.post());
      expect(order.courierId).toBe(courier.user.id);
      order = ok(await owner.api.orders({ id: placed.id }).patch({ status: "preparing" }));
      order = ok(await owner.api.orders({ id: placed.id }).patch({ status: "ready_for_pickup" }));
      order = ok(await courier.api.orders({ id: placed.id }).patch({ status: "picked_up" }));
      order = ok(await courier.api.orders({ id: placed.id }).patch({ status: "delivered", reason: "left at the door" }));
      expect(order.status).toBe("delivered");
      expect(order.history.map((h) => [h.seq, h.status])).toEqual([
        [1, "placed"],
        [2, "accepted"],
        [3, "accepted"],
        [4, "preparing"],
        [5, "ready_for_pickup"],
        [6, "picked_up"],
        [7, "delivered"],
      ]);
      expect(order.history[6].reason).toBe("left at the door");

      await live.until((frames) => frames.some((f) => f.type === "order.updated" && f.seq === 7));
      expect(live.seqs(topics.order(placed.id))).toEqual([2, 3, 4, 5, 6, 7]);
    } finally {
      live.close();
    }

    // Lists: each party sees it; the admin sees it under a status filter.
    const mine = ok(await customer.api.orders.get({ query: { limit: 10 } }));
    expect(mine.items.map((o) => o.id)).toEqual([placed.id]);
    const delivered = ok(await apiFor(server.url, admin.token).orders.get({ query: { status: "delivered", limit: 100 } }));
    expect(delivered.items.some((o) => o.id === placed.id)).toBe(true);
    const final = ok(await courier.api.orders({ id: placed.id }).get());
    expect(final.version).toBe(7);
  });
});

/** Never called: tsc refuses these calls, which is the point of a typed client. */
export function typeChecks(api: Api): void {
  // @ts-expect-error: an unknown status is not a valid PATCH body
  void api.orders({ id: "x" }).patch({ status: "teleported" });
  // @ts-expect-error: role must be customer, restaurant or courier
  void api.auth.register.post({ email: "a@b.c", password: "password-123", name: "x", role: "emperor" });
  // @ts-expect-error: quantity is a number
  void api.orders.post({ restaurantId: "r", items: [{ menuItemId: "m", quantity: "two" }], deliveryLocation: { lat: 0, lng: 0 } });
  // @ts-expect-error: there is no such route
  void api.spaceships.get();
}

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { OrderChange } from "../../../src/events/change";
import { startTestServer, type Registered, type TestServer } from "../../helpers/server";
import { expectedAllowed, STATUSES, type Status, type Who } from "./api-table";
import { cast, createRestaurant, DELIVER_TO, orderIn, patch, placeOrder, RESTAURANT_AT, type Cast, type Order } from "./fixtures";

let server: TestServer;
let c: Cast;

beforeAll(async () => {
  // The cast's one courier holds orders in every status at once (the limit has its own tests: couriers/capacity*.test.ts).
  server = await startTestServer({ COURIER_MAX_ACTIVE: "100" });
  c = await cast(server);
});
afterAll(async () => {
  await server?.stop();
});

describe("an order's whole life over HTTP", () => {
  test("register → restaurant → nearby → order → every transition → delivered, history seq 1..n", async () => {
    const customer = await server.register("customer");
    const owner = await server.register("restaurant");
    const courier = await server.register("courier");
    const restaurant = await createRestaurant(server, owner, { name: "Life Pizza", location: { lat: 45.764, lng: 4.8357 } });

    const nearby = await server.request("GET", `/restaurants?lat=45.765&lng=4.836&radius=2000`);
    expect(nearby.status).toBe(200);
    expect(nearby.body.items.map((r: { id: string }) => r.id)).toContain(restaurant.id);

    const placed = await server.request("POST", "/orders", {
      token: customer.token,
      body: {
        restaurantId: restaurant.id,
        items: [
          { menuItemId: "pizza", quantity: 2 },
          { menuItemId: "soda", quantity: 1 },
        ],
        deliveryLocation: { lat: 45.77, lng: 4.84 },
        notes: "ring twice",
        // Prices sent by a client are not part of the schema: the menu decides.
      },
    });
    expect(placed.status).toBe(201);
    const order: Order = placed.body;
    expect(order).toMatchObject({
      status: "placed",
      version: 1,
      customerId: customer.user.id,
      restaurantId: restaurant.id,
      courierId: null,
      items: [
        { menuItemId: "pizza", name: "Pizza", quantity: 2, unitPriceCents: 1250 },
        { menuItemId: "soda", name: "Soda", quantity: 1, unitPriceCents: 300 },
      ],
      subtotalCents: 2800,
      deliveryLocation: { lat: 45.77, lng: 4.84 },
      notes: "ring twice",
    });
    // ~0.8 km: base 199 + one started km at 50.
    expect(order.deliveryFeeCents).toBe(249);
    expect(order.totalCents).toBe(2800 + 249);
    expect(order.history).toEqual([{ seq: 1, status: "placed", event: "PLACE", at: order.createdAt, by: { role: "customer", id: customer.user.id } }]);

    const steps: Array<[Registered, string | "claim", string]> = [
      [owner, "accepted", "ACCEPT"],
      [courier, "claim", "ASSIGN_COURIER"],
      [owner, "preparing", "START_PREPARING"],
      [owner, "ready_for_pickup", "MARK_READY"],
      [courier, "picked_up", "PICK_UP"],
      [courier, "delivered", "DELIVER"],
    ];
    let current = order;
    for (const [who, to, event] of steps) {
      const res =
        to === "claim"
          ? await server.request("POST", `/orders/${order.id}/claim`, { token: who.token })
          : await patch(server, who, order.id, to);
      expect({ to, status: res.status }).toEqual({ to, status: 200 });
      const next: Order = res.body;
      expect(next.version).toBe(current.version + 1);
      const last = next.history[next.history.length - 1];
      expect(last).toMatchObject({ seq: next.version, event, by: { role: who.user.role, id: who.user.id } });
      expect(last.status).toBe(to === "claim" ? current.status : to);
      current = next;
    }
    expect(current.status).toBe("delivered");
    expect(current.courierId).toBe(courier.user.id);
    expect(current.history.map((h) => h.seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(current.history.map((h) => h.status)).toEqual(["placed", "accepted", "accepted", "preparing", "ready_for_pickup", "picked_up", "delivered"]);

    // Every party reads the same final order.
    for (const who of [customer, owner, courier]) {
      const res = await server.request("GET", `/orders/${order.id}`, { token: who.token });
      expect(res.status).toBe(200);
      expect(res.body).toEqual(current);
    }
    // A delivered order moves no more.
    const after = await patch(server, owner, order.id, "cancelled");
    expect(after.status).toBe(409);
    expect(after.body.allowed).toEqual([]);
  });

  test("a reason is kept in the history entry", async () => {
    const order = await placeOrder(server, c);
    const res = await server.request("PATCH", `/orders/${order.id}`, { token: c.owner.token, body: { status: "rejected", reason: "out of dough" } });
    expect(res.status).toBe(200);
    expect(res.body.history[1]).toMatchObject({ seq: 2, status: "rejected", event: "REJECT", reason: "out of dough" });
  });
});

describe("PATCH /orders/:id refuses every move the table does not allow (409 with `allowed`)", () => {
  test("every (status, courier assigned or not, party, target) over HTTP", async () => {
    const otherCustomer = await server.register("customer");
    const otherCourier = await server.register("courier");
    const callers: Partial<Record<Who, Registered>> = {
      customer: c.customer,
      owner: c.owner,
      assignedCourier: c.courier,
      admin: c.admin,
    };
    const failures: string[] = [];
    let checked = 0;
    const variants: Array<[Status, boolean]> = [];
    for (const s of STATUSES) {
      variants.push([s, ["picked_up", "delivered"].includes(s)]);
      if (["accepted", "preparing", "ready_for_pickup"].includes(s)) variants.push([s, true]);
    }
    for (const [status, claimed] of variants) {
      const order = await orderIn(server, c, status, { claim: claimed });
      for (const [who, caller] of Object.entries(callers) as Array<[Who, Registered]>) {
        // The cast's courier is a party only once it holds the order.
        if (who === "assignedCourier" && !claimed) continue;
        const allowed = expectedAllowed(status, who, claimed);
        for (const to of STATUSES) {
          if (allowed.includes(to)) continue; // legal moves would change the order; the life test covers them
          const res = await patch(server, caller, order.id, to);
          checked++;
          if (res.status !== 409 || JSON.stringify(res.body.allowed) !== JSON.stringify(allowed)) {
            failures.push(`${status}${claimed ? "+courier" : ""} -> ${to} by ${who}: ${res.status} ${JSON.stringify(res.body.allowed)} (expected 409 ${JSON.stringify(allowed)})`);
          }
        }
      }
      // Nothing was written by any refused move.
      const after = await server.request("GET", `/orders/${order.id}`, { token: c.admin.token });
      expect(after.body.version).toBe(order.version);
      // Non-parties never learn the order exists.
      for (const stranger of [otherCustomer, otherCourier]) {
        const res = await patch(server, stranger, order.id, "cancelled");
        if (res.status !== 404) failures.push(`${status}: stranger ${stranger.user.role} got ${res.status}`);
      }
    }
    expect(failures).toEqual([]);
    expect(checked).toBeGreaterThan(200);
  });

  test("409 bodies are problem+json with the allowed list", async () => {
    const order = await placeOrder(server, c);
    const res = await patch(server, c.customer, order.id, "delivered");
    expect(res.status).toBe(409);
    expect(res.headers.get("content-type")).toContain("application/problem+json");
    expect(res.body).toMatchObject({ status: 409, title: "Illegal transition", allowed: ["cancelled"] });
    const back = await patch(server, c.owner, order.id, "placed");
    expect(back.status).toBe(409);
    expect(back.body.allowed).toEqual(["accepted", "cancelled", "rejected"]);
  });
});

describe("who may see and touch an order", () => {
  test("parties and admins read it; everyone else gets 404, the same as for a missing order", async () => {
    const order = await orderIn(server, c, "accepted", { claim: true });
    for (const who of [c.customer, c.owner, c.courier, c.admin]) {
      expect((await server.request("GET", `/orders/${order.id}`, { token: who.token })).status).toBe(200);
    }
    const strangers = await Promise.all([server.register("customer"), server.register("restaurant"), server.register("courier")]);
    for (const who of strangers) {
      const res = await server.request("GET", `/orders/${order.id}`, { token: who.token });
      expect(res.status).toBe(404);
      expect(res.body.title).toBe("Not found");
    }
    const missing = await server.request("GET", `/orders/${"0".repeat(24)}`, { token: c.customer.token });
    expect(missing.status).toBe(404);
    const malformed = await server.request("GET", `/orders/not-an-id`, { token: c.customer.token });
    expect(malformed.status).toBe(404);
  });

  test("401 without a token; 403 for roles that may not call the route", async () => {
    const order = await orderIn(server, c, "accepted");
    expect((await server.request("GET", `/orders/${order.id}`)).status).toBe(401);
    expect((await server.request("GET", `/orders`)).status).toBe(401);
    expect((await server.request("PATCH", `/orders/${order.id}`, { body: { status: "preparing" } })).status).toBe(401);
    const body = { restaurantId: c.restaurant.id, items: [{ menuItemId: "pizza", quantity: 1 }], deliveryLocation: DELIVER_TO };
    for (const who of [c.owner, c.courier, c.admin]) {
      expect((await server.request("POST", "/orders", { token: who.token, body })).status).toBe(403);
    }
    for (const who of [c.customer, c.owner, c.admin]) {
      expect((await server.request("POST", `/orders/${order.id}/claim`, { token: who.token })).status).toBe(403);
    }
  });

  test("claim: 409 when another courier holds the order; 404 for an order outside the claim window the courier takes no part in; a repeat by the holder is a no-op", async () => {
    const order = await orderIn(server, c, "accepted");
    const first = await server.request("POST", `/orders/${order.id}/claim`, { token: c.courier.token });
    expect(first.status).toBe(200);
    expect(first.body.courierId).toBe(c.courier.user.id);
    const again = await server.request("POST", `/orders/${order.id}/claim`, { token: c.courier.token });
    expect(again.status).toBe(200);
    expect(again.body.version).toBe(first.body.version);
    const rival = await server.register("courier");
    const lost = await server.request("POST", `/orders/${order.id}/claim`, { token: rival.token });
    expect(lost.status).toBe(409);
    const placed = await placeOrder(server, c);
    // Not claimable yet, and the rival takes no part: it must not learn the order exists (issue 6).
    expect((await server.request("POST", `/orders/${placed.id}/claim`, { token: rival.token })).status).toBe(404);
    expect((await server.request("POST", `/orders/${"0".repeat(24)}/claim`, { token: rival.token })).status).toBe(404);
  });
});

describe("If-Match", () => {
  test("applies only on the named version: 412 with the current version otherwise", async () => {
    const order = await placeOrder(server, c);
    const ok = await patch(server, c.owner, order.id, "accepted", { "if-match": "1" });
    expect(ok.status).toBe(200);
    expect(ok.body.version).toBe(2);
    const stale = await patch(server, c.owner, order.id, "preparing", { "if-match": "1" });
    expect(stale.status).toBe(412);
    expect(stale.body).toMatchObject({ status: 412, version: 2 });
    const quoted = await patch(server, c.owner, order.id, "preparing", { "if-match": '"2"' });
    expect(quoted.status).toBe(200);
    expect(quoted.body.version).toBe(3);
    const bad = await patch(server, c.owner, order.id, "ready_for_pickup", { "if-match": "three" });
    expect(bad.status).toBe(400);
    const current = await server.request("GET", `/orders/${order.id}`, { token: c.owner.token });
    expect(current.body.version).toBe(3);
  });
});

describe("GET /orders lists the caller's orders, newest first, with an opaque keyset cursor", () => {
  test("pages follow each other with no repeat and no gap, even with inserts between pages", async () => {
    const customer = await server.register("customer");
    const mine = { customer, restaurant: c.restaurant };
    const placed: Order[] = [];
    for (let i = 0; i < 7; i++) placed.push(await placeOrder(server, mine));
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res: { status: number; body: { items: Order[]; nextCursor: string | null } } = await server.request("GET", `/orders?limit=3${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`, { token: customer.token });
      expect(res.status).toBe(200);
      seen.push(...res.body.items.map((o: Order) => o.id));
      cursor = res.body.nextCursor;
      if (pages === 0) await placeOrder(server, mine); // newer than every page: must not appear later
      pages++;
    } while (cursor);
    expect(pages).toBe(3);
    expect(seen).toEqual(placed.map((o) => o.id).reverse());
  });

  test("each role sees the orders it takes part in; admins see all; status filters", async () => {
    const customer = await server.register("customer");
    const owner = await server.register("restaurant");
    const courier = await server.register("courier");
    const restaurant = await createRestaurant(server, owner);
    const mine: Cast = { customer, owner, courier, admin: c.admin, restaurant };
    const a = await orderIn(server, mine, "accepted", { claim: true });
    const b = await orderIn(server, mine, "placed");
    const ids = (res: { body: { items: Order[] } }) => res.body.items.map((o) => o.id);

    expect(ids(await server.request("GET", "/orders", { token: customer.token }))).toEqual([b.id, a.id]);
    expect(ids(await server.request("GET", "/orders", { token: owner.token }))).toEqual([b.id, a.id]);
    expect(ids(await server.request("GET", "/orders", { token: courier.token }))).toEqual([a.id]);
    expect(ids(await server.request("GET", "/orders?status=placed", { token: owner.token }))).toEqual([b.id]);
    expect(ids(await server.request("GET", `/orders?restaurantId=${restaurant.id}&status=accepted`, { token: owner.token }))).toEqual([a.id]);
    expect(ids(await server.request("GET", "/orders", { token: c.owner.token }))).not.toContain(a.id);
    const all = await server.request("GET", "/orders?limit=100", { token: c.admin.token });
    expect(ids(all).slice(0, 2)).toEqual([b.id, a.id]);
    const createdAts = all.body.items.map((o: Order) => o.createdAt);
    expect([...createdAts].sort().reverse()).toEqual(createdAts);
  });

  test("bad list parameters are 400", async () => {
    for (const q of ["limit=0", "limit=101", "limit=x", "status=lost", "cursor=not-a-cursor"]) {
      const res = await server.request("GET", `/orders?${q}`, { token: c.customer.token });
      expect({ q, status: res.status }).toEqual({ q, status: 400 });
    }
  });
});

describe("POST /orders validation", () => {
  const good = () => ({ restaurantId: c.restaurant.id, items: [{ menuItemId: "pizza", quantity: 1 }], deliveryLocation: DELIVER_TO });

  test("malformed bodies are 400 with errors", async () => {
    const bodies: unknown[] = [
      {},
      { ...good(), items: [] },
      { ...good(), items: [{ menuItemId: "pizza", quantity: 0 }] },
      { ...good(), items: [{ menuItemId: "pizza", quantity: 51 }] },
      { ...good(), items: [{ menuItemId: "pizza", quantity: 1.5 }] },
      { ...good(), deliveryLocation: { lat: 91, lng: 0 } },
      { ...good(), deliveryLocation: { lat: 0, lng: -181 } },
      { ...good(), deliveryLocation: { lat: "x", lng: 0 } },
      "not json",
    ];
    for (const body of bodies) {
      const res = await server.request("POST", "/orders", { token: c.customer.token, body });
      expect({ body, status: res.status }).toEqual({ body, status: 400 });
      expect(res.headers.get("content-type")).toContain("application/problem+json");
    }
  });

  test("prices, totals or versions sent by a client are refused as unknown fields (400): the menu and the server decide", async () => {
    const before = await server.deps.db.db.collection("orders").countDocuments();
    const res = await server.request("POST", "/orders", {
      token: c.customer.token,
      body: { ...good(), items: [{ menuItemId: "pizza", quantity: 1, unitPriceCents: 1 }], totalCents: 1, subtotalCents: 1 },
    });
    expect(res.status).toBe(400);
    expect(res.body.errors.map((e: { path: string }) => e.path).sort()).toEqual(["/items/0/unitPriceCents", "/subtotalCents", "/totalCents"]);
    expect(await server.deps.db.db.collection("orders").countDocuments()).toBe(before);
    const placed = await server.request("POST", "/orders", { token: c.customer.token, body: { ...good(), items: [{ menuItemId: "pizza", quantity: 1 }] } });
    expect(placed.status).toBe(201);
    expect(placed.body.items[0].unitPriceCents).toBe(1250);
    expect(placed.body.totalCents).toBe(1250 + placed.body.deliveryFeeCents);
    const moved = await server.request("PATCH", `/orders/${placed.body.id}`, { token: c.owner.token, body: { status: "accepted", version: 99 } });
    expect(moved.status).toBe(400);
    expect(moved.body.errors).toEqual([{ path: "/version", message: "unknown field" }]);
    const current = await server.request("GET", `/orders/${placed.body.id}`, { token: c.owner.token });
    expect(current.body.version).toBe(1);
  });

  test("PATCH with an unknown status or a bad reason is 400", async () => {
    const order = await placeOrder(server, c);
    for (const body of [{ status: "eaten" }, {}, { status: 3 }, { status: "accepted", reason: "" }, { status: "accepted", reason: "x".repeat(501) }]) {
      const res = await server.request("PATCH", `/orders/${order.id}`, { token: c.owner.token, body });
      expect({ body, status: res.status }).toEqual({ body, status: 400 });
    }
  });

  test("the domain refuses with 422 (closed, outside radius, unknown or unavailable item) and 404 (unknown restaurant)", async () => {
    const owner = await server.register("restaurant");
    const closed = await createRestaurant(server, owner, { isOpen: false });
    const night = await createRestaurant(server, owner, {
      // Open one minute a week, far from now.
      openingHours: { tz: "UTC", weekly: [{ day: (new Date().getUTCDay() + 3) % 7, open: "03:00", close: "03:01" }] },
    });
    const cases: Array<[unknown, number]> = [
      [{ ...good(), restaurantId: closed.id }, 422],
      [{ ...good(), restaurantId: night.id }, 422],
      [{ ...good(), deliveryLocation: { lat: RESTAURANT_AT.lat + 0.1, lng: RESTAURANT_AT.lng } }, 422],
      [{ ...good(), items: [{ menuItemId: "caviar", quantity: 1 }] }, 422],
      [{ ...good(), items: [{ menuItemId: "soup", quantity: 1 }] }, 422],
      [{ ...good(), restaurantId: "0".repeat(24) }, 404],
    ];
    for (const [body, status] of cases) {
      const res = await server.request("POST", "/orders", { token: c.customer.token, body });
      expect({ body, status: res.status }).toEqual({ body, status });
    }
  });
});

describe("concurrent writers on one order", () => {
  test("50 concurrent conflicting PATCHes: exactly the legal ones win, history has no gap or duplicate", async () => {
    const order = await orderIn(server, c, "placed");
    const moves: Array<[Registered, Status]> = [];
    const menu: Array<[Registered, Status]> = [
      [c.owner, "accepted"],
      [c.owner, "preparing"],
      [c.owner, "ready_for_pickup"],
      [c.owner, "rejected"],
      [c.customer, "cancelled"],
      [c.owner, "accepted"],
      [c.owner, "preparing"],
      [c.owner, "ready_for_pickup"],
      [c.owner, "cancelled"],
      [c.admin, "cancelled"],
    ];
    for (let i = 0; i < 50; i++) moves.push(menu[(i * 7) % menu.length]);
    const answers = await Promise.all(moves.map(([who, to]) => patch(server, who, order.id, to)));
    expect(answers.every((a) => a.status === 200 || a.status === 409)).toBe(true);
    const wins = answers.filter((a) => a.status === 200);
    const final: Order = (await server.request("GET", `/orders/${order.id}`, { token: c.admin.token })).body;

    // History: 1..n, each winner is exactly one entry, at its own version.
    expect(final.history.map((h) => h.seq)).toEqual(Array.from({ length: final.version }, (_, i) => i + 1));
    expect(final.version).toBe(1 + wins.length);
    expect(new Set(wins.map((w) => w.body.version)).size).toBe(wins.length);
    for (const w of wins) {
      const entry = final.history[w.body.version - 1];
      expect(entry.status).toBe(w.body.status);
    }
    // Each entry was a legal move for whoever made it, from the status before it.
    const whoOf = (id: string): Who => (id === c.owner.user.id ? "owner" : id === c.customer.user.id ? "customer" : "admin");
    for (let i = 1; i < final.history.length; i++) {
      const from = final.history[i - 1].status as Status;
      const entry = final.history[i];
      expect(expectedAllowed(from, whoOf(entry.by.id), false)).toContain(entry.status as Status);
    }
    // And every refusal was illegal when it was applied: its `allowed` is the table's list for that
    // caller in one of the statuses the order went through, and does not contain what it asked for.
    const passedThrough = final.history.map((h) => h.status as Status);
    answers.forEach((a, i) => {
      if (a.status !== 409) return;
      const [who, to] = moves[i];
      const role = whoOf(who.user.id);
      expect(a.body.allowed).not.toContain(to);
      expect(passedThrough.some((s) => JSON.stringify(expectedAllowed(s, role, false)) === JSON.stringify(a.body.allowed))).toBe(true);
    });
    // Once a final status is reached nothing else won.
    expect(final.history.filter((h) => ["cancelled", "rejected"].includes(h.status)).length).toBeLessThanOrEqual(1);
  });

  test("50 concurrent PATCHes with the same If-Match: exactly one wins, the rest get 412", async () => {
    const order = await orderIn(server, c, "accepted");
    const answers = await Promise.all(
      Array.from({ length: 50 }, (_, i) => patch(server, i % 2 ? c.owner : c.admin, order.id, i % 2 ? "preparing" : "cancelled", { "if-match": String(order.version) })),
    );
    const statuses = answers.map((a) => a.status);
    expect(statuses.filter((s) => s === 200)).toHaveLength(1);
    expect(statuses.filter((s) => s === 412)).toHaveLength(49);
    const final = (await server.request("GET", `/orders/${order.id}`, { token: c.admin.token })).body as Order;
    expect(final.version).toBe(order.version + 1);
  });

  test("50 couriers claim one order at once: exactly one gets it", async () => {
    const order = await orderIn(server, c, "preparing");
    const couriers = await Promise.all(Array.from({ length: 50 }, () => server.register("courier")));
    const answers = await Promise.all(couriers.map((k) => server.request("POST", `/orders/${order.id}/claim`, { token: k.token })));
    const winners = answers.filter((a) => a.status === 200);
    expect(winners).toHaveLength(1);
    expect(answers.filter((a) => a.status === 409)).toHaveLength(49);
    const final = (await server.request("GET", `/orders/${order.id}`, { token: c.admin.token })).body as Order;
    expect(final.courierId).toBe(winners[0].body.courierId);
    expect(final.history.map((h) => h.seq)).toEqual([1, 2, 3, 4]);
  });
});

describe("publishing: the bus carries exactly the committed changes", () => {
  test("one change per committed history entry, in seq order, none for refused moves", async () => {
    const changes: OrderChange[] = [];
    const off = server.deps.bus.onChange((ch) => changes.push(ch));
    try {
      const order = await placeOrder(server, c);
      await patch(server, c.customer, order.id, "accepted"); // refused
      await patch(server, c.owner, order.id, "accepted");
      await patch(server, c.owner, order.id, "accepted"); // refused
      await patch(server, c.owner, order.id, "preparing", { "if-match": "1" }); // 412
      await server.request("POST", `/orders/${order.id}/claim`, { token: c.courier.token });
      await Promise.all([patch(server, c.owner, order.id, "preparing"), patch(server, c.admin, order.id, "cancelled")]);
      const final: Order = (await server.request("GET", `/orders/${order.id}`, { token: c.admin.token })).body;
      const mine = changes.filter((ch) => ch.orderId === order.id);
      expect(mine.map((ch) => ch.seq)).toEqual(final.history.map((h) => h.seq));
      expect(mine.map((ch) => ch.type)).toEqual(["order.created", ...Array(final.history.length - 1).fill("order.updated")]);
      expect(mine.map((ch) => ch.event)).toEqual(final.history.map((h) => h.event));
      expect(mine.map((ch): string => ch.status)).toEqual(final.history.map((h) => h.status));
      expect(mine.map((ch): string | null => ch.prevStatus)).toEqual([null, ...final.history.slice(0, -1).map((h) => h.status)]);
      for (const ch of mine) {
        expect(ch.order.version).toBe(ch.seq);
        expect(ch.origin).toBe(server.deps.config.INSTANCE_ID);
      }
      expect(mine[mine.length - 1].order as unknown).toEqual(final);
    } finally {
      off();
    }
  });
});

import { ObjectId } from "mongodb";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { COLLECTIONS } from "../../../src/db/mongo";
import { ORDER_INDEXES, OrderRepository } from "../../../src/modules/orders/repository";
import { explainOrderQueries } from "../../helpers/order-query-plans";
import { startTestServer, type TestServer } from "../../helpers/server";
import { cast, orderIn, placeOrder, type Cast } from "./fixtures";

let server: TestServer;
let c: Cast;

beforeAll(async () => {
  server = await startTestServer();
  c = await cast(server);
});
afterAll(async () => {
  await server?.stop();
});

/** Index names a plan uses (IXSCAN / IDHACK / EXPRESS_IXSCAN …, at any depth). */
function indexesIn(node: unknown, out: string[] = []): string[] {
  if (Array.isArray(node)) {
    for (const n of node) indexesIn(n, out);
  } else if (node && typeof node === "object") {
    const o = node as Record<string, unknown>;
    if (typeof o.stage === "string") {
      if (typeof o.indexName === "string") out.push(o.indexName);
      else if (/IDHACK|EXPRESS_IXSCAN|CLUSTERED_IXSCAN/.test(o.stage)) out.push("_id_");
    }
    for (const [k, v] of Object.entries(o)) if (k !== "rejectedPlans") indexesIn(v, out);
  }
  return out;
}

function stagesIn(node: unknown, out: string[] = []): string[] {
  if (Array.isArray(node)) for (const n of node) stagesIn(n, out);
  else if (node && typeof node === "object") {
    const o = node as Record<string, unknown>;
    if (typeof o.stage === "string") out.push(o.stage);
    for (const [k, v] of Object.entries(o)) if (k !== "rejectedPlans") stagesIn(v, out);
  }
  return out;
}

describe("order indexes", () => {
  test("created at start-up, including the unique partial idempotency index", async () => {
    const indexes = await server.deps.db.db.collection(COLLECTIONS.orders).listIndexes().toArray();
    const byName = new Map(indexes.map((i) => [i.name as string, i]));
    for (const wanted of ORDER_INDEXES) {
      const found = byName.get(wanted.name!);
      expect({ name: wanted.name, key: found?.key }).toEqual({ name: wanted.name, key: wanted.key });
    }
    const idem = byName.get("orders_customer_idempotencyKey")!;
    expect(idem.unique).toBe(true);
    expect(idem.partialFilterExpression).toEqual({ idempotencyKey: { $type: "string" } });
  });

  test("the unique partial index itself refuses a second order with the same customer and key", async () => {
    const repo = new OrderRepository(server.deps.db.db);
    const first = await placeOrder(server, c, { "idempotency-key": "unique-index" });
    const stored = (await repo.findById(first.id))!;
    // The order carries the token of this use of the key (idempotency_keys), not the key itself.
    const token = (await server.deps.db.db.collection(COLLECTIONS.orders).findOne({ _id: new ObjectId(first.id) }))!.idempotencyKey as string;
    expect(token).toMatch(/^[0-9a-f]{24}$/);
    // Straight to insert, past the service's look-up: only the index can catch this one.
    const { id: _id, version: _v, status: _s, courierId: _c, createdAt: _ca, updatedAt: _u, history: _h, dispatch: _d, eta: _e, ...order } = stored.order;
    // What the service derives at placing (pickup, prep time, dispatch, timers, ETA).
    const rest = { ...order, pickup: stored.pickup!, prepTimeMinutes: stored.prepTimeMinutes!, dispatch: { state: "idle" as const, attempts: 0 }, timers: [], eta: null };
    const again = await repo.insert({
      ...rest,
      restaurantOwnerId: stored.restaurantOwnerId,
      at: new Date(),
      by: { role: "customer", id: c.customer.user.id },
      machine: stored.machine,
      idempotencyKey: token,
    });
    expect(again.created).toBe(false);
    expect(again.stored.order.id).toBe(first.id);
    const count = await server.deps.db.db.collection(COLLECTIONS.orders).countDocuments({ customerId: c.customer.user.id, idempotencyKey: token });
    expect(count).toBe(1);
    // Orders without a key never collide.
    const a = await repo.insert({ ...rest, restaurantOwnerId: stored.restaurantOwnerId, at: new Date(), by: { role: "customer", id: c.customer.user.id }, machine: stored.machine });
    const b = await repo.insert({ ...rest, restaurantOwnerId: stored.restaurantOwnerId, at: new Date(), by: { role: "customer", id: c.customer.user.id }, machine: stored.machine });
    expect([a.created, b.created]).toEqual([true, true]);
  });

  test("every query the repository makes is answered by an index (explain)", async () => {
    const order = await orderIn(server, c, "accepted", { claim: true });
    await placeOrder(server, c, { "idempotency-key": "explain-me" });
    const plans = await explainOrderQueries(server.deps.db.db, {
      orderId: order.id,
      customerId: c.customer.user.id,
      ownerId: c.owner.user.id,
      courierId: c.courier.user.id,
      restaurantId: c.restaurant.id,
      idempotencyKey: "explain-me",
    });
    // The index real MongoDB's planner picks first; after it, what the embedded engine picks where it
    // differs (its hash indexes answer equality on a key prefix and it never plans with a partial index).
    const expected: Record<string, string[]> = {
      findById: ["_id_"],
      "commitTransition (compare-and-set)": ["_id_"],
      findByIdempotencyKey: ["orders_customer_idempotencyKey", "orders_customer_createdAt"],
      "list: customer": ["orders_customer_createdAt"],
      "list: restaurant owner": ["orders_owner_createdAt"],
      "list: restaurant owner, one restaurant": ["orders_restaurant_createdAt", "orders_owner_createdAt"],
      "list: courier": ["orders_courier_createdAt"],
      "list: admin": ["orders_createdAt"],
      "list: admin by status": ["orders_status_createdAt"],
      "changedSince: restaurant": ["orders_restaurant_updatedAt", "orders_restaurant_createdAt"],
      "changedSince: courier": ["orders_courier_updatedAt", "orders_courier_createdAt"],
      activeForCourier: ["orders_courier_createdAt", "orders_courier_updatedAt"],
      carriedBy: ["orders_courier_createdAt", "orders_courier_updatedAt"],
      "timers: claim due": ["orders_timerPending_nextTimerAt"],
      openForDispatch: ["orders_dispatchState_createdAt"],
    };
    const embedded = server.deps.db.embedded;
    const table = plans.map(({ query, plan }) => {
      const winning = (plan.queryPlanner as Record<string, unknown> | undefined)?.winningPlan;
      return { query, index: indexesIn(winning)[0] ?? null, stages: stagesIn(winning) };
    });
    for (const row of table) {
      // The embedded engine has no ordered index: an unfiltered, sorted list is a scan and a sort there.
      const scanAllowed = embedded && row.query === "list: admin";
      const ok = scanAllowed ? row.stages.includes("COLLSCAN") : row.index !== null && expected[row.query].includes(row.index);
      expect({ ...row, ok }).toEqual({ ...row, ok: true });
      // On MongoDB the list queries sort through the index, never in memory.
      if (!embedded && (row.query.startsWith("list") || row.query.startsWith("changedSince"))) expect(row.stages).not.toContain("SORT");
    }
    expect(table.map((r) => r.query).sort()).toEqual(Object.keys(expected).sort());
  });
});

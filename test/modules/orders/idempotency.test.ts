import { ObjectId } from "mongodb";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { COLLECTIONS } from "../../../src/db/mongo";
import { IDEMPOTENCY_KEY_INDEXES } from "../../../src/modules/orders/idempotency-keys";
import { startTestServer, type Registered, type TestServer } from "../../helpers/server";
import { cast, DELIVER_TO, placeOrder, type Cast, type Order } from "./fixtures";

/** Idempotency-Key on POST /orders as the IETF httpapi draft says, over real HTTP. */
let server: TestServer;
let c: Cast;

beforeAll(async () => {
  server = await startTestServer();
  c = await cast(server);
});
afterAll(async () => {
  await server?.stop();
});

const bodyOf = (quantity = 2) => ({ restaurantId: c.restaurant.id, items: [{ menuItemId: "pizza", quantity }], deliveryLocation: DELIVER_TO });
const post = (who: Registered, key: string, body: unknown = bodyOf()) => server.request("POST", "/orders", { token: who.token, headers: { "idempotency-key": key }, body });
const ordersOf = async (who: Registered) => (await server.request("GET", "/orders?limit=100", { token: who.token })).body.items as Order[];
const keys = () => server.deps.db.db.collection(COLLECTIONS.idempotencyKeys);

describe("POST /orders with Idempotency-Key: the same key and body", () => {
  test("returns the first order with 200 and creates nothing; another customer's identical key is their own", async () => {
    const customer = await server.register("customer");
    const first = await placeOrder(server, { customer, restaurant: c.restaurant }, { "idempotency-key": "key-1" });
    const again = await post(customer, "key-1");
    expect(again.status).toBe(200);
    expect(again.body).toEqual(first);
    const other = await placeOrder(server, { customer: c.customer, restaurant: c.restaurant }, { "idempotency-key": "key-1" });
    expect(other.id).not.toBe(first.id);
    expect((await ordersOf(customer)).map((o) => o.id)).toEqual([first.id]);
  });

  test("the key as a Structured Field String (\"k\") is the same key as the bare token; key order and spacing of the body do not matter", async () => {
    const customer = await server.register("customer");
    const first = await post(customer, '"sf-key-\\"1\\""');
    expect(first.status).toBe(201);
    const bare = await post(customer, 'sf-key-"1"');
    expect(bare.status).toBe(200);
    expect(bare.body.id).toBe(first.body.id);
    // The same JSON written another way: keys reordered, spaces added.
    const reordered = await fetch(`${server.url}/orders`, {
      method: "POST",
      headers: { authorization: `Bearer ${customer.token}`, "content-type": "application/json", "idempotency-key": '"sf-key-\\"1\\""' },
      body: `{ "deliveryLocation": {"lng": ${DELIVER_TO.lng}, "lat": ${DELIVER_TO.lat}},  "items": [{"quantity": 2, "menuItemId": "pizza"}], "restaurantId": "${c.restaurant.id}" }`,
    });
    expect(reordered.status).toBe(200);
    expect(((await reordered.json()) as Order).id).toBe(first.body.id);
  });
});

describe("POST /orders with Idempotency-Key: the same key and another body", () => {
  test("is 422 problem+json saying the key is already used, and creates nothing", async () => {
    const customer = await server.register("customer");
    const first = await post(customer, "reused");
    expect(first.status).toBe(201);
    const other = await post(customer, "reused", bodyOf(3));
    expect(other.status).toBe(422);
    expect(other.headers.get("content-type")).toContain("application/problem+json");
    expect(other.body.title).toBe("Idempotency-Key is already used");
    expect(other.body.detail).toContain("different request body");
    expect((await ordersOf(customer)).map((o) => o.id)).toEqual([first.body.id]);
    // The first body still gets the first order.
    expect((await post(customer, "reused")).body.id).toBe(first.body.id);
  });
});

describe("POST /orders with Idempotency-Key: a repeat while the first is in flight", () => {
  test("is 409; once the first finishes, the repeat gets its order with 200", async () => {
    const customer = await server.register("customer");
    // Hold the first request inside the order insert (the key's own insert is skipped); the
    // repeat only reads the key, so it never meets the fail point.
    await server.deps.db.client.db("admin").command({
      configureFailPoint: "failCommand",
      mode: { skip: 1, times: 1 },
      data: { failCommands: ["insert"], blockConnection: true, blockTimeMS: 1_500 },
    });
    try {
      const firstP = post(customer, "slow");
      // The first request has recorded its key (an aggregate: not held by the fail point).
      const deadline = Date.now() + 5_000;
      while ((await keys().countDocuments({ customerId: customer.user.id, key: "slow", state: "pending" })) === 0) {
        if (Date.now() > deadline) throw new Error("the first request never recorded its key");
        await Bun.sleep(5);
      }
      const repeat = await post(customer, "slow");
      expect(repeat.status).toBe(409);
      expect(repeat.body.title).toBe("A request is outstanding for this Idempotency-Key");
      const first = await firstP;
      expect(first.status).toBe(201);
      const after = await post(customer, "slow");
      expect(after.status).toBe(200);
      expect(after.body.id).toBe(first.body.id);
    } finally {
      await server.deps.db.client.db("admin").command({ configureFailPoint: "failCommand", mode: "off" });
    }
  }, 30_000);

  test("a burst of 20 concurrent identical requests: exactly one 201, the others 409 or 200 with that order; one order exists", async () => {
    const customer = await server.register("customer");
    const answers = await Promise.all(Array.from({ length: 20 }, () => post(customer, "burst")));
    const created = answers.filter((a) => a.status === 201);
    expect(created).toHaveLength(1);
    for (const a of answers) {
      expect([200, 201, 409]).toContain(a.status);
      if (a.status === 200) expect(a.body.id).toBe(created[0]!.body.id);
    }
    expect((await ordersOf(customer)).map((o) => o.id)).toEqual([created[0]!.body.id]);
  }, 30_000);
});

describe("POST /orders with Idempotency-Key: refusals and expiry", () => {
  test("a request the domain refuses (422 closed) does not keep the key: the same request succeeds once the restaurant opens", async () => {
    const customer = await server.register("customer");
    const close = await server.request("PATCH", `/restaurants/${c.restaurant.id}`, { token: c.owner.token, body: { isOpen: false } });
    expect(close.status).toBe(200);
    try {
      const refused = await post(customer, "after-open");
      expect(refused.status).toBe(422);
      expect(refused.body.detail).toContain("closed");
    } finally {
      expect((await server.request("PATCH", `/restaurants/${c.restaurant.id}`, { token: c.owner.token, body: { isOpen: true } })).status).toBe(200);
    }
    expect((await post(customer, "after-open")).status).toBe(201);
  });

  test("keys expire through a TTL index after IDEMPOTENCY_KEY_TTL_SECONDS; an expired key places a new order", async () => {
    const indexes = await keys().listIndexes().toArray();
    const ttl = indexes.find((i) => i.name === "idempotency_expiresAt_ttl");
    expect(ttl?.key).toEqual({ expiresAt: 1 });
    expect(ttl?.expireAfterSeconds).toBe(0);
    expect(indexes.find((i) => i.name === "idempotency_customer_key")?.unique).toBe(true);
    expect(IDEMPOTENCY_KEY_INDEXES.map((i) => i.name)).toEqual(["idempotency_customer_key", "idempotency_expiresAt_ttl"]);

    const customer = await server.register("customer");
    const first = await post(customer, "expiring");
    expect(first.status).toBe(201);
    const doc = await keys().findOne({ customerId: customer.user.id, key: "expiring" });
    expect(doc?.state).toBe("done");
    expect(doc!.expiresAt.getTime() - doc!.createdAt.getTime()).toBe(server.deps.config.IDEMPOTENCY_KEY_TTL_SECONDS * 1000);
    // What the TTL monitor does once expiresAt has passed.
    await keys().deleteOne({ _id: doc!._id });
    const later = await post(customer, "expiring");
    expect(later.status).toBe(201);
    expect(later.body.id).not.toBe(first.body.id);
  });

  test("a key left pending by a request that died is taken over once its lock passes: the order it inserted is returned, not doubled", async () => {
    const customer = await server.register("customer");
    const first = await post(customer, "crashed");
    expect(first.status).toBe(201);
    // As if the process died between inserting the order and marking the key done.
    const past = new Date(Date.now() - 1_000);
    await keys().updateOne({ customerId: customer.user.id, key: "crashed" }, { $set: { state: "pending", lockedUntil: past }, $unset: { orderId: "" } });
    const retry = await post(customer, "crashed");
    expect(retry.status).toBe(200);
    expect(retry.body.id).toBe(first.body.id);
    expect((await keys().findOne({ customerId: customer.user.id, key: "crashed" }))?.state).toBe("done");
    expect((await ordersOf(customer)).map((o) => o.id)).toEqual([first.body.id]);
    // Died before inserting anything: the retry places the order.
    const died = await post(customer, "died-early");
    await keys().updateOne({ customerId: customer.user.id, key: "died-early" }, { $set: { state: "pending", lockedUntil: past }, $unset: { orderId: "" } });
    await server.deps.db.db.collection(COLLECTIONS.orders).deleteOne({ _id: new ObjectId(died.body.id) });
    const placed = await post(customer, "died-early");
    expect(placed.status).toBe(201);
    expect((await ordersOf(customer)).map((o) => o.id).sort()).toEqual([first.body.id, placed.body.id].sort());
  });

  test("a malformed key is a 400", async () => {
    const res = await post(c.customer, "x".repeat(300));
    expect(res.status).toBe(400);
  });
});

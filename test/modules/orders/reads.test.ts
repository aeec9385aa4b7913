import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { Collection } from "mongodb";
import { IllegalTransition } from "../../../src/errors";
import { createLogger } from "../../../src/log";
import { OrderActorRegistry } from "../../../src/modules/orders/registry";
import { OrderRepository } from "../../../src/modules/orders/repository";
import { LocalEventBus } from "../../../src/realtime/bus";
import { startTestServer, type TestServer } from "../../helpers/server";
import { cast, patch, placeOrder, type Cast } from "./fixtures";

/*
 * Issue 12: database round trips per transition, counted on the official driver itself (its
 * methods are wrapped, the calls go through). A cold order's PATCH reads it once (the party
 * check and the actor's load share the read); a live actor's needs no read, not even of the
 * caller's role (cached for AUTH_ROLE_CACHE_MS); the compare-and-set stays the only write.
 */
let server: TestServer;
let c: Cast;
/** Calls on the orders collection since the test began (filters as JSON). */
const calls: Array<{ method: string; filter: string }> = [];
/** Calls on the users collection (the caller's role) since the test began. */
const userCalls: Array<{ method: string; filter: string }> = [];
let nested = 0;
const originals = new Map<string, (...args: unknown[]) => unknown>();
const METHODS = ["findOne", "find", "aggregate", "countDocuments", "findOneAndUpdate", "updateOne", "updateMany", "replaceOne", "insertOne", "bulkWrite"] as const;

beforeAll(async () => {
  // The production default, stated: the test helper turns the role cache off for the rest of the suite.
  server = await startTestServer({ AUTH_ROLE_CACHE_MS: "2000" });
  c = await cast(server);
  const proto = Collection.prototype as unknown as Record<string, (...args: unknown[]) => unknown>;
  for (const name of METHODS) {
    const original = proto[name];
    originals.set(name, original);
    proto[name] = function (this: Collection, ...args: unknown[]) {
      // findOne calls find: count the outer call only (the nesting is synchronous).
      if (nested === 0 && this.collectionName === "orders") calls.push({ method: name, filter: JSON.stringify(args[0] ?? {}) });
      if (nested === 0 && this.collectionName === "users") userCalls.push({ method: name, filter: JSON.stringify(args[0] ?? {}) });
      nested++;
      try {
        return original.apply(this, args);
      } finally {
        nested--;
      }
    };
  }
});
afterEach(() => {
  calls.length = 0;
  userCalls.length = 0;
});
afterAll(async () => {
  const proto = Collection.prototype as unknown as Record<string, (...args: unknown[]) => unknown>;
  for (const [name, original] of originals) proto[name] = original;
  await server?.stop();
});

const READS = new Set(["findOne", "find", "aggregate", "countDocuments"]);
/** Calls that name this order (the timer sweeper's and dispatch's own queries run meanwhile and name none). */
const about = (orderId: string) => calls.filter((c) => c.filter.includes(orderId)).map((c) => c.method);
const reads = (orderId: string) => about(orderId).filter((m) => READS.has(m));
const writes = (orderId: string) => about(orderId).filter((m) => !READS.has(m));

describe("round trips per transition", () => {
  test("a cold order's PATCH reads the order once and writes it once (the compare-and-set)", async () => {
    const order = await placeOrder(server, c);
    calls.length = 0;
    const res = await patch(server, c.customer, order.id, "cancelled");
    expect(res.status).toBe(200);
    expect(reads(order.id)).toEqual(["findOne"]);
    expect(writes(order.id)).toEqual(["findOneAndUpdate"]);
  });

  test("a PATCH of an order whose actor is live reads nothing: not the order, not the caller's role (cached, AUTH_ROLE_CACHE_MS)", async () => {
    const order = await placeOrder(server, c);
    expect((await patch(server, c.owner, order.id, "accepted")).status).toBe(200); // the owner's role is read (and cached) here
    await Bun.sleep(200); // the automatic dispatch that the acceptance starts settles
    calls.length = 0;
    userCalls.length = 0;
    const res = await patch(server, c.owner, order.id, "preparing");
    expect(res.status).toBe(200);
    expect(reads(order.id)).toEqual([]);
    expect(userCalls.filter((u) => u.filter.includes(c.owner.user.id)).map((u) => u.method)).toEqual([]);
    expect(writes(order.id)).toContain("findOneAndUpdate");
  });

  test("a PATCH of an order whose actor is live reads nothing", async () => {
    const order = await placeOrder(server, c);
    expect((await patch(server, c.owner, order.id, "accepted")).status).toBe(200);
    await Bun.sleep(200); // the automatic dispatch that the acceptance starts settles
    calls.length = 0;
    const res = await patch(server, c.owner, order.id, "preparing");
    expect(res.status).toBe(200);
    expect((res.body as { version: number }).version).toBe(3);
    expect(reads(order.id)).toEqual([]);
    expect(writes(order.id)).toContain("findOneAndUpdate"); // (dispatch may write it meanwhile too)
  });

  test("an actor started from the request's read when that read is already behind: the order is read again, nothing legal refused, nothing lost", async () => {
    const repo = new OrderRepository(server.deps.db.db);
    const log = createLogger("silent");
    const other = new OrderActorRegistry({ repo, bus: new LocalEventBus(log), clock: { now: () => new Date() }, log, instanceId: "B", idleSeconds: 300 });
    const mine = new OrderActorRegistry({ repo, bus: new LocalEventBus(log), clock: { now: () => new Date() }, log, instanceId: "A", idleSeconds: 300 });
    other.start();
    mine.start();
    try {
      const owner = { role: "restaurant" as const, id: c.owner.user.id };
      // Behind by a move: the stale copy says placed; the order is accepted.
      const a = await placeOrder(server, c);
      const staleA = (await repo.findById(a.id))!;
      await other.send(a.id, { event: { type: "ACCEPT", actor: owner } });
      const prepared = await mine.send(a.id, { event: { type: "START_PREPARING", actor: owner }, loaded: staleA });
      expect(prepared).toMatchObject({ status: "preparing", version: 3 });
      // The stale copy allows a move the order no longer does: the compare-and-set misses, the reread refuses it.
      const b = await placeOrder(server, c);
      const staleB = (await repo.findById(b.id))!;
      await other.send(b.id, { event: { type: "ACCEPT", actor: owner } });
      const err = await mine.send(b.id, { event: { type: "ACCEPT", actor: owner }, loaded: staleB }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(IllegalTransition);
      const stored = (await repo.findById(b.id))!;
      expect(stored.order.history.map((h) => [h.seq, h.status])).toEqual([
        [1, "placed"],
        [2, "accepted"],
      ]);
    } finally {
      await Promise.all([mine.stop(), other.stop()]);
    }
  });
});

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { ObjectId } from "mongodb";
import { TimerStore, TimerSweeper, timerFields, type StoredTimer, type TimerDoc, type TimerDocId } from "../../src/db/timers";
import { createLogger } from "../../src/log";
import { startTestServer, type TestServer } from "../helpers/server";
import { WsClient } from "../helpers/ws";
import { cast, patch, placeOrder, type Cast } from "../modules/orders/fixtures";

/** Durable timers on the embedded engine: the claim, the sweeper, and the restaurant's deadline end to end. */
let server: TestServer;
let c: Cast;
const log = createLogger("silent");
const clock = { now: () => new Date() };

beforeAll(async () => {
  server = await startTestServer({ ACCEPT_TIMEOUT_SECONDS: "1", TIMER_SWEEP_INTERVAL_MS: "50" });
  c = await cast(server);
});
afterAll(async () => {
  await server?.stop();
});

/** A collection of its own with `n` documents whose one timer is due. */
async function dueDocuments(name: string, n: number, dueAt = new Date(Date.now() - 1_000)) {
  const col = server.deps.db.db.collection<TimerDoc>(name);
  await col.insertMany(Array.from({ length: n }, (_, i) => ({ _id: new ObjectId(), i, ...timerFields([{ kind: "test", dueAt, ref: i }]) })));
  return col;
}

describe("TimerStore.claimDue", () => {
  test("two claimers racing over the same due documents: each document is leased by exactly one", async () => {
    const col = await dueDocuments("timers_race", 40);
    const a = new TimerStore(col);
    const b = new TimerStore(col);
    const claimed: Record<string, string[]> = { a: [], b: [] };
    const drain = async (store: TimerStore, name: string) => {
      for (;;) {
        const got = await store.claimDue(new Date(), name, 60_000);
        if (!got) return;
        claimed[name].push(String(got.id));
      }
    };
    await Promise.all([drain(a, "a"), drain(b, "b"), drain(a, "a"), drain(b, "b")]);
    const all = [...claimed.a, ...claimed.b];
    expect(all.length).toBe(40);
    expect(new Set(all).size).toBe(40);
    expect(await col.countDocuments({ "timerLease.owner": { $in: ["a", "b"] } })).toBe(40);
  });

  test("nothing is claimed before it is due, and a live lease is not claimed again; an expired one is", async () => {
    const col = await dueDocuments("timers_lease", 1, new Date(Date.now() + 60_000));
    const store = new TimerStore(col);
    expect(await store.claimDue(new Date(), "x", 1_000)).toBeNull();
    const later = new Date(Date.now() + 61_000);
    const first = await store.claimDue(later, "x", 1_000);
    expect(first?.timer).toMatchObject({ kind: "test", ref: 0 });
    expect(await store.claimDue(later, "y", 1_000)).toBeNull();
    const afterLease = new Date(later.getTime() + 1_001);
    expect((await store.claimDue(afterLease, "y", 1_000))?.id).toEqual(first!.id);
  });
});

describe("TimerSweeper", () => {
  test("fires due timers; a failed firing keeps its lease and is retried once the lease expires; a stale one is dropped", async () => {
    const col = await dueDocuments("timers_sweep", 3);
    const attempts = new Map<string, number>();
    const fired: string[] = [];
    const sweeper = new TimerSweeper({
      store: new TimerStore(col),
      owner: "sweeper",
      clock,
      log,
      intervalMs: 20,
      leaseMs: 300,
      async fire(id: TimerDocId, timer: StoredTimer) {
        const key = String(id);
        attempts.set(key, (attempts.get(key) ?? 0) + 1);
        if (timer.ref === 1 && attempts.get(key) === 1) throw new Error("database hiccup");
        if (timer.ref === 2) return "stale";
        // What the owner's transition does when it applies: the timer is gone.
        await col.updateOne({ _id: id as ObjectId }, { $set: timerFields([]) });
        fired.push(key);
        return "fired";
      },
    });
    const ids = (await col.find({}, { sort: { i: 1 } }).toArray()).map((d) => String(d._id));
    const started = performance.now();
    sweeper.start();
    while (fired.length < 2 && performance.now() - started < 3_000) await Bun.sleep(10);
    const elapsed = performance.now() - started;
    await sweeper.stop();
    expect(fired).toEqual([ids[0], ids[1]]);
    expect(attempts.get(ids[1])).toBe(2);
    expect(elapsed).toBeGreaterThanOrEqual(300); // the retry waited for the lease
    expect(sweeper.firedCount).toBe(2);
    // The stale one was tried once per lease, never hammered.
    expect(attempts.get(ids[2])!).toBeLessThanOrEqual(Math.ceil(elapsed / 300) + 1);
  });
});

describe("ACCEPT_TIMEOUT_SECONDS", () => {
  test("a placed order nobody accepts is cancelled by the system with reason restaurant_timeout, once, and announced", async () => {
    const order = await placeOrder(server, c);
    const ws = await WsClient.open(server.url.replace(/^http/, "ws") + "/ws", c.customer.token);
    try {
      expect((await ws.subscribe(`order:${order.id}`)).type).toBe("subscribed");
      const cancelled = await ws.next((f) => f.type === "order.updated" && f.status === "cancelled", 3_000);
      expect(cancelled).toMatchObject({ event: "ACCEPT_TIMEOUT", prevStatus: "placed", by: { role: "system", id: "timer" } });
      const due = Date.parse(order.createdAt) + 1_000;
      const firedAt = Date.parse(cancelled.at);
      expect(firedAt).toBeGreaterThanOrEqual(due);
      expect(firedAt - due).toBeLessThan(1_000);
      const stored = (await server.request("GET", `/orders/${order.id}`, { token: c.customer.token })).body;
      expect(stored.history.at(-1)).toMatchObject({ seq: 2, status: "cancelled", event: "ACCEPT_TIMEOUT", reason: "restaurant_timeout" });
      expect(stored.history.length).toBe(2);
      expect(stored.eta).toBeNull();
    } finally {
      ws.close();
    }
  });

  test("an order accepted in time is not cancelled, and its deadline is gone", async () => {
    const order = await placeOrder(server, c);
    expect((await patch(server, c.owner, order.id, "accepted")).status).toBe(200);
    await Bun.sleep(1_300);
    const stored = (await server.request("GET", `/orders/${order.id}`, { token: c.customer.token })).body;
    expect(stored.status).toBe("accepted");
    expect(stored.history.map((h: { event: string }) => h.event)).toEqual(["PLACE", "ACCEPT"]);
  });
});

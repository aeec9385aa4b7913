import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { DomainError, IllegalTransition, ServiceUnavailable } from "../../../src/errors";
import { createLogger } from "../../../src/log";
import { OrderActorRegistry } from "../../../src/modules/orders/registry";
import { OrderRepository } from "../../../src/modules/orders/repository";
import { LocalEventBus } from "../../../src/realtime/bus";
import type { OrderChange } from "../../../src/events/change";
import { startTestServer, TestClock, type TestServer } from "../../helpers/server";
import { cast, orderIn, placeOrder, type Cast } from "./fixtures";

/*
 * Two registries over one database stand for two server instances: each caches its own actors,
 * so one can be behind the other's writes. That is where the compare-and-set earns its keep.
 */
let server: TestServer;
let c: Cast;
let repo: OrderRepository;
const log = createLogger("silent");

function instance(id: string, opts: { idleSeconds?: number; clock?: TestClock } = {}) {
  const bus = new LocalEventBus(log);
  const changes: OrderChange[] = [];
  bus.onChange((ch) => changes.push(ch));
  const registry = new OrderActorRegistry({
    repo,
    bus,
    clock: opts.clock ?? { now: () => new Date() },
    log,
    instanceId: id,
    idleSeconds: opts.idleSeconds ?? 300,
  });
  registry.start();
  return { registry, bus, changes };
}

beforeAll(async () => {
  server = await startTestServer();
  c = await cast(server);
  repo = new OrderRepository(server.deps.db.db);
});
afterAll(async () => {
  await server?.stop();
});

const owner = () => ({ role: "restaurant" as const, id: c.owner.user.id });
const courier = () => ({ role: "courier" as const, id: c.courier.user.id });
const admin = () => ({ role: "admin" as const, id: c.admin.user.id });

describe("OrderActorRegistry", () => {
  test("a lost compare-and-set reloads and re-applies the event once", async () => {
    const order = await placeOrder(server, c);
    const a = instance("A");
    const b = instance("B");
    await a.registry.send(order.id, { event: { type: "ACCEPT", actor: owner() } }); // A caches v2
    await b.registry.send(order.id, { event: { type: "ASSIGN_COURIER", actor: courier() } }); // v3, A does not know
    const done = await a.registry.send(order.id, { event: { type: "START_PREPARING", actor: owner() } });
    expect(done.version).toBe(4);
    expect(done.courierId).toBe(c.courier.user.id); // re-applied on the reloaded order, not on A's stale copy
    expect(done.history.map((h) => [h.seq, h.event])).toEqual([
      [1, "PLACE"],
      [2, "ACCEPT"],
      [3, "ASSIGN_COURIER"],
      [4, "START_PREPARING"],
    ]);
    expect(a.changes.map((ch) => ch.seq)).toEqual([2, 4]);
    expect(b.changes.map((ch) => ch.seq)).toEqual([3]);
    await Promise.all([a.registry.stop(), b.registry.stop()]);
  });

  test("when the re-applied event is illegal on the reloaded order the caller gets 409 with allowed", async () => {
    const order = await placeOrder(server, c);
    const a = instance("A");
    const b = instance("B");
    await a.registry.send(order.id, { event: { type: "ACCEPT", actor: owner() } });
    await b.registry.send(order.id, { event: { type: "CANCEL", actor: admin() } });
    const err = await a.registry.send(order.id, { event: { type: "START_PREPARING", actor: owner() } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IllegalTransition);
    expect((err as IllegalTransition).allowed).toEqual([]);
    expect(a.changes.map((ch) => ch.seq)).toEqual([2]);
    const stored = await repo.findById(order.id);
    expect(stored?.order.version).toBe(3);
    await Promise.all([a.registry.stop(), b.registry.stop()]);
  });

  test("a stale cached actor does not refuse a move the database allows", async () => {
    const order = await placeOrder(server, c);
    const a = instance("A");
    const b = instance("B");
    await a.registry.send(order.id, { event: { type: "ACCEPT", actor: owner() } }); // A: accepted v2
    await b.registry.send(order.id, { event: { type: "START_PREPARING", actor: owner() } }); // preparing v3
    // For A's stale copy MARK_READY is illegal and If-Match 3 is "wrong"; both must be checked against the database.
    const done = await a.registry.send(order.id, { event: { type: "MARK_READY", actor: owner() }, ifMatch: 3 });
    expect(done).toMatchObject({ status: "ready_for_pickup", version: 4 });
    await Promise.all([a.registry.stop(), b.registry.stop()]);
  });

  test("a change committed by another instance invalidates the cached actor", async () => {
    const order = await placeOrder(server, c);
    const a = instance("A");
    const accepted = await a.registry.send(order.id, { event: { type: "ACCEPT", actor: owner() } });
    expect(a.registry.size).toBe(1);
    const change: OrderChange = {
      type: "order.updated",
      orderId: order.id,
      seq: accepted.version + 1,
      status: "preparing",
      prevStatus: "accepted",
      event: "START_PREPARING",
      at: new Date().toISOString(),
      by: owner(),
      order: { ...accepted, version: accepted.version + 1 },
      origin: "B",
    };
    const settle = () => new Promise((r) => setTimeout(r, 0));
    a.bus.publish({ ...change, seq: accepted.version }); // from B but not newer than ours: kept
    a.bus.publish({ ...change, origin: "A" }); // our own change: kept
    await settle();
    expect(a.registry.size).toBe(1);
    a.bus.publish(change); // B committed a newer version: ours is stale
    await settle();
    expect(a.registry.size).toBe(0);
    // The next event reloads from the database.
    const next = await a.registry.send(order.id, { event: { type: "START_PREPARING", actor: owner() } });
    expect(next.version).toBe(3);
    a.registry.invalidate(order.id); // without a version: always dropped
    await settle();
    expect(a.registry.size).toBe(0);
    await a.registry.stop();
  });

  test("actors are dropped on a final status and after ACTOR_IDLE_SECONDS without events", async () => {
    const clock = new TestClock(new Date());
    const a = instance("A", { idleSeconds: 1, clock });
    const first = await placeOrder(server, c);
    const second = await placeOrder(server, c);
    await a.registry.send(first.id, { event: { type: "ACCEPT", actor: owner() } });
    await a.registry.send(second.id, { event: { type: "ACCEPT", actor: owner() } });
    expect(a.registry.size).toBe(2);
    await a.registry.send(first.id, { event: { type: "CANCEL", actor: admin() } });
    expect(a.registry.size).toBe(1);
    clock.advance(5_000);
    const deadline = Date.now() + 3_000;
    while (a.registry.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(a.registry.size).toBe(0);
    // Dropped is not lost: the next event restores it from its snapshot.
    const next = await a.registry.send(second.id, { event: { type: "START_PREPARING", actor: owner() } });
    expect(next).toMatchObject({ status: "preparing", version: 3 });
    await a.registry.stop();
  });

  test("after stop, events are refused and no actor is left", async () => {
    const order = await orderIn(server, c, "accepted");
    const a = instance("A");
    await a.registry.send(order.id, { event: { type: "START_PREPARING", actor: owner() } });
    await a.registry.stop();
    expect(a.registry.size).toBe(0);
    const err = await a.registry.send(order.id, { event: { type: "MARK_READY", actor: owner() } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServiceUnavailable);
  });

  test("two instances writing one order concurrently: no gap, no duplicate, every success distinct", async () => {
    const order = await orderIn(server, c, "accepted");
    const a = instance("A");
    const b = instance("B");
    const events = [
      { type: "ASSIGN_COURIER" as const, actor: courier() },
      { type: "START_PREPARING" as const, actor: owner() },
      { type: "MARK_READY" as const, actor: owner() },
      { type: "PICK_UP" as const, actor: courier() },
      { type: "DELIVER" as const, actor: courier() },
    ];
    const results = await Promise.allSettled(
      Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).registry.send(order.id, { event: events[i % events.length] })),
    );
    const versions = results.flatMap((r) => (r.status === "fulfilled" ? [r.value.version] : []));
    const stored = await repo.findById(order.id);
    const seqs = stored!.order.history.map((h) => h.seq);
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
    // Every committed change was published by exactly one instance.
    const published = [...a.changes, ...b.changes].filter((ch) => ch.orderId === order.id).map((ch) => ch.seq);
    expect(published.sort((x, y) => x - y)).toEqual(seqs.slice(2)); // seqs 1-2 were written before these instances
    // Each fulfilled send returned a version that exists (the idempotent re-claim returns the current one).
    for (const v of versions) expect(seqs).toContain(v);
    // Every refusal is a 409 (illegal now, already claimed, or lost the compare-and-set twice).
    for (const r of results) if (r.status === "rejected") expect((r.reason as DomainError).status).toBe(409);
    await Promise.all([a.registry.stop(), b.registry.stop()]);
  });
});

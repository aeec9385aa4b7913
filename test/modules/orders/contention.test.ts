import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Elysia } from "elysia";
import { ServiceUnavailable } from "../../../src/errors";
import { problemPlugin } from "../../../src/http/problem";
import { createLogger } from "../../../src/log";
import type { OrderEvent } from "../../../src/modules/orders/machine";
import { OrderActorRegistry } from "../../../src/modules/orders/registry";
import { OrderRepository, type Transition } from "../../../src/modules/orders/repository";
import { LocalEventBus } from "../../../src/realtime/bus";
import { startTestServer, type TestServer } from "../../helpers/server";
import { cast, orderIn, type Cast } from "./fixtures";

/*
 * Issue 11: a legal move sent without If-Match never fails because other writers (another
 * instance's dispatch, a timer) keep winning the compare-and-set on the same order. Each
 * registry stands for one instance; they share one database.
 */
let server: TestServer;
let c: Cast;
let repo: OrderRepository;
const log = createLogger("silent");

beforeAll(async () => {
  server = await startTestServer();
  c = await cast(server);
  repo = new OrderRepository(server.deps.db.db);
});
afterAll(async () => {
  await server?.stop();
});

function instance(id: string, opts: { repo?: OrderRepository; contentionRetryMs?: number } = {}) {
  const registry = new OrderActorRegistry({
    repo: opts.repo ?? repo,
    bus: new LocalEventBus(log),
    clock: { now: () => new Date() },
    log,
    instanceId: id,
    idleSeconds: 300,
    ...(opts.contentionRetryMs !== undefined ? { contentionRetryMs: opts.contentionRetryMs } : {}),
  });
  registry.start();
  return registry;
}

const owner = () => ({ role: "restaurant" as const, id: c.owner.user.id });
const DISPATCH = { role: "system" as const, id: "dispatch" };
const TIMER = { role: "system" as const, id: "timer" };

/**
 * The next write another instance's dispatcher or timer makes on an unassigned order that is
 * searching or waiting for a courier: NO_COURIER, then the DISPATCH_RETRY timer, and so on.
 * Both change nothing parties see (no history entry) but bump the order's rev.
 */
async function invisibleWrite(other: OrderActorRegistry, orderId: string): Promise<boolean> {
  const { snapshot } = await other.inspect(orderId);
  const searchId = snapshot.context.dispatch.searchId;
  const region = (snapshot.value as { dispatch: string }).dispatch;
  const event: OrderEvent =
    region === "searching"
      ? { type: "NO_COURIER", actor: DISPATCH, searchId, retryAt: Date.now() + 60_000 }
      : { type: "DISPATCH_RETRY", actor: TIMER, searchId };
  if (region !== "searching" && region !== "waiting") return false;
  await other.send(orderId, { event });
  return true;
}

/** A repository whose compare-and-sets on `orderId` are each preceded by `before()` (a competing write). */
function contendedRepo(orderId: string, before: () => Promise<unknown>, times: number): { repo: OrderRepository; lost: () => number } {
  const contended = Object.create(repo) as OrderRepository;
  let left = times;
  let lost = 0;
  contended.commitTransition = async (t: Transition) => {
    if (t.id === orderId && left > 0) {
      left--;
      await before();
    }
    const done = await repo.commitTransition(t);
    if (!done) lost++;
    return done;
  };
  return { repo: contended, lost: () => lost };
}

describe("a legal move without If-Match under contention", () => {
  test("when other instances' invisible writes win the compare-and-set 8 times in a row, the move still commits", async () => {
    const order = await orderIn(server, c, "accepted");
    const other = instance("B");
    const { repo: contended, lost } = contendedRepo(order.id, () => invisibleWrite(other, order.id), 8);
    const restaurant = instance("A", { repo: contended });
    const moved = await restaurant.send(order.id, { event: { type: "START_PREPARING", actor: owner() } });
    expect(lost()).toBe(8);
    expect(moved.status).toBe("preparing");
    const stored = await repo.findById(order.id);
    expect(stored!.order.history.map((h) => h.event)).toEqual(["PLACE", "ACCEPT", "START_PREPARING"]);
    expect(stored!.rev).toBeGreaterThanOrEqual(8 + 2);
    await Promise.all([restaurant.stop(), other.stop()]);
  });

  test("the restaurant's moves all succeed while two other instances keep writing dispatch and timer steps", async () => {
    const order = await orderIn(server, c, "accepted");
    const b = instance("B");
    const d = instance("C");
    const restaurant = instance("A");
    let stop = false;
    let background = 0;
    const hammer = async (reg: OrderActorRegistry) => {
      while (!stop) {
        // An invisible write is only legal while the order has no courier and is not final.
        const wrote = await invisibleWrite(reg, order.id).catch(() => false);
        if (wrote) background++;
        // Back to back, with a jitter of a few ms (real dispatch and timer steps are far sparser).
        await Bun.sleep(Math.random() * 4);
      }
    };
    const writers = [hammer(b), hammer(d)];
    const busy = async (n: number) => {
      const until = background + n;
      while (background < until) await Bun.sleep(2);
    };
    await busy(5);
    const prep = await restaurant.send(order.id, { event: { type: "START_PREPARING", actor: owner() } });
    await busy(5);
    const ready = await restaurant.send(order.id, { event: { type: "MARK_READY", actor: owner() } });
    stop = true;
    await Promise.all(writers);
    expect([prep.status, ready.status]).toEqual(["preparing", "ready_for_pickup"]);
    const stored = await repo.findById(order.id);
    expect(stored!.order.history.map((h) => h.event)).toEqual(["PLACE", "ACCEPT", "START_PREPARING", "MARK_READY"]);
    await Promise.all([restaurant.stop(), b.stop(), d.stop()]);
  });

  test("an If-Match move that loses to an invisible write still applies (its version did not change)", async () => {
    const order = await orderIn(server, c, "accepted");
    const other = instance("B");
    const { repo: contended, lost } = contendedRepo(order.id, () => invisibleWrite(other, order.id), 3);
    const restaurant = instance("A", { repo: contended });
    const moved = await restaurant.send(order.id, { event: { type: "START_PREPARING", actor: owner() }, ifMatch: order.version });
    expect(lost()).toBe(3);
    expect(moved.version).toBe(order.version + 1);
    await Promise.all([restaurant.stop(), other.stop()]);
  });

  test("when the contention outlasts ORDER_CONTENTION_RETRY_MS the answer is 503 with Retry-After, never a 409, and nothing is written", async () => {
    const order = await orderIn(server, c, "accepted");
    const other = instance("B");
    const { repo: contended } = contendedRepo(order.id, () => invisibleWrite(other, order.id), Number.POSITIVE_INFINITY);
    const restaurant = instance("A", { repo: contended, contentionRetryMs: 80 });
    const err = await restaurant.send(order.id, { event: { type: "START_PREPARING", actor: owner() } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServiceUnavailable);
    expect((err as ServiceUnavailable).retryAfterSeconds).toBeGreaterThanOrEqual(1);
    const stored = await repo.findById(order.id);
    expect(stored!.order.status).toBe("accepted");
    expect(stored!.order.version).toBe(order.version);
    await Promise.all([restaurant.stop(), other.stop()]);

    // Over HTTP that error is a problem+json 503 carrying Retry-After.
    const app = new Elysia().use(problemPlugin(log)).get("/busy", () => {
      throw err;
    });
    const res = await app.handle(new Request("http://localhost/busy"));
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("1");
    expect(res.headers.get("content-type")).toContain("application/problem+json");
  });

  test("a move that became illegal while it lost the race is a 409 decided on the committed state", async () => {
    const order = await orderIn(server, c, "accepted");
    const other = instance("B");
    const admin = { role: "admin" as const, id: c.admin.user.id };
    const { repo: contended } = contendedRepo(order.id, () => other.send(order.id, { event: { type: "CANCEL", actor: admin } }), 1);
    const restaurant = instance("A", { repo: contended });
    const err = await restaurant.send(order.id, { event: { type: "START_PREPARING", actor: owner() } }).catch((e: unknown) => e);
    expect((err as { status?: number }).status).toBe(409);
    expect((err as { allowed?: string[] }).allowed).toEqual([]);
    await Promise.all([restaurant.stop(), other.stop()]);
  });
});

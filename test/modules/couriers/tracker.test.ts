import { describe, expect, test } from "bun:test";
import { CourierLocationTracker, type PositionWrite } from "../../../src/modules/couriers/tracker";
import type { CourierModel } from "../../../src/modules/couriers/model";
import { createLogger } from "../../../src/log";

function tracker(opts: { intervalMs?: number; flushMs?: number; now?: () => Date; recordMany?: (batch: PositionWrite[]) => Promise<void> } = {}) {
  const batches: PositionWrite[][] = [];
  const forwarded: Array<{ courierId: string; lat: number; orderIds: string[] }> = [];
  const t = new CourierLocationTracker({
    recordMany: async (batch) => {
      batches.push(batch);
      if (opts.recordMany) await opts.recordMany(batch);
    },
    activeOrders: async () => ["o1", "o2"],
    forward: (courierId, fix, orderIds) => forwarded.push({ courierId, lat: fix.lat, orderIds }),
    clock: { now: opts.now ?? (() => new Date()) },
    log: createLogger("silent"),
    minIntervalMs: opts.intervalMs ?? 100,
    maxFutureMs: 30_000,
    flushMs: opts.flushMs ?? 30,
  });
  const written = () => batches.flat().map((p) => p.fix.lat);
  return { t, batches, written, forwarded };
}

const fixAt = (ms: number, lat = 1): CourierModel.fix => ({ lat, lng: 2, at: new Date(ms) });

describe("CourierLocationTracker", () => {
  test("forwards the first fix at once and coalesces the ones within the interval into one forward of the latest", async () => {
    const { t, forwarded } = tracker();
    const base = Date.now() - 1_000;
    for (let i = 0; i < 5; i++) expect(t.report("k1", fixAt(base + i, i))).toBe("accepted");
    await Bun.sleep(20);
    expect(forwarded).toEqual([{ courierId: "k1", lat: 0, orderIds: ["o1", "o2"] }]);
    await Bun.sleep(130);
    expect(forwarded).toEqual([
      { courierId: "k1", lat: 0, orderIds: ["o1", "o2"] },
      { courierId: "k1", lat: 4, orderIds: ["o1", "o2"] },
    ]);
    await t.stop();
  });

  test("positions are written in batches across couriers, each courier's latest fix only", async () => {
    const { t, batches } = tracker({ intervalMs: 0, flushMs: 60 });
    const base = Date.now() - 1_000;
    for (let i = 0; i < 20; i++) t.report(`k${i % 4}`, fixAt(base + i, i));
    await Bun.sleep(150);
    expect(batches.length).toBe(1);
    expect(batches[0].map((p) => [p.courierId, p.fix.lat]).sort()).toEqual([
      ["k0", 16],
      ["k1", 17],
      ["k2", 18],
      ["k3", 19],
    ]);
    expect(t.writeCount).toBe(4);
    expect(t.batchCount).toBe(1);
    await t.stop();
  });

  test("stop writes what is pending, including a fix the throttle still holds back", async () => {
    const { t, batches } = tracker({ intervalMs: 10_000, flushMs: 10_000 });
    const base = Date.now() - 1_000;
    t.report("k1", fixAt(base, 1));
    t.report("k1", fixAt(base + 1, 2)); // held back by the throttle
    t.report("k2", fixAt(base, 3));
    await Bun.sleep(10);
    expect(batches).toEqual([]);
    await t.stop();
    expect(batches.flat().map((p) => [p.courierId, p.fix.lat]).sort()).toEqual([
      ["k1", 2],
      ["k2", 3],
    ]);
  });

  test("a failed write is retried with the next batch unless a newer fix replaced it", async () => {
    let fail = true;
    const { t, batches } = tracker({ intervalMs: 0, flushMs: 30, recordMany: async () => (fail ? Promise.reject(new Error("engine down")) : undefined) });
    const base = Date.now() - 1_000;
    t.report("k1", fixAt(base, 1));
    t.report("k2", fixAt(base, 2));
    await Bun.sleep(45);
    fail = false;
    t.report("k2", fixAt(base + 5, 3));
    await Bun.sleep(60);
    expect(batches.at(-1)?.map((p) => [p.courierId, p.fix.lat]).sort()).toEqual([
      ["k1", 1],
      ["k2", 3],
    ]);
    expect(t.writeCount).toBe(2);
    await t.stop();
  });

  test("a fix not newer than the newest seen is stale; one over 30 s ahead of server time is refused", async () => {
    const now = new Date("2030-01-01T00:00:00Z");
    const { t } = tracker({ now: () => now });
    expect(t.report("k1", fixAt(now.getTime() - 10))).toBe("accepted");
    expect(t.report("k1", fixAt(now.getTime() - 10))).toBe("stale");
    expect(t.report("k1", fixAt(now.getTime() - 20))).toBe("stale");
    expect(t.report("k1", fixAt(now.getTime() + 30_001))).toBe("future");
    expect(t.report("k1", fixAt(now.getTime() + 29_000))).toBe("accepted");
    await t.stop();
  });
});

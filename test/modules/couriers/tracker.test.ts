import { describe, expect, test } from "bun:test";
import { CourierLocationTracker } from "../../../src/modules/couriers/tracker";
import type { CourierModel } from "../../../src/modules/couriers/model";
import { createLogger } from "../../../src/log";

function tracker(opts: { intervalMs?: number; now?: () => Date; record?: (fix: CourierModel.fix) => Promise<boolean> } = {}) {
  const written: CourierModel.fix[] = [];
  const forwarded: Array<{ courierId: string; lat: number; orderIds: string[] }> = [];
  const t = new CourierLocationTracker({
    record: async (_id, fix) => {
      written.push(fix);
      return opts.record ? opts.record(fix) : true;
    },
    activeOrders: async () => ["o1", "o2"],
    forward: (courierId, fix, orderIds) => forwarded.push({ courierId, lat: fix.lat, orderIds }),
    clock: { now: opts.now ?? (() => new Date()) },
    log: createLogger("silent"),
    minIntervalMs: opts.intervalMs ?? 100,
    maxFutureMs: 30_000,
  });
  return { t, written, forwarded };
}

const fixAt = (ms: number, lat = 1): CourierModel.fix => ({ lat, lng: 2, at: new Date(ms) });

describe("CourierLocationTracker", () => {
  test("writes the first fix at once and coalesces the ones within the interval into one write of the latest", async () => {
    const { t, written, forwarded } = tracker();
    const base = Date.now() - 1_000;
    for (let i = 0; i < 5; i++) expect(t.report("k1", fixAt(base + i, i))).toBe("accepted");
    await Bun.sleep(20);
    expect(written.map((f) => f.lat)).toEqual([0]);
    await Bun.sleep(130);
    expect(written.map((f) => f.lat)).toEqual([0, 4]);
    expect(forwarded).toEqual([
      { courierId: "k1", lat: 0, orderIds: ["o1", "o2"] },
      { courierId: "k1", lat: 4, orderIds: ["o1", "o2"] },
    ]);
    expect(t.writeCount).toBe(2);
    t.stop();
  });

  test("couriers are throttled independently", async () => {
    const { t, written } = tracker();
    const base = Date.now() - 1_000;
    t.report("k1", fixAt(base, 1));
    t.report("k2", fixAt(base, 2));
    await Bun.sleep(20);
    expect(written.map((f) => f.lat).sort()).toEqual([1, 2]);
    t.stop();
  });

  test("a fix not newer than the newest seen is stale; one over 30 s ahead of server time is refused", () => {
    const now = new Date("2030-01-01T00:00:00Z");
    const { t } = tracker({ now: () => now });
    expect(t.report("k1", fixAt(now.getTime() - 10))).toBe("accepted");
    expect(t.report("k1", fixAt(now.getTime() - 10))).toBe("stale");
    expect(t.report("k1", fixAt(now.getTime() - 20))).toBe("stale");
    expect(t.report("k1", fixAt(now.getTime() + 30_001))).toBe("future");
    expect(t.report("k1", fixAt(now.getTime() + 29_000))).toBe("accepted");
    t.stop();
  });

  test("a fix the database refuses (a newer one is stored) is not forwarded", async () => {
    const { t, forwarded, written } = tracker({ record: async () => false });
    t.report("k1", fixAt(Date.now() - 5));
    await Bun.sleep(20);
    expect(written.length).toBe(1);
    expect(forwarded).toEqual([]);
    t.stop();
  });
});

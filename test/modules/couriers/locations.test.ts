import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { latestChange } from "../../../src/events/change";
import { createLogger } from "../../../src/log";
import { CourierLocations, POSITION_FLUSH_MS } from "../../../src/modules/couriers/locations";
import { CourierRepository } from "../../../src/modules/couriers/repository";
import { OrderRepository } from "../../../src/modules/orders/repository";
import { LocalEventBus } from "../../../src/realtime/bus";
import { startTestServer, type TestServer } from "../../helpers/server";
import { cast, orderIn, type Cast } from "../orders/fixtures";

/*
 * Issue 12: a courier's fix costs no database read (the orders it carries are read once and
 * kept current by the bus), and positions are written in batches, the pending ones at stop.
 */
let server: TestServer;
let c: Cast;
const log = createLogger("silent");

beforeAll(async () => {
  server = await startTestServer();
  c = await cast(server);
});
afterAll(async () => {
  await server?.stop();
});

describe("courier positions", () => {
  test("fixes are forwarded from memory: one read of the carried orders, another only after a change of one of them", async () => {
    const order = await orderIn(server, c, "accepted", { claim: true });
    const orders = new OrderRepository(server.deps.db.db);
    const couriers = new CourierRepository(server.deps.db.db);
    const bus = new LocalEventBus(log);
    const forwarded: Array<Record<string, unknown>> = [];
    bus.onTransient((topic, data) => {
      const message = JSON.parse(data) as Record<string, unknown>;
      if (topic === `order:${order.id}` && message.type === "courier.location") forwarded.push(message);
    });
    const locations = new CourierLocations({
      couriers,
      orders,
      bus,
      clock: { now: () => new Date() },
      log,
      config: { ...server.deps.config, COURIER_LOCATION_INTERVAL_MS: 0 },
    });
    const courierId = c.courier.user.id;
    const base = Date.now() - 60_000;
    const waitFor = async (n: number) => {
      for (let i = 0; i < 200 && forwarded.length < n; i++) await Bun.sleep(10);
      expect(forwarded.length).toBe(n);
    };
    try {
      for (let i = 0; i < 10; i++) {
        expect(locations.report(courierId, { lat: 48.85 + i / 1000, lng: 2.35, at: new Date(base + i * 1000) })).toBe("accepted");
        await waitFor(i + 1);
      }
      expect(locations.carriedReads).toBe(1);
      // A change of the carried order (here: announced on the bus as a commit would) is read once, at the next fix.
      const stored = (await orders.findById(order.id))!;
      bus.publish(latestChange(stored.order, "test"));
      for (let i = 10; i < 15; i++) {
        locations.report(courierId, { lat: 48.85 + i / 1000, lng: 2.35, at: new Date(base + i * 1000) });
        await waitFor(i + 1);
      }
      expect(locations.carriedReads).toBe(2);
      expect(forwarded.at(-1)).toMatchObject({ orderId: order.id, courierId, lat: 48.85 + 14 / 1000 });
    } finally {
      await locations.stop();
    }
    // Written in batches (15 fixes over well under 15 flush intervals), the latest one last; stop wrote what was pending.
    expect(locations.writeCount).toBeLessThan(15);
    expect(await couriers.findPosition(courierId)).toMatchObject({ lat: 48.85 + 14 / 1000, lng: 2.35 });
    expect(POSITION_FLUSH_MS).toBeLessThanOrEqual(250);
  });
});

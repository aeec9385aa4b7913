import { describe, expect, test } from "bun:test";
import { changesFromOrder } from "../../src/events/change";
import { feedTopicReplay, orderTopicReplay } from "../../src/realtime/history";
import { decodeClientMessage } from "../../src/realtime/model";
import type { OrderModel } from "../../src/modules/orders/model";
import { changeFor } from "./fixtures";

function orderWithHistory(id: string, statuses: OrderModel.status[], startMs: number, stepMs = 1000): OrderModel.order {
  const order = changeFor(id, statuses.length).order;
  order.status = statuses[statuses.length - 1];
  order.version = statuses.length;
  order.history = statuses.map((status, i) => ({ seq: i + 1, status, event: `E${i + 1}`, at: new Date(startMs + i * stepMs).toISOString(), by: { role: "restaurant", id: "owner1" } }));
  return order;
}

describe("changes rebuilt from history", () => {
  const order = orderWithHistory("o1", ["placed", "accepted", "preparing"], Date.UTC(2030, 0, 1));

  test("carry each entry's seq, status, previous status, event and time", () => {
    const changes = changesFromOrder(order, 0);
    expect(changes.map((c) => [c.type, c.seq, c.status, c.prevStatus, c.event])).toEqual([
      ["order.created", 1, "placed", null, "E1"],
      ["order.updated", 2, "accepted", "placed", "E2"],
      ["order.updated", 3, "preparing", "accepted", "E3"],
    ]);
    expect(changesFromOrder(order, 1, 3).map((c) => c.seq)).toEqual([2]);
  });

  test("an order topic replay is what live subscribers got: order.updated frames after since", () => {
    const frames = orderTopicReplay(order, "order:o1", 1).map((e) => JSON.parse(e.data));
    expect(frames.map((f) => [f.type, f.topic, f.seq, f.prevStatus])).toEqual([
      ["order.updated", "order:o1", 2, "placed"],
      ["order.updated", "order:o1", 3, "accepted"],
    ]);
  });

  test("a restaurant feed replay merges orders by time, keeps each order's seq order, and starts at since", () => {
    const t0 = Date.UTC(2030, 0, 1);
    const a = orderWithHistory("a", ["placed", "accepted", "preparing"], t0, 1000); // t0, t0+1s, t0+2s
    const b = orderWithHistory("b", ["placed", "rejected"], t0 + 500, 1000); // t0+0.5s, t0+1.5s
    const events = feedTopicReplay([a, b], "restaurant:r1", t0 + 500).map((e) => JSON.parse(e.data));
    expect(events.map((f) => [f.orderId, f.seq, f.type])).toEqual([
      ["b", 1, "order.created"],
      ["a", 2, "order.updated"],
      ["b", 2, "order.updated"],
      ["a", 3, "order.updated"],
    ]);
  });
});

describe("client messages", () => {
  test("valid ones decode; unknown fields are ignored", () => {
    expect(decodeClientMessage({ op: "subscribe", topic: "order:x", since: 3, id: "client-1" })).toMatchObject({ ok: true });
    expect(decodeClientMessage({ op: "location", lat: 1, lng: 2, at: "2030-01-01T00:00:00Z" })).toMatchObject({ ok: true });
  });

  test("invalid ones say what is wrong", () => {
    expect(decodeClientMessage([])).toEqual({ ok: false, message: "expected a JSON object with an op" });
    expect(decodeClientMessage({ op: "nope" })).toMatchObject({ ok: false, message: expect.stringContaining("op must be one of") });
    expect(decodeClientMessage({ op: "subscribe", topic: "order:x", since: 1.5 })).toMatchObject({ ok: false, message: expect.stringContaining("/since") });
    expect(decodeClientMessage({ op: "location", lat: 91, lng: 0 })).toMatchObject({ ok: false, message: expect.stringContaining("/lat") });
  });
});

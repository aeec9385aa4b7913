import { describe, expect, test } from "bun:test";
import { LocalEventBus } from "../../src/realtime/bus";
import type { OrderChange } from "../../src/events/change";
import { topics } from "../../src/events/topics";
import { capturingLogger, changeFor, RecordingServer } from "./fixtures";

function localBus(maxTrackedOrders?: number) {
  const { log, lines } = capturingLogger();
  const bus = new LocalEventBus(log, maxTrackedOrders === undefined ? {} : { maxTrackedOrders });
  const server = new RecordingServer();
  bus.attach(server);
  return { bus, server, lines };
}

describe("LocalEventBus", () => {
  test("deliveredSeq is the highest seq sent to local topics; unknown orders are undefined", () => {
    const { bus } = localBus();
    expect(bus.deliveredSeq("o1")).toBeUndefined();
    for (const seq of [1, 2, 3]) bus.publish(changeFor("o1", seq));
    expect(bus.deliveredSeq("o1")).toBe(3);
    expect(bus.deliveredSeq("o2")).toBeUndefined();
  });

  test("a change at or below the delivered seq goes to no topic: topics only ever see increasing seqs", () => {
    const { bus, server, lines } = localBus();
    const heard: number[] = [];
    bus.onChange((c) => heard.push(c.seq));
    for (const seq of [1, 2, 4, 2, 4, 3, 5]) bus.publish(changeFor("o1", seq));
    expect(server.seqs(topics.order("o1"))).toEqual([1, 2, 4, 5]);
    expect(server.seqs(topics.restaurant("r1"))).toEqual([1, 2, 4, 5]);
    expect(bus.deliveredSeq("o1")).toBe(5);
    // Listeners still hear every publish (the orders registry compares versions itself).
    expect(heard).toEqual([1, 2, 4, 2, 4, 3, 5]);
    expect(lines.filter((l) => l.msg === "order change at or below the delivered seq; not sent to topics").map((l) => l.seq)).toEqual([2, 4, 3]);
  });

  test("listeners hear a change after every topic has it", () => {
    const { bus, server } = localBus();
    // Recorded, not asserted, in the listener: the bus catches what a listener throws.
    const seen: Array<{ onTopics: number; delivered: number | undefined }> = [];
    bus.onChange((c: OrderChange) => {
      seen.push({ onTopics: server.published.filter((p) => p.message.seq === c.seq).length, delivered: bus.deliveredSeq(c.orderId) });
    });
    bus.publish(changeFor("o1", 1, "test", "r1", "k1"));
    expect(seen).toEqual([{ onTopics: 3, delivered: 1 }]); // order, restaurant and courier topics
  });

  test("transient messages go to the topic, then to transient listeners; unsubscribing stops them", () => {
    const { bus, server } = localBus();
    const heard: Array<[string, unknown]> = [];
    const off = bus.onTransient((topic, data) => heard.push([topic, JSON.parse(data)]));
    const topic = topics.order("o1");
    bus.publishTransient(topic, { type: "courier.location", topic, lat: 1 });
    off();
    bus.publishTransient(topic, { type: "courier.location", topic, lat: 2 });
    expect(server.published.map((p) => p.message.lat)).toEqual([1, 2]);
    expect(heard).toEqual([[topic, { type: "courier.location", topic, lat: 1 }]]);
  });

  test("memory is bounded: the least recently delivered orders are forgotten", () => {
    const { bus } = localBus(2);
    bus.publish(changeFor("a", 1));
    bus.publish(changeFor("b", 1));
    bus.publish(changeFor("a", 2)); // a is now the most recent
    bus.publish(changeFor("c", 1));
    expect(bus.deliveredSeq("b")).toBeUndefined();
    expect(bus.deliveredSeq("a")).toBe(2);
    expect(bus.deliveredSeq("c")).toBe(1);
  });
});

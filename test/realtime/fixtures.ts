import type { OrderChange } from "../../src/events/change";
import type { TopicPublisher } from "../../src/events/bus";
import type { OrderModel } from "../../src/modules/orders/model";
import { createLogger, type Logger } from "../../src/log";

const statuses: OrderModel.status[] = ["placed", "accepted", "preparing", "ready_for_pickup", "picked_up", "delivered"];

/** A committed change as the repository would publish it (seq n moves the order to the n-th status). */
export function changeFor(orderId: string, seq: number, origin = "test", restaurantId = "r1", courierId: string | null = null): OrderChange {
  const status = statuses[Math.min(seq - 1, statuses.length - 1)];
  const prevStatus = seq === 1 ? null : statuses[Math.min(seq - 2, statuses.length - 1)];
  const at = new Date(Date.UTC(2030, 0, 1, 12, 0, seq)).toISOString();
  const order: OrderModel.order = {
    id: orderId,
    status,
    version: seq,
    customerId: "c1",
    restaurantId,
    courierId,
    items: [{ menuItemId: "m1", name: "Soup", quantity: 1, unitPriceCents: 500 }],
    subtotalCents: 500,
    deliveryFeeCents: 199,
    totalCents: 699,
    deliveryLocation: { lat: 52.5, lng: 13.4 },
    createdAt: at,
    updatedAt: at,
    history: [],
  };
  return {
    type: seq === 1 ? "order.created" : "order.updated",
    orderId,
    seq,
    status,
    prevStatus,
    event: seq === 1 ? "place" : `to_${status}`,
    at,
    by: { role: "restaurant", id: "owner1" },
    order,
    origin,
  };
}

/** Records what a bus publishes to Bun topics. */
export class RecordingServer implements TopicPublisher {
  readonly published: Array<{ topic: string; message: Record<string, unknown> }> = [];
  private waiters: Array<{ check: () => boolean; resolve: () => void }> = [];

  publish(topic: string, data: string): number {
    this.published.push({ topic, message: JSON.parse(data) as Record<string, unknown> });
    this.waiters = this.waiters.filter((w) => (w.check() ? (w.resolve(), false) : true));
    return data.length;
  }

  /** Seqs published on a topic, in publish order. */
  seqs(topic: string): number[] {
    return this.published.filter((p) => p.topic === topic).map((p) => p.message.seq as number);
  }

  until(check: () => boolean, timeoutMs = 5_000): Promise<void> {
    if (check()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`condition not met within ${timeoutMs} ms; published: ${JSON.stringify(this.published.map((p) => [p.topic, p.message.seq ?? p.message.type]))}`)), timeoutMs);
      this.waiters.push({ check, resolve: () => (clearTimeout(timer), resolve()) });
    });
  }
}

/** A logger whose lines a test can read. */
export function capturingLogger(): { log: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  return { lines, log: createLogger("debug", {}, (line) => lines.push(JSON.parse(line) as Record<string, unknown>)) };
}

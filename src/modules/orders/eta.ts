import { distanceMeters, type LatLng } from "../../geo";
import type { OrderModel } from "./model";

/** What an order's ETA is computed from; times are epoch milliseconds. */
export type EtaInput = {
  status: OrderModel.status;
  now: number;
  /** The restaurant; null on orders stored before it was copied onto them. */
  pickup: LatLng | null;
  dropoff: LatLng;
  prepTimeMinutes: number | null;
  /** The assigned courier's last position, if there is one. */
  courier: LatLng | null;
  history: Array<{ status: OrderModel.status; at: number }>;
  speedMps: number;
};

export type Eta = { pickupAt: number; deliveryAt: number };

const SECOND = 1000;

function travelMs(from: LatLng, to: LatLng, speedMps: number): number {
  return (distanceMeters(from, to) / speedMps) * SECOND;
}

function lastAt(history: EtaInput["history"], status: OrderModel.status): number | null {
  for (let i = history.length - 1; i >= 0; i--) if (history[i].status === status) return history[i].at;
  return null;
}

/** Whole seconds, so a refresh that changes nothing reads the same. */
function roundUp(ms: number): number {
  return Math.ceil(ms / SECOND) * SECOND;
}

/**
 * When the order should be picked up and delivered: food ready at acceptance + prep time, the
 * courier's straight-line distance at an average speed, whichever comes later; then the
 * restaurant-to-customer leg. Null for cancelled or rejected orders (and orders without a
 * known pickup point). Delivered orders report what happened.
 */
export function estimateEta(input: EtaInput): Eta | null {
  const { status, now, pickup, dropoff, courier, history, speedMps } = input;
  if (status === "cancelled" || status === "rejected" || pickup === null) return null;
  const pickedUpAt = lastAt(history, "picked_up");
  if (status === "delivered") {
    const deliveredAt = lastAt(history, "delivered") ?? now;
    return { pickupAt: pickedUpAt ?? deliveredAt, deliveryAt: deliveredAt };
  }
  if (status === "picked_up") {
    const from = courier ?? pickup;
    const pickupAt = pickedUpAt ?? now;
    return { pickupAt, deliveryAt: roundUp(Math.max(now, pickupAt) + travelMs(from, dropoff, speedMps)) };
  }
  const prepMs = (input.prepTimeMinutes ?? 0) * 60 * SECOND;
  const readyAt = status === "ready_for_pickup" ? now : Math.max(now, (lastAt(history, "accepted") ?? now) + prepMs);
  const courierAt = courier ? now + travelMs(courier, pickup, speedMps) : readyAt;
  const pickupAt = roundUp(Math.max(readyAt, courierAt));
  return { pickupAt, deliveryAt: roundUp(pickupAt + travelMs(pickup, dropoff, speedMps)) };
}

/** The ETA input of a stored order (history times as epoch ms). */
export function etaInputOf(
  order: Pick<OrderModel.order, "deliveryLocation" | "history">,
  extra: { status: OrderModel.status; pickup: LatLng | null; prepTimeMinutes: number | null; courier: LatLng | null; now: number; speedMps: number },
): EtaInput {
  return {
    ...extra,
    dropoff: order.deliveryLocation,
    history: order.history.map((h) => ({ status: h.status, at: Date.parse(h.at) })),
  };
}

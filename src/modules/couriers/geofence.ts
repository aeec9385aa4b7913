import { distanceMeters, type LatLng } from "../../geo";
import type { OrderModel } from "../orders/model";

export type ApproachTarget = "pickup" | "dropoff";

/**
 * The target a courier carrying an order heads for (the restaurant until pickup, then the
 * customer), and whether a position is inside its geofence for the first time. Null when not
 * (yet) close, when that target was already announced, or when its point is unknown.
 */
export function approachFor(
  order: { status: OrderModel.status; pickup: LatLng | null; dropoff: LatLng; approached: { pickup: boolean; dropoff: boolean } },
  position: LatLng,
  radiusMeters: number,
): { target: ApproachTarget; distanceMeters: number } | null {
  const target: ApproachTarget = order.status === "picked_up" ? "dropoff" : "pickup";
  if (order.approached[target]) return null;
  const point = target === "pickup" ? order.pickup : order.dropoff;
  if (!point) return null;
  const d = distanceMeters(position, point);
  return d <= radiusMeters ? { target, distanceMeters: d } : null;
}

import { distanceMeters } from "../../geo";
import { Unprocessable } from "../../errors";
import { areaContains } from "../restaurants/area";
import { isOpenAt } from "../restaurants/hours";
import type { RestaurantModel } from "../restaurants/model";
import type { OrderModel } from "./model";

export type FeeSchedule = { baseFeeCents: number; perKmCents: number };

export type RequestedItem = { menuItemId: string; quantity: number };

export type PricedOrder = {
  items: OrderModel.order["items"];
  subtotalCents: number;
  deliveryFeeCents: number;
  totalCents: number;
  distanceMeters: number;
};

/**
 * Delivery fee by straight-line (great-circle) distance from the restaurant to the delivery point:
 *   deliveryFeeCents = DELIVERY_BASE_FEE_CENTS + DELIVERY_FEE_PER_KM_CENTS × ceil(distanceMeters / 1000)
 * i.e. every started kilometre costs the per-km rate (0 m → base fee only; 1 m → base + one km).
 */
export function deliveryFeeCents(distance: number, fees: FeeSchedule): number {
  const startedKm = Math.ceil(Math.max(0, distance) / 1000);
  return fees.baseFeeCents + fees.perKmCents * startedKm;
}

/**
 * Prices an order from the restaurant's menu (never from the client) and checks that the
 * restaurant can take it now: open, delivering to that point, every item known and available.
 */
export function priceOrder(
  restaurant: Pick<RestaurantModel.restaurant, "isOpen" | "openingHours" | "location" | "deliveryRadiusMeters" | "deliveryArea" | "menu">,
  requested: readonly RequestedItem[],
  deliveryLocation: OrderModel.latLng,
  now: Date,
  fees: FeeSchedule,
): PricedOrder {
  if (!isOpenAt(restaurant, now)) throw new Unprocessable("the restaurant is closed now");
  const distance = distanceMeters(restaurant.location, deliveryLocation);
  if (restaurant.deliveryArea) {
    // The area decides (as discovery's $geoIntersects does); the radius is not used then.
    if (!areaContains(restaurant.deliveryArea, deliveryLocation)) {
      throw new Unprocessable(`the delivery point (${deliveryLocation.lat}, ${deliveryLocation.lng}) is outside the restaurant's delivery area`);
    }
  } else if (distance > restaurant.deliveryRadiusMeters) {
    throw new Unprocessable(
      `the delivery point is ${Math.round(distance)} m from the restaurant, outside its delivery radius of ${restaurant.deliveryRadiusMeters} m`,
    );
  }
  const menu = new Map(restaurant.menu.map((m) => [m.id, m]));
  const items = requested.map(({ menuItemId, quantity }) => {
    const entry = menu.get(menuItemId);
    if (!entry) throw new Unprocessable(`menu item ${menuItemId} is not on this restaurant's menu`);
    if (entry.available === false) throw new Unprocessable(`menu item ${menuItemId} (${entry.name}) is not available now`);
    return { menuItemId, name: entry.name, quantity, unitPriceCents: entry.priceCents };
  });
  const subtotalCents = items.reduce((sum, i) => sum + i.unitPriceCents * i.quantity, 0);
  const fee = deliveryFeeCents(distance, fees);
  return { items, subtotalCents, deliveryFeeCents: fee, totalCents: subtotalCents + fee, distanceMeters: distance };
}

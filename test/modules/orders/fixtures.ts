import { expect } from "bun:test";
import type { Registered, TestServer } from "../../helpers/server";

/** A restaurant in central Paris and a delivery point ~0.9 km away. */
export const RESTAURANT_AT = { lat: 48.8566, lng: 2.3522 };
export const DELIVER_TO = { lat: 48.8606, lng: 2.3622 };

export const MENU = [
  { id: "pizza", name: "Pizza", priceCents: 1250 },
  { id: "soda", name: "Soda", priceCents: 300 },
  { id: "soup", name: "Soup", priceCents: 700, available: false },
];

export type Cast = {
  customer: Registered;
  owner: Registered;
  courier: Registered;
  admin: Registered;
  restaurant: { id: string; ownerId: string };
};

export async function createRestaurant(server: TestServer, owner: Registered, overrides: Record<string, unknown> = {}) {
  const res = await server.request("POST", "/restaurants", {
    token: owner.token,
    body: { name: "Chez Test", cuisines: ["pizza"], location: RESTAURANT_AT, menu: MENU, ...overrides },
  });
  expect(res.status).toBe(201);
  return res.body as { id: string; ownerId: string };
}

/** A customer, a restaurant owner with one restaurant, a courier and the admin. */
export async function cast(server: TestServer): Promise<Cast> {
  const [customer, owner, courier, admin] = await Promise.all([
    server.register("customer"),
    server.register("restaurant"),
    server.register("courier"),
    server.register("admin"),
  ]);
  const restaurant = await createRestaurant(server, owner);
  return { customer, owner, courier, admin, restaurant };
}

export async function placeOrder(server: TestServer, c: Pick<Cast, "customer" | "restaurant">, headers: Record<string, string> = {}) {
  const res = await server.request("POST", "/orders", {
    token: c.customer.token,
    headers,
    body: { restaurantId: c.restaurant.id, items: [{ menuItemId: "pizza", quantity: 2 }], deliveryLocation: DELIVER_TO },
  });
  expect(res.status).toBe(201);
  return res.body as Order;
}

export type Order = {
  id: string;
  status: string;
  version: number;
  customerId: string;
  restaurantId: string;
  courierId: string | null;
  items: Array<{ menuItemId: string; name: string; quantity: number; unitPriceCents: number }>;
  subtotalCents: number;
  deliveryFeeCents: number;
  totalCents: number;
  history: Array<{ seq: number; status: string; event: string; at: string; by: { role: string; id: string }; reason?: string }>;
  createdAt: string;
  updatedAt: string;
};

export async function patch(server: TestServer, who: Registered, orderId: string, status: string, headers: Record<string, string> = {}) {
  return server.request("PATCH", `/orders/${orderId}`, { token: who.token, body: { status }, headers });
}

/** The path to each status, with who makes each move (the courier claims before picking up). */
const PATHS: Record<string, Array<[keyof Omit<Cast, "restaurant">, string]>> = {
  placed: [],
  accepted: [["owner", "accepted"]],
  preparing: [["owner", "accepted"], ["owner", "preparing"]],
  ready_for_pickup: [["owner", "accepted"], ["owner", "preparing"], ["owner", "ready_for_pickup"]],
  picked_up: [["owner", "accepted"], ["owner", "preparing"], ["owner", "ready_for_pickup"], ["courier", "picked_up"]],
  delivered: [["owner", "accepted"], ["owner", "preparing"], ["owner", "ready_for_pickup"], ["courier", "picked_up"], ["courier", "delivered"]],
  cancelled: [["customer", "cancelled"]],
  rejected: [["owner", "rejected"]],
};

/** A fresh order of the cast, moved to `status`; the cast's courier claims it once accepted when `claim` (default: when it must, to pick up). */
export async function orderIn(server: TestServer, c: Cast, status: string, opts: { claim?: boolean } = {}): Promise<Order> {
  const claim = opts.claim ?? ["picked_up", "delivered"].includes(status);
  let order = await placeOrder(server, c);
  for (const [who, to] of PATHS[status]) {
    const res = await patch(server, c[who], order.id, to);
    expect(res.status).toBe(200);
    order = res.body;
    if (to === "accepted" && claim) {
      const claimed = await server.request("POST", `/orders/${order.id}/claim`, { token: c.courier.token });
      expect(claimed.status).toBe(200);
      order = claimed.body;
    }
  }
  expect(order.status).toBe(status);
  return order;
}

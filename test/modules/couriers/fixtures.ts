import { expect } from "bun:test";
import type { Registered, TestServer } from "../../helpers/server";
import { WsClient, type Frame } from "../../helpers/ws";
import { RESTAURANT_AT } from "../orders/fixtures";
import { EARTH_RADIUS_METERS } from "../../../src/geo";

export type LatLng = { lat: number; lng: number };

/** A point `meters` north of `p` on MongoDB's sphere. */
export function north(p: LatLng, meters: number): LatLng {
  return { lat: p.lat + (meters / EARTH_RADIUS_METERS) * (180 / Math.PI), lng: p.lng };
}

/** Polls `read` until `check` holds (for state behind the position throttle, which has no event of its own). */
export async function eventually<T>(read: () => Promise<T>, check: (value: T) => boolean, timeoutMs = 5_000): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (check(value)) return value;
    if (performance.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms; last value ${JSON.stringify(value)}`);
    await Bun.sleep(20);
  }
}

/** Puts a courier on duty `meters` north of the test restaurant (or at `at`): available, with a stored position. */
export async function onDuty(server: TestServer, courier: Registered, where: LatLng | number): Promise<LatLng> {
  const at = typeof where === "number" ? north(RESTAURANT_AT, where) : where;
  expect((await server.request("PUT", "/couriers/me/availability", { token: courier.token, body: { available: true } })).status).toBe(200);
  await moveTo(server, courier, at);
  return at;
}

/** Reports a position and waits until it is stored (the tracker writes asynchronously). */
export async function moveTo(server: TestServer, courier: Registered, at: LatLng): Promise<void> {
  const res = await server.request("PUT", "/couriers/me/location", { token: courier.token, body: at });
  expect(res.status).toBe(202);
  await eventually(
    () => server.request("GET", "/couriers/me", { token: courier.token }),
    (r) => r.body.position?.lat === at.lat && r.body.position?.lng === at.lng,
  );
}

/** A courier's socket, subscribed to its own topic (offers arrive there). */
export async function courierSocket(server: TestServer, courier: Registered): Promise<WsClient> {
  const ws = await WsClient.open(server.url.replace(/^http/, "ws") + "/ws", courier.token);
  const ack = await ws.subscribe(`courier:${courier.user.id}`);
  expect(ack.type).toBe("subscribed");
  return ws;
}

export const isOffer = (orderId: string) => (f: Frame) => f.type === "offer" && f.orderId === orderId;

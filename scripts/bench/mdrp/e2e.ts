import type { Clock } from "../../../src/clock";
import { EARTH_RADIUS_METERS } from "../../../src/geo";
import { planRoute, type Geometry } from "../../../src/modules/couriers/planning";
import type { MdrpInstance, Point } from "./instance";
import { mdrpGeometry } from "./replay";

/**
 * An MDRP instance replayed through a real server (docs/dispatch.md, End-to-end replay): customers
 * place the instance's orders over HTTP at their placement minutes, restaurants accept them at once
 * (with `readyInMinutes`, the true preparation time) and mark them ready at their ready minutes,
 * couriers are WebSocket clients that report positions (`location` frames), accept every offer and
 * follow the problem's rules (travel ⌈distance ÷ speed⌉, pickup half-way through the pickup service,
 * no earlier than the food), on the server's accelerated clock. Metres map to lat/lng around `center`.
 *
 * The courier reports `delivered` when it leaves the door (drop-off + half the service), so the
 * server sees it free when the replay does; drop-off times are read back as that minus half the service.
 */

export type LatLng = { lat: number; lng: number };
/**
 * An accelerated clock that the replay stops while it is making its own calls, so the latency of
 * its HTTP requests costs the instance no time (the server's own work still does).
 */
export class PacedClock implements Clock {
  private virtualMs: number;
  private runningSince: number | null;
  constructor(
    readonly speedup: number,
    start: Date,
  ) {
    this.virtualMs = start.getTime();
    this.runningSince = performance.now();
  }
  now(): Date {
    const running = this.runningSince === null ? 0 : (performance.now() - this.runningSince) * this.speedup;
    return new Date(Math.round(this.virtualMs + running));
  }
  pause(): void {
    if (this.runningSince === null) return;
    this.virtualMs = this.now().getTime();
    this.runningSince = null;
  }
  resume(): void {
    this.runningSince ??= performance.now();
  }
}

export type ServerReplayOptions = {
  url: string;
  /** The server's clock (accelerated: `speedup` × real time; a PacedClock is held while the replay calls the server). */
  clock: Clock;
  /** The server's OFFER_TTL_SECONDS: an offer was made at its expiry minus this (the courier leaves then). */
  offerTtlSeconds: number;
  center: LatLng;
  /** How couriers drive (default: the problem's ⌈distance ÷ speed⌉). */
  geometry?: Geometry<Point>;
};
export type ServerOutcome = { orderId: string; courierId: string | null; offeredAt: number | null; placedAt: number; readyAt: number; pickupAt: number | null; dropoffAt: number | null };
export type ServerReplayResult = { orders: ServerOutcome[]; offers: number; errors: string[]; wallMs: number };

const MINUTE = 60_000;
const MENU = [{ id: "meal", name: "Meal", priceCents: 1500 }];

/** Metres east (x) and north (y) of the instance's origin, as lat/lng around `center` (flat within a city). */
export function toLatLng(center: LatLng, p: Point): LatLng {
  const lat = center.lat + (p.y / EARTH_RADIUS_METERS) * (180 / Math.PI);
  const lng = center.lng + (p.x / (EARTH_RADIUS_METERS * Math.cos((center.lat * Math.PI) / 180))) * (180 / Math.PI);
  return { lat, lng };
}

/** A small instance of its own: the orders placed in [from, from + minutes), the couriers on duty then (from `from` at the earliest), their restaurants. */
export function windowOf(instance: MdrpInstance, from: number, minutes: number): MdrpInstance {
  const orders = instance.orders.filter((o) => o.placedAt >= from && o.placedAt < from + minutes);
  const couriers = instance.couriers.filter((c) => c.onTime < from + minutes && c.offTime > from).map((c) => ({ ...c, onTime: Math.max(c.onTime, from) }));
  const restaurants = new Map([...new Set(orders.map((o) => o.restaurantId))].map((id) => [id, instance.restaurants.get(id)!]));
  return { ...instance, name: `${instance.name}[${from},${from + minutes})`, orders, couriers, restaurants };
}

type Party = { token: string; userId: string };

export async function replayThroughServer(instance: MdrpInstance, opts: ServerReplayOptions): Promise<ServerReplayResult> {
  const started = performance.now();
  const { clock } = opts;
  const speedup = clock.speedup ?? 1;
  const geometry = opts.geometry ?? mdrpGeometry(instance.params.metersPerMinute);
  const service = { pickupMinutes: instance.params.pickupServiceMinutes, dropoffMinutes: instance.params.dropoffServiceMinutes };
  const at = (p: Point) => toLatLng(opts.center, p);
  const errors: string[] = [];
  const run = crypto.randomUUID().slice(0, 8);

  async function api<T = Record<string, unknown>>(method: string, path: string, token: string | null, body?: unknown, expect: number[] = [200, 201, 202, 204]): Promise<T> {
    const res = await fetch(opts.url + path, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { "content-type": "application/json" } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    if (!expect.includes(res.status)) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 300)}`);
    return (text ? JSON.parse(text) : {}) as T;
  }
  async function register(role: string, n: string): Promise<Party> {
    const r = await api<{ token: string; user: { id: string } }>("POST", "/auth/register", null, { email: `mdrp-${run}-${role}-${n}@dispatch.test`, password: "mdrp-password-1", name: `${role} ${n}`, role });
    return { token: r.token, userId: r.user.id };
  }

  // Set-up (in real time; the instance's clock starts after it).
  const restaurantIds = new Map<string, { id: string; owner: Party }>();
  for (const [rid, p] of instance.restaurants) {
    const owner = await register("restaurant", rid);
    const r = await api<{ id: string }>("POST", "/restaurants", owner.token, { name: `MDRP ${rid}`, cuisines: ["mdrp"], location: at(p), menu: MENU, deliveryRadiusMeters: 100_000 });
    restaurantIds.set(rid, { id: r.id, owner });
  }
  const customers = new Map<string, Party>();
  for (const o of instance.orders) customers.set(o.id, await register("customer", o.id));
  type CourierClient = { id: string; party: Party; ws: WebSocket; at: Point; busy: boolean };
  const couriers: CourierClient[] = [];
  const byUser = new Map<string, CourierClient>();
  for (const c of instance.couriers) {
    const party = await register("courier", c.id);
    const ws = new WebSocket(`${opts.url.replace(/^http/, "ws")}/ws?token=${encodeURIComponent(party.token)}`);
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new Error(`courier ${c.id}: websocket refused`));
    });
    const client = { id: c.id, party, ws, at: c.start, busy: false };
    ws.send(JSON.stringify({ op: "subscribe", topic: `courier:${party.userId}` }));
    couriers.push(client);
    byUser.set(party.userId, client);
  }

  // Instance minute m is clock time base + m minutes; the first event a minute from now.
  const first = Math.min(...instance.orders.map((o) => o.placedAt), ...instance.couriers.map((c) => c.onTime));
  const base = clock.now().getTime() + MINUTE - first * MINUTE;
  const minuteNow = () => (clock.now().getTime() - base) / MINUTE;

  type Event = { at: number; rank: number; seq: number; run: () => Promise<void> };
  const queue: Event[] = [];
  let seq = 0;
  // Within a minute: food ready before anything else (a courier may pick it up that minute).
  const schedule = (atMinute: number, rank: number, fn: () => Promise<void>) => {
    queue.push({ at: atMinute, rank, seq: seq++, run: fn });
    queue.sort((a, b) => a.at - b.at || a.rank - b.rank || a.seq - b.seq);
  };
  const guard = (what: string, fn: () => Promise<void>) => async () => {
    try {
      await fn();
    } catch (err) {
      errors.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
    }
  };

  const serverOrder = new Map<string, string>();
  const instanceOrder = new Map<string, string>();
  let offers = 0;
  let done = 0;
  const offered = new Map<string, { at: number; courierId: string }>();
  const locate = (c: CourierClient, p: Point) => {
    c.at = p;
    const ll = at(p);
    c.ws.send(JSON.stringify({ op: "location", lat: ll.lat, lng: ll.lng }));
  };

  const onDuty = new Map(instance.couriers.map((c) => [c.id, c]));
  for (const c of couriers) {
    const shift = onDuty.get(c.id)!;
    schedule(shift.onTime, 1, guard(`courier ${c.id} on duty`, async () => {
      await api("PUT", "/couriers/me/availability", c.party.token, { available: true });
      locate(c, c.at);
    }));
    // Seen now and then while waiting (the server drops couriers it has not heard from).
    for (let m = shift.onTime + 20; m < shift.offTime; m += 20) schedule(m, 1, async () => void (c.busy || locate(c, c.at)));
    schedule(shift.offTime, 1, guard(`courier ${c.id} off duty`, async () => void (c.busy || (await api("PUT", "/couriers/me/availability", c.party.token, { available: false })))));
    c.ws.onmessage = (e) => {
      const frame = JSON.parse(String(e.data)) as Record<string, unknown>;
      if (frame.type !== "offer") return;
      offers++;
      void guard(`courier ${c.id} offer`, () => take(c, frame))();
    };
  }

  async function take(c: CourierClient, offer: Record<string, unknown>): Promise<void> {
    const offeredAt = (Date.parse(offer.expiresAt as string) - opts.offerTtlSeconds * 1000 - base) / MINUTE;
    await api("POST", `/orders/${offer.orderId as string}/offer/accept`, c.party.token);
    const listed = Array.isArray(offer.orderIds) ? (offer.orderIds as string[]) : [offer.orderId as string];
    const orders = listed.map((id) => instance.orders.find((o) => o.id === instanceOrder.get(id))!);
    c.busy = true;
    for (const o of orders) offered.set(o.id, { at: offeredAt, courierId: c.id });
    const restaurant = instance.restaurants.get(orders[0]!.restaurantId)!;
    const plan = planRoute(c.at, offeredAt, restaurant, orders.map((o) => ({ orderId: o.id, dropoff: o.dropoff, placedAt: o.placedAt, readyAt: o.readyAt })), geometry, service);
    schedule(plan.arriveAt, 1, async () => locate(c, restaurant));
    for (const o of orders) schedule(plan.pickupAt, 1, guard(`pickup ${o.id}`, async () => void (await api("PATCH", `/orders/${serverOrder.get(o.id)}`, c.party.token, { status: "picked_up" }))));
    orders.forEach((o, i) => {
      schedule(plan.dropoffAt[i]!, 1, async () => locate(c, o.dropoff));
      schedule(plan.dropoffAt[i]! + service.dropoffMinutes / 2, 1, guard(`deliver ${o.id}`, async () => {
        await api("PATCH", `/orders/${serverOrder.get(o.id)}`, c.party.token, { status: "delivered" });
        done++;
        if (i === orders.length - 1) c.busy = false;
      }));
    });
  }

  for (const o of instance.orders) {
    const r = restaurantIds.get(o.restaurantId)!;
    schedule(o.placedAt, 2, guard(`place ${o.id}`, async () => {
      const placed = await api<{ id: string }>("POST", "/orders", customers.get(o.id)!.token, { restaurantId: r.id, items: [{ menuItemId: "meal", quantity: 1 }], deliveryLocation: at(o.dropoff) });
      serverOrder.set(o.id, placed.id);
      instanceOrder.set(placed.id, o.id);
      await api("PATCH", `/orders/${placed.id}`, r.owner.token, { status: "accepted", readyInMinutes: Math.max(0, Math.round(o.readyAt - o.placedAt)) });
      await api("PATCH", `/orders/${placed.id}`, r.owner.token, { status: "preparing" });
    }));
    schedule(o.readyAt, 0, guard(`ready ${o.id}`, async () => void (await api("PATCH", `/orders/${serverOrder.get(o.id)}`, r.owner.token, { status: "ready_for_pickup" }))));
  }

  // The clock runs on its own; each event waits for its minute (a second of real time is `speedup` seconds here).
  const last = Math.max(...instance.orders.map((o) => o.readyAt)) + 120;
  while (done < instance.orders.length && queue.length && minuteNow() < last) {
    const next = queue[0]!;
    const wait = ((next.at - minuteNow()) * MINUTE) / speedup;
    if (wait > 0) {
      await Bun.sleep(Math.min(wait, 20));
      continue;
    }
    queue.shift();
    const paced = clock instanceof PacedClock ? clock : null;
    paced?.pause();
    try {
      await next.run();
    } finally {
      paced?.resume();
    }
  }

  const outcomes: ServerOutcome[] = [];
  for (const o of instance.orders) {
    const id = serverOrder.get(o.id);
    if (!id) {
      outcomes.push({ orderId: o.id, courierId: null, offeredAt: null, placedAt: o.placedAt, readyAt: o.readyAt, pickupAt: null, dropoffAt: null });
      continue;
    }
    const got = await api<{ courierId?: string | null; createdAt: string; history: Array<{ status: string; at: string }> }>("GET", `/orders/${id}`, customers.get(o.id)!.token);
    const when = (status: string) => {
      const h = got.history.find((x) => x.status === status);
      return h ? (new Date(h.at).getTime() - base) / MINUTE : null;
    };
    const deliveredAt = when("delivered");
    outcomes.push({
      orderId: o.id,
      courierId: got.courierId ? (byUser.get(got.courierId)?.id ?? null) : null,
      offeredAt: offered.get(o.id)?.at ?? null,
      placedAt: (new Date(got.createdAt).getTime() - base) / MINUTE,
      readyAt: when("ready_for_pickup") ?? o.readyAt,
      pickupAt: when("picked_up"),
      dropoffAt: deliveredAt === null ? null : deliveredAt - service.dropoffMinutes / 2,
    });
  }
  for (const c of couriers) c.ws.close();
  return { orders: outcomes, offers, errors, wallMs: performance.now() - started };
}

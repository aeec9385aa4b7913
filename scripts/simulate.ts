// A small city in motion, through the typed client (Eden treaty): customers place orders,
// restaurants accept and prepare them, couriers claim them and drive (sending their position
// over the WebSocket), pick up and deliver. Bounded in orders and in time; stops by itself.
//
//   bun run simulate                                   # its own in-process server (embedded engine, in memory)
//   bun run simulate -- --url http://localhost:3000    # against a running server (watch it at /demo)
//   options: --orders 12 --restaurants 3 --couriers 4 --customers 6 --duration 60 --step-ms 300
//            --seed 7 --lat 48.8566 --lng 2.3522 --quiet
//
// Prints one JSON line per event and a summary line at the end.

import { parseArgs } from "node:util";
import { treaty } from "@elysiajs/eden";
import type { App } from "../src/app";

export type Api = ReturnType<typeof treaty<App>>;
type LatLng = { lat: number; lng: number };
type Status = "placed" | "accepted" | "preparing" | "ready_for_pickup" | "picked_up" | "delivered" | "cancelled" | "rejected";

export type SimulationOptions = {
  /** The server to drive (http://host:port). */
  url: string;
  orders: number;
  restaurants: number;
  couriers: number;
  customers: number;
  /** Hard stop: whatever is still moving then is left where it is. */
  durationSeconds: number;
  /** Pause between steps of one order, and between two location fixes of a courier. */
  stepMs: number;
  seed: number;
  center: LatLng;
  /** Share of orders the restaurant rejects. */
  rejectShare: number;
  onEvent?: (event: Record<string, unknown>) => void;
};

export type SimulationResult = {
  ordersPlaced: number;
  delivered: number;
  rejected: number;
  unfinished: number;
  locationsSent: number;
  elapsedMs: number;
  orderIds: string[];
  restaurantIds: string[];
};

export const DEFAULTS: Omit<SimulationOptions, "url"> = {
  orders: 12,
  restaurants: 3,
  couriers: 4,
  customers: 6,
  durationSeconds: 60,
  stepMs: 300,
  seed: 7,
  center: { lat: 48.8566, lng: 2.3522 },
  rejectShare: 0.1,
};

/** mulberry32: a small seeded PRNG, so a run can be repeated. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A point about `meters` away from `from` in a random direction (flat-earth offset; fine at city scale). */
function near(from: LatLng, meters: number, random: () => number): LatLng {
  const angle = random() * 2 * Math.PI;
  const r = meters * Math.sqrt(random());
  const dLat = (r * Math.cos(angle)) / 111_320;
  const dLng = (r * Math.sin(angle)) / (111_320 * Math.cos((from.lat * Math.PI) / 180));
  return { lat: from.lat + dLat, lng: from.lng + dLng };
}

class Stopped extends Error {}

type Party = { token: string; id: string; api: Api };
type Restaurant = { id: string; location: LatLng; owner: Party; menu: string[] };
type Courier = Party & { at: LatLng; socket: WebSocket; busy: boolean };

/** Unwraps a treaty answer or throws with the server's problem text. */
function data<T>(what: string, res: { data: T | null; error: { value: unknown } | null; status: number }): T {
  if (res.error || res.data === null) throw new Error(`${what}: ${res.status} ${JSON.stringify(res.error?.value)}`);
  return res.data;
}

export async function runSimulation(partial: Partial<SimulationOptions> & { url: string }): Promise<SimulationResult> {
  const opts: SimulationOptions = { ...DEFAULTS, ...partial };
  const random = prng(opts.seed);
  const started = performance.now();
  const deadline = started + opts.durationSeconds * 1000;
  const emit = (event: Record<string, unknown>) => opts.onEvent?.({ t: Math.round(performance.now() - started), ...event });
  const anonymous = treaty<App>(opts.url);
  const run = crypto.randomUUID().slice(0, 6);
  const sockets: WebSocket[] = [];
  const lives: Array<Promise<void>> = [];
  const result: SimulationResult = { ordersPlaced: 0, delivered: 0, rejected: 0, unfinished: 0, locationsSent: 0, elapsedMs: 0, orderIds: [], restaurantIds: [] };

  const sleep = async (ms: number) => {
    const left = deadline - performance.now();
    if (left <= 0) throw new Stopped();
    await Bun.sleep(Math.min(ms, left));
    if (performance.now() >= deadline) throw new Stopped();
  };

  async function signUp(role: "customer" | "restaurant" | "courier", n: number): Promise<Party> {
    const res = await anonymous.auth.register.post({ email: `sim-${run}-${role}-${n}@dispatch.sim`, password: "simulated-pass", name: `${role} ${n}`, role });
    const { token, user } = data(`register ${role}`, res);
    return { token, id: user.id, api: treaty<App>(opts.url, { headers: { authorization: `Bearer ${token}` } }) };
  }

  try {
    // The cast.
    const restaurants: Restaurant[] = [];
    for (let i = 0; i < opts.restaurants; i++) {
      const owner = await signUp("restaurant", i + 1);
      const location = near(opts.center, 1500, random);
      const menu = [
        { id: "main", name: "Main", priceCents: 900 + Math.floor(random() * 900) },
        { id: "side", name: "Side", priceCents: 300 + Math.floor(random() * 300) },
        { id: "drink", name: "Drink", priceCents: 250 },
      ];
      const created = data(
        "create restaurant",
        await owner.api.restaurants.post({ name: `Sim Kitchen ${i + 1}`, cuisines: ["simulated"], location, menu, deliveryRadiusMeters: 4000, prepTimeMinutes: 10 }),
      );
      restaurants.push({ id: created.id, location, owner, menu: menu.map((m) => m.id) });
      result.restaurantIds.push(created.id);
      emit({ event: "restaurant", id: created.id, ...location });
    }
    const customers: Array<Party & { home: LatLng }> = [];
    for (let i = 0; i < opts.customers; i++) customers.push({ ...(await signUp("customer", i + 1)), home: near(opts.center, 2000, random) });

    const couriers: Courier[] = [];
    for (let i = 0; i < opts.couriers; i++) {
      const party = await signUp("courier", i + 1);
      // Couriers report positions over the WebSocket (API.md: {"op":"location",...}).
      const socket = new WebSocket(`${opts.url.replace(/^http/, "ws")}/ws?token=${encodeURIComponent(party.token)}`);
      sockets.push(socket);
      await new Promise<void>((resolve, reject) => {
        socket.onopen = () => resolve();
        socket.onerror = () => reject(new Error("courier websocket refused"));
      });
      couriers.push({ ...party, at: near(opts.center, 1500, random), socket, busy: false });
    }

    const sendFix = (courier: Courier) => {
      if (courier.socket.readyState !== WebSocket.OPEN) return;
      courier.socket.send(JSON.stringify({ op: "location", lat: courier.at.lat, lng: courier.at.lng }));
      result.locationsSent++;
    };
    /** Drives in straight steps of ~120 m, one fix per step. */
    const drive = async (courier: Courier, to: LatLng) => {
      const meters = Math.hypot((to.lat - courier.at.lat) * 111_320, (to.lng - courier.at.lng) * 111_320 * Math.cos((to.lat * Math.PI) / 180));
      const steps = Math.max(2, Math.min(12, Math.ceil(meters / 120)));
      const from = courier.at;
      for (let s = 1; s <= steps; s++) {
        courier.at = { lat: from.lat + ((to.lat - from.lat) * s) / steps, lng: from.lng + ((to.lng - from.lng) * s) / steps };
        sendFix(courier);
        await sleep(opts.stepMs);
      }
    };
    const freeCourier = async (): Promise<Courier> => {
      for (;;) {
        const idle = couriers.filter((c) => !c.busy);
        if (idle.length) {
          const chosen = idle[Math.floor(random() * idle.length)];
          chosen.busy = true;
          return chosen;
        }
        await sleep(opts.stepMs);
      }
    };

    const life = async (n: number) => {
      const customer = customers[Math.floor(random() * customers.length)];
      const restaurant = restaurants[Math.floor(random() * restaurants.length)];
      const items = [{ menuItemId: "main", quantity: 1 + Math.floor(random() * 2) }];
      if (random() < 0.6) items.push({ menuItemId: restaurant.menu[1 + Math.floor(random() * 2)], quantity: 1 });
      const deliveryLocation = near(restaurant.location, 2500, random);
      const order = data("place order", await customer.api.orders.post({ restaurantId: restaurant.id, items, deliveryLocation }, { headers: { "idempotency-key": `sim-${run}-${n}` } }));
      result.ordersPlaced++;
      result.orderIds.push(order.id);
      emit({ event: "placed", orderId: order.id, restaurantId: restaurant.id, totalCents: order.totalCents });
      const move = async (who: Party, status: Status) => {
        await sleep(opts.stepMs);
        const moved = data(`${status} ${order.id}`, await who.api.orders({ id: order.id }).patch({ status }));
        emit({ event: "status", orderId: order.id, status: moved.status, version: moved.version });
      };

      if (random() < opts.rejectShare) {
        await move(restaurant.owner, "rejected");
        result.rejected++;
        return;
      }
      await move(restaurant.owner, "accepted");
      const courier = await freeCourier();
      try {
        data(`claim ${order.id}`, await courier.api.orders({ id: order.id }).claim.post());
        emit({ event: "claimed", orderId: order.id, courierId: courier.id });
        const cooking = move(restaurant.owner, "preparing").then(() => move(restaurant.owner, "ready_for_pickup"));
        await Promise.all([cooking, drive(courier, restaurant.location)]);
        await move(courier, "picked_up");
        await drive(courier, deliveryLocation);
        await move(courier, "delivered");
        result.delivered++;
      } finally {
        courier.busy = false;
      }
    };

    // Orders arrive one step apart and then live their lives concurrently.
    for (let n = 0; n < opts.orders; n++) {
      lives.push(life(n));
      await sleep(opts.stepMs);
    }
    await Promise.all(lives);
  } catch (err) {
    if (!(err instanceof Stopped)) throw err;
    emit({ event: "time is up" });
  } finally {
    // Every life ends by the deadline at the latest; a real failure in one is the run's failure.
    const settled = await Promise.allSettled(lives);
    for (const socket of sockets) socket.close();
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === "rejected" && !(s.reason instanceof Stopped));
    if (failed) throw failed.reason;
  }
  result.unfinished = result.ordersPlaced - result.delivered - result.rejected;
  result.elapsedMs = Math.round(performance.now() - started);
  return result;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      url: { type: "string" },
      orders: { type: "string" },
      restaurants: { type: "string" },
      couriers: { type: "string" },
      customers: { type: "string" },
      duration: { type: "string" },
      "step-ms": { type: "string" },
      seed: { type: "string" },
      lat: { type: "string" },
      lng: { type: "string" },
      quiet: { type: "boolean", default: false },
    },
  });
  const num = (v: string | undefined, fallback: number, name: string) => {
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a non-negative number`);
    return n;
  };
  const coordinate = (v: string | undefined, fallback: number, limit: number, name: string) => {
    const n = v === undefined ? fallback : Number(v);
    if (!Number.isFinite(n) || Math.abs(n) > limit) throw new Error(`--${name} must be within ±${limit}`);
    return n;
  };
  const print = (line: Record<string, unknown>) => process.stdout.write(JSON.stringify(line) + "\n");

  let url = values.url;
  let stopServer: (() => Promise<void>) | null = null;
  if (!url) {
    // No server given: start one in process on the embedded engine, in memory.
    const { loadConfig } = await import("../src/config");
    const { startServer } = await import("../src/server");
    const server = await startServer(loadConfig({ PORT: "0", HOST: "127.0.0.1", DATA_DIR: ":memory:", LOG_LEVEL: "warn", COURIER_LOCATION_INTERVAL_MS: "0" }));
    url = server.url;
    stopServer = () => server.stop();
    print({ event: "server", url, note: "in-process server on the embedded engine (in memory); pass --url to drive another" });
  }
  try {
    const result = await runSimulation({
      url,
      orders: num(values.orders, DEFAULTS.orders, "orders"),
      restaurants: Math.max(1, num(values.restaurants, DEFAULTS.restaurants, "restaurants")),
      couriers: Math.max(1, num(values.couriers, DEFAULTS.couriers, "couriers")),
      customers: Math.max(1, num(values.customers, DEFAULTS.customers, "customers")),
      durationSeconds: num(values.duration, DEFAULTS.durationSeconds, "duration"),
      stepMs: num(values["step-ms"], DEFAULTS.stepMs, "step-ms"),
      seed: num(values.seed, DEFAULTS.seed, "seed"),
      center: { lat: coordinate(values.lat, DEFAULTS.center.lat, 90, "lat"), lng: coordinate(values.lng, DEFAULTS.center.lng, 180, "lng") },
      ...(values.quiet ? {} : { onEvent: print }),
    });
    print({ event: "summary", ...result, orderIds: undefined, restaurantIds: undefined });
  } finally {
    await stopServer?.();
  }
}

if (import.meta.main) {
  main().catch((err: unknown) => {
    process.stderr.write(`simulate: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}

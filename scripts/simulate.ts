// A small city in motion, through the public API (typed client, Eden treaty) and the WebSocket
// only: customers place orders at restaurants near them; restaurants hear of them on their
// topic, accept and cook; the server offers each order to the nearest courier; couriers drive
// in straight lines at a realistic speed reporting their position, accept most offers, pick up
// and deliver. A live summary every few seconds; stops by itself, then checks that every order
// it placed is accounted for.
//
//   bun run simulate -- --restaurants 50 --couriers 30 --customers 200 --minutes 2
//   bun run simulate -- --url http://localhost:3000 ...   # against a running server (watch it at /demo)
//   options: --minutes 1 (placing orders) --drain-minutes 5 (then finishing them) --max-orders N
//            --speed-mps 7 --speedup 1 (simulated time runs N× faster) --accept-share 0.85
//            --reject-share 0.03 --seed 7 --lat 48.8566 --lng 2.3522 --events --quiet
//
// Output: JSON lines. `progress` every 5 s, `summary` at the end (lost and stuck must be 0;
// the exit code is 1 otherwise), and with --events one line per event.

import { parseArgs } from "node:util";
import { treaty } from "@elysiajs/eden";
import type { App } from "../src/app";
import { seededRandom } from "./lib/random";

export type Api = ReturnType<typeof treaty<App>>;
type LatLng = { lat: number; lng: number };
type Status = "placed" | "accepted" | "preparing" | "ready_for_pickup" | "picked_up" | "delivered" | "cancelled" | "rejected";
type Frame = Record<string, any>;

export type SimulationOptions = {
  /** The server to drive (http://host:port). */
  url: string;
  restaurants: number;
  couriers: number;
  customers: number;
  /** Orders are placed for this long (real minutes). */
  minutes: number;
  /** Then open orders get at most this long to finish; whatever is still open is stuck. */
  drainSeconds: number;
  /** Cap on orders placed (default: no cap). */
  maxOrders: number;
  /** Courier speed in simulated time. */
  speedMps: number;
  /** Simulated time runs this many times faster than real time (kitchens, decisions, driving). */
  speedup: number;
  /** Share of offers couriers accept (the rest they decline). */
  acceptShare: number;
  /** Share of orders restaurants reject. */
  rejectShare: number;
  /** How often couriers move and report a position (real ms). */
  tickMs: number;
  summaryEveryMs: number;
  seed: number;
  center: LatLng;
  onEvent?: (event: Record<string, unknown>) => void;
  onProgress?: (summary: SimulationSummary) => void;
  /** The first version's names: `orders` caps orders, `stepMs` is the tick, `durationSeconds` bounds placing and draining together. */
  orders?: number;
  stepMs?: number;
  durationSeconds?: number;
};

export type SimulationSummary = {
  elapsedMs: number;
  phase: "placing" | "draining" | "done";
  ordersPlaced: number;
  /** The orders by their last known status; open ones also by dispatch state. */
  byStatus: Partial<Record<Status, number>>;
  openByDispatch: Record<string, number>;
  /** Placed → a courier assigned, and placed → delivered (ms, over the orders that got there). */
  medianAssignMs: number | null;
  medianDeliveryMs: number | null;
  /** The MDRP metrics (docs/dispatch.md), in simulated minutes: placed → delivered, ready → picked up. */
  clickToDoorMeanMin: number | null;
  clickToDoorP90Min: number | null;
  readyToPickupMeanMin: number | null;
  readyToPickupP90Min: number | null;
  /** Orders delivered per offer accepted. */
  ordersPerBundle: number | null;
  offers: number;
  offersDeclined: number;
  offersRevoked: number;
  approachingEvents: number;
  etaUpdates: number;
  locationsSent: number;
  /** Placed orders the server lost or whose events did not all arrive. */
  lost: number;
  /** Orders still open at the end, or open with nothing happening to them for a long time. */
  stuck: number;
  /** Requests the simulator did not expect to fail. */
  errors: number;
};

export type SimulationResult = SimulationSummary & {
  delivered: number;
  rejected: number;
  cancelled: number;
  unfinished: number;
  orderIds: string[];
  restaurantIds: string[];
};

export const DEFAULTS: Omit<SimulationOptions, "url"> = {
  restaurants: 5,
  couriers: 6,
  customers: 20,
  minutes: 1,
  drainSeconds: 300,
  maxOrders: Number.POSITIVE_INFINITY,
  speedMps: 7,
  speedup: 1,
  acceptShare: 0.85,
  rejectShare: 0.03,
  tickMs: 1000,
  summaryEveryMs: 5000,
  seed: 7,
  center: { lat: 48.8566, lng: 2.3522 },
};


const M_PER_DEG = 111_320;

/** A point up to `meters` away from `from` in a random direction (flat-earth offset; fine at city scale). */
function near(from: LatLng, meters: number, random: () => number): LatLng {
  const angle = random() * 2 * Math.PI;
  const r = meters * Math.sqrt(random());
  return { lat: from.lat + (r * Math.cos(angle)) / M_PER_DEG, lng: from.lng + (r * Math.sin(angle)) / (M_PER_DEG * Math.cos((from.lat * Math.PI) / 180)) };
}

function metersBetween(a: LatLng, b: LatLng): number {
  return Math.hypot((b.lat - a.lat) * M_PER_DEG, (b.lng - a.lng) * M_PER_DEG * Math.cos((a.lat * Math.PI) / 180));
}

/** The MDRP metrics of the orders so far, in simulated minutes. */
function mdrpMetrics(all: Tracked[], speedup: number, bundles: number) {
  const toMin = (ms: number) => (ms * speedup) / 60_000;
  const round = (v: number | null) => (v === null ? null : Math.round(v * 100) / 100);
  const stats = (values: number[]) => {
    if (values.length === 0) return { mean: null, p90: null };
    const s = [...values].sort((a, b) => a - b);
    return { mean: round(s.reduce((a, b) => a + b, 0) / s.length), p90: round(s[Math.min(s.length - 1, Math.ceil(0.9 * s.length) - 1)]!) };
  };
  const done = all.filter((o) => o.deliveredAt !== null);
  const ctd = stats(done.map((o) => toMin(o.deliveredAt! - o.placedAt)));
  const r2p = stats(all.filter((o) => o.readyAt !== null && o.pickedAt !== null).map((o) => toMin(Math.max(0, o.pickedAt! - o.readyAt!))));
  return {
    clickToDoorMeanMin: ctd.mean,
    clickToDoorP90Min: ctd.p90,
    readyToPickupMeanMin: r2p.mean,
    readyToPickupP90Min: r2p.p90,
    ordersPerBundle: bundles ? round(done.length / bundles) : null,
  };
}

function median(values: number[]): number | null {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : Math.round((s[mid - 1] + s[mid]) / 2);
}

const FINAL: readonly Status[] = ["delivered", "cancelled", "rejected"];

type Party = { token: string; id: string; api: Api };
type Restaurant = { id: string; location: LatLng; owner: Party; socket: WebSocket };
type Customer = Party & { home: LatLng; socket: WebSocket | null };
type Job = { orderId: string; pickup: LatLng; dropoff: LatLng; status: Status | null };
/** `jobs`: the orders of the offer it accepted (a bundle has several, one pickup), in drop-off order. */
type Courier = Party & { at: LatLng; socket: WebSocket; jobs: Job[]; deciding: Set<string>; lastFixMs: number };
type Tracked = {
  id: string;
  restaurantId: string;
  customer: Customer;
  placedAt: number;
  status: Status;
  version: number;
  dispatch: string;
  courierId: string | null;
  seenCreated: boolean;
  assignedAt: number | null;
  readyAt: number | null;
  pickedAt: number | null;
  deliveredAt: number | null;
  lastChangeAt: number;
};

/** Thrown inside actors once the run is over, so they stop where they are. */
class Stopped extends Error {}

/** A treaty answer: its data, or an Error carrying the status and the server's problem text. */
class ApiError extends Error {
  constructor(
    what: string,
    readonly status: number,
    readonly body: unknown,
  ) {
    super(`${what}: ${status} ${JSON.stringify(body)}`);
  }
}

type TreatyAnswer<T> = { data: T | null; error: { value: unknown } | null; status: number; response: Response };

/** Calls `request`, waiting out 429s (Retry-After) so a rate-limited server slows the run instead of failing it. */
async function call<T>(what: string, request: () => Promise<TreatyAnswer<T>>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    const res = await request();
    if (res.status === 429 && attempt < 20) {
      const wait = Number(res.response.headers.get("retry-after") ?? "1");
      await Bun.sleep(Math.max(0.2, Math.min(wait, 30)) * 1000);
      continue;
    }
    if (res.error || res.data === null) throw new ApiError(what, res.status, res.error?.value);
    return res.data;
  }
}

function openSocket(url: string, token: string, onFrame: (frame: Frame) => void): Promise<WebSocket> {
  const socket = new WebSocket(`${url.replace(/^http/, "ws")}/ws?token=${encodeURIComponent(token)}`);
  socket.onmessage = (e) => {
    if (typeof e.data === "string") onFrame(JSON.parse(e.data) as Frame);
  };
  return new Promise((resolve, reject) => {
    socket.onopen = () => resolve(socket);
    socket.onerror = () => reject(new Error("websocket refused"));
  });
}

export async function runSimulation(partial: Partial<SimulationOptions> & { url: string }): Promise<SimulationResult> {
  const opts: SimulationOptions = { ...DEFAULTS, ...partial };
  if (partial.orders !== undefined && partial.maxOrders === undefined) opts.maxOrders = partial.orders;
  if (partial.stepMs !== undefined && partial.tickMs === undefined) opts.tickMs = partial.stepMs;
  if (partial.durationSeconds !== undefined) {
    opts.minutes = Math.min(opts.minutes, partial.durationSeconds / 60);
    opts.drainSeconds = Math.max(0, partial.durationSeconds - opts.minutes * 60);
  }
  const random = seededRandom(opts.seed);
  const started = performance.now();
  const now = () => performance.now() - started;
  const emit = (event: Record<string, unknown>) => opts.onEvent?.({ t: Math.round(now()), ...event });
  /** Simulated seconds → real ms. */
  const simMs = (seconds: number) => (seconds * 1000) / opts.speedup;
  const between = (lo: number, hi: number) => lo + random() * (hi - lo);
  /** Actors wait with this: it ends early (Stopped) once the run is over. */
  const pause = async (ms: number) => {
    const until = performance.now() + ms;
    while (!stopping && performance.now() < until) await Bun.sleep(Math.min(250, until - performance.now()));
    if (stopping) throw new Stopped();
  };
  const anonymous = treaty<App>(opts.url);
  const run = crypto.randomUUID().slice(0, 6);
  const sockets: WebSocket[] = [];
  const orders = new Map<string, Tracked>();
  const work = new Set<Promise<void>>();
  const counts = { offers: 0, offersDeclined: 0, offersRevoked: 0, bundlesAccepted: 0, approachingEvents: 0, etaUpdates: 0, locationsSent: 0, errors: 0 };
  let phase: SimulationSummary["phase"] = "placing";
  let stopping = false;

  /** Runs one actor's step in the background; an unexpected failure is counted and reported, not fatal. */
  const spawn = (what: string, task: () => Promise<void>) => {
    const p = task()
      .catch((err: unknown) => {
        if (err instanceof Stopped) return;
        counts.errors++;
        emit({ event: "error", what, message: err instanceof Error ? err.message : String(err) });
      })
      .finally(() => work.delete(p));
    work.add(p);
  };

  async function signUp(role: "customer" | "restaurant" | "courier", n: number): Promise<Party> {
    const { token, user } = await call(`register ${role}`, () =>
      anonymous.auth.register.post({ email: `sim-${run}-${role}-${n}@dispatch.sim`, password: "simulated-pass", name: `${role} ${n}`, role }),
    );
    return { token, id: user.id, api: treaty<App>(opts.url, { headers: { authorization: `Bearer ${token}` } }) };
  }

  /** Frames about orders whose 201 has not reached the customer yet (the restaurant can hear of one first). */
  const early = new Map<string, Frame[]>();

  /** Everything a restaurant hears about its orders: the observer of record for the summary. */
  const observe = (frame: Frame) => {
    if (frame.type !== "order.created" && frame.type !== "order.updated") return;
    const o = orders.get(frame.orderId as string);
    if (!o) {
      const frames = early.get(frame.orderId as string) ?? [];
      frames.push(frame);
      early.set(frame.orderId as string, frames);
      return;
    }
    if (frame.type === "order.created") o.seenCreated = true;
    const order = frame.order as { status: Status; version: number; courierId: string | null; dispatch?: { state: string } };
    if (order.version < o.version) return;
    o.version = order.version;
    o.status = order.status;
    o.courierId = order.courierId;
    o.dispatch = order.dispatch?.state ?? o.dispatch;
    o.lastChangeAt = now();
    if (o.courierId && o.assignedAt === null) o.assignedAt = now();
    if (o.status === "ready_for_pickup" && o.readyAt === null) o.readyAt = now();
    if (o.status === "picked_up" && o.pickedAt === null) o.pickedAt = now();
    if (o.status === "delivered" && o.deliveredAt === null) o.deliveredAt = now();
  };

  const summary = (): SimulationSummary => {
    const byStatus: Partial<Record<Status, number>> = {};
    const openByDispatch: Record<string, number> = {};
    for (const o of orders.values()) {
      byStatus[o.status] = (byStatus[o.status] ?? 0) + 1;
      if (!FINAL.includes(o.status)) openByDispatch[o.dispatch] = (openByDispatch[o.dispatch] ?? 0) + 1;
    }
    const all = [...orders.values()];
    return {
      elapsedMs: Math.round(now()),
      phase,
      ordersPlaced: orders.size,
      byStatus,
      openByDispatch,
      medianAssignMs: median(all.filter((o) => o.assignedAt !== null).map((o) => o.assignedAt! - o.placedAt)),
      medianDeliveryMs: median(all.filter((o) => o.deliveredAt !== null).map((o) => o.deliveredAt! - o.placedAt)),
      ...mdrpMetrics(all, opts.speedup, counts.bundlesAccepted),
      ...counts,
      lost: all.filter((o) => !o.seenCreated && now() - o.placedAt > 10_000).length,
      // Open with nothing happening for five simulated minutes (or a minute of real time).
      stuck: all.filter((o) => !FINAL.includes(o.status) && now() - o.lastChangeAt > Math.max(60_000, simMs(300))).length,
    };
  };

  const restaurants: Restaurant[] = [];
  const customers: Customer[] = [];
  const couriers: Courier[] = [];
  let ticker: ReturnType<typeof setInterval> | null = null;
  let reporter: ReturnType<typeof setInterval> | null = null;

  try {
    // Restaurants: each listens on its topic and handles every order it hears of.
    for (let i = 0; i < opts.restaurants; i++) {
      const owner = await signUp("restaurant", i + 1);
      // A dense neighbourhood: restaurants within 700 m of the centre, customers within 900 m.
      const location = near(opts.center, 700, random);
      const menu = [
        { id: "main", name: "Main", priceCents: 900 + Math.floor(random() * 900) },
        { id: "side", name: "Side", priceCents: 300 + Math.floor(random() * 300) },
        { id: "drink", name: "Drink", priceCents: 250 },
      ];
      const created = await call("create restaurant", () =>
        owner.api.restaurants.post({ name: `Sim Kitchen ${i + 1}`, cuisines: ["simulated"], location, menu, deliveryRadiusMeters: 3000, prepTimeMinutes: 1 }),
      );
      const restaurant: Restaurant = { id: created.id, location, owner, socket: null as unknown as WebSocket };
      restaurant.socket = await openSocket(opts.url, owner.token, (frame) => {
        observe(frame);
        if (frame.type === "order.created" && !stopping) spawn("restaurant", () => cook(restaurant, frame.orderId as string));
      });
      restaurant.socket.send(JSON.stringify({ op: "subscribe", topic: `restaurant:${created.id}` }));
      sockets.push(restaurant.socket);
      restaurants.push(restaurant);
      emit({ event: "restaurant", id: created.id, ...location });
    }

    for (let i = 0; i < opts.customers; i++) customers.push({ ...(await signUp("customer", i + 1)), home: near(opts.center, 900, random), socket: null });

    // Couriers: on duty, listening on their topic for offers and their orders' changes.
    for (let i = 0; i < opts.couriers; i++) {
      const party = await signUp("courier", i + 1);
      const courier: Courier = { ...party, at: near(opts.center, 800, random), socket: null as unknown as WebSocket, jobs: [], deciding: new Set(), lastFixMs: -Infinity };
      courier.socket = await openSocket(opts.url, party.token, (frame) => onCourierFrame(courier, frame));
      courier.socket.send(JSON.stringify({ op: "subscribe", topic: `courier:${party.id}` }));
      sockets.push(courier.socket);
      sendFix(courier);
      await call("availability", () => party.api.couriers.me.availability.put({ available: true }));
      couriers.push(courier);
    }
    emit({ event: "cast", restaurants: restaurants.length, customers: customers.length, couriers: couriers.length });

    // Couriers move (or, idle, report where they wait so they stay dispatchable) every tick.
    ticker = setInterval(() => {
      for (const c of couriers) if (c.jobs.length === 0 && now() - c.lastFixMs > 5_000) sendFix(c);
    }, Math.min(opts.tickMs, 1_000));
    reporter = setInterval(() => opts.onProgress?.(summary()), opts.summaryEveryMs);

    // Customers: orders arrive while fewer are open than most couriers could carry, until the time is up.
    const placingUntil = opts.minutes * 60_000;
    let n = 0;
    while (now() < placingUntil && orders.size < opts.maxOrders) {
      const open = [...orders.values()].filter((o) => !FINAL.includes(o.status)).length;
      if (open < Math.max(1, Math.floor(couriers.length * 0.8))) {
        const customer = customers[Math.floor(random() * customers.length)];
        const key = `sim-${run}-${n++}`;
        spawn("place", () => placeOrder(customer, key));
      }
      // Each customer orders about every ten simulated minutes.
      await Bun.sleep(Math.max(0, Math.min(placingUntil - now(), 100 + simMs(-Math.log(1 - random()) * (600 / customers.length)))));
    }

    // Drain: no new orders; wait for the open ones to finish.
    phase = "draining";
    emit({ event: "placing over", orders: orders.size });
    const drainUntil = now() + opts.drainSeconds * 1000;
    while (now() < drainUntil && ([...orders.values()].some((o) => !FINAL.includes(o.status)) || work.size > 0)) await Bun.sleep(100);
  } finally {
    stopping = true;
    phase = "done";
    if (ticker) clearInterval(ticker);
    if (reporter) clearInterval(reporter);
    await Promise.allSettled([...work]);
    await Bun.sleep(300); // frames still on their way to the restaurants
    for (const s of sockets) s.close();
  }

  // Account for every order: the server must know it, in the state its restaurant last heard of.
  let lost = 0;
  let stuck = 0;
  for (const o of orders.values()) {
    const res = await o.customer.api.orders({ id: o.id }).get();
    if (res.status === 404 || !o.seenCreated) {
      lost++;
      emit({ event: "lost", orderId: o.id, status: res.status, seenCreated: o.seenCreated });
      continue;
    }
    const server = res.data;
    if (!server) {
      counts.errors++;
      continue;
    }
    if (server.status !== o.status || server.version !== o.version) {
      lost++; // an event never reached the restaurant
      emit({ event: "lost", orderId: o.id, server: [server.status, server.version], heard: [o.status, o.version] });
    }
    if (!FINAL.includes(server.status)) {
      stuck++;
      emit({ event: "stuck", orderId: o.id, status: server.status, dispatch: server.dispatch });
    }
  }
  const final = { ...summary(), lost, stuck };
  const all = [...orders.values()];
  const by = (s: Status) => all.filter((o) => o.status === s).length;
  return {
    ...final,
    delivered: by("delivered"),
    rejected: by("rejected"),
    cancelled: by("cancelled"),
    unfinished: all.filter((o) => !FINAL.includes(o.status)).length,
    orderIds: all.map((o) => o.id),
    restaurantIds: restaurants.map((r) => r.id),
  };

  // --- the actors ---------------------------------------------------------------------------

  async function placeOrder(customer: Customer, key: string): Promise<void> {
    const nearby = await call("restaurants near", () =>
      anonymous.restaurants.get({ query: { lat: customer.home.lat, lng: customer.home.lng, radius: 1500, delivers: true, limit: 2 } }),
    );
    if (nearby.items.length === 0) return;
    const restaurant = nearby.items[Math.floor(random() * nearby.items.length)];
    const items = [{ menuItemId: "main", quantity: 1 + Math.floor(random() * 2) }];
    if (random() < 0.6) items.push({ menuItemId: random() < 0.5 ? "side" : "drink", quantity: 1 });
    const deliveryLocation = near(customer.home, 50, random);
    const placedAt = now();
    const order = await call("place order", () =>
      customer.api.orders.post({ restaurantId: restaurant.id, items, deliveryLocation }, { headers: { "idempotency-key": key } }),
    );
    const known = orders.get(order.id);
    if (!known) {
      orders.set(order.id, {
        id: order.id,
        restaurantId: restaurant.id,
        customer,
        placedAt,
        status: order.status,
        version: order.version,
        dispatch: order.dispatch?.state ?? "idle",
        courierId: order.courierId,
        seenCreated: false,
        assignedAt: null,
        readyAt: null,
        pickedAt: null,
        deliveredAt: null,
        lastChangeAt: now(),
      });
      for (const frame of early.get(order.id) ?? []) observe(frame);
      early.delete(order.id);
    }
    emit({ event: "placed", orderId: order.id, restaurantId: restaurant.id, totalCents: order.totalCents });
    // The customer follows its order (positions, arrival, ETA).
    if (!customer.socket) {
      customer.socket = await openSocket(opts.url, customer.token, (frame) => {
        if (frame.type === "courier.approaching") counts.approachingEvents++;
        if (frame.type === "order.eta") counts.etaUpdates++;
      });
      sockets.push(customer.socket);
    }
    customer.socket.send(JSON.stringify({ op: "subscribe", topic: `order:${order.id}` }));
  }

  /** A kitchen: accept (or, rarely, reject), cook, hand over. Stops if the order went elsewhere (cancelled). */
  async function cook(restaurant: Restaurant, orderId: string): Promise<void> {
    const api = restaurant.owner.api.orders({ id: orderId });
    const move = async (status: Status) => {
      try {
        await call(`${status} ${orderId}`, () => api.patch({ status }));
        return true;
      } catch (err) {
        if (err instanceof ApiError && err.status === 409) return false; // e.g. cancelled meanwhile
        throw err;
      }
    };
    await pause(simMs(between(1, 4)));
    if (random() < opts.rejectShare) {
      await move("rejected");
      return;
    }
    if (!(await move("accepted"))) return;
    await pause(simMs(between(2, 5)));
    if (!(await move("preparing"))) return;
    await pause(simMs(between(20, 60)));
    await move("ready_for_pickup");
  }

  function sendFix(courier: Courier): void {
    if (courier.socket.readyState !== WebSocket.OPEN) return;
    courier.socket.send(JSON.stringify({ op: "location", lat: courier.at.lat, lng: courier.at.lng, speedMps: courier.jobs.length ? opts.speedMps : 0 }));
    courier.lastFixMs = now();
    counts.locationsSent++;
  }

  function onCourierFrame(courier: Courier, frame: Frame): void {
    if (frame.type === "offer") {
      counts.offers++;
      const orderId = frame.orderId as string;
      if (courier.jobs.length || courier.deciding.has(orderId) || stopping) return;
      courier.deciding.add(orderId);
      spawn("offer", () => answerOffer(courier, frame).finally(() => courier.deciding.delete(orderId)));
    } else if (frame.type === "offer.revoked") {
      counts.offersRevoked++;
    } else if (frame.type === "order.updated") {
      const job = courier.jobs.find((j) => j.orderId === frame.orderId);
      if (job) job.status = (frame.order as { status: Status }).status;
    }
  }

  async function answerOffer(courier: Courier, offer: Frame): Promise<void> {
    const orderId = offer.orderId as string;
    await pause(simMs(between(1, 5)));
    const api = courier.api.orders({ id: orderId }).offer;
    if (random() >= opts.acceptShare) {
      counts.offersDeclined++;
      const res = await api.decline.post();
      if (res.status !== 204 && res.status !== 409) throw new ApiError(`decline ${orderId}`, res.status, res.error?.value);
      return;
    }
    let accepted;
    try {
      accepted = await call(`accept ${orderId}`, () => api.accept.post());
    } catch (err) {
      if (err instanceof ApiError && err.status === 409) return; // expired or taken meanwhile
      throw err;
    }
    counts.bundlesAccepted++;
    // A bundle (batched dispatch) lists its orders in drop-off order; accepting one accepted all.
    const listed = Array.isArray(offer.orders) ? (offer.orders as Array<{ orderId: string; dropoff: LatLng }>) : [{ orderId, dropoff: offer.dropoff as LatLng }];
    courier.jobs = listed.map((o) => ({ orderId: o.orderId, pickup: offer.pickup as LatLng, dropoff: o.dropoff, status: o.orderId === orderId ? accepted.status : null }));
    for (const job of courier.jobs) emit({ event: "assigned", orderId: job.orderId, courierId: courier.id });
    try {
      await deliver(courier, courier.jobs);
    } finally {
      courier.jobs = [];
    }
  }

  /** One trip: to the restaurant, every order of it once ready, then each drop-off in turn. */
  async function deliver(courier: Courier, jobs: Job[]): Promise<void> {
    await drive(courier, jobs[0]!.pickup);
    const carried: Job[] = [];
    for (const job of jobs) {
      const api = courier.api.orders({ id: job.orderId });
      // Wait at the counter for the food (the courier's topic says when it is ready; a look now and then in case).
      let lastLook = -Infinity;
      while (job.status !== "ready_for_pickup") {
        if (job.status !== null && FINAL.includes(job.status)) break;
        if (now() - lastLook > 5_000) {
          lastLook = now();
          const current = await call(`look ${job.orderId}`, () => api.get());
          job.status = current.status;
          // Not ours after all (taken or cancelled between the offer and the accept).
          if (current.courierId !== courier.id) break;
          continue;
        }
        await pause(Math.min(opts.tickMs, 250));
      }
      if (job.status !== "ready_for_pickup") continue;
      await call(`picked_up ${job.orderId}`, () => api.patch({ status: "picked_up" }));
      carried.push(job);
    }
    for (const job of carried) {
      await drive(courier, job.dropoff);
      await call(`delivered ${job.orderId}`, () => courier.api.orders({ id: job.orderId }).patch({ status: "delivered" }));
    }
  }

  /** Straight towards `to` at speedMps (simulated), one position report per tick. */
  async function drive(courier: Courier, to: LatLng): Promise<void> {
    const stepMeters = (opts.speedMps * opts.speedup * opts.tickMs) / 1000;
    for (;;) {
      const left = metersBetween(courier.at, to);
      if (left <= stepMeters) {
        courier.at = { ...to };
        sendFix(courier);
        return;
      }
      const f = stepMeters / left;
      courier.at = { lat: courier.at.lat + (to.lat - courier.at.lat) * f, lng: courier.at.lng + (to.lng - courier.at.lng) * f };
      sendFix(courier);
      await pause(opts.tickMs);
    }
  }
}

function printable(s: SimulationSummary): Record<string, unknown> {
  const secs = (ms: number | null) => (ms === null ? null : Math.round(ms / 100) / 10);
  return {
    t: Math.round(s.elapsedMs / 1000),
    phase: s.phase,
    orders: s.ordersPlaced,
    byStatus: s.byStatus,
    openByDispatch: s.openByDispatch,
    medianAssignS: secs(s.medianAssignMs),
    medianDeliveryS: secs(s.medianDeliveryMs),
    clickToDoorMeanMin: s.clickToDoorMeanMin,
    clickToDoorP90Min: s.clickToDoorP90Min,
    readyToPickupMeanMin: s.readyToPickupMeanMin,
    readyToPickupP90Min: s.readyToPickupP90Min,
    ordersPerBundle: s.ordersPerBundle,
    offers: s.offers,
    declined: s.offersDeclined,
    revoked: s.offersRevoked,
    approaching: s.approachingEvents,
    etaUpdates: s.etaUpdates,
    locations: s.locationsSent,
    lost: s.lost,
    stuck: s.stuck,
    errors: s.errors,
  };
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      url: { type: "string" },
      restaurants: { type: "string" },
      couriers: { type: "string" },
      customers: { type: "string" },
      minutes: { type: "string" },
      "drain-minutes": { type: "string" },
      "max-orders": { type: "string" },
      "speed-mps": { type: "string" },
      speedup: { type: "string" },
      "accept-share": { type: "string" },
      "reject-share": { type: "string" },
      "tick-ms": { type: "string" },
      policy: { type: "string", default: "batched" },
      // The first version's flags.
      orders: { type: "string" },
      "step-ms": { type: "string" },
      duration: { type: "string" },
      seed: { type: "string" },
      lat: { type: "string" },
      lng: { type: "string" },
      events: { type: "boolean", default: false },
      quiet: { type: "boolean", default: false },
    },
  });
  const num = (v: string | undefined, fallback: number, name: string, min = 0, max = Number.POSITIVE_INFINITY) => {
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isFinite(n) || n < min || n > max) throw new Error(`--${name} must be a number in [${min}, ${max}]`);
    return n;
  };
  const print = (line: Record<string, unknown>) => process.stdout.write(JSON.stringify(line) + "\n");

  const policy = values.policy;
  if (policy !== "batched" && policy !== "nearest") throw new Error("--policy must be batched or nearest");
  let url = values.url;
  let stopServer: (() => Promise<void>) | null = null;
  if (!url) {
    // No server given: start one in process on the embedded engine, in memory (still driven over HTTP and /ws only).
    const { loadConfig } = await import("../src/config");
    const { startServer } = await import("../src/server");
    const server = await startServer(
      loadConfig({
        PORT: "0",
        HOST: "127.0.0.1",
        DATA_DIR: ":memory:",
        LOG_LEVEL: "warn",
        // A simulation, not a deployment: cheap password hashing, one client address for everyone.
        PASSWORD_HASH_MEMORY_KIB: "1024",
        PASSWORD_HASH_TIME_COST: "1",
        RATE_LIMIT_USER_WRITES: "0",
        RATE_LIMIT_IP_WRITES: "0",
        WS_MAX_CONNECTIONS_PER_USER: "100",
        // Planned dispatch (the default) plans every second here, as simulated time runs fast; bundles of up to 3.
        ...(policy === "batched" ? { DISPATCH_POLICY: "batched", DISPATCH_INTERVAL_SECONDS: "1", COURIER_MAX_ACTIVE: "3" } : { DISPATCH_POLICY: "nearest" }),
      }),
    );
    url = server.url;
    stopServer = () => server.stop();
    print({ event: "server", url, note: "in-process server on the embedded engine (in memory); pass --url to drive another" });
  }
  try {
    const result = await runSimulation({
      url,
      restaurants: Math.max(1, num(values.restaurants, DEFAULTS.restaurants, "restaurants", 1, 10_000)),
      couriers: Math.max(1, num(values.couriers, DEFAULTS.couriers, "couriers", 1, 10_000)),
      customers: Math.max(1, num(values.customers, DEFAULTS.customers, "customers", 1, 100_000)),
      minutes: num(values.minutes, DEFAULTS.minutes, "minutes", 0, 24 * 60),
      drainSeconds: num(values["drain-minutes"], DEFAULTS.drainSeconds / 60, "drain-minutes", 0, 24 * 60) * 60,
      maxOrders: num(values["max-orders"], DEFAULTS.maxOrders, "max-orders", 0),
      speedMps: num(values["speed-mps"], DEFAULTS.speedMps, "speed-mps", 0.1, 100),
      speedup: num(values.speedup, DEFAULTS.speedup, "speedup", 0.1, 1000),
      acceptShare: num(values["accept-share"], DEFAULTS.acceptShare, "accept-share", 0, 1),
      rejectShare: num(values["reject-share"], DEFAULTS.rejectShare, "reject-share", 0, 1),
      ...(values["tick-ms"] !== undefined ? { tickMs: num(values["tick-ms"], DEFAULTS.tickMs, "tick-ms", 20, 60_000) } : {}),
      summaryEveryMs: DEFAULTS.summaryEveryMs,
      ...(values.orders !== undefined ? { orders: num(values.orders, 0, "orders", 0) } : {}),
      ...(values["step-ms"] !== undefined ? { stepMs: num(values["step-ms"], 0, "step-ms", 20, 60_000) } : {}),
      ...(values.duration !== undefined ? { durationSeconds: num(values.duration, 0, "duration", 0) } : {}),
      seed: num(values.seed, DEFAULTS.seed, "seed"),
      center: { lat: num(values.lat, DEFAULTS.center.lat, "lat", -90, 90), lng: num(values.lng, DEFAULTS.center.lng, "lng", -180, 180) },
      ...(values.events && !values.quiet ? { onEvent: print } : {}),
      ...(values.quiet ? {} : { onProgress: (s: SimulationSummary) => print({ event: "progress", ...printable(s) }) }),
    });
    print({ event: "summary", ...printable(result), delivered: result.delivered, rejected: result.rejected, cancelled: result.cancelled, unfinished: result.unfinished });
    return result.lost === 0 && result.stuck === 0 ? 0 : 1;
  } finally {
    await stopServer?.();
  }
}

if (import.meta.main) {
  main()
    .then((code) => process.exit(code))
    .catch((err: unknown) => {
      process.stderr.write(`simulate: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(2);
    });
}

// The chaos run's load: customers, restaurants and couriers over the public API and /ws only,
// spread over whichever instances are up (a load balancer that notices a dead instance at
// once). A request that meets a dead instance, a 5xx or a 429 is retried on another one; every
// 2xx write is recorded as acknowledged (the checker looks for each one in the histories).
// Customers watch their orders' topics and, when their connection dies with its instance,
// resume with `since` on another.

import type { ServerProcess } from "../../test/helpers/processes";
import type { Ack, FeedWatch, Order, OrderNote, SeenOffer, Watch } from "./check";
import { seededRandom } from "../lib/random";

type LatLng = { lat: number; lng: number };
type Frame = Record<string, unknown>;
type Status = Order["status"];

export type LoadOptions = {
  restaurants: number;
  couriers: number;
  customers: number;
  /** Mean rate of new orders while placing. */
  ordersPerSecond: number;
  seed: number;
  center: LatLng;
  /** Shares of behaviour (per order or per offer). */
  ignoreShare: number;
  rejectShare: number;
  restaurantCancelShare: number;
  customerCancelShare: number;
  acceptOfferShare: number;
  declineOfferShare: number;
  /** Chance per idle courier per second to claim an unassigned order. */
  claimPerSecond: number;
  /** A request is retried on other instances for this long before the load gives up on it. */
  requestDeadlineMs: number;
  log: (line: Record<string, unknown>) => void;
};

export const LOAD_DEFAULTS: Omit<LoadOptions, "log"> = {
  restaurants: 6,
  couriers: 14,
  customers: 30,
  ordersPerSecond: 1.5,
  seed: 11,
  center: { lat: 48.8566, lng: 2.3522 },
  ignoreShare: 0.05,
  rejectShare: 0.04,
  restaurantCancelShare: 0.03,
  customerCancelShare: 0.04,
  acceptOfferShare: 0.8,
  declineOfferShare: 0.1,
  claimPerSecond: 0.06,
  requestDeadlineMs: 45_000,
};

const FINAL = new Set<string>(["delivered", "cancelled", "rejected"]);


function near(from: LatLng, meters: number, random: () => number): LatLng {
  const angle = random() * 2 * Math.PI;
  const r = meters * Math.sqrt(random());
  return { lat: from.lat + (r * Math.cos(angle)) / 111_320, lng: from.lng + (r * Math.sin(angle)) / (111_320 * Math.cos((from.lat * Math.PI) / 180)) };
}

/** The run is over: actors stop where they are. */
class Stopped extends Error {}
/** A request that found no instance to answer it within the deadline. */
class GaveUp extends Error {}

type Answer = { status: number; body: any; ambiguous: boolean };
type User = { id: string; token: string; role: "customer" | "restaurant" | "courier" | "admin" };

/** A WebSocket that moves to another live instance when its own dies, and says so. */
class ResilientSocket {
  private socket: WebSocket | null = null;
  private closedByUs = false;
  /** Connections opened after the first (each one a reconnect). */
  reconnects = 0;
  /** The instance of the open connection. */
  instanceId = "";

  constructor(
    private readonly load: Load,
    private readonly token: string,
    private readonly onOpen: (reconnect: boolean) => void,
    private readonly onFrame: (frame: Frame) => void,
  ) {}

  async connect(reconnect = false): Promise<void> {
    for (;;) {
      if (this.closedByUs || this.load.stopped) return;
      const target = this.load.pick();
      if (!target) {
        await Bun.sleep(100);
        continue;
      }
      try {
        const socket = await new Promise<WebSocket>((resolve, reject) => {
          const s = new WebSocket(`${target.wsUrl}?token=${encodeURIComponent(this.token)}`);
          const timer = setTimeout(() => {
            s.close();
            reject(new Error("open timed out"));
          }, 5_000);
          s.onopen = () => {
            clearTimeout(timer);
            resolve(s);
          };
          s.onerror = () => {
            clearTimeout(timer);
            reject(new Error("websocket refused"));
          };
        });
        this.socket = socket;
        this.instanceId = target.instanceId;
        socket.onmessage = (e) => {
          if (typeof e.data === "string") this.onFrame(JSON.parse(e.data) as Frame);
        };
        socket.onclose = () => {
          if (this.socket !== socket) return;
          this.socket = null;
          this.onClose?.(this.instanceId);
          if (this.closedByUs || this.load.stopped) return;
          // Its instance died (or dropped us): another one, after a moment.
          this.reconnects++;
          void Bun.sleep(100 + Math.random() * 300).then(() => this.connect(true));
        };
        this.onOpen(reconnect);
        return;
      } catch {
        await Bun.sleep(200);
      }
    }
  }

  send(message: Record<string, unknown>): boolean {
    if (this.socket?.readyState !== WebSocket.OPEN) return false;
    this.socket.send(JSON.stringify(message));
    return true;
  }

  onClose?: (instanceId: string) => void;

  close(): void {
    this.closedByUs = true;
    this.socket?.close();
    this.socket = null;
  }
}

type Restaurant = { id: string; owner: User; location: LatLng };
type WatchState = { watch: Watch; lastSeq: number; done: boolean };

function trace(state: WatchState, what: string): void {
  const t = (state.watch.trace ??= []);
  if (t.length < 100) t.push(`${new Date().toISOString()} ${what}`);
}
type Customer = User & { home: LatLng; socket: ResilientSocket | null; watches: Map<string, WatchState> };
type Courier = User & { at: LatLng; socket: ResilientSocket | null; busy: boolean; feed: FeedState };
/** A restaurant's or courier's topic watch and where to resume it from. */
type FeedState = { watch: FeedWatch; lastAtMs: number | null };

/** Resuming a feed by time goes back this far before the last event (instances' clocks and in-flight changes). */
const FEED_RESUME_MARGIN_MS = 5_000;

function feedState(kind: "restaurant" | "courier", id: string): FeedState {
  return { watch: { topic: `${kind}:${id}`, kind, id, fromMs: Date.now(), resumes: 0, received: [] }, lastAtMs: null };
}
type Known = { status: Status; version: number; courierId: string | null; restaurantId: string };

export type LoadCounts = {
  requests: number;
  retries: number;
  networkErrors: number;
  serverErrors: number;
  gaveUp: number;
  unexpected: number;
  placed: number;
  offersSeen: number;
  wsReconnects: number;
  watchResumes: number;
  subscribeRetries: number;
  appliedWithoutAck: number;
};

export class Load {
  readonly opts: LoadOptions;
  readonly acks: Ack[] = [];
  readonly offers: SeenOffer[] = [];
  readonly owners = new Map<string, string>();
  /** Per order, what went wrong for the load (explains orders left open; see check.ts checkStuck). */
  readonly notes = new Map<string, OrderNote[]>();
  private readonly feeds: FeedState[] = [];
  readonly known = new Map<string, Known>();
  readonly counts: LoadCounts = {
    requests: 0,
    retries: 0,
    networkErrors: 0,
    serverErrors: 0,
    gaveUp: 0,
    unexpected: 0,
    placed: 0,
    offersSeen: 0,
    wsReconnects: 0,
    watchResumes: 0,
    subscribeRetries: 0,
    appliedWithoutAck: 0,
  };
  readonly errors: string[] = [];
  stopped = false;
  private placing = false;
  private readonly random: () => number;
  private readonly restaurants: Restaurant[] = [];
  private readonly customers: Customer[] = [];
  private readonly couriers: Courier[] = [];
  private readonly restaurantSockets: ResilientSocket[] = [];
  private readonly work = new Set<Promise<void>>();
  private ticker: ReturnType<typeof setInterval> | null = null;
  private readonly run = crypto.randomUUID().slice(0, 6);
  private keyCounter = 0;

  constructor(
    private readonly cluster: { live(): ServerProcess[] },
    opts: Partial<LoadOptions> & { log: LoadOptions["log"] },
  ) {
    this.opts = { ...LOAD_DEFAULTS, ...opts };
    this.random = seededRandom(this.opts.seed);
  }

  /** A live instance, chosen at random (not `avoid` when another is up). */
  pick(avoid?: string): ServerProcess | null {
    const live = this.cluster.live();
    if (live.length === 0) return null;
    const others = avoid ? live.filter((p) => p.url !== avoid) : live;
    const from = others.length ? others : live;
    return from[Math.floor(Math.random() * from.length)];
  }

  private between(lo: number, hi: number): number {
    return lo + this.random() * (hi - lo);
  }

  private async pause(ms: number): Promise<void> {
    const until = performance.now() + ms;
    while (!this.stopped && performance.now() < until) await Bun.sleep(Math.min(200, until - performance.now()));
    if (this.stopped) throw new Stopped();
  }

  /** Runs an actor in the background; failures are counted, not fatal. */
  private spawn(what: string, task: () => Promise<void>): void {
    const p = task()
      .catch((err: unknown) => {
        if (err instanceof Stopped) return;
        if (err instanceof GaveUp) this.counts.gaveUp++;
        else this.counts.unexpected++;
        const message = `${what}: ${err instanceof Error ? err.message : String(err)}`;
        if (this.errors.length < 200) this.errors.push(message);
        this.opts.log({ event: "load error", message });
      })
      .finally(() => this.work.delete(p));
    this.work.add(p);
  }

  /**
   * One request through whichever instances are up. Dead instances, 5xx and 429 are retried on
   * another instance until the deadline; `ambiguous` says an earlier attempt of a write may have
   * been applied (its answer was lost or was a 5xx).
   */
  async request(method: string, path: string, opts: { user?: User; body?: unknown; headers?: Record<string, string> } = {}): Promise<Answer> {
    const until = performance.now() + this.opts.requestDeadlineMs;
    let ambiguous = false;
    let avoid: string | undefined;
    let last = "";
    for (let attempt = 0; ; attempt++) {
      if (attempt > 0) {
        this.counts.retries++;
        if (performance.now() > until) {
          const orderId = /\/orders\/([0-9a-f]{24})/.exec(path)?.[1];
          if (orderId) this.note(orderId, "server", `${method} ${path}: no answer within ${this.opts.requestDeadlineMs} ms (last: ${last})`);
          throw new GaveUp(`${method} ${path}: no answer within ${this.opts.requestDeadlineMs} ms (last: ${last})`);
        }
        await Bun.sleep(100 + Math.random() * 200);
      }
      const target = this.pick(avoid);
      if (!target) {
        last = "no instance up";
        continue;
      }
      const headers: Record<string, string> = { ...opts.headers };
      if (opts.user) headers.authorization = `Bearer ${opts.user.token}`;
      if (opts.body !== undefined) headers["content-type"] = "application/json";
      this.counts.requests++;
      try {
        const res = await fetch(target.url + path, {
          method,
          headers,
          body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
          signal: AbortSignal.timeout(12_000),
        });
        const text = await res.text();
        if (res.status >= 500 || res.status === 429) {
          this.counts.serverErrors++;
          if (method !== "GET") ambiguous = true;
          avoid = target.url;
          last = `${res.status} ${text.slice(0, 200)}`;
          continue;
        }
        const body = text ? JSON.parse(text) : null;
        // Idempotency-Key: the first attempt (maybe on a killed instance) still holds the key; retry.
        if (res.status === 409 && body?.title === "A request is outstanding for this Idempotency-Key") {
          last = `409 ${body.title}`;
          continue;
        }
        return { status: res.status, body, ambiguous };
      } catch (err) {
        this.counts.networkErrors++;
        if (method !== "GET") ambiguous = true;
        avoid = target.url;
        last = err instanceof Error ? err.message : String(err);
      }
    }
  }

  note(orderId: string, cause: OrderNote["cause"], text: string): void {
    const list = this.notes.get(orderId) ?? [];
    if (list.length < 20) list.push({ at: new Date().toISOString(), cause, text });
    this.notes.set(orderId, list);
  }

  /** Couriers carrying nothing now (as the load knows). */
  idleCouriers(): number {
    return this.couriers.filter((c) => !c.busy).length;
  }

  /** Restaurant and courier topic watchers. */
  feedWatches(): FeedWatch[] {
    return this.feeds.map((f) => f.watch);
  }

  /** Subscribes a feed (again, after a reconnect: from a little before the last event it got, or its first subscribe). */
  private subscribeFeed(socket: ResilientSocket, feed: FeedState, reconnect: boolean): void {
    if (reconnect) feed.watch.resumes++;
    const since = reconnect ? (feed.lastAtMs ?? feed.watch.fromMs) - FEED_RESUME_MARGIN_MS : undefined;
    const sent = socket.send(since === undefined ? { op: "subscribe", topic: feed.watch.topic } : { op: "subscribe", topic: feed.watch.topic, since });
    const t = (feed.watch.trace ??= []);
    if (t.length < 100) t.push(`${new Date().toISOString()} subscribe${since === undefined ? "" : ` since ${new Date(since).toISOString()}`} on ${socket.instanceId}${sent ? "" : " NOT SENT"}`);
  }

  /** A frame on a feed's topic: events are recorded; a failed subscribe is tried again. */
  private onFeedFrame(socket: ResilientSocket | null, feed: FeedState, frame: Frame): void {
    if (frame.topic !== feed.watch.topic) return;
    if ((frame.type === "order.updated" || frame.type === "order.created") && typeof frame.orderId === "string") {
      // order.created carries the order, not status and event (API.md): it is always PLACE/placed.
      const created = frame.type === "order.created";
      feed.watch.received.push({ orderId: frame.orderId, seq: frame.seq as number, status: created ? "placed" : (frame.status as string), event: created ? "PLACE" : (frame.event as string) });
      const at = Date.parse(String(frame.at ?? ""));
      if (Number.isFinite(at)) feed.lastAtMs = Math.max(feed.lastAtMs ?? at, at);
      this.learn(frame.order as Order);
    } else if (frame.type === "error" && !this.stopped) {
      const t = (feed.watch.trace ??= []);
      if (t.length < 100) t.push(`${new Date().toISOString()} error ${String(frame.code)}: ${String(frame.message)}`);
      setTimeout(() => {
        if (!this.stopped && socket) this.subscribeFeed(socket, feed, true);
      }, 500);
    }
  }

  /** Waits until every feed watcher has the last change of each of its orders (or the time is up). */
  async settleFeeds(orders: Order[], timeoutMs: number): Promise<void> {
    const until = performance.now() + timeoutMs;
    const behind = () =>
      this.feeds.some((f) =>
        orders.some((o) => {
          const mine = f.watch.kind === "restaurant" ? o.restaurantId === f.watch.id : o.courierId === f.watch.id;
          return mine && !f.watch.received.some((r) => r.orderId === o.id && r.seq === o.version);
        }),
      );
    while (performance.now() < until && behind()) await Bun.sleep(200);
  }

  /** Keeps the newest version of an order the load has heard of. */
  private learn(order: Order | null | undefined): void {
    if (!order || typeof order.id !== "string") return;
    const k = this.known.get(order.id);
    if (!k || k.version < order.version) this.known.set(order.id, { status: order.status, version: order.version, courierId: order.courierId, restaurantId: order.restaurantId });
  }

  private async register(role: "customer" | "restaurant" | "courier", n: number): Promise<User> {
    const res = await this.request("POST", "/auth/register", {
      body: { email: `chaos-${this.run}-${role}-${n}@dispatch.test`, password: "chaos-password", name: `${role} ${n}`, role },
    });
    if (res.status !== 201) throw new Error(`register ${role}: ${res.status} ${JSON.stringify(res.body)}`);
    return { id: res.body.user.id, token: res.body.token, role };
  }

  /** Users, restaurants, couriers on duty with their sockets. */
  async setup(): Promise<void> {
    const { opts } = this;
    for (let i = 0; i < opts.restaurants; i++) {
      const owner = await this.register("restaurant", i);
      const location = near(opts.center, 700, this.random);
      const res = await this.request("POST", "/restaurants", {
        user: owner,
        body: {
          name: `Chaos Kitchen ${i}`,
          cuisines: ["chaos"],
          location,
          deliveryRadiusMeters: 5000,
          prepTimeMinutes: 1,
          menu: [
            { id: "main", name: "Main", priceCents: 1000 + i * 10 },
            { id: "side", name: "Side", priceCents: 350 },
          ],
        },
      });
      if (res.status !== 201) throw new Error(`create restaurant: ${res.status} ${JSON.stringify(res.body)}`);
      this.restaurants.push({ id: res.body.id, owner, location });
      this.owners.set(res.body.id, owner.id);
      // The owner watches its restaurant's topic (every change of every order) on its own connection.
      const feed = feedState("restaurant", res.body.id);
      this.feeds.push(feed);
      const socket: ResilientSocket = new ResilientSocket(
        this,
        owner.token,
        (reconnect) => this.subscribeFeed(socket, feed, reconnect),
        (frame) => this.onFeedFrame(socket, feed, frame),
      );
      this.restaurantSockets.push(socket);
      await socket.connect();
    }
    const customers = await Promise.all(Array.from({ length: opts.customers }, (_, i) => this.register("customer", i)));
    for (const c of customers) this.customers.push({ ...c, home: near(opts.center, 900, this.random), socket: null, watches: new Map() });
    const couriers = await Promise.all(Array.from({ length: opts.couriers }, (_, i) => this.register("courier", i)));
    for (const user of couriers) {
      const courier: Courier = { ...user, at: near(opts.center, 800, this.random), socket: null, busy: false, feed: feedState("courier", user.id) };
      this.feeds.push(courier.feed);
      const res = await this.request("PUT", "/couriers/me/availability", { user, body: { available: true } });
      if (res.status !== 200) throw new Error(`availability: ${res.status} ${JSON.stringify(res.body)}`);
      courier.socket = new ResilientSocket(
        this,
        user.token,
        (reconnect) => {
          this.subscribeFeed(courier.socket!, courier.feed, reconnect);
          this.sendFix(courier);
        },
        (frame) => this.onCourierFrame(courier, frame),
      );
      await courier.socket.connect();
      this.couriers.push(courier);
    }
    // Couriers report where they are every second (so they stay dispatchable) and now and then claim.
    this.ticker = setInterval(() => {
      for (const c of this.couriers) {
        this.sendFix(c);
        if (!c.busy && this.placing && this.random() < this.opts.claimPerSecond) this.spawn("claim", () => this.claim(c));
      }
    }, 1_000);
  }

  /** Places orders at the configured rate until `untilMs` (performance.now() time). */
  async place(untilMs: number): Promise<void> {
    this.placing = true;
    try {
      while (!this.stopped && performance.now() < untilMs) {
        const customer = this.customers[Math.floor(this.random() * this.customers.length)];
        this.spawn("order", () => this.orderLife(customer));
        const gap = (-Math.log(1 - this.random()) / this.opts.ordersPerSecond) * 1000;
        await Bun.sleep(Math.max(0, Math.min(gap, untilMs - performance.now())));
      }
    } finally {
      this.placing = false;
    }
  }

  /** Waits until every actor is done and every known order is final (or the time is up); returns the open ones. */
  async drain(timeoutMs: number): Promise<string[]> {
    const until = performance.now() + timeoutMs;
    const open = () => [...this.known.entries()].filter(([, k]) => !FINAL.has(k.status)).map(([id]) => id);
    while (performance.now() < until && (this.work.size > 0 || open().length > 0)) await Bun.sleep(200);
    return open();
  }

  /** Waits until each watcher has seen the versions the server holds (or the time is up). */
  async settleWatches(versions: Map<string, number>, timeoutMs: number): Promise<void> {
    const until = performance.now() + timeoutMs;
    const behind = () => this.watches().filter((w) => (versions.get(w.orderId) ?? 0) > (w.received.at(-1)?.seq ?? w.firstSeq));
    while (performance.now() < until && behind().length > 0) await Bun.sleep(200);
  }

  /** The instance holding the most connections with open watches (the one whose death tests resume most). */
  busiestInstance(): string | null {
    const counts = new Map<string, number>();
    for (const c of this.customers) {
      const open = [...c.watches.values()].filter((w) => !w.done).length;
      if (c.socket && open > 0) counts.set(c.socket.instanceId, (counts.get(c.socket.instanceId) ?? 0) + open);
    }
    let best: string | null = null;
    for (const [id, n] of counts) if (best === null || n > counts.get(best)!) best = id;
    return best;
  }

  watches(): Watch[] {
    return this.customers.flatMap((c) => [...c.watches.values()].map((s) => s.watch));
  }

  /** Stops every actor and closes every socket; counts the reconnects of every client socket. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.ticker) clearInterval(this.ticker);
    // Changes after this (dispatch of orders still open) are not expected on any socket.
    const until = Date.now();
    for (const f of this.feeds) f.watch.untilMs ??= until;
    for (const c of this.customers) for (const w of c.watches.values()) w.watch.untilMs ??= until;
    await Promise.allSettled([...this.work]);
    for (const c of this.customers) c.socket?.close();
    for (const c of this.couriers) c.socket?.close();
    for (const s of this.restaurantSockets) s.close();
    this.counts.wsReconnects =
      this.customers.reduce((n, c) => n + (c.socket?.reconnects ?? 0), 0) +
      this.couriers.reduce((n, c) => n + (c.socket?.reconnects ?? 0), 0) +
      this.restaurantSockets.reduce((n, s) => n + s.reconnects, 0);
  }

  async login(email: string, password: string): Promise<User> {
    const res = await this.request("POST", "/auth/login", { body: { email, password } });
    if (res.status !== 200) throw new Error(`login ${email}: ${res.status} ${JSON.stringify(res.body)}`);
    return { id: res.body.user.id, token: res.body.token, role: res.body.user.role };
  }

  /** Every order, read by an admin through the public API. */
  async allOrders(admin: User): Promise<Order[]> {
    const out: Order[] = [];
    let cursor: string | null = null;
    do {
      const res = await this.request("GET", `/orders?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`, { user: admin });
      if (res.status !== 200) throw new Error(`list orders: ${res.status} ${JSON.stringify(res.body)}`);
      out.push(...(res.body.items as Order[]));
      cursor = res.body.nextCursor as string | null;
    } while (cursor);
    return out;
  }

  // --- the actors -----------------------------------------------------------------------------

  /** A customer orders, watches the order, now and then cancels it; the restaurant handles it. */
  private async orderLife(customer: Customer): Promise<void> {
    const restaurant = this.restaurants[Math.floor(this.random() * this.restaurants.length)];
    const items = [{ menuItemId: "main", quantity: 1 + Math.floor(this.random() * 2) }];
    if (this.random() < 0.5) items.push({ menuItemId: "side", quantity: 1 });
    const key = `chaos-${this.run}-${this.keyCounter++}`;
    const res = await this.request("POST", "/orders", {
      user: customer,
      body: { restaurantId: restaurant.id, items, deliveryLocation: near(customer.home, 50, this.random) },
      headers: { "idempotency-key": key },
    });
    if (res.status !== 201 && res.status !== 200) throw new Error(`place order: ${res.status} ${JSON.stringify(res.body)}`);
    const order = res.body as Order;
    this.counts.placed++;
    this.acks.push({ kind: "place", orderId: order.id, by: { role: "customer", id: customer.id }, version: order.version, status: order.status, courierId: order.courierId });
    this.learn(order);
    this.watch(customer, order);

    const r = this.random();
    if (r < this.opts.customerCancelShare) {
      this.spawn("customer cancel", async () => {
        await this.pause(this.between(200, 900));
        await this.patch(customer, order.id, "cancelled");
      });
    }
    await this.kitchen(restaurant, order.id);
  }

  /** The restaurant: accept (or reject, or let it time out), cook, hand over; sometimes cancel. */
  private async kitchen(restaurant: Restaurant, orderId: string): Promise<void> {
    const o = this.opts;
    await this.pause(this.between(300, 1_200));
    const r = this.random();
    if (r < o.ignoreShare) return; // the accept timeout cancels it
    if (r < o.ignoreShare + o.rejectShare) {
      await this.patch(restaurant.owner, orderId, "rejected");
      return;
    }
    if (!(await this.patch(restaurant.owner, orderId, "accepted"))) return;
    await this.pause(this.between(300, 1_000));
    if (this.random() < o.restaurantCancelShare) {
      await this.patch(restaurant.owner, orderId, "cancelled");
      return;
    }
    if (!(await this.patch(restaurant.owner, orderId, "preparing"))) return;
    await this.pause(this.between(800, 2_000));
    await this.patch(restaurant.owner, orderId, "ready_for_pickup");
  }

  /**
   * PATCH {status}: true when the order got there by this call. A 200 is acknowledged; a 409
   * after an ambiguous attempt is looked up (the lost attempt may have applied it).
   */
  private async patch(user: User, orderId: string, status: Status): Promise<boolean> {
    const res = await this.request("PATCH", `/orders/${orderId}`, { user, body: { status } });
    if (res.status === 200) {
      const order = res.body as Order;
      this.acks.push({ kind: "patch", orderId, by: { role: user.role, id: user.id }, version: order.version, status: order.status, courierId: order.courierId });
      this.learn(order);
      return true;
    }
    if (res.status === 409 || res.status === 412) {
      if (res.ambiguous && (await this.appliedBy(user, orderId, (e) => e.status === status && e.by.id === user.id))) return true;
      await this.noteRefusal(user, orderId, `PATCH → ${status}`, res);
      return false;
    }
    throw new Error(`PATCH ${orderId} → ${status} by ${user.role}: ${res.status} ${JSON.stringify(res.body)}`);
  }

  /**
   * A move of this actor was refused. The customer's and restaurant's moves and the courier's
   * pick-up and delivery are each theirs alone, so a refusal while the order is still open
   * (not cancelled, rejected or delivered by someone else meanwhile) is the server's fault.
   */
  private async noteRefusal(user: User, orderId: string, what: string, res: Answer): Promise<void> {
    const now = await this.request("GET", `/orders/${orderId}`, { user });
    const order = now.status === 200 ? (now.body as Order) : null;
    if (order) this.learn(order);
    const open = order !== null && !FINAL.has(order.status);
    const detail = `${what} by ${user.role}:${user.id} refused ${res.status} (${String(res.body?.title)}: ${String(res.body?.detail)})`;
    this.note(orderId, open && user.role !== "customer" ? "server" : "client", `${detail}; order then ${order ? `${order.status} v${order.version}` : `unreadable (${now.status})`}`);
  }

  /** After an ambiguous write: whether the order's history shows it was applied (counted, not acknowledged). */
  private async appliedBy(user: User, orderId: string, match: (e: Order["history"][number]) => boolean): Promise<boolean> {
    const res = await this.request("GET", `/orders/${orderId}`, { user });
    if (res.status !== 200) return false;
    this.learn(res.body as Order);
    const applied = (res.body as Order).history.some(match);
    if (applied) this.counts.appliedWithoutAck++;
    return applied;
  }

  /** The customer follows its order on `order:<id>` from the version it was told. */
  private watch(customer: Customer, order: Order): void {
    const state: WatchState = {
      watch: { orderId: order.id, watcher: `customer ${customer.id}`, firstSeq: order.version, resumes: 0, received: [] },
      lastSeq: order.version,
      done: FINAL.has(order.status),
    };
    customer.watches.set(order.id, state);
    if (state.done) return;
    if (!customer.socket) {
      customer.socket = new ResilientSocket(
        this,
        customer.token,
        (reconnect) => {
          // A new connection: every open watch subscribes again from what it has.
          for (const s of customer.watches.values()) {
            if (s.done) continue;
            if (reconnect) {
              s.watch.resumes++;
              this.counts.watchResumes++;
            }
            const sent = customer.socket!.send({ op: "subscribe", topic: `order:${s.watch.orderId}`, since: s.lastSeq });
            trace(s, `subscribe since ${s.lastSeq} on ${customer.socket!.instanceId}${reconnect ? " (resume)" : ""}${sent ? "" : " NOT SENT"}`);
          }
        },
        (frame) => this.onCustomerFrame(customer, frame),
      );
      customer.socket.onClose = (instanceId) => {
        for (const s of customer.watches.values()) if (!s.done) trace(s, `connection to ${instanceId} closed`);
      };
      void customer.socket.connect();
    } else {
      const sent = customer.socket.send({ op: "subscribe", topic: `order:${order.id}`, since: state.lastSeq });
      trace(state, `subscribe since ${state.lastSeq} on ${customer.socket.instanceId}${sent ? "" : " NOT SENT (connecting)"}`);
    }
  }

  private onCustomerFrame(customer: Customer, frame: Frame): void {
    const topic = typeof frame.topic === "string" ? frame.topic : "";
    if (!topic.startsWith("order:")) return;
    const state = customer.watches.get(topic.slice("order:".length));
    if (!state) return;
    if (frame.type === "subscribed") trace(state, `subscribed seq ${String(frame.seq)}`);
    if (frame.type === "order.updated" || frame.type === "order.created") {
      const seq = frame.seq as number;
      state.watch.received.push({ seq, status: frame.status as string, event: frame.event as string });
      trace(state, `frame seq ${seq} ${frame.event as string}`);
      state.lastSeq = Math.max(state.lastSeq, seq);
      this.learn(frame.order as Order);
      if (FINAL.has(frame.status as string) && !state.done) {
        state.done = true;
        customer.socket?.send({ op: "unsubscribe", topic });
      }
    } else if (frame.type === "error" && !state.done) {
      // The subscribe did not take (e.g. the database was down): try again from what we have.
      this.counts.subscribeRetries++;
      trace(state, `error ${String(frame.code)}: ${String(frame.message)}`);
      this.opts.log({ event: "subscribe error", topic, code: frame.code, message: frame.message });
      setTimeout(() => {
        if (!state.done && !this.stopped) customer.socket?.send({ op: "subscribe", topic, since: state.lastSeq });
      }, 500);
    }
  }

  private sendFix(c: Courier): void {
    c.at = near(c.at, 15, this.random);
    c.socket?.send({ op: "location", lat: c.at.lat, lng: c.at.lng });
  }

  private onCourierFrame(courier: Courier, frame: Frame): void {
    if (frame.type !== "offer") return this.onFeedFrame(courier.socket, courier.feed, frame);
    if (this.stopped) return;
    const orderId = frame.orderId as string;
    this.counts.offersSeen++;
    this.offers.push({ orderId, courierId: courier.id, expiresAtMs: Date.parse(frame.expiresAt as string) });
    const r = this.random();
    if (courier.busy) {
      // Carrying one already: decline or let it expire.
      if (r < 0.5) this.spawn("decline", () => this.decline(courier, orderId));
      return;
    }
    if (r < this.opts.acceptOfferShare) {
      courier.busy = true;
      this.spawn("accept", async () => {
        try {
          await this.pause(this.between(100, 500));
          const res = await this.assignOrGiveUp(courier, `/orders/${orderId}/offer/accept`, orderId, "OFFER_ACCEPT");
          if (res === null) return await this.deliver(courier, orderId);
          if (res.status === 200) {
            const order = res.body as Order;
            this.acks.push({ kind: "accept", orderId, by: { role: "courier", id: courier.id }, version: order.version, status: order.status, courierId: order.courierId });
            this.learn(order);
          } else if (res.status === 409) {
            if (!(res.ambiguous && (await this.appliedBy(courier, orderId, (e) => e.event === "OFFER_ACCEPT" && e.by.id === courier.id)))) return;
          } else throw new Error(`accept ${orderId}: ${res.status} ${JSON.stringify(res.body)}`);
          await this.deliver(courier, orderId);
        } finally {
          courier.busy = false;
        }
      });
    } else if (r < this.opts.acceptOfferShare + this.opts.declineOfferShare) {
      this.spawn("decline", () => this.decline(courier, orderId));
    }
    // Otherwise ignored: the offer expires.
  }

  private async decline(courier: Courier, orderId: string): Promise<void> {
    await this.pause(this.between(100, 400));
    const res = await this.request("POST", `/orders/${orderId}/offer/decline`, { user: courier });
    if (res.status === 204) this.acks.push({ kind: "decline", orderId, by: { role: "courier", id: courier.id } });
    else if (res.status !== 409) throw new Error(`decline ${orderId}: ${res.status} ${JSON.stringify(res.body)}`);
  }

  /** An idle courier claims an accepted order nobody carries (as the load last heard). */
  private async claim(courier: Courier): Promise<void> {
    const candidates = [...this.known.entries()].filter(([, k]) => (k.status === "accepted" || k.status === "preparing") && k.courierId === null);
    if (candidates.length === 0 || courier.busy) return;
    const [orderId] = candidates[Math.floor(this.random() * candidates.length)];
    courier.busy = true;
    try {
      const res = await this.assignOrGiveUp(courier, `/orders/${orderId}/claim`, orderId, "ASSIGN_COURIER");
      if (res === null) return await this.deliver(courier, orderId);
      if (res.status === 200) {
        const order = res.body as Order;
        this.acks.push({ kind: "claim", orderId, by: { role: "courier", id: courier.id }, version: order.version, status: order.status, courierId: order.courierId });
        this.learn(order);
      } else if (res.status === 409 || res.status === 404) {
        if (!(res.ambiguous && (await this.appliedBy(courier, orderId, (e) => e.event === "ASSIGN_COURIER" && e.by.id === courier.id)))) return;
      } else throw new Error(`claim ${orderId}: ${res.status} ${JSON.stringify(res.body)}`);
      await this.deliver(courier, orderId);
    } finally {
      courier.busy = false;
    }
  }

  /**
   * An accept or claim. When no instance answered it in time, the courier's app looks the order
   * up, as a real one would: null when it was applied after all (the courier carries it now).
   */
  private async assignOrGiveUp(courier: Courier, path: string, orderId: string, event: string): Promise<Answer | null> {
    try {
      return await this.request("POST", path, { user: courier });
    } catch (err) {
      if (err instanceof GaveUp && (await this.appliedBy(courier, orderId, (e) => e.event === event && e.by.id === courier.id))) {
        this.note(orderId, "client", `${path}: no answer, yet applied: courier ${courier.id} carries it on`);
        return null;
      }
      throw err;
    }
  }

  /** To the restaurant, wait for the food, pick up, ride, deliver. */
  private async deliver(courier: Courier, orderId: string): Promise<void> {
    await this.pause(this.between(300, 800));
    for (let waited = 0; ; waited++) {
      const res = await this.request("GET", `/orders/${orderId}`, { user: courier });
      if (res.status !== 200) throw new Error(`look ${orderId}: ${res.status}`);
      const order = res.body as Order;
      this.learn(order);
      if (FINAL.has(order.status)) return; // cancelled meanwhile
      if (order.status === "ready_for_pickup") break;
      if (waited > 120) {
        this.note(orderId, "client", `courier ${courier.id} stopped waiting for it to become ready (${order.status})`);
        throw new Error(`order ${orderId} never became ready (${order.status})`);
      }
      await this.pause(500);
    }
    if (!(await this.patch(courier, orderId, "picked_up"))) return;
    await this.pause(this.between(400, 1_200));
    await this.patch(courier, orderId, "delivered");
  }
}

import { Elysia } from "elysia";
import type { ServerWebSocket } from "bun";
import { authPlugin } from "../http/auth";
import type { AppDeps } from "../deps";
import type { Config } from "../config";
import type { Principal } from "../vocabulary";
import { Unauthorized } from "../errors";
import { MemoryConnectionLimiter } from "../http/connection-limit";
import { isFinalStatus } from "../vocabulary";
import type { Logger } from "../log";
import { UserRepository } from "../modules/auth/repository";
import { MAX_FIX_FUTURE_MS, type CourierLocations } from "../modules/couriers/locations";
import type { CourierModel } from "../modules/couriers/model";
import { OrderRepository } from "../modules/orders/repository";
import type { OrderModel } from "../modules/orders/model";
import { RestaurantRepository } from "../modules/restaurants/repository";
import { checkTopicAccess, type AccessSources } from "./access";
import { messagesFor } from "../events/change";
import { changesFromOrder } from "../events/change";
import { feedTopicReplay, orderTopicReplay, type TopicEvent } from "./history";
import { decodeClientMessage, type RealtimeModel } from "./model";
import { parseTopic, type TopicKind } from "../events/topics";

/** Bun's server-wide WebSocket settings (Bun applies them per server, not per route). */
export function realtimeServerOptions(config: Pick<Config, "WS_MAX_FRAME_BYTES" | "WS_IDLE_TIMEOUT_SECONDS" | "WS_MAX_BUFFERED_BYTES">) {
  return {
    // Frames up to 4× the limit are read and answered with an error frame; beyond that Bun closes with 1009.
    maxPayloadLength: Math.max(4 * config.WS_MAX_FRAME_BYTES, 64 * 1024),
    idleTimeout: config.WS_IDLE_TIMEOUT_SECONDS,
    sendPings: true,
    // The 1013 sweep acts at WS_MAX_BUFFERED_BYTES; this is the hard stop (Bun cuts the socket
    // without a close frame) for a client that falls behind faster than the sweep runs.
    backpressureLimit: 16 * config.WS_MAX_BUFFERED_BYTES,
    closeOnBackpressureLimit: true,
    perMessageDeflate: false,
    publishToSelf: false,
  };
}

const CLOSE_POLICY = 1008;
const CLOSE_TRY_AGAIN_LATER = 1013;
const CLOSE_GOING_AWAY = 1001;
const ABUSE_WINDOW_MS = 10_000;
const SLOW_CONSUMER_SWEEP_MS = 250;
/** Client frames per second a connection may send on average, and in a burst (each subscribe costs a database read). */
const FRAME_RATE_PER_SECOND = 50;
const FRAME_BURST = 100;
/**
 * How often order topics with local subscribers are compared with the database. A change
 * committed on another instance can miss this one (Redis down, or that instance died between
 * commit and publish); when it was the order's last, nothing else would ever bring it.
 */
const RECONCILE_MS = 2_000;
/** Orders changed more recently than this are left to the relay (their publish may be in flight). */
const RECONCILE_QUIET_MS = 1_000;
/**
 * Order ids per version query of the reconciliation. The engine runs one command at a time, so
 * one query over every watched order would hold up the PATCHes' compare-and-sets behind it
 * (docs/realtime.md, "Reconciliation cost").
 */
export const RECONCILE_BATCH = 128;

type Socket = ServerWebSocket<unknown>;

type PendingSubscription = {
  topic: string;
  buffer: TopicEvent[];
  cancelled: boolean;
};

/**
 * An order topic whose subscriber has seq `lastSent` while the bus has not yet delivered that
 * far (a change committed before the read and published after it, or a relay gap filled
 * later): the native topic would send it seqs it has. Fed by the bus listener instead, with
 * only greater seqs, until the bus's delivered seq reaches `lastSent`.
 */
type CatchUp = {
  conn: Connection;
  topic: string;
  orderId: string;
  lastSent: number;
  /** Deliveries held while seqs the bus skipped are read from the database (see catchUp). */
  held?: Array<{ seq: number; data: string }> | null;
};

type Connection = {
  socket: Socket;
  principal: Principal;
  /** Topics subscribed, on the native topic or catching up. */
  subscribed: Set<string>;
  pending: Map<string, PendingSubscription>;
  catchingUp: Map<string, CatchUp>;
  strikes: number[];
  /** Token bucket for client frames. */
  allowance: number;
  lastFrameMs: number;
  closed: boolean;
};

/** Reads the hub needs besides access checks. */
export type FeedSources = AccessSources & {
  ordersChangedSince(scope: { restaurantId: string } | { courierId: string }, since: Date, limit: number): Promise<OrderModel.order[]>;
  orderVersions(ids: string[]): Promise<Map<string, number>>;
};

function sourcesFor(deps: AppDeps): { sources: FeedSources } {
  const orders = new OrderRepository(deps.db.db);
  const restaurants = new RestaurantRepository(deps.db.db);
  const users = new UserRepository(deps.db.db);
  return {
    sources: {
      findOrder: (id) => orders.findById(id),
      findRestaurant: (id) => restaurants.findById(id),
      findUser: (id) => users.findById(id),
      ordersChangedSince: (scope, since, limit) => orders.changedSince(scope, since, limit),
      orderVersions: (ids) => orders.versionsOf(ids),
    },
  };
}

/**
 * The /ws endpoint's state: connections, their subscriptions, and subscribes in progress.
 *
 * Live events travel on Bun's native topics (`ws.subscribe` + `server.publish`): no per-socket
 * JavaScript on the hot path. A subscribe is made gapless by listening on the bus before the
 * database is read, buffering what arrives meanwhile, sending the replay, draining the buffer
 * past what the replay covered, and only then joining the native topic, all in one
 * synchronous step after the last await, so no event can fall between buffer and topic.
 *
 * An order topic is joined only once the bus has delivered the seq the subscriber has (the
 * bus never delivers an order's seq twice or backwards, so nothing it has can follow);
 * until then the subscription catches up from the bus listener (see CatchUp) and joins the
 * topic inside the listener call at which the bus reaches it, again with nothing in between.
 */
export class RealtimeHub {
  private readonly connections = new Map<Socket, Connection>();
  private readonly pendingByTopic = new Map<string, Set<PendingSubscription>>();
  private readonly catchUpByTopic = new Map<string, Set<CatchUp>>();
  private readonly sweeper: ReturnType<typeof setInterval>;
  private readonly reconciler: ReturnType<typeof setInterval> | null = null;
  private reconciling = false;
  /** Per order with local subscribers: when a change last reached this bus, and whether it was final. */
  private readonly lastChange = new Map<string, { atMs: number; final: boolean }>();
  private readonly unlisten: Array<() => void>;
  private readonly log: Logger;
  private readonly cfg: AppDeps["config"];

  constructor(
    private readonly deps: AppDeps,
    private readonly sources: FeedSources,
    /** Courier positions (shared with PUT /couriers/me/location): forwarding, geofence, ETA. */
    private readonly locations: CourierLocations,
  ) {
    this.log = deps.log.child({ module: "realtime" });
    this.cfg = deps.config;
    // The bus calls these after the change (message) is on every local topic.
    const onChange = deps.bus.onChange((change) => {
      if (this.lastChange.has(change.orderId)) this.lastChange.set(change.orderId, { atMs: performance.now(), final: isFinalStatus(change.status) });
      if (this.pendingByTopic.size === 0 && this.catchUpByTopic.size === 0) return;
      for (const { topic, message } of messagesFor(change)) {
        const waiting = this.pendingByTopic.get(topic);
        const catchingUp = this.catchUpByTopic.get(topic);
        if (!waiting && !catchingUp) continue;
        const data = JSON.stringify(message);
        if (waiting) {
          const event: TopicEvent = { orderId: change.orderId, seq: change.seq, atMs: Date.parse(change.at), data };
          for (const pending of waiting) pending.buffer.push(event);
        }
        if (catchingUp) for (const entry of catchingUp) this.catchUp(entry, change.seq, data);
      }
    });
    const onTransient = deps.bus.onTransient((topic, data) => {
      const catchingUp = this.catchUpByTopic.get(topic);
      if (catchingUp) for (const entry of catchingUp) this.sendRaw(entry.conn, data, "order");
    });
    this.unlisten = [onChange, onTransient];
    this.sweeper = setInterval(() => this.closeSlowConsumers(), SLOW_CONSUMER_SWEEP_MS);
    this.sweeper.unref?.();
    if (deps.bus.redeliver) {
      this.reconciler = setInterval(() => void this.reconcile(), RECONCILE_MS);
      this.reconciler.unref?.();
    }
  }

  /** Open connections (for tests and metrics). */
  get connectionCount(): number {
    return this.connections.size;
  }

  get locationWrites(): number {
    return this.locations.writeCount;
  }

  open(socket: Socket, principal: Principal): void {
    this.deps.metrics.wsConnectionsOpened.inc();
    this.connections.set(socket, {
      socket,
      principal,
      subscribed: new Set(),
      pending: new Map(),
      catchingUp: new Map(),
      strikes: [],
      allowance: FRAME_BURST,
      lastFrameMs: performance.now(),
      closed: false,
    });
  }

  closed(socket: Socket): void {
    const conn = this.connections.get(socket);
    if (!conn) return;
    conn.closed = true;
    for (const pending of conn.pending.values()) this.cancel(pending);
    conn.pending.clear();
    for (const entry of conn.catchingUp.values()) this.stopCatchUp(entry);
    this.connections.delete(socket);
  }

  /** One client frame, before any parsing: text or binary, whatever its size. */
  frame(socket: Socket, message: string | Buffer): void {
    const conn = this.connections.get(socket);
    if (!conn || conn.closed) return;
    let op = "invalid"; // until decoded
    try {
      const now = performance.now();
      conn.allowance = Math.min(FRAME_BURST, conn.allowance + ((now - conn.lastFrameMs) * FRAME_RATE_PER_SECOND) / 1000);
      conn.lastFrameMs = now;
      if (conn.allowance < 1) return this.reject(conn, "rate_limited", `at most ${FRAME_RATE_PER_SECOND} frames per second; this one was dropped`);
      conn.allowance -= 1;
      if (typeof message !== "string") return this.reject(conn, "binary_not_supported", "send JSON text frames");
      const limit = this.cfg.WS_MAX_FRAME_BYTES;
      if (message.length > limit || (message.length * 3 > limit && Buffer.byteLength(message) > limit)) {
        return this.reject(conn, "frame_too_large", `frames are limited to ${limit} bytes`);
      }
      let value: unknown;
      try {
        value = JSON.parse(message);
      } catch {
        return this.reject(conn, "bad_json", "frame is not valid JSON");
      }
      const decoded = decodeClientMessage(value);
      if (!decoded.ok) return this.reject(conn, "invalid_message", decoded.message);
      const msg = decoded.message;
      op = msg.op;
      switch (msg.op) {
        case "ping":
          return this.send(conn, { type: "pong" });
        case "subscribe":
          void this.subscribe(conn, msg.topic, msg.since).catch((err: unknown) => this.failed(conn, msg.topic, err));
          return;
        case "unsubscribe":
          return this.unsubscribe(conn, msg.topic);
        case "location":
          return this.location(conn, msg);
      }
    } catch (err) {
      this.failed(conn, undefined, err);
    } finally {
      this.deps.metrics.wsMessagesReceived.inc({ op });
    }
  }

  /** Closes every connection (1001) and waits briefly for them to go, so the server can stop. */
  async shutdown(): Promise<void> {
    clearInterval(this.sweeper);
    if (this.reconciler) clearInterval(this.reconciler);
    this.locations.stop();
    for (const off of this.unlisten) off();
    for (const conn of this.connections.values()) conn.socket.close(CLOSE_GOING_AWAY, "server shutting down");
    const deadline = performance.now() + 2_000;
    while (this.connections.size > 0 && performance.now() < deadline) await Bun.sleep(10);
    for (const conn of this.connections.values()) conn.socket.terminate();
    this.connections.clear();
  }

  private async subscribe(conn: Connection, topic: string, since: number | undefined): Promise<void> {
    const parsed = parseTopic(topic);
    if (!parsed) return this.sendError(conn, "invalid_topic", "topics are order:<id>, restaurant:<id> or courier:<id>", topic);
    if (conn.subscribed.has(topic) || conn.pending.has(topic)) return this.sendError(conn, "already_subscribed", "already subscribed; unsubscribe first to resubscribe", topic);
    if (conn.subscribed.size + conn.pending.size >= this.cfg.WS_MAX_SUBSCRIPTIONS) {
      return this.sendError(conn, "too_many_subscriptions", `at most ${this.cfg.WS_MAX_SUBSCRIPTIONS} subscriptions per connection`, topic);
    }

    const pending: PendingSubscription = { topic, buffer: [], cancelled: false };
    conn.pending.set(topic, pending);
    let waiting = this.pendingByTopic.get(topic);
    if (!waiting) this.pendingByTopic.set(topic, (waiting = new Set()));
    waiting.add(pending);
    const hooks = this.deps.realtimeHooks;
    const info = { topic, principalId: conn.principal.id };
    try {
      await hooks?.beforeRead?.(info);
      const grant = await checkTopicAccess(this.sources, conn.principal, parsed.kind, parsed.id);
      if (pending.cancelled) return;
      if (!grant.ok) return this.sendError(conn, "forbidden", grant.message, topic);

      let replay: TopicEvent[] = [];
      let seq: number | undefined;
      if (parsed.kind === "order" && grant.order) {
        seq = grant.order.version;
        if (since !== undefined) replay = orderTopicReplay(grant.order, topic, since);
      } else if (since !== undefined) {
        const feed = await this.feedReplay(parsed.kind, parsed.id, topic, since);
        if (feed === null) {
          return this.sendError(conn, "replay_too_large", `more than ${this.cfg.WS_REPLAY_MAX_EVENTS} events since then; reload with GET /orders and subscribe without since`, topic);
        }
        replay = feed;
      }
      await hooks?.beforeSend?.(info);
      if (pending.cancelled || conn.closed) return;

      // No await from here on: the switch from buffer to native topic is atomic.
      conn.socket.cork(() => {
        this.send(conn, seq === undefined ? { type: "subscribed", topic } : { type: "subscribed", topic, seq });
        const sent = new Map<string, number>();
        for (const event of replay) {
          this.sendRaw(conn, event.data);
          sent.set(event.orderId, event.seq);
        }
        const buffered = parsed.kind === "order" ? [...pending.buffer].sort((a, b) => a.seq - b.seq) : pending.buffer;
        // Order topics: the subscriber has everything up to the version read (or since, if later).
        const floor = parsed.kind === "order" ? Math.max(seq ?? 0, since ?? 0) : Number.NEGATIVE_INFINITY;
        for (const event of buffered) {
          if (parsed.kind !== "order" && since !== undefined && event.atMs < since) continue;
          const last = sent.get(event.orderId) ?? floor;
          if (event.seq <= last) continue;
          this.sendRaw(conn, event.data);
          sent.set(event.orderId, event.seq);
        }
        conn.subscribed.add(topic);
        if (parsed.kind === "order") {
          const lastSent = Math.max(floor, sent.get(parsed.id) ?? floor);
          const delivered = this.deps.bus.deliveredSeq(parsed.id);
          if (delivered === undefined || delivered < lastSent) return this.startCatchUp({ conn, topic, orderId: parsed.id, lastSent });
        }
        // Restaurant and courier topics carry many orders and are joined at once (clients skip
        // (orderId, seq) pairs they have, as documented).
        conn.socket.subscribe(topic);
      });
    } finally {
      this.cancel(pending);
      if (conn.pending.get(topic) === pending) conn.pending.delete(topic);
    }
  }

  /** Events of a restaurant's or courier's orders at or after `sinceMs`; null when there are too many. */
  private async feedReplay(kind: TopicKind, id: string, topic: string, sinceMs: number): Promise<TopicEvent[] | null> {
    const max = this.cfg.WS_REPLAY_MAX_EVENTS;
    const scope = kind === "restaurant" ? { restaurantId: id } : { courierId: id };
    const orders = await this.sources.ordersChangedSince(scope, new Date(sinceMs), max + 1);
    if (orders.length > max) return null;
    const events = feedTopicReplay(orders, topic, sinceMs);
    return events.length > max ? null : events;
  }

  private unsubscribe(conn: Connection, topic: string): void {
    const pending = conn.pending.get(topic);
    if (pending) {
      this.cancel(pending);
      conn.pending.delete(topic);
    } else if (conn.catchingUp.has(topic)) {
      this.stopCatchUp(conn.catchingUp.get(topic)!);
      conn.subscribed.delete(topic);
    } else if (conn.subscribed.has(topic)) {
      conn.socket.unsubscribe(topic);
      conn.subscribed.delete(topic);
    } else {
      return this.sendError(conn, "not_subscribed", "not subscribed to this topic", topic);
    }
    this.send(conn, { type: "unsubscribed", topic });
  }

  private location(conn: Connection, msg: RealtimeModel.location): void {
    if (conn.principal.role !== "courier") return this.sendError(conn, "forbidden", "only couriers report locations");
    const at = msg.at === undefined ? this.deps.clock.now() : new Date(msg.at);
    if (Number.isNaN(at.getTime())) return this.reject(conn, "invalid_message", "/at: expected an ISO 8601 time or epoch milliseconds");
    const fix: CourierModel.fix = { lat: msg.lat, lng: msg.lng, at };
    if (msg.heading !== undefined) fix.heading = msg.heading;
    if (msg.speedMps !== undefined) fix.speedMps = msg.speedMps;
    const verdict = this.locations.report(conn.principal.id, fix);
    if (verdict === "stale") this.sendError(conn, "stale_location", "a newer fix is already known; this one was dropped");
    else if (verdict === "future") this.sendError(conn, "future_location", `fix time is more than ${MAX_FIX_FUTURE_MS / 1000} s ahead of server time; dropped`);
  }

  /**
   * Compares the orders local clients are subscribed to with the database, and has the bus
   * deliver what this instance missed (from what it delivered, or for an order it never saw,
   * from the lowest seq a catching-up subscriber has). Orders whose final change arrived, and
   * orders that changed in the last second, are skipped.
   */
  private async reconcile(): Promise<void> {
    if (this.reconciling || !this.deps.bus.redeliver) return;
    this.reconciling = true;
    try {
      const subscribed = new Set<string>();
      for (const conn of this.connections.values()) {
        for (const topic of conn.subscribed) {
          const parsed = parseTopic(topic);
          if (parsed?.kind === "order") subscribed.add(parsed.id);
        }
      }
      for (const orderId of this.lastChange.keys()) if (!subscribed.has(orderId)) this.lastChange.delete(orderId);
      const now = performance.now();
      const check: string[] = [];
      for (const orderId of subscribed) {
        const last = this.lastChange.get(orderId);
        if (!last) this.lastChange.set(orderId, { atMs: 0, final: false });
        else if (last.final || now - last.atMs < RECONCILE_QUIET_MS) continue;
        check.push(orderId);
      }
      for (let i = 0; i < check.length; i += RECONCILE_BATCH) {
        const batch = check.slice(i, i + RECONCILE_BATCH);
        const versions = await this.sources.orderVersions(batch);
        for (const orderId of batch) {
          const version = versions.get(orderId);
          if (version === undefined) continue;
          const entries = this.catchUpByTopic.get(`order:${orderId}`);
          const from = this.deps.bus.deliveredSeq(orderId) ?? (entries?.size ? Math.min(...[...entries].map((e) => e.lastSent)) : version);
          if (version <= from) continue;
          const stored = await this.sources.findOrder(orderId);
          if (stored) this.deps.bus.redeliver(changesFromOrder(stored.order, from));
        }
      }
    } catch (err) {
      this.log.warn("comparing subscribed orders with the database failed; retrying", { err: err instanceof Error ? err : String(err) });
    } finally {
      this.reconciling = false;
    }
  }

  private startCatchUp(entry: CatchUp): void {
    entry.conn.catchingUp.set(entry.topic, entry);
    let set = this.catchUpByTopic.get(entry.topic);
    if (!set) this.catchUpByTopic.set(entry.topic, (set = new Set()));
    set.add(entry);
  }

  /**
   * One change of a catching-up subscription's order, already on the native topic: sent if
   * the subscriber lacks it; once the bus has delivered what the subscriber has, the socket
   * joins the topic here, before the bus delivers anything else.
   */
  private catchUp(entry: CatchUp, seq: number, data: string): void {
    if (entry.held) {
      entry.held.push({ seq, data });
      return;
    }
    if (seq > entry.lastSent + 1) {
      // The bus skipped seqs this subscriber lacks: they never reached this instance (a relay
      // loss) and this is the first change of the order it sees, so its sequencer had nothing
      // to compare against. Read them first; later deliveries wait behind the read.
      entry.held = [{ seq, data }];
      void this.fillCatchUp(entry);
      return;
    }
    this.sendCatchUp(entry, seq, data);
    this.joinIfCaughtUp(entry);
  }

  private sendCatchUp(entry: CatchUp, seq: number, data: string): void {
    if (seq <= entry.lastSent) return;
    this.sendRaw(entry.conn, data, "order");
    entry.lastSent = seq;
  }

  /** Joins the native topic once the bus has delivered what the subscriber has (nothing it has can follow there). */
  private joinIfCaughtUp(entry: CatchUp): void {
    const delivered = this.deps.bus.deliveredSeq(entry.orderId);
    if (delivered === undefined || delivered < entry.lastSent) return;
    this.stopCatchUp(entry);
    if (!entry.conn.closed) entry.conn.socket.subscribe(entry.topic);
  }

  /** Sends a catching-up subscriber the order's seqs it lacks from the database, then what was held meanwhile. */
  private async fillCatchUp(entry: CatchUp): Promise<void> {
    try {
      const stored = await this.sources.findOrder(entry.orderId);
      if (stored && !entry.conn.closed && entry.conn.catchingUp.get(entry.topic) === entry) {
        for (const event of orderTopicReplay(stored.order, entry.topic, entry.lastSent)) this.sendCatchUp(entry, event.seq, event.data);
      }
    } catch (err) {
      this.log.warn("reading an order to fill a subscriber's gap failed; the client can resume with since", { orderId: entry.orderId, err: err instanceof Error ? err : String(err) });
    }
    const held = entry.held ?? [];
    entry.held = null;
    if (entry.conn.catchingUp.get(entry.topic) !== entry) return; // unsubscribed or closed meanwhile
    // Every delivery since the read began is in `held`, in bus order: only after the last one may the topic be joined.
    for (const h of held) this.sendCatchUp(entry, h.seq, h.data);
    this.joinIfCaughtUp(entry);
  }

  private stopCatchUp(entry: CatchUp): void {
    if (entry.conn.catchingUp.get(entry.topic) === entry) entry.conn.catchingUp.delete(entry.topic);
    const set = this.catchUpByTopic.get(entry.topic);
    if (!set) return;
    set.delete(entry);
    if (set.size === 0) this.catchUpByTopic.delete(entry.topic);
  }

  private cancel(pending: PendingSubscription): void {
    pending.cancelled = true;
    const waiting = this.pendingByTopic.get(pending.topic);
    if (!waiting) return;
    waiting.delete(pending);
    if (waiting.size === 0) this.pendingByTopic.delete(pending.topic);
  }

  /** An invalid frame: error frame, and a strike; too many strikes in a window close the connection. */
  private reject(conn: Connection, code: RealtimeModel.errorCode, message: string): void {
    this.sendError(conn, code, message);
    const now = performance.now();
    conn.strikes = conn.strikes.filter((t) => now - t < ABUSE_WINDOW_MS);
    conn.strikes.push(now);
    if (conn.strikes.length >= this.cfg.WS_MAX_INVALID_FRAMES) {
      this.log.info("closing a connection after repeated invalid frames", { principalId: conn.principal.id, strikes: conn.strikes.length });
      conn.closed = true;
      conn.socket.close(CLOSE_POLICY, "too many invalid frames");
    }
  }

  private failed(conn: Connection, topic: string | undefined, err: unknown): void {
    this.log.error("websocket message failed", { principalId: conn.principal.id, topic, err: err instanceof Error ? err : String(err) });
    this.sendError(conn, "unavailable", "the server could not handle this message now; retry", topic);
  }

  private sendError(conn: Connection, code: RealtimeModel.errorCode, message: string, topic?: string): void {
    this.send(conn, topic === undefined ? { type: "error", code, message } : { type: "error", code, message, topic });
  }

  private send(conn: Connection, frame: Record<string, unknown>): void {
    this.sendRaw(conn, JSON.stringify(frame));
  }

  /** `kind`: the metric label (replies, or topic messages sent one by one while catching up). */
  private sendRaw(conn: Connection, data: string, kind: "reply" | "order" = "reply"): void {
    if (conn.closed) return;
    const status = conn.socket.send(data);
    if (status !== 0) this.deps.metrics.wsMessagesSent.inc({ kind });
    // -1: queued under backpressure; 0: dropped. Either way, see whether the client keeps up.
    if (status <= 0) this.closeIfSlow(conn);
  }

  private closeSlowConsumers(): void {
    for (const conn of this.connections.values()) this.closeIfSlow(conn);
  }

  private closeIfSlow(conn: Connection): void {
    if (conn.closed || conn.socket.getBufferedAmount() <= this.cfg.WS_MAX_BUFFERED_BYTES) return;
    conn.closed = true;
    this.log.info("closing a slow websocket client", { principalId: conn.principal.id, bufferedBytes: conn.socket.getBufferedAmount() });
    conn.socket.close(CLOSE_TRY_AGAIN_LATER, "client too slow; reconnect and resume with since");
    // A client that reads nothing never completes the close handshake: cut it after a grace period.
    const socket = conn.socket;
    setTimeout(() => {
      if (this.connections.get(socket) === conn) socket.terminate();
    }, 5_000).unref?.();
  }
}

/** Frames Bun hands to a route's `message` handler; replaced so the hub sees them unparsed. */
type RawMessageHandler = (socket: Socket, message: string | Buffer) => void;

/**
 * `GET /ws?token=<jwt>` (API.md, WebSocket). The token is checked before the upgrade: a
 * missing or bad one gets 401 and no socket.
 */
export function realtimeModule(deps: AppDeps, locations: CourierLocations) {
  const { sources } = sourcesFor(deps);
  const hub = new RealtimeHub(deps, sources, locations);
  const maxPerUser = deps.config.WS_MAX_CONNECTIONS_PER_USER;
  const limiter = deps.connectionLimiter ?? new MemoryConnectionLimiter(maxPerUser);
  /** Each socket's slot in the per-user count: resolves true once it holds one. */
  const slots = new WeakMap<Socket, { userId: string; id: string; granted: Promise<boolean> }>();
  const closed = (socket: Socket) => {
    hub.closed(socket);
    const slot = slots.get(socket);
    slots.delete(socket);
    if (slot) void slot.granted.then((ok) => (ok ? limiter.release(slot.userId, slot.id) : undefined)).catch(() => undefined);
  };
  return new Elysia({ name: "realtime" })
    .use(authPlugin(deps))
    .decorate("realtime", hub)
    .onStop(() => hub.shutdown())
    .resolve(async ({ query, verifyToken }) => {
      const principal = await verifyToken(typeof query.token === "string" ? query.token : null);
      if (!principal) throw new Unauthorized("missing or invalid token (GET /ws?token=<jwt>)");
      return { principal };
    })
    .ws("/ws", {
      open(ws) {
        const socket = ws.raw as Socket;
        hub.open(socket, ws.data.principal);
        const slot = { userId: ws.data.principal.id, id: crypto.randomUUID(), granted: Promise.resolve(false) };
        slot.granted = limiter.acquire(slot.userId, slot.id).catch(() => true); // a broken store must not lock users out
        slots.set(socket, slot);
        void slot.granted.then((ok) => {
          if (!ok) socket.close(CLOSE_POLICY, `too many connections for this user (at most ${maxPerUser})`);
        });
        // Bun calls the handlers on `socket.data`. Elysia's hold the whole upgrade context
        // (request, headers, closures: several KiB per idle socket), so only ours stay. Frames
        // reach the hub unparsed: it enforces the size limit and answers malformed ones itself.
        (socket as { data: unknown }).data = {
          message: ((raw, message) => hub.frame(raw, message)) satisfies RawMessageHandler,
          close: (raw: Socket) => closed(raw),
        };
      },
      close(ws) {
        closed(ws.raw as Socket); // only when `open` failed before replacing the handlers
      },
      detail: { summary: "Live order events (see API.md, WebSocket); ?token=<jwt>", tags: ["realtime"] },
    });
}

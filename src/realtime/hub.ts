import type { Config } from "../config";
import type { RealtimeHooks } from "../deps";
import type { EventBus } from "../events/bus";
import { messagesFor } from "../events/change";
import { parseTopic } from "../events/topics";
import type { Clock } from "../clock";
import { errorField, type Logger } from "../log";
import type { Metrics } from "../metrics";
import type { Principal } from "../vocabulary";
import { Client, CLOSE_GOING_AWAY, type Socket } from "./client";
import { FRAME_BURST, FrameLimits } from "./frame-limits";
import type { RealtimeModel } from "./model";
import { CatchUps, Reconciler } from "./recovery";
import type { CourierPositions, RealtimeSources } from "./sources";
import { Subscriptions } from "./subscriptions";

const SLOW_CONSUMER_SWEEP_MS = 250;

export type RealtimeHubDeps = {
  config: Pick<Config, "WS_MAX_FRAME_BYTES" | "WS_MAX_INVALID_FRAMES" | "WS_MAX_SUBSCRIPTIONS" | "WS_REPLAY_MAX_EVENTS" | "WS_MAX_BUFFERED_BYTES">;
  bus: EventBus;
  clock: Clock;
  log: Logger;
  metrics: Pick<Metrics, "wsConnectionsOpened" | "wsMessagesReceived" | "wsMessagesSent">;
  sources: RealtimeSources;
  /** Courier positions (shared with PUT /couriers/me/location): forwarding, geofence, ETA. */
  positions: CourierPositions;
  /** Test seams, read at each subscribe. */
  hooks(): RealtimeHooks | undefined;
};

/**
 * The /ws endpoint's connections and what their frames ask for. Live events travel on Bun's
 * native topics (`ws.subscribe` + `server.publish`): no per-socket JavaScript on the hot path.
 * Subscribing (Subscriptions), catching up and reconciling (CatchUps, Reconciler) and frame
 * limits (FrameLimits) are their own units; the hub owns the connections and the bus listeners.
 */
export class RealtimeHub {
  private readonly clients = new Map<Socket, Client>();
  private readonly log: Logger;
  private readonly limits: FrameLimits;
  private readonly catchUps: CatchUps;
  private readonly subscriptions: Subscriptions;
  private readonly reconciler: Reconciler;
  private readonly sweeper: ReturnType<typeof setInterval>;
  private readonly unlisten: Array<() => void>;

  constructor(private readonly deps: RealtimeHubDeps) {
    const { bus, config, sources } = deps;
    this.log = deps.log.child({ module: "realtime" });
    this.limits = new FrameLimits({ maxFrameBytes: config.WS_MAX_FRAME_BYTES, maxInvalidFrames: config.WS_MAX_INVALID_FRAMES, log: this.log });
    this.catchUps = new CatchUps({ bus, sources, log: this.log });
    this.subscriptions = new Subscriptions({
      bus,
      sources,
      catchUps: this.catchUps,
      hooks: deps.hooks,
      maxSubscriptions: config.WS_MAX_SUBSCRIPTIONS,
      replayMaxEvents: config.WS_REPLAY_MAX_EVENTS,
    });
    this.reconciler = new Reconciler({ bus, sources, log: this.log, catchUps: this.catchUps, subscribedOrders: () => this.subscribedOrders(), subscribedFeeds: () => this.subscribedFeeds() });
    // The bus calls these after the change (message) is on every local topic.
    const onChange = bus.onChange((change) => {
      this.reconciler.noteChange(change);
      if (!this.subscriptions.pending && !this.catchUps.active) return;
      for (const { topic, message } of messagesFor(change)) {
        const waiting = this.subscriptions.waitsFor(topic);
        const catchingUp = this.catchUps.follows(topic);
        if (!waiting && !catchingUp) continue;
        const data = JSON.stringify(message);
        if (waiting) this.subscriptions.buffer(topic, { orderId: change.orderId, seq: change.seq, atMs: Date.parse(change.at), data });
        if (catchingUp) this.catchUps.deliver(topic, change.seq, data);
      }
    });
    const onTransient = bus.onTransient((topic, data) => this.catchUps.deliverTransient(topic, data));
    this.unlisten = [onChange, onTransient];
    this.sweeper = setInterval(() => this.closeSlowConsumers(), SLOW_CONSUMER_SWEEP_MS);
    this.sweeper.unref?.();
  }

  /** Open connections (for tests and metrics). */
  get connectionCount(): number {
    return this.clients.size;
  }

  /** A socket was upgraded for `principal`. */
  connected(socket: Socket, principal: Principal): void {
    this.deps.metrics.wsConnectionsOpened.inc();
    const ctx = { metrics: this.deps.metrics, log: this.log, maxBufferedBytes: this.deps.config.WS_MAX_BUFFERED_BYTES };
    this.clients.set(socket, new Client(socket, principal, ctx, FRAME_BURST));
  }

  /** The socket's close event: what the connection had in progress is dropped. */
  disconnected(socket: Socket): void {
    const client = this.clients.get(socket);
    if (!client) return;
    client.closed = true;
    client.gone = true;
    this.subscriptions.drop(client);
    this.clients.delete(socket);
  }

  /** One client frame, before any parsing: text or binary, whatever its size. */
  receive(socket: Socket, frame: string | Buffer): void {
    const client = this.clients.get(socket);
    if (!client || client.closed) return;
    let op = "invalid"; // until decoded
    try {
      const msg = this.limits.admit(client, frame);
      if (!msg) return;
      op = msg.op;
      switch (msg.op) {
        case "ping":
          return client.send({ type: "pong" });
        case "subscribe":
          void this.subscriptions.subscribe(client, msg.topic, msg.since).catch((err: unknown) => this.failed(client, msg.topic, err));
          return;
        case "unsubscribe":
          return this.subscriptions.unsubscribe(client, msg.topic);
        case "location":
          return this.location(client, msg);
      }
    } catch (err) {
      this.failed(client, undefined, err);
    } finally {
      this.deps.metrics.wsMessagesReceived.inc({ op });
    }
  }

  /** Closes every connection (1001) and waits briefly for them to go, so the server can stop. */
  async shutdown(): Promise<void> {
    clearInterval(this.sweeper);
    this.reconciler.stop();
    for (const off of this.unlisten) off();
    for (const client of this.clients.values()) client.socket.close(CLOSE_GOING_AWAY, "server shutting down");
    const deadline = performance.now() + 2_000;
    while (this.clients.size > 0 && performance.now() < deadline) await Bun.sleep(10);
    for (const client of this.clients.values()) {
      client.gone = true;
      client.socket.terminate();
    }
    this.clients.clear();
  }

  private location(client: Client, msg: RealtimeModel.location): void {
    if (client.principal.role !== "courier") return client.sendError("forbidden", "only couriers report locations");
    const at = msg.at === undefined ? this.deps.clock.now() : new Date(msg.at);
    if (Number.isNaN(at.getTime())) return void this.limits.reject(client, "invalid_message", "/at: expected an ISO 8601 time or epoch milliseconds");
    const fix = { lat: msg.lat, lng: msg.lng, at, ...(msg.heading !== undefined ? { heading: msg.heading } : {}), ...(msg.speedMps !== undefined ? { speedMps: msg.speedMps } : {}) };
    const verdict = this.deps.positions.report(client.principal.id, fix);
    if (verdict === "stale") client.sendError("stale_location", "a newer fix is already known; this one was dropped");
    else if (verdict === "future") client.sendError("future_location", `fix time is more than ${this.deps.positions.maxFutureMs / 1000} s ahead of server time; dropped`);
  }

  /** The orders local clients follow on order topics. */
  /** Restaurant and courier topics local clients follow now. */
  private subscribedFeeds(): Set<string> {
    const feeds = new Set<string>();
    for (const client of this.clients.values()) {
      for (const topic of client.subscribed) if (parseTopic(topic)?.kind !== "order") feeds.add(topic);
    }
    return feeds;
  }

  private subscribedOrders(): Set<string> {
    const orders = new Set<string>();
    for (const client of this.clients.values()) {
      for (const topic of client.subscribed) {
        const parsed = parseTopic(topic);
        if (parsed?.kind === "order") orders.add(parsed.id);
      }
    }
    return orders;
  }

  private failed(client: Client, topic: string | undefined, err: unknown): void {
    this.log.error("websocket message failed", { principalId: client.principal.id, topic, err: errorField(err) });
    client.sendError("unavailable", "the server could not handle this message now; retry", topic);
  }

  private closeSlowConsumers(): void {
    for (const client of this.clients.values()) client.closeIfSlow();
  }
}

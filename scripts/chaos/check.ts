// The chaos run's verdict: pure functions over what the server holds at the end (every order
// with its history) and what the load saw during the run (acknowledged writes, WebSocket
// frames, offers). No I/O, so test/chaos/check.test.ts can feed it broken histories.

import { transition } from "xstate";
import {
  dispatchViewOf,
  initialOrderSnapshot,
  isVisibleTransition,
  orderMachine,
  statusOf,
  dispatchStateOf,
  type OrderEvent,
  type OrderSnapshot,
} from "../../src/modules/orders/machine";
import type { OrderModel } from "../../src/modules/orders/model";

export type Order = OrderModel.order;
export type HistoryEntry = OrderModel.historyEntry;
type Actor = OrderModel.actor;

/** A 2xx answer the load received for a write. */
export type Ack =
  | { kind: "place" | "patch" | "claim" | "accept"; orderId: string; by: Actor; version: number; status: OrderModel.status; courierId: string | null }
  /** 204 to an offer decline: no body, so no version. */
  | { kind: "decline"; orderId: string; by: Actor };

/** One logical subscriber of one order topic, across the connections it resumed on. */
export type Watch = {
  orderId: string;
  watcher: string;
  /** The `since` of its first subscribe: it must get every history entry after it. */
  firstSeq: number;
  /** Times it subscribed again with `since` on a new connection. */
  resumes: number;
  received: Array<{ seq: number; status: string; event: string }>;
  /** What happened to it, for a failure report (subscribes, connections, frames; wall-clock times). */
  trace?: string[];
  /** When the load stopped watching (epoch ms): entries committed from UNTIL_GRACE_MS before it on are not required. */
  untilMs?: number;
};

/** Changes committed this close to the end of watching may still be on their way when the sockets close. */
const UNTIL_GRACE_MS = 2_000;

function requiredBy(until: number | undefined): (e: { at: string }) => boolean {
  return (e) => until === undefined || Date.parse(e.at) < until - UNTIL_GRACE_MS;
}

/**
 * One watcher of a restaurant's or a courier's topic (many orders), across the connections it
 * resumed on (each resume subscribes with `since` = a time a little before the last event it got).
 */
export type FeedWatch = {
  topic: string;
  kind: "restaurant" | "courier";
  /** The restaurant's or courier's id. */
  id: string;
  /** When it first subscribed (epoch ms): every change at or after it must reach it. */
  fromMs: number;
  resumes: number;
  received: Array<{ orderId: string; seq: number; status: string; event: string }>;
  trace?: string[];
  untilMs?: number;
};

/** Something the load saw happen to an order: `server` when the server was at fault (a refused legal move, no answer). */
export type OrderNote = { at: string; cause: "server" | "client"; text: string };

/** An order still open after the drain, with its last state and why. */
export type StuckOrder = { orderId: string; state: string; reason: string; serverCaused: boolean };

/** An offer frame a courier received (`expiresAt` in epoch ms). */
export type SeenOffer = { orderId: string; courierId: string; expiresAtMs: number };

export type CheckConfig = {
  acceptTimeoutMs: number;
  offerTtlMs: number;
  courierMaxActive: number;
};

export type Violation = { kind: ViolationKind; orderId?: string; detail: string };

export type ViolationKind =
  | "history-seq"
  | "illegal-step"
  | "replay-mismatch"
  | "order-missing"
  | "ack-missing"
  | "ws-stream"
  | "timer-twice"
  | "timer-early"
  | "timer-overdue"
  | "courier-limit"
  /** A restaurant or courier topic watcher missed, repeated out of order or reordered an order's changes. */
  | "feed-stream"
  /** An order left open at the end of the drain for a reason the server caused. */
  | "stuck-order"
  /** A server instance that did not come back after Redis or the engine did. */
  | "no-reconnect";

export type CheckInput = {
  orders: Order[];
  /** Restaurant id → its owner's user id (the machine's guards read it). */
  owners: Map<string, string>;
  acks: Ack[];
  watches: Watch[];
  offers: SeenOffer[];
  /** Orders still holding a timer well past its due time when the run ended (read from the database). */
  overdueTimers?: Array<{ orderId: string; kind: string; dueAt: string }>;
  /** Restaurant and courier topic watchers. */
  feeds?: FeedWatch[];
  /** What the load noted per order (refusals, requests given up), to explain orders left open. */
  notes?: Map<string, OrderNote[]>;
  /** Couriers of the load carrying nothing when the drain ended (none: open unassigned orders are the load's excess). */
  idleCouriersAtEnd?: number;
  config: CheckConfig;
};

export type CheckResult = {
  violations: Violation[];
  orders: number;
  /** History entries after `placed`: every committed visible change. */
  transitions: number;
  timersFired: number;
  acksChecked: number;
  watchesChecked: number;
  feedsChecked: number;
  /** Every order left open, with its last state and why (server-caused ones are also violations). */
  stuck: StuckOrder[];
};

const FINAL = new Set<string>(["delivered", "cancelled", "rejected"]);

/** Events that take only who makes them (everything the API and the simple timers send). */
const PLAIN_EVENTS = new Set<string>([
  "ACCEPT",
  "REJECT",
  "START_PREPARING",
  "MARK_READY",
  "PICK_UP",
  "DELIVER",
  "CANCEL",
  "ACCEPT_TIMEOUT",
  "ASSIGN_COURIER",
  "OFFER_ACCEPT",
  "OFFER_DECLINE",
]);

/** The event PATCH {status} sends, to match an acknowledged PATCH with its history entry. */
const PATCH_EVENT: Record<string, string> = {
  accepted: "ACCEPT",
  rejected: "REJECT",
  preparing: "START_PREPARING",
  ready_for_pickup: "MARK_READY",
  picked_up: "PICK_UP",
  delivered: "DELIVER",
  cancelled: "CANCEL",
};

function where(snapshot: OrderSnapshot): string {
  return `${statusOf(snapshot)}/${dispatchStateOf(snapshot)}`;
}

/**
 * The courier an OFFER entry went to. History entries do not name it; the courier who answers
 * it (OFFER_ACCEPT / OFFER_DECLINE) does, so look ahead to the entry that ends this offer.
 */
function offeredCourier(history: HistoryEntry[], from: number): string {
  for (let j = from + 1; j < history.length; j++) {
    const e = history[j];
    if (e.event === "OFFER_ACCEPT" || e.event === "OFFER_DECLINE") return e.by.id;
    if (e.event === "OFFER" || e.event === "OFFER_EXPIRE" || e.event === "ASSIGN_COURIER" || FINAL.has(e.status)) break;
  }
  return "nobody-answered";
}

/**
 * Replays one order's history through the real machine (src/modules/orders/machine.ts).
 * Seqs must run 1..version; each entry must be an event the machine accepts from where the
 * previous ones led, by the actor the entry names, landing on the entry's status, and visible
 * (only visible transitions leave history). Invisible steps (NO_COURIER, DISPATCH_RETRY) leave
 * no entry by design; skipping them keeps the replay in `searching`, which accepts the same
 * visible events as `waiting` after its retry. The end state must match the order as served.
 */
export function replayOrder(order: Order, ownerId: string | undefined, config: CheckConfig): Violation[] {
  const out: Violation[] = [];
  const v = (kind: ViolationKind, detail: string) => out.push({ kind, orderId: order.id, detail });
  const h = order.history;
  for (let i = 0; i < h.length; i++) {
    if (h[i].seq !== i + 1) {
      v("history-seq", `history[${i}] has seq ${h[i].seq}, expected ${i + 1} (seqs: ${h.map((e) => e.seq).join(",")})`);
      return out;
    }
  }
  if (h.length !== order.version) v("history-seq", `version ${order.version} but ${h.length} history entries`);
  if (h.length === 0 || h[0].status !== "placed" || h[0].event !== "PLACE") {
    v("illegal-step", `history does not start with PLACE/placed: ${JSON.stringify(h[0])}`);
    return out;
  }
  if (h[h.length - 1].status !== order.status) v("history-seq", `status ${order.status} but the last entry says ${h[h.length - 1].status}`);
  if (ownerId === undefined) {
    v("replay-mismatch", `unknown restaurant ${order.restaurantId}`);
    return out;
  }

  const placedAt = Date.parse(h[0].at);
  let snapshot = initialOrderSnapshot({
    customerId: order.customerId,
    restaurantOwnerId: ownerId,
    courierId: null,
    acceptBy: placedAt + config.acceptTimeoutMs,
  });
  for (let i = 1; i < h.length; i++) {
    const e = h[i];
    const at = Date.parse(e.at);
    const actor: Actor = { role: e.by.role, id: e.by.id };
    const ctx = snapshot.context.dispatch;
    let event: OrderEvent;
    if (PLAIN_EVENTS.has(e.event)) event = { type: e.event as "ACCEPT", actor, at };
    else if (e.event === "OFFER")
      event = { type: "OFFER", actor, at, searchId: ctx.searchId, courierId: offeredCourier(h, i), expiresAt: at + 1, distanceMeters: 0 };
    else if (e.event === "OFFER_EXPIRE") event = { type: "OFFER_EXPIRE", actor, at, attempt: ctx.offer?.attempt ?? -1 };
    else if (e.event === "NO_COURIER") event = { type: "NO_COURIER", actor, at, searchId: ctx.searchId, retryAt: at };
    else if (e.event === "DISPATCH_RETRY") event = { type: "DISPATCH_RETRY", actor, at, searchId: ctx.searchId };
    else {
      v("illegal-step", `seq ${e.seq}: unknown event ${e.event}`);
      return out;
    }
    if (!snapshot.can(event)) {
      v("illegal-step", `seq ${e.seq}: ${e.event} by ${actor.role}:${actor.id} is not allowed from ${where(snapshot)} (history: ${h.map((x) => x.event).join(" → ")})`);
      return out;
    }
    const [next] = transition(orderMachine, snapshot, event);
    if (statusOf(next) !== e.status) {
      v("illegal-step", `seq ${e.seq}: ${e.event} leads to ${statusOf(next)}, the entry says ${e.status}`);
      return out;
    }
    if (!isVisibleTransition(snapshot, next)) v("illegal-step", `seq ${e.seq}: ${e.event} changes nothing visible, yet it has a history entry`);
    snapshot = next;
  }
  if (snapshot.context.courierId !== order.courierId) v("replay-mismatch", `courier ${order.courierId} but the replay assigns ${snapshot.context.courierId}`);
  const view = dispatchViewOf(snapshot);
  if (order.dispatch && (order.dispatch.state !== view.state || order.dispatch.attempts !== view.attempts)) {
    v("replay-mismatch", `dispatch ${JSON.stringify(order.dispatch)} but the replay gives ${JSON.stringify(view)}`);
  }
  return out;
}

/** Each timer fires at most once and never before it is due. */
export function checkTimers(order: Order, offers: SeenOffer[], config: CheckConfig): { violations: Violation[]; fired: number } {
  const out: Violation[] = [];
  const h = order.history;
  const timerEntries = h.filter((e) => e.by.role === "system" && e.by.id === "timer");
  const timeouts = h.filter((e) => e.event === "ACCEPT_TIMEOUT");
  if (timeouts.length > 1) out.push({ kind: "timer-twice", orderId: order.id, detail: `ACCEPT_TIMEOUT ${timeouts.length} times (seqs ${timeouts.map((e) => e.seq).join(",")})` });
  const due = Date.parse(h[0]?.at ?? order.createdAt) + config.acceptTimeoutMs;
  for (const t of timeouts) {
    if (Date.parse(t.at) < due) out.push({ kind: "timer-early", orderId: order.id, detail: `ACCEPT_TIMEOUT at ${t.at}, due ${new Date(due).toISOString()}` });
  }
  // Each OFFER_EXPIRE belongs to the OFFER before it; two for one offer is a timer fired twice.
  // The offer frame of OFFER k was decided (expiresAt - TTL) after OFFER k-1 was committed and
  // before OFFER k was: that is how a frame is matched to its entry.
  let prevOfferAt = Number.NEGATIVE_INFINITY;
  let offerAt: number | null = null;
  let expiredThisOffer = false;
  const framesOfOrder = offers.filter((o) => o.orderId === order.id);
  for (const e of h) {
    if (e.event === "OFFER") {
      if (offerAt !== null) prevOfferAt = offerAt;
      offerAt = Date.parse(e.at);
      expiredThisOffer = false;
    } else if (e.event === "OFFER_EXPIRE") {
      if (offerAt === null || expiredThisOffer) {
        out.push({ kind: "timer-twice", orderId: order.id, detail: `OFFER_EXPIRE at seq ${e.seq} has no open offer of its own` });
        continue;
      }
      expiredThisOffer = true;
      const decidedAfter = prevOfferAt;
      const decidedBy = offerAt;
      const told = framesOfOrder.filter((o) => o.expiresAtMs - config.offerTtlMs > decidedAfter && o.expiresAtMs - config.offerTtlMs <= decidedBy);
      for (const frame of told) {
        if (Date.parse(e.at) < frame.expiresAtMs) {
          out.push({ kind: "timer-early", orderId: order.id, detail: `OFFER_EXPIRE at ${e.at}, the offer to ${frame.courierId} said ${new Date(frame.expiresAtMs).toISOString()}` });
        }
      }
    }
  }
  return { violations: out, fired: timerEntries.length };
}

/**
 * No courier ever holds more than COURIER_MAX_ACTIVE orders: from each order's history, the
 * span during which its courier held it (assignment → final entry), swept per courier.
 */
export function checkCourierLimit(orders: Order[], maxActive: number): Violation[] {
  type Edge = { at: number; delta: 1 | -1; orderId: string };
  const byCourier = new Map<string, Edge[]>();
  for (const order of orders) {
    const assigned = order.history.find((e) => e.event === "ASSIGN_COURIER" || e.event === "OFFER_ACCEPT");
    if (!assigned) continue;
    const courierId = assigned.by.id;
    const end = order.history.find((e) => e.seq > assigned.seq && FINAL.has(e.status));
    const edges = byCourier.get(courierId) ?? [];
    edges.push({ at: Date.parse(assigned.at), delta: 1, orderId: order.id });
    if (end) edges.push({ at: Date.parse(end.at), delta: -1, orderId: order.id });
    byCourier.set(courierId, edges);
  }
  const out: Violation[] = [];
  for (const [courierId, edges] of byCourier) {
    // At the same millisecond, a release comes before an assignment (one client did them in turn).
    edges.sort((a, b) => a.at - b.at || a.delta - b.delta);
    let held = 0;
    const holding = new Set<string>();
    for (const edge of edges) {
      held += edge.delta;
      if (edge.delta === 1) holding.add(edge.orderId);
      else holding.delete(edge.orderId);
      if (held > maxActive) {
        out.push({ kind: "courier-limit", detail: `courier ${courierId} held ${held} orders at ${new Date(edge.at).toISOString()}: ${[...holding].join(", ")}` });
        break;
      }
    }
  }
  return out;
}

/** Every acknowledged write is in the history, as acknowledged. */
export function checkAcks(byId: Map<string, Order>, acks: Ack[]): Violation[] {
  const out: Violation[] = [];
  for (const ack of acks) {
    const order = byId.get(ack.orderId);
    if (!order) {
      out.push({ kind: "order-missing", orderId: ack.orderId, detail: `${ack.kind} by ${ack.by.role}:${ack.by.id} was acknowledged, but the order does not exist` });
      continue;
    }
    if (ack.kind === "decline") {
      if (!order.history.some((e) => e.event === "OFFER_DECLINE" && e.by.id === ack.by.id)) {
        out.push({ kind: "ack-missing", orderId: ack.orderId, detail: `decline by ${ack.by.id} acknowledged (204), no OFFER_DECLINE by it in history` });
      }
      continue;
    }
    const entry = order.history[ack.version - 1];
    if (!entry || entry.seq !== ack.version || entry.status !== ack.status) {
      out.push({ kind: "ack-missing", orderId: ack.orderId, detail: `${ack.kind} acknowledged at version ${ack.version} (${ack.status}); history has ${entry ? `${entry.seq}/${entry.status}` : "no such entry"}` });
      continue;
    }
    if (ack.kind === "patch") {
      // A 200 to PATCH always commits a new entry by the caller (a repeat of the same move is a 409).
      if (entry.by.id !== ack.by.id || entry.event !== PATCH_EVENT[ack.status]) {
        out.push({ kind: "ack-missing", orderId: ack.orderId, detail: `PATCH to ${ack.status} acknowledged at v${ack.version} by ${ack.by.id}; entry is ${entry.event} by ${entry.by.id}` });
      }
    } else if (ack.kind === "claim" || ack.kind === "accept") {
      const event = ack.kind === "claim" ? "ASSIGN_COURIER" : "OFFER_ACCEPT";
      const mine = order.history.some((e) => e.event === event && e.by.id === ack.by.id && e.seq <= ack.version);
      if (ack.courierId !== ack.by.id || !mine) {
        out.push({ kind: "ack-missing", orderId: ack.orderId, detail: `${ack.kind} by ${ack.by.id} acknowledged (courier ${ack.courierId}), no ${event} by it up to v${ack.version}` });
      }
    }
  }
  return out;
}

/** What a subscriber got must be exactly the history's entries after its first seq: in order, no gap, no duplicate. */
export function checkWatch(order: Order | undefined, watch: Watch): Violation[] {
  if (!order) return [{ kind: "order-missing", orderId: watch.orderId, detail: `watched by ${watch.watcher}, but the order does not exist` }];
  const expected = order.history.filter((e) => e.seq > watch.firstSeq);
  const got = watch.received;
  const v = (detail: string): Violation[] => [
    {
      kind: "ws-stream",
      orderId: order.id,
      detail: `${watch.watcher} (since ${watch.firstSeq}, ${watch.resumes} resumes): ${detail}; got seqs [${got.map((g) => g.seq).join(",")}], history ${watch.firstSeq + 1}..${order.version}`,
    },
  ];
  for (let i = 0; i < got.length; i++) {
    const want = expected[i];
    const g = got[i];
    if (!want) return v(`extra event seq ${g.seq} past the end of history`);
    if (g.seq !== want.seq) {
      const seen = got.slice(0, i).some((x) => x.seq === g.seq);
      return v(seen ? `duplicate seq ${g.seq}` : g.seq > want.seq ? `gap: seq ${want.seq} missing before ${g.seq}` : `out of order: seq ${g.seq} after ${got[i - 1]?.seq}`);
    }
    if (g.status !== want.status || g.event !== want.event) return v(`seq ${g.seq} says ${g.event}/${g.status}, history ${want.event}/${want.status}`);
  }
  const required = expected.filter(requiredBy(watch.untilMs));
  if (got.length < required.length) return v(`missing the last ${required.length - got.length} event(s) from seq ${required[got.length].seq}`);
  return [];
}

/** The entries of `order` a feed watcher must get: a restaurant's, all from its first subscribe; a courier's, from its assignment on. */
function expectedOnFeed(order: Order, watch: FeedWatch): HistoryEntry[] {
  if (watch.kind === "restaurant") return order.restaurantId === watch.id ? order.history.filter((e) => Date.parse(e.at) >= watch.fromMs) : [];
  const assigned = order.history.find((e) => (e.event === "ASSIGN_COURIER" || e.event === "OFFER_ACCEPT") && e.by.id === watch.id);
  if (!assigned || order.courierId !== watch.id) return [];
  return order.history.filter((e) => e.seq >= assigned.seq && Date.parse(e.at) >= watch.fromMs);
}

/**
 * A restaurant or courier topic watcher got every change of each of its orders, in seq order.
 * A repeat of a pair it already has is allowed (resuming by time replays a few seconds twice,
 * as documented: clients skip pairs they have); so are a courier's replayed entries from
 * before its assignment. A missing entry, a lower seq after a higher one, or an extra one is not.
 */
export function checkFeed(orders: Order[], watch: FeedWatch): Violation[] {
  const out: Violation[] = [];
  const byOrder = new Map<string, Array<{ seq: number; status: string; event: string }>>();
  for (const r of watch.received) {
    const list = byOrder.get(r.orderId) ?? [];
    if (!list.some((x) => x.seq === r.seq)) list.push(r);
    byOrder.set(r.orderId, list);
  }
  const known = new Set(orders.map((o) => o.id));
  for (const order of orders) {
    const want = expectedOnFeed(order, watch);
    let got = byOrder.get(order.id) ?? [];
    if (watch.kind === "courier" && want.length) got = got.filter((g) => g.seq >= want[0].seq);
    if (want.length === 0 && got.length === 0) continue;
    const v = (detail: string) =>
      out.push({ kind: "feed-stream", orderId: order.id, detail: `${watch.topic} (${watch.resumes} resumes): ${detail}; got seqs [${got.map((g) => g.seq).join(",")}], expected [${want.map((e) => e.seq).join(",")}]` });
    const firstBad = got.findIndex((g, i) => i > 0 && g.seq <= got[i - 1].seq);
    if (firstBad > 0) {
      v(`seq ${got[firstBad].seq} after ${got[firstBad - 1].seq}`);
      continue;
    }
    const wanted = new Set(want.map((e) => e.seq));
    const extra = got.find((g) => !wanted.has(g.seq));
    if (extra) {
      v(`seq ${extra.seq} is not an event of this topic`);
      continue;
    }
    const have = new Set(got.map((g) => g.seq));
    const missing = want.filter(requiredBy(watch.untilMs)).filter((e) => !have.has(e.seq));
    if (missing.length) {
      v(`missing ${missing.map((e) => `${e.seq} ${e.event}`).join(", ")}`);
      continue;
    }
    for (const g of got) {
      const e = want.find((x) => x.seq === g.seq)!;
      if (e.status !== g.status || e.event !== g.event) {
        v(`seq ${g.seq} says ${g.event}/${g.status}, history ${e.event}/${e.status}`);
        break;
      }
    }
  }
  for (const orderId of byOrder.keys()) {
    if (!known.has(orderId)) out.push({ kind: "order-missing", orderId, detail: `${watch.topic} got events of it, but the order does not exist` });
  }
  return out;
}

/**
 * Every order still open at the end of the drain, with its last state and why. The server
 * caused it when the load noted a server fault on it (a legal move refused, a request nobody
 * answered), when it is still placed (the accept timeout should have ended it), when it has no
 * courier (dispatch should have found one of the idle couriers), or when nothing explains it.
 * A client-side note alone (an actor of the load that stopped) makes it the load's.
 */
export function checkStuck(orders: Order[], notes: Map<string, OrderNote[]>, idleCouriersAtEnd = 1): StuckOrder[] {
  const out: StuckOrder[] = [];
  for (const order of orders) {
    if (FINAL.has(order.status)) continue;
    const last = order.history.at(-1);
    const dispatch = order.dispatch ? `dispatch ${order.dispatch.state} (${order.dispatch.attempts} offers)` : "dispatch ?";
    const state = `${order.status}, ${dispatch}, courier ${order.courierId ?? "none"}, last ${last ? `${last.event} by ${last.by.role}:${last.by.id} at ${last.at}` : "?"}`;
    const mine = notes.get(order.id) ?? [];
    const server = mine.filter((n) => n.cause === "server");
    const client = mine.filter((n) => n.cause === "client");
    const text = (ns: OrderNote[]) => ns.map((n) => `${n.at} ${n.text}`).join("; ");
    let reason: string;
    let serverCaused = true;
    if (server.length) reason = text(server);
    else if (order.status === "placed") reason = "still placed: the accept timeout never ended it";
    else if (order.courierId === null && idleCouriersAtEnd === 0) {
      reason = "no courier was assigned: every courier of the load was still busy when the drain ended (more orders than couriers could carry)";
      serverCaused = false;
    } else if (order.courierId === null) reason = `no courier was assigned although ${idleCouriersAtEnd} courier(s) were idle at the end (dispatch stalled)`;
    else if (client.length) {
      reason = text(client);
      serverCaused = false;
    } else reason = "the load recorded nothing that explains it";
    out.push({ orderId: order.id, state, reason, serverCaused });
  }
  return out;
}

export function check(input: CheckInput): CheckResult {
  const violations: Violation[] = [];
  const byId = new Map(input.orders.map((o) => [o.id, o]));
  let transitions = 0;
  let timersFired = 0;
  for (const order of input.orders) {
    transitions += Math.max(0, order.history.length - 1);
    violations.push(...replayOrder(order, input.owners.get(order.restaurantId), input.config));
    const timers = checkTimers(order, input.offers, input.config);
    violations.push(...timers.violations);
    timersFired += timers.fired;
  }
  violations.push(...checkAcks(byId, input.acks));
  for (const watch of input.watches) violations.push(...checkWatch(byId.get(watch.orderId), watch));
  violations.push(...checkCourierLimit(input.orders, input.config.courierMaxActive));
  for (const t of input.overdueTimers ?? []) {
    violations.push({ kind: "timer-overdue", orderId: t.orderId, detail: `${t.kind} due ${t.dueAt} never fired` });
  }
  for (const feed of input.feeds ?? []) violations.push(...checkFeed(input.orders, feed));
  const stuck = checkStuck(input.orders, input.notes ?? new Map(), input.idleCouriersAtEnd);
  for (const s of stuck) if (s.serverCaused) violations.push({ kind: "stuck-order", orderId: s.orderId, detail: `left ${s.state}: ${s.reason}` });
  return {
    violations,
    orders: input.orders.length,
    transitions,
    timersFired,
    acksChecked: input.acks.length,
    watchesChecked: input.watches.length,
    feedsChecked: input.feeds?.length ?? 0,
    stuck,
  };
}

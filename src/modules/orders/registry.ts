import { createActor, transition, type Actor } from "xstate";
import { annotate, inSpan } from "../../tracing";
import type { Clock } from "../../clock";
import { Conflict, IllegalTransition, NotFound, PreconditionFailed, ServiceUnavailable } from "../../errors";
import { isFinalStatus } from "../../vocabulary";
import { errorField, type Logger } from "../../log";
import type { EventBus } from "../../events/bus";
import { latestChange } from "../../events/change";
import {
  allowedTargets,
  dispatchViewOf,
  isVisibleTransition,
  orderMachine,
  persistSnapshot,
  restorableSnapshot,
  statusOf,
  timersOf,
  type OrderEvent,
  type OrderSnapshot,
  type TimerTiming,
} from "./machine";
import type { OrderModel } from "./model";
import type { EtaDates, OrderRepository, StoredOrder } from "./repository";
import type { Metrics } from "../../metrics";

export type OrderCommand = {
  event: OrderEvent;
  reason?: string;
  /** The version the caller last saw (If-Match); the change applies only on that version. */
  ifMatch?: number;
  /**
   * The order as the caller read it for this request (the party check): with no live actor,
   * the actor starts from it instead of reading the order again. Treated like a cached actor:
   * if it is behind, the compare-and-set misses (or a refusal reloads once) and the order is
   * read then.
   */
  loaded?: StoredOrder;
};

/** A committed transition, for effects that follow it on the committing instance (dispatch). */
export type CommittedTransition = {
  orderId: string;
  prev: OrderSnapshot;
  next: OrderSnapshot;
  stored: StoredOrder;
  event: OrderEvent;
};

export type CommitListener = (committed: CommittedTransition) => void;

/**
 * COURIER_MAX_ACTIVE across instances (modules/couriers/capacity.ts implements it): a courier's
 * slot for an order is reserved before an assignment is committed, and released when the order
 * ends or the assignment is not committed. `reserve` throws a 409 when the courier is full.
 */
export type CourierCapacityPort = {
  /** "taken" when this call took the slot, "held" when it was already there (another attempt's, or a bundle's). */
  reserve(courierId: string, orderIds: string[]): Promise<"taken" | "held">;
  release(courierId: string, orderIds: string[]): Promise<void>;
};

/** A held slot is renewed before a compare-and-set attempt when older than this (the grace to free one is 30 s). */
const SLOT_RENEW_MS = 5_000;

const DEFAULT_TIMING: TimerTiming = { searchTimeoutMs: 30_000 };
const DEFAULT_CONTENTION_RETRY_MS = 3_000;

/**
 * Pause before the next attempt after `lostRaces` lost compare-and-sets: full jitter on an
 * exponential step (2, 4, 8 … up to 64 ms), never past the time left.
 */
export function contentionBackoffMs(lostRaces: number, leftMs: number): number {
  const ceiling = Math.min(64, 2 ** Math.min(lostRaces, 6));
  return Math.max(0, Math.min(leftMs, Math.random() * ceiling));
}

/**
 * The courier slot one move reserved (capacity): whether this move took it (only then may it
 * give it back) and whether its assignment was committed.
 */
type HeldSlot = { courierId: string | null; atMs: number; took: boolean; committed: boolean };

type LiveOrder = {
  actor: Actor<typeof orderMachine>;
  stored: StoredOrder;
  lastUsedMs: number;
};

export type RegistryDeps = {
  repo: OrderRepository;
  bus: EventBus;
  clock: Clock;
  log: Logger;
  instanceId: string;
  idleSeconds: number;
  /** Durations the machine's timers need (default: a 30 s search timeout). */
  timing?: TimerTiming;
  /**
   * The ETA to write with a transition (so it is committed and published with it); undefined
   * keeps the stored one. Runs inside the order's queue, before the compare-and-set.
   */
  estimate?: (draft: { stored: StoredOrder; next: OrderSnapshot; at: Date }) => Promise<EtaDates | null | undefined>;
  /** Times each event (queue wait included) for /metrics. */
  metrics?: Pick<Metrics, "orderTransitionDuration">;
  /** Courier slots (COURIER_MAX_ACTIVE); without it assignments are not limited here. */
  capacity?: CourierCapacityPort;
  /**
   * How long a move that keeps losing the compare-and-set (other instances' dispatch and timer
   * writes, other callers) is retried before it is answered 503 (default 3000 ms).
   */
  contentionRetryMs?: number;
  /** Test seam: runs between the commit of a visible change and its publish; a promise holds the publish (and the order's queue). */
  beforePublish?: (committed: { orderId: string; seq: number }) => Promise<void> | undefined;
};

/**
 * One live actor per active order. Events for one order run one at a time (a promise queue per
 * order); each accepted event is committed with a compare-and-set on `version` (which also
 * appends the history entry) and only then applied to the live actor and published.
 */
export class OrderActorRegistry {
  private readonly live = new Map<string, LiveOrder>();
  private readonly queues = new Map<string, Promise<void>>();
  private readonly commitListeners = new Set<CommitListener>();
  private sweeper: ReturnType<typeof setInterval> | null = null;
  private unsubscribe: (() => void) | null = null;
  private stopped = false;

  constructor(private readonly deps: RegistryDeps) {}

  /** Starts the idle sweep and listens for changes committed by other instances. */
  start(): void {
    const everyMs = Math.max(1, Math.min(this.deps.idleSeconds, 30)) * 1000;
    this.sweeper = setInterval(() => this.dropIdle(), everyMs);
    this.sweeper.unref?.();
    // A change another instance committed makes our cached actor stale (the relay delivers it here).
    this.unsubscribe = this.deps.bus.onChange((change) => {
      if (change.origin !== this.deps.instanceId) this.invalidate(change.orderId, change.seq);
    });
  }

  /** Applies a move to an order: 200 order, or 404 / 409 (with `allowed`) / 412. */
  send(orderId: string, command: OrderCommand): Promise<OrderModel.order> {
    if (this.stopped) return Promise.reject(new ServiceUnavailable("the server is shutting down"));
    const run = this.enqueue(orderId, () => this.apply(orderId, command));
    const timing = this.deps.metrics?.orderTransitionDuration;
    if (timing) {
      const end = timing.startTimer({ event: command.event.type });
      run.then(
        () => end({ outcome: "committed" }),
        (err: unknown) => end({ outcome: err instanceof Error ? outcomeOf(err) : "error" }),
      );
    }
    return run;
  }

  /** Listens for transitions this registry commits (not other instances'); returns an unsubscribe. */
  onCommit(listener: CommitListener): () => void {
    this.commitListeners.add(listener);
    return () => this.commitListeners.delete(listener);
  }

  /** The order and its machine state as this registry knows them (loaded if not cached), through the order's queue. */
  inspect(orderId: string): Promise<{ stored: StoredOrder; snapshot: OrderSnapshot }> {
    return this.enqueue(orderId, async () => {
      const live = this.live.get(orderId) ?? (await this.load(orderId));
      const result = { stored: live.stored, snapshot: live.actor.getSnapshot() };
      this.forgetIfFinal(orderId, live);
      return result;
    });
  }

  /** The statuses `actor` may move the order to now (read through the same queue as moves). */
  allowedTargets(orderId: string, actor: OrderEvent["actor"]): Promise<OrderModel.status[]> {
    return this.enqueue(orderId, async () => {
      const live = this.live.get(orderId) ?? (await this.load(orderId));
      const allowed = allowedTargets(live.actor.getSnapshot(), actor);
      this.forgetIfFinal(orderId, live);
      return allowed;
    });
  }

  /**
   * Drops the cached actor of an order when it may be older than `seenVersion` (or always,
   * without one), so the next event reloads it from the database. Queued behind the order's
   * in-flight events, so it never races them.
   */
  invalidate(orderId: string, seenVersion?: number): void {
    if (!this.live.has(orderId)) return;
    void this.enqueue(orderId, async () => {
      const live = this.live.get(orderId);
      if (live && (seenVersion === undefined || live.stored.order.version < seenVersion)) this.drop(orderId);
    });
  }

  /** The order as the live actor last committed or loaded it, if one is cached (may be behind other instances). */
  peek(orderId: string): StoredOrder | undefined {
    return this.live.get(orderId)?.stored;
  }

  /** Number of live actors (for tests and metrics). */
  get size(): number {
    return this.live.size;
  }

  /** Waits for in-flight events, then stops every actor. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.sweeper) clearInterval(this.sweeper);
    this.unsubscribe?.();
    await Promise.all([...this.queues.values()]);
    for (const orderId of [...this.live.keys()]) this.drop(orderId);
  }

  private enqueue<T>(orderId: string, work: () => Promise<T>): Promise<T> {
    const previous = this.queues.get(orderId) ?? Promise.resolve();
    const run = previous.then(work);
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    this.queues.set(orderId, tail);
    void tail.then(() => {
      if (this.queues.get(orderId) === tail) this.queues.delete(orderId);
    });
    return run;
  }

  private async apply(orderId: string, command: OrderCommand): Promise<OrderModel.order> {
    const slot: HeldSlot = { courierId: null, atMs: 0, took: false, committed: false };
    try {
      return await inSpan("order.transition", { "order.id": orderId }, () => this.decideAndCommit(orderId, command, slot));
    } finally {
      // A slot this move took for an assignment it did not commit goes back, unless the order is
      // the courier's anyway (the same courier's accept or claim won on another instance).
      if (slot.courierId !== null && slot.took && !slot.committed) await this.releaseUnlessHeld(slot.courierId, orderId);
    }
  }

  private async decideAndCommit(orderId: string, command: OrderCommand, slot: HeldSlot): Promise<OrderModel.order> {
    let live = this.live.get(orderId);
    let fresh = false;
    if (!live && command.loaded?.order.id === orderId) {
      live = this.restore(command.loaded);
      if (!isFinalStatus(live.stored.order.status)) this.live.set(orderId, live);
    } else if (!live) {
      live = await this.load(orderId);
      fresh = true;
    }
    // Set at the first lost compare-and-set: retries stop there and the caller gets 503.
    let giveUpAt: number | null = null;
    let lostRaces = 0;
    for (;;) {
      const at = this.deps.clock.now();
      live.lastUsedMs = at.getTime();
      // The machine reads event times (deadlines are times in its context), never a clock.
      const event = { ...command.event, at: at.getTime() } as OrderEvent;
      const current = live.stored.order;
      const snapshot = live.actor.getSnapshot();
      const mismatch = command.ifMatch !== undefined && command.ifMatch !== current.version;
      // Claiming an order one already holds is a retry, not a change.
      if (!mismatch && event.type === "ASSIGN_COURIER" && event.actor.role === "courier" && snapshot.context.courierId === event.actor.id) {
        if (slot.courierId === event.actor.id) slot.committed = true; // the courier holds it: the slot stays
        return current;
      }
      if (mismatch || !snapshot.can(event)) {
        // The cached actor may be behind another instance's write: reload once before refusing.
        if (!fresh) {
          live = await this.reload(orderId);
          fresh = true;
          continue;
        }
        this.forgetIfFinal(orderId, live);
        throw mismatch ? new PreconditionFailed(`If-Match is ${command.ifMatch} but the order is at version ${current.version}`, current.version) : this.refusal(live, event);
      }

      const [next] = transition(orderMachine, snapshot, event);
      // A courier gets this order: its slot first (one conditional write; 409 when it is full),
      // renewed before later attempts so no reconciliation takes it from an assignment in flight.
      const taker = snapshot.context.courierId === null ? next.context.courierId : null;
      const capacity = this.deps.capacity;
      if (capacity && taker !== null && (slot.courierId !== taker || Date.now() - slot.atMs > SLOT_RENEW_MS)) {
        const tookBefore = slot.took && slot.courierId === taker;
        if (slot.courierId !== null && slot.courierId !== taker && slot.took) await this.releaseUnlessHeld(slot.courierId, orderId);
        slot.courierId = null;
        const outcome = await capacity.reserve(taker, [orderId]);
        slot.took = outcome === "taken" || tookBefore;
        slot.courierId = taker;
        slot.atMs = Date.now();
        // Decide again with a time taken after the slot: the history never shows the assignment
        // before the courier's previous order ended.
        continue;
      }
      const visible = isVisibleTransition(snapshot, next);
      const eta = await this.estimate(live.stored, next, at);
      const committed = await this.deps.repo.commitTransition({
        id: orderId,
        expectedVersion: current.version,
        expectedRev: live.stored.rev,
        visible,
        status: statusOf(next),
        courierId: next.context.courierId,
        machine: persistSnapshot(next),
        event: event.type,
        at,
        by: event.actor,
        ...(command.reason !== undefined ? { reason: command.reason } : {}),
        dispatch: dispatchViewOf(next),
        timers: timersOf(next, this.deps.timing ?? DEFAULT_TIMING),
        ...(eta !== undefined ? { eta } : {}),
      });
      if (!committed) {
        // Another writer won the compare-and-set. Contention is no answer to a legal move: decide
        // it again against the order as now committed (a 409 or 412 comes from that, never from
        // losing), after a short randomized backoff so competing writers spread out.
        const nowMs = Date.now();
        giveUpAt ??= nowMs + (this.deps.contentionRetryMs ?? DEFAULT_CONTENTION_RETRY_MS);
        if (lostRaces > 0) {
          const pause = contentionBackoffMs(lostRaces, giveUpAt - nowMs);
          if (pause > 0) await Bun.sleep(pause);
        }
        lostRaces++;
        if (Date.now() >= giveUpAt || this.stopped) {
          this.drop(orderId);
          this.deps.log.warn("order move kept losing the compare-and-set; answering 503", { orderId, event: event.type, lostRaces });
          throw new ServiceUnavailable(`order ${orderId} is being changed by other writers; retry shortly`, 1);
        }
        live = await this.reload(orderId);
        fresh = true;
        continue;
      }

      annotate({ "order.from": current.status, "order.to": committed.order.status, "order.seq": committed.order.version, "order.event": event.type });
      // Committed: now the live actor takes the event (effects, if any, run after the commit).
      if (slot.courierId !== null && committed.order.courierId === slot.courierId) {
        slot.committed = true;
        // Another attempt took this slot; if it gave it back meanwhile (it lost and read the order
        // before this commit), take it again so the courier's count stays right.
        if (!slot.took) await this.ensureSlot(slot.courierId, orderId);
      }
      const carrier = snapshot.context.courierId;
      if (carrier !== null && isFinalStatus(committed.order.status)) await this.releaseSlot(carrier, orderId);
      live.actor.send(event);
      live.stored = committed;
      if (statusOf(live.actor.getSnapshot()) !== committed.order.status) {
        this.deps.log.error("live actor diverged from the committed order; reloading", { orderId, version: committed.order.version });
        live = this.restore(committed);
      }
      if (visible) {
        const held = this.deps.beforePublish?.({ orderId, seq: committed.order.version });
        if (held) await held;
        this.publish(committed.order);
      }
      this.notifyCommitted({ orderId, prev: snapshot, next: live.actor.getSnapshot(), stored: committed, event });
      if (isFinalStatus(committed.order.status)) this.drop(orderId);
      else this.live.set(orderId, live);
      return committed.order;
    }
  }

  private async ensureSlot(courierId: string, orderId: string): Promise<void> {
    try {
      await this.deps.capacity?.reserve(courierId, [orderId]);
    } catch (err) {
      this.deps.log.error("a committed assignment found no slot for its courier", { orderId, courierId, err: err instanceof Error ? err : String(err) });
    }
  }

  /** Frees the courier's slot of an order not assigned to it (read now); a held one stays. */
  private async releaseUnlessHeld(courierId: string, orderId: string): Promise<void> {
    try {
      const now = await this.deps.repo.findById(orderId);
      if (now && now.order.courierId === courierId && !isFinalStatus(now.order.status)) return;
    } catch {
      return; // unreadable: leave it to the reconciliation rather than free a slot that may be in use
    }
    await this.releaseSlot(courierId, orderId);
  }

  /** Frees a courier's slot; a failure is left to the next reconciliation (capacity.ts) rather than failing the move. */
  private async releaseSlot(courierId: string, orderId: string): Promise<void> {
    try {
      await this.deps.capacity?.release(courierId, [orderId]);
    } catch (err) {
      this.deps.log.warn("releasing a courier slot failed; the next reconciliation frees it", { orderId, courierId, err: errorField(err) });
    }
  }

  /** The ETA for the commit; a failure keeps the stored one rather than failing the move. */
  private async estimate(stored: StoredOrder, next: OrderSnapshot, at: Date): Promise<EtaDates | null | undefined> {
    if (!this.deps.estimate) return undefined;
    try {
      return await this.deps.estimate({ stored, next, at });
    } catch (err) {
      this.deps.log.warn("estimating an ETA failed; keeping the previous one", { orderId: stored.order.id, err: errorField(err) });
      return undefined;
    }
  }

  private notifyCommitted(committed: CommittedTransition): void {
    for (const listener of this.commitListeners) {
      try {
        listener(committed);
      } catch (err) {
        this.deps.log.error("commit listener failed", { orderId: committed.orderId, err: errorField(err) });
      }
    }
  }

  private refusal(live: LiveOrder, event: OrderEvent): Error {
    const { order } = live.stored;
    if (event.type === "ASSIGN_COURIER") {
      if (order.courierId !== null) return new Conflict(`order ${order.id} already has a courier`);
      return new Conflict(`order ${order.id} is ${order.status}; only accepted, preparing or ready_for_pickup orders can be claimed`);
    }
    const allowed = allowedTargets(live.actor.getSnapshot(), event.actor);
    return new IllegalTransition(
      `${event.actor.role} ${event.actor.id} may not make ${event.type} on a ${order.status} order` +
        (allowed.length ? ` (allowed: ${allowed.join(", ")})` : " (no move allowed now)"),
      allowed,
    );
  }

  private publish(order: OrderModel.order): void {
    const change = latestChange(order, this.deps.instanceId);
    try {
      this.deps.bus.publish(change);
    } catch (err) {
      // The change is committed; a failed announcement must not turn it into an error for the caller.
      this.deps.log.error("publishing an order change failed", { orderId: order.id, seq: change.seq, err: errorField(err) });
    }
  }

  private async load(orderId: string): Promise<LiveOrder> {
    const stored = await this.deps.repo.findById(orderId);
    if (!stored) throw new NotFound(`order ${orderId} not found`);
    const live = this.restore(stored);
    if (!isFinalStatus(stored.order.status)) this.live.set(orderId, live);
    return live;
  }

  private async reload(orderId: string): Promise<LiveOrder> {
    this.drop(orderId);
    return this.load(orderId);
  }

  private restore(stored: StoredOrder): LiveOrder {
    const { order } = stored;
    const fields = { status: order.status, customerId: order.customerId, restaurantOwnerId: stored.restaurantOwnerId, courierId: order.courierId };
    const input = { customerId: order.customerId, restaurantOwnerId: stored.restaurantOwnerId, courierId: order.courierId };
    // `input` is only read for a fresh actor; a snapshot, when given, wins.
    let actor = createActor(orderMachine, { snapshot: restorableSnapshot(stored.machine, fields), input }).start();
    const snap = actor.getSnapshot();
    if (statusOf(snap) !== order.status || snap.context.courierId !== order.courierId) {
      // The document's fields are the truth; a snapshot that disagrees is rebuilt from them.
      this.deps.log.warn("order snapshot disagrees with the order; rebuilding it", { orderId: order.id });
      actor.stop();
      actor = createActor(orderMachine, { snapshot: restorableSnapshot(null, fields), input }).start();
    }
    return { actor, stored, lastUsedMs: this.deps.clock.now().getTime() };
  }

  private forgetIfFinal(orderId: string, live: LiveOrder): void {
    if (isFinalStatus(live.stored.order.status)) {
      live.actor.stop();
      if (this.live.get(orderId) === live) this.live.delete(orderId);
    }
  }

  private drop(orderId: string): void {
    const live = this.live.get(orderId);
    if (!live) return;
    live.actor.stop();
    this.live.delete(orderId);
  }

  private dropIdle(): void {
    const cutoff = this.deps.clock.now().getTime() - this.deps.idleSeconds * 1000;
    for (const [orderId, live] of this.live) {
      if (live.lastUsedMs < cutoff && !this.queues.has(orderId)) this.drop(orderId);
    }
  }
}

/** A refused or failed event's metric label. */
function outcomeOf(err: Error): string {
  if (err instanceof IllegalTransition || err instanceof Conflict) return "refused";
  if (err instanceof PreconditionFailed) return "conflict";
  if (err instanceof ServiceUnavailable) return "unavailable";
  if (err instanceof NotFound) return "not_found";
  return "error";
}

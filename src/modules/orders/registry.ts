import { createActor, transition, type Actor } from "xstate";
import { annotate, inSpan } from "../../tracing";
import type { Clock } from "../../clock";
import { NotFound, PreconditionFailed, ServiceUnavailable } from "../../errors";
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
import { ContentionBudget, DEFAULT_CONTENTION_RETRY_MS } from "./contention";
import { CourierSlots, noSlot, type CourierCapacityPort, type HeldSlot } from "./courier-slots";
import { outcomeOf, refusal } from "./refusals";
import { SerialQueues } from "./serial-queues";

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

const DEFAULT_TIMING: TimerTiming = { searchTimeoutMs: 30_000 };

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
  private readonly queues = new SerialQueues();
  private readonly slots: CourierSlots;
  private readonly commitListeners = new Set<CommitListener>();
  private sweeper: ReturnType<typeof setInterval> | null = null;
  private unsubscribe: (() => void) | null = null;
  private stopped = false;

  constructor(private readonly deps: RegistryDeps) {
    this.slots = new CourierSlots(deps);
  }

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
        (err: unknown) => end({ outcome: outcomeOf(err) }),
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
    await this.queues.drained();
    for (const orderId of [...this.live.keys()]) this.drop(orderId);
  }

  private enqueue<T>(orderId: string, work: () => Promise<T>): Promise<T> {
    return this.queues.run(orderId, work);
  }

  private async apply(orderId: string, command: OrderCommand): Promise<OrderModel.order> {
    const slot = noSlot();
    try {
      return await inSpan("order.transition", { "order.id": orderId }, () => this.decideAndCommit(orderId, command, slot));
    } finally {
      await this.slots.settle(slot, orderId);
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
    // Starts at the first lost compare-and-set: when spent, the caller gets 503.
    const contention = new ContentionBudget(this.deps.contentionRetryMs ?? DEFAULT_CONTENTION_RETRY_MS);
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
        this.slots.keepHeld(slot, event.actor.id);
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
        throw mismatch ? new PreconditionFailed(`If-Match is ${command.ifMatch} but the order is at version ${current.version}`, current.version) : refusal(current, snapshot, event);
      }

      const [next] = transition(orderMachine, snapshot, event);
      // A courier gets this order: its slot first (one conditional write; 409 when it is full),
      // renewed before later attempts so no reconciliation takes it from an assignment in flight.
      const taker = snapshot.context.courierId === null ? next.context.courierId : null;
      if (taker !== null && this.slots.needsReservation(slot, taker)) {
        await this.slots.reserve(slot, taker, orderId);
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
        const inBudget = await contention.loseRace();
        if (!inBudget || this.stopped) {
          this.drop(orderId);
          this.deps.log.warn("order move kept losing the compare-and-set; answering 503", { orderId, event: event.type, lostRaces: contention.lostRaces });
          throw new ServiceUnavailable(`order ${orderId} is being changed by other writers; retry shortly`, 1);
        }
        live = await this.reload(orderId);
        fresh = true;
        continue;
      }

      annotate({ "order.from": current.status, "order.to": committed.order.status, "order.seq": committed.order.version, "order.event": event.type });
      // Committed: now the live actor takes the event (effects, if any, run after the commit).
      const final = isFinalStatus(committed.order.status);
      await this.slots.committed(slot, orderId, { courierId: committed.order.courierId, final }, snapshot.context.courierId);
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
      if (final) this.drop(orderId);
      else this.live.set(orderId, live);
      return committed.order;
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
      if (live.lastUsedMs < cutoff && !this.queues.busy(orderId)) this.drop(orderId);
    }
  }
}

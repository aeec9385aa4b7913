import type { Clock } from "../../clock";
import { errorField, type Logger } from "../../log";
import type { CourierModel } from "./model";

/** `O`: what the tracker learns of each order a courier carries (its id, or more). */
export type TrackerDeps<O = string> = {
  /** Stores the latest fix of each of these couriers in one write (a newer stored fix wins). */
  recordMany(positions: PositionWrite[]): Promise<void>;
  /** The orders the courier carries now (assigned and not final); kept in memory by the caller. */
  activeOrders(courierId: string): Promise<O[]>;
  /** Announces a fix to those orders' followers. */
  forward(courierId: string, fix: CourierModel.fix, orders: O[]): void;
  clock: Clock;
  log: Logger;
  /** At most one forwarded fix per courier per this many ms. */
  minIntervalMs: number;
  /** Fixes further than this ahead of server time are refused. */
  maxFutureMs: number;
  /** How often the couriers' latest fixes are written, all in one write. */
  flushMs: number;
};

export type PositionWrite = { courierId: string; fix: CourierModel.fix; seenAt: Date };

export type FixVerdict = "accepted" | "stale" | "future";

type CourierState = {
  /** Time of the newest fix accepted from this courier (forwarded or pending). */
  newestAt: number;
  lastForwardMs: number;
  pending: CourierModel.fix | null;
  timer: ReturnType<typeof setTimeout> | null;
  forwarding: boolean;
};

/**
 * Courier positions: refuses fixes older than the newest one seen (so a delayed packet cannot
 * move a courier back in time) and fixes from the future (so one bad clock cannot pin it
 * there), forwards at most one per interval per courier (fixes in between replace each other,
 * so the latest goes), from memory; and writes the latest fix of every courier that moved
 * every `flushMs`, in one write across couriers. A crash loses at most that interval of
 * positions; stop() writes what is pending.
 */
export class CourierLocationTracker<O = string> {
  private readonly couriers = new Map<string, CourierState>();
  /** Latest fix per courier not yet written. */
  private dirty = new Map<string, PositionWrite>();
  private persisting: Promise<void> | null = null;
  private readonly sweeper: ReturnType<typeof setInterval>;
  private readonly flusher: ReturnType<typeof setInterval>;
  private stopped = false;
  private writes = 0;
  private batches = 0;

  constructor(private readonly deps: TrackerDeps<O>) {
    this.sweeper = setInterval(() => this.forgetQuiet(), 30_000);
    this.sweeper.unref?.();
    this.flusher = setInterval(() => void this.persist(), deps.flushMs);
    this.flusher.unref?.();
  }

  report(courierId: string, fix: CourierModel.fix): FixVerdict {
    const at = fix.at.getTime();
    if (at - this.deps.clock.now().getTime() > this.deps.maxFutureMs) return "future";
    let state = this.couriers.get(courierId);
    if (!state) {
      state = { newestAt: Number.NEGATIVE_INFINITY, lastForwardMs: Number.NEGATIVE_INFINITY, pending: null, timer: null, forwarding: false };
      this.couriers.set(courierId, state);
    }
    if (at <= state.newestAt) return "stale";
    state.newestAt = at;
    state.pending = fix;
    this.schedule(courierId, state);
    return "accepted";
  }

  /** Positions written since start (for tests and metrics). */
  get writeCount(): number {
    return this.writes;
  }

  /** Writes (batches) since start. */
  get batchCount(): number {
    return this.batches;
  }

  /** Stops forwarding and writes the positions still pending. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.sweeper);
    clearInterval(this.flusher);
    for (const [courierId, state] of this.couriers) {
      if (state.timer) clearTimeout(state.timer);
      // A fix still held back by the throttle is the courier's latest: it is written too.
      if (state.pending) this.dirty.set(courierId, { courierId, fix: state.pending, seenAt: this.deps.clock.now() });
    }
    this.couriers.clear();
    await this.persisting;
    await this.persist(true);
  }

  private schedule(courierId: string, state: CourierState): void {
    if (this.stopped || state.timer || state.forwarding || !state.pending) return;
    const wait = state.lastForwardMs + this.deps.minIntervalMs - performance.now();
    if (wait <= 0) void this.forward(courierId, state);
    else state.timer = setTimeout(() => void this.forward(courierId, state), wait);
  }

  private async forward(courierId: string, state: CourierState): Promise<void> {
    state.timer = null;
    const fix = state.pending;
    if (!fix || this.stopped) return;
    state.pending = null;
    state.forwarding = true;
    state.lastForwardMs = performance.now();
    this.dirty.set(courierId, { courierId, fix, seenAt: this.deps.clock.now() });
    try {
      const orders = await this.deps.activeOrders(courierId);
      if (orders.length && !this.stopped) this.deps.forward(courierId, fix, orders);
    } catch (err) {
      this.deps.log.warn("forwarding a courier position failed", { courierId, err: errorField(err) });
    } finally {
      state.forwarding = false;
      this.schedule(courierId, state);
    }
  }

  /** One write of every courier's latest unwritten fix; one at a time (the next interval takes what arrived meanwhile). */
  private async persist(final = false): Promise<void> {
    if (this.persisting || this.dirty.size === 0 || (this.stopped && !final)) return;
    const batch = this.dirty;
    this.dirty = new Map();
    const run = this.deps
      .recordMany([...batch.values()])
      .then(() => {
        this.writes += batch.size;
        this.batches++;
      })
      .catch((err: unknown) => {
        this.deps.log.warn("storing courier positions failed; retrying with the next batch", { couriers: batch.size, err: errorField(err) });
        // Put back what no newer fix has replaced meanwhile.
        for (const [courierId, p] of batch) if (!this.dirty.has(courierId)) this.dirty.set(courierId, p);
      })
      .finally(() => {
        this.persisting = null;
      });
    this.persisting = run;
    await run;
  }

  private forgetQuiet(): void {
    const cutoff = performance.now() - 60_000;
    for (const [courierId, state] of this.couriers) {
      if (!state.pending && !state.timer && !state.forwarding && state.lastForwardMs < cutoff) this.couriers.delete(courierId);
    }
  }
}

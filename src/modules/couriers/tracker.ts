import type { Clock } from "../../clock";
import { errorField, type Logger } from "../../log";
import type { CourierModel } from "./model";

/** `O`: what the tracker learns of each order a courier carries (its id, or more). */
export type TrackerDeps<O = string> = {
  /** Stores a fix; false when a newer one is already stored. */
  record(courierId: string, fix: CourierModel.fix, seenAt: Date): Promise<boolean>;
  /** The orders the courier carries now (assigned and not final). */
  activeOrders(courierId: string): Promise<O[]>;
  /** Announces a stored fix to those orders' followers. */
  forward(courierId: string, fix: CourierModel.fix, orders: O[]): void;
  clock: Clock;
  log: Logger;
  /** At most one write per courier per this many ms. */
  minIntervalMs: number;
  /** Fixes further than this ahead of server time are refused. */
  maxFutureMs: number;
};

export type FixVerdict = "accepted" | "stale" | "future";

type CourierState = {
  /** Time of the newest fix accepted from this courier (stored or pending). */
  newestAt: number;
  lastWriteMs: number;
  pending: CourierModel.fix | null;
  timer: ReturnType<typeof setTimeout> | null;
  writing: boolean;
};

/**
 * Courier positions: refuses fixes older than the newest one seen (so a delayed packet cannot
 * move a courier back in time) and fixes from the future (so one bad clock cannot pin it
 * there), writes at most once per interval per courier, and lets fixes that arrive in between
 * replace each other, so only the latest is written when the interval ends.
 */
export class CourierLocationTracker<O = string> {
  private readonly couriers = new Map<string, CourierState>();
  private readonly sweeper: ReturnType<typeof setInterval>;
  private stopped = false;
  private writes = 0;

  constructor(private readonly deps: TrackerDeps<O>) {
    this.sweeper = setInterval(() => this.forgetQuiet(), 30_000);
    this.sweeper.unref?.();
  }

  report(courierId: string, fix: CourierModel.fix): FixVerdict {
    const at = fix.at.getTime();
    if (at - this.deps.clock.now().getTime() > this.deps.maxFutureMs) return "future";
    let state = this.couriers.get(courierId);
    if (!state) {
      state = { newestAt: Number.NEGATIVE_INFINITY, lastWriteMs: Number.NEGATIVE_INFINITY, pending: null, timer: null, writing: false };
      this.couriers.set(courierId, state);
    }
    if (at <= state.newestAt) return "stale";
    state.newestAt = at;
    state.pending = fix;
    this.schedule(courierId, state);
    return "accepted";
  }

  /** Writes done since start (for tests and metrics). */
  get writeCount(): number {
    return this.writes;
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.sweeper);
    for (const state of this.couriers.values()) if (state.timer) clearTimeout(state.timer);
    this.couriers.clear();
  }

  private schedule(courierId: string, state: CourierState): void {
    if (this.stopped || state.timer || state.writing || !state.pending) return;
    const wait = state.lastWriteMs + this.deps.minIntervalMs - performance.now();
    if (wait <= 0) void this.flush(courierId, state);
    else state.timer = setTimeout(() => void this.flush(courierId, state), wait);
  }

  private async flush(courierId: string, state: CourierState): Promise<void> {
    state.timer = null;
    const fix = state.pending;
    if (!fix || this.stopped) return;
    state.pending = null;
    state.writing = true;
    state.lastWriteMs = performance.now();
    try {
      this.writes++;
      const stored = await this.deps.record(courierId, fix, this.deps.clock.now());
      if (stored && !this.stopped) {
        const orders = await this.deps.activeOrders(courierId);
        if (orders.length) this.deps.forward(courierId, fix, orders);
      }
    } catch (err) {
      this.deps.log.warn("storing a courier position failed", { courierId, err: errorField(err) });
    } finally {
      state.writing = false;
      this.schedule(courierId, state);
    }
  }

  private forgetQuiet(): void {
    const cutoff = performance.now() - 60_000;
    for (const [courierId, state] of this.couriers) {
      if (!state.pending && !state.timer && !state.writing && state.lastWriteMs < cutoff) this.couriers.delete(courierId);
    }
  }
}

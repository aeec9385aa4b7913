import { changesFromOrder, type OrderChange } from "../events/change";

/**
 * Puts the changes of each order back in seq order before they reach local sockets.
 *
 * Changes of one order can arrive out of order when several instances write it (each
 * publishes over its own Redis connection), and one can go missing when an instance dies
 * between commit and publish. A change one past the last delivered seq goes out at once;
 * a later one waits up to `gapWaitMs` for the missing seqs, then the gap is filled from the
 * database (`fillGap`; read again, backing off, while the database does not answer). Only a gap
 * the database does not have either (or no `fillGap`) is skipped.
 * Seqs at or below the last delivered one are duplicates and are dropped.
 */
export type SequencerOptions = {
  deliver: (change: OrderChange) => void;
  /** Committed changes of an order with afterSeq < seq < beforeSeq, read from the database. */
  fillGap?: (orderId: string, afterSeq: number, beforeSeq: number) => Promise<OrderChange[]>;
  gapWaitMs: number;
  /** Orders whose last seq is remembered (least recently seen are forgotten first). */
  maxOrders: number;
  onGapSkipped?: (orderId: string, fromSeq: number, toSeq: number) => void;
  /**
   * When an order is first seen at seq n > 1, its earlier entries committed at or after this
   * time (epoch ms) go out first, from the change's own history: this instance was listening
   * then, so it missed them (a relay outage) and its restaurant and courier topic subscribers
   * would otherwise have a gap for good (chaos finding F5). Unset: it starts at n.
   */
  firstSightSinceMs?: () => number;
};

/** The longest wait between reads of a gap while the database does not answer. */
const MAX_GAP_RETRY_MS = 2_000;

type OrderState = {
  last: number;
  /** Reads of the current gap that failed in a row. */
  failures: number;
  held: Map<number, OrderChange>;
  timer: ReturnType<typeof setTimeout> | null;
};

export class ChangeSequencer {
  private readonly orders = new Map<string, OrderState>();
  private closed = false;

  constructor(private readonly opts: SequencerOptions) {}

  offer(change: OrderChange): void {
    if (this.closed) return;
    let state = this.orders.get(change.orderId);
    if (!state) {
      // First sight of this order here: it starts there, after what this instance missed of it.
      const missed = this.missedBefore(change);
      state = { last: (missed[0]?.seq ?? change.seq) - 1, failures: 0, held: new Map(), timer: null };
      this.orders.set(change.orderId, state);
      this.forgetOldest();
      for (const earlier of missed) this.deliver(state, earlier);
    } else {
      this.orders.delete(change.orderId); // re-insert: most recently seen last
      this.orders.set(change.orderId, state);
    }
    if (change.seq <= state.last || state.held.has(change.seq)) return;
    if (change.seq === state.last + 1) {
      this.deliver(state, change);
      this.flushConsecutive(state);
    } else {
      state.held.set(change.seq, change);
      state.timer ??= setTimeout(() => void this.resolveGap(change.orderId, state), this.opts.gapWaitMs);
    }
  }

  /** Last seq delivered for an order (undefined when unknown). */
  lastSeq(orderId: string): number | undefined {
    return this.orders.get(orderId)?.last;
  }

  close(): void {
    this.closed = true;
    for (const state of this.orders.values()) if (state.timer) clearTimeout(state.timer);
    this.orders.clear();
  }

  /** The consecutive entries just before `change` committed since `firstSightSinceMs` (none without it). */
  private missedBefore(change: OrderChange): OrderChange[] {
    if (!this.opts.firstSightSinceMs || change.seq <= 1 || !change.order?.history) return [];
    const since = this.opts.firstSightSinceMs();
    const earlier = changesFromOrder(change.order, 0, change.seq, change.origin);
    const out: OrderChange[] = [];
    for (let i = earlier.length - 1; i >= 0; i--) {
      const c = earlier[i];
      if (c.seq !== change.seq - out.length - 1 || Date.parse(c.at) < since) break;
      out.unshift(c);
    }
    return out;
  }

  private deliver(state: OrderState, change: OrderChange): void {
    state.last = change.seq;
    this.opts.deliver(change);
  }

  private flushConsecutive(state: OrderState): void {
    let next: OrderChange | undefined;
    while ((next = state.held.get(state.last + 1))) {
      state.held.delete(next.seq);
      this.deliver(state, next);
    }
    if (state.held.size === 0 && state.timer) {
      clearTimeout(state.timer);
      state.timer = null;
    }
  }

  private async resolveGap(orderId: string, state: OrderState): Promise<void> {
    state.timer = null;
    if (this.closed || state.held.size === 0) return;
    const firstHeld = Math.min(...state.held.keys());
    if (this.opts.fillGap) {
      try {
        const missing = await this.opts.fillGap(orderId, state.last, firstHeld);
        if (this.closed) return;
        for (const change of missing.sort((a, b) => a.seq - b.seq)) {
          if (change.seq === state.last + 1) this.deliver(state, change);
        }
        this.flushConsecutive(state);
        state.failures = 0;
      } catch {
        // Database unreachable: the missing seqs are committed, so skipping would leave connected
        // subscribers a gap for good (chaos finding F7). Hold on and read again, backing off.
        if (this.closed) return;
        state.failures++;
        const waitMs = Math.min(this.opts.gapWaitMs * 2 ** state.failures, MAX_GAP_RETRY_MS);
        state.timer ??= setTimeout(() => void this.resolveGap(orderId, state), waitMs);
        return;
      }
    }
    if (state.held.size === 0) return;
    const skipTo = Math.min(...state.held.keys());
    if (skipTo > state.last + 1) this.opts.onGapSkipped?.(orderId, state.last + 1, skipTo - 1);
    state.last = skipTo - 1;
    this.flushConsecutive(state);
    if (state.held.size > 0) state.timer ??= setTimeout(() => void this.resolveGap(orderId, state), this.opts.gapWaitMs);
  }

  private forgetOldest(): void {
    if (this.orders.size <= this.opts.maxOrders) return;
    for (const [orderId, state] of this.orders) {
      if (this.orders.size <= this.opts.maxOrders) break;
      if (state.held.size === 0) this.orders.delete(orderId);
    }
  }
}

import type { Collection, ObjectId } from "mongodb";
import { inSpan } from "../tracing";
import type { Clock } from "../clock";
import { errorField, type Logger } from "../log";
import type { Metrics } from "../metrics";

/**
 * Durable timers. A document that has deadlines keeps them itself, written by the same
 * compare-and-set as the change that set them:
 *
 *   timers: [{ kind, dueAt, ref }]   the deadlines
 *   timerPending: boolean            timers is not empty (lets the embedded engine's hash index find them)
 *   nextTimerAt: Date | null         the earliest dueAt
 *   timerLease?: { owner, until }    which instance is firing them, until when
 *
 * Every instance runs a sweeper that claims a document with a due timer through an atomic lease
 * (findOneAndUpdate) and fires the timer through its owner (for orders: an event to the order's
 * actor). Firing is exactly-once because the event is only accepted while the state that set
 * the deadline still holds, and that acceptance is a compare-and-set; the lease only keeps
 * instances from doing the same work twice, and expires so a dead instance's claim is retried.
 */

export type StoredTimer = { kind: string; dueAt: Date; ref: number };

export type TimerDocId = ObjectId | string;

/** What a claim returns: the document's id and its earliest due timer. */
export type ClaimedTimer = { id: TimerDocId; timer: StoredTimer };

/** The fields a document with durable timers has (any collection's documents may add them). */
export type TimerDoc = {
  _id: TimerDocId;
  timers?: StoredTimer[];
  timerPending?: boolean;
  nextTimerAt?: Date | null;
  timerLease?: { owner: string; until: Date } | null;
};

/** The fields to $set when a document's timers become `timers`. */
export function timerFields(timers: StoredTimer[]): { timers: StoredTimer[]; timerPending: boolean; nextTimerAt: Date | null } {
  let next: Date | null = null;
  for (const t of timers) if (next === null || t.dueAt < next) next = t.dueAt;
  return { timers, timerPending: timers.length > 0, nextTimerAt: next };
}

/**
 * Claims and releases due timers in one collection, through a handle typed by the timer
 * fields alone (`db.collection<TimerDoc>(name)`), whatever else its documents hold.
 */
export class TimerStore {
  constructor(private readonly col: Collection<TimerDoc>) {}

  /**
   * Leases the document with the earliest due timer whose lease is free or expired; null when
   * nothing is due. The lease is part of the same atomic write as the match, so two instances
   * never hold it together.
   */
  async claimDue(now: Date, owner: string, leaseMs: number): Promise<ClaimedTimer | null> {
    const doc = await this.col.findOneAndUpdate(
      { timerPending: true, nextTimerAt: { $lte: now }, $or: [{ timerLease: null }, { "timerLease.until": { $lte: now } }] },
      { $set: { timerLease: { owner, until: new Date(now.getTime() + leaseMs) } } },
      { sort: { nextTimerAt: 1 }, projection: { timers: 1 }, returnDocument: "after" },
    );
    if (!doc) return null;
    const due = (doc.timers ?? []).filter((t) => t.dueAt.getTime() <= now.getTime()).sort((a, b) => a.dueAt.getTime() - b.dueAt.getTime());
    if (due.length === 0) {
      // nextTimerAt said due but no timer is: repair the summary so the document stops matching.
      await this.col.updateOne({ _id: doc._id, "timerLease.owner": owner }, { $set: timerFields(doc.timers ?? []), $unset: { timerLease: "" } });
      return null;
    }
    return { id: doc._id, timer: due[0] };
  }

  /** Gives a lease back early (it would expire anyway). */
  async release(id: TimerDocId, owner: string): Promise<void> {
    await this.col.updateOne({ _id: id, "timerLease.owner": owner }, { $unset: { timerLease: "" } });
  }
}

/** What firing a timer came to: applied, or refused because the deadline no longer holds. */
export type FireOutcome = "fired" | "stale";

export type TimerSweeperDeps = {
  store: TimerStore;
  /** This instance (lease owner). */
  owner: string;
  clock: Clock;
  log: Logger;
  intervalMs: number;
  leaseMs: number;
  /** Documents claimed per sweep at most (each is fired concurrently with the others). */
  batch?: number;
  fire(id: TimerDocId, timer: StoredTimer): Promise<FireOutcome>;
  /** How late each fired timer was, for /metrics (dispatch_timer_lag_seconds). */
  metrics?: Pick<Metrics, "timerLag">;
};

/**
 * Runs on every instance: every `intervalMs`, claims due timers and fires them. A timer whose
 * firing fails keeps its lease until it expires, then any instance retries it; one that turned
 * out stale (another instance moved the document first) is simply dropped.
 */
export class TimerSweeper {
  private timer: ReturnType<typeof setTimeout> | null = null;
  private running: Promise<void> | null = null;
  private stopped = true;
  private fired = 0;

  constructor(private readonly deps: TimerSweeperDeps) {}

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.schedule();
  }

  /** Timers this sweeper fired (for tests and metrics). */
  get firedCount(): number {
    return this.fired;
  }

  /** Stops sweeping and waits for the sweep in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
  }

  /** One sweep now: claims up to `batch` due documents and fires them; resolves with how many fired. */
  async sweep(): Promise<number> {
    const batch = this.deps.batch ?? 50;
    const work: Array<Promise<boolean>> = [];
    for (let i = 0; i < batch && !this.stopped; i++) {
      const claimed = await this.deps.store.claimDue(this.deps.clock.now(), this.deps.owner, this.deps.leaseMs);
      if (!claimed) break;
      work.push(this.fireOne(claimed));
    }
    const results = await Promise.all(work);
    return results.filter(Boolean).length;
  }

  private async fireOne({ id, timer }: ClaimedTimer): Promise<boolean> {
    try {
      const outcome = await inSpan("timer.fire", { "timer.id": String(id), "timer.kind": timer.kind, "timer.due_at": timer.dueAt.toISOString() }, () => this.deps.fire(id, timer));
      if (outcome === "stale") {
        // Another writer moved the document first (its write dropped the lease). A timer that
        // stays stale keeps the lease until it expires, so it cannot spin the sweeper.
        this.deps.log.debug("timer was stale", { id: String(id), kind: timer.kind });
        return false;
      }
      await this.deps.store.release(id, this.deps.owner);
      this.fired++;
      this.deps.metrics?.timerLag.observe({ timer: timer.kind }, Math.max(0, this.deps.clock.now().getTime() - timer.dueAt.getTime()) / 1000);
      return true;
    } catch (err) {
      this.deps.log.warn("firing a timer failed; it is retried when its lease expires", {
        id: String(id),
        kind: timer.kind,
        err: errorField(err),
      });
      return false;
    }
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.sweep()
        .then(() => undefined)
        .catch((err: unknown) => this.deps.log.warn("timer sweep failed", { err: errorField(err) }))
        .finally(() => {
          this.running = null;
          this.schedule();
        });
    }, this.deps.intervalMs);
    this.timer.unref?.();
  }
}

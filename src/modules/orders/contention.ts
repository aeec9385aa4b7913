/** How long a move that keeps losing the compare-and-set is retried by default before a 503. */
export const DEFAULT_CONTENTION_RETRY_MS = 3_000;

/**
 * Pause before the next attempt after `lostRaces` lost compare-and-sets: full jitter on an
 * exponential step (2, 4, 8 … up to 64 ms), never past the time left.
 */
export function contentionBackoffMs(lostRaces: number, leftMs: number): number {
  const ceiling = Math.min(64, 2 ** Math.min(lostRaces, 6));
  return Math.max(0, Math.min(leftMs, Math.random() * ceiling));
}

/**
 * One move's retries against other writers: the time budget starts at the first lost
 * compare-and-set, and each later loss waits a randomized backoff so competing writers spread
 * out.
 */
export class ContentionBudget {
  private giveUpAt: number | null = null;
  private lost = 0;

  constructor(private readonly retryMs: number) {}

  /** Lost compare-and-sets so far. */
  get lostRaces(): number {
    return this.lost;
  }

  /** Records a lost compare-and-set and waits its backoff; false once the budget is spent. */
  async loseRace(): Promise<boolean> {
    const nowMs = Date.now();
    this.giveUpAt ??= nowMs + this.retryMs;
    if (this.lost > 0) {
      const pause = contentionBackoffMs(this.lost, this.giveUpAt - nowMs);
      if (pause > 0) await Bun.sleep(pause);
    }
    this.lost++;
    return Date.now() < this.giveUpAt;
  }
}

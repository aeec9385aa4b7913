import type { Minutes } from "./types";

/**
 * Expected preparation time per restaurant, learnt from the accepted → ready durations it reports
 * (an exponentially weighted mean, so a kitchen that slows down is followed within a few orders);
 * for a restaurant with none yet, the same mean over every restaurant, and `defaultMinutes` before
 * any order at all has been ready.
 */
export class ReadyTimeEstimator {
  private readonly mean = new Map<string, number>();
  private overall: number | null = null;

  constructor(
    private readonly defaultMinutes: Minutes,
    /** Weight of the newest observation. */
    private readonly weight = 0.2,
  ) {}

  observe(restaurantId: string, prepMinutes: Minutes): void {
    if (!Number.isFinite(prepMinutes) || prepMinutes < 0) return;
    const m = this.mean.get(restaurantId);
    this.mean.set(restaurantId, m === undefined ? prepMinutes : m + this.weight * (prepMinutes - m));
    // Across restaurants a slower weight: one kitchen's outlier should barely move it.
    this.overall = this.overall === null ? prepMinutes : this.overall + (this.weight / 4) * (prepMinutes - this.overall);
  }

  prepMinutes(restaurantId: string): Minutes {
    return this.mean.get(restaurantId) ?? this.overall ?? this.defaultMinutes;
  }

  /** When an order accepted at `acceptedAt` and not ready at `now` is expected ready. */
  readyAt(restaurantId: string, acceptedAt: Minutes, now: Minutes): Minutes {
    return Math.max(acceptedAt + this.prepMinutes(restaurantId), now);
  }
}

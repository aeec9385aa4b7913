/** Time source, injected so tests can move it. */
export type Clock = {
  now(): Date;
  /**
   * How many times faster than real time this clock runs (1 when absent). Periodic work planned in
   * clock time (the dispatch planner's rounds) divides its real-time period by it.
   */
  readonly speedup?: number;
};

export const systemClock: Clock = { now: () => new Date() };

/**
 * A clock that starts at `start` and runs `speedup` times faster than real time. For tests and
 * benchmarks that replay a day in seconds (CLOCK_SPEEDUP, docs/dispatch.md), never for production:
 * everything stored is stamped with its time.
 */
export function acceleratedClock(speedup: number, start: Date = new Date()): Clock {
  const startMs = start.getTime();
  const realStart = performance.now();
  return { speedup, now: () => new Date(startMs + Math.round((performance.now() - realStart) * speedup)) };
}

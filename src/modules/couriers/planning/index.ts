import { planBatched } from "./batched";
import { planNearest } from "./nearest";
import type { BatchedParams, NearestParams, PlanDecision, PlanInput, PolicyName } from "./types";

export * from "./types";
export { planRoute, bestSequence, type RoutePlan, type RouteStop } from "./route";
export { ReadyTimeEstimator } from "./ready";
export { rankNearest } from "./nearest";

export type PolicyParams = { nearest: NearestParams; batched: BatchedParams };

/** Preparation minutes assumed for a restaurant that has not reported a ready order yet. */
export const DEFAULT_PREP_MINUTES = 15;

/** The batched policy's defaults (tuned on the MDRP instances as a whole: docs/dispatch.md). */
export const DEFAULT_BATCHED: BatchedParams = {
  intervalMinutes: 2,
  horizonMinutes: 30,
  maxBundle: 3,
  bundleMaxExtraMinutes: 25,
  bundleFromOrdersPerCourier: 1,
  busyLookaheadMinutes: 10,
  busyLateMaxMinutes: 0,
  targetMinutes: 40,
  latePenalty: 0,
  foodWaitWeight: 3,
  waitWeight: 0.5,
  approachWeight: 2,
  commitSlackMinutes: -1,
  repositionWithinMinutes: 0,
  unservedMinutes: 60,
};

/** One planning round of the chosen policy. */
export function plan<P>(policy: PolicyName, input: PlanInput<P>, params: PolicyParams): PlanDecision[] {
  return policy === "batched" ? planBatched(input, params.batched) : planNearest(input, params.nearest);
}

import type { NearestParams, PlanDecision, PlanInput } from "./types";

/**
 * Today's dispatch as a policy (the baseline): each open order, oldest search first, goes on its own to
 * the nearest courier within the radius that carries fewer than `maxActive` orders, holds no offer and
 * has not turned this order down, the moment the restaurant accepts it; orders nobody can take wait for
 * the next round. It knows nothing of ready times or shifts.
 */
export function planNearest<P>(input: PlanInput<P>, params: NearestParams): PlanDecision[] {
  const { geometry } = input;
  const load = new Map(input.couriers.map((c) => [c.id, c.carrying]));
  const offered = new Set(input.couriers.filter((c) => c.offered).map((c) => c.id));
  const orders = [...input.orders].sort((a, b) => a.placedAt - b.placedAt || cmp(a.id, b.id));
  const decisions: PlanDecision[] = [];
  for (const order of orders) {
    const excluded = order.excluded ?? [];
    let best: Ranked | null = null;
    for (const c of input.couriers) {
      if (offered.has(c.id) || (load.get(c.id) ?? 0) >= params.maxActive) continue;
      const x = { id: c.id, meters: geometry.meters(c.position, order.pickup) };
      if (reachable(x, excluded, params.radiusMeters) && (!best || nearerFirst(x, best) < 0)) best = x;
    }
    if (!best) continue;
    offered.add(best.id);
    load.set(best.id, (load.get(best.id) ?? 0) + 1);
    decisions.push({ kind: "offer", courierId: best.id, orderIds: [order.id] });
  }
  return decisions;
}

type Ranked = { id: string; meters: number };

/** Within the radius and has not turned the order down. */
function reachable(c: Ranked, excluded: readonly string[], radiusMeters: number): boolean {
  return c.meters <= radiusMeters && !excluded.includes(c.id);
}

/** Nearest first; equal distances by id, so every instance decides alike. */
function nearerFirst(a: Ranked, b: Ranked): number {
  return a.meters - b.meters || cmp(a.id, b.id);
}

/**
 * The nearest rule for one order, as a ranking: the couriers `reachable` by it, `nearerFirst`. The
 * server's per-order search (dispatcher.ts through dispatch-policy.ts) ranks with it and tries the
 * couriers in turn until one can be reserved; planNearest takes the first of the same rule.
 */
export function rankNearest<C extends { id: string }>(couriers: readonly C[], meters: (c: C) => number, excluded: readonly string[], radiusMeters: number): C[] {
  return couriers
    .map((c) => ({ c, r: { id: c.id, meters: meters(c) } }))
    .filter((x) => reachable(x.r, excluded, radiusMeters))
    .sort((a, b) => nearerFirst(a.r, b.r))
    .map((x) => x.c);
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

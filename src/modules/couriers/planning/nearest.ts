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
    let best: { id: string; meters: number } | null = null;
    for (const c of input.couriers) {
      if (offered.has(c.id) || (load.get(c.id) ?? 0) >= params.maxActive || order.excluded?.includes(c.id)) continue;
      const meters = geometry.meters(c.position, order.pickup);
      if (meters > params.radiusMeters) continue;
      if (!best || meters < best.meters || (meters === best.meters && c.id < best.id)) best = { id: c.id, meters };
    }
    if (!best) continue;
    offered.add(best.id);
    load.set(best.id, (load.get(best.id) ?? 0) + 1);
    decisions.push({ kind: "offer", courierId: best.id, orderIds: [order.id] });
  }
  return decisions;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

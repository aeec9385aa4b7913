import { munkres } from "munkres";
import { bestSequence, planRoute, type RouteStop } from "./route";
import type { BatchedParams, Minutes, PlanCourier, PlanDecision, PlanInput, PlanOrder } from "./types";

/** A pair that breaks a rule (shift over before pickup, order turned down): never chosen. */
const INFEASIBLE = 1e9;

type Bundle<P> = { restaurantId: string; pickup: P; orders: PlanOrder<P>[] };

/**
 * The rolling-horizon policy, after Reyes et al. (2018): every round it plans the open orders whose
 * food is expected within the horizon; when they outnumber the free couriers it bundles orders of one
 * restaurant; it prices every bundle × courier pair and solves the assignment optimally (munkres); and it
 * sends a courier only when waiting one more round would make it late for the food, so nobody is
 * committed long before the food is ready and a better courier may still turn up.
 *
 * A pair's price is what serving the bundle with that courier now costs beyond serving it with an ideal
 * courier next round: the click-to-door of its orders (convex past the target, so urgent orders win a
 * scarce courier), plus the courier's wait at the restaurant and drive to it.
 */
export function planBatched<P>(input: PlanInput<P>, params: BatchedParams): PlanDecision[] {
  const { now } = input;
  // Couriers finishing their trip within the look-ahead are planned from their last drop-off.
  const candidates = input.couriers.filter(
    (c) => !c.offered && (c.carrying === 0 || (c.freeAt <= now + params.busyLookaheadMinutes && c.carrying < params.maxBundle)) && (c.shiftEnd === null || c.shiftEnd > now),
  );
  const planned = input.orders.filter((o) => o.readyAt <= now + params.horizonMinutes);
  // Couriers beyond the radius of every planned order are no help this round (and do not count against bundling).
  const radius = params.radiusMeters ?? Infinity;
  const couriers = Number.isFinite(radius) ? candidates.filter((c) => planned.some((o) => input.geometry.meters(c.freePoint, o.pickup) <= radius)) : candidates;
  const orders = planned;
  if (couriers.length === 0 || orders.length === 0) return [];

  const bundles = makeBundles(input, orders, couriers.length, params);
  const matrix = bundles.map((b) => {
    const offset = b.orders.reduce((sum, o) => sum + lateness(params, idealClickToDoor(input, o, now + params.intervalMinutes)) + params.foodWaitWeight * Math.max(0, now + params.intervalMinutes + input.service.pickupMinutes / 2 - o.readyAt), 0);
    // Serving a bundle now saves its orders the cost of waiting for a later round.
    return couriers.map((c) => pairCost(input, params, b, c) - offset - params.unservedMinutes * b.orders.length);
  });

  const decisions: PlanDecision[] = [];
  for (const [row, col] of munkres(matrix)) {
    if (matrix[row]![col]! >= INFEASIBLE / 2) continue;
    const bundle = bundles[row]!;
    const courier = couriers[col]!;
    const route = routeOf(input, bundle, courier);
    const readyAt = Math.max(...bundle.orders.map((o) => o.readyAt));
    // Lazy commitment: the courier is sent only when it would otherwise arrive after the food.
    const earlyBy = readyAt - (route.plan.arriveAt + input.service.pickupMinutes / 2);
    // A courier still on a trip that would reach the food more than `busyLateMaxMinutes` after it is
    // not committed: the order waits a round, when a free courier may have turned up.
    if (courier.freeAt > now && -earlyBy > params.busyLateMaxMinutes) continue;
    if (earlyBy > params.intervalMinutes + params.commitSlackMinutes) {
      // Too early to commit; a courier with nothing to do may still start towards the restaurant.
      const idle = courier.carrying === 0 && courier.freeAt <= now;
      if (idle && readyAt - now <= params.repositionWithinMinutes && input.geometry.travelMinutes(courier.position, bundle.pickup) > 0) {
        decisions.push({ kind: "reposition", courierId: courier.id, restaurantId: bundle.restaurantId, orderIds: route.sequence.map((s) => s.orderId) });
      }
      continue;
    }
    decisions.push({ kind: "offer", courierId: courier.id, orderIds: route.sequence.map((s) => s.orderId) });
  }
  return decisions;
}

/** Click-to-door with the convex penalty past the target. */
function lateness(params: BatchedParams, clickToDoor: Minutes): number {
  return clickToDoor + params.latePenalty * Math.max(0, clickToDoor - params.targetMinutes);
}

/** The click-to-door of an order picked up on its own by a courier already waiting at the restaurant at `from`. */
function idealClickToDoor<P>(input: PlanInput<P>, order: PlanOrder<P>, from: Minutes): Minutes {
  const { service, geometry } = input;
  const pickupAt = Math.max(order.readyAt, from + service.pickupMinutes / 2);
  return pickupAt + service.pickupMinutes / 2 + geometry.travelMinutes(order.pickup, order.dropoff) + service.dropoffMinutes / 2 - order.placedAt;
}

function stopsOf<P>(orders: readonly PlanOrder<P>[]): RouteStop<P>[] {
  return orders.map((o) => ({ orderId: o.id, dropoff: o.dropoff, placedAt: o.placedAt, readyAt: o.readyAt }));
}

function routeOf<P>(input: PlanInput<P>, bundle: Bundle<P>, courier: PlanCourier<P>) {
  const sequence = bestSequence(bundle.pickup, stopsOf(bundle.orders), input.geometry);
  const plan = planRoute(courier.freePoint, Math.max(input.now, courier.freeAt), bundle.pickup, sequence, input.geometry, input.service);
  return { sequence, plan };
}

function pairCost<P>(input: PlanInput<P>, params: BatchedParams, bundle: Bundle<P>, courier: PlanCourier<P>): number {
  if (bundle.orders.some((o) => o.excluded?.includes(courier.id))) return INFEASIBLE;
  if (params.radiusMeters !== undefined && input.geometry.meters(courier.freePoint, bundle.pickup) > params.radiusMeters) return INFEASIBLE;
  // A courier free now still holds what it carries: the bundle adds to it (COURIER_MAX_ACTIVE counts orders).
  if (courier.freeAt <= input.now && courier.carrying + bundle.orders.length > params.maxBundle) return INFEASIBLE;
  const { sequence, plan } = routeOf(input, bundle, courier);
  if (courier.shiftEnd !== null && plan.pickupAt > courier.shiftEnd) return INFEASIBLE;
  let cost = 0;
  sequence.forEach((s, i) => (cost += lateness(params, plan.dropoffAt[i]! - s.placedAt) + params.foodWaitWeight * (plan.pickupAt - s.readyAt)));
  const departAt = Math.max(input.now, courier.freeAt);
  const wait = plan.pickupAt - (plan.arriveAt + input.service.pickupMinutes / 2);
  return cost + params.waitWeight * wait + params.approachWeight * (plan.arriveAt - departAt);
}

/** Summed click-to-door of a bundle picked up as soon as its food is ready (no courier in view). */
function bundleCost<P>(input: PlanInput<P>, pickup: P, orders: readonly PlanOrder<P>[]): Minutes {
  const sequence = bestSequence(pickup, stopsOf(orders), input.geometry);
  const plan = planRoute(pickup, input.now, pickup, sequence, input.geometry, input.service);
  return sequence.reduce((sum, s, i) => sum + plan.dropoffAt[i]! - s.placedAt, 0);
}

/**
 * One bundle per order while couriers suffice. When orders per free courier exceed
 * `bundleFromOrdersPerCourier`, orders of one restaurant (by ready time) join the bundle they lengthen
 * least, up to ⌈orders ÷ couriers⌉ each (at least 2, at most `maxBundle`), when that costs their bundle at most `bundleMaxExtraMinutes` of click-to-door.
 */
function makeBundles<P>(input: PlanInput<P>, orders: readonly PlanOrder<P>[], freeCouriers: number, params: BatchedParams): Bundle<P>[] {
  const byRestaurant = new Map<string, PlanOrder<P>[]>();
  for (const o of [...orders].sort((a, b) => a.readyAt - b.readyAt || (a.id < b.id ? -1 : 1))) {
    const list = byRestaurant.get(o.restaurantId);
    if (list) list.push(o);
    else byRestaurant.set(o.restaurantId, [o]);
  }
  const perCourier = orders.length / freeCouriers;
  const size = perCourier > params.bundleFromOrdersPerCourier ? Math.min(params.maxBundle, Math.max(2, Math.ceil(perCourier))) : 1;
  const bundles: Bundle<P>[] = [];
  for (const [restaurantId, list] of byRestaurant) {
    const pickup = list[0]!.pickup;
    const own: { orders: PlanOrder<P>[]; cost: number }[] = [];
    for (const o of list) {
      const alone = bundleCost(input, pickup, [o]);
      let best: { i: number; extra: number; cost: number } | null = null;
      if (size > 1) {
        own.forEach((b, i) => {
          if (b.orders.length >= size) return;
          const cost = bundleCost(input, pickup, [...b.orders, o]);
          const extra = cost - b.cost - alone;
          if (extra <= params.bundleMaxExtraMinutes && (!best || extra < best.extra)) best = { i, extra, cost };
        });
      }
      const chosen = best as { i: number; extra: number; cost: number } | null;
      if (chosen) {
        own[chosen.i]!.orders.push(o);
        own[chosen.i]!.cost = chosen.cost;
      } else own.push({ orders: [o], cost: alone });
    }
    for (const b of own) bundles.push({ restaurantId, pickup, orders: b.orders });
  }
  return bundles;
}

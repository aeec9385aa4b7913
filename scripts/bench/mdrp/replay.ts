import {
  DEFAULT_PREP_MINUTES,
  plan,
  planRoute,
  ReadyTimeEstimator,
  type Geometry,
  type PlanCourier,
  type PlanOrder,
  type PolicyName,
  type PolicyParams,
  type RoutePlan,
} from "../../../src/modules/couriers/planning";
import type { MdrpCourier, MdrpInstance, MdrpOrder, Point } from "./instance";

/**
 * A discrete-event replay of one MDRP instance on a virtual clock of whole minutes (the instance's
 * unit), couriers following the problem's rules: travel = ⌈distance ÷ speed⌉, pickup no earlier than
 * the food and half-way through the pickup service, drop-off half-way through its service, no
 * diversion en route, no pickup after the shift ends. The policy module (the server's) decides; every
 * courier accepts what it is offered. `nearest` plans every minute (the server searches at acceptance
 * and retries every 30 s: the clock rounds that to the next minute), `batched` every interval.
 */

export type Move = { departAt: number; from: string; to: string };
export type Assignment = { at: number; pickupAt: number; courierId: string; orderIds: string[] };
export type OrderOutcome = { order: MdrpOrder; courierId: string | null; pickupAt: number | null; dropoffAt: number | null };
export type ReplayResult = {
  instance: MdrpInstance;
  policy: PolicyName;
  orders: OrderOutcome[];
  assignments: Assignment[];
  /** Moves per courier, in order (origin "0" is the courier's start point). */
  moves: Map<string, Move[]>;
  /** Minutes each courier spent driving or in service. */
  busyMinutes: Map<string, number>;
  /** Offers that could not be carried out (the shift ended before the food could be picked up). */
  failedPickups: number;
  /** Couriers sent towards a restaurant ahead of any commitment. */
  repositions: number;
  wallMs: number;
};

export type ReplayOptions = {
  policy: PolicyName;
  params: PolicyParams;
  estimatedReady: boolean;
  /** Travel as the problem has it (⌈distance ÷ speed⌉) unless given: the end-to-end replay uses the server's (no rounding). */
  geometry?: Geometry<Point>;
};

type Route = { assignment: Assignment; restaurantId: string; plan: RoutePlan; sequence: MdrpOrder[]; departAt: number; failAt: number | null };
/** A courier sent towards a restaurant with nothing committed (it arrives and waits there). */
type Reposition = { toId: string; to: Point; departAt: number; arriveAt: number };
type CourierState = { courier: MdrpCourier; at: Point; atId: string; routes: Route[]; moving: Reposition | null };

export function mdrpGeometry(metersPerMinute: number, rounded = true): Geometry<Point> {
  const meters = (a: Point, b: Point) => Math.hypot(a.x - b.x, a.y - b.y);
  return { meters, travelMinutes: rounded ? (a, b) => Math.ceil(meters(a, b) / metersPerMinute) : (a, b) => meters(a, b) / metersPerMinute };
}

export function replay(instance: MdrpInstance, options: ReplayOptions): ReplayResult {
  const started = performance.now();
  const { params: p } = instance;
  const geometry = options.geometry ?? mdrpGeometry(p.metersPerMinute);
  const service = { pickupMinutes: p.pickupServiceMinutes, dropoffMinutes: p.dropoffServiceMinutes };
  const restaurant = (id: string) => instance.restaurants.get(id)!;
  const estimator = new ReadyTimeEstimator(DEFAULT_PREP_MINUTES);

  const couriers = instance.couriers.map<CourierState>((courier) => ({ courier, at: courier.start, atId: "0", routes: [], moving: null }));
  const byId = new Map(couriers.map((c) => [c.courier.id, c]));
  const outcome = new Map<string, OrderOutcome>(instance.orders.map((o) => [o.id, { order: o, courierId: null, pickupAt: null, dropoffAt: null }]));
  const excluded = new Map<string, string[]>();
  const open = new Set<string>();
  const assignments: Assignment[] = [];
  const moves = new Map<string, Move[]>(instance.couriers.map((c) => [c.id, []]));
  const busy = new Map<string, number>(instance.couriers.map((c) => [c.id, 0]));
  let failedPickups = 0;
  let repositions = 0;
  /** The courier is where its reposition took it (on arrival, or when a route starts from there). */
  const arrive = (c: CourierState) => {
    const m = c.moving!;
    const list = moves.get(c.courier.id)!;
    list.push({ departAt: m.departAt, from: list[list.length - 1]?.to ?? "0", to: m.toId });
    busy.set(c.courier.id, busy.get(c.courier.id)! + (m.arriveAt - m.departAt));
    c.at = m.to;
    c.atId = m.toId;
    c.moving = null;
  };

  const placements = [...instance.orders].sort((a, b) => a.placedAt - b.placedAt);
  const readies = [...instance.orders].sort((a, b) => a.readyAt - b.readyAt);
  let nextPlacement = 0;
  let nextReady = 0;
  const start = Math.min(placements[0]?.placedAt ?? 0, ...instance.couriers.map((c) => c.onTime));
  const end = Math.max(0, ...instance.couriers.map((c) => c.offTime));
  const interval = options.policy === "batched" ? Math.max(1, Math.round(options.params.batched.intervalMinutes)) : 1;

  for (let now = start; now <= end; now++) {
    // Routes whose courier is done (or gave up at the end of its shift).
    for (const c of couriers) {
      if (c.moving && c.moving.arriveAt <= now) arrive(c);
      while (c.routes.length) {
        const r = c.routes[0]!;
        if (r.failAt !== null ? r.failAt > now : r.plan.endAt > now) break;
        c.routes.shift();
        if (r.failAt !== null) {
          failedPickups++;
          recordApproach(moves.get(c.courier.id)!, r);
          c.at = restaurant(r.restaurantId);
          c.atId = r.restaurantId;
          busy.set(c.courier.id, busy.get(c.courier.id)! + (r.plan.arriveAt - r.departAt));
          for (const o of r.sequence) {
            open.add(o.id);
            excluded.set(o.id, [...(excluded.get(o.id) ?? []), c.courier.id]);
          }
          continue;
        }
        const last = r.sequence[r.sequence.length - 1]!;
        c.at = last.dropoff;
        c.atId = last.id;
        busy.set(c.courier.id, busy.get(c.courier.id)! + r.plan.busyMinutes);
        r.sequence.forEach((o, i) => Object.assign(outcome.get(o.id)!, { courierId: c.courier.id, pickupAt: r.plan.pickupAt, dropoffAt: r.plan.dropoffAt[i] }));
        assignments.push(r.assignment);
        recordMoves(moves.get(c.courier.id)!, r, service);
      }
    }
    while (nextPlacement < placements.length && placements[nextPlacement]!.placedAt <= now) open.add(placements[nextPlacement++]!.id);
    while (nextReady < readies.length && readies[nextReady]!.readyAt <= now) {
      const o = readies[nextReady++]!;
      estimator.observe(o.restaurantId, o.readyAt - o.placedAt);
    }
    if ((now - start) % interval !== 0 || open.size === 0) continue;

    const planCouriers: PlanCourier<Point>[] = [];
    for (const c of couriers) {
      if (now < c.courier.onTime || now >= c.courier.offTime) continue;
      const last = c.routes[c.routes.length - 1];
      const freePoint = last ? (last.failAt !== null ? restaurant(last.restaurantId) : last.sequence[last.sequence.length - 1]!.dropoff) : (c.moving?.to ?? c.at);
      const freeAt = last ? Math.max(now, last.failAt ?? last.plan.endAt) : (c.moving?.arriveAt ?? now);
      const carrying = c.routes.reduce((n, r) => n + r.sequence.length, 0);
      planCouriers.push({ id: c.courier.id, position: carrying ? freePoint : c.at, carrying, freeAt, freePoint, shiftEnd: c.courier.offTime });
    }
    const planOrders: PlanOrder<Point>[] = [];
    for (const id of open) {
      const o = outcome.get(id)!.order;
      const readyAt = !options.estimatedReady || o.readyAt <= now ? o.readyAt : estimator.readyAt(o.restaurantId, o.placedAt, now + 1);
      planOrders.push({ id, restaurantId: o.restaurantId, pickup: restaurant(o.restaurantId), dropoff: o.dropoff, placedAt: o.placedAt, readyAt, excluded: excluded.get(id) ?? [] });
    }

    const decisions = plan(options.policy, { now, orders: planOrders, couriers: planCouriers, geometry, service }, options.params);
    for (const d of decisions) {
      const c = byId.get(d.courierId);
      if (d.kind === "reposition") {
        if (!c || c.routes.length || c.moving || !instance.restaurants.has(d.restaurantId)) {
          throw new Error(`${instance.name} t=${now}: the policy repositioned a busy or unknown courier ${JSON.stringify(d)}`);
        }
        const to = restaurant(d.restaurantId);
        c.moving = { toId: d.restaurantId, to, departAt: now, arriveAt: now + geometry.travelMinutes(c.at, to) };
        repositions++;
        continue;
      }
      const sequence = d.orderIds.map((id) => outcome.get(id)?.order);
      if (!c || sequence.some((o) => !o || !open.has(o.id)) || new Set(sequence.map((o) => o!.restaurantId)).size !== 1) {
        throw new Error(`${instance.name} t=${now}: the policy offered an impossible bundle ${JSON.stringify(d)}`);
      }
      const orders = sequence as MdrpOrder[];
      for (const o of orders) open.delete(o.id);
      const last = c.routes[c.routes.length - 1];
      // Not diverted: a courier on its way to a restaurant gets there first.
      const reachedAt = c.moving?.arriveAt ?? now;
      if (c.moving) arrive(c);
      const departAt = last ? Math.max(now, last.failAt ?? last.plan.endAt) : Math.max(now, reachedAt);
      const from = last ? (last.failAt !== null ? restaurant(last.restaurantId) : last.sequence[last.sequence.length - 1]!.dropoff) : c.at;
      const restaurantId = orders[0]!.restaurantId;
      const routePlan = planRoute(
        from,
        departAt,
        restaurant(restaurantId),
        orders.map((o) => ({ orderId: o.id, dropoff: o.dropoff, placedAt: o.placedAt, readyAt: o.readyAt })),
        geometry,
        service,
      );
      // No pickup after the shift: the courier waits until it ends (or arrives too late) and hands the orders back.
      const offTime = c.courier.offTime;
      const failAt = routePlan.pickupAt <= offTime ? null : Math.max(routePlan.arriveAt, Math.min(offTime, routePlan.pickupAt));
      c.routes.push({
        assignment: { at: now, pickupAt: routePlan.pickupAt, courierId: c.courier.id, orderIds: orders.map((o) => o.id) },
        restaurantId,
        plan: routePlan,
        sequence: orders,
        departAt,
        failAt,
      });
    }
  }
  // Routes still running at the end of the last shift finish (their drop-offs are allowed after it).
  for (const c of couriers) {
    for (const r of c.routes) {
      if (r.failAt !== null) {
        failedPickups++;
        continue;
      }
      busy.set(c.courier.id, busy.get(c.courier.id)! + r.plan.busyMinutes);
      r.sequence.forEach((o, i) => Object.assign(outcome.get(o.id)!, { courierId: c.courier.id, pickupAt: r.plan.pickupAt, dropoffAt: r.plan.dropoffAt[i] }));
      assignments.push(r.assignment);
      recordMoves(moves.get(c.courier.id)!, r, service);
    }
  }
  return {
    instance,
    policy: options.policy,
    orders: [...outcome.values()],
    assignments,
    moves,
    busyMinutes: busy,
    failedPickups,
    repositions,
    wallMs: performance.now() - started,
  };
}

function recordApproach(moves: Move[], r: Route): void {
  const prev = moves[moves.length - 1];
  moves.push({ departAt: r.departAt, from: prev ? prev.to : "0", to: r.restaurantId });
}

function recordMoves(moves: Move[], r: Route, service: { pickupMinutes: number; dropoffMinutes: number }): void {
  recordApproach(moves, r);
  let from = r.restaurantId;
  let departAt = r.plan.pickupAt + service.pickupMinutes / 2;
  r.sequence.forEach((o, i) => {
    moves.push({ departAt, from, to: o.id });
    from = o.id;
    departAt = r.plan.dropoffAt[i]! + service.dropoffMinutes / 2;
  });
}

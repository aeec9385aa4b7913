import type { MdrpInstance, Point } from "./instance";
import type { ReplayResult } from "./replay";
import { solutionFiles, type SolutionFiles } from "./solutions";

/**
 * Checks a solution, as written in the evaluator's three files, against the rules of the problem
 * (../shared/mdrp/README.md), independently of the replay that produced it: travel and service times,
 * no pickup before the food or after the shift, no diversion (each move starts where the previous one
 * ended, no earlier than it could), every order delivered at most once by the courier that picked it up.
 * Returns the violations found (empty when feasible).
 */
export function checkFiles(instance: MdrpInstance, files: SolutionFiles): string[] {
  const errors: string[] = [];
  const { params: p } = instance;
  const travel = (a: Point, b: Point) => Math.ceil(Math.hypot(a.x - b.x, a.y - b.y) / p.metersPerMinute);
  const halfPick = p.pickupServiceMinutes / 2;
  const halfDrop = p.dropoffServiceMinutes / 2;
  const orders = new Map(instance.orders.map((o) => [o.id, o]));
  const couriers = new Map(instance.couriers.map((c) => [c.id, c]));
  const lines = (text: string) => text.trim().split("\n").slice(1).filter(Boolean).map((l) => l.trim().split(/\s+/));

  type Served = { placedAt: number; readyAt: number; pickupAt: number; dropoffAt: number; courierId: string };
  const served = new Map<string, Served>();
  for (const [id, placed, ready, pickup, dropoff, courierId] of lines(files.orders)) {
    const o = orders.get(id!);
    if (!o) errors.push(`orders: unknown order ${id}`);
    else if (served.has(id!)) errors.push(`orders: ${id} listed twice`);
    else if (Number(placed) !== o.placedAt || Number(ready) !== o.readyAt) errors.push(`orders: ${id} placement/ready times differ from the instance`);
    else if (!couriers.has(courierId!)) errors.push(`orders: ${id} names unknown courier ${courierId}`);
    else served.set(id!, { placedAt: o.placedAt, readyAt: o.readyAt, pickupAt: Number(pickup), dropoffAt: Number(dropoff), courierId: courierId! });
  }
  for (const [id, s] of served) {
    if (s.pickupAt < s.readyAt) errors.push(`orders: ${id} picked up at ${s.pickupAt} before ready at ${s.readyAt}`);
    if (s.pickupAt > couriers.get(s.courierId)!.offTime) errors.push(`orders: ${id} picked up at ${s.pickupAt} after courier ${s.courierId}'s shift`);
  }

  const inBundle = new Set<string>();
  for (const [at, pickup, courierId, ...ids] of lines(files.assignments)) {
    const bundle = ids.map((id) => orders.get(id));
    if (bundle.length === 0 || bundle.some((o) => !o)) {
      errors.push(`assignments: bad order list ${ids.join(",")}`);
      continue;
    }
    if (new Set(bundle.map((o) => o!.restaurantId)).size !== 1) errors.push(`assignments: bundle ${ids.join(",")} spans restaurants`);
    for (const o of bundle) {
      if (inBundle.has(o!.id)) errors.push(`assignments: ${o!.id} assigned twice`);
      inBundle.add(o!.id);
      if (Number(at) < o!.placedAt) errors.push(`assignments: ${o!.id} assigned at ${at} before it was placed at ${o!.placedAt}`);
      const s = served.get(o!.id);
      if (!s || s.courierId !== courierId || s.pickupAt !== Number(pickup)) errors.push(`assignments: ${o!.id} does not match the orders file`);
    }
  }
  for (const id of served.keys()) if (!inBundle.has(id)) errors.push(`orders: ${id} delivered without an assignment`);

  const where = (id: string, start: Point): Point | null => (id === "0" ? start : (instance.restaurants.get(id) ?? orders.get(id)?.dropoff ?? null));
  const byCourier = new Map<string, string[][]>();
  for (const row of lines(files.couriers)) {
    const list = byCourier.get(row[0]!) ?? [];
    list.push(row);
    byCourier.set(row[0]!, list);
  }
  const visited = new Set<string>();
  for (const [courierId, moves] of byCourier) {
    const c = couriers.get(courierId);
    if (!c) {
      errors.push(`couriers: unknown courier ${courierId}`);
      continue;
    }
    let at = "0";
    let free = c.onTime;
    // After arriving at a restaurant: when the courier could pick up, if it does.
    let pickupFrom: number | null = null;
    for (const [, dep, from, to] of moves) {
      const departAt = Number(dep);
      if (from !== at) errors.push(`couriers: ${courierId} leaves ${from} but is at ${at}`);
      const a = where(from!, c.start);
      const b = where(to!, c.start);
      if (!a || !b) {
        errors.push(`couriers: ${courierId} moves between unknown places ${from} → ${to}`);
        break;
      }
      if (instance.restaurants.has(from!) && orders.has(to!)) {
        // Leaving a restaurant with food: the pickup half-way through the service.
        const s = served.get(to!);
        if (pickupFrom === null || !s || s.pickupAt < pickupFrom || departAt < s.pickupAt + halfPick) errors.push(`couriers: ${courierId} leaves ${from} at ${departAt} inconsistent with pickup of ${to}`);
        free = Math.max(free, pickupFrom ?? free);
      }
      if (departAt < free) errors.push(`couriers: ${courierId} leaves ${from} at ${departAt}, before it is free at ${free}`);
      const arriveAt = departAt + travel(a, b);
      pickupFrom = null;
      if (instance.restaurants.has(to!)) {
        pickupFrom = arriveAt + halfPick;
        free = arriveAt;
      } else {
        const s = served.get(to!);
        if (!s || s.courierId !== courierId) errors.push(`couriers: ${courierId} drops off ${to}, not its order`);
        else {
          visited.add(to!);
          if (s.dropoffAt < arriveAt + halfDrop) errors.push(`couriers: ${to} dropped off at ${s.dropoffAt}, before ${arriveAt + halfDrop}`);
          free = s.dropoffAt + halfDrop;
        }
      }
      at = to!;
    }
  }
  for (const id of served.keys()) if (!visited.has(id)) errors.push(`couriers: nobody drove to ${id}`);
  return errors;
}

export function checkSolution(r: ReplayResult): string[] {
  return checkFiles(r.instance, solutionFiles(r));
}

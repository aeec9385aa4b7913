import type { Geometry, Minutes, ServiceTimes } from "./types";

/** One courier's trip: to the restaurant, pick the bundle up once all of it is ready, drop off in sequence. */
export type RouteStop<P> = { orderId: string; dropoff: P; placedAt: Minutes; readyAt: Minutes };

export type RoutePlan = {
  arriveAt: Minutes;
  pickupAt: Minutes;
  /** Drop-off times, in the sequence given. */
  dropoffAt: Minutes[];
  /** When the courier leaves the last customer. */
  endAt: Minutes;
  /** Minutes driving or in service (waiting for food excluded). */
  busyMinutes: Minutes;
};

/**
 * The MDRP rules: pickup = max(latest ready, arrival + half the pickup service), departure = pickup +
 * the other half; each drop-off = arrival + half the drop-off service, departure the other half later.
 */
export function planRoute<P>(
  start: P,
  departAt: Minutes,
  restaurant: P,
  stops: readonly RouteStop<P>[],
  geometry: Geometry<P>,
  service: ServiceTimes,
): RoutePlan {
  const approach = geometry.travelMinutes(start, restaurant);
  const arriveAt = departAt + approach;
  let ready = -Infinity;
  for (const s of stops) ready = Math.max(ready, s.readyAt);
  const pickupAt = Math.max(ready, arriveAt + service.pickupMinutes / 2);
  let t = pickupAt + service.pickupMinutes / 2;
  let busy = approach + service.pickupMinutes;
  let at = restaurant;
  const dropoffAt: Minutes[] = [];
  for (const s of stops) {
    const leg = geometry.travelMinutes(at, s.dropoff);
    t += leg + service.dropoffMinutes / 2;
    dropoffAt.push(t);
    t += service.dropoffMinutes / 2;
    busy += leg + service.dropoffMinutes;
    at = s.dropoff;
  }
  return { arriveAt, pickupAt, dropoffAt, endAt: t, busyMinutes: busy };
}

/** Every order of `items` in every sequence (bundles are small: at most a handful of orders). */
function permutations<T>(items: readonly T[]): T[][] {
  if (items.length <= 1) return [items.slice()];
  const out: T[][] = [];
  items.forEach((item, i) => {
    for (const rest of permutations([...items.slice(0, i), ...items.slice(i + 1)])) out.push([item, ...rest]);
  });
  return out;
}

/**
 * The drop-off sequence with the least total click-to-door (ties: the shorter trip). Exhaustive up to
 * four orders, nearest-next beyond.
 */
export function bestSequence<P>(restaurant: P, stops: readonly RouteStop<P>[], geometry: Geometry<P>): RouteStop<P>[] {
  if (stops.length <= 1) return stops.slice();
  if (stops.length <= 4) {
    let best: RouteStop<P>[] = stops.slice();
    let bestSum = Infinity;
    let bestEnd = Infinity;
    for (const seq of permutations(stops)) {
      let t = 0;
      let sum = 0;
      let at = restaurant;
      for (const s of seq) {
        t += geometry.travelMinutes(at, s.dropoff);
        sum += t;
        at = s.dropoff;
      }
      if (sum < bestSum || (sum === bestSum && t < bestEnd)) [best, bestSum, bestEnd] = [seq, sum, t];
    }
    return best;
  }
  const left = stops.slice();
  const seq: RouteStop<P>[] = [];
  let at = restaurant;
  while (left.length) {
    let k = 0;
    for (let i = 1; i < left.length; i++) if (geometry.travelMinutes(at, left[i]!.dropoff) < geometry.travelMinutes(at, left[k]!.dropoff)) k = i;
    const [next] = left.splice(k, 1);
    seq.push(next!);
    at = next!.dropoff;
  }
  return seq;
}

import type { ReplayResult } from "./replay";

/** The figures the MDRP literature reports (../shared/mdrp/README.md, Metrics). */
export type MdrpMetrics = {
  orders: number;
  delivered: number;
  undelivered: number;
  clickToDoorMean: number;
  clickToDoorP90: number;
  /** Share of delivered orders over the click-to-door target. */
  overTargetShare: number;
  readyToPickupMean: number;
  readyToPickupP90: number;
  readyToDoorMean: number;
  /** Share of on-duty time spent driving or in service. */
  utilisation: number;
  /** Total courier pay ÷ orders delivered. */
  costPerOrder: number;
  ordersPerBundle: number;
  failedPickups: number;
  wallMs: number;
};

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
}

export function mean(values: readonly number[]): number {
  return values.length ? values.reduce((a, b) => a + b, 0) / values.length : NaN;
}

/** Raw sums, so instances pool into an overall figure weighted by orders (as the paper's means are). */
export type MetricSamples = {
  clickToDoor: number[];
  readyToPickup: number[];
  readyToDoor: number[];
  orders: number;
  delivered: number;
  dutyMinutes: number;
  busyMinutes: number;
  pay: number;
  bundles: number;
  failedPickups: number;
  wallMs: number;
};

export function samplesOf(r: ReplayResult): MetricSamples {
  const { params } = r.instance;
  const done = r.orders.filter((o) => o.dropoffAt !== null);
  const deliveredBy = new Map<string, number>();
  for (const o of done) deliveredBy.set(o.courierId!, (deliveredBy.get(o.courierId!) ?? 0) + 1);
  let pay = 0;
  let dutyMinutes = 0;
  let busyMinutes = 0;
  for (const c of r.instance.couriers) {
    const duty = c.offTime - c.onTime;
    dutyMinutes += duty;
    busyMinutes += r.busyMinutes.get(c.id) ?? 0;
    pay += Math.max(params.payPerOrder * (deliveredBy.get(c.id) ?? 0), (params.payPerHour * duty) / 60);
  }
  return {
    clickToDoor: done.map((o) => o.dropoffAt! - o.order.placedAt),
    readyToPickup: done.map((o) => o.pickupAt! - o.order.readyAt),
    readyToDoor: done.map((o) => o.dropoffAt! - o.order.readyAt),
    orders: r.orders.length,
    delivered: done.length,
    dutyMinutes,
    busyMinutes,
    pay,
    bundles: r.assignments.length,
    failedPickups: r.failedPickups,
    wallMs: r.wallMs,
  };
}

export function pool(samples: readonly MetricSamples[]): MetricSamples {
  const out: MetricSamples = { clickToDoor: [], readyToPickup: [], readyToDoor: [], orders: 0, delivered: 0, dutyMinutes: 0, busyMinutes: 0, pay: 0, bundles: 0, failedPickups: 0, wallMs: 0 };
  for (const s of samples) {
    for (const v of s.clickToDoor) out.clickToDoor.push(v);
    for (const v of s.readyToPickup) out.readyToPickup.push(v);
    for (const v of s.readyToDoor) out.readyToDoor.push(v);
    out.orders += s.orders;
    out.delivered += s.delivered;
    out.dutyMinutes += s.dutyMinutes;
    out.busyMinutes += s.busyMinutes;
    out.pay += s.pay;
    out.bundles += s.bundles;
    out.failedPickups += s.failedPickups;
    out.wallMs += s.wallMs;
  }
  return out;
}

export function metricsOf(s: MetricSamples, targetClickToDoor: number): MdrpMetrics {
  return {
    orders: s.orders,
    delivered: s.delivered,
    undelivered: s.orders - s.delivered,
    clickToDoorMean: mean(s.clickToDoor),
    clickToDoorP90: percentile(s.clickToDoor, 0.9),
    overTargetShare: s.clickToDoor.filter((v) => v > targetClickToDoor).length / Math.max(1, s.delivered),
    readyToPickupMean: mean(s.readyToPickup),
    readyToPickupP90: percentile(s.readyToPickup, 0.9),
    readyToDoorMean: mean(s.readyToDoor),
    utilisation: s.busyMinutes / Math.max(1, s.dutyMinutes),
    costPerOrder: s.pay / Math.max(1, s.delivered),
    ordersPerBundle: s.delivered / Math.max(1, s.bundles),
    failedPickups: s.failedPickups,
    wallMs: s.wallMs,
  };
}

/**
 * Over several instances, as the paper reports them: each mean, share and ratio is the mean of the
 * instances' own figures (every instance counts once, whatever its size); counts are summed and the
 * 90th percentiles are of the pooled orders.
 */
export function averageOver(samples: readonly MetricSamples[], targetClickToDoor: number): MdrpMetrics & { undeliveredShare: number } {
  const each = samples.map((s) => metricsOf(s, targetClickToDoor));
  const pooled = metricsOf(pool(samples), targetClickToDoor);
  const avg = (f: (m: MdrpMetrics) => number) => mean(each.map(f));
  return {
    ...pooled,
    clickToDoorMean: avg((m) => m.clickToDoorMean),
    overTargetShare: avg((m) => m.overTargetShare),
    readyToPickupMean: avg((m) => m.readyToPickupMean),
    readyToDoorMean: avg((m) => m.readyToDoorMean),
    utilisation: avg((m) => m.utilisation),
    costPerOrder: avg((m) => m.costPerOrder),
    ordersPerBundle: avg((m) => m.ordersPerBundle),
    undeliveredShare: avg((m) => m.undelivered / Math.max(1, m.orders)),
  };
}

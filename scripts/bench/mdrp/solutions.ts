import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ReplayResult } from "./replay";

/**
 * The three files the MDRP library's evaluator reads, space-separated with one header line each,
 * times in whole minutes: `DIR/<instance>/<policy>/solution_info_{assignments,orders,couriers}.txt`.
 */
export type SolutionFiles = { assignments: string; orders: string; couriers: string };

export function solutionFiles(r: ReplayResult): SolutionFiles {
  const whole = (t: number) => {
    if (!Number.isInteger(t)) throw new Error(`${r.instance.name}: time ${t} is not a whole minute`);
    return String(t);
  };
  const assignments = ["assignment_time pickup_time courier orders"];
  for (const a of [...r.assignments].sort((x, y) => x.at - y.at || (x.courierId < y.courierId ? -1 : 1))) {
    assignments.push([whole(a.at), whole(a.pickupAt), a.courierId, ...a.orderIds].join(" "));
  }
  const orders = ["order placement_time ready_time pickup_time dropoff_time courier"];
  for (const o of r.orders) {
    if (o.dropoffAt === null) continue;
    orders.push([o.order.id, whole(o.order.placedAt), whole(o.order.readyAt), whole(o.pickupAt!), whole(o.dropoffAt), o.courierId].join(" "));
  }
  const couriers = ["courier departure_time origin destination"];
  for (const [id, moves] of r.moves) for (const m of moves) couriers.push([id, whole(m.departAt), m.from, m.to].join(" "));
  return { assignments: assignments.join("\n") + "\n", orders: orders.join("\n") + "\n", couriers: couriers.join("\n") + "\n" };
}

export function writeSolution(dir: string, r: ReplayResult): string {
  const out = join(dir, r.instance.name, r.policy);
  mkdirSync(out, { recursive: true });
  const files = solutionFiles(r);
  writeFileSync(join(out, "solution_info_assignments.txt"), files.assignments);
  writeFileSync(join(out, "solution_info_orders.txt"), files.orders);
  writeFileSync(join(out, "solution_info_couriers.txt"), files.couriers);
  return out;
}

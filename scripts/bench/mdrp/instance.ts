import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename, join } from "node:path";

/** One Meal Delivery Routing Problem instance (../shared/mdrp/README.md): times in minutes, points in metres. */
export type Point = { x: number; y: number };
export type MdrpOrder = { id: string; dropoff: Point; placedAt: number; restaurantId: string; readyAt: number };
export type MdrpCourier = { id: string; start: Point; onTime: number; offTime: number };
export type MdrpParams = {
  metersPerMinute: number;
  pickupServiceMinutes: number;
  dropoffServiceMinutes: number;
  targetClickToDoor: number;
  maxClickToDoor: number;
  payPerOrder: number;
  payPerHour: number;
};
export type MdrpInstance = {
  name: string;
  restaurants: Map<string, Point>;
  orders: MdrpOrder[];
  couriers: MdrpCourier[];
  params: MdrpParams;
};

/** Where the instances are expected, relative to the repository. */
export const MDRP_DATA_DIR = join(import.meta.dir, "../../../../shared/mdrp/instances");

const FILES = ["restaurants.txt", "orders.txt", "couriers.txt", "instance_parameters.txt"];

function rows(path: string): string[][] {
  const lines = readFileSync(path, "utf8").split(/\r?\n/).filter((l) => l.trim() !== "");
  return lines.slice(1).map((l) => l.trim().split(/\t+|\s{2,}|\s/));
}

function num(value: string | undefined, what: string): number {
  const n = Number(value);
  if (value === undefined || !Number.isFinite(n)) throw new Error(`${what}: not a number (${value})`);
  return n;
}

export function isInstanceDir(dir: string): boolean {
  return FILES.every((f) => existsSync(join(dir, f)));
}

/** The instance folders named: each DIR is an instance or a folder of them (sorted by name). */
export function findInstances(dirs: readonly string[]): string[] {
  const out: string[] = [];
  for (const dir of dirs) {
    if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new Error(`${dir}: no such folder`);
    if (isInstanceDir(dir)) out.push(dir);
    else {
      const found = readdirSync(dir)
        .map((d) => join(dir, d))
        .filter((d) => statSync(d).isDirectory() && isInstanceDir(d))
        .sort();
      if (found.length === 0) throw new Error(`${dir}: neither an instance nor a folder of instances`);
      out.push(...found);
    }
  }
  return out;
}

export function loadInstance(dir: string): MdrpInstance {
  const restaurants = new Map<string, Point>();
  for (const [id, x, y] of rows(join(dir, "restaurants.txt"))) restaurants.set(id!, { x: num(x, `${dir} restaurant ${id} x`), y: num(y, "y") });
  const orders = rows(join(dir, "orders.txt")).map(([id, x, y, placed, restaurantId, ready]) => {
    if (!restaurants.has(restaurantId!)) throw new Error(`${dir}: order ${id} names unknown restaurant ${restaurantId}`);
    return { id: id!, dropoff: { x: num(x, `order ${id} x`), y: num(y, "y") }, placedAt: num(placed, "placement_time"), restaurantId: restaurantId!, readyAt: num(ready, "ready_time") };
  });
  const couriers = rows(join(dir, "couriers.txt")).map(([id, x, y, on, off]) => ({
    id: id!,
    start: { x: num(x, `courier ${id} x`), y: num(y, "y") },
    onTime: num(on, "on_time"),
    offTime: num(off, "off_time"),
  }));
  const p = rows(join(dir, "instance_parameters.txt"))[0]!.map((v, i) => num(v, `instance_parameters column ${i + 1}`));
  const [metersPerMinute, pickupServiceMinutes, dropoffServiceMinutes, targetClickToDoor, maxClickToDoor, payPerOrder, payPerHour] = p as [
    number, number, number, number, number, number, number,
  ];
  return {
    name: basename(dir),
    restaurants,
    orders,
    couriers,
    params: { metersPerMinute, pickupServiceMinutes, dropoffServiceMinutes, targetClickToDoor, maxClickToDoor, payPerOrder, payPerHour },
  };
}

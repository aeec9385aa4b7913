import { describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEFAULT_BATCHED, type PolicyParams } from "../../src/modules/couriers/planning";
import { checkFiles, checkSolution } from "../../scripts/bench/mdrp/check";
import { loadInstance, MDRP_DATA_DIR } from "../../scripts/bench/mdrp/instance";
import { metricsOf, samplesOf } from "../../scripts/bench/mdrp/metrics";
import { replay } from "../../scripts/bench/mdrp/replay";
import { solutionFiles } from "../../scripts/bench/mdrp/solutions";
import { REPO_ROOT } from "../helpers/processes";

/** The MDRP replay (bun run bench:mdrp) on a few small public instances, read from ../shared/mdrp (never copied here). */
const SMALL = ["0o50t75s2p100", "0r50t100s1p125"];

function instanceDir(name: string): string {
  const dir = join(MDRP_DATA_DIR, name);
  if (!existsSync(dir)) throw new Error(`MDRP instance ${name} missing: expected in ${MDRP_DATA_DIR} (../shared/mdrp/instances, see ../shared/mdrp/README.md)`);
  return dir;
}

const params: PolicyParams = { nearest: { radiusMeters: 8000, maxActive: 1 }, batched: DEFAULT_BATCHED };

describe("MDRP replay", () => {
  for (const name of SMALL) {
    test(`${name}: both policies give feasible solutions; batched delivers everything, faster and with less waiting for food than nearest`, () => {
      const instance = loadInstance(instanceDir(name));
      const nearest = replay(instance, { policy: "nearest", params, estimatedReady: false });
      const batched = replay(instance, { policy: "batched", params, estimatedReady: false });
      expect(checkSolution(nearest)).toEqual([]);
      expect(checkSolution(batched)).toEqual([]);
      const n = metricsOf(samplesOf(nearest), 40);
      const b = metricsOf(samplesOf(batched), 40);
      expect(b.orders).toBe(instance.orders.length);
      expect(b.undelivered).toBe(0);
      expect(b.clickToDoorMean).toBeLessThan(n.clickToDoorMean);
      expect(b.readyToPickupMean).toBeLessThan(n.readyToPickupMean);
      // No order is picked up before it is ready, and every delivered order has its courier.
      for (const o of batched.orders) {
        if (o.dropoffAt === null) continue;
        expect(o.pickupAt!).toBeGreaterThanOrEqual(o.order.readyAt);
        expect(o.courierId).not.toBeNull();
      }
    });
  }

  test("with estimated ready times the policy still delivers everything, feasibly", () => {
    const instance = loadInstance(instanceDir(SMALL[0]!));
    const r = replay(instance, { policy: "batched", params, estimatedReady: true });
    expect(checkSolution(r)).toEqual([]);
    expect(metricsOf(samplesOf(r), 40).undelivered).toBe(0);
  });

  test("with repositioning on, couriers sent ahead to restaurants still give a feasible solution delivering everything", () => {
    const instance = loadInstance(instanceDir(SMALL[0]!));
    const r = replay(instance, { policy: "batched", params: { ...params, batched: { ...DEFAULT_BATCHED, repositionWithinMinutes: 20 } }, estimatedReady: false });
    expect(r.repositions).toBeGreaterThan(0);
    expect(checkSolution(r)).toEqual([]);
    expect(metricsOf(samplesOf(r), 40).undelivered).toBe(0);
  });

  test("the feasibility check catches a pickup before the food is ready and an order delivered twice", () => {
    const instance = loadInstance(instanceDir(SMALL[0]!));
    const files = solutionFiles(replay(instance, { policy: "batched", params, estimatedReady: false }));
    const [head, first, ...rest] = files.orders.trim().split("\n");
    const f = first!.split(" ");
    const early = [f[0], f[1], f[2], String(Number(f[2]) - 1), f[4], f[5]].join(" ");
    expect(checkFiles(instance, { ...files, orders: [head, early, ...rest].join("\n") }).join("\n")).toContain("before ready");
    expect(checkFiles(instance, { ...files, orders: [head, first, first, ...rest].join("\n") }).join("\n")).toContain("listed twice");
  });

  test("bun run bench:mdrp -- --policy both --solutions DIR --json FILE prints the table and writes the evaluator's three files", async () => {
    const out = mkdtempSync(join(tmpdir(), "mdrp-"));
    try {
      const proc = Bun.spawn(["bun", "run", "bench:mdrp", "--", "--policy", "both", "--solutions", out, "--json", join(out, "r.json"), instanceDir(SMALL[0]!)], {
        cwd: REPO_ROOT,
        stdout: "pipe",
        stderr: "pipe",
      });
      const [text, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
      expect({ code, err }).toEqual({ code: 0, err: expect.any(String) });
      expect(text).toContain("batched ÷ nearest: click-to-door");
      for (const policy of ["nearest", "batched"]) {
        const dir = join(out, SMALL[0]!, policy);
        expect(readFileSync(join(dir, "solution_info_assignments.txt"), "utf8").split("\n")[0]).toBe("assignment_time pickup_time courier orders");
        expect(readFileSync(join(dir, "solution_info_orders.txt"), "utf8").split("\n")[0]).toBe("order placement_time ready_time pickup_time dropoff_time courier");
        const moves = readFileSync(join(dir, "solution_info_couriers.txt"), "utf8").trim().split("\n");
        expect(moves[0]).toBe("courier departure_time origin destination");
        expect(moves[1]!.split(" ")[2]).toBe("0");
      }
      const json = JSON.parse(readFileSync(join(out, "r.json"), "utf8"));
      expect(json.instances).toHaveLength(2);
      expect(json.overall.batched.undelivered).toBe(0);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 60_000);
});

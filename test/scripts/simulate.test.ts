import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { runSimulation } from "../../scripts/simulate";
import { startTestServer, type TestServer } from "../helpers/server";
import { REPO_ROOT } from "../helpers/processes";
import { COLLECTIONS } from "../../src/db/mongo";

/** The simulator (scripts/simulate.ts, `bun run simulate`) against a real server: what it reports is what the server holds. */
let server: TestServer;

beforeAll(async () => {
  server = await startTestServer({ COURIER_LOCATION_INTERVAL_MS: "100", DISPATCH_RETRY_SECONDS: "1" });
});

afterAll(async () => {
  await server?.stop();
});

type Line = Record<string, any>;

describe("bun run simulate", () => {
  // The two sped-up runs (own servers) go side by side; the time-limit run on the first server after them.
  test.concurrent("a short sped-up run over HTTP and /ws exits by itself with every order delivered or rejected: 0 lost, 0 stuck", async () => {
    const proc = Bun.spawn(
      ["bun", "run", "simulate", "--", "--url", server.url, "--restaurants", "2", "--couriers", "4", "--customers", "5", "--minutes", "0.1", "--speedup", "60", "--tick-ms", "100", "--drain-minutes", "0.5", "--accept-share", "0.9", "--seed", "3"],
      { cwd: REPO_ROOT, stdout: "pipe", stderr: "pipe" },
    );
    const timer = setTimeout(() => proc.kill("SIGKILL"), 50_000);
    const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    clearTimeout(timer);
    expect({ code, err: err.slice(-500) }).toEqual({ code: 0, err: expect.any(String) });
    const lines: Line[] = out.trim().split("\n").map((l) => JSON.parse(l) as Line);
    const summary = lines.at(-1)!;
    expect(summary).toMatchObject({ event: "summary", phase: "done", lost: 0, stuck: 0, errors: 0, unfinished: 0 });
    expect(summary.orders).toBeGreaterThan(0);
    expect(summary.delivered).toBeGreaterThan(0);
    expect(summary.delivered + summary.rejected).toBe(summary.orders);
    expect(summary.medianAssignS).toBeGreaterThan(0);
    expect(summary.medianDeliveryS).toBeGreaterThan(summary.medianAssignS);
    expect(summary.offers).toBeGreaterThanOrEqual(summary.delivered);
    expect(summary.approaching).toBeGreaterThan(0);
    expect(lines.some((l) => l.event === "progress")).toBe(true);

    // The server agrees: every order final, each delivered one assigned through an offer, couriers' positions stored.
    const docs = await server.deps.db.db.collection(COLLECTIONS.orders).find({}).toArray();
    expect(docs.length).toBe(summary.orders);
    for (const d of docs) {
      expect(["delivered", "rejected"]).toContain(d.status);
      if (d.status !== "delivered") continue;
      const events = (d.history as Array<{ event: string }>).map((h) => h.event);
      expect(events.filter((e) => e === "OFFER_ACCEPT").length).toBe(1);
      expect(events.slice(-2)).toEqual(["PICK_UP", "DELIVER"]);
    }
    const drivers = [...new Set(docs.map((d) => d.courierId).filter((id): id is string => typeof id === "string"))];
    expect(await server.deps.db.db.collection(COLLECTIONS.couriers).countDocuments({ _id: { $in: drivers as never[] }, position: { $exists: true } })).toBe(drivers.length);
  }, 60_000);

  test.concurrent("against DISPATCH_POLICY=batched (bundles of up to 3): couriers carry every order of the bundles they accept; 0 lost, 0 stuck; the MDRP metrics are reported", async () => {
    const batched = await startTestServer({ COURIER_LOCATION_INTERVAL_MS: "100", DISPATCH_POLICY: "batched", DISPATCH_INTERVAL_SECONDS: "1", COURIER_MAX_ACTIVE: "3" });
    try {
      const proc = Bun.spawn(
        ["bun", "run", "simulate", "--", "--url", batched.url, "--restaurants", "2", "--couriers", "2", "--customers", "8", "--minutes", "0.1", "--speedup", "60", "--tick-ms", "100", "--drain-minutes", "1", "--accept-share", "1", "--reject-share", "0", "--seed", "5"],
        { cwd: REPO_ROOT, stdout: "pipe", stderr: "pipe" },
      );
      const timer = setTimeout(() => proc.kill("SIGKILL"), 80_000);
      const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
      clearTimeout(timer);
      expect({ code, err: err.slice(-500) }).toEqual({ code: 0, err: expect.any(String) });
      const summary = out.trim().split("\n").map((l) => JSON.parse(l) as Line).at(-1)!;
      expect(summary).toMatchObject({ event: "summary", phase: "done", lost: 0, stuck: 0, errors: 0, unfinished: 0 });
      expect(summary.delivered).toBe(summary.orders);
      expect(summary.clickToDoorMeanMin).toBeGreaterThan(0);
      expect(summary.clickToDoorP90Min).toBeGreaterThanOrEqual(summary.clickToDoorMeanMin * 0.5);
      expect(summary.readyToPickupMeanMin).toBeGreaterThanOrEqual(0);
      expect(summary.ordersPerBundle).toBeGreaterThanOrEqual(1);
      const docs = await batched.deps.db.db.collection(COLLECTIONS.orders).find({}).toArray();
      for (const d of docs) {
        const events = (d.history as Array<{ event: string }>).map((h) => h.event);
        expect(events.filter((e) => e === "OFFER_ACCEPT").length).toBe(1);
        expect(events.slice(-2)).toEqual(["PICK_UP", "DELIVER"]);
      }
    } finally {
      await batched.stop();
    }
  }, 100_000);

  test("stops by itself at its time limit, whatever is still moving, and reports what is left open", async () => {
    const started = performance.now();
    const result = await runSimulation({ url: server.url, restaurants: 1, couriers: 1, customers: 2, durationSeconds: 0.6, seed: 9 });
    expect(performance.now() - started).toBeLessThan(5_000);
    expect(result.unfinished).toBeGreaterThan(0);
    expect(result.stuck).toBe(result.unfinished); // still open when it stopped
    expect(result.lost).toBe(0);
  });
});

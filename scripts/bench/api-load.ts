/**
 * bench:api's load generator, a process of its own (scripts/bench/api.ts starts one per
 * measurement): `clients` concurrent loops for `seconds`, each timing its requests. Reads one
 * JSON job from argv[2], prints one JSON result line on stdout.
 *
 * Jobs: "health" (GET /health), "transitions" (per client: place an order, untimed, then drive
 * it placed → delivered: 6 timed transitions), "commit" (the driver's findOneAndUpdate by _id
 * and version on the engine itself, on copies of a real order: the floor of a transition's write).
 */
import { MongoClient, ObjectId, type Document } from "mongodb";
import { Failures, stats } from "./lib";

export type Cast = { customer: string; owner: string; courier: string; restaurantId: string; menuItemId: string };
export type Job =
  | { kind: "health"; url: string; clients: number; seconds: number }
  | { kind: "transitions"; url: string; clients: number; seconds: number; casts: Cast[] }
  | { kind: "commit"; engineUri: string; db: string; templateId: string; clients: number; seconds: number };
export type LoadResult = { ops: number; seconds: number; p50: number; p99: number; failures: { count: number; first: string[] } };

type Timed = <T>(p: () => Promise<T>) => Promise<T>;

async function run(clients: number, seconds: number, failures: Failures, step: (i: number, timed: Timed) => Promise<void>): Promise<LoadResult> {
  const latencies: number[] = [];
  const timed: Timed = async (p) => {
    const t0 = performance.now();
    const out = await p();
    latencies.push(performance.now() - t0);
    return out;
  };
  const started = performance.now();
  const until = started + seconds * 1000;
  await Promise.all(
    Array.from({ length: clients }, async (_, i) => {
      while (performance.now() < until) {
        try {
          await step(i, timed);
        } catch (err) {
          failures.add(err instanceof Error ? err.message : String(err));
          await Bun.sleep(5); // a failing loop must not spin
        }
      }
    }),
  );
  const s = stats(latencies);
  return { ops: s.n, seconds: (performance.now() - started) / 1000, p50: s.p50, p99: s.p99, failures: { count: failures.count, first: failures.first } };
}

async function http(url: string, method: string, token?: string, body?: unknown): Promise<Document> {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  if (res.status >= 300) throw new Error(`${method} ${new URL(url).pathname}: ${res.status} ${text.slice(0, 300)}`);
  return text ? (JSON.parse(text) as Document) : {};
}

async function main(): Promise<void> {
  const job = JSON.parse(process.argv[2] ?? "{}") as Job;
  const failures = new Failures();
  let result: LoadResult;
  switch (job.kind) {
    case "health":
      result = await run(job.clients, job.seconds, failures, (_, timed) => timed(() => http(`${job.url}/health`, "GET")).then(() => undefined));
      break;
    case "transitions": {
      const moves: Array<[string, keyof Cast, string | null]> = [
        ["PATCH", "owner", "accepted"],
        ["POST", "courier", null],
        ["PATCH", "owner", "preparing"],
        ["PATCH", "owner", "ready_for_pickup"],
        ["PATCH", "courier", "picked_up"],
        ["PATCH", "courier", "delivered"],
      ];
      result = await run(job.clients, job.seconds, failures, async (i, timed) => {
        const k = job.casts[i];
        const order = await http(`${job.url}/orders`, "POST", k.customer, {
          restaurantId: k.restaurantId,
          items: [{ menuItemId: k.menuItemId, quantity: 1 }],
          deliveryLocation: { lat: 48.86, lng: 2.36 },
        });
        for (const [method, who, status] of moves) {
          const path = status === null ? `/orders/${order.id}/claim` : `/orders/${order.id}`;
          await timed(() => http(`${job.url}${path}`, method, k[who], status === null ? undefined : { status }));
        }
      });
      break;
    }
    case "commit": {
      const client = new MongoClient(job.engineUri, { maxPoolSize: Math.max(10, job.clients) });
      await client.connect();
      try {
        const db = client.db(job.db);
        const template = await db.collection("orders").findOne({ _id: new ObjectId(job.templateId) });
        if (!template) throw new Error(`template order ${job.templateId} not found`);
        const coll = db.collection("bench_raw_commit");
        const ids = Array.from({ length: job.clients }, () => new ObjectId());
        await coll.insertMany(ids.map((_id) => ({ ...template, _id, version: 0 })));
        const versions = ids.map(() => 0);
        result = await run(job.clients, job.seconds, failures, async (i, timed) => {
          const at = new Date();
          const doc = await timed(() =>
            coll.findOneAndUpdate(
              { _id: ids[i], version: versions[i] },
              { $set: { status: versions[i] % 2 ? "preparing" : "accepted", updatedAt: at }, $inc: { version: 1 } },
              { returnDocument: "after" },
            ),
          );
          if (!doc) throw new Error("raw commit: compare-and-set missed");
          versions[i]++;
        });
        await coll.drop();
      } finally {
        await client.close();
      }
      break;
    }
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

await main();
process.exit(0);

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startTestServer, type TestServer } from "../helpers/server";
import { startRedis, type TestRedis } from "../helpers/redis";
import { WsClient } from "../helpers/ws";
import { dropExternalDatabase, uniqueDatabaseName } from "../helpers/database";
import { cast, orderIn, patch, placeOrder, type Cast } from "../modules/orders/fixtures";
import { topics } from "../../src/events/topics";
import { TimerStore, TimerSweeper, timerFields, type TimerDoc } from "../../src/db/timers";
import { ObjectId } from "mongodb";
import { isLocalRequest } from "../../src/http/client-ip";

/**
 * GET /metrics scraped after real HTTP and WebSocket traffic: each check reads a value,
 * makes requests, scrapes again and asserts by how much the value moved.
 */

type Labels = Record<string, string>;

/** One sample of the exposition text, or undefined when the series is absent. */
function sample(text: string, name: string, labels: Labels = {}): number | undefined {
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || line === "") continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got: Labels = {};
    for (const pair of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) got[pair[1]] = pair[2];
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3]);
  }
  return undefined;
}

/** Every label set a metric has in the text. */
function labelSets(text: string, name: string): Labels[] {
  const out: Labels[] = [];
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\} \S+$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got: Labels = {};
    for (const pair of m[2].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) got[pair[1]] = pair[2];
    out.push(got);
  }
  return out;
}

async function scrape(server: TestServer, token?: string): Promise<string> {
  const res = await fetch(`${server.url}/metrics`, token ? { headers: { authorization: `Bearer ${token}` } } : {});
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toContain("text/plain; version=0.0.4");
  return res.text();
}

const value = (text: string, name: string, labels: Labels = {}) => sample(text, name, labels) ?? 0;

let server: TestServer;
let c: Cast;

beforeAll(async () => {
  server = await startTestServer({ METRICS_ORDERS_CACHE_MS: "0" });
  c = await cast(server);
});

afterAll(async () => {
  await server?.stop();
});

describe("GET /metrics: HTTP requests", () => {
  test("counts requests by method, route pattern and status, with latency histograms", async () => {
    const before = await scrape(server);
    const byId = { method: "GET", route: "/orders/:id", status: "404" };
    const created = { method: "POST", route: "/auth/register", status: "201" };
    const invalid = { method: "POST", route: "/auth/login", status: "400" };
    const unmatched = { method: "GET", route: "(unmatched)", status: "404" };

    for (let i = 0; i < 3; i++) expect((await server.request("GET", `/orders/${"0".repeat(23)}${i}`, { token: c.customer.token })).status).toBe(404);
    await server.register("customer");
    expect((await server.request("POST", "/auth/login", { body: { email: "nobody" } })).status).toBe(400);
    expect((await server.request("GET", "/no/such/path/abc123")).status).toBe(404);
    const after = await scrape(server);

    expect(value(after, "dispatch_http_requests_total", byId) - value(before, "dispatch_http_requests_total", byId)).toBe(3);
    expect(value(after, "dispatch_http_requests_total", created) - value(before, "dispatch_http_requests_total", created)).toBe(1);
    expect(value(after, "dispatch_http_requests_total", invalid) - value(before, "dispatch_http_requests_total", invalid)).toBe(1);
    expect(value(after, "dispatch_http_requests_total", unmatched) - value(before, "dispatch_http_requests_total", unmatched)).toBe(1);
    // Latency: the histogram counted the same requests, and its +Inf bucket equals its count.
    const count = value(after, "dispatch_http_request_duration_seconds_count", byId);
    expect(count - value(before, "dispatch_http_request_duration_seconds_count", byId)).toBe(3);
    expect(value(after, "dispatch_http_request_duration_seconds_bucket", { ...byId, le: "+Inf" })).toBe(count);
    expect(value(after, "dispatch_http_request_duration_seconds_sum", byId)).toBeGreaterThan(0);
    // Routes are patterns, never raw paths (no ids, no stray paths).
    const routes = labelSets(after, "dispatch_http_requests_total").map((l) => l.route);
    expect(routes.some((r) => /[0-9a-f]{24}|abc123/.test(r))).toBe(false);
  });

  test("the body-size refusal (413) is counted with its status", async () => {
    const labels = { method: "POST", route: "(unmatched)", status: "413" };
    const before = value(await scrape(server), "dispatch_http_requests_total", labels);
    const res = await fetch(`${server.url}/orders`, { method: "POST", headers: { "content-type": "application/json" }, body: "x".repeat(64 * 1024 + 100) }); // over the limit, under the hard cap Bun enforces itself
    expect(res.status).toBe(413);
    expect(res.headers.get("content-type")).toContain("application/problem+json");
    expect(((await res.json()) as { status: number; requestId?: string }).requestId).toBe(res.headers.get("x-request-id") ?? "missing");
    expect(value(await scrape(server), "dispatch_http_requests_total", labels) - before).toBe(1);
  });
});

describe("GET /metrics: orders", () => {
  test("orders by status follow the database; transitions and their latency are counted", async () => {
    const before = await scrape(server);
    const order = await placeOrder(server, c);
    expect((await patch(server, c.owner, order.id, "accepted")).status).toBe(200);
    const delivered = await orderIn(server, c, "delivered");
    expect((await patch(server, c.customer, delivered.id, "cancelled")).status).toBe(409); // refused
    const after = await scrape(server);

    const delta = (name: string, labels: Labels) => value(after, name, labels) - value(before, name, labels);
    expect(delta("dispatch_orders", { status: "accepted" })).toBe(1);
    expect(delta("dispatch_orders", { status: "delivered" })).toBe(1);
    expect(delta("dispatch_order_transitions_total", { from: "none", to: "placed" })).toBe(2);
    expect(delta("dispatch_order_transitions_total", { from: "placed", to: "accepted" })).toBe(2);
    expect(delta("dispatch_order_transitions_total", { from: "picked_up", to: "delivered" })).toBe(1);
    expect(delta("dispatch_order_transition_duration_seconds_count", { event: "ACCEPT", outcome: "committed" })).toBe(2);
    expect(delta("dispatch_order_transition_duration_seconds_count", { event: "CANCEL", outcome: "refused" })).toBe(1);
    // The accepted order is still live in the registry (a delivered one is dropped).
    expect(value(after, "dispatch_order_actors")).toBeGreaterThanOrEqual(1);
    // Every status is exported, zeros included, so dashboards see a series from the start.
    expect(labelSets(after, "dispatch_orders").map((l) => l.status).sort()).toEqual(
      ["accepted", "cancelled", "delivered", "picked_up", "placed", "preparing", "ready_for_pickup", "rejected"],
    );
  });
});

describe("GET /metrics: WebSocket", () => {
  test("connections and messages in both directions", async () => {
    const before = await scrape(server);
    const order = await placeOrder(server, c);
    const client = await WsClient.open(server.url.replace(/^http/, "ws") + "/ws", c.customer.token);
    try {
      expect((await client.subscribe(topics.order(order.id))).type).toBe("subscribed");
      client.send("not json");
      await client.drain();
      expect((await patch(server, c.owner, order.id, "accepted")).status).toBe(200);
      await client.next((f) => f.type === "order.updated");
      const during = await scrape(server);
      const delta = (name: string, labels: Labels = {}) => value(during, name, labels) - value(before, name, labels);
      expect(value(during, "dispatch_ws_connections")).toBe(1);
      expect(delta("dispatch_ws_connections_opened_total")).toBe(1);
      expect(delta("dispatch_ws_messages_received_total", { op: "subscribe" })).toBe(1);
      expect(delta("dispatch_ws_messages_received_total", { op: "ping" })).toBe(1);
      expect(delta("dispatch_ws_messages_received_total", { op: "invalid" })).toBe(1);
      // subscribed + error + pong are replies; the PATCH reached the one subscriber of the order topic.
      expect(delta("dispatch_ws_messages_sent_total", { kind: "reply" })).toBe(3);
      expect(delta("dispatch_ws_messages_sent_total", { kind: "order" })).toBe(1);
      expect(value(during, "dispatch_http_requests_total", { method: "GET", route: "/ws", status: "101" })).toBeGreaterThanOrEqual(1);
    } finally {
      client.close();
      await client.closed;
    }
    const deadline = Date.now() + 2_000;
    while (value(await scrape(server), "dispatch_ws_connections") !== 0) {
      if (Date.now() > deadline) throw new Error("dispatch_ws_connections did not return to 0");
      await Bun.sleep(10);
    }
  });
});

describe("GET /metrics: registries, hooks and access", () => {
  test("two apps in one process keep separate registries", async () => {
    const other = await startTestServer();
    try {
      const route = { method: "GET", route: "/health", status: "200" };
      const mineBefore = value(await scrape(server), "dispatch_http_requests_total", route);
      for (let i = 0; i < 4; i++) await fetch(`${other.url}/health`);
      expect(value(await scrape(other), "dispatch_http_requests_total", route)).toBe(4);
      expect(value(await scrape(server), "dispatch_http_requests_total", route)).toBe(mineBefore);
    } finally {
      await other.stop();
    }
  });

  test("a durable timer fired late is observed with its lag", async () => {
    // A timer two seconds overdue, in a scratch collection, fired by the real sweeper.
    const col = server.deps.db.db.collection<TimerDoc>("metrics_timer_test");
    const dueAt = new Date(server.deps.clock.now().getTime() - 2_000);
    await col.insertOne({ _id: new ObjectId(), ...timerFields([{ kind: "test_timer", dueAt, ref: 1 }]) });
    const fired: string[] = [];
    const sweeper = new TimerSweeper({
      store: new TimerStore(col),
      owner: "metrics-test",
      clock: server.deps.clock,
      log: server.deps.log,
      intervalMs: 60_000,
      leaseMs: 5_000,
      fire: async (_id, timer) => (fired.push(timer.kind), "fired"),
      metrics: server.deps.metrics,
    });
    sweeper.start(); // its own first sweep is a minute away: sweep now
    const swept = await sweeper.sweep();
    await sweeper.stop();
    expect(swept).toBe(1);
    expect(fired).toEqual(["test_timer"]);
    const text = await scrape(server);
    expect(value(text, "dispatch_timer_lag_seconds_count", { timer: "test_timer" })).toBe(1);
    expect(value(text, "dispatch_timer_lag_seconds_bucket", { timer: "test_timer", le: "1" })).toBe(0);
    expect(value(text, "dispatch_timer_lag_seconds_bucket", { timer: "test_timer", le: "5" })).toBe(1);
    await col.drop();
  });

  test("process metrics come along (CPU, memory, event-loop lag)", async () => {
    const text = await scrape(server);
    expect(value(text, "process_resident_memory_bytes")).toBeGreaterThan(0);
    expect(sample(text, "nodejs_eventloop_lag_seconds")).toBeDefined();
  });

  test("with METRICS_TOKEN set, scrapers must present it", async () => {
    const token = "scrape-token-0123456789";
    const guarded = await startTestServer({ METRICS_TOKEN: token });
    try {
      const anonymous = await fetch(`${guarded.url}/metrics`);
      expect(anonymous.status).toBe(401);
      expect(anonymous.headers.get("content-type")).toContain("application/problem+json");
      expect((await fetch(`${guarded.url}/metrics`, { headers: { authorization: "Bearer wrong-token-0123456789" } })).status).toBe(401);
      expect(await scrape(guarded, token)).toContain("dispatch_http_requests_total");
    } finally {
      await guarded.stop();
    }
  });

  test("without METRICS_TOKEN only this machine may scrape: a relayed request (X-Forwarded-For, Forwarded) gets 403", async () => {
    expect(await scrape(server)).toContain("dispatch_http_requests_total"); // loopback peer, nothing relayed
    for (const relayed of [{ "x-forwarded-for": "203.0.113.9" }, { forwarded: "for=203.0.113.9" }] as Record<string, string>[]) {
      const res = await fetch(`${server.url}/metrics`, { headers: relayed });
      expect(res.status).toBe(403);
      expect(res.headers.get("content-type")).toContain("application/problem+json");
      expect(((await res.json()) as { detail: string }).detail).toContain("METRICS_TOKEN");
    }
  });

  test("a caller is local only when the socket's peer is a loopback address", () => {
    const from = (address: string) => ({ requestIP: () => ({ address }) });
    const plain = new Request("http://example.test/metrics");
    for (const local of ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"]) expect({ local, is: isLocalRequest(plain, from(local)) }).toEqual({ local, is: true });
    for (const remote of ["192.0.2.2", "10.0.0.1", "::ffff:192.168.1.5", "fe80::1", "2001:db8::1"]) expect({ remote, is: isLocalRequest(plain, from(remote)) }).toEqual({ remote, is: false });
    expect(isLocalRequest(plain, null)).toBe(false);
  });

  test("a database failure under a request is counted", async () => {
    const broken = await startTestServer();
    try {
      const admin = await broken.register("admin");
      await broken.deps.db.client.close(); // the database goes away under the running server
      expect((await broken.request("GET", "/orders", { token: admin.token })).status).toBe(500);
      expect(value(await scrape(broken), "dispatch_db_errors_total", { kind: "request" })).toBe(1);
    } finally {
      await broken.stop();
      await dropExternalDatabase(broken.deps.config.MONGODB_DB); // its own client could not
    }
  });
});

describe("GET /metrics: Redis relay", () => {
  let redis: TestRedis;
  const shared = uniqueDatabaseName("relay");
  let a: TestServer;
  let b: TestServer;

  beforeAll(async () => {
    redis = await startRedis();
    // One database name: one relay channel, so the two apps relay to each other.
    const env = { REDIS_URL: redis.url, MONGODB_DB: shared, RELAY_MODE: "interest" };
    a = await startTestServer({ ...env, INSTANCE_ID: "metrics-a" });
    b = await startTestServer({ ...env, INSTANCE_ID: "metrics-b" });
    for (const s of [a, b]) {
      const deadline = Date.now() + 5_000;
      while ((await fetch(`${s.url}/ready`)).status !== 200) {
        if (Date.now() > deadline) throw new Error("relay never became ready");
        await Bun.sleep(20);
      }
    }
  });

  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await redis?.stop();
    await dropExternalDatabase(shared);
  });

  test("relayed changes are counted with their lag, as received for watched topics, with b's channels; a Redis outage counts errors and dropped envelopes", async () => {
    const ca = await cast(a);
    // b hears of the restaurant's orders because it watches the restaurant (as for a socket
    // there; the two test apps have separate in-memory databases, so no socket of a's users can).
    const watch = b.deps.bus.watch(topics.restaurant(ca.restaurant.id));
    await watch.ready;
    const order = await placeOrder(a, ca);
    expect((await patch(a, ca.owner, order.id, "accepted")).status).toBe(200);
    let text = await scrape(b);
    const deadline = Date.now() + 5_000;
    while (value(text, "dispatch_relay_lag_seconds_count") < 2) {
      if (Date.now() > deadline) throw new Error(`b never received the relayed changes: ${text.split("\n").filter((l) => l.startsWith("dispatch_relay")).join(" | ")}`);
      await Bun.sleep(20);
      text = await scrape(b);
    }
    expect(value(text, "dispatch_relay_messages_total", { direction: "received" })).toBeGreaterThanOrEqual(2);
    expect(value(text, "dispatch_relay_received_total")).toBe(value(text, "dispatch_relay_received_watched_total"));
    expect(value(text, "dispatch_relay_received_watched_total")).toBeGreaterThanOrEqual(2);
    expect(value(text, "dispatch_relay_channels")).toBe(1);
    expect(value(text, "dispatch_relay_resubscriptions_total")).toBe(0);
    // a watches nothing: b's channel carries a's publishes, nothing comes back to a.
    expect(value(await scrape(a), "dispatch_relay_received_total")).toBe(0);
    expect(value(text, "dispatch_relay_lag_seconds_sum")).toBeLessThan(5);
    expect(value(await scrape(a), "dispatch_relay_messages_total", { direction: "published" })).toBeGreaterThanOrEqual(2);

    await redis.kill();
    const errorsBefore = value(await scrape(a), "dispatch_redis_errors_total", { connection: "publisher" });
    expect((await patch(a, ca.owner, order.id, "preparing")).status).toBe(200); // committed, not relayed
    const until = Date.now() + 5_000;
    let after = await scrape(a);
    while (value(after, "dispatch_redis_errors_total", { connection: "publisher" }) <= errorsBefore) {
      if (Date.now() > until) throw new Error("no Redis error counted");
      await Bun.sleep(50);
      after = await scrape(a);
    }
    expect(value(after, "dispatch_relay_messages_total", { direction: "dropped" })).toBeGreaterThanOrEqual(1);
    watch.release();
  });
});

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { tracingEnabled } from "../../src/tracing";
import { startRedis, type TestRedis } from "../helpers/redis";
import { startTestServer, type TestServer } from "../helpers/server";
import { WsClient } from "../helpers/ws";
import { cast, placeOrder, type Cast } from "../modules/orders/fixtures";

/**
 * OpenTelemetry: a server with OTEL_EXPORTER_OTLP_ENDPOINT exports its spans over OTLP/HTTP to
 * a receiver in this process; the span tree of one PATCH is checked. Without the variable,
 * nothing is traced.
 */
type OtlpValue = { stringValue?: string; intValue?: string | number; boolValue?: boolean; doubleValue?: number };
type OtlpSpan = { traceId: string; spanId: string; parentSpanId?: string; name: string; kind: number; attributes?: Array<{ key: string; value: OtlpValue }> };
type Span = { traceId: string; spanId: string; parentSpanId: string; name: string; kind: number; attrs: Record<string, string | number | boolean | undefined> };

/** OTLP/JSON ids are hex, or base64 from some encoders: both end up hex here. */
const hex = (id: string | undefined) => (!id ? "" : /^[0-9a-f]+$/i.test(id) ? id.toLowerCase() : Buffer.from(id, "base64").toString("hex"));

function startReceiver() {
  const spans: Span[] = [];
  const contentTypes = new Set<string>();
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      if (req.method !== "POST" || new URL(req.url).pathname !== "/v1/traces") return new Response("not found", { status: 404 });
      contentTypes.add(req.headers.get("content-type") ?? "");
      const body = (await req.json()) as { resourceSpans: Array<{ scopeSpans: Array<{ spans: OtlpSpan[] }> }> };
      for (const rs of body.resourceSpans) {
        for (const ss of rs.scopeSpans) {
          for (const s of ss.spans) {
            const attrs: Span["attrs"] = {};
            for (const a of s.attributes ?? []) attrs[a.key] = a.value.stringValue ?? (a.value.intValue !== undefined ? Number(a.value.intValue) : (a.value.boolValue ?? a.value.doubleValue));
            spans.push({ traceId: hex(s.traceId), spanId: hex(s.spanId), parentSpanId: hex(s.parentSpanId), name: s.name, kind: s.kind, attrs });
          }
        }
      }
      return Response.json({});
    },
  });
  return { url: `http://127.0.0.1:${server.port}`, spans, contentTypes, stop: () => server.stop(true) };
}

let receiver: ReturnType<typeof startReceiver>;
let redis: TestRedis;
let server: TestServer;
let c: Cast;

beforeAll(async () => {
  receiver = startReceiver();
  redis = await startRedis();
  server = await startTestServer({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, REDIS_URL: redis.url, ACCEPT_TIMEOUT_SECONDS: "1", TIMER_SWEEP_INTERVAL_MS: "100" });
  c = await cast(server);
}, 60_000);
afterAll(async () => {
  await server?.stop();
  await redis?.stop();
  receiver?.stop();
});

async function waitFor<T>(what: string, find: () => T | undefined, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = find();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`no ${what} within ${timeoutMs} ms; spans: ${receiver.spans.map((s) => s.name).join(", ")}`);
    await Bun.sleep(50);
  }
}

describe("OpenTelemetry traces (OTEL_EXPORTER_OTLP_ENDPOINT set)", () => {
  test("one PATCH: a server span continuing the client's traceparent, with route, status and request id; under it the transition, MongoDB, Redis and WebSocket spans", async () => {
    expect(tracingEnabled()).toBe(true);
    const order = await placeOrder(server, c);
    // Someone watches the order, so the change is published to a socket.
    const ws = await WsClient.open(server.url.replace(/^http/, "ws") + "/ws", c.customer.token);
    try {
      ws.send({ op: "subscribe", topic: `order:${order.id}` });
      await ws.next((f) => f.type === "subscribed");
      const traceId = crypto.randomUUID().replaceAll("-", "");
      const clientSpanId = crypto.randomUUID().replaceAll("-", "").slice(0, 16);
      const res = await fetch(`${server.url}/orders/${order.id}`, {
        method: "PATCH",
        headers: { authorization: `Bearer ${c.owner.token}`, "content-type": "application/json", traceparent: `00-${traceId}-${clientSpanId}-01`, "x-request-id": "trace-me-1" },
        body: JSON.stringify({ status: "accepted" }),
      });
      expect(res.status).toBe(200);
      await ws.next((f) => f.type === "order.updated" && f.status === "accepted");

      const root = await waitFor("PATCH server span", () => receiver.spans.find((s) => s.traceId === traceId && s.kind === 2));
      expect(root.name).toBe("PATCH /orders/:id");
      expect(root.parentSpanId).toBe(clientSpanId);
      expect(root.attrs).toMatchObject({ "http.request.method": "PATCH", "http.route": "/orders/:id", "http.response.status_code": 200, "http.request.id": "trace-me-1" });

      const transition = await waitFor("order.transition span", () => receiver.spans.find((s) => s.traceId === traceId && s.name === "order.transition"));
      expect(transition.attrs).toMatchObject({ "order.id": order.id, "order.from": "placed", "order.to": "accepted", "order.seq": 2 });
      const inTrace = () => receiver.spans.filter((s) => s.traceId === traceId);
      const byId = () => new Map(inTrace().map((s) => [s.spanId, s]));
      /** The names of a span's ancestors up to the server span. */
      const ancestry = (s: Span) => {
        const names: string[] = [];
        for (let p = byId().get(s.parentSpanId); p; p = byId().get(p.parentSpanId)) names.push(p.name);
        return names;
      };
      expect(ancestry(transition)).toEqual(["PATCH /orders/:id"]);
      // The compare-and-set is a MongoDB command under the transition.
      const commit = await waitFor("findAndModify span", () => inTrace().find((s) => s.name === "mongodb findAndModify" && s.attrs["db.collection.name"] === "orders"));
      expect(ancestry(commit)[0]).toBe("order.transition");
      expect(commit.attrs["db.system.name"]).toBe("mongodb");
      // Published to the order's topic on this instance and relayed through Redis.
      const publish = await waitFor("ws.publish span", () => inTrace().find((s) => s.name === "ws.publish" && s.attrs["messaging.destination.name"] === `order:${order.id}`));
      expect(ancestry(publish)).toContain("PATCH /orders/:id");
      const redisSpan = await waitFor("Redis span", () => inTrace().find((s) => s.attrs["db.system.name"] === "redis"));
      expect(ancestry(redisSpan)).toContain("PATCH /orders/:id");
      // Every span of the trace hangs from the server span.
      for (const s of inTrace()) if (s !== root) expect(ancestry(s)).toContain("PATCH /orders/:id");
    } finally {
      ws.close();
    }
  }, 30_000);

  test("a durable timer firing is a span (the accept timeout cancels the order)", async () => {
    const order = await placeOrder(server, c);
    const fired = await waitFor("timer.fire span", () => receiver.spans.find((s) => s.name === "timer.fire" && receiver.spans.some((t) => t.traceId === s.traceId && t.name === "order.transition" && t.attrs["order.id"] === order.id && t.attrs["order.to"] === "cancelled")), 15_000);
    expect(fired.attrs["timer.kind"]).toBeDefined();
    expect(receiver.contentTypes.has("application/json")).toBe(true);
  }, 30_000);
});

describe("without OTEL_EXPORTER_OTLP_ENDPOINT", () => {
  test("nothing is traced: no tracer, the driver emits no command events", async () => {
    const plain = await startTestServer();
    try {
      expect(plain.deps.db.client.options.monitorCommands).toBe(false);
      const owner = await plain.register("restaurant");
      expect(owner.token).toBeDefined();
    } finally {
      await plain.stop();
    }
  });
});

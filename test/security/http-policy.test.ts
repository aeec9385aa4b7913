import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { ConfigError, loadConfig } from "../../src/config";
import { createLogger } from "../../src/log";
import { startTestServer, TEST_ADMIN, type TestServer } from "../helpers/server";
import { WsClient } from "../helpers/ws";
import { expectProblem, hostileTokens, QUIET_DISPATCH_ENV, startEngineBackedServer } from "../helpers/security";
import { cast, DELIVER_TO, placeOrder } from "../modules/orders/fixtures";

/**
 * Issue 6, security headers, CORS for browser clients, structured JSON logs with request ids,
 * and secrets never logged.
 */
const SECRET = "test-secret-0123456789abcdef";

function captured() {
  const raw: string[] = [];
  return { raw, log: createLogger("debug", {}, (l) => raw.push(l)), lines: () => raw.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe("security headers", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ ...QUIET_DISPATCH_ENV, HSTS_MAX_AGE_SECONDS: "31536000" });
  });
  afterAll(async () => {
    await server?.stop();
  });

  test("every answer, success or refusal, JSON or HTML, carries them; signed-in answers are not cacheable", async () => {
    const c = await cast(server);
    const answers: Array<[string, Response]> = [
      ["health", await fetch(`${server.url}/health`)],
      ["restaurant", await fetch(`${server.url}/restaurants/${c.restaurant.id}`)],
      ["me", await fetch(`${server.url}/auth/me`, { headers: { authorization: `Bearer ${c.customer.token}` } })],
      ["401", await fetch(`${server.url}/auth/me`)],
      ["404 route", await fetch(`${server.url}/no/such/route`)],
      ["415", await fetch(`${server.url}/auth/login`, { method: "POST", headers: { "content-type": "text/plain" }, body: "x" })],
      ["413", await fetch(`${server.url}/auth/login`, { method: "POST", headers: { "content-type": "application/json" }, body: " ".repeat(70_000) })],
      ["openapi", await fetch(`${server.url}/openapi`)],
      ["docs (HTML)", await fetch(`${server.url}/docs`)],
    ];
    for (const [what, res] of answers) {
      const h = Object.fromEntries(res.headers);
      expect({ what, nosniff: h["x-content-type-options"], referrer: h["referrer-policy"], frame: h["x-frame-options"], hsts: h["strict-transport-security"], id: typeof h["x-request-id"] }).toEqual({
        what,
        nosniff: "nosniff",
        referrer: "no-referrer",
        frame: "DENY",
        hsts: "max-age=31536000; includeSubDomains",
        id: "string",
      });
      expect(h["content-security-policy"]).toContain("frame-ancestors 'none'");
      if ((h["content-type"] ?? "").startsWith("text/html")) expect(h["content-security-policy"]).not.toContain("default-src 'none'");
      else expect(h["content-security-policy"]).toContain("default-src 'none'");
      await res.arrayBuffer();
    }
    const me = answers.find(([w]) => w === "me")![1];
    expect(me.headers.get("cache-control")).toBe("no-store");
    expect(answers.find(([w]) => w === "health")![1].headers.get("cache-control")).toBeNull();
  });

  test("no HSTS unless configured (it only makes sense behind TLS)", async () => {
    const plain = await startTestServer();
    try {
      expect((await fetch(`${plain.url}/health`)).headers.get("strict-transport-security")).toBeNull();
    } finally {
      await plain.stop();
    }
  });
});

describe("CORS for browser clients", () => {
  let server: TestServer;
  const app = "https://app.example.com";
  beforeAll(async () => {
    server = await startTestServer({ ...QUIET_DISPATCH_ENV, CORS_ORIGINS: `${app}, http://localhost:5173` });
  });
  afterAll(async () => {
    await server?.stop();
  });

  test("an allowed origin may read answers (errors too) and the request id; any other origin gets no grant", async () => {
    for (const path of ["/health", "/auth/me"]) {
      const ok = await fetch(server.url + path, { headers: { origin: app } });
      expect(ok.headers.get("access-control-allow-origin")).toBe(app);
      expect(ok.headers.get("vary")).toContain("Origin");
      expect(ok.headers.get("access-control-expose-headers")).toContain("x-request-id");
      expect(ok.headers.get("access-control-allow-credentials")).toBeNull();
      const other = await fetch(server.url + path, { headers: { origin: "https://evil.example.com" } });
      expect(other.headers.get("access-control-allow-origin")).toBeNull();
      expect(other.headers.get("vary")).toContain("Origin");
    }
    expect((await fetch(`${server.url}/health`, { headers: { origin: "http://localhost:5173" } })).headers.get("access-control-allow-origin")).toBe("http://localhost:5173");
    // Origins match exactly: no suffix, scheme or port games.
    for (const near of ["https://app.example.com.evil.io", "http://app.example.com", "https://app.example.com:8443", "null"]) {
      expect((await fetch(`${server.url}/health`, { headers: { origin: near } })).headers.get("access-control-allow-origin")).toBeNull();
    }
  });

  test("preflight: allowed origin, method and headers get 204 with the grant; anything else 403 problem+json", async () => {
    const pre = (origin: string, method: string, headers = "authorization, content-type") =>
      fetch(`${server.url}/orders`, { method: "OPTIONS", headers: { origin, "access-control-request-method": method, "access-control-request-headers": headers } });
    const ok = await pre(app, "PATCH", "authorization, content-type, if-match, idempotency-key");
    expect(ok.status).toBe(204);
    expect(ok.headers.get("access-control-allow-origin")).toBe(app);
    expect(ok.headers.get("access-control-allow-methods")).toContain("PATCH");
    expect(ok.headers.get("access-control-allow-headers")).toContain("if-match");
    expect(Number(ok.headers.get("access-control-max-age"))).toBeGreaterThan(0);
    for (const res of [await pre("https://evil.example.com", "POST"), await pre(app, "TRACE"), await pre(app, "POST", "authorization, x-evil")]) {
      expect(res.status).toBe(403);
      expect(res.headers.get("content-type")).toContain("application/problem+json");
      expect(res.headers.get("access-control-allow-origin")).toBeNull();
    }
  });

  test("credentials only when configured and only with listed origins; `*` never with credentials", async () => {
    const withCreds = await startTestServer({ CORS_ORIGINS: app, CORS_ALLOW_CREDENTIALS: "true" });
    const any = await startTestServer({ CORS_ORIGINS: "*" });
    try {
      const res = await fetch(`${withCreds.url}/health`, { headers: { origin: app } });
      expect(res.headers.get("access-control-allow-credentials")).toBe("true");
      expect((await fetch(`${withCreds.url}/health`, { headers: { origin: "https://x.example.com" } })).headers.get("access-control-allow-credentials")).toBeNull();
      const star = await fetch(`${any.url}/health`, { headers: { origin: "https://anyone.example.com" } });
      expect(star.headers.get("access-control-allow-origin")).toBe("*");
      expect(star.headers.get("access-control-allow-credentials")).toBeNull();
    } finally {
      await withCreds.stop();
      await any.stop();
    }
    expect(() => loadConfig({ CORS_ORIGINS: "*", CORS_ALLOW_CREDENTIALS: "true" })).toThrow(ConfigError);
    expect(() => loadConfig({ CORS_ORIGINS: "https://ok.example.com,not-an-origin" })).toThrow(ConfigError);
    expect(() => loadConfig({ CORS_ORIGINS: "https://app.example.com/path" })).toThrow(ConfigError);
  });

  test("without CORS_ORIGINS no CORS header is ever sent", async () => {
    const none = await startTestServer();
    try {
      const res = await fetch(`${none.url}/health`, { headers: { origin: app } });
      expect(res.headers.get("access-control-allow-origin")).toBeNull();
      const pre = await fetch(`${none.url}/orders`, { method: "OPTIONS", headers: { origin: app, "access-control-request-method": "POST" } });
      expect(pre.headers.get("access-control-allow-origin")).toBeNull();
      expect(pre.status).toBeGreaterThanOrEqual(400);
    } finally {
      await none.stop();
    }
  });
});

describe("structured logs", () => {
  let server: TestServer;
  let logs: ReturnType<typeof captured>;
  beforeAll(async () => {
    logs = captured();
    server = await startEngineBackedServer({ ...QUIET_DISPATCH_ENV, LOG_LEVEL: "debug", REQUEST_TIMEOUT_MS: "400" }, { log: logs.log });
  });
  afterAll(async () => {
    await server?.stop();
  });

  test("one JSON access line per request: method, route, path, status, duration, request id, and the user when known", async () => {
    const c = await cast(server);
    const order = await placeOrder(server, c);
    const mark = logs.raw.length;
    const answers = [
      await server.request("GET", `/orders/${order.id}`, { token: c.customer.token }),
      await server.request("GET", `/orders/${order.id}`, { token: c.courier.token }), // 404 for a non-party
      await server.request("PATCH", `/orders/${order.id}`, { token: c.owner.token, body: { status: "accepted", bogus: 1 } }), // 400 before any handler
      await server.request("GET", "/no/such/route"),
      await server.request("GET", `/orders/${order.id}`, { token: "forged.token.here" }),
    ];
    const access = logs.lines().slice(mark).filter((l) => l.msg === "request");
    expect(access.length).toBe(answers.length);
    const expected = [
      { method: "GET", route: "/orders/:id", path: `/orders/${order.id}`, status: 200, userId: c.customer.user.id },
      { method: "GET", route: "/orders/:id", path: `/orders/${order.id}`, status: 404, userId: c.courier.user.id },
      { method: "PATCH", route: "/orders/:id", path: `/orders/${order.id}`, status: 400, userId: c.owner.user.id },
      { method: "GET", route: null, path: "/no/such/route", status: 404, userId: undefined },
      { method: "GET", route: "/orders/:id", path: `/orders/${order.id}`, status: 401, userId: undefined },
    ];
    access.forEach((line, i) => {
      expect({ method: line.method, route: line.route, path: line.path, status: line.status, userId: line.userId }).toEqual(expected[i]);
      expect(line.requestId).toBe(answers[i].headers.get("x-request-id")!);
      expect(typeof line.durationMs).toBe("number");
      expect(line.level).toBe("info");
      expect(typeof line.t).toBe("string");
      if (answers[i].status >= 400) expect(answers[i].body.requestId).toBe(line.requestId);
    });
  });

  test("lines logged while serving a request carry its request id and user (a 500 and a timeout)", async () => {
    const c = await cast(server);
    const order = await placeOrder(server, c);
    const admin = server.deps.db.client.db("admin");
    await admin.command({ configureFailPoint: "failCommand", mode: { times: 1 }, data: { failCommands: ["find"], errorCode: 2 } });
    const failed = await server.request("GET", `/orders/${order.id}`, { token: c.customer.token });
    expectProblem(failed, 500);
    await admin.command({ configureFailPoint: "failCommand", mode: { times: 1 }, data: { failCommands: ["find"], blockConnection: true, blockTimeMS: 1_000 } });
    const slow = await server.request("GET", `/orders/${order.id}`, { token: c.customer.token });
    expectProblem(slow, 503);
    for (const [res, msg] of [[failed, "unhandled error"], [slow, "request timed out"]] as const) {
      const id = res.headers.get("x-request-id");
      const line = logs.lines().find((l) => l.msg === msg && l.requestId === id);
      expect(line).toMatchObject({ requestId: id, userId: c.customer.user.id });
    }
    // Every line that names a request id names one that was answered.
    const answered = new Set(logs.lines().filter((l) => l.msg === "request").map((l) => l.requestId));
    await Bun.sleep(700); // the stalled read finishes in the background
    for (const l of logs.lines()) if (l.requestId !== undefined) expect(answered.has(l.requestId)).toBe(true);
  });

  test("every line is one JSON object with time, level and message", () => {
    expect(logs.raw.length).toBeGreaterThan(20);
    for (const raw of logs.raw) {
      const line = JSON.parse(raw) as Record<string, unknown>;
      expect(typeof line.t).toBe("string");
      expect(["debug", "info", "warn", "error"]).toContain(line.level as string);
      expect(typeof line.msg).toBe("string");
    }
  });
});

describe("secrets never reach the logs", () => {
  test("passwords, tokens, the JWT secret and the admin password appear in no log line, whatever happens", async () => {
    const logs = captured();
    const server = await startEngineBackedServer({ ...QUIET_DISPATCH_ENV, LOG_LEVEL: "debug" }, { log: logs.log });
    const secrets: string[] = [SECRET, TEST_ADMIN.password];
    try {
      const password = "correct-horse-battery-42";
      const email = `secret-${crypto.randomUUID().slice(0, 8)}@dispatch.test`;
      secrets.push(password, "wrong-password-77", "short7");
      const reg = await server.request("POST", "/auth/register", { body: { email, password, name: "S", role: "customer" } });
      expect(reg.status).toBe(201);
      const token: string = reg.body.token;
      secrets.push(token, token.split(".")[2]);
      await server.request("POST", "/auth/register", { body: { email, password, name: "S", role: "customer" } }); // 409
      await server.request("POST", "/auth/register", { body: { email: "x@dispatch.test", password: "short7", name: "S", role: "customer" } }); // 400
      await server.request("POST", "/auth/login", { body: { email, password } });
      await server.request("POST", "/auth/login", { body: { email, password: "wrong-password-77" } });
      const admin = await server.register("admin");
      secrets.push(admin.token);
      await server.request("GET", "/auth/me", { token });
      for (const [, bad] of hostileTokens(token, SECRET)) {
        secrets.push(bad);
        await server.request("GET", "/auth/me", { token: bad });
      }
      const c = await cast(server);
      secrets.push(c.customer.token, c.owner.token, c.courier.token, c.customer.password);
      await server.request("POST", "/orders", { token: c.customer.token, body: { restaurantId: c.restaurant.id, items: [{ menuItemId: "pizza", quantity: 1 }], deliveryLocation: DELIVER_TO } });
      const ws = await WsClient.open(server.url.replace(/^http/, "ws") + "/ws", c.customer.token);
      ws.send({ op: "ping" });
      await ws.next((f) => f.type === "pong");
      ws.close();
      await server.deps.db.client.db("admin").command({ configureFailPoint: "failCommand", mode: { times: 1 }, data: { failCommands: ["find"], errorCode: 2 } });
      expect((await server.request("POST", "/auth/login", { body: { email, password } })).status).toBe(500);
    } finally {
      await server.stop();
    }
    expect(logs.lines().filter((l) => l.msg === "request").length).toBeGreaterThan(20);
    const text = logs.raw.join("\n");
    const found = secrets.filter((s) => text.includes(s)).map((s) => `${s.slice(0, 12)}…`);
    expect(found).toEqual([]);
    expect(text).not.toContain("$argon2");
    expect(text).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}/); // no JWT-looking string at all
    // The WebSocket upgrade was logged without its ?token= query.
    expect(logs.lines().some((l) => l.msg === "request" && l.path === "/ws" && l.status === 101)).toBe(true);
  });
});

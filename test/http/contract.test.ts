import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { startTestServer, type TestServer } from "../helpers/server";

/** Every route of API.md, written out here as the contract the OpenAPI document must cover. */
const API_ROUTES = [
  "GET /health",
  "GET /ready",
  "POST /auth/register",
  "POST /auth/login",
  "GET /auth/me",
  "POST /restaurants",
  "GET /restaurants/:id",
  "PATCH /restaurants/:id",
  "GET /restaurants",
  "POST /orders",
  "GET /orders/:id",
  "GET /orders",
  "PATCH /orders/:id",
  "POST /orders/:id/claim",
  "GET /ws",
] as const;

const API_MD = resolve(import.meta.dir, "../../../shared/API.md");

/** `METHOD /path` pairs named in API.md's text (query strings dropped). */
function routesInApiMd(text: string): string[] {
  const found = new Set<string>();
  for (const m of text.matchAll(/`(GET|POST|PATCH|PUT|DELETE) (\/[^`?\s\[]*)/g)) found.add(`${m[1]} ${m[2].replace(/\*$/, "")}`);
  return [...found].filter((r) => !r.endsWith("/restaurants") || !r.startsWith("GET /restaurants*"));
}

/** OpenAPI writes path params as {id}; API.md as :id. */
const toOpenApiPath = (path: string) => path.replace(/:([A-Za-z]+)/g, "{$1}");

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server.stop();
});

describe("GET /openapi", () => {
  test("is public and lists every route of API.md with its method", async () => {
    const res = await server.request<{ openapi: string; paths: Record<string, Record<string, unknown>> }>("GET", "/openapi");
    expect(res.status).toBe(200);
    expect(res.body.openapi).toMatch(/^3\./);
    const missing = API_ROUTES.filter((route) => {
      const [method, path] = route.split(" ");
      return !res.body.paths[toOpenApiPath(path)]?.[method.toLowerCase()];
    });
    expect(missing).toEqual([]);
  });

  test("documents request bodies from the route schemas", async () => {
    const res = await server.request<{ paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: unknown }> } }>> }>("GET", "/openapi");
    const body = res.body.paths["/orders"]?.post?.requestBody;
    expect(JSON.stringify(body)).toContain("deliveryLocation");
    expect(JSON.stringify(res.body.paths["/auth/register"]?.post?.requestBody)).toContain("password");
  });

  if (existsSync(API_MD)) {
    test("the route list of this test is the one in ../shared/API.md", () => {
      const inDoc = routesInApiMd(readFileSync(API_MD, "utf8"));
      const listed = new Set<string>(API_ROUTES);
      expect(inDoc.filter((r) => !listed.has(r) && r !== "GET /restaurants*")).toEqual([]);
    });
  } else {
    test("API.md cross-check: ../shared/API.md is absent, so only the list above is checked", () => {
      expect(existsSync(API_MD)).toBe(false);
    });
  }
});

describe("graceful shutdown", () => {
  test("stop() refuses new connections, lets the in-flight request finish, then resolves", async () => {
    const s = await startTestServer();
    let stopped = false;
    try {
      const owner = await s.register("restaurant");
      const customer = await s.register("customer");
      const restaurant = await s.request("POST", "/restaurants", {
        token: owner.token,
        body: { name: "Held", cuisines: ["x"], location: { lat: 48.85, lng: 2.35 }, menu: [{ name: "Soup", priceCents: 500 }] },
      });
      const order = await s.request("POST", "/orders", {
        token: customer.token,
        body: { restaurantId: restaurant.body.id, items: [{ menuItemId: restaurant.body.menu[0].id, quantity: 1 }], deliveryLocation: { lat: 48.851, lng: 2.351 } },
      });
      expect(order.status).toBe(201);

      let release!: () => void;
      const released = new Promise<void>((r) => (release = r));
      let reached!: () => void;
      const atHook = new Promise<void>((r) => (reached = r));
      s.deps.realtimeHooks = {
        beforePublish: async (committed) => {
          if (committed.orderId !== order.body.id) return;
          reached();
          await released;
        },
      };
      const inFlight = s.request("PATCH", `/orders/${order.body.id}`, { token: owner.token, body: { status: "accepted" } });
      await atHook; // committed, response not yet sent

      const stopping = s.stop().then(() => (stopped = true));
      await Bun.sleep(50);
      expect(stopped).toBe(false); // waits for the request
      const refused = await fetch(`${s.url}/health`).then(
        () => "answered",
        () => "refused",
      );
      expect(refused).toBe("refused");

      release();
      const res = await inFlight;
      expect(res.status).toBe(200);
      expect(res.body.status).toBe("accepted");
      await stopping;
      expect(stopped).toBe(true);
    } finally {
      if (!stopped) await s.stop();
    }
  });
});

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chromium, type Browser, type Page } from "playwright-core";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromiumPath } from "../helpers/prerequisites";
import { startTileServer, type TileServer } from "../../scripts/lib/tile-server";
import { startTestServer, type TestServer } from "../helpers/server";
import { WsClient } from "../helpers/ws";
import { cast, orderIn, patch, type Cast } from "../modules/orders/fixtures";

/**
 * The /demo page in headless Chromium (Debian's `chromium`, driven by playwright-core; .ci/run
 * installs it, this test installs nothing). CHROMIUM_PATH overrides the binary (e.g. Chrome on
 * a CI image without Debian's package); the preload has already refused to run without one.
 */
const CHROMIUM = chromiumPath() ?? "chromium";
// Explicit: Bun applies the preload's default timeout to the first test file only (others get 5 s).
const BROWSER_MS = 90_000;
const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"];

let server: TestServer;
let browser: Browser;
let dir: string;
let c: Cast;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "dispatch-demo-"));
  server = await startTestServer({ COURIER_LOCATION_INTERVAL_MS: "0" });
  c = await cast(server);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS, headless: true });
}, BROWSER_MS);

afterAll(async () => {
  await browser?.close();
  await server?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
}, BROWSER_MS);

/** A page on `on` whose uncaught errors and console errors (failed loads among them) fail the test at close. */
async function openPage(on: TestServer = server, expectedConsoleError?: RegExp): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1400, height: 820 } });
  const errors: string[] = [];
  page.on("pageerror", (err) => errors.push(err.message));
  page.on("console", (msg) => {
    if (msg.type() === "error" && !expectedConsoleError?.test(msg.text())) errors.push(`console: ${msg.text()}`);
  });
  page.on("close", () => expect(errors).toEqual([]));
  await page.goto(`${on.url}/demo`);
  return page;
}

async function signInAdmin(page: Page, cast: Cast): Promise<void> {
  await page.fill("#login-form input[name=email]", cast.admin.email);
  await page.fill("#login-form input[name=password]", cast.admin.password);
  await page.click("#login-form button");
  await page.waitForSelector('[data-testid=conn]:text("live")', { timeout: 5_000 });
}

const badge = (orderId: string) => `#orders li[data-order-id="${orderId}"] .badge`;

describe("GET /demo", () => {
  test("serves the page and its files without a build step; unknown files are 404", async () => {
    const html = await fetch(`${server.url}/demo`);
    expect(html.status).toBe(200);
    expect(html.headers.get("content-type")).toContain("text/html");
    expect(await html.text()).toContain('<script type="module" src="/demo/demo.js">');
    const js = await fetch(`${server.url}/demo/demo.js`);
    expect(js.headers.get("content-type")).toContain("javascript");
    expect((await fetch(`${server.url}/demo/demo.css`)).status).toBe(200);
    const missing = await fetch(`${server.url}/demo/..%2Fapp.ts`);
    expect(missing.status).toBe(404);
    expect((await fetch(`${server.url}/demo/secret.txt`)).status).toBe(404);
  });

  test("serves Leaflet from the installed package (no CDN); other vendor files are 404", async () => {
    expect(await (await fetch(`${server.url}/demo`)).text()).toContain('<script src="/demo/vendor/leaflet.js"></script>');
    const js = await fetch(`${server.url}/demo/vendor/leaflet.js`);
    expect(js.status).toBe(200);
    expect(js.headers.get("content-type")).toContain("javascript");
    expect(await js.text()).toContain("Leaflet 1.9");
    const css = await fetch(`${server.url}/demo/vendor/leaflet.css`);
    expect(css.headers.get("content-type")).toContain("text/css");
    expect((await fetch(`${server.url}/demo/vendor/images/layers.png`)).headers.get("content-type")).toBe("image/png");
    expect((await fetch(`${server.url}/demo/vendor/package.json`)).status).toBe(404);
    expect((await fetch(`${server.url}/demo/vendor/images/..%2F..%2Fpackage.json`)).status).toBe(404);
  });

  test("GET /demo/map.json: the tile template, its attribution, and offline when the tiles do not load", async () => {
    const res = await fetch(`${server.url}/demo/map.json`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ tileUrl: "http://127.0.0.1:9/{z}/{x}/{y}.png", attribution: expect.stringContaining("OpenStreetMap"), tiles: "offline" });
  });
});

describe("the live tracking page in headless Chromium", () => {
  test("offline (tiles do not load): the grid, no tile requested, no console error; a PATCH appears within a second, couriers move, the timeline grows", async () => {
    const order = await orderIn(server, c, "accepted", { claim: true });
    const page = await openPage();
    const tileRequests: string[] = [];
    page.on("request", (req) => {
      if (req.url().startsWith("http://127.0.0.1:9/")) tileRequests.push(req.url());
    });
    await signInAdmin(page, c);
    expect(await page.textContent("[data-testid=who]")).toContain("(admin)");
    await page.waitForSelector('[data-testid=map-mode][data-mode="grid"]', { timeout: 2_000 });
    expect(await page.isHidden("#streets")).toBe(true);
    expect(await page.isVisible("#map")).toBe(true);
    await page.waitForSelector(`${badge(order.id)}[data-status="accepted"]`, { timeout: 5_000 });
    // The row is marked live once the server acknowledged the page's subscribe to the order.
    await page.waitForSelector(`#orders li[data-order-id="${order.id}"][data-live="true"]`, { timeout: 2_000 });

    // A PATCH through the API shows up on the page within a second.
    const sent = performance.now();
    expect((await patch(server, c.owner, order.id, "preparing")).status).toBe(200);
    await page.waitForSelector(`${badge(order.id)}[data-status="preparing"]`, { timeout: 1_000 });
    const shownAfterMs = performance.now() - sent;
    expect(shownAfterMs).toBeLessThan(1_000);
    await page.waitForSelector(`#timeline li[data-order-id="${order.id}"]:has-text("accepted → preparing")`, { timeout: 1_000 });

    // The courier reports positions over its WebSocket; the marker appears, then moves.
    const courierWs = await WsClient.open(server.url.replace(/^http/, "ws") + "/ws", c.courier.token);
    try {
      courierWs.send({ op: "location", lat: 48.858, lng: 2.355 });
      const marker = `#couriers circle[data-courier-id="${c.courier.user.id}"]`;
      await page.waitForSelector(marker, { timeout: 2_000 });
      const first = await page.getAttribute(marker, "cx");
      courierWs.send({ op: "location", lat: 48.8595, lng: 2.36 });
      // Evaluated in the page (a string: this file is type-checked without the DOM library).
      await page.waitForFunction(`document.querySelector(${JSON.stringify(marker)})?.getAttribute("cx") !== ${JSON.stringify(first)}`, undefined, { timeout: 2_000 });
      expect(await page.getAttribute(marker, "data-lat")).toBe("48.8595");
    } finally {
      courierWs.close();
    }
    // Restaurant and customer points are on the map, and the delivery area set below is drawn.
    const area = { type: "Polygon", coordinates: [[[2.34, 48.85], [2.375, 48.85], [2.375, 48.868], [2.34, 48.868], [2.34, 48.85]]] };
    expect((await server.request("PATCH", `/restaurants/${c.restaurant.id}`, { token: c.owner.token, body: { deliveryArea: area } })).status).toBe(200);
    await page.reload();
    await page.waitForSelector(`#routes path.area[data-area-of="${c.restaurant.id}"]`, { timeout: 5_000 });
    expect(await page.locator(`#points [data-customer-of="${order.id}"]`).count()).toBe(1);
    expect(await page.locator(`#points [data-restaurant-id="${c.restaurant.id}"]`).count()).toBe(1);

    // A new order placed now arrives through the restaurant topic the admin follows.
    const fresh = await orderIn(server, c, "placed");
    await page.waitForSelector(`${badge(fresh.id)}[data-status="placed"]`, { timeout: 2_000 });

    expect(tileRequests).toEqual([]);
    const shot = join(dir, "demo.png");
    await page.screenshot({ path: shot });
    const png = await readFile(shot);
    expect([...png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    expect((await stat(shot)).size).toBeGreaterThan(10_000);
    await page.close();
  }, BROWSER_MS);

  test("a customer pastes a token and picks one order: only that order is shown, and it updates live", async () => {
    const mine = await orderIn(server, c, "placed");
    const other = await orderIn(server, c, "placed");
    const page = await openPage();
    await page.fill("#token-form input[name=token]", c.customer.token);
    await page.click("#token-form button");
    await page.waitForSelector('[data-testid=conn]:text("live")', { timeout: 5_000 });
    await page.selectOption("#pick", mine.id);
    await page.waitForSelector(`#orders li[data-order-id="${other.id}"]`, { state: "detached", timeout: 2_000 });
    expect(await page.locator("#orders li").count()).toBe(1);
    await page.waitForSelector(`#orders li[data-order-id="${mine.id}"][data-live="true"]`, { timeout: 2_000 });
    expect((await patch(server, c.owner, mine.id, "accepted")).status).toBe(200);
    await page.waitForSelector(`${badge(mine.id)}[data-status="accepted"]`, { timeout: 1_000 });
    await page.close();
  }, BROWSER_MS);

  test("a bad token is refused on the page", async () => {
    // The browser reports the refused /auth/me (401) in its console: the one error expected here.
    const page = await openPage(server, /status of 401/);
    await page.fill("#token-form input[name=token]", "not-a-token");
    await page.click("#token-form button");
    await page.waitForSelector('#login-error:has-text("token refused")', { timeout: 2_000 });
    expect(await page.isHidden("#app")).toBe(true);
    await page.close();
  }, BROWSER_MS);
});

describe("the live tracking page on a street map (tiles from MAP_TILE_URL)", () => {
  let tiles: TileServer;
  let mapped: TestServer;
  let mc: Cast;

  beforeAll(async () => {
    tiles = startTileServer();
    mapped = await startTestServer({ COURIER_LOCATION_INTERVAL_MS: "0", MAP_TILE_URL: tiles.template, MAP_TILE_ATTRIBUTION: "&copy; OpenStreetMap contributors (test tiles)" });
    mc = await cast(mapped);
  }, BROWSER_MS);
  afterAll(async () => {
    await mapped?.stop();
    await tiles?.stop();
  }, BROWSER_MS);

  test("tiles load with their attribution; restaurant, customer and courier markers; a PATCH and a courier move show within a second", async () => {
    expect(await (await fetch(`${mapped.url}/demo/map.json`)).json()).toMatchObject({ tileUrl: tiles.template, tiles: "online" });
    // A delivery area around the restaurant and the delivery point: drawn on the map.
    const area = { type: "Polygon", coordinates: [[[2.34, 48.85], [2.375, 48.85], [2.375, 48.868], [2.34, 48.868], [2.34, 48.85]]] };
    expect((await mapped.request("PATCH", `/restaurants/${mc.restaurant.id}`, { token: mc.owner.token, body: { deliveryArea: area } })).status).toBe(200);
    const order = await orderIn(mapped, mc, "accepted", { claim: true });
    const page = await openPage(mapped);
    await signInAdmin(page, mc);
    await page.waitForSelector('[data-testid=map-mode][data-mode="streets"]', { timeout: 5_000 });
    expect(await page.isHidden("#map")).toBe(true);
    expect(await page.locator("#streets img.leaflet-tile-loaded").count()).toBeGreaterThan(0);
    expect(tiles.requests()).toBeGreaterThan(1);
    expect(await page.textContent("#streets .leaflet-control-attribution")).toContain("OpenStreetMap contributors (test tiles)");
    await page.waitForSelector(`#streets [data-restaurant-id="${mc.restaurant.id}"]`, { timeout: 2_000 });
    await page.waitForSelector(`#streets [data-customer-of="${order.id}"]`, { timeout: 2_000 });
    await page.waitForSelector(`#streets path[data-area-of="${mc.restaurant.id}"]`, { timeout: 2_000 });

    // A status change through the API reaches the page within a second.
    await page.waitForSelector(`#orders li[data-order-id="${order.id}"][data-live="true"]`, { timeout: 2_000 });
    const sent = performance.now();
    expect((await patch(mapped, mc.owner, order.id, "preparing")).status).toBe(200);
    await page.waitForSelector(`${badge(order.id)}[data-status="preparing"]`, { timeout: 1_000 });
    expect(performance.now() - sent).toBeLessThan(1_000);

    // The courier's marker appears on the map, then moves within a second of the next position.
    const courierWs = await WsClient.open(mapped.url.replace(/^http/, "ws") + "/ws", mc.courier.token);
    try {
      courierWs.send({ op: "location", lat: 48.858, lng: 2.355 });
      const marker = `#streets [data-courier-id="${mc.courier.user.id}"]`;
      await page.waitForSelector(marker, { timeout: 2_000 });
      const before = await page.locator(marker).getAttribute("d");
      const moved = performance.now();
      courierWs.send({ op: "location", lat: 48.8595, lng: 2.36 });
      await page.waitForSelector(`${marker}[data-lat="48.8595"]`, { timeout: 1_000 });
      expect(performance.now() - moved).toBeLessThan(1_000);
      expect(await page.locator(marker).getAttribute("d")).not.toBe(before);
    } finally {
      courierWs.close();
    }
    await page.close();
  }, BROWSER_MS);
});

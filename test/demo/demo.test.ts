import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chromium, type Browser, type Page } from "playwright-core";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromiumPath } from "../helpers/prerequisites";
import { startTestServer, type TestServer } from "../helpers/server";
import { WsClient } from "../helpers/ws";
import { cast, orderIn, patch, type Cast } from "../modules/orders/fixtures";

/**
 * The /demo page in headless Chromium (Debian's `chromium`, driven by playwright-core; .ci/run
 * installs it, this test installs nothing). CHROMIUM_PATH overrides the binary (e.g. Chrome on
 * a CI image without Debian's package); the preload has already refused to run without one.
 */
const CHROMIUM = chromiumPath() ?? "chromium";
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
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function openPage(): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1400, height: 820 } });
  const errors: string[] = [];
  page.on("pageerror", (err) => errors.push(err.message));
  page.on("close", () => expect(errors).toEqual([]));
  await page.goto(`${server.url}/demo`);
  return page;
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
});

describe("the live tracking page in headless Chromium", () => {
  test("an admin signs in, the page goes live, a PATCH appears within a second, couriers move, the timeline grows", async () => {
    const order = await orderIn(server, c, "accepted", { claim: true });
    const page = await openPage();
    await page.fill("#login-form input[name=email]", c.admin.email);
    await page.fill("#login-form input[name=password]", c.admin.password);
    await page.click("#login-form button");
    await page.waitForSelector('[data-testid=conn]:text("live")', { timeout: 5_000 });
    expect(await page.textContent("[data-testid=who]")).toContain("(admin)");
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
    // Restaurant and customer points are on the map.
    expect(await page.locator(`#points [data-customer-of="${order.id}"]`).count()).toBe(1);
    expect(await page.locator(`#points [data-restaurant-id="${c.restaurant.id}"]`).count()).toBe(1);

    // A new order placed now arrives through the restaurant topic the admin follows.
    const fresh = await orderIn(server, c, "placed");
    await page.waitForSelector(`${badge(fresh.id)}[data-status="placed"]`, { timeout: 2_000 });

    const shot = join(dir, "demo.png");
    await page.screenshot({ path: shot });
    const png = await readFile(shot);
    expect([...png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    expect((await stat(shot)).size).toBeGreaterThan(10_000);
    await page.close();
  });

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
  });

  test("a bad token is refused on the page", async () => {
    const page = await openPage();
    await page.fill("#token-form input[name=token]", "not-a-token");
    await page.click("#token-form button");
    await page.waitForSelector('#login-error:has-text("token refused")', { timeout: 2_000 });
    expect(await page.isHidden("#app")).toBe(true);
    await page.close();
  });
});

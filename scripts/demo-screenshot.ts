// Renders docs/demo.png: an in-process server, the simulator moving orders, and the /demo page
// in headless Chromium (signed in as the bootstrap admin) photographed mid-simulation.
//   bun run scripts/demo-screenshot.ts [--out docs/demo.png] [--after-ms 6000] [--tiles URL-template]
// Needs chromium (or CHROMIUM_PATH) and the dev dependency playwright-core. Without --tiles the map
// tiles come from a stand-in tile server on loopback (plain squares: this machine has no network).

import { parseArgs } from "node:util";
import { chromium } from "playwright-core";
import { loadConfig } from "../src/config";
import { startServer } from "../src/server";
import { runSimulation } from "./simulate";
import { startTileServer } from "./lib/tile-server";

const { values } = parseArgs({ args: process.argv.slice(2), options: { out: { type: "string", default: "docs/demo.png" }, "after-ms": { type: "string", default: "6000" }, tiles: { type: "string" } } });
const tiles = values.tiles ? null : startTileServer();
const admin = { email: "admin@demo.local", password: "demo-admin-password" };
const server = await startServer(
  loadConfig({ PORT: "0", HOST: "127.0.0.1", DATA_DIR: ":memory:", LOG_LEVEL: "warn", JWT_SECRET: "demo-screenshot-secret-0123456789", ADMIN_EMAIL: admin.email, ADMIN_PASSWORD: admin.password, COURIER_LOCATION_INTERVAL_MS: "0", MAP_TILE_URL: values.tiles ?? tiles!.template }),
);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH || Bun.which("chromium") || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 820 } });
  page.on("pageerror", (err) => process.stderr.write(`page error: ${err.message}\n`));
  page.on("console", (msg) => {
    if (msg.type() === "error") process.stderr.write(`page console: ${msg.text()}\n`);
  });
  await page.goto(`${server.url}/demo`);
  await page.fill("#login-form input[name=email]", admin.email);
  await page.fill("#login-form input[name=password]", admin.password);
  await page.click("#login-form button");
  await page.waitForSelector('[data-testid=conn]:text("live")');
  const simulation = runSimulation({ url: server.url, orders: 10, restaurants: 3, couriers: 4, customers: 6, stepMs: 450, durationSeconds: 30, seed: 11 });
  // On a loaded machine the first orders take a while: wait for them, then let things move.
  await page.waitForSelector("#orders li", { timeout: 180_000 });
  await Bun.sleep(Number(values["after-ms"]));
  await page.screenshot({ path: values.out });
  process.stdout.write(`${JSON.stringify({ wrote: values.out })}\n`);
  await simulation;
} finally {
  await browser.close();
  await server.stop();
  await tiles?.stop();
}

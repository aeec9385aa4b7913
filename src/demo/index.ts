import { Elysia, t } from "elysia";
import { dirname, join } from "node:path";
import type { Config } from "../config";
import { NotFound } from "../errors";
import { createTileProbe } from "./tiles";

/** The demo's files: plain HTML, JS and CSS served as they are (no build step). */
const FILES = {
  "demo.js": "text/javascript; charset=utf-8",
  "demo.css": "text/css; charset=utf-8",
} as const;

/** Leaflet's own dist files, served from the installed package (no CDN). */
const LEAFLET_DIST = dirname(Bun.resolveSync("leaflet/dist/leaflet.js", import.meta.dir));
const VENDOR = {
  "leaflet.js": "text/javascript; charset=utf-8",
  "leaflet.css": "text/css; charset=utf-8",
} as const;
const LEAFLET_IMAGES = new Set(["layers.png", "layers-2x.png", "marker-icon.png", "marker-icon-2x.png", "marker-shadow.png"]);

const here = import.meta.dir;

function serve(path: string, type: string, cache = "no-cache"): Response {
  return new Response(Bun.file(path), {
    headers: { "content-type": type, "cache-control": cache, "x-content-type-options": "nosniff" },
  });
}

const fileName = t.String({ maxLength: 64 });

export const MapSettings = t.Object({
  tileUrl: t.String({ description: "tile URL template (MAP_TILE_URL)" }),
  attribution: t.String({ description: "attribution shown on the map (HTML; MAP_TILE_ATTRIBUTION)" }),
  tiles: t.UnionEnum(["online", "offline"], { description: "whether a tile loaded from the server just now; offline: the page shows its grid" }),
});

/** `GET /demo`: the live tracking page (see docs/demo.md). */
export function demoModule(config: Pick<Config, "MAP_TILE_URL" | "MAP_TILE_ATTRIBUTION">) {
  const tilesLoad = createTileProbe(config.MAP_TILE_URL);
  const vendorCache = "public, max-age=86400";
  return new Elysia({ name: "demo", prefix: "/demo" })
    .get("", () => serve(join(here, "index.html"), "text/html; charset=utf-8"), {
      detail: { summary: "Live tracking page (HTML)", tags: ["demo"] },
    })
    .get(
      "/map.json",
      async () => ({ tileUrl: config.MAP_TILE_URL, attribution: config.MAP_TILE_ATTRIBUTION, tiles: (await tilesLoad()) ? ("online" as const) : ("offline" as const) }),
      { response: MapSettings, detail: { summary: "Map settings of the live tracking page (tile URL, attribution, whether tiles load)", tags: ["demo"] } },
    )
    .get(
      "/vendor/:file",
      ({ params }) => {
        const type = Object.hasOwn(VENDOR, params.file) ? VENDOR[params.file as keyof typeof VENDOR] : undefined;
        if (!type) throw new NotFound(`no vendor file ${params.file}`);
        return serve(join(LEAFLET_DIST, params.file), type, vendorCache);
      },
      { params: t.Object({ file: fileName }), detail: { hide: true } },
    )
    .get(
      "/vendor/images/:file",
      ({ params }) => {
        if (!LEAFLET_IMAGES.has(params.file)) throw new NotFound(`no vendor image ${params.file}`);
        return serve(join(LEAFLET_DIST, "images", params.file), "image/png", vendorCache);
      },
      { params: t.Object({ file: fileName }), detail: { hide: true } },
    )
    .get(
      "/:file",
      ({ params }) => {
        const type = Object.hasOwn(FILES, params.file) ? FILES[params.file as keyof typeof FILES] : undefined;
        if (!type) throw new NotFound(`no demo file ${params.file}`);
        return serve(join(here, params.file), type);
      },
      { params: t.Object({ file: fileName }), detail: { hide: true } },
    );
}

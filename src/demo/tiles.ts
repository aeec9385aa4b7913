/**
 * Whether the map tiles of MAP_TILE_URL load, asked by the server (one tile, cached a minute) so
 * the page can choose between the street map and its offline grid without making the browser
 * fail tile requests (each failure is an error in its console).
 */
export type TileProbe = () => Promise<boolean>;

const CACHE_MS = 60_000;
const TIMEOUT_MS = 2_000;

/** The URL of tile z/x/y (`{s}` is the first subdomain, as Leaflet would pick it). */
export function tileUrl(template: string, z: number, x: number, y: number): string {
  return template.replaceAll("{s}", "a").replaceAll("{z}", String(z)).replaceAll("{x}", String(x)).replaceAll("{y}", String(y)).replaceAll("{r}", "");
}

export function createTileProbe(template: string, now: () => number = Date.now): TileProbe {
  let cached: { ok: boolean; at: number } | null = null;
  let inFlight: Promise<boolean> | null = null;
  const ask = async (): Promise<boolean> => {
    try {
      const res = await fetch(tileUrl(template, 0, 0, 0), {
        signal: AbortSignal.timeout(TIMEOUT_MS),
        // OpenStreetMap's tile policy asks for an identifying User-Agent.
        headers: { "user-agent": "dispatch-live-tracking-page/0.1" },
      });
      await res.arrayBuffer();
      return res.ok && (res.headers.get("content-type") ?? "").startsWith("image/");
    } catch {
      return false;
    }
  };
  return async () => {
    if (cached && now() - cached.at < CACHE_MS) return cached.ok;
    inFlight ??= ask().then((ok) => {
      cached = { ok, at: now() };
      inFlight = null;
      return ok;
    });
    return inFlight;
  };
}

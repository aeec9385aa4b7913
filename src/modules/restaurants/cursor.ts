import { createHash } from "node:crypto";
import { InvalidInput } from "../../errors";

/**
 * Keyset cursor for discovery: the (distance, id) of the last item served, plus a hash of the
 * query it belongs to, so a cursor replayed against another query is refused rather than
 * silently paging through the wrong results. Opaque to clients (base64url JSON).
 */
export type NearbyPosition = { distance: number; id: string };

export type NearbyCursorQuery = {
  lat: number;
  lng: number;
  radius: number;
  cuisine?: string;
  openNow?: boolean;
  delivers?: boolean;
};

/** A stable fingerprint of everything that decides the result set (not the page size). */
export function queryFingerprint(q: NearbyCursorQuery): string {
  const canonical = JSON.stringify([q.lat, q.lng, q.radius, q.cuisine?.toLowerCase() ?? null, q.openNow === true, q.delivers === true]);
  return createHash("sha256").update(canonical).digest("base64url").slice(0, 16);
}

export function encodeCursor(position: NearbyPosition, fingerprint: string): string {
  return Buffer.from(JSON.stringify({ d: position.distance, i: position.id, q: fingerprint })).toString("base64url");
}

function badCursor(message: string): InvalidInput {
  return new InvalidInput("cursor is invalid", [{ path: "/cursor", message }]);
}

export function decodeCursor(cursor: string, fingerprint: string): NearbyPosition {
  let raw: unknown;
  try {
    if (!/^[A-Za-z0-9_-]+$/.test(cursor)) throw new Error("not base64url");
    raw = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
  } catch {
    throw badCursor("not a cursor issued by this server");
  }
  if (typeof raw !== "object" || raw === null) throw badCursor("not a cursor issued by this server");
  const { d, i, q } = raw as Record<string, unknown>;
  if (typeof d !== "number" || !Number.isFinite(d) || d < 0 || typeof i !== "string" || !/^[0-9a-f]{24}$/.test(i) || typeof q !== "string") {
    throw badCursor("not a cursor issued by this server");
  }
  if (q !== fingerprint) throw badCursor("cursor belongs to a different query (lat, lng, radius, cuisine, openNow and delivers must not change)");
  return { distance: d, id: i };
}

import type { LatLng } from "./vocabulary";

/** Geo math shared by the domain (pricing, dispatch, discovery). Plain TS, no I/O. */
export type { LatLng };

/** The Earth radius MongoDB uses for spherical distances, so our numbers match $geoNear's. */
export const EARTH_RADIUS_METERS = 6378100;

const RAD = Math.PI / 180;

/** Great-circle distance in meters (haversine). */
export function distanceMeters(a: LatLng, b: LatLng): number {
  const dLat = (b.lat - a.lat) * RAD;
  const dLng = (b.lng - a.lng) * RAD;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * RAD) * Math.cos(b.lat * RAD) * Math.sin(dLng / 2) ** 2;
  return 2 * EARTH_RADIUS_METERS * Math.asin(Math.min(1, Math.sqrt(h)));
}

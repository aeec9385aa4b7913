/** Geo math shared by the domain (pricing, dispatch, discovery). Plain TS, no I/O. */
export type LatLng = { lat: number; lng: number };

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

/** True for a finite latitude/longitude pair inside the valid ranges. */
export function isValidLatLng(p: LatLng): boolean {
  return Number.isFinite(p.lat) && Number.isFinite(p.lng) && p.lat >= -90 && p.lat <= 90 && p.lng >= -180 && p.lng <= 180;
}

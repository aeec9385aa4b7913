import { originalRequest } from "./request-context";

/** Bun's server, as far as finding the peer address goes. */
export type PeerAddressSource = { requestIP(request: Request): { address: string } | null } | null | undefined;

/**
 * The caller's IP, for rate limits and logs. X-Forwarded-For is client-controlled, so it is
 * read only when the operator says a proxy sets it, and then only its last entry (the one
 * that proxy appended).
 */
export function clientIp(request: Request, server: PeerAddressSource, trustProxy: boolean): string {
  if (trustProxy) {
    const forwarded = request.headers.get("x-forwarded-for");
    const last = forwarded?.split(",").map((s) => s.trim()).filter(Boolean).pop();
    if (last) return normalizeIp(last);
  }
  const peer = server?.requestIP(originalRequest(request))?.address;
  return peer ? normalizeIp(peer) : "unknown";
}

/** "::ffff:10.0.0.1" and "10.0.0.1" are the same client. */
function normalizeIp(ip: string): string {
  return ip.toLowerCase().replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/, "$1");
}

/**
 * Whether the request comes from this machine: the socket's peer is a loopback address and no
 * proxy says it relays someone else (a local reverse proxy adds X-Forwarded-For or Forwarded).
 * The peer is the socket's, never a header's: X-Forwarded-For cannot make a caller local.
 */
export function isLocalRequest(request: Request, server: PeerAddressSource): boolean {
  if (request.headers.has("x-forwarded-for") || request.headers.has("forwarded")) return false;
  const peer = server?.requestIP(originalRequest(request))?.address;
  return peer !== undefined && isLoopback(normalizeIp(peer));
}

function isLoopback(ip: string): boolean {
  return ip === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(ip);
}

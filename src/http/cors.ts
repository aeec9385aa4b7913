import type { Config } from "../config";

/**
 * CORS for browser clients on other origins (CORS_ORIGINS). Tokens travel in the
 * Authorization header, never in cookies, so a cross-origin page gains nothing the user's
 * browser holds; CORS here only decides which pages may read answers. Exact origins are
 * echoed (with `Vary: Origin`); `*` allows any origin but never with credentials.
 */
export type CorsPolicy = {
  /** Headers for a response to a request from `origin`; empty when that origin is not allowed. */
  responseHeaders(origin: string | null): Record<string, string>;
  /** The answer to a preflight (OPTIONS with Access-Control-Request-Method), or null for any other request. */
  preflight(request: Request): { allowed: boolean; headers: Record<string, string> } | null;
};

export const CORS_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"] as const;
export const CORS_REQUEST_HEADERS = ["authorization", "content-type", "if-match", "idempotency-key", "x-request-id"] as const;
const EXPOSED_HEADERS = "x-request-id, retry-after";
const PREFLIGHT_MAX_AGE_SECONDS = 600;

export function corsPolicy(config: Pick<Config, "CORS_ORIGINS" | "CORS_ALLOW_CREDENTIALS">): CorsPolicy | null {
  if (config.CORS_ORIGINS === undefined) return null;
  const origins = new Set(config.CORS_ORIGINS.split(",").map((o) => o.trim().toLowerCase()));
  const any = origins.has("*");
  const allowed = (origin: string | null): origin is string => origin !== null && (any || origins.has(origin.toLowerCase()));

  const responseHeaders = (origin: string | null): Record<string, string> => {
    if (any) return allowed(origin) ? { "access-control-allow-origin": "*", "access-control-expose-headers": EXPOSED_HEADERS } : {};
    // The answer depends on the Origin header, allowed or not: shared caches must key on it.
    if (!allowed(origin)) return { vary: "Origin" };
    const headers: Record<string, string> = { vary: "Origin", "access-control-allow-origin": origin, "access-control-expose-headers": EXPOSED_HEADERS };
    if (config.CORS_ALLOW_CREDENTIALS) headers["access-control-allow-credentials"] = "true";
    return headers;
  };

  return {
    responseHeaders,
    preflight(request) {
      if (request.method !== "OPTIONS") return null;
      const method = request.headers.get("access-control-request-method");
      if (method === null) return null;
      const origin = request.headers.get("origin");
      const requested = (request.headers.get("access-control-request-headers") ?? "")
        .split(",")
        .map((h) => h.trim().toLowerCase())
        .filter(Boolean);
      const ok =
        allowed(origin) &&
        (CORS_METHODS as readonly string[]).includes(method.toUpperCase()) &&
        requested.every((h) => (CORS_REQUEST_HEADERS as readonly string[]).includes(h));
      if (!ok) return { allowed: false, headers: {} };
      return {
        allowed: true,
        headers: {
          ...responseHeaders(origin),
          "access-control-allow-methods": CORS_METHODS.join(", "),
          "access-control-allow-headers": CORS_REQUEST_HEADERS.join(", "),
          "access-control-max-age": String(PREFLIGHT_MAX_AGE_SECONDS),
        },
      };
    },
  };
}

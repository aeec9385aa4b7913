import type { Config } from "../config";

/**
 * Headers every response carries. The API answers JSON, so its documents may load nothing
 * and be framed by nobody; HTML pages (API docs, the demo) keep their own script policy but
 * still refuse framing. A header a route set itself is kept.
 */
export function securityHeaders(config: Pick<Config, "HSTS_MAX_AGE_SECONDS">) {
  const hsts = config.HSTS_MAX_AGE_SECONDS > 0 ? `max-age=${config.HSTS_MAX_AGE_SECONDS}; includeSubDomains` : null;
  return (headers: Headers, opts: { authenticated: boolean }): void => {
    const html = (headers.get("content-type") ?? "").startsWith("text/html");
    const defaults: Array<[string, string]> = [
      ["x-content-type-options", "nosniff"],
      ["referrer-policy", "no-referrer"],
      ["x-frame-options", "DENY"],
      ["content-security-policy", html ? "frame-ancestors 'none'" : "default-src 'none'; frame-ancestors 'none'"],
      ["cross-origin-resource-policy", "same-origin"],
    ];
    if (hsts) defaults.push(["strict-transport-security", hsts]);
    // Answers to signed-in callers are theirs alone: no shared cache may keep them.
    if (opts.authenticated) defaults.push(["cache-control", "no-store"]);
    for (const [name, value] of defaults) if (!headers.has(name)) headers.set(name, value);
  };
}

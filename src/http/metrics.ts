import { Elysia, StatusMap } from "elysia";
import { MongoError } from "mongodb";
import { timingSafeEqual } from "node:crypto";
import type { Config } from "../config";
import type { Metrics } from "../metrics";
import { Forbidden, Unauthorized } from "../errors";
import { isLocalRequest } from "./client-ip";

/** Requests no route matched share one label, so stray paths cannot grow the series count. */
export const UNMATCHED_ROUTE = "(unmatched)";

function statusCode(status: number | string | undefined): number {
  if (typeof status === "number") return status;
  if (typeof status === "string" && status in StatusMap) return StatusMap[status as keyof typeof StatusMap];
  return 200;
}

function sameToken(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Per-request HTTP metrics, labelled by the matched route pattern (e.g. `/orders/:id`).
 * Registered before the problem plugin, so its hooks run first and see every request, the
 * refused ones too.
 */
export function httpMetricsPlugin(deps: { metrics: Metrics }) {
  const { metrics } = deps;
  const startedAt = new WeakMap<Request, number>();
  return new Elysia({ name: "http-metrics" })
    .onRequest(({ request }) => {
      startedAt.set(request, performance.now());
    })
    .onError({ as: "global" }, ({ error }) => {
      // Counted here and answered by the problem plugin (which runs next).
      if (error instanceof MongoError) metrics.dbErrors.inc({ kind: "request" });
    })
    .onAfterResponse({ as: "global" }, (ctx) => {
      const start = startedAt.get(ctx.request);
      if (start === undefined) return;
      // Not-found contexts carry no route.
      const route = "route" in ctx && typeof ctx.route === "string" && ctx.route !== "" ? ctx.route : UNMATCHED_ROUTE;
      let status = statusCode(ctx.set.status);
      // An accepted WebSocket upgrade reports 200 here; the client got 101.
      if (status === 200 && ctx.request.headers.get("upgrade")?.toLowerCase() === "websocket") status = 101;
      const labels = { method: ctx.request.method, route, status: String(status) };
      metrics.httpRequests.inc(labels);
      metrics.httpRequestDuration.observe(labels, (performance.now() - start) / 1000);
    });
}

/** `GET /metrics` in Prometheus text format (after the problem plugin, so a refusal is problem+json). */
export function metricsModule(deps: { metrics: Metrics; config: Pick<Config, "METRICS_TOKEN"> }) {
  const { metrics } = deps;
  const token = deps.config.METRICS_TOKEN;
  return new Elysia({ name: "metrics" })
    .get(
      "/metrics",
      async ({ headers, set, request, server }) => {
        if (token !== undefined) {
          const match = /^Bearer\s+(\S+)$/i.exec(headers.authorization ?? "");
          if (!match || !sameToken(match[1], token)) throw new Unauthorized("GET /metrics needs Authorization: Bearer <METRICS_TOKEN>");
        } else if (!isLocalRequest(request, server)) {
          // No token configured: only this machine may scrape, so a reachable server does not publish its counters.
          throw new Forbidden("GET /metrics without METRICS_TOKEN answers loopback callers only; set METRICS_TOKEN to scrape from elsewhere");
        }
        set.headers["content-type"] = metrics.contentType;
        set.headers["cache-control"] = "no-store";
        return metrics.render();
      },
      {
        detail: {
          summary: "Prometheus metrics (text format); needs Bearer METRICS_TOKEN when that is set, else loopback callers only",
          tags: ["monitoring"],
        },
      },
    );
}

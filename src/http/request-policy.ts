import { Elysia } from "elysia";
import type { TSchema } from "@sinclair/typebox";
import type { Config } from "../config";
import type { Logger } from "../log";
import type { RateLimiterFactory } from "./rate-limit";
import { clientIp } from "./client-ip";
import { corsPolicy } from "./cors";
import { InvalidInput, UnsupportedMediaType } from "../errors";
import { bodyProblems, parameterProblems } from "./input";
import { MAX_BODY_BYTES, problem, problemResponse } from "./problem";
import { noteRoute, noteUser, rebuiltFrom, requestIdFrom, runInRequestScope, type RequestScope } from "./request-context";
import { securityHeaders } from "./security-headers";
import { startHttpSpan } from "../tracing";
import { tokenSubject, WriteLimits } from "./write-limits";

/** What the policy needs to know about each route (Elysia's `app.routes`). */
export type RouteInfo = { method: string; path: string; hooks: { body?: unknown } };

type Handle = (request: Request) => unknown;

const JSON_CONTENT_TYPE = /^application\/json\s*(;\s*charset\s*=\s*"?utf-8"?\s*)?$/i;

function carriesBody(request: Request): boolean {
  const length = request.headers.get("content-length");
  return (length !== null && length.trim() !== "0") || request.headers.has("transfer-encoding");
}

function pathOf(url: string): string {
  const start = url.indexOf("/", url.indexOf("//") + 2);
  if (start < 0) return "/";
  const end = url.indexOf("?", start);
  return end < 0 ? url.slice(start) : url.slice(start, end);
}

/**
 * What every request goes through, around the routes: a request id and a log scope, CORS
 * (preflights answered here), the body-size limit also for chunked bodies, JSON-only bodies
 * (415), per-user and per-IP write limits (429), the input rules of ./input.ts (400), a
 * deadline (503), security headers, and one access-log line. `routes` gives each route's body
 * schema, for the unknown-field check.
 */
export function requestPolicyPlugin(deps: { config: Config; log: Logger; rateLimiters?: RateLimiterFactory }, routes: () => readonly RouteInfo[]) {
  const { config } = deps;
  const log = deps.log.child({ component: "http" });
  const cors = corsPolicy(config);
  const secure = securityHeaders(config);
  const writes = new WriteLimits(config, deps.rateLimiters);

  let bodySchemas = new Map<string, TSchema>();
  let indexedRoutes = -1;
  const bodySchemaOf = (method: string, route: string): TSchema | undefined => {
    const all = routes();
    if (all.length !== indexedRoutes) {
      bodySchemas = new Map();
      for (const r of all) if (r.hooks.body && typeof r.hooks.body === "object") bodySchemas.set(`${r.method} ${r.path}`, r.hooks.body as TSchema);
      indexedRoutes = all.length;
    }
    return bodySchemas.get(`${method} ${route}`);
  };

  /** Reads a body sent without Content-Length up to the limit, so the limit holds for chunked uploads too. */
  async function readChunked(request: Request, requestId: string): Promise<Request | Response> {
    if (!request.body || request.headers.has("content-length") || request.method === "GET" || request.method === "HEAD") return request;
    const reader = request.body.getReader();
    const chunks: Uint8Array[] = [];
    let size = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > MAX_BODY_BYTES) {
        reader.cancel().catch(() => undefined);
        return problemResponse(problem(413, "Payload too large", `request body is over ${MAX_BODY_BYTES} bytes`, { requestId }));
      }
      chunks.push(value);
    }
    const headers = new Headers(request.headers);
    headers.delete("transfer-encoding");
    headers.set("content-length", String(size));
    return rebuiltFrom(new Request(request.url, { method: request.method, headers, body: Buffer.concat(chunks) }), request);
  }

  async function withDeadline(work: Promise<unknown>, requestId: string): Promise<unknown> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<Response>((resolve) => {
      timer = setTimeout(() => {
        log.warn("request timed out", { timeoutMs: config.REQUEST_TIMEOUT_MS });
        resolve(
          problemResponse(
            problem(503, "Service unavailable", `no answer within ${config.REQUEST_TIMEOUT_MS} ms; the change may still happen: retry with the same Idempotency-Key or If-Match`, { requestId }),
            { "retry-after": "1" },
          ),
        );
      }, config.REQUEST_TIMEOUT_MS);
    });
    try {
      return await Promise.race([work, deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The headers every answer carries; a response whose headers are frozen is copied first. */
  function finish(response: Response, request: Request, requestId: string, grant: boolean): Response {
    let out = response;
    const apply = (headers: Headers) => {
      headers.set("x-request-id", requestId);
      secure(headers, { authenticated: request.headers.has("authorization") });
      // A refused preflight grants nothing, even to a listed origin.
      if (cors && grant) {
        for (const [name, value] of Object.entries(cors.responseHeaders(request.headers.get("origin")))) {
          if (name === "vary") headers.append("vary", value);
          else headers.set(name, value);
        }
      }
    };
    try {
      apply(out.headers);
    } catch {
      out = new Response(response.body, response);
      apply(out.headers);
    }
    return out;
  }

  async function serve(request: Request, handle: Handle): Promise<unknown> {
    const started = performance.now();
    const requestId = requestIdFrom(request.headers);
    const scope: RequestScope = { requestId, logFields: { requestId } };
    const span = startHttpSpan(request, pathOf(request.url));
    const run = () => runInRequestScope(scope, async () => {
      let response: unknown;
      const preflight = cors?.preflight(request);
      let grant = true;
      if (preflight) {
        grant = preflight.allowed;
        response = preflight.allowed
          ? new Response(null, { status: 204, headers: preflight.headers })
          : problemResponse(problem(403, "Forbidden", "this origin, method or header is not allowed (CORS)", { requestId }));
      } else {
        response = await withDeadline(
          (async () => {
            const read = await readChunked(request, requestId);
            return read instanceof Response ? read : handle(read);
          })(),
          requestId,
        );
      }
      if (response instanceof Response) response = finish(response, request, requestId, grant);
      // Once Bun has upgraded the connection, what the route returns is never sent.
      const upgraded = !(response instanceof Response) || (response.status === 200 && request.headers.get("upgrade")?.toLowerCase() === "websocket");
      const status = upgraded ? 101 : (response as Response).status;
      log.info("request", {
        method: request.method,
        route: scope.route ?? null,
        path: pathOf(request.url),
        status,
        durationMs: Math.round((performance.now() - started) * 10) / 10,
      });
      span?.end({ route: scope.route ?? null, status, requestId });
      return response;
    });
    return span ? span.run(run) : run();
  }

  return new Elysia({ name: "request-policy" })
    .wrap((handle) => ((request: Request) => serve(request, handle as unknown as Handle)) as unknown as ReturnType<typeof handle>)
    .onRequest(async ({ request, server }) => {
      if (carriesBody(request) && !JSON_CONTENT_TYPE.test(request.headers.get("content-type") ?? "")) {
        throw new UnsupportedMediaType("request bodies are JSON: send Content-Type: application/json");
      }
      // Verified here already (signature and expiry), so even refused requests log who sent them.
      const userId = tokenSubject(request.headers.get("authorization"), config.JWT_SECRET, Date.now() / 1000);
      if (userId !== null) noteUser(userId);
      await writes.count(request, clientIp(request, server, config.TRUST_PROXY), userId);
    })
    .onTransform({ as: "global" }, ({ request, route, body, query, params }) => {
      noteRoute(route);
      let errors = parameterProblems(params as Record<string, unknown> | undefined);
      if (errors.length > 0) throw new InvalidInput("path is invalid", errors);
      errors = parameterProblems(query as Record<string, unknown> | undefined);
      if (errors.length > 0) throw new InvalidInput("query is invalid", errors);
      const schema = bodySchemaOf(request.method, route);
      if (body === undefined || body === "") {
        // Elysia would let a route whose fields are all optional run with no body at all.
        if (schema) throw new InvalidInput("request body is required: send a JSON object", [{ path: "/", message: "missing" }]);
        return;
      }
      errors = bodyProblems(schema, body);
      if (errors.length > 0) throw new InvalidInput("request body is invalid", errors);
    });
}

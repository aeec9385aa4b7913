import { Elysia, t, ValidationError } from "elysia";
import { isDatabaseUnavailable } from "../db/errors";
import { errorField, type Logger } from "../log";
import { DomainError, PayloadTooLarge, RateLimited, ServiceUnavailable, type FieldError } from "../errors";
import { currentRequestScope, requestIdFrom } from "./request-context";

export const PROBLEM_CONTENT_TYPE = "application/problem+json";
export const MAX_BODY_BYTES = 64 * 1024;

/** An application/problem+json body (RFC 9457) as every error answer carries it; routes name it in their responses. */
export const problemSchema = t.Object(
  {
    type: t.String(),
    title: t.String(),
    status: t.Integer(),
    detail: t.String(),
    requestId: t.Optional(t.String()),
    errors: t.Optional(t.Array(t.Object({ path: t.String(), message: t.String() }))),
  },
  { additionalProperties: true },
);
export type Problem = typeof problemSchema.static & { [extra: string]: unknown };

export function problemResponse(problem: Problem, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(problem), {
    status: problem.status,
    headers: { "content-type": PROBLEM_CONTENT_TYPE, ...headers },
  });
}

function problemType(status: number): string {
  return `https://dispatch.dev/problems/${status}`;
}

export function problem(status: number, title: string, detail: string, extra: Record<string, unknown> = {}): Problem {
  return { type: problemType(status), title, status, detail, ...extra };
}

function validationErrors(error: ValidationError): FieldError[] {
  const seen = new Set<string>();
  const out: FieldError[] = [];
  for (const e of error.all) {
    const path = "path" in e && typeof e.path === "string" && e.path !== "" ? e.path : "/";
    // A schema's own `error` text beats TypeBox's (e.g. "should be one of: 'numeric', 'number'" for query numbers).
    const custom = "schema" in e && e.schema && typeof (e.schema as { error?: unknown }).error === "string" ? (e.schema as { error: string }).error : undefined;
    const message = custom ?? (("summary" in e && typeof e.summary === "string" && e.summary) || e.message);
    const key = `${path}\u0000${message}`;
    if (seen.has(key) || out.length >= 20) continue;
    seen.add(key);
    out.push({ path, message });
  }
  return out;
}

/**
 * Request ids, the body-size limit, and the one place where errors become problem+json.
 * Registered globally so every feature plugin's errors pass through it.
 */
export function problemPlugin(log: Logger) {
  return new Elysia({ name: "problem" })
    .onRequest(({ request, set }) => {
      // The request policy's scope chose the id (so log lines carry it); outside one, choose here.
      set.headers["x-request-id"] = currentRequestScope()?.requestId ?? requestIdFrom(request.headers);
      const length = request.headers.get("content-length");
      // Thrown, not returned: an early return would skip the after-response hooks (metrics).
      if (length !== null && Number(length) > MAX_BODY_BYTES) throw new PayloadTooLarge(`request body is over ${MAX_BODY_BYTES} bytes`);
    })
    .derive({ as: "global" }, ({ set }) => ({ requestId: String(set.headers["x-request-id"] ?? "") }))
    .onError({ as: "global" }, ({ code, error, set, request, path }) => {
      const requestId = String(set.headers["x-request-id"] ?? crypto.randomUUID());
      const headers: Record<string, string> = { "x-request-id": requestId };
      let body: Problem;
      if (error instanceof DomainError) {
        body = problem(error.status, error.title, error.message, error.extra());
        if (error instanceof RateLimited) headers["retry-after"] = String(error.retryAfterSeconds);
        if (error instanceof ServiceUnavailable && error.retryAfterSeconds !== undefined) headers["retry-after"] = String(error.retryAfterSeconds);
      } else if (code === "VALIDATION" && error instanceof ValidationError && error.type !== "response") {
        const where = error.type === "body" ? "request body" : error.type;
        body = problem(400, "Invalid input", `${where} is invalid`, { errors: validationErrors(error) });
      } else if (code === "PARSE") {
        body = problem(400, "Invalid input", "request body could not be parsed (send valid JSON with content-type application/json)", { errors: [] });
      } else if (code === "NOT_FOUND") {
        body = problem(404, "Not found", `no route for ${request.method} ${path}`);
      } else if (code === "INVALID_COOKIE_SIGNATURE") {
        body = problem(400, "Invalid input", "invalid cookie signature", { errors: [] });
      } else if (isBodyTooLarge(error)) {
        body = problem(413, "Payload too large", `request body is over ${MAX_BODY_BYTES} bytes`);
      } else if (isDatabaseUnavailable(error)) {
        log.warn("database unavailable", { requestId, method: request.method, path, err: errorField(error) });
        body = problem(503, "Service unavailable", "the database cannot be reached now; retry", {});
        headers["retry-after"] = "1";
      } else {
        log.error("unhandled error", { requestId, method: request.method, path, err: errorField(error) });
        body = problem(500, "Internal server error", "an unexpected error occurred; quote the request id when reporting it");
      }
      body.requestId = requestId;
      set.status = body.status; // so after-response hooks (metrics) see the status sent
      return problemResponse(body, headers);
    });
}

function isBodyTooLarge(error: unknown): boolean {
  return error instanceof Error && /too large|maxRequestBodySize/i.test(error.message);
}

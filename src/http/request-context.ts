import { AsyncLocalStorage } from "node:async_hooks";
import { logContext, type LogFields } from "../log";

/**
 * What the HTTP layer knows about the request being served, reachable from any code that runs
 * while serving it (hooks, handlers, services) without passing it around.
 */
export type RequestScope = {
  requestId: string;
  /** The matched route pattern (e.g. `/orders/:id`), once routing is done. */
  route?: string;
  /** Lines logged while serving the request carry these (requestId, then userId once known). */
  logFields: LogFields;
};

const scopes = new AsyncLocalStorage<RequestScope>();

/** Accepted from a client's X-Request-Id; anything else is replaced, so ids stay log-safe. */
export const REQUEST_ID_PATTERN = /^[A-Za-z0-9._:-]{1,64}$/;

export function requestIdFrom(headers: Headers): string {
  const incoming = headers.get("x-request-id");
  return incoming !== null && REQUEST_ID_PATTERN.test(incoming) ? incoming : crypto.randomUUID();
}

export function runInRequestScope<T>(scope: RequestScope, fn: () => T): T {
  return scopes.run(scope, () => logContext.run(scope.logFields, fn));
}

export function currentRequestScope(): RequestScope | undefined {
  return scopes.getStore();
}

/** Records the authenticated caller, for the access log and the request's later log lines. */
export function noteUser(userId: string): void {
  const scope = scopes.getStore();
  if (scope) scope.logFields.userId = userId;
}

export function noteRoute(route: string): void {
  const scope = scopes.getStore();
  if (scope) scope.route = route;
}

/**
 * A request the HTTP layer had to rebuild (a chunked body read ahead to enforce the size
 * limit) maps back to the one Bun received, which is the only one it knows the peer of.
 */
const originals = new WeakMap<Request, Request>();

export function rebuiltFrom(rebuilt: Request, original: Request): Request {
  originals.set(rebuilt, original);
  return rebuilt;
}

export function originalRequest(request: Request): Request {
  return originals.get(request) ?? request;
}

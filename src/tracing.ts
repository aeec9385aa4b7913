import { context, propagation, SpanKind, SpanStatusCode, trace, ROOT_CONTEXT, type Attributes, type Span, type Tracer } from "@opentelemetry/api";
import type { Config } from "./config";
import { toError } from "./log";

/**
 * OpenTelemetry traces over OTLP/HTTP, on only when OTEL_EXPORTER_OTLP_ENDPOINT is set. Off, the
 * SDK is never loaded and every helper here calls straight through (one null check): no span
 * objects, no context switches, nothing exported. The OTel API keeps its provider per process,
 * so this does too; a second server in the process shares the first one's.
 *
 * Spans: one per HTTP request (route pattern, status, request id; a client's W3C traceparent is
 * continued), MongoDB commands (the driver's command monitoring), Redis commands, order
 * transitions, durable timers firing and WebSocket publishes.
 */
let tracer: Tracer | null = null;

export type Tracing = {
  /** Flushes what is buffered and turns tracing off again. */
  shutdown(): Promise<void>;
};

export function tracingEnabled(): boolean {
  return tracer !== null;
}

export async function startTracing(config: Pick<Config, "OTEL_EXPORTER_OTLP_ENDPOINT" | "OTEL_SERVICE_NAME" | "INSTANCE_ID">): Promise<Tracing | null> {
  const endpoint = config.OTEL_EXPORTER_OTLP_ENDPOINT;
  if (endpoint === undefined || tracer !== null) return null;
  // Loaded only when tracing is on.
  const [{ BasicTracerProvider, BatchSpanProcessor }, { OTLPTraceExporter }, { AsyncLocalStorageContextManager }, { W3CTraceContextPropagator }, { resourceFromAttributes }] = await Promise.all([
    import("@opentelemetry/sdk-trace-base"),
    import("@opentelemetry/exporter-trace-otlp-http"),
    import("@opentelemetry/context-async-hooks"),
    import("@opentelemetry/core"),
    import("@opentelemetry/resources"),
  ]);
  const exporter = new OTLPTraceExporter({ url: `${endpoint.replace(/\/+$/, "")}/v1/traces` });
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ "service.name": config.OTEL_SERVICE_NAME, "service.instance.id": config.INSTANCE_ID }),
    spanProcessors: [new BatchSpanProcessor(exporter, { scheduledDelayMillis: 1_000 })],
  });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(provider);
  tracer = provider.getTracer("dispatch");
  return {
    async shutdown() {
      tracer = null;
      await provider.shutdown();
      trace.disable();
      context.disable();
      propagation.disable();
    },
  };
}

function fail(span: Span, err: unknown): void {
  const error = toError(err);
  span.recordException(error);
  span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
}

/** Runs `fn` in a child span of the current one (straight through when tracing is off). */
export async function inSpan<T>(name: string, attributes: Attributes, fn: (span: Span | null) => Promise<T>): Promise<T> {
  if (!tracer) return fn(null);
  return tracer.startActiveSpan(name, { attributes, kind: SpanKind.INTERNAL }, async (span) => {
    try {
      return await fn(span);
    } catch (err) {
      fail(span, err);
      throw err;
    } finally {
      span.end();
    }
  });
}

/** Adds attributes to the current span, if any. */
export function annotate(attributes: Attributes): void {
  if (tracer) trace.getActiveSpan()?.setAttributes(attributes);
}

/** A short synchronous step (a WebSocket publish) as a span. */
export function inSpanSync<T>(name: string, attributes: Attributes, fn: () => T): T {
  if (!tracer) return fn();
  const span = tracer.startSpan(name, { attributes, kind: SpanKind.PRODUCER });
  try {
    return fn();
  } finally {
    span.end();
  }
}

/** A client span started now and ended by the caller (driver and Redis commands). */
export function startClientSpan(name: string, attributes: Attributes): { end(err?: unknown): void } | null {
  if (!tracer) return null;
  const span = tracer.startSpan(name, { attributes, kind: SpanKind.CLIENT });
  return {
    end(err?: unknown) {
      if (err !== undefined) fail(span, err);
      span.end();
    },
  };
}

export type HttpSpan = { run<T>(fn: () => T): T; end(info: { route: string | null; status: number; requestId: string }): void };

/**
 * The server span of one HTTP request, continuing the client's trace when it sent a W3C
 * `traceparent`; named by the route pattern once routing has found it.
 */
export function startHttpSpan(request: Request, path: string): HttpSpan | null {
  if (!tracer) return null;
  const carrier: Record<string, string> = {};
  for (const name of ["traceparent", "tracestate"]) {
    const value = request.headers.get(name);
    if (value !== null) carrier[name] = value;
  }
  const parent = propagation.extract(ROOT_CONTEXT, carrier);
  const span = tracer.startSpan(request.method, { kind: SpanKind.SERVER, attributes: { "http.request.method": request.method, "url.path": path } }, parent);
  const active = trace.setSpan(parent, span);
  return {
    run: (fn) => context.with(active, fn),
    end({ route, status, requestId }) {
      if (route !== null) {
        span.updateName(`${request.method} ${route}`);
        span.setAttribute("http.route", route);
      }
      span.setAttribute("http.response.status_code", status);
      span.setAttribute("http.request.id", requestId);
      if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
    },
  };
}

import { t } from "elysia";
import { TypeCompiler } from "@sinclair/typebox/compiler";
import { Type } from "@sinclair/typebox";
import { latitude, longitude } from "../vocabulary";

/**
 * WebSocket messages (API.md, WebSocket). Client messages are validated with these schemas;
 * unknown extra fields are ignored so clients can add their own (e.g. a correlation id).
 */
export namespace RealtimeModel {
  const topic = t.String({ minLength: 1, maxLength: 100 });

  export const subscribe = t.Object({
    op: t.Literal("subscribe"),
    topic,
    /**
     * Order topics: the last seq the client has; every later event is replayed first.
     * Restaurant and courier topics: a time in epoch milliseconds; every event at or after it is replayed.
     */
    // TypeBox's Integer, not Elysia's t.Integer: that one also passes "5" and hands on the string.
    since: t.Optional(Type.Integer({ minimum: 0 })),
  });
  export type subscribe = typeof subscribe.static;

  export const unsubscribe = t.Object({ op: t.Literal("unsubscribe"), topic });
  export type unsubscribe = typeof unsubscribe.static;

  export const ping = t.Object({ op: t.Literal("ping") });

  export const location = t.Object({
    op: t.Literal("location"),
    lat: latitude,
    lng: longitude,
    heading: t.Optional(t.Number({ minimum: 0, maximum: 360 })),
    speedMps: t.Optional(t.Number({ minimum: 0, maximum: 150 })),
    /** When the fix was taken: ISO 8601 or epoch ms. Server time when absent. */
    at: t.Optional(t.Union([t.String({ minLength: 1, maxLength: 40 }), Type.Integer({ minimum: 0 })])),
  });
  export type location = typeof location.static;

  export const ops = { subscribe, unsubscribe, ping, location } as const;
  export type op = keyof typeof ops;

  /** Error codes of `{"type":"error"}` frames. */
  export type errorCode =
    | "binary_not_supported"
    | "frame_too_large"
    | "bad_json"
    | "invalid_message"
    | "invalid_topic"
    | "forbidden"
    | "already_subscribed"
    | "not_subscribed"
    | "too_many_subscriptions"
    | "replay_too_large"
    | "stale_location"
    | "future_location"
    | "rate_limited"
    | "unavailable"
    | "internal";
}

/** Compiled once: validation runs on every frame. */
export const clientMessageCheckers = {
  subscribe: TypeCompiler.Compile(RealtimeModel.subscribe),
  unsubscribe: TypeCompiler.Compile(RealtimeModel.unsubscribe),
  ping: TypeCompiler.Compile(RealtimeModel.ping),
  location: TypeCompiler.Compile(RealtimeModel.location),
};

export type ClientMessage =
  | RealtimeModel.subscribe
  | RealtimeModel.unsubscribe
  | { op: "ping" }
  | RealtimeModel.location;

/** Parses one validated client message, or says what is wrong with it. */
export function decodeClientMessage(value: unknown): { ok: true; message: ClientMessage } | { ok: false; message: string } {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return { ok: false, message: "expected a JSON object with an op" };
  const op = (value as { op?: unknown }).op;
  if (typeof op !== "string" || !Object.hasOwn(clientMessageCheckers, op)) {
    return { ok: false, message: `op must be one of ${Object.keys(clientMessageCheckers).join(", ")}` };
  }
  const checker = clientMessageCheckers[op as RealtimeModel.op];
  if (checker.Check(value)) return { ok: true, message: value as ClientMessage };
  const first = checker.Errors(value).First();
  return { ok: false, message: first ? `${first.path || "/"}: ${first.message}` : "invalid message" };
}

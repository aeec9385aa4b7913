import { Elysia } from "elysia";
import type { Config } from "../config";
import type { AppDeps } from "../deps";
import { Unauthorized } from "../errors";
import type { AuthPlugin } from "../http/auth";
import { MemoryConnectionLimiter } from "../http/connection-limit";
import { CLOSE_POLICY, type Socket } from "./client";
import type { RealtimeHub } from "./hub";

/** Bun's server-wide WebSocket settings (Bun applies them per server, not per route). */
export function realtimeServerOptions(config: Pick<Config, "WS_MAX_FRAME_BYTES" | "WS_IDLE_TIMEOUT_SECONDS" | "WS_MAX_BUFFERED_BYTES">) {
  return {
    // Frames up to 4× the limit are read and answered with an error frame; beyond that Bun closes with 1009.
    maxPayloadLength: Math.max(4 * config.WS_MAX_FRAME_BYTES, 64 * 1024),
    idleTimeout: config.WS_IDLE_TIMEOUT_SECONDS,
    sendPings: true,
    // The 1013 sweep acts at WS_MAX_BUFFERED_BYTES; this is the hard stop (Bun cuts the socket
    // without a close frame) for a client that falls behind faster than the sweep runs.
    backpressureLimit: 16 * config.WS_MAX_BUFFERED_BYTES,
    closeOnBackpressureLimit: true,
    perMessageDeflate: false,
    publishToSelf: false,
  };
}

/** Frames Bun hands to a route's `message` handler; replaced so the hub sees them unparsed. */
type RawMessageHandler = (socket: Socket, message: string | Buffer) => void;

/**
 * `GET /ws?token=<jwt>` (API.md, WebSocket). The token is checked before the upgrade: a
 * missing or bad one gets 401 and no socket.
 */
export function realtimeModule(deps: Pick<AppDeps, "config" | "connectionLimiter">, hub: RealtimeHub, auth: AuthPlugin) {
  const maxPerUser = deps.config.WS_MAX_CONNECTIONS_PER_USER;
  const limiter = deps.connectionLimiter ?? new MemoryConnectionLimiter(maxPerUser);
  /** Each socket's slot in the per-user count: resolves true once it holds one. */
  const slots = new WeakMap<Socket, { userId: string; id: string; granted: Promise<boolean> }>();
  const closed = (socket: Socket) => {
    hub.disconnected(socket);
    const slot = slots.get(socket);
    slots.delete(socket);
    if (slot) void slot.granted.then((ok) => (ok ? limiter.release(slot.userId, slot.id) : undefined)).catch(() => undefined);
  };
  return new Elysia({ name: "realtime" })
    .use(auth)
    .resolve(async ({ query, verifyToken }) => {
      const principal = await verifyToken(typeof query.token === "string" ? query.token : null);
      if (!principal) throw new Unauthorized("missing or invalid token (GET /ws?token=<jwt>)");
      return { principal };
    })
    .ws("/ws", {
      open(ws) {
        const socket = ws.raw as Socket;
        hub.connected(socket, ws.data.principal);
        const slot = { userId: ws.data.principal.id, id: crypto.randomUUID(), granted: Promise.resolve(false) };
        slot.granted = limiter.acquire(slot.userId, slot.id).catch(() => true); // a broken store must not lock users out
        slots.set(socket, slot);
        void slot.granted.then((ok) => {
          if (!ok) socket.close(CLOSE_POLICY, `too many connections for this user (at most ${maxPerUser})`);
        });
        // Bun calls the handlers on `socket.data`. Elysia's hold the whole upgrade context
        // (request, headers, closures: several KiB per idle socket), so only ours stay. Frames
        // reach the hub unparsed: it enforces the size limit and answers malformed ones itself.
        (socket as { data: unknown }).data = {
          message: ((raw, message) => hub.receive(raw, message)) satisfies RawMessageHandler,
          close: (raw: Socket) => closed(raw),
        };
      },
      close(ws) {
        closed(ws.raw as Socket); // only when `open` failed before replacing the handlers
      },
      detail: { summary: "Live order events (see API.md, WebSocket); ?token=<jwt>", tags: ["realtime"] },
    });
}

import type { Logger } from "../log";
import { CLOSE_POLICY, type Client } from "./client";
import { decodeClientMessage, type ClientMessage, type RealtimeModel } from "./model";

const ABUSE_WINDOW_MS = 10_000;
/** Client frames per second a connection may send on average, and in a burst (each subscribe costs a database read). */
export const FRAME_RATE_PER_SECOND = 50;
export const FRAME_BURST = 100;

export type FrameLimitsOptions = {
  /** Bytes a text frame may have (WS_MAX_FRAME_BYTES). */
  maxFrameBytes: number;
  /** Invalid frames in ten seconds that close the connection (WS_MAX_INVALID_FRAMES). */
  maxInvalidFrames: number;
  log: Logger;
};

/**
 * What a client frame must pass before its op runs: the frame rate (a token bucket per
 * connection), text only, the size limit, JSON, and the message schema. A refused frame gets
 * an error frame and a strike; too many strikes in a window close the connection (1008).
 */
export class FrameLimits {
  constructor(private readonly opts: FrameLimitsOptions) {}

  /** The decoded message, or null when the frame was refused (and answered). */
  admit(client: Client, frame: string | Buffer): ClientMessage | null {
    const now = performance.now();
    client.allowance = Math.min(FRAME_BURST, client.allowance + ((now - client.lastFrameMs) * FRAME_RATE_PER_SECOND) / 1000);
    client.lastFrameMs = now;
    if (client.allowance < 1) return this.reject(client, "rate_limited", `at most ${FRAME_RATE_PER_SECOND} frames per second; this one was dropped`);
    client.allowance -= 1;
    if (typeof frame !== "string") return this.reject(client, "binary_not_supported", "send JSON text frames");
    const limit = this.opts.maxFrameBytes;
    if (frame.length > limit || (frame.length * 3 > limit && Buffer.byteLength(frame) > limit)) {
      return this.reject(client, "frame_too_large", `frames are limited to ${limit} bytes`);
    }
    let value: unknown;
    try {
      value = JSON.parse(frame);
    } catch {
      return this.reject(client, "bad_json", "frame is not valid JSON");
    }
    const decoded = decodeClientMessage(value);
    if (!decoded.ok) return this.reject(client, "invalid_message", decoded.message);
    return decoded.message;
  }

  /** An invalid frame: error frame, and a strike; too many strikes in a window close the connection. */
  reject(client: Client, code: RealtimeModel.errorCode, message: string): null {
    client.sendError(code, message);
    const now = performance.now();
    client.strikes = client.strikes.filter((t) => now - t < ABUSE_WINDOW_MS);
    client.strikes.push(now);
    if (client.strikes.length >= this.opts.maxInvalidFrames) {
      this.opts.log.info("closing a connection after repeated invalid frames", { principalId: client.principal.id, strikes: client.strikes.length });
      client.close(CLOSE_POLICY, "too many invalid frames");
    }
    return null;
  }
}

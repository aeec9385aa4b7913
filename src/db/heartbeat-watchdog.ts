import type { MongoClient, ServerHeartbeatStartedEvent } from "mongodb";
import { errorField, type Logger } from "../log";

/**
 * Reconnects the driver when its server monitor hangs (chaos finding F6, docs/reliability.md).
 *
 * Under Bun, a heartbeat whose `hello` is written just as the database dies can wait for a
 * socket `drain` that never comes: the driver then never checks the server again, so every
 * operation fails server selection for good although the database is back. A heartbeat ends by
 * itself within the driver's own timeouts (connect, then the handshake: 2 × connectTimeoutMS,
 * plus maxAwaitTimeMS for a streaming one); one pending longer is hung, and closing and
 * reconnecting the client (the same object, so every collection handle stays valid) replaces
 * the monitor.
 */
export type HeartbeatWatchdogOptions = {
  connectTimeoutMS: number;
  heartbeatFrequencyMS: number;
  log: Logger;
  /** How often pending heartbeats are looked at. */
  checkEveryMs?: number;
  onReconnect?: () => void;
};

const GRACE_MS = 2_000;
const RETRY_MAX_MS = 5_000;

export function watchHeartbeats(client: MongoClient, opts: HeartbeatWatchdogOptions): () => void {
  const pending = new Map<string, { startedAt: number; awaited: boolean }>();
  let reconnecting = false;
  let stopped = false;
  const started = (e: ServerHeartbeatStartedEvent) => pending.set(e.connectionId, { startedAt: performance.now(), awaited: e.awaited });
  const ended = (e: { connectionId: string }) => pending.delete(e.connectionId);
  client.on("serverHeartbeatStarted", started);
  client.on("serverHeartbeatSucceeded", ended);
  client.on("serverHeartbeatFailed", ended);

  const limitFor = (awaited: boolean) => 2 * opts.connectTimeoutMS + (awaited ? opts.heartbeatFrequencyMS : 0) + GRACE_MS;

  async function reconnect(address: string, pendingMs: number): Promise<void> {
    reconnecting = true;
    opts.log.warn("database monitor hung; reconnecting the driver", { address, pendingMs: Math.round(pendingMs) });
    try {
      await client.close().catch(() => undefined);
      for (let attempt = 0; !stopped; attempt++) {
        try {
          await client.connect();
          opts.log.info("database driver reconnected", { address });
          opts.onReconnect?.();
          return;
        } catch (err) {
          if (attempt === 0) opts.log.warn("reconnecting the driver failed; retrying", { err: errorField(err) });
          await Bun.sleep(Math.min(250 * 2 ** attempt, RETRY_MAX_MS));
        }
      }
    } finally {
      pending.clear();
      reconnecting = false;
    }
  }

  const timer = setInterval(() => {
    if (reconnecting || stopped) return;
    const now = performance.now();
    for (const [address, p] of pending) {
      if (now - p.startedAt > limitFor(p.awaited)) {
        void reconnect(address, now - p.startedAt);
        return;
      }
    }
  }, opts.checkEveryMs ?? 1_000);
  timer.unref?.();

  return () => {
    stopped = true;
    clearInterval(timer);
    client.off("serverHeartbeatStarted", started);
    client.off("serverHeartbeatSucceeded", ended);
    client.off("serverHeartbeatFailed", ended);
  };
}

// The embedded MongoDB-wire-compatible engine: start it in-process and point the official
// driver at the returned URI. For development, tests and single-node demos; production uses MongoDB.

import { CommandDispatcher } from "./commands";
import { Engine } from "./engine";
import { FailPoints } from "./failpoints";
import type { FsyncPolicy } from "./journal";
import { type LogLevel, type Logger, createLogger } from "./log";
import { listen } from "./server";

export { DataDirLockedError, type FsyncPolicy } from "./journal";
export type { Logger, LogLevel } from "./log";

export interface EmbeddedMongoOptions {
  /** TCP port; 0 (default) picks a free one. */
  port?: number;
  /** Interface to listen on (default 127.0.0.1); a non-loopback one needs `allowRemote`. */
  host?: string;
  /**
   * Listen on a non-loopback interface. The engine has no authentication (and takes
   * configureFailPoint): whoever reaches the port reads and writes everything, so this is for a
   * private network you control only. Without it a non-loopback `host` is refused.
   */
  allowRemote?: boolean;
  /**
   * The host hello advertises as the replica set's member (default: `host`, or 127.0.0.1 when
   * listening on all interfaces). Drivers connect to it after the handshake, so remote clients
   * need a name they can reach (or `directConnection=true`).
   */
  advertiseHost?: string;
  /** Journal directory; undefined or ":memory:" keeps everything in memory. */
  dataDir?: string;
  /** When appended writes reach the disk (default "always": before each reply). */
  fsync?: FsyncPolicy;
  /** Journal bytes after which a background compaction rewrites it as a snapshot. */
  compactAfterBytes?: number;
  /** How often documents past a TTL index's expireAfterSeconds are deleted (default 60 s, as mongod). */
  ttlMonitorIntervalMs?: number;
  /** A logger, or a level for the default JSON-lines logger on stderr (default "warn"). */
  log?: Logger | LogLevel;
}

export interface EmbeddedMongo {
  /** mongodb://host:port/ for the official driver. */
  readonly uri: string;
  readonly port: number;
  /** Stops listening, closes connections and the journal (releasing the data dir lock). */
  close(): Promise<void>;
}

/** A non-loopback listen address without `allowRemote`. */
export class UnsafeBindError extends Error {
  override name = "UnsafeBindError";
  constructor(readonly host: string) {
    super(
      `refusing to listen on ${host}: the embedded engine has no authentication, so it listens on loopback only (127.0.0.1, ::1, localhost); ` +
        "allow another interface (--allow-remote) only on a private network you control",
    );
  }
}

/** 127.0.0.0/8, ::1 and localhost: reachable from this machine only. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[(.*)\]$/, "$1");
  return h === "localhost" || h === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || /^::ffff:127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

export async function startEmbeddedMongo(options: EmbeddedMongoOptions = {}): Promise<EmbeddedMongo> {
  const host = options.host ?? "127.0.0.1";
  if (!options.allowRemote && !isLoopbackHost(host)) throw new UnsafeBindError(host);
  const log = typeof options.log === "object" ? options.log : createLogger(options.log ?? "warn");
  const engine = new Engine({
    dataDir: options.dataDir,
    fsync: options.fsync,
    compactAfterBytes: options.compactAfterBytes,
    ttlMonitorIntervalMs: options.ttlMonitorIntervalMs,
    log,
  });
  const server = { address: "", failPoints: new FailPoints() };
  let handle: ReturnType<typeof listen>;
  try {
    handle = listen(engine, new CommandDispatcher(engine, server), { host, port: options.port ?? 0 });
  } catch (err) {
    await engine.close();
    throw err;
  }
  const advertised = options.advertiseHost ?? (host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host);
  server.address = `${advertised.includes(":") ? `[${advertised}]` : advertised}:${handle.port}`;
  let closing: Promise<void> | null = null;
  return {
    uri: `mongodb://${server.address}/`,
    port: handle.port,
    close() {
      closing ??= (async () => {
        await handle.stop();
        await engine.close();
      })();
      return closing;
    },
  };
}

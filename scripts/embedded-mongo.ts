// Runs the embedded engine standalone so several server instances can share it over TCP:
//   bun run embedded-mongo -- --port 27017 [--host 127.0.0.1] [--advertise-host NAME] [--data-dir DIR]
//                             [--fsync always|batch|never] [--compact-after-bytes N] [--log-level info]
//                             [--allow-remote]
// The engine has no authentication: it listens on loopback only, and a non-loopback --host is
// refused unless --allow-remote says the network is a private one you control.
// Prints {"msg":"embedded-mongo listening","port":N,...} as one JSON line on stdout once it accepts
// connections (so tests can pass --port 0 and read the port); stops cleanly on SIGTERM/SIGINT.

import { parseArgs } from "node:util";
import { type FsyncPolicy, type LogLevel, startEmbeddedMongo } from "../src/embedded-mongo";

const FSYNC_POLICIES: readonly FsyncPolicy[] = ["always", "batch", "never"];
const LOG_LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error", "silent"];

function fail(msg: string, fields: Record<string, unknown> = {}): never {
  process.stderr.write(`${JSON.stringify({ level: "error", msg, ...fields })}\n`);
  process.exit(1);
}

function integer(value: string | undefined, name: string, fallback: number | undefined): number | undefined {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) fail(`--${name} must be a non-negative integer`, { value });
  return n;
}

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    port: { type: "string" },
    host: { type: "string" },
    "advertise-host": { type: "string" },
    "data-dir": { type: "string" },
    fsync: { type: "string" },
    "compact-after-bytes": { type: "string" },
    "log-level": { type: "string" },
    "allow-remote": { type: "boolean" },
  },
  strict: true,
});

const fsync = values.fsync as FsyncPolicy | undefined;
if (fsync !== undefined && !FSYNC_POLICIES.includes(fsync)) fail("--fsync must be always, batch or never", { value: fsync });
const logLevel = (values["log-level"] ?? "info") as LogLevel;
if (!LOG_LEVELS.includes(logLevel)) fail("--log-level must be debug, info, warn, error or silent", { value: logLevel });

let engine: Awaited<ReturnType<typeof startEmbeddedMongo>>;
try {
  engine = await startEmbeddedMongo({
    port: integer(values.port, "port", 27017),
    host: values.host,
    allowRemote: values["allow-remote"] === true,
    advertiseHost: values["advertise-host"],
    dataDir: values["data-dir"],
    fsync,
    compactAfterBytes: integer(values["compact-after-bytes"], "compact-after-bytes", undefined),
    log: logLevel,
  });
} catch (err) {
  fail(err instanceof Error ? err.message : String(err), { error: err instanceof Error ? err.name : "Error" });
}

process.stdout.write(
  `${JSON.stringify({ msg: "embedded-mongo listening", port: engine.port, uri: engine.uri, dataDir: values["data-dir"] ?? null, pid: process.pid })}\n`,
);

let stopping = false;
async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  await engine.close();
  process.stdout.write(`${JSON.stringify({ msg: "embedded-mongo stopped", signal })}\n`);
  process.exit(0);
}
process.on("SIGTERM", () => void shutdown("SIGTERM"));
process.on("SIGINT", () => void shutdown("SIGINT"));

import { ConfigError, loadConfig, type EnvConfig } from "./config";
import { errorField, createLogger } from "./log";
import { startServer } from "./server";

let config: EnvConfig;
try {
  config = loadConfig();
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`dispatch: ${err.message}\n`);
    process.exit(78); // EX_CONFIG
  }
  throw err;
}
const log = createLogger(config.LOG_LEVEL, { instance: config.INSTANCE_ID });
const server = await startServer(config, { log }).catch((err: unknown) => {
  log.error("start-up failed", { err: errorField(err) });
  process.exit(1);
});

let shuttingDown = false;
async function shutdown(signal: string) {
  if (shuttingDown) return;
  shuttingDown = true;
  log.info("shutting down", { signal });
  const deadline = setTimeout(() => {
    log.error("shutdown took too long; exiting", { timeoutMs: config.SHUTDOWN_TIMEOUT_MS });
    process.exit(1);
  }, config.SHUTDOWN_TIMEOUT_MS);
  deadline.unref();
  try {
    await server.stop();
    process.exit(0);
  } catch (err) {
    log.error("shutdown failed", { err: errorField(err) });
    process.exit(1);
  }
}
process.on("SIGTERM", () => void shutdown("SIGTERM"));
process.on("SIGINT", () => void shutdown("SIGINT"));

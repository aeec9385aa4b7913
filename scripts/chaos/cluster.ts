// The processes a chaos run starts, kills and restarts: the standalone embedded engine on a
// data dir, a redis-server (never 6379), and server instances (`bun run src/index.ts`, PORT=0)
// sharing both. Every process is a child of this one and is stopped by `stop()` (and, should
// this process die first, by the exit hook in test/helpers/processes.ts).

import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnManaged, startServerProcess, stopAllProcesses, type LogLine, type ManagedProcess, type ServerProcess } from "../../test/helpers/processes";
import { startRedis, type TestRedis } from "../../test/helpers/redis";

export type ClusterEvent = { at: number; iso: string; what: string; detail?: Record<string, unknown> };

export type Instance = {
  name: string;
  /** The running process, or null while it is down. */
  proc: ServerProcess | null;
  /** Every process this instance ran (each restart is a new one), for logs and counts. */
  history: ServerProcess[];
};

export const CHAOS_ADMIN = { email: "admin@chaos.test", password: "chaos-admin-password" };

/** Short deadlines so timers and offers fire many times within a run; limits out of the load's way. */
export function chaosServerEnv(overrides: Record<string, string> = {}): Record<string, string> {
  return {
    MONGODB_DB: "chaos",
    ADMIN_EMAIL: CHAOS_ADMIN.email,
    ADMIN_PASSWORD: CHAOS_ADMIN.password,
    LOG_LEVEL: "info",
    PASSWORD_HASH_MEMORY_KIB: "1024",
    PASSWORD_HASH_TIME_COST: "1",
    LOGIN_MAX_ATTEMPTS: "10000",
    RATE_LIMIT_USER_WRITES: "1000000",
    RATE_LIMIT_IP_WRITES: "1000000",
    WS_MAX_CONNECTIONS_PER_USER: "1000",
    ACCEPT_TIMEOUT_SECONDS: "4",
    OFFER_TTL_SECONDS: "2",
    DISPATCH_RETRY_SECONDS: "2",
    DISPATCH_MAX_ATTEMPTS: "4",
    DISPATCH_POLICY: "nearest",
    COURIER_MAX_ACTIVE: "1",
    COURIER_SEEN_SECONDS: "30",
    COURIER_LOCATION_INTERVAL_MS: "500",
    TIMER_SWEEP_INTERVAL_MS: "100",
    TIMER_LEASE_MS: "3000",
    REQUEST_TIMEOUT_MS: "10000",
    SHUTDOWN_TIMEOUT_MS: "3000",
    ...overrides,
  };
}

/** A (re)started instance must log "listening" by then (start-up is slow on a loaded 2-core machine). */
const INSTANCE_START_TIMEOUT_MS = 60_000;

export class Cluster {
  readonly events: ClusterEvent[] = [];
  readonly instances: Instance[];
  private engine: ManagedProcess | null = null;
  private enginePort = 0;
  private dataDir = "";
  private redis: TestRedis | null = null;
  private readonly t0 = performance.now();
  private stopped = false;

  constructor(
    private readonly size: number,
    private readonly env: Record<string, string>,
    private readonly log: (line: Record<string, unknown>) => void,
  ) {
    this.instances = Array.from({ length: size }, (_, i) => ({ name: String.fromCharCode(65 + i), proc: null, history: [] }));
  }

  get mongoUri(): string {
    return `mongodb://127.0.0.1:${this.enginePort}/?directConnection=true`;
  }

  get databaseName(): string {
    return this.env.MONGODB_DB ?? "chaos";
  }

  /** Instances that are up, for the load's balancer. */
  live(): ServerProcess[] {
    return this.instances.flatMap((i) => (i.proc ? [i.proc] : []));
  }

  private note(what: string, detail?: Record<string, unknown>): void {
    const event = { at: Math.round(performance.now() - this.t0), iso: new Date().toISOString(), what, ...(detail ? { detail } : {}) };
    this.events.push(event);
    this.log({ event: "chaos", ...event });
  }

  count(what: string): number {
    return this.events.filter((e) => e.what === what).length;
  }

  async start(): Promise<void> {
    this.dataDir = await mkdtemp(join(tmpdir(), "dispatch-chaos-"));
    [this.redis] = await Promise.all([startRedis(), this.startEngine(0)]);
    this.note("started engine and redis", { enginePort: this.enginePort, redisPort: this.redis.port, dataDir: this.dataDir });
    // The first alone: it creates the indexes and the admin.
    await this.startInstance(0);
    await Promise.all(this.instances.slice(1).map((_, i) => this.startInstance(i + 1)));
  }

  private async startEngine(port: number): Promise<void> {
    const proc = spawnManaged("embedded-mongo", ["bun", "run", "scripts/embedded-mongo.ts", "--port", String(port), "--data-dir", this.dataDir, "--log-level", "warn"]);
    const line = await proc.waitForLine((l) => typeof l.port === "number", 30_000);
    this.engine = proc;
    this.enginePort = line.port as number;
  }

  async startInstance(i: number): Promise<ServerProcess> {
    const inst = this.instances[i];
    const proc = await startServerProcess({
      ...this.env,
      MONGODB_URI: this.mongoUri,
      REDIS_URL: this.redis!.url,
      INSTANCE_ID: `chaos-${inst.name}${inst.history.length}`,
    }, INSTANCE_START_TIMEOUT_MS);
    inst.proc = proc;
    inst.history.push(proc);
    return proc;
  }

  /** SIGKILL one instance (as abrupt as a crash), then start it again after `downMs`. */
  async killAndRestartInstance(i: number, downMs: number): Promise<void> {
    const inst = this.instances[i];
    const proc = inst.proc;
    if (!proc) return;
    inst.proc = null; // the balancer stops sending to it at once
    await proc.stop("SIGKILL");
    this.note("instance SIGKILL", { instance: inst.name, instanceId: proc.instanceId });
    await Bun.sleep(downMs);
    if (this.stopped) return;
    const next = await this.startInstance(i);
    this.note("instance restarted", { instance: inst.name, instanceId: next.instanceId, port: next.port });
  }

  /** SIGKILL redis-server, then start it again on the same port after `downMs`. */
  async restartRedis(downMs: number): Promise<void> {
    await this.redis!.kill();
    this.note("redis SIGKILL");
    await Bun.sleep(downMs);
    if (this.stopped) return;
    await this.redis!.restart();
    this.note("redis restarted");
  }

  /** SIGKILL the engine, then start it on the same data dir and port after `downMs`; resolves once every instance is ready again. */
  async restartEngine(downMs: number, readyTimeoutMs = 30_000): Promise<{ recoveredMs: number | null; notReady: string[] }> {
    const engine = this.engine!;
    this.engine = null;
    await engine.stop("SIGKILL");
    this.note("engine SIGKILL", { port: this.enginePort });
    await Bun.sleep(downMs);
    if (this.stopped) return { recoveredMs: null, notReady: [] };
    const started = performance.now();
    await this.startEngine(this.enginePort);
    this.note("engine restarted", { port: this.enginePort, startMs: Math.round(performance.now() - started) });
    const { readyMs, notReady } = await this.waitReady(readyTimeoutMs);
    if (notReady.length) this.note("instances did not reconnect to the engine", { notReady });
    else this.note("instances ready after engine restart", { readyMs });
    return { recoveredMs: notReady.length ? null : readyMs, notReady };
  }

  /** Polls /ready on every live instance until all answer 200 (database and redis up); `notReady` says what the others last answered. */
  async waitReady(timeoutMs: number): Promise<{ readyMs: number; notReady: string[] }> {
    const started = performance.now();
    const deadline = started + timeoutMs;
    let notReady: string[] = [];
    while (performance.now() < deadline && !this.stopped) {
      const live = this.live();
      const answers = await Promise.all(
        live.map((p) =>
          fetch(`${p.url}/ready`, { signal: AbortSignal.timeout(2_000) })
            .then(async (r) => (r.status === 200 ? null : `${r.status} ${(await r.text()).slice(0, 300)}`))
            .catch((err: unknown) => (err instanceof Error ? err.message : String(err))),
        ),
      );
      notReady = live.flatMap((p, k) => (answers[k] === null ? [] : [`${p.instanceId}: ${answers[k]}`]));
      if (notReady.length === 0) return { readyMs: Math.round(performance.now() - started), notReady };
      await Bun.sleep(100);
    }
    return { readyMs: Math.round(performance.now() - started), notReady };
  }

  /** Log lines of every instance process (all incarnations) matching `match`. */
  serverLines(match: (l: LogLine) => boolean): Array<LogLine & { instanceId: string }> {
    return this.instances.flatMap((i) => i.history.flatMap((p) => p.lines.filter(match).map((l) => ({ ...l, instanceId: p.instanceId }))));
  }

  /** Writes each server process's log lines (JSON lines) to `dir/<instanceId>.log`. */
  async writeLogs(dir: string): Promise<void> {
    await mkdir(dir, { recursive: true });
    for (const inst of this.instances) {
      for (const p of inst.history) await writeFile(join(dir, `${p.instanceId}.log`), p.lines.map((l) => JSON.stringify(l)).join("\n") + "\n");
    }
  }

  /** Stops everything (SIGTERM to servers, SIGKILL after a grace), removes the data dir unless kept. */
  async stop(opts: { keepData?: boolean } = {}): Promise<void> {
    this.stopped = true;
    await Promise.all(this.instances.map((i) => i.proc?.stop("SIGTERM")));
    for (const i of this.instances) i.proc = null;
    await this.engine?.stop("SIGTERM");
    this.engine = null;
    await this.redis?.stop();
    await stopAllProcesses();
    if (this.dataDir && !opts.keepData) await rm(this.dataDir, { recursive: true, force: true });
  }

  get dataDirectory(): string {
    return this.dataDir;
  }
}

import type { Subprocess } from "bun";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { EXTERNAL_MONGODB_URI, dropExternalDatabase, uniqueDatabaseName } from "./database";

/** Child processes for multi-process tests: the standalone engine, server instances, redis-server. */

export const REPO_ROOT = resolve(import.meta.dir, "../..");

export type LogLine = Record<string, unknown>;

export type ManagedProcess = {
  name: string;
  proc: Subprocess<"ignore", "pipe", "pipe">;
  /** Parsed JSON lines seen on stdout so far (non-JSON lines are kept as {raw}). */
  lines: LogLine[];
  /** Resolves with the first line (past or future) matching the predicate. */
  waitForLine(match: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** Plain text of stderr so far (for failure messages). */
  stderr(): string;
  /** Signals the process and waits for it to exit (SIGKILL after a grace period). */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  exited: Promise<number>;
};

const live = new Set<ManagedProcess>();

// A test that throws before its cleanup must not leave processes behind.
process.on("exit", () => {
  for (const p of live) p.proc.kill("SIGKILL");
});

/** Spawns a process whose stdout is JSON lines, collecting them for waitForLine. */
export function spawnManaged(name: string, cmd: string[], env: Record<string, string> = {}, cwd = REPO_ROOT): ManagedProcess {
  const proc = Bun.spawn(cmd, {
    cwd,
    env: { ...process.env, ...env },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const lines: LogLine[] = [];
  const waiters: Array<{ match: (l: LogLine) => boolean; resolve: (l: LogLine) => void }> = [];
  let errText = "";

  const onLine = (text: string) => {
    if (text.trim() === "") return;
    let line: LogLine;
    try {
      const parsed: unknown = JSON.parse(text);
      line = parsed !== null && typeof parsed === "object" && !Array.isArray(parsed) ? (parsed as LogLine) : { raw: text };
    } catch {
      line = { raw: text };
    }
    lines.push(line);
    for (let i = waiters.length - 1; i >= 0; i--) {
      if (waiters[i].match(line)) {
        waiters[i].resolve(line);
        waiters.splice(i, 1);
      }
    }
  };

  void (async () => {
    const decoder = new TextDecoder();
    let rest = "";
    for await (const chunk of proc.stdout) {
      rest += decoder.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = rest.indexOf("\n")) >= 0) {
        onLine(rest.slice(0, nl));
        rest = rest.slice(nl + 1);
      }
    }
    if (rest) onLine(rest);
  })();
  void (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of proc.stderr) errText = (errText + decoder.decode(chunk, { stream: true })).slice(-8000);
  })();

  const managed: ManagedProcess = {
    name,
    proc,
    lines,
    exited: proc.exited,
    stderr: () => errText,
    waitForLine(match, timeoutMs = 15_000) {
      const found = lines.find(match);
      if (found) return Promise.resolve(found);
      return new Promise<LogLine>((resolvePromise, reject) => {
        const waiter = {
          match,
          resolve: (l: LogLine) => {
            clearTimeout(timer);
            resolvePromise(l);
          },
        };
        const timer = setTimeout(() => {
          const i = waiters.indexOf(waiter);
          if (i >= 0) waiters.splice(i, 1);
          reject(new Error(`${name}: no matching log line within ${timeoutMs} ms; stderr: ${errText.slice(-2000)}; last lines: ${JSON.stringify(lines.slice(-5))}`));
        }, timeoutMs);
        waiters.push(waiter);
        proc.exited.then((code) => {
          if (waiters.includes(waiter)) {
            clearTimeout(timer);
            waiters.splice(waiters.indexOf(waiter), 1);
            reject(new Error(`${name} exited with ${code} before the expected log line; stderr: ${errText.slice(-2000)}; last lines: ${JSON.stringify(lines.slice(-5))}`));
          }
        });
      });
    },
    async stop(signal = "SIGTERM") {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill(signal);
        const grace = setTimeout(() => proc.kill("SIGKILL"), 5_000);
        await proc.exited;
        clearTimeout(grace);
      }
      live.delete(managed);
      return proc.exitCode;
    },
  };
  live.add(managed);
  proc.exited.then(() => live.delete(managed));
  return managed;
}

function portOf(line: LogLine): number | null {
  const port = line.port;
  return typeof port === "number" && Number.isInteger(port) && port > 0 ? port : null;
}

/**
 * How the standalone engine runs (the `embedded-mongo` package script): mimalloc keeps freed
 * pages instead of returning them to the OS within milliseconds; the return and the page faults
 * that follow were half of the engine's CPU under a stream of batched writes (docs/benchmarks.md,
 * bench:locations). Not for the server: there it nearly doubled RSS per idle WebSocket.
 */
export const ENGINE_ENV: Record<string, string> = { MIMALLOC_PURGE_DELAY: "-1" };

export type EngineProcess = ManagedProcess & { port: number; uri: string; dataDir: string };

/** Starts the embedded engine standalone on a free port (`scripts/embedded-mongo.ts --port 0`). */
export async function startEngineProcess(opts: { dataDir?: string } = {}): Promise<EngineProcess> {
  const ownDir = opts.dataDir === undefined;
  const dataDir = opts.dataDir ?? (await mkdtemp(join(tmpdir(), "dispatch-engine-")));
  const managed = spawnManaged("embedded-mongo", ["bun", "run", "scripts/embedded-mongo.ts", "--port", "0", "--data-dir", dataDir], ENGINE_ENV);
  let line: LogLine;
  try {
    line = await managed.waitForLine((l) => portOf(l) !== null);
  } catch (err) {
    await managed.stop("SIGKILL");
    if (ownDir) await rm(dataDir, { recursive: true, force: true });
    throw err;
  }
  const port = portOf(line)!;
  const stop = managed.stop;
  return Object.assign(managed, {
    port,
    dataDir,
    uri: `mongodb://127.0.0.1:${port}/?directConnection=true`,
    async stop(signal?: NodeJS.Signals) {
      const code = await stop(signal);
      if (ownDir) await rm(dataDir, { recursive: true, force: true });
      return code;
    },
  });
}

export type ServerProcess = ManagedProcess & { port: number; url: string; wsUrl: string; instanceId: string };

export const TEST_JWT_SECRET = "multi-instance-test-secret-0123456789";

/**
 * Starts `bun run src/index.ts` on a free port with the given environment; resolves once it logs
 * "listening" (within `startTimeoutMs`, default 15 s; start-up takes longer on a loaded machine).
 */
export async function startServerProcess(env: Record<string, string>, startTimeoutMs = 15_000): Promise<ServerProcess> {
  const instanceId = env.INSTANCE_ID ?? `t-${crypto.randomUUID().slice(0, 6)}`;
  const managed = spawnManaged(`server ${instanceId}`, ["bun", "run", "src/index.ts"], {
    NODE_ENV: "test",
    PORT: "0",
    HOST: "127.0.0.1",
    LOG_LEVEL: "info",
    JWT_SECRET: TEST_JWT_SECRET,
    DISPATCH_POLICY: "nearest",
    ...env,
    INSTANCE_ID: instanceId,
  });
  let line: LogLine;
  try {
    line = await managed.waitForLine((l) => l.msg === "listening" && portOf(l) !== null, startTimeoutMs);
  } catch (err) {
    await managed.stop("SIGKILL");
    throw err;
  }
  const port = portOf(line)!;
  return Object.assign(managed, { port, instanceId, url: `http://127.0.0.1:${port}`, wsUrl: `ws://127.0.0.1:${port}/ws` });
}

/** Stops every process still running (for afterAll; safe to call twice). */
export async function stopAllProcesses(): Promise<void> {
  await Promise.all([...live].map((p) => p.stop("SIGKILL")));
}

export type SharedDatabase = {
  /** MONGODB_URI and MONGODB_DB for the server processes that share it. */
  env: { MONGODB_URI: string; MONGODB_DB: string };
  /** "external MongoDB" or "embedded engine". */
  mode: string;
  stop(): Promise<void>;
};

/**
 * One database several server processes share: a fresh database on MONGODB_URI when that is
 * set (CI's real-MongoDB job; dropped at stop), else a standalone embedded engine process.
 */
export async function startSharedDatabase(): Promise<SharedDatabase> {
  const name = uniqueDatabaseName("shared");
  if (EXTERNAL_MONGODB_URI) {
    return { env: { MONGODB_URI: EXTERNAL_MONGODB_URI, MONGODB_DB: name }, mode: "external MongoDB", stop: () => dropExternalDatabase(name) };
  }
  const engine = await startEngineProcess();
  return {
    env: { MONGODB_URI: engine.uri, MONGODB_DB: name },
    mode: "embedded engine",
    async stop() {
      await engine.stop();
    },
  };
}

/** A user signed in on a server process. */
export type ProcessUser = { token: string; id: string };
// Response bodies are loose on purpose: tests assert on their shape field by field.
export type ProcessResponse = { status: number; body: any };

/** One JSON request to a server process, as `who` (bearer token) when given. */
export async function processHttp(instance: ServerProcess, method: string, path: string, who?: ProcessUser, body?: unknown): Promise<ProcessResponse> {
  const headers: Record<string, string> = {};
  if (who) headers.authorization = `Bearer ${who.token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(instance.url + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** Registers a fresh user of `role` through `via` (emails under `domain`); fails the test unless it is 201. */
export async function registerOn(via: ServerProcess, role: string, domain: string): Promise<ProcessUser> {
  const res = await processHttp(via, "POST", "/auth/register", undefined, { email: `${role}-${crypto.randomUUID().slice(0, 8)}@${domain}`, password: "password-123", name: role, role });
  if (res.status !== 201) throw new Error(`register ${role} failed: ${res.status} ${JSON.stringify(res.body)}`);
  return { token: res.body.token, id: res.body.user.id };
}

/** Opens a one-pizza restaurant (central Paris) as `owner` through `via`; its id. Fails the test unless it is 201. */
export async function openPizzeriaOn(via: ServerProcess, owner: ProcessUser, name: string): Promise<string> {
  const res = await processHttp(via, "POST", "/restaurants", owner, { name, cuisines: ["pizza"], location: { lat: 48.8566, lng: 2.3522 }, menu: [{ id: "pizza", name: "Pizza", priceCents: 1250 }] });
  if (res.status !== 201) throw new Error(`opening ${name} failed: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.id;
}

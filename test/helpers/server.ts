import type { Clock } from "../../src/clock";
import { loadConfig } from "../../src/config";
import type { Role } from "../../src/vocabulary";
import { connectDatabase } from "../../src/db/mongo";
import { createLogger, type Logger } from "../../src/log";
import { startServer, type RunningServer } from "../../src/server";
import { EXTERNAL_MONGODB_URI, EXTERNAL_REDIS_URL, uniqueDatabaseName } from "./database";

export type TestRole = Role;
export type TestUser = { id: string; email: string; name: string; role: TestRole };
export type Registered = { token: string; user: TestUser; email: string; password: string };

// Response bodies are loose on purpose: tests assert on their shape field by field.
export type TestResponse<T = any> = { status: number; headers: Headers; body: T };

export type RequestOptions = { token?: string; body?: unknown; headers?: Record<string, string> };

export type TestServer = {
  url: string;
  port: number;
  deps: RunningServer["deps"];
  stop(): Promise<void>;
  /** Registers a fresh user of that role (admin: signs in as the bootstrap admin). */
  register(role: TestRole, overrides?: { email?: string; password?: string; name?: string }): Promise<Registered>;
  request<T = any>(method: string, path: string, opts?: RequestOptions): Promise<TestResponse<T>>;
};

export const TEST_ADMIN = { email: "admin@dispatch.test", password: "admin-password-1" } as const;

/** A clock tests move by hand. */
export class TestClock implements Clock {
  private ms: number;
  constructor(start: Date | string = "2025-01-06T12:00:00Z") {
    this.ms = new Date(start).getTime();
  }
  now(): Date {
    return new Date(this.ms);
  }
  set(at: Date | string): void {
    this.ms = new Date(at).getTime();
  }
  advance(ms: number): void {
    this.ms += ms;
  }
}

let userCounter = 0;

/**
 * An in-process server on a free port, on the embedded engine in memory, or, when MONGODB_URI
 * is set in the environment, on a fresh database of that deployment (dropped at stop; see
 * ./database.ts). Cheap password hashing and a generous login limit keep tests fast; pass env
 * to override any variable.
 */
export async function startTestServer(env: Record<string, string> = {}, opts: { clock?: Clock; log?: Logger } = {}): Promise<TestServer> {
  const external: Record<string, string> = {};
  if (EXTERNAL_MONGODB_URI) Object.assign(external, { MONGODB_URI: EXTERNAL_MONGODB_URI, MONGODB_DB: uniqueDatabaseName() });
  if (EXTERNAL_REDIS_URL) external.REDIS_URL = EXTERNAL_REDIS_URL;
  const config = loadConfig({
    NODE_ENV: "test",
    PORT: "0",
    HOST: "127.0.0.1",
    DATA_DIR: ":memory:",
    LOG_LEVEL: process.env.DISPATCH_TEST_LOG_LEVEL ?? "silent",
    JWT_SECRET: "test-secret-0123456789abcdef",
    ADMIN_EMAIL: TEST_ADMIN.email,
    ADMIN_PASSWORD: TEST_ADMIN.password,
    LOGIN_MAX_ATTEMPTS: "1000",
    // Tests write fast from one address; test/security/limits.test.ts sets its own limits.
    RATE_LIMIT_USER_WRITES: "100000",
    RATE_LIMIT_IP_WRITES: "100000",
    WS_MAX_CONNECTIONS_PER_USER: "1000",
    // Tests delete users and change roles in the database directly and expect the next request
    // to see it; test/modules/auth/role-cache.test.ts and reads.test.ts run the cache (default 2000).
    AUTH_ROLE_CACHE_MS: "0",
    PASSWORD_HASH_MEMORY_KIB: "1024",
    PASSWORD_HASH_TIME_COST: "1",
    // The per-order flow most tests drive; the batched planner's tests set DISPATCH_POLICY=batched.
    DISPATCH_POLICY: "nearest",
    // Tests never reach outside the machine: the page's map tiles point at a closed local port.
    MAP_TILE_URL: "http://127.0.0.1:9/{z}/{x}/{y}.png",
    ...external,
    ...env,
  });
  const log = opts.log ?? createLogger(config.LOG_LEVEL, { instance: config.INSTANCE_ID });
  // Connected here, not by startServer, so stop() can drop the test's database before closing.
  const db = await connectDatabase(config, log);
  let running: RunningServer;
  try {
    running = await startServer(config, { log, db, ...(opts.clock ? { clock: opts.clock } : {}) });
  } catch (err) {
    await db.close();
    throw err;
  }
  let stopped: Promise<void> | null = null;
  const stop = () =>
    (stopped ??= (async () => {
      await running.stop();
      // Only the database made for this server; one a test named itself is its own business.
      if (!db.embedded && config.MONGODB_DB === external.MONGODB_DB) await db.db.dropDatabase().catch(() => undefined);
      await db.close();
    })());
  const url = running.url;

  async function request<T>(method: string, path: string, o: RequestOptions = {}): Promise<TestResponse<T>> {
    const headers: Record<string, string> = { ...o.headers };
    if (o.token) headers.authorization = `Bearer ${o.token}`;
    let body: string | undefined;
    if (o.body !== undefined) {
      body = typeof o.body === "string" ? o.body : JSON.stringify(o.body);
      headers["content-type"] ??= "application/json";
    }
    const res = await fetch(url + path, { method, headers, body });
    const text = await res.text();
    let parsed: unknown = text;
    if (text !== "" && /json/.test(res.headers.get("content-type") ?? "")) parsed = JSON.parse(text);
    return { status: res.status, headers: res.headers, body: parsed as T };
  }

  async function register(role: TestRole, overrides: { email?: string; password?: string; name?: string } = {}): Promise<Registered> {
    if (role === "admin") {
      const email = overrides.email ?? config.ADMIN_EMAIL ?? TEST_ADMIN.email;
      const password = overrides.password ?? config.ADMIN_PASSWORD ?? TEST_ADMIN.password;
      const res = await request<{ token: string; user: TestUser }>("POST", "/auth/login", { body: { email, password } });
      if (res.status !== 200) throw new Error(`admin login failed: ${res.status} ${JSON.stringify(res.body)}`);
      return { ...res.body, email, password };
    }
    userCounter += 1;
    const email = overrides.email ?? `${role}-${userCounter}-${crypto.randomUUID().slice(0, 8)}@dispatch.test`;
    const password = overrides.password ?? "password-123";
    const name = overrides.name ?? `${role} ${userCounter}`;
    const res = await request<{ token: string; user: TestUser }>("POST", "/auth/register", { body: { email, password, name, role } });
    if (res.status !== 201) throw new Error(`register ${role} failed: ${res.status} ${JSON.stringify(res.body)}`);
    return { ...res.body, email, password };
  }

  return { url, port: running.port, deps: running.deps, stop, register, request };
}

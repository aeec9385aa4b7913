import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ObjectId } from "mongodb";
import { COLLECTIONS } from "../../src/db/mongo";
import { deploymentJwtSecret } from "../../src/db/jwt-secret";
import { createLogger } from "../../src/log";
import { startTestServer, type Registered, type TestServer } from "../helpers/server";
import { startEngineProcess, startServerProcess, stopAllProcesses, type LogLine, type ServerProcess } from "../helpers/processes";
import { WsClient } from "../helpers/ws";
import { hostileTokens, jwtPayload, signJwt } from "../helpers/security";

/**
 * Issue 17: without JWT_SECRET the server signs with a random key it generated and keeps in the
 * database, never with a constant; tokens it did not issue, or whose user is gone, get 401.
 */

/** The constant the server used to fall back to: public, so anything signed with it is forged. */
const OLD_DEV_SECRET = "dispatch-dev-secret-do-not-use-in-production";

const GENERATED_LOG = "JWT_SECRET is not set: generated a random token key and stored it in the database";
const REUSED_LOG = "JWT_SECRET is not set: using the token key stored in the database";

async function bearer(url: string, path: string, token: string): Promise<number> {
  return (await fetch(`${url}${path}`, { headers: { authorization: `Bearer ${token}` } })).status;
}

async function login(url: string, email: string, password: string): Promise<string> {
  const res = await fetch(`${url}/auth/login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email, password }) });
  expect(res.status).toBe(200);
  return ((await res.json()) as { token: string }).token;
}

describe("no JWT_SECRET, one server", () => {
  let server: TestServer;
  const logs: string[] = [];
  let key: string;
  let admin: Registered;
  let customer: Registered;

  beforeAll(async () => {
    const log = createLogger("info", {}, (line) => logs.push(line));
    server = await startTestServer({ JWT_SECRET: "" }, { log });
    admin = await server.register("admin");
    customer = await server.register("customer");
    const stored = await server.deps.db.db.collection<{ _id: string; value: string }>(COLLECTIONS.secrets).findOne({ _id: "jwt-hs256" });
    key = stored!.value;
  });
  afterAll(async () => {
    await server?.stop();
  });

  test("the key is generated (>= 256 bits), stored, used, and logged without its value", () => {
    expect(Buffer.from(key, "base64url").length).toBeGreaterThanOrEqual(32);
    expect(server.deps.config.JWT_SECRET).toBe(key);
    expect(key).not.toBe(OLD_DEV_SECRET);
    // The issued token verifies with the stored key: that is the key in use.
    const [h, p, sig] = admin.token.split(".");
    expect(new Bun.CryptoHasher("sha256", key).update(`${h}.${p}`).digest("base64url")).toBe(sig);
    expect(logs.filter((l) => l.includes(GENERATED_LOG))).toHaveLength(1);
    expect(logs.some((l) => l.includes(key))).toBe(false);
  });

  test("an admin token signed with the old constant is refused (401) on admin routes, /orders and /ws", async () => {
    const now = Math.floor(Date.now() / 1000);
    const forged = signJwt({ sub: admin.user.id, role: "admin", iat: now, exp: now + 3600 }, OLD_DEV_SECRET);
    expect(await bearer(server.url, "/couriers?lat=1&lng=1", forged)).toBe(401);
    expect(await bearer(server.url, "/orders", forged)).toBe(401);
    expect(await bearer(server.url, "/auth/me", forged)).toBe(401);
    await expect(WsClient.open(`${server.url.replace("http", "ws")}/ws`, forged)).rejects.toThrow("upgrade failed");
    // The real admin token still works, so the 401s above are about the signature.
    expect(await bearer(server.url, "/couriers?lat=1&lng=1", admin.token)).toBe(200);
  });

  test("another key, alg none, changed payload, expired, wrong algorithm: 401", async () => {
    for (const [what, token] of hostileTokens(admin.token, key)) {
      expect({ what, status: await bearer(server.url, "/orders", token) }).toEqual({ what, status: 401 });
    }
  });

  test("a token whose user no longer exists is refused (401), on HTTP and /ws", async () => {
    expect(await bearer(server.url, "/auth/me", customer.token)).toBe(200);
    const deleted = await server.deps.db.db.collection(COLLECTIONS.users).deleteOne({ _id: new ObjectId(customer.user.id) });
    expect(deleted.deletedCount).toBe(1);
    expect(await bearer(server.url, "/auth/me", customer.token)).toBe(401);
    expect(await bearer(server.url, "/orders", customer.token)).toBe(401);
    await expect(WsClient.open(`${server.url.replace("http", "ws")}/ws`, customer.token)).rejects.toThrow("upgrade failed");
    // A correctly signed token naming a user id that never existed: same answer.
    const p = jwtPayload(admin.token);
    expect(await bearer(server.url, "/orders", signJwt({ ...p, sub: new ObjectId().toHexString() }, key))).toBe(401);
  });

  test("many concurrent first starts on one database: exactly one generates, all get its key", async () => {
    const db = server.deps.db.client.db(`race_${crypto.randomUUID().slice(0, 8)}`);
    try {
      const results = await Promise.all(Array.from({ length: 8 }, () => deploymentJwtSecret(db, new Date())));
      expect(results.filter((r) => r.created)).toHaveLength(1);
      expect(new Set(results.map((r) => r.secret)).size).toBe(1);
      expect((await deploymentJwtSecret(db, new Date())).created).toBe(false);
    } finally {
      await db.dropDatabase();
    }
  });

  test("a stored key shorter than 256 bits stops start-up instead of weakening every token", async () => {
    const db = server.deps.db.client.db(`short_${crypto.randomUUID().slice(0, 8)}`);
    try {
      await db.collection<{ _id: string; value: string }>(COLLECTIONS.secrets).insertOne({ _id: "jwt-hs256", value: "c2hvcnQ" });
      await expect(deploymentJwtSecret(db, new Date())).rejects.toThrow(/256 bits/);
    } finally {
      await db.dropDatabase();
    }
  });

  test("a correctly signed token whose role is not the user's stored role is refused (401)", async () => {
    const p = jwtPayload(admin.token);
    const other = await server.register("courier");
    expect(await bearer(server.url, "/couriers?lat=1&lng=1", signJwt({ ...p, sub: other.user.id, role: "admin" }, key))).toBe(401);
  });
});

describe("no JWT_SECRET, several processes", () => {
  const ADMIN = { ADMIN_EMAIL: "admin@secret.test", ADMIN_PASSWORD: "admin-password-17" };
  const CHEAP = { PASSWORD_HASH_MEMORY_KIB: "1024", PASSWORD_HASH_TIME_COST: "1", JWT_SECRET: "" };
  const dirs: string[] = [];
  afterAll(async () => {
    await stopAllProcesses();
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  });

  const keyLogs = (s: ServerProcess) => s.lines.filter((l: LogLine) => l.msg === GENERATED_LOG || l.msg === REUSED_LOG).map((l) => l.msg);

  test("quick start (embedded engine, DATA_DIR): a restart keeps the key, so tokens survive it", async () => {
    const dir = await mkdtemp(join(tmpdir(), "dispatch-secret-"));
    dirs.push(dir);
    const env = { ...ADMIN, ...CHEAP, MONGODB_URI: "", DATA_DIR: dir };
    const first = await startServerProcess(env);
    const token = await login(first.url, ADMIN.ADMIN_EMAIL, ADMIN.ADMIN_PASSWORD);
    expect(await bearer(first.url, "/couriers?lat=1&lng=1", token)).toBe(200);
    expect(keyLogs(first)).toEqual([GENERATED_LOG]);
    await first.stop("SIGTERM");
    const second = await startServerProcess(env);
    expect(keyLogs(second)).toEqual([REUSED_LOG]);
    expect(await bearer(second.url, "/couriers?lat=1&lng=1", token)).toBe(200);
    await second.stop("SIGTERM");
  }, 60_000);

  test("two instances starting together on one standalone engine agree on one key", async () => {
    const engine = await startEngineProcess();
    try {
      const env = { ...ADMIN, ...CHEAP, MONGODB_URI: engine.uri, MONGODB_DB: `secret_${crypto.randomUUID().slice(0, 8)}` };
      const [a, b] = await Promise.all([startServerProcess(env), startServerProcess(env)]);
      // Exactly one generated the key; the other read it.
      expect([...keyLogs(a), ...keyLogs(b)].sort()).toEqual([GENERATED_LOG, REUSED_LOG].sort());
      const fromA = await login(a.url, ADMIN.ADMIN_EMAIL, ADMIN.ADMIN_PASSWORD);
      const fromB = await login(b.url, ADMIN.ADMIN_EMAIL, ADMIN.ADMIN_PASSWORD);
      expect(await bearer(b.url, "/couriers?lat=1&lng=1", fromA)).toBe(200);
      expect(await bearer(a.url, "/couriers?lat=1&lng=1", fromB)).toBe(200);
      await Promise.all([a.stop("SIGTERM"), b.stop("SIGTERM")]);
    } finally {
      await engine.stop();
    }
  }, 60_000);
});

import { expect } from "bun:test";
import { EJSON } from "bson";
import type { Db } from "mongodb";
import type { Logger } from "../../src/log";
import { startTestMongo } from "./embedded-mongo";
import { startTestServer, type Registered, type TestServer } from "./server";
import { cast, orderIn, type Cast, type Order } from "../modules/orders/fixtures";

/**
 * Shared pieces of the security suites (test/security/*): a small world with every role on
 * both sides of an order, a whole-database snapshot, the problem+json shape, and a scan of
 * response bodies for data that must never leave the server.
 */

/**
 * A test server on its own in-process embedded engine, whatever database the suite runs on:
 * for tests that stall or fail database commands with the `failCommand` fail point (real
 * MongoDB only has it with test commands enabled). They test the HTTP layer, not storage.
 */
export async function startEngineBackedServer(env: Record<string, string> = {}, opts: { log?: Logger } = {}): Promise<TestServer> {
  const mongo = await startTestMongo();
  try {
    const server = await startTestServer({ ...env, MONGODB_URI: mongo.uri, MONGODB_DB: `failpoints_${crypto.randomUUID().slice(0, 8)}` }, opts);
    return {
      ...server,
      async stop() {
        await server.stop();
        await mongo.close();
      },
    };
  } catch (err) {
    await mongo.close();
    throw err;
  }
}

/** Settings that keep the background quiet while a suite compares database snapshots. */
export const QUIET_DISPATCH_ENV: Record<string, string> = {
  ACCEPT_TIMEOUT_SECONDS: "86400",
  DISPATCH_RETRY_SECONDS: "3600",
  OFFER_TTL_SECONDS: "3600",
  // The worlds' one courier holds orders in every status at once.
  COURIER_MAX_ACTIVE: "100",
};

export type World = {
  /** Party to the world's orders: customer, restaurant owner, courier (assigned), admin. */
  a: Cast;
  /** The same roles, party to nothing of `a`'s (their own restaurant and one order of their own). */
  b: Cast;
  /** `a`'s orders, one per status; picked_up and delivered ones carry `a.courier`. */
  orders: Record<"placed" | "accepted" | "preparing" | "ready_for_pickup" | "picked_up" | "delivered" | "cancelled" | "rejected", Order>;
  /** One order of `b`, so b's lists are not empty. */
  bOrder: Order;
  users: Registered[];
};

export async function buildWorld(server: TestServer): Promise<World> {
  const a = await cast(server);
  const b = await cast(server);
  const statuses = ["placed", "accepted", "preparing", "ready_for_pickup", "picked_up", "delivered", "cancelled", "rejected"] as const;
  const orders = {} as World["orders"];
  for (const status of statuses) orders[status] = await orderIn(server, a, status);
  const bOrder = await orderIn(server, b, "placed");
  const users = [a.customer, a.owner, a.courier, a.admin, b.customer, b.owner, b.courier];
  return { a, b, orders, bOrder, users };
}

/** Every document of every collection, in a canonical text form (so two snapshots compare as strings). */
export async function snapshotDatabase(db: Db): Promise<string> {
  const names = (await db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name).sort();
  const parts: string[] = [];
  for (const name of names) {
    const docs = await db.collection(name).find({}).sort({ _id: 1 }).toArray();
    parts.push(`${name}:${EJSON.stringify(docs, { relaxed: false })}`);
  }
  return parts.join("\n");
}

/** Waits until the database stops changing (dispatch reacting to the world's orders), then returns its snapshot. */
export async function settledSnapshot(db: Db, quietMs = 300, timeoutMs = 10_000): Promise<string> {
  const deadline = performance.now() + timeoutMs;
  let last = await snapshotDatabase(db);
  for (;;) {
    await Bun.sleep(quietMs);
    const now = await snapshotDatabase(db);
    if (now === last) return now;
    if (performance.now() > deadline) throw new Error("the database kept changing with no requests in flight");
    last = now;
  }
}

export type ProblemCheck = { ok: true } | { ok: false; why: string };

/** Whether an answer is a well-formed 4xx application/problem+json carrying the response's request id. */
export function checkProblem(status: number, headers: Headers, text: string): ProblemCheck {
  if (status < 400 || status > 499) return { ok: false, why: `status ${status}` };
  return checkProblemShape(status, headers, text);
}

/** Whether an error answer (any status) is application/problem+json carrying the response's request id. */
export function checkProblemShape(status: number, headers: Headers, text: string): ProblemCheck {
  const type = headers.get("content-type") ?? "";
  if (!type.startsWith("application/problem+json")) return { ok: false, why: `content-type ${JSON.stringify(type)}` };
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return { ok: false, why: "body is not JSON" };
  }
  for (const key of ["type", "title", "detail"]) if (typeof body[key] !== "string") return { ok: false, why: `no ${key}` };
  if (body.status !== status) return { ok: false, why: `body status ${String(body.status)} ≠ ${status}` };
  const requestId = headers.get("x-request-id");
  if (!requestId || body.requestId !== requestId) return { ok: false, why: `requestId ${String(body.requestId)} ≠ header ${String(requestId)}` };
  if (status === 400 && !Array.isArray(body.errors)) return { ok: false, why: "400 without errors" };
  return { ok: true };
}

export function expectProblem(res: { status: number; headers: Headers; body: unknown }, status: number): void {
  expect(res.status).toBe(status);
  const check = checkProblemShape(res.status, res.headers, typeof res.body === "string" ? res.body : JSON.stringify(res.body));
  expect(check).toEqual({ ok: true });
}

/**
 * What a response body must never contain for `viewer`: another user's email, a password
 * hash (argon2/bcrypt text or a passwordHash field) or a password.
 */
export function findLeaks(text: string, users: readonly Registered[], viewer: Registered | null): string[] {
  const leaks: string[] = [];
  const lower = text.toLowerCase();
  for (const u of users) {
    if (viewer && u.user.id === viewer.user.id) continue;
    if (lower.includes(u.email.toLowerCase())) leaks.push(`email of ${u.user.role} ${u.user.id}`);
    if (text.includes(u.password)) leaks.push(`password of ${u.user.role} ${u.user.id}`);
  }
  if (/\$argon2|\$2[aby]\$/.test(text)) leaks.push("a password hash");
  if (/passwordhash/i.test(text)) leaks.push("a passwordHash field");
  return leaks;
}

/** Signs an HS256 JWT by hand (for tokens the server never issued: expired, forged, tampered). */
export function signJwt(payload: Record<string, unknown>, secret: string, header: Record<string, unknown> = { alg: "HS256", typ: "JWT" }): string {
  const enc = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
  const head = `${enc(header)}.${enc(payload)}`;
  const sig = new Bun.CryptoHasher("sha256", secret).update(head).digest("base64url");
  return `${head}.${sig}`;
}

export function jwtPayload(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString("utf8")) as Record<string, unknown>;
}

/** Tokens the server must refuse, made from a real one: expired, other secret, alg none, tampered role, and some junk. */
export function hostileTokens(real: string, secret: string): Array<[string, string]> {
  const p = jwtPayload(real);
  const now = Math.floor(Date.now() / 1000);
  const [h, body] = real.split(".");
  const tamperedRole = p.role === "admin" ? "courier" : "admin";
  const tamperedPayload = Buffer.from(JSON.stringify({ ...p, role: tamperedRole })).toString("base64url");
  return [
    ["expired", signJwt({ ...p, iat: now - 7200, exp: now - 3600 }, secret)],
    ["signed with another secret", signJwt(p, "another-secret-0123456789abcdef")],
    ["alg none", `${Buffer.from(JSON.stringify({ alg: "none", typ: "JWT" })).toString("base64url")}.${body}.`],
    ["alg none with the real signature", `${Buffer.from(JSON.stringify({ alg: "none", typ: "JWT" })).toString("base64url")}.${body}.${real.split(".")[2]}`],
    [`tampered role (${tamperedRole}), original signature`, `${h}.${tamperedPayload}.${real.split(".")[2]}`],
    ["tampered subject, original signature", `${h}.${Buffer.from(JSON.stringify({ ...p, sub: "0123456789abcdef01234567" })).toString("base64url")}.${real.split(".")[2]}`],
    ["HS512 with the right secret", signJwt(p, secret, { alg: "HS512", typ: "JWT" }).replace(/\.[^.]+$/, `.${new Bun.CryptoHasher("sha512", secret).update(`${Buffer.from(JSON.stringify({ alg: "HS512", typ: "JWT" })).toString("base64url")}.${Buffer.from(JSON.stringify(p)).toString("base64url")}`).digest("base64url")}`)],
    ["no exp", signJwt({ sub: p.sub, role: p.role, iat: now }, secret)],
    ["unknown role", signJwt({ ...p, role: "superuser" }, secret)],
    ["truncated", real.slice(0, -5)],
    ["garbage", "not.a.jwt"],
  ];
}

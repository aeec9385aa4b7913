import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Elysia } from "elysia";
import { ObjectId } from "mongodb";
import { COLLECTIONS } from "../../../src/db/mongo";
import { authPlugin } from "../../../src/http/auth";
import { problemPlugin } from "../../../src/http/problem";
import { createLogger } from "../../../src/log";
import { UserRepository } from "../../../src/modules/auth/repository";
import { RoleCache } from "../../../src/modules/auth/role-cache";
import type { Role } from "../../../src/vocabulary";
import { startTestMongo, type TestMongo } from "../../helpers/embedded-mongo";
import { signJwt } from "../../helpers/security";

/*
 * Issue 12, req 3: the role a token is checked against is cached for AUTH_ROLE_CACHE_MS, so a
 * request costs no read of the user. Deleted users and changed roles: at once through this
 * instance's UserRepository, within the TTL when changed elsewhere (the database directly, or
 * another instance). The real auth plugin and repository on the embedded engine.
 */
const SECRET = "role-cache-test-secret-0123456789";
let mongo: TestMongo;
let n = 0;

beforeAll(async () => {
  mongo = await startTestMongo();
});
afterAll(() => mongo.close());

/** An app whose one route needs a signed-in user, on a users database of its own. */
function world(roleCacheMs: number) {
  const db = mongo.client.db(`roles${++n}`);
  const users = new UserRepository(db, { roleCacheMs });
  const auth = authPlugin({ config: { JWT_SECRET: SECRET, JWT_TTL_SECONDS: 3600 }, currentRole: (id) => users.roleOf(id) });
  const app = new Elysia()
    .use(problemPlugin(createLogger("silent")))
    .use(auth)
    .get("/me", ({ principal }) => principal, { auth: true });
  const asUser = async (role: Role) => {
    const user = (await users.insert({ email: `u${++n}@roles.test`, name: "U", role, passwordHash: "x", createdAt: new Date() }))!;
    return { user, token: tokenFor(user.id, role) };
  };
  const status = async (token: string) => (await app.handle(new Request("http://local/me", { headers: { authorization: `Bearer ${token}` } }))).status;
  return { db, users, asUser, status };
}

function tokenFor(sub: string, role: Role): string {
  const now = Math.floor(Date.now() / 1000);
  return signJwt({ sub, role, iat: now, exp: now + 3600 }, SECRET);
}

describe("role cache in front of the token check", () => {
  test("a deletion through the repository refuses the user's token at once (401), though its role was cached", async () => {
    const w = world(60_000);
    const { user, token } = await w.asUser("customer");
    expect(await w.status(token)).toBe(200);
    expect(await w.users.remove(user.id)).toBe(true);
    expect(await w.status(token)).toBe(401);
  });

  test("a role change through the repository refuses tokens carrying the old role at once; the new role's token works", async () => {
    const w = world(60_000);
    const { user, token } = await w.asUser("courier");
    expect(await w.status(token)).toBe(200);
    expect(await w.users.setRole(user.id, "customer")).toBe(true);
    expect(await w.status(token)).toBe(401);
    expect(await w.status(tokenFor(user.id, "customer"))).toBe(200);
  });

  test("a deletion elsewhere (the database directly) is seen once the entry is older than the TTL", async () => {
    const w = world(1_500);
    const { user, token } = await w.asUser("customer");
    expect(await w.status(token)).toBe(200);
    await w.db.collection(COLLECTIONS.users).deleteOne({ _id: new ObjectId(user.id) });
    // Within the TTL the cached role answers (this is the read the cache saves) ...
    expect(await w.status(token)).toBe(200);
    await Bun.sleep(1_600);
    // ... and after it the user is read again: gone.
    expect(await w.status(token)).toBe(401);
  });

  test("AUTH_ROLE_CACHE_MS=0 reads on every request: a deletion in the database is refused at once", async () => {
    const w = world(0);
    const { user, token } = await w.asUser("restaurant");
    expect(await w.status(token)).toBe(200);
    await w.db.collection(COLLECTIONS.users).deleteOne({ _id: new ObjectId(user.id) });
    expect(await w.status(token)).toBe(401);
  });
});

describe("RoleCache", () => {
  test("reads once per TTL; a missing user is not kept", async () => {
    let t = 0;
    const cache = new RoleCache(1_000, () => t);
    const reads: string[] = [];
    const read = async (id: string) => (reads.push(id), id === "gone" ? null : ("courier" as const));
    for (let i = 0; i < 3; i++) expect(await cache.roleOf("a", read)).toBe("courier");
    expect(reads).toEqual(["a"]);
    t = 1_000;
    expect(await cache.roleOf("a", read)).toBe("courier");
    expect(await cache.roleOf("gone", read)).toBeNull();
    expect(await cache.roleOf("gone", read)).toBeNull();
    expect(reads).toEqual(["a", "a", "gone", "gone"]);
  });

  test("a read in flight when the user is forgotten does not put the old role back", async () => {
    const cache = new RoleCache(60_000);
    let release!: () => void;
    const slow = (_id: string) => new Promise<Role | null>((resolve) => (release = () => resolve("admin")));
    const inFlight = cache.roleOf("u", slow);
    cache.forget("u"); // e.g. the user was demoted while its role was being read
    release();
    expect(await inFlight).toBe("admin");
    let reads = 0;
    expect(await cache.roleOf("u", async () => (reads++, "customer"))).toBe("customer");
    expect(reads).toBe(1);
  });
});

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { UserRepository } from "../../../src/modules/auth/repository";
import { bootstrapAdmin } from "../../../src/modules/auth/service";
import { startTestServer, TEST_ADMIN, TestClock, type TestServer } from "../../helpers/server";

let srv: TestServer;
beforeAll(async () => {
  srv = await startTestServer();
});
afterAll(async () => {
  await srv?.stop();
});

const unique = (tag: string) => `${tag}-${crypto.randomUUID().slice(0, 8)}@Example.COM`;

function jwtParts(token: string): { header: Record<string, unknown>; payload: Record<string, unknown> } {
  const [h, p] = token.split(".");
  return { header: JSON.parse(Buffer.from(h, "base64url").toString()), payload: JSON.parse(Buffer.from(p, "base64url").toString()) };
}

describe("POST /auth/register", () => {
  test("when the email is new then 201 with an HS256 token and the user, never a password hash", async () => {
    const email = unique("alice");
    const res = await srv.request("POST", "/auth/register", { body: { email, password: "correct-horse", name: "Alice", role: "customer" } });
    expect(res.status).toBe(201);
    expect(Object.keys(res.body).sort()).toEqual(["token", "user"]);
    expect(res.body.user).toEqual({ id: expect.any(String), email: email.toLowerCase(), name: "Alice", role: "customer" });
    expect(JSON.stringify(res.body)).not.toContain("argon2");
    const { header, payload } = jwtParts(res.body.token);
    expect(header.alg).toBe("HS256");
    expect(payload.sub).toBe(res.body.user.id);
    expect(payload.role).toBe("customer");
    expect(typeof payload.iat).toBe("number");
    expect(payload.exp).toBeGreaterThan(payload.iat as number);
    // The stored document holds an argon2id hash, not the password.
    const stored = await srv.deps.db.db.collection("users").findOne({ email: email.toLowerCase() });
    expect(String(stored?.passwordHash)).toStartWith("$argon2id$");
    expect(JSON.stringify(stored)).not.toContain("correct-horse");
  });

  test("when the email exists, in any letter case, then 409 problem+json", async () => {
    const email = unique("bob");
    expect((await srv.request("POST", "/auth/register", { body: { email, password: "password-1", name: "Bob", role: "courier" } })).status).toBe(201);
    const again = await srv.request("POST", "/auth/register", { body: { email: email.toUpperCase(), password: "password-2", name: "Bob 2", role: "customer" } });
    expect(again.status).toBe(409);
    expect(again.headers.get("content-type")).toContain("application/problem+json");
    expect(again.body).toMatchObject({ status: 409, title: "Conflict" });
  });

  test("when two registrations of one email race then exactly one wins", async () => {
    const email = unique("race");
    const results = await Promise.all(
      Array.from({ length: 8 }, () => srv.request("POST", "/auth/register", { body: { email, password: "password-1", name: "R", role: "customer" } })),
    );
    expect(results.map((r) => r.status).sort()).toEqual([201, 409, 409, 409, 409, 409, 409, 409]);
  });

  test("when the input is invalid then 400 naming each field", async () => {
    const res = await srv.request("POST", "/auth/register", { body: { email: "not-an-email", password: "short", name: "", role: "customer" } });
    expect(res.status).toBe(400);
    expect(res.headers.get("content-type")).toContain("application/problem+json");
    const paths = res.body.errors.map((e: { path: string }) => e.path);
    expect(paths).toEqual(expect.arrayContaining(["/email", "/password", "/name"]));

    const long = await srv.request("POST", "/auth/register", { body: { email: unique("l"), password: "x".repeat(129), name: "L", role: "customer" } });
    expect(long.status).toBe(400);
    expect(long.body.errors[0].path).toBe("/password");
  });

  test("when someone registers as admin then 400: admins only come from the bootstrap", async () => {
    const res = await srv.request("POST", "/auth/register", { body: { email: unique("mallory"), password: "password-1", name: "M", role: "admin" } });
    expect(res.status).toBe(400);
    expect(res.body.errors.some((e: { path: string }) => e.path === "/role")).toBe(true);
  });
});

describe("POST /auth/login", () => {
  test("when the password is right then 200 with a token that works on /auth/me", async () => {
    const email = unique("carol");
    const reg = await srv.register("restaurant", { email, password: "s3cret-pass", name: "Carol" });
    const res = await srv.request("POST", "/auth/login", { body: { email: email.toUpperCase(), password: "s3cret-pass" } });
    expect(res.status).toBe(200);
    expect(res.body.user).toEqual(reg.user);
    const me = await srv.request("GET", "/auth/me", { token: res.body.token });
    expect(me.status).toBe(200);
    expect(me.body).toEqual(reg.user);
  });

  test("when the password is wrong or the email unknown then the same 401", async () => {
    const email = unique("dave");
    await srv.register("customer", { email, password: "right-password" });
    const wrong = await srv.request("POST", "/auth/login", { body: { email, password: "wrong-password" } });
    const unknown = await srv.request("POST", "/auth/login", { body: { email: unique("nobody"), password: "right-password" } });
    expect(wrong.status).toBe(401);
    expect(unknown.status).toBe(401);
    expect(wrong.body.detail).toBe(unknown.body.detail);
    expect(wrong.headers.get("content-type")).toContain("application/problem+json");
  });
});

describe("GET /auth/me", () => {
  test("when there is no token or a bad one then 401", async () => {
    expect((await srv.request("GET", "/auth/me")).status).toBe(401);
    expect((await srv.request("GET", "/auth/me", { token: "not.a.jwt" })).status).toBe(401);
    const { token } = await srv.register("courier");
    const [h, p] = token.split(".");
    expect((await srv.request("GET", "/auth/me", { token: `${h}.${p}.${"A".repeat(43)}` })).status).toBe(401);
    // alg "none" is refused.
    const none = `${Buffer.from('{"alg":"none","typ":"JWT"}').toString("base64url")}.${p}.`;
    expect((await srv.request("GET", "/auth/me", { token: none })).status).toBe(401);
  });
});

describe("admin bootstrap", () => {
  test("when ADMIN_EMAIL is set then that admin can sign in with role admin", async () => {
    const res = await srv.request("POST", "/auth/login", { body: { email: TEST_ADMIN.email, password: TEST_ADMIN.password } });
    expect(res.status).toBe(200);
    expect(res.body.user).toMatchObject({ email: TEST_ADMIN.email, role: "admin" });
  });

  test("when the admin exists then running the bootstrap again creates nothing, and nobody can register that email", async () => {
    await bootstrapAdmin(new UserRepository(srv.deps.db.db), srv.deps);
    expect(await srv.deps.db.db.collection("users").countDocuments({ email: TEST_ADMIN.email })).toBe(1);
    const res = await srv.request("POST", "/auth/register", { body: { email: TEST_ADMIN.email, password: "password-1", name: "X", role: "customer" } });
    expect(res.status).toBe(409);
  });

  test("when ADMIN_EMAIL is unset then no admin is created", async () => {
    const bare = await startTestServer({ ADMIN_EMAIL: "", ADMIN_PASSWORD: "" });
    try {
      expect(await bare.deps.db.db.collection("users").countDocuments({ role: "admin" })).toBe(0);
    } finally {
      await bare.stop();
    }
  });
});

describe("login rate limit", () => {
  test("per email: after LOGIN_MAX_ATTEMPTS failures, 429 with Retry-After even for the right password, until the window passes", async () => {
    const clock = new TestClock();
    const limited = await startTestServer({ LOGIN_MAX_ATTEMPTS: "3", LOGIN_WINDOW_SECONDS: "60", TRUST_PROXY: "true" }, { clock });
    try {
      const { email, password } = await limited.register("customer");
      // Different client IPs each time, so only the per-email counter fills up.
      for (let i = 0; i < 3; i++) {
        const res = await limited.request("POST", "/auth/login", { body: { email, password: "wrong-password" }, headers: { "x-forwarded-for": `10.0.0.${i}` } });
        expect(res.status).toBe(401);
      }
      clock.advance(15_000);
      const blocked = await limited.request("POST", "/auth/login", { body: { email, password }, headers: { "x-forwarded-for": "10.0.1.1" } });
      expect(blocked.status).toBe(429);
      expect(blocked.headers.get("content-type")).toContain("application/problem+json");
      expect(blocked.headers.get("retry-after")).toBe("45");
      // Another account is not affected.
      const other = await limited.register("customer");
      expect((await limited.request("POST", "/auth/login", { body: { email: other.email, password: other.password }, headers: { "x-forwarded-for": "10.0.1.2" } })).status).toBe(200);
      clock.advance(45_000);
      expect((await limited.request("POST", "/auth/login", { body: { email, password }, headers: { "x-forwarded-for": "10.0.1.3" } })).status).toBe(200);
    } finally {
      await limited.stop();
    }
  });

  test("per IP: failures across many emails from one IP get that IP limited; other IPs are not", async () => {
    const clock = new TestClock();
    const limited = await startTestServer({ LOGIN_MAX_ATTEMPTS: "3", LOGIN_WINDOW_SECONDS: "60", TRUST_PROXY: "true" }, { clock });
    try {
      const victim = await limited.register("customer");
      for (let i = 0; i < 3; i++) {
        const res = await limited.request("POST", "/auth/login", { body: { email: unique(`guess${i}`), password: "password-x" }, headers: { "x-forwarded-for": "203.0.113.9" } });
        expect(res.status).toBe(401);
      }
      const blocked = await limited.request("POST", "/auth/login", { body: { email: victim.email, password: victim.password }, headers: { "x-forwarded-for": "203.0.113.9" } });
      expect(blocked.status).toBe(429);
      expect(Number(blocked.headers.get("retry-after"))).toBe(60);
      // Only the last X-Forwarded-For entry (the one our proxy appended) counts: a spoofed first entry changes nothing.
      const spoofed = await limited.request("POST", "/auth/login", { body: { email: victim.email, password: victim.password }, headers: { "x-forwarded-for": "1.2.3.4, 203.0.113.9" } });
      expect(spoofed.status).toBe(429);
      const elsewhere = await limited.request("POST", "/auth/login", { body: { email: victim.email, password: victim.password }, headers: { "x-forwarded-for": "198.51.100.7" } });
      expect(elsewhere.status).toBe(200);
    } finally {
      await limited.stop();
    }
  });

  test("successful logins do not use up the allowance", async () => {
    const limited = await startTestServer({ LOGIN_MAX_ATTEMPTS: "2" });
    try {
      const { email, password } = await limited.register("courier");
      for (let i = 0; i < 6; i++) expect((await limited.request("POST", "/auth/login", { body: { email, password } })).status).toBe(200);
    } finally {
      await limited.stop();
    }
  });

  test("without TRUST_PROXY, X-Forwarded-For is ignored: the peer address is limited", async () => {
    const limited = await startTestServer({ LOGIN_MAX_ATTEMPTS: "2" });
    try {
      for (let i = 0; i < 2; i++) {
        const res = await limited.request("POST", "/auth/login", { body: { email: unique(`x${i}`), password: "password-x" }, headers: { "x-forwarded-for": `10.9.9.${i}` } });
        expect(res.status).toBe(401);
      }
      const res = await limited.request("POST", "/auth/login", { body: { email: unique("y"), password: "password-x" }, headers: { "x-forwarded-for": "10.9.9.99" } });
      expect(res.status).toBe(429);
      expect(res.headers.get("retry-after")).not.toBeNull();
    } finally {
      await limited.stop();
    }
  });

  test("a burst of parallel wrong guesses is cut at the limit", async () => {
    const limited = await startTestServer({ LOGIN_MAX_ATTEMPTS: "5" });
    try {
      const { email } = await limited.register("customer");
      const results = await Promise.all(Array.from({ length: 20 }, () => limited.request("POST", "/auth/login", { body: { email, password: "wrong-password" } })));
      const counts = results.reduce<Record<number, number>>((acc, r) => ((acc[r.status] = (acc[r.status] ?? 0) + 1), acc), {});
      expect(counts).toEqual({ 401: 5, 429: 15 });
    } finally {
      await limited.stop();
    }
  });
});

describe("users index", () => {
  test("emails are unique by index, and the login lookup is planned on it", async () => {
    const indexes = await srv.deps.db.db.collection("users").listIndexes().toArray();
    expect(indexes.find((i) => i.name === "email_unique")).toMatchObject({ key: { email: 1 }, unique: true });
    const plan = await srv.deps.db.db.collection("users").find({ email: TEST_ADMIN.email }).explain("queryPlanner");
    const text = JSON.stringify(plan.queryPlanner?.winningPlan);
    expect(text).toContain("IXSCAN");
    expect(text).toContain("email_unique");
  });
});

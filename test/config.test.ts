import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { ConfigError, ConfigSchema, loadConfig } from "../src/config";

const doc = readFileSync(resolve(import.meta.dir, "../docs/configuration.md"), "utf8");

describe("configuration", () => {
  test("docs/configuration.md lists every variable of the schema", () => {
    const missing = Object.keys(ConfigSchema.properties).filter((name) => !doc.includes(`| \`${name}\` |`));
    expect(missing).toEqual([]);
  });

  test("defaults give a working development config", () => {
    const config = loadConfig({});
    expect(config.PORT).toBe(3000);
    expect(config.MONGODB_DB).toBe("dispatch");
    expect(config.JWT_SECRET).toBeUndefined(); // the server generates and stores one (test/security/jwt-secret.test.ts)
    expect(config.HOST).toBe("127.0.0.1"); // not reachable from the network until HOST says so
    expect(config.INSTANCE_ID).toMatch(/^i-/);
    expect(Object.isFrozen(config)).toBe(true);
  });

  test("a wrong value stops start-up with a message naming the variable", () => {
    expect(() => loadConfig({ PORT: "abc" })).toThrow(ConfigError);
    expect(() => loadConfig({ PORT: "abc" })).toThrow(/PORT/);
    expect(() => loadConfig({ PORT: "70000" })).toThrow(/PORT/);
    expect(() => loadConfig({ REDIS_URL: "http://x" })).toThrow(/REDIS_URL/);
    expect(() => loadConfig({ ADMIN_EMAIL: "admin@example.com" })).toThrow(/ADMIN_PASSWORD/);
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: "redis://a:7000" })).toThrow(/REDIS_CLUSTER_NODES/);
    expect(() => loadConfig({ REDIS_URL: "redis://a:6379", REDIS_CLUSTER_NODES: "a:7000,b:7001" })).toThrow(/REDIS_URL and REDIS_CLUSTER_NODES/);
    expect(loadConfig({ REDIS_CLUSTER_NODES: "a:7000,b:7001" }).REDIS_CLUSTER_NODES).toBe("a:7000,b:7001");
    expect(() => loadConfig({ RELAY_MODE: "everything" })).toThrow(/RELAY_MODE/);
  });

  test("production refuses to start without JWT_SECRET", () => {
    expect(() => loadConfig({ NODE_ENV: "production" })).toThrow(/JWT_SECRET/);
    const ok = loadConfig({ NODE_ENV: "production", JWT_SECRET: "x".repeat(32), PASSWORD_HASH_MEMORY_KIB: "19456" });
    expect(ok.JWT_SECRET).toBe("x".repeat(32));
  });

  test("the server process exits with a message naming the variable", async () => {
    const proc = Bun.spawn(["bun", "run", resolve(import.meta.dir, "../src/index.ts")], {
      env: { ...process.env, PORT: "not-a-port", MONGODB_URI: "", DATA_DIR: ":memory:" },
      stdout: "pipe",
      stderr: "pipe",
    });
    const [code, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
    expect(code).toBe(78);
    expect(stderr).toContain("PORT");
  });
});

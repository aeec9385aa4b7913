import { afterAll, describe, expect, test } from "bun:test";
import { readdir, readFile } from "node:fs/promises";
import { builtinModules } from "node:module";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { ConfigSchema, loadConfig } from "../../src/config";
import { REPO_ROOT, spawnManaged, stopAllProcesses, type ManagedProcess } from "../helpers/processes";

/**
 * No Docker engine runs here, so the deployment files are checked with what does run: the
 * Dockerfile and docker-compose.yml are parsed and their properties asserted, the compose
 * environment is fed to the server's own config loader, the nginx config is checked for
 * WebSocket pass-through, and the image's CMD and HEALTHCHECK commands are run as they are
 * against a real server process (then SIGTERM, as `docker stop` sends it).
 */

const read = (path: string) => readFile(join(REPO_ROOT, path), "utf8");

// ---------- Dockerfile ----------

type Instruction = { keyword: string; args: string; line: number };
type Stage = { from: string; name: string | null; instructions: Instruction[] };

/** Instructions with continuation lines joined and comments dropped. */
function parseDockerfile(text: string): { args: Map<string, string>; stages: Stage[] } {
  const instructions: Instruction[] = [];
  let pending = "";
  let startLine = 0;
  text.split("\n").forEach((raw, i) => {
    const line = raw.trimEnd();
    if (pending === "" && (line.trim() === "" || line.trimStart().startsWith("#"))) return;
    if (pending !== "" && line.trimStart().startsWith("#")) return;
    if (pending === "") startLine = i + 1;
    if (line.endsWith("\\")) {
      pending += line.slice(0, -1) + " ";
      return;
    }
    const full = (pending + line).trim();
    pending = "";
    const m = /^(\S+)\s*(.*)$/s.exec(full);
    if (m) instructions.push({ keyword: m[1].toUpperCase(), args: m[2].trim(), line: startLine });
  });
  const args = new Map<string, string>();
  const stages: Stage[] = [];
  for (const ins of instructions) {
    if (ins.keyword === "ARG" && stages.length === 0) {
      const [k, v = ""] = ins.args.split("=");
      args.set(k, v);
    } else if (ins.keyword === "FROM") {
      const m = /^(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      if (!m) throw new Error(`bad FROM at line ${ins.line}`);
      const from = m[1].replace(/\$\{(\w+)\}/g, (_, k: string) => args.get(k) ?? "");
      stages.push({ from, name: m[2] ?? null, instructions: [] });
    } else if (stages.length) {
      stages[stages.length - 1].instructions.push(ins);
    }
  }
  return { args, stages };
}

/** Exec form (`["a","b"]`) as an array; null for shell form. */
function execForm(args: string): string[] | null {
  if (!args.startsWith("[")) return null;
  const parsed: unknown = JSON.parse(args);
  return Array.isArray(parsed) && parsed.every((a) => typeof a === "string") ? parsed : null;
}

function envOf(stage: Stage): Record<string, string> {
  const env: Record<string, string> = {};
  for (const ins of stage.instructions.filter((i) => i.keyword === "ENV")) {
    for (const m of ins.args.matchAll(/(\w+)=("[^"]*"|\S+)/g)) env[m[1]] = m[2].replace(/^"|"$/g, "");
  }
  return env;
}

describe("Dockerfile", async () => {
  const { stages } = parseDockerfile(await read("Dockerfile"));
  const runtime = stages[stages.length - 1];
  const only = (keyword: string) => runtime.instructions.filter((i) => i.keyword === keyword);

  test("multi-stage, every stage on the official Bun image", () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    for (const stage of stages) expect(stage.from).toMatch(/^oven\/bun:1\.4(?:[.-]|$)/);
    expect(new Set(stages.map((s) => s.name)).size).toBe(stages.length);
  });

  test("the runtime installs nothing from package.json itself and takes production dependencies from the build stage", () => {
    const install = stages.flatMap((s) => s.instructions).filter((i) => i.keyword === "RUN" && /bun install/.test(i.args));
    expect(install.length).toBe(1);
    expect(install[0].args).toContain("--production");
    expect(install[0].args).toContain("--frozen-lockfile");
    const builder = stages.find((s) => s.instructions.includes(install[0]));
    expect(builder).not.toBe(runtime);
    const copies = only("COPY");
    expect(copies.some((c) => c.args.includes(`--from=${builder?.name}`) && c.args.includes("node_modules"))).toBe(true);
    // Only what runs: no `COPY . .`, no tests, no docs.
    for (const c of copies) expect(c.args).not.toMatch(/(^|\s)\.\s+\.?\/?$|\btest\b|\bdocs\b/);
  });

  test("runs as a non-root user", () => {
    const users = only("USER");
    expect(users.length).toBeGreaterThan(0);
    const user = users[users.length - 1].args.split(":")[0];
    expect(["root", "0", ""]).not.toContain(user);
    // USER comes before CMD, so the server never runs as root.
    const order = runtime.instructions.map((i) => i.keyword);
    expect(order.lastIndexOf("USER")).toBeLessThan(order.indexOf("CMD"));
  });

  test("HEALTHCHECK probes /health; CMD and ENTRYPOINT are exec form with an init as PID 1", () => {
    const health = only("HEALTHCHECK");
    expect(health.length).toBe(1);
    expect(health[0].args).toMatch(/--interval=\d+s/);
    const probe = execForm(health[0].args.replace(/^(--\S+\s+)*CMD\s+/, ""));
    expect(probe).not.toBeNull();
    expect(probe?.join(" ")).toContain("/health");
    const entry = execForm(only("ENTRYPOINT")[0]?.args ?? "");
    expect(entry?.[0]).toMatch(/tini$/);
    const cmd = execForm(only("CMD")[0]?.args ?? "");
    expect(cmd).toEqual(["bun", "src/index.ts"]); // Bun itself gets the signal: no shell, no `bun run <script>` child
    const stop = only("STOPSIGNAL");
    if (stop.length) expect(stop[0].args).toBe("SIGTERM");
  });

  test("the server's runtime imports are all production dependencies", async () => {
    const pkg = JSON.parse(await read("package.json")) as { dependencies: Record<string, string> };
    const builtins = new Set(builtinModules);
    const missing = new Set<string>();
    async function walk(dir: string): Promise<void> {
      for (const entry of await readdir(join(REPO_ROOT, dir), { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) await walk(path);
        else if (/\.(ts|js)$/.test(entry.name) && dir.startsWith("src")) {
          const text = await read(path);
          for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^"']*?from\s+["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g)) {
            const spec = m[1] ?? m[2];
            if (spec.startsWith(".") || spec.startsWith("node:") || spec === "bun" || spec.startsWith("bun:") || builtins.has(spec)) continue;
            if (/^import\s+type\b/.test(m[0].trim())) continue; // erased at run time
            const name = spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0];
            if (!(name in pkg.dependencies)) missing.add(`${name} (${path})`);
          }
        }
      }
    }
    await walk("src");
    expect([...missing]).toEqual([]);
  });

  test(".dockerignore keeps the context small and secret-free", async () => {
    const ignored = (await read(".dockerignore")).split("\n").map((l) => l.trim());
    for (const path of ["node_modules", ".git", "test", "data", ".env"]) expect(ignored).toContain(path);
  });

  describe("the image's commands, run here", () => {
    let server: ManagedProcess | null = null;
    afterAll(async () => {
      await server?.stop("SIGKILL");
      await stopAllProcesses();
    });

    test("CMD serves, the HEALTHCHECK command passes against it and fails without it, SIGTERM exits 0", async () => {
      const env = { ...envOf(runtime), PORT: "0", HOST: "127.0.0.1", DATA_DIR: ":memory:", JWT_SECRET: "container-test-secret-0123456789", MONGODB_URI: "", REDIS_URL: "" };
      const cmd = execForm(only("CMD")[0].args)!;
      server = spawnManaged("image CMD", cmd, env);
      const listening = await server.waitForLine((l) => l.msg === "listening" && typeof l.port === "number");
      const port = String(listening.port);
      const probe = execForm(only("HEALTHCHECK")[0].args.replace(/^(--\S+\s+)*CMD\s+/, ""))!;
      const healthy = Bun.spawn(probe, { env: { ...process.env, PORT: port }, stdout: "ignore", stderr: "ignore" });
      expect(await healthy.exited).toBe(0);

      server.proc.kill("SIGTERM");
      expect(await server.exited).toBe(0);
      expect(server.lines.some((l) => l.msg === "shutting down" && l.signal === "SIGTERM")).toBe(true);
      const unhealthy = Bun.spawn(probe, { env: { ...process.env, PORT: port }, stdout: "ignore", stderr: "ignore" });
      expect(await unhealthy.exited).toBe(1);
    });
  });
});

// ---------- docker-compose.yml ----------

type Service = {
  image?: string;
  build?: string | { context: string };
  command?: string[] | string;
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }> | string[];
  healthcheck?: { test: string[] | string };
  ports?: string[];
  volumes?: string[];
  profiles?: string[];
};
type Compose = { services: Record<string, Service>; volumes?: Record<string, unknown> };

/** A value `${VAR:?message}` demands, as an operator would give it. */
const REQUIRED_VALUE = "operator-supplied-value-0123456789";

/** `${VAR:-default}` / `${VAR}` as `docker compose` resolves them with an empty environment; `${VAR:?…}` as given by the operator. */
function withDefaults(value: string): string {
  return value.replace(/\$\{(\w+)(?:(:?[-?])([^}]*))?\}/g, (_, _name: string, op?: string, fallback?: string) => (op?.endsWith("?") ? REQUIRED_VALUE : (fallback ?? "")));
}

describe("docker-compose.yml", async () => {
  const compose = parseYaml(await read("docker-compose.yml"), { merge: true }) as Compose;
  const services = compose.services;
  const apis = Object.entries(services).filter(([, s]) => s.build !== undefined);
  const nginx = await read("deploy/nginx.conf");

  test("MongoDB as a one-node replica set, initiated by a one-shot step once it is healthy", () => {
    const mongo = services.mongo;
    expect(mongo.image).toMatch(/^mongo:\d/);
    const command = Array.isArray(mongo.command) ? mongo.command : String(mongo.command).split(/\s+/);
    const setName = command[command.indexOf("--replSet") + 1];
    expect(setName).toBe("rs0");
    expect(command).toContain("--bind_ip_all");
    expect(mongo.healthcheck).toBeDefined();
    const init = services["mongo-init"];
    expect(init.depends_on).toEqual({ mongo: { condition: "service_healthy" } });
    const script = (init.command as string[]).join(" ");
    expect(script).toContain(`rs.initiate({ _id: "${setName}"`);
    expect(script).toContain('host: "mongo:27017"');
    expect(script).toMatch(/isWritablePrimary/); // done only once a primary is elected
    expect(compose.volumes).toHaveProperty("mongo-data");
  });

  test("Redis with a health check", () => {
    expect(services.redis.image).toMatch(/^redis:/);
    expect(services.redis.healthcheck).toBeDefined();
  });

  test("two server instances from this Dockerfile, distinct ids, one secret, on the replica set and Redis, started after both", () => {
    expect(apis.map(([name]) => name).sort()).toEqual(["api-1", "api-2"]);
    const ids = new Set<string>();
    const secrets = new Set<string>();
    for (const [, api] of apis) {
      const build = typeof api.build === "string" ? api.build : api.build?.context;
      expect(build).toBe(".");
      const env = api.environment ?? {};
      ids.add(env.INSTANCE_ID);
      secrets.add(env.JWT_SECRET);
      const uri = new URL(env.MONGODB_URI.replace(/^mongodb:/, "http:"));
      expect(uri.hostname).toBe("mongo");
      expect(uri.searchParams.get("replicaSet")).toBe("rs0");
      expect(new URL(env.REDIS_URL).hostname).toBe("redis");
      expect(env.TRUST_PROXY).toBe("true"); // behind exactly one proxy that sets X-Forwarded-For
      expect(api.depends_on).toEqual({ "mongo-init": { condition: "service_completed_successfully" }, redis: { condition: "service_healthy" } });
    }
    expect(ids.size).toBe(2);
    expect(secrets.size).toBe(1); // tokens must verify on either instance
  });

  test("no secret has a default: JWT_SECRET must be given, the admin and METRICS_TOKEN are empty unless given", () => {
    for (const [, api] of apis) {
      const env = api.environment ?? {};
      expect(env.JWT_SECRET).toMatch(/^\$\{JWT_SECRET:\?[^}]+\}$/);
      for (const name of ["ADMIN_EMAIL", "ADMIN_PASSWORD", "METRICS_TOKEN"]) expect({ name, value: env[name] }).toEqual({ name, value: `\${${name}:-}` });
    }
  });

  test("every variable the servers get is one the server knows, and the whole environment passes its config loader", () => {
    const known = new Set(Object.keys(ConfigSchema.properties));
    for (const [, api] of apis) {
      const env = Object.fromEntries(Object.entries(api.environment ?? {}).map(([k, v]) => [k, withDefaults(String(v))]));
      expect(Object.keys(env).filter((k) => !known.has(k))).toEqual([]);
      const config = loadConfig(env);
      expect(config.NODE_ENV).toBe("production");
      expect(config.PORT).toBe(3000);
      expect(config.JWT_SECRET).toBeDefined();
    }
  });

  test("nginx in front: published port, waits for healthy instances, and its upstream lists exactly the instances", () => {
    const proxy = services.proxy;
    expect(proxy.image).toMatch(/^nginx:/);
    expect(proxy.ports?.some((p) => withDefaults(p).endsWith(":80"))).toBe(true);
    expect(proxy.volumes).toContain("./deploy/nginx.conf:/etc/nginx/nginx.conf:ro");
    expect(proxy.depends_on).toEqual({ "api-1": { condition: "service_healthy" }, "api-2": { condition: "service_healthy" } });
    const upstream = /upstream\s+dispatch\s*\{([^}]*)\}/.exec(nginx)?.[1] ?? "";
    const servers = [...upstream.matchAll(/^\s*server\s+([\w.-]+):(\d+)/gm)].map((m) => `${m[1]}:${m[2]}`).sort();
    expect(servers).toEqual(apis.map(([name, s]) => `${name}:${s.environment?.PORT}`).sort());
  });

  test("every depends_on names a service; volumes and configs it mounts exist", async () => {
    for (const [name, service] of Object.entries(services)) {
      const deps = Array.isArray(service.depends_on) ? service.depends_on : Object.keys(service.depends_on ?? {});
      for (const dep of deps) expect({ name, dep, exists: dep in services }).toEqual({ name, dep, exists: true });
      for (const volume of service.volumes ?? []) {
        const source = volume.split(":")[0];
        if (source.startsWith("./")) expect(await Bun.file(join(REPO_ROOT, source)).exists()).toBe(true);
        else expect(compose.volumes).toHaveProperty(source);
      }
    }
  });

  test("Prometheus (monitoring profile) scrapes every instance's /metrics", async () => {
    const prometheus = services.prometheus;
    expect(prometheus.profiles).toEqual(["monitoring"]);
    const config = parseYaml(await read("deploy/prometheus.yml")) as {
      scrape_configs: Array<{ metrics_path?: string; authorization?: { type?: string; credentials_file?: string }; static_configs: Array<{ targets: string[] }> }>;
    };
    const job = config.scrape_configs[0];
    expect(job.metrics_path ?? "/metrics").toBe("/metrics");
    // /metrics answers other hosts only with METRICS_TOKEN: Prometheus sends it from the mounted config.
    expect(job.authorization?.type ?? "Bearer").toBe("Bearer");
    const mounted = (prometheus as Service & { configs?: Array<{ source: string; target: string }> }).configs ?? [];
    expect(mounted.map((c) => c.target)).toContain(job.authorization?.credentials_file ?? "(none)");
    const source = mounted.find((c) => c.target === job.authorization?.credentials_file)!.source;
    expect((compose as Compose & { configs?: Record<string, { content?: string }> }).configs?.[source]?.content).toBe("${METRICS_TOKEN:-}");
    expect(job.static_configs.flatMap((c) => c.targets).sort()).toEqual(apis.map(([name, s]) => `${name}:${s.environment?.PORT}`).sort());
  });
});

describe("deploy/nginx.conf", async () => {
  const conf = await read("deploy/nginx.conf");
  const block = (path: string) => {
    const start = conf.indexOf(`location ${path} {`);
    return start < 0 ? "" : conf.slice(start, conf.indexOf("}", start));
  };

  test("braces balance", () => {
    const code = conf.replace(/#.*$/gm, "");
    expect((code.match(/\{/g) ?? []).length).toBe((code.match(/\}/g) ?? []).length);
  });

  test("WebSocket upgrades pass through: HTTP/1.1, Upgrade and Connection headers, a long read timeout", () => {
    expect(conf).toMatch(/map\s+\$http_upgrade\s+\$connection_upgrade\s*\{[^}]*default\s+upgrade;/);
    for (const path of ["/ws", "/"]) {
      const b = block(path);
      expect(b).toContain("proxy_pass http://dispatch;");
      expect(b).toContain("proxy_http_version 1.1;");
      expect(b).toContain("proxy_set_header Upgrade $http_upgrade;");
      expect(b).toContain("proxy_set_header Connection $connection_upgrade;");
      expect(b).toContain("proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;");
    }
    const timeout = /proxy_read_timeout\s+(\d+)([smh]?);/.exec(block("/ws"));
    const seconds = timeout ? Number(timeout[1]) * ({ s: 1, m: 60, h: 3600, "": 1 } as Record<string, number>)[timeout[2]] : 60;
    // Longer than the server's WebSocket ping interval, so idle sockets are not cut by the proxy.
    expect(seconds).toBeGreaterThan(loadConfig({}).WS_IDLE_TIMEOUT_SECONDS);
  });

  test("/metrics is not exposed through the proxy", () => {
    expect(block("= /metrics")).toContain("return 404;");
  });
});

// ---------- CI workflow ----------

describe(".github/workflows/ci.yml", async () => {
  type Step = { run?: string; uses?: string; name?: string; with?: Record<string, string> };
  type Job = { services?: Record<string, { image: string; ports?: string[] }>; env?: Record<string, string>; steps: Step[] };
  const workflow = parseYaml(await read(".github/workflows/ci.yml")) as { jobs: Record<string, Job> };
  const jobs = Object.values(workflow.jobs);
  const runs = (job: Job) => job.steps.map((s) => s.run ?? "").join("\n");

  test("runs bun test on the embedded engine and again on MongoDB (replica set) and Redis", () => {
    const embedded = jobs.filter((j) => !j.env?.MONGODB_URI);
    const real = jobs.filter((j) => j.env?.MONGODB_URI);
    expect(embedded.length).toBe(1);
    expect(real.length).toBe(1);
    for (const job of jobs) expect(runs(job)).toMatch(/^\s*bun test\s*$/m);
    const [job] = real;
    expect(new URL(job.env!.MONGODB_URI.replace(/^mongodb:/, "http:")).searchParams.get("replicaSet")).toBe("rs0");
    expect(job.env!.REDIS_URL).toMatch(/^redis:\/\//);
    expect(job.services?.redis.image).toMatch(/^redis:/);
    const redisPort = new URL(job.env!.REDIS_URL).port;
    expect(job.services?.redis.ports).toContain(`${redisPort}:6379`);
    const started = runs(job);
    expect(started).toContain("--replSet rs0");
    expect(started).toContain('rs.initiate({ _id: "rs0"');
    expect(runs(embedded[0])).toContain("bunx tsc --noEmit");
  });
});

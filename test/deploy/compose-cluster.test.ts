import { describe, expect, test } from "bun:test";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { loadConfig } from "../../src/config";
import { REPO_ROOT } from "../helpers/processes";

/** docker-compose.cluster.yml (docs/scaling.md): the Redis Cluster variant of docker-compose.yml, parsed and checked. */
type Service = { image?: string; command?: string[] | string; environment?: Record<string, string>; depends_on?: Record<string, { condition: string }>; hostname?: string };

describe("docker-compose.cluster.yml", async () => {
  const compose = parseYaml(await readFile(join(REPO_ROOT, "docker-compose.cluster.yml"), "utf8"), { merge: true }) as { services: Record<string, Service> };
  const base = parseYaml(await readFile(join(REPO_ROOT, "docker-compose.yml"), "utf8"), { merge: true }) as { services: Record<string, Service> };
  const nodes = Object.entries(compose.services).filter(([name]) => /^redis-\d$/.test(name));

  test("six Redis 7 nodes with cluster mode on, joined by a one-shot step into 3 masters with a replica each", () => {
    expect(nodes.length).toBe(6);
    for (const [, node] of nodes) {
      expect(node.image).toMatch(/^redis:7/);
      expect(String(node.command)).toContain("--cluster-enabled yes");
    }
    const init = String(compose.services["redis-cluster-init"].command);
    expect(init).toContain("--cluster-replicas 1");
    expect(init).toContain("master_link_status:up");
    for (const [name] of nodes) expect(compose.services["redis-cluster-init"].depends_on?.[name]?.condition).toBe("service_healthy");
  });

  test("every instance of the base file uses the cluster, once it is ready, with a configuration the server accepts", () => {
    const apis = Object.keys(base.services).filter((name) => name.startsWith("api-"));
    expect(apis.length).toBeGreaterThanOrEqual(2);
    for (const name of apis) {
      const api = compose.services[name];
      expect(api.depends_on?.["redis-cluster-init"]?.condition).toBe("service_completed_successfully");
      // `${VAR:-default}` as compose resolves it with an empty environment; JWT_SECRET as an operator sets it.
      const merged: Record<string, string> = { ...base.services[name].environment, ...api.environment };
      const env = Object.fromEntries(Object.entries(merged).map(([k, v]) => [k, String(v).replace(/\$\{\w+:-([^}]*)\}/g, "$1")]));
      const config = loadConfig({ ...env, JWT_SECRET: "x".repeat(32) });
      expect(config.REDIS_URL).toBeUndefined();
      expect(config.REDIS_CLUSTER_NODES?.split(",").length).toBe(3);
      expect(config.RELAY_MODE).toBe("interest");
    }
  });
});

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnManaged, type ManagedProcess } from "./processes";
import { answering, freePort } from "./redis";

/**
 * A throwaway Redis Cluster: 3 masters and 3 replicas (Debian's redis-server 7 with
 * `--cluster-enabled yes`), on free ports of 127.0.0.1, joined with
 * `redis-cli --cluster create … --cluster-replicas 1 --cluster-yes`. Ready once every node
 * reports cluster_state:ok and every replica master_link_status:up (a replica that has not
 * synced may refuse to take over when its master dies).
 */
export type TestRedisCluster = {
  /** host:port of every node, masters first as created (REDIS_CLUSTER_NODES). */
  nodes: string;
  ports: number[];
  /** The port of the master serving a key's (or channel's) slot now. */
  masterOf(key: string): Promise<number>;
  /** Runs one redis-cli command against a node; stdout, trimmed. */
  cli(port: number, ...args: string[]): Promise<string>;
  /** SIGKILL of one node (as abrupt as a crash); resolves once a replica serves its slots. */
  killMaster(port: number): Promise<{ promoted: number }>;
  /** Starts a killed node again (it rejoins as a replica) and waits until the cluster is healthy. */
  restart(port: number): Promise<void>;
  /** SIGKILL of every node (the whole cluster down). */
  killAll(): Promise<void>;
  /** Starts every killed node again (they rejoin from their cluster config) and waits until healthy. */
  restartAll(): Promise<void>;
  /** Waits until every node says cluster_state:ok and every replica has its link up. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
};

const NODE_TIMEOUT_MS = 1_000;

async function run(...cmd: string[]): Promise<string> {
  const proc = Bun.spawn(cmd, { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(`${cmd.join(" ")} exited ${code}: ${err || out}`);
  return out.trim();
}

async function launch(port: number, busPort: number, dir: string): Promise<ManagedProcess> {
  if (port === 6379) throw new Error("refusing to use port 6379");
  const proc = spawnManaged(`redis-server cluster :${port}`, [
    "redis-server",
    "--port", String(port),
    "--cluster-port", String(busPort),
    "--bind", "127.0.0.1",
    "--cluster-enabled", "yes",
    "--cluster-config-file", join(dir, `nodes-${port}.conf`),
    "--cluster-node-timeout", String(NODE_TIMEOUT_MS),
    "--dir", dir,
    "--save", "",
    // Replicas sync at once (the default waits 5 s for more replicas to share one transfer).
    "--repl-diskless-sync", "yes",
    "--repl-diskless-sync-delay", "0",
    "--appendonly", "no",
    "--daemonize", "no",
    "--loglevel", "warning",
  ]);
  return answering(proc, port);
}

function field(info: string, name: string): string | undefined {
  return new RegExp(`^${name}:(.*)$`, "m").exec(info)?.[1]?.trim();
}

export async function startRedisCluster(): Promise<TestRedisCluster> {
  const dir = await mkdtemp(join(tmpdir(), "dispatch-redis-cluster-"));
  const ports: number[] = [];
  const busPorts: number[] = [];
  const taken = new Set<number>([6379, 16379]);
  while (ports.length < 6) {
    const port = await freePort();
    const bus = await freePort();
    if (taken.has(port) || taken.has(bus) || port === bus) continue;
    taken.add(port).add(bus);
    ports.push(port);
    busPorts.push(bus);
  }
  const procs = new Map<number, ManagedProcess>();
  const cli = (port: number, ...args: string[]) => run("redis-cli", "-h", "127.0.0.1", "-p", String(port), ...args);

  async function stop(): Promise<void> {
    await Promise.all([...procs.values()].map((p) => p.stop("SIGKILL")));
    procs.clear();
    await rm(dir, { recursive: true, force: true });
  }

  async function waitHealthy(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = "";
    while (Date.now() < deadline) {
      try {
        let ok = true;
        let masters = 0;
        for (const port of procs.keys()) {
          if (field(await cli(port, "cluster", "info"), "cluster_state") !== "ok") {
            ok = false;
            last = `${port}: cluster_state not ok`;
            break;
          }
          const replication = await cli(port, "info", "replication");
          const role = field(replication, "role");
          if (role === "master") masters++;
          else if (field(replication, "master_link_status") !== "up") {
            ok = false;
            last = `${port}: replica link not up`;
            break;
          }
        }
        if (ok && masters === 3) return;
        if (ok) last = `${masters} masters`;
      } catch (err) {
        last = err instanceof Error ? err.message : String(err);
      }
      await Bun.sleep(100);
    }
    throw new Error(`redis cluster not healthy within ${timeoutMs} ms: ${last}`);
  }

  try {
    await Promise.all(ports.map(async (port, i) => procs.set(port, await launch(port, busPorts[i], dir))));
    await run("redis-cli", "--cluster", "create", ...ports.map((p) => `127.0.0.1:${p}`), "--cluster-replicas", "1", "--cluster-yes");
    await waitHealthy();
  } catch (err) {
    await stop();
    throw err;
  }

  async function masterOf(key: string): Promise<number> {
    const slot = Number(await cli(ports.find((p) => procs.has(p))!, "cluster", "keyslot", key));
    for (const port of procs.keys()) {
      const nodes = await cli(port, "cluster", "nodes").catch(() => "");
      for (const line of nodes.split("\n")) {
        const parts = line.split(" ");
        if (!parts[2]?.includes("master") || parts[2].includes("fail")) continue;
        for (const range of parts.slice(8)) {
          const [from, to] = range.split("-").map(Number);
          if (slot >= from && slot <= (to ?? from)) return Number(parts[1].split(":")[1].split("@")[0]);
        }
      }
    }
    throw new Error(`no master serves slot ${slot}`);
  }

  return {
    nodes: ports.map((p) => `127.0.0.1:${p}`).join(","),
    ports,
    masterOf,
    cli,
    waitHealthy,
    async killMaster(port) {
      const replicasBefore = await cli(port, "cluster", "replicas", (await cli(port, "cluster", "myid")).trim());
      const replicaPorts = replicasBefore
        .split("\n")
        .map((l) => Number(l.split(" ")[1]?.split(":")[1]?.split("@")[0]))
        .filter((p) => Number.isInteger(p) && p > 0);
      await procs.get(port)?.stop("SIGKILL");
      procs.delete(port);
      const deadline = Date.now() + 20_000;
      while (Date.now() < deadline) {
        for (const replica of replicaPorts) {
          const replication = await cli(replica, "info", "replication").catch(() => "");
          if (field(replication, "role") === "master") {
            const state = await cli(replica, "cluster", "info").catch(() => "");
            if (field(state, "cluster_state") === "ok") return { promoted: replica };
          }
        }
        await Bun.sleep(50);
      }
      throw new Error(`no replica of ${port} took over within 20 s`);
    },
    async restart(port) {
      if (procs.has(port)) return;
      const i = ports.indexOf(port);
      procs.set(port, await launch(port, busPorts[i], dir));
      await waitHealthy();
    },
    async killAll() {
      await Promise.all([...procs.values()].map((p) => p.stop("SIGKILL")));
      procs.clear();
    },
    async restartAll() {
      await Promise.all(ports.filter((p) => !procs.has(p)).map(async (port) => procs.set(port, await launch(port, busPorts[ports.indexOf(port)], dir))));
      await waitHealthy();
    },
    stop,
  };
}

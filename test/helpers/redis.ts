import { spawnManaged, type ManagedProcess } from "./processes";

/** A throwaway redis-server on a free port (never 6379), without persistence. */
export type TestRedis = {
  port: number;
  url: string;
  /** Kills redis-server (SIGKILL: as abrupt as a crash). */
  kill(): Promise<void>;
  /** Starts it again on the same port (after kill). */
  restart(): Promise<void>;
  stop(): Promise<void>;
};

export async function freePort(): Promise<number> {
  const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = listener.port;
  listener.stop(true);
  return port;
}

/** Resolves true once something on the port answers PING with PONG. */
export async function redisAnswers(port: number, timeoutMs = 1_000): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    let done = false;
    const finish = (ok: boolean, socket?: { end(): void }) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket?.end();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        open(socket) {
          socket.write("PING\r\n");
        },
        data(socket, data) {
          finish(data.toString().startsWith("+PONG"), socket);
        },
        error() {
          finish(false);
        },
        connectError() {
          finish(false);
        },
        close() {
          finish(false);
        },
      },
    }).catch(() => finish(false));
  });
}

async function launch(port: number): Promise<ManagedProcess> {
  if (port === 6379) throw new Error("refusing to use port 6379");
  const proc = spawnManaged(`redis-server :${port}`, [
    "redis-server",
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--save",
    "",
    "--appendonly",
    "no",
    "--daemonize",
    "no",
    "--loglevel",
    "warning",
  ]);
  return answering(proc, port);
}

/** The started redis-server once it answers PING; killed (and an error) if it does not within 5 s. */
export async function answering(proc: ManagedProcess, port: number): Promise<ManagedProcess> {
  const deadline = Date.now() + 5_000;
  while (Date.now() < deadline) {
    if (proc.proc.exitCode !== null) break;
    if (await redisAnswers(port, 200)) return proc;
    await Bun.sleep(20);
  }
  await proc.stop("SIGKILL");
  throw new Error(`${proc.name} did not answer on port ${port}: ${proc.stderr()}`);
}

export async function startRedis(): Promise<TestRedis> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    if (port === 6379) continue;
    try {
      let proc: ManagedProcess | null = await launch(port);
      return {
        port,
        url: `redis://127.0.0.1:${port}`,
        async kill() {
          await proc?.stop("SIGKILL");
          proc = null;
        },
        async restart() {
          if (proc) return;
          proc = await launch(port);
        },
        async stop() {
          await proc?.stop("SIGTERM");
          proc = null;
        },
      };
    } catch (err) {
      lastError = err; // the port may have been taken between probe and bind; try another
    }
  }
  throw lastError instanceof Error ? lastError : new Error(String(lastError));
}

import { Elysia, t } from "elysia";
import type { AppDeps } from "../../deps";
import { ServiceUnavailable } from "../../errors";

/** Liveness and readiness, for load balancers and orchestrators. */
export function healthModule(deps: Pick<AppDeps, "db" | "redisReady">) {
  return new Elysia({ name: "health" })
    .get("/health", () => ({ status: "ok" as const }), {
      response: t.Object({ status: t.Literal("ok") }),
      detail: { summary: "Liveness: 200 while the process is up", tags: ["health"] },
    })
    .get(
      "/ready",
      async () => {
        const [database, redis] = await Promise.all([deps.db.ping(), deps.redisReady ? deps.redisReady() : Promise.resolve(null)]);
        if (!database || redis === false) {
          throw new ServiceUnavailable(`not ready: database ${database ? "up" : "down"}${redis === null ? "" : `, redis ${redis ? "up" : "down"}`}`);
        }
        return { status: "ready" as const, database: "up" as const, redis: redis === null ? ("not configured" as const) : ("up" as const) };
      },
      { detail: { summary: "Readiness: 200 when the database (and Redis, if configured) answer, 503 otherwise", tags: ["health"] } },
    );
}

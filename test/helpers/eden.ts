import { treaty } from "@elysiajs/eden";
import type { App } from "../../src/app";

/** A typed client of the app (Eden treaty): paths, bodies, queries and responses checked by tsc. */
export type Api = ReturnType<typeof treaty<App>>;

/** A client for one caller: the bearer token goes on every request. */
export function apiFor(baseUrl: string, token?: string): Api {
  return treaty<App>(baseUrl, token ? { headers: { authorization: `Bearer ${token}` } } : {});
}

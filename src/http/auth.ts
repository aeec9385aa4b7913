import { Elysia } from "elysia";
import { jwt } from "@elysiajs/jwt";
import type { Config } from "../config";
import { Forbidden, Unauthorized } from "../errors";
import { isRole, type Principal, type Role } from "../vocabulary";
import { noteUser } from "./request-context";

export type AuthPluginDeps = {
  config: Pick<Config, "JWT_SECRET" | "JWT_TTL_SECONDS">;
  /** The user's role as stored now; null when there is no such user (deleted), so its tokens stop working. */
  currentRole(userId: string): Promise<string | null>;
};

/**
 * The auth plugin every feature uses (built once by the composition root): JWT signing and the `auth` macro. A route declares who may call it next to its definition:
 * `{ auth: true }` (any signed-in user) or `{ auth: ['restaurant', 'admin'] }`; the handler
 * then receives `principal`.
 */
export function authPlugin(deps: AuthPluginDeps) {
  const { config, currentRole } = deps;
  return new Elysia({ name: "auth-guard", seed: config.JWT_SECRET })
    .use(jwt({ name: "jwt", secret: config.JWT_SECRET, alg: "HS256", exp: `${config.JWT_TTL_SECONDS}s` }))
    .derive({ as: "global" }, ({ jwt }) => ({
      /** Signs a token for a user; the only place tokens are made. */
      issueToken: (principal: Principal) => jwt.sign({ sub: principal.id, role: principal.role }),
      /** Verifies a raw token (HS256 only); null when absent, malformed, expired, forged, or its user is gone or has another role. */
      verifyToken: async (token: string | undefined | null): Promise<Principal | null> => {
        if (!token) return null;
        const payload = await jwt.verify(token, { algorithms: ["HS256"] }).catch(() => false as const);
        if (!payload || typeof payload.sub !== "string" || !isRole(payload.role) || typeof payload.exp !== "number") return null;
        if ((await currentRole(payload.sub)) !== payload.role) return null;
        noteUser(payload.sub); // the access log and later log lines of this request name the caller
        return { id: payload.sub, role: payload.role };
      },
    }))
    .macro({
      auth: (allowed: true | readonly Role[]) => ({
        async resolve({ headers, verifyToken }) {
          const header = headers.authorization;
          const match = header ? /^Bearer\s+(\S+)$/i.exec(header) : null;
          if (!match) throw new Unauthorized("missing bearer token (Authorization: Bearer <token>)");
          const principal = await verifyToken(match[1]);
          if (!principal) throw new Unauthorized("invalid or expired token");
          if (allowed !== true && !allowed.includes(principal.role)) {
            throw new Forbidden(`role ${principal.role} may not do this (allowed: ${allowed.join(", ")})`);
          }
          return { principal };
        },
      }),
    });
}

/** The built auth plugin, as features receive it (its macro and token helpers typed). */
export type AuthPlugin = ReturnType<typeof authPlugin>;

import { Elysia } from "elysia";
import { jwt } from "@elysiajs/jwt";
import { Forbidden, Unauthorized } from "./errors";
import { noteUser } from "./request-context";

export const ROLES = ["customer", "restaurant", "courier", "admin"] as const;
export type Role = (typeof ROLES)[number];

/** Who is calling, as proven by the token. */
export type Principal = { id: string; role: Role };

function isRole(value: unknown): value is Role {
  return typeof value === "string" && (ROLES as readonly string[]).includes(value);
}

export type TokenOptions = {
  secret: string;
  ttlSeconds: number;
  /** The user's role as stored now; null when there is no such user (deleted): its tokens stop working. */
  currentRole: (userId: string) => Promise<Role | null>;
};

/**
 * JWT signing and the `auth` macro. A route declares who may call it next to its definition:
 * `{ auth: true }` (any signed-in user) or `{ auth: ['restaurant', 'admin'] }`; the handler
 * then receives `principal`.
 */
export function authPlugin(opts: TokenOptions) {
  return new Elysia({ name: "auth-guard", seed: opts.secret })
    .use(jwt({ name: "jwt", secret: opts.secret, alg: "HS256", exp: `${opts.ttlSeconds}s` }))
    .derive({ as: "global" }, ({ jwt }) => ({
      /** Signs a token for a user; the only place tokens are made. */
      issueToken: (principal: Principal) => jwt.sign({ sub: principal.id, role: principal.role }),
      /** Verifies a raw token (HS256 only); null when absent, malformed, expired, forged, or its user is gone or has another role. */
      verifyToken: async (token: string | undefined | null): Promise<Principal | null> => {
        if (!token) return null;
        const payload = await jwt.verify(token, { algorithms: ["HS256"] }).catch(() => false as const);
        if (!payload || typeof payload.sub !== "string" || !isRole(payload.role) || typeof payload.exp !== "number") return null;
        if ((await opts.currentRole(payload.sub)) !== payload.role) return null;
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

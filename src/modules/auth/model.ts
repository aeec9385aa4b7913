import { t } from "elysia";
import { literalUnion, role as roleSchema, SELF_ROLES, type Role } from "../../vocabulary";

/** Auth schemas, as in API.md (Auth). Types derive from them. */
export namespace AuthModel {
  /** Roles a user may pick at registration; admins only come from the start-up bootstrap. */
  export const selfRole = literalUnion(SELF_ROLES, { error: "role must be customer, restaurant or courier" });
  export type selfRole = typeof selfRole.static;

  export const role = roleSchema;
  export type role = Role;

  /** A user as the API shows it: never the password hash. */
  export const user = t.Object({
    id: t.String(),
    email: t.String(),
    name: t.String(),
    role,
  });
  export type user = typeof user.static;

  export const register = t.Object(
    {
      email: t.String({ format: "email", maxLength: 254 }),
      password: t.String({ minLength: 8, maxLength: 128 }),
      name: t.String({ minLength: 1, maxLength: 100 }),
      role: selfRole,
    }
  );
  export type register = typeof register.static;

  export const login = t.Object({
    email: t.String({ minLength: 1, maxLength: 254 }),
    password: t.String({ minLength: 1, maxLength: 128 }),
  });
  export type login = typeof login.static;

  export const session = t.Object({ token: t.String(), user });
  export type session = typeof session.static;
}

/** Emails compare case-insensitively: stored and looked up in this form. */
export function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
}

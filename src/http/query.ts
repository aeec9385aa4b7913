import type { TObject, TSchema } from "@sinclair/typebox";

/** Number or integer, also as Elysia's string-or-number unions (t.Integer, t.Numeric). */
function isNumeric(s: TSchema): boolean {
  return s.type === "number" || s.type === "integer" || (Array.isArray(s.anyOf) && s.anyOf.some((m: TSchema) => isNumeric(m)));
}

/**
 * Elysia coerces numeric query strings inside a transform that reports range errors without
 * the parameter's name (path "/"). Converting them to numbers first lets the normal schema
 * check run and name the parameter: use as the route's `transform` hook.
 */
export function numericQuery(schema: TObject) {
  const numeric = Object.entries(schema.properties)
    .filter(([, s]) => isNumeric(s))
    .map(([key]) => key);
  return ({ query }: { query: Record<string, unknown> }) => {
    for (const key of numeric) {
      const raw = query[key];
      if (typeof raw !== "string" || raw.trim() === "") continue;
      const n = Number(raw);
      if (!Number.isNaN(n)) query[key] = n;
    }
  };
}

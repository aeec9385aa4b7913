import type { TSchema } from "@sinclair/typebox";
import type { FieldError } from "../errors";

/**
 * Input rules that hold for every route, checked before schema validation:
 * - no field the schema does not know, at any depth (Elysia would drop it silently, so a
 *   typo or a client sending `ownerId` or `totalCents` would look accepted);
 * - no string (value or field name) that is not well-formed Unicode or that carries control
 *   characters (NUL and the other C0/C1 controls except tab, CR, LF) or bidirectional
 *   embedding/override/isolate controls (U+202A–U+202E, U+2066–U+2069), which can make a
 *   name display as something else; right-to-left text and the LRM/RLM/ALM marks are fine;
 * - JSON nested at most MAX_JSON_DEPTH deep (much deeper input makes the validator's error
 *   report itself fail).
 */
export const MAX_JSON_DEPTH = 32;
const MAX_ERRORS = 20;

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const FORBIDDEN_CHAR = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]/;

/** Why a string is refused, or null. */
export function stringProblem(s: string): string | null {
  if (LONE_SURROGATE.test(s)) return "is not well-formed Unicode (lone surrogate)";
  const bad = FORBIDDEN_CHAR.exec(s);
  if (bad) return `contains the control character U+${bad[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, "0")}`;
  return null;
}

/** Depth of a parsed JSON value (a scalar is 0), without recursion; stops counting past `limit`. */
export function jsonDepth(value: unknown, limit = MAX_JSON_DEPTH): number {
  let deepest = 0;
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v !== "object") continue;
    const d = depth + 1;
    if (d > deepest) deepest = d;
    if (deepest > limit) return deepest;
    for (const child of Array.isArray(v) ? v : Object.values(v)) stack.push([child, d]);
  }
  return deepest;
}

const pointer = (key: string) => key.replaceAll("~", "~0").replaceAll("/", "~1");

type Shape = { properties: Record<string, TSchema>; open: boolean };

function isObjectSchema(s: TSchema): boolean {
  return s.type === "object" || (Array.isArray(s.allOf) && s.allOf.some(isObjectSchema));
}

function shapeOf(s: TSchema): Shape | undefined {
  if (s.type === "object") {
    const extra = s.additionalProperties;
    return { properties: (s.properties as Record<string, TSchema> | undefined) ?? {}, open: extra === true || (typeof extra === "object" && extra !== null) || s.patternProperties !== undefined };
  }
  if (Array.isArray(s.allOf)) {
    const parts = (s.allOf as TSchema[]).map(shapeOf).filter((p): p is Shape => p !== undefined);
    if (parts.length === 0) return undefined;
    return { properties: Object.assign({}, ...parts.map((p) => p.properties)), open: parts.some((p) => p.open) };
  }
  return undefined;
}

/** The object shape a value is checked against; of a union, the member that knows most of its keys. */
function objectShape(schema: TSchema | undefined, value: object): Shape | undefined {
  if (!schema) return undefined;
  const direct = shapeOf(schema);
  if (direct) return direct;
  const members = (schema.anyOf ?? schema.oneOf) as TSchema[] | undefined;
  if (!Array.isArray(members)) return undefined;
  const keys = Object.keys(value);
  let best: Shape | undefined;
  let bestUnknown = Number.POSITIVE_INFINITY;
  for (const member of members.filter(isObjectSchema)) {
    const shape = shapeOf(member);
    if (!shape) continue;
    const unknown = shape.open ? 0 : keys.filter((k) => !Object.hasOwn(shape.properties, k)).length;
    if (unknown < bestUnknown) [best, bestUnknown] = [shape, unknown];
  }
  return best;
}

function itemsOf(schema: TSchema | undefined): TSchema | undefined {
  if (!schema) return undefined;
  if (schema.type === "array") return typeof schema.items === "object" && !Array.isArray(schema.items) ? (schema.items as TSchema) : undefined;
  const members = (schema.anyOf ?? schema.oneOf) as TSchema[] | undefined;
  const array = Array.isArray(members) ? members.find((m) => m.type === "array") : undefined;
  return array ? itemsOf(array) : undefined;
}

/**
 * Elysia's t.Integer and t.Numeric also accept numeric strings (meant for query strings); in a
 * JSON body a number sent as a string is the wrong type.
 */
function numbersOnly(schema: TSchema | undefined): boolean {
  const members = schema?.anyOf as TSchema[] | undefined;
  if (!Array.isArray(members)) return false;
  const numeric = (m: TSchema) => m.type === "integer" || m.type === "number";
  return members.some(numeric) && members.every((m) => numeric(m) || (m.type === "string" && (m.format === "integer" || m.format === "numeric")));
}

function walk(schema: TSchema | undefined, value: unknown, path: string, out: FieldError[]): void {
  if (out.length >= MAX_ERRORS) return;
  if (typeof value === "string") {
    if (numbersOnly(schema)) {
      out.push({ path: path || "/", message: "expected a number, not a string" });
      return;
    }
    const problem = stringProblem(value);
    if (problem) out.push({ path: path || "/", message: problem });
    return;
  }
  if (value === null || typeof value !== "object") return;
  if (Array.isArray(value)) {
    const items = itemsOf(schema);
    for (let i = 0; i < value.length && out.length < MAX_ERRORS; i++) walk(items, value[i], `${path}/${i}`, out);
    return;
  }
  const shape = objectShape(schema, value);
  for (const [key, child] of Object.entries(value)) {
    if (out.length >= MAX_ERRORS) return;
    const at = `${path}/${pointer(key)}`;
    const keyProblem = stringProblem(key);
    if (keyProblem) {
      out.push({ path: at, message: `field name ${keyProblem}` });
      continue;
    }
    if (shape && !shape.open && !Object.hasOwn(shape.properties, key)) {
      out.push({ path: at, message: "unknown field" });
      continue;
    }
    walk(shape?.properties[key], child, at, out);
  }
}

/**
 * Unknown fields (against `schema`, when the route has one) and refused strings in a parsed
 * JSON body, as field errors; empty when the body passes.
 */
export function bodyProblems(schema: TSchema | undefined, body: unknown): FieldError[] {
  if (jsonDepth(body) > MAX_JSON_DEPTH) return [{ path: "/", message: `nested more than ${MAX_JSON_DEPTH} levels deep` }];
  // Elysia lets `null` or `[]` through where every field is optional; a body is an object or nothing.
  if (schema && shapeOf(schema) && (body === null || typeof body !== "object" || Array.isArray(body))) return [{ path: "/", message: "expected a JSON object" }];
  const out: FieldError[] = [];
  walk(schema, body, "", out);
  return out;
}

/** Refused strings among query or path parameters (values may repeat as arrays). */
export function parameterProblems(values: Record<string, unknown> | undefined): FieldError[] {
  const out: FieldError[] = [];
  if (!values) return out;
  for (const [key, value] of Object.entries(values)) {
    for (const v of Array.isArray(value) ? value : [value]) {
      if (typeof v !== "string") continue;
      const problem = stringProblem(key) ?? stringProblem(v);
      if (problem) out.push({ path: `/${pointer(key)}`, message: problem });
    }
  }
  return out.slice(0, MAX_ERRORS);
}

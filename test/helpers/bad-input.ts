/**
 * Generated malformed requests and WebSocket frames (issue 6, bad input). Operations come
 * from the server's own OpenAPI document, so a new route is covered as soon as it exists:
 * its body, query, path and header schemas say what a malformed value is. Everything is
 * drawn from a seeded generator: a failure names its seed and case, and reruns the same.
 */

export type JsonSchema = {
  type?: string | string[];
  format?: string;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  patternProperties?: Record<string, JsonSchema>;
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  allOf?: JsonSchema[];
  enum?: unknown[];
  const?: unknown;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  minItems?: number;
  maxItems?: number;
  default?: unknown;
};

export type Operation = {
  method: string;
  /** OpenAPI path, e.g. /orders/{id}. */
  path: string;
  pathParams: string[];
  query: Array<{ name: string; required: boolean; schema: JsonSchema }>;
  headers: Array<{ name: string; required: boolean; schema: JsonSchema }>;
  body: JsonSchema | null;
  secured: boolean;
};

type OpenApiParameter = { name: string; in: string; required?: boolean; schema?: JsonSchema };
type OpenApiOperation = { tags?: string[]; parameters?: OpenApiParameter[]; requestBody?: { content?: Record<string, { schema?: JsonSchema }> }; security?: unknown[] };
export type OpenApiDocument = { paths: Record<string, Record<string, OpenApiOperation>> };

const HTTP_METHODS = ["get", "post", "put", "patch", "delete"];

/** The HTTP operations of an OpenAPI document (the WebSocket entry is not one). */
export function operationsOf(doc: OpenApiDocument): Operation[] {
  const out: Operation[] = [];
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      if (!HTTP_METHODS.includes(method)) continue;
      // The WebSocket upgrade has its own tests (frames, tokens, topics); it is not a JSON route.
      if (op.tags?.includes("websocket")) continue;
      const params = op.parameters ?? [];
      out.push({
        method: method.toUpperCase(),
        path,
        pathParams: [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]),
        query: params.filter((p) => p.in === "query").map((p) => ({ name: p.name, required: p.required === true, schema: p.schema ?? {} })),
        headers: params.filter((p) => p.in === "header").map((p) => ({ name: p.name.toLowerCase(), required: p.required === true, schema: p.schema ?? {} })),
        body: op.requestBody?.content?.["application/json"]?.schema ?? null,
        secured: Array.isArray(op.security) && op.security.length > 0,
      });
    }
  }
  return out;
}

// ---------------------------------------------------------------- randomness

export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0 || 1;
  }
  /** mulberry32 */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  between(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error("pick from nothing");
    return items[this.int(items.length)];
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

// ---------------------------------------------------------------- schema reading

type JsonType = "string" | "number" | "integer" | "boolean" | "null" | "object" | "array";

/** The JSON types a schema accepts. Elysia's numeric strings (format integer/numeric) count as numbers: bodies take numbers only. */
export function typesOf(s: JsonSchema | undefined): Set<JsonType> {
  const out = new Set<JsonType>();
  if (!s) return new Set(["string", "number", "integer", "boolean", "null", "object", "array"]);
  const members = s.anyOf ?? s.oneOf;
  if (members) {
    for (const m of members) {
      if (m.type === "string" && (m.format === "integer" || m.format === "numeric")) continue;
      for (const t of typesOf(m)) out.add(t);
    }
    return out;
  }
  if (s.allOf) return typesOf(s.allOf[0]);
  if (s.const !== undefined || s.enum) {
    for (const v of s.const !== undefined ? [s.const] : (s.enum ?? [])) out.add(v === null ? "null" : Array.isArray(v) ? "array" : (typeof v as JsonType));
    return out;
  }
  const types = Array.isArray(s.type) ? s.type : s.type ? [s.type] : [];
  for (const t of types) out.add(t as JsonType);
  if (out.has("number")) out.add("integer");
  return out;
}

function jsonType(v: unknown): JsonType {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (typeof v === "number") return Number.isInteger(v) ? "integer" : "number";
  return typeof v as JsonType;
}

/** The schema's own member that describes a value of that type (for unions). */
function memberFor(s: JsonSchema | undefined, v: unknown): JsonSchema | undefined {
  if (!s) return undefined;
  const members = s.anyOf ?? s.oneOf;
  if (!members) return s;
  const t = jsonType(v);
  return members.find((m) => {
    const types = typesOf(m);
    return types.has(t) || (t === "integer" && types.has("number"));
  });
}

function bounds(s: JsonSchema | undefined): { min?: number; max?: number; integer: boolean } {
  const m = s?.anyOf?.find((x) => x.type === "integer" || x.type === "number") ?? s;
  return {
    ...(m?.minimum !== undefined ? { min: m.minimum } : m?.exclusiveMinimum !== undefined ? { min: m.exclusiveMinimum } : {}),
    ...(m?.maximum !== undefined ? { max: m.maximum } : m?.exclusiveMaximum !== undefined ? { max: m.exclusiveMaximum } : {}),
    integer: m?.type === "integer",
  };
}

function objectMember(s: JsonSchema | undefined): JsonSchema | undefined {
  if (!s) return undefined;
  if (s.type === "object") return s;
  return (s.anyOf ?? s.oneOf ?? []).find((m) => m.type === "object");
}

function isOpenObject(s: JsonSchema): boolean {
  return s.additionalProperties === true || (typeof s.additionalProperties === "object" && s.additionalProperties !== null) || s.patternProperties !== undefined;
}

/** A valid value for a schema, best effort (used for routes the test knows no example body for). */
export function sampleOf(s: JsonSchema | undefined, rng: Rng, depth = 0): unknown {
  if (!s || depth > 8) return null;
  if (s.const !== undefined) return s.const;
  if (s.enum) return s.enum[0];
  const members = s.anyOf ?? s.oneOf;
  if (members) {
    const m = members.find((x) => !(x.type === "string" && (x.format === "integer" || x.format === "numeric")) && x.type !== "null") ?? members[0];
    return sampleOf(m, rng, depth + 1);
  }
  const type = Array.isArray(s.type) ? s.type[0] : s.type;
  switch (type) {
    case "object": {
      const out: Record<string, unknown> = {};
      for (const key of s.required ?? []) out[key] = sampleOf(s.properties?.[key], rng, depth + 1);
      return out;
    }
    case "array":
      return Array.from({ length: Math.max(1, s.minItems ?? 0) }, () => sampleOf(s.items, rng, depth + 1));
    case "integer": {
      const b = bounds(s);
      return Math.ceil(b.min ?? 0) + (b.max !== undefined && b.max > (b.min ?? 0) ? 1 : 0);
    }
    case "number": {
      const b = bounds(s);
      return b.min !== undefined && b.max !== undefined ? (b.min + b.max) / 2 : (b.min ?? 0) + 1;
    }
    case "boolean":
      return true;
    case "string":
      if (s.format === "email") return `sample-${rng.int(1e9)}@example.com`;
      if (s.format === "date-time") return new Date().toISOString();
      return "a".repeat(Math.max(1, s.minLength ?? 1));
    default:
      return null;
  }
}

// ---------------------------------------------------------------- slots in a body

type Slot = { path: Array<string | number>; schema: JsonSchema | undefined; value: unknown };

/** Every position in a body with the schema that governs it (root included). */
function slotsOf(schema: JsonSchema | undefined, value: unknown, path: Array<string | number> = [], out: Slot[] = []): Slot[] {
  out.push({ path, schema, value });
  const member = memberFor(schema, value);
  if (Array.isArray(value)) value.forEach((v, i) => slotsOf(member?.items, v, [...path, i], out));
  else if (value !== null && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) slotsOf(objectMember(member)?.properties?.[k], v, [...path, k], out);
  }
  return out;
}

function setAt(root: unknown, path: Array<string | number>, value: unknown): unknown {
  if (path.length === 0) return value;
  const copy: unknown = structuredClone(root);
  let node = copy as Record<string | number, unknown>;
  for (const key of path.slice(0, -1)) node = node[key] as Record<string | number, unknown>;
  node[path[path.length - 1]] = value;
  return copy;
}

function deleteAt(root: unknown, path: Array<string | number>): unknown {
  const copy: unknown = structuredClone(root);
  let node = copy as Record<string | number, unknown>;
  for (const key of path.slice(0, -1)) node = node[key] as Record<string | number, unknown>;
  delete node[path[path.length - 1]];
  return copy;
}

const pointer = (path: Array<string | number>) => "/" + path.map((p) => String(p).replaceAll("~", "~0").replaceAll("/", "~1")).join("/");

// ---------------------------------------------------------------- values

/** Characters the server refuses in any string (see src/http/input.ts), and how to name them. */
export const REFUSED_CHARACTERS: Array<[string, string]> = [
  ["\uD800", "lone high surrogate"],
  ["\uDFFF", "lone low surrogate"],
  ["\u0000", "NUL"],
  ["\u0007", "BEL"],
  ["\u001B", "ESC"],
  ["\u007F", "DEL"],
  ["\u0085", "C1 NEL"],
  ["\u202E", "RLO (right-to-left override)"],
  ["\u202A", "LRE (left-to-right embedding)"],
  ["\u2067", "RLI (right-to-left isolate)"],
  ["\u2069", "PDI"],
];

const WRONG_TYPED: unknown[] = [0, -1, 1.5, 1e21, "text", "", "5", true, false, null, [], [1, "a"], {}, { a: 1 }];

function wrongTypedValues(schema: JsonSchema | undefined): unknown[] {
  const ok = typesOf(schema);
  return WRONG_TYPED.filter((v) => {
    const t = jsonType(v);
    if (ok.has(t)) return false;
    if (t === "integer" && ok.has("number")) return false;
    return true;
  });
}

function outOfRange(schema: JsonSchema | undefined): Array<[unknown, string]> {
  const b = bounds(schema);
  const out: Array<[unknown, string]> = [];
  if (b.min !== undefined) out.push([b.integer ? b.min - 1 : b.min - 0.001, `below minimum ${b.min}`], [-1e308, "-1e308"]);
  if (b.max !== undefined) out.push([b.integer ? b.max + 1 : b.max + 0.001, `above maximum ${b.max}`], [1e308, "1e308"]);
  if (b.integer) out.push([(b.min ?? 0) + 0.5, "fractional"], [2 ** 63, "2^63"]);
  if (b.min !== undefined && b.min >= 0) out.push([-1, "negative"]);
  return out;
}

/** Raw JSON number texts that are not numbers (NaN, Infinity) or overflow to Infinity. */
const NON_NUMBERS = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "0x10", "01", ".5", "+1"];

function nested(depth: number, kind: "array" | "object"): string {
  return kind === "array" ? "[".repeat(depth) + "]".repeat(depth) : '{"a":'.repeat(depth) + "1" + "}".repeat(depth);
}

// ---------------------------------------------------------------- requests

export type BadRequest = {
  label: string;
  method: string;
  /** Path and query, already encoded. */
  target: string;
  headers: Record<string, string>;
  /** The body as sent: text, bytes, or a stream sent chunked (no Content-Length). */
  body?: string | Uint8Array | (() => ReadableStream<Uint8Array>);
  /** Answers from Bun's HTTP layer itself (e.g. 431 for headers over its limit) carry no problem body. */
  transportStatus?: number[];
};

export type Caller = { label: string; token: string | null };

export type GenerationContext = {
  rng: Rng;
  /** A valid body for the operation (the world's ids), or undefined to synthesise one from the schema. */
  validBody(op: Operation): unknown;
  /** A real value for a path parameter. */
  pathValue(op: Operation, name: string): string;
  /** A valid query for the operation (required parameters set). */
  validQuery(op: Operation): Record<string, string>;
  callers: Caller[];
  /** Tokens the server must refuse (expired, forged, ...). */
  hostileTokens: Array<[string, string]>;
};

type Draft = {
  label: string;
  /** A JSON value to send, or the exact bytes (invalid JSON, streams). Neither: the valid body, if the route takes one. */
  body?: unknown;
  rawBody?: string | Uint8Array | (() => ReadableStream<Uint8Array>);
  noContentType?: boolean;
  query?: Record<string, string>;
  pathValues?: Record<string, string>;
  headers?: Record<string, string>;
  caller?: Caller;
  transportStatus?: number[];
};

function target(op: Operation, pathValues: Record<string, string>, query: Record<string, string>): string {
  let path = op.path;
  for (const name of op.pathParams) path = path.replace(`{${name}}`, pathValues[name]);
  const qs = Object.entries(query)
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
    .join("&");
  return qs ? `${path}?${qs}` : path;
}

/** Like `target`, but the path values are inserted as given (already encoded, possibly malformed). */
function rawTarget(op: Operation, pathValues: Record<string, string>, query: string): string {
  let path = op.path;
  for (const name of op.pathParams) path = path.replace(`{${name}}`, pathValues[name]);
  return query ? `${path}?${query}` : path;
}

function stream(text: string, chunk = 8192): () => ReadableStream<Uint8Array> {
  const bytes = new TextEncoder().encode(text);
  return () =>
    new ReadableStream({
      start(ctl) {
        for (let i = 0; i < bytes.length; i += chunk) ctl.enqueue(bytes.subarray(i, i + chunk));
        ctl.close();
      },
    });
}

/** Every kind of malformed variant of one operation, as thunks (drawn lazily, so big bodies are built only when picked). */
function draftsFor(op: Operation, ctx: GenerationContext): Array<() => Draft> {
  const { rng } = ctx;
  const drafts: Array<() => Draft> = [];
  const name = `${op.method} ${op.path}`;

  if (op.body) {
    const base = () => ctx.validBody(op) ?? sampleOf(op.body ?? undefined, rng);

    drafts.push(() => {
      const b = base();
      const slot = rng.pick(slotsOf(op.body ?? undefined, b));
      const wrong = wrongTypedValues(slot.schema);
      const v = rng.pick(wrong.length > 0 ? wrong : [Symbol.for("none")]);
      if (typeof v === "symbol") return { label: `${name} body ${pointer(slot.path)}: no wrong type exists; root array instead`, body: [b] };
      return { label: `${name} body ${pointer(slot.path)}: wrong type ${JSON.stringify(v)}`, body: setAt(b, slot.path, v) };
    });
    drafts.push(() => {
      const b = base();
      const withRequired = slotsOf(op.body ?? undefined, b).filter((s) => {
        const obj = objectMember(memberFor(s.schema, s.value));
        return s.value !== null && typeof s.value === "object" && !Array.isArray(s.value) && (obj?.required?.length ?? 0) > 0;
      });
      if (withRequired.length === 0) return { label: `${name} body: no required field; body null`, rawBody: "null" };
      const slot = rng.pick(withRequired);
      const key = rng.pick(objectMember(memberFor(slot.schema, slot.value))?.required ?? []);
      return { label: `${name} body ${pointer([...slot.path, key])}: missing required field`, body: deleteAt(b, [...slot.path, key]) };
    });
    drafts.push(() => {
      const b = base();
      const objects = slotsOf(op.body ?? undefined, b).filter((s) => {
        const obj = objectMember(memberFor(s.schema, s.value));
        return s.value !== null && typeof s.value === "object" && !Array.isArray(s.value) && obj && !isOpenObject(obj);
      });
      if (objects.length === 0) return { label: `${name} body: no closed object; root string`, body: "x" };
      const slot = rng.pick(objects);
      const key = rng.pick(["isAdmin", "role", "ownerId", "totalCents", "version", "__proto__", "constructor", "$where", "a.b", "", " ", `x${rng.int(1000)}`]);
      const value = rng.pick<unknown>([true, 1, "x", null, { $gt: "" }, ["a"]]);
      const json = JSON.stringify(b);
      // Spliced into the text so `__proto__` arrives as a real key.
      const obj = JSON.stringify(setAt(b, slot.path, { ...(slot.value as object), [`__marker__`]: 0 }));
      const raw = obj.replace(`"__marker__":0`, `${JSON.stringify(key)}:${JSON.stringify(value)}`);
      return { label: `${name} body ${pointer([...slot.path, key])}: unknown field ${JSON.stringify(key)} (base ${json.length} bytes)`, rawBody: raw };
    });
    drafts.push(() => {
      const b = base();
      const strings = slotsOf(op.body ?? undefined, b).filter((s) => typeof s.value === "string");
      if (strings.length === 0) return { label: `${name} body: no string; root huge string`, body: "x".repeat(70_000) };
      const slot = rng.pick(strings);
      const max = memberFor(slot.schema, slot.value)?.maxLength;
      const length = max !== undefined && max < 60_000 && rng.chance(0.7) ? rng.between(max + 1, Math.min(60_000, max + 1 + rng.int(5000))) : rng.pick([70_000, 300_000]);
      return { label: `${name} body ${pointer(slot.path)}: string of ${length} characters (max ${max ?? "none"})`, body: setAt(b, slot.path, "é".repeat(length)) };
    });
    drafts.push(() => {
      const b = base();
      const slot = rng.pick(slotsOf(op.body ?? undefined, b));
      const depth = rng.pick([33, 64, 500, 3000, 20_000]);
      const kind = rng.pick(["array", "object"] as const);
      const marker = JSON.stringify(setAt(b, slot.path, "__nest__"));
      return { label: `${name} body ${pointer(slot.path)}: ${kind}s nested ${depth} deep`, rawBody: marker.replace(`"__nest__"`, nested(depth, kind)) };
    });
    drafts.push(() => {
      const b = base();
      const numbers = slotsOf(op.body ?? undefined, b).filter((s) => typeof s.value === "number");
      if (numbers.length === 0) return { label: `${name} body: no number; NaN at the root`, rawBody: "NaN" };
      const slot = rng.pick(numbers);
      const ranged = outOfRange(memberFor(slot.schema, slot.value));
      if (ranged.length > 0 && rng.chance(0.6)) {
        const [v, why] = rng.pick(ranged);
        return { label: `${name} body ${pointer(slot.path)}: ${why} (${v})`, body: setAt(b, slot.path, v) };
      }
      const text = rng.pick(NON_NUMBERS);
      const bounded = bounds(memberFor(slot.schema, slot.value));
      // 1e400 parses to Infinity: invalid only where the number is bounded.
      const literal = (text === "1e400" || text === "-1e400") && (text.startsWith("-") ? bounded.min === undefined : bounded.max === undefined) ? "NaN" : text;
      return { label: `${name} body ${pointer(slot.path)}: number literal ${literal}`, rawBody: JSON.stringify(setAt(b, slot.path, "__num__")).replace(`"__num__"`, literal) };
    });
    drafts.push(() => {
      const b = base();
      const strings = slotsOf(op.body ?? undefined, b).filter((s) => typeof s.value === "string");
      const [ch, what] = rng.pick(REFUSED_CHARACTERS);
      if (strings.length === 0) return { label: `${name} body: root string with ${what}`, body: `a${ch}b` };
      const slot = rng.pick(strings);
      const s = String(slot.value);
      const at = rng.int(s.length + 1);
      return { label: `${name} body ${pointer(slot.path)}: ${what} inside the string`, body: setAt(b, slot.path, s.slice(0, at) + ch + s.slice(at)) };
    });
    drafts.push(() => {
      const [ch, what] = rng.pick(REFUSED_CHARACTERS);
      const b = base();
      const raw = JSON.stringify(b).replace(/^\{/, `{${JSON.stringify(`k${ch}`)}:1,`);
      return { label: `${name} body: field name with ${what}`, rawBody: raw.startsWith("{") ? raw : `{${JSON.stringify(`k${ch}`)}:1}` };
    });
    drafts.push(() => {
      const root = rng.pick<[string, string]>([["[]", "empty array"], ['"text"', "string"], ["42", "number"], ["null", "null"], ["true", "boolean"], ["[{}]", "array of object"]]);
      return { label: `${name} body: root ${root[1]}`, rawBody: root[0] };
    });
    drafts.push(() => {
      const json = JSON.stringify(base());
      const broken = rng.pick<[string, string]>([
        [json.slice(0, Math.max(1, rng.int(json.length))), "truncated"],
        [json.replace(/\}$/, ",}"), "trailing comma"],
        [json.replaceAll('"', "'"), "single quotes"],
        [`${json}/* comment */`, "comment"],
        [`${json} x`, "trailing garbage"],
        [`${json}${json}`, "two documents"],
        ['{"a":"\u0001"}', "raw control character in a string"],
        ['{"a":"\\x41"}', "bad escape"],
        ['{"a":"\\u12"}', "short unicode escape"],
        ['{"a" 1}', "missing colon"],
        ["{", "open brace"],
        ["", "empty body"],
        [" ", "whitespace only"],
      ]);
      return { label: `${name} body: invalid JSON (${broken[1]})`, rawBody: broken[0] };
    });
    drafts.push(() => ({ label: `${name} body: none at all`, rawBody: "", noContentType: true }));
    drafts.push(() => ({ label: `${name} body: invalid UTF-8 bytes`, rawBody: new Uint8Array([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0xc0, 0xaf, 0x22, 0x7d]) }));
    drafts.push(() => {
      const b = base();
      const json = JSON.stringify(b);
      const kind = rng.pick([
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "application/xml",
        "application/json; charset=utf-16",
        "application/json-patch+json",
        "application/jsonx",
        "none",
      ]);
      let raw: string | Uint8Array = json;
      if (kind === "application/x-www-form-urlencoded") {
        raw = new URLSearchParams(Object.entries(typeof b === "object" && b !== null ? b : {}).map(([k, v]): [string, string] => [k, typeof v === "string" ? v : JSON.stringify(v)])).toString();
      } else if (kind.startsWith("multipart")) {
        raw = `--xyz\r\nContent-Disposition: form-data; name="payload"\r\n\r\n${json}\r\n--xyz--\r\n`;
      } else if (kind === "none") raw = new TextEncoder().encode(json);
      return { label: `${name} body: Content-Type ${kind}`, rawBody: raw, ...(kind === "none" ? { noContentType: true } : { headers: { "content-type": kind } }) };
    });
    drafts.push(() => {
      const b = base();
      const size = rng.pick([64 * 1024 + 1, 100_000, 1 << 20, 8 << 20]);
      const json = JSON.stringify(b);
      const padded = json + " ".repeat(Math.max(0, size - json.length));
      const chunked = rng.chance(0.5);
      return {
        label: `${name} body: ${padded.length} bytes${chunked ? ", chunked without Content-Length" : ""}`,
        rawBody: chunked ? stream(padded) : padded,
      };
    });
  }

  if (op.query.length > 0) {
    const numeric = (q: Operation["query"][number]) => typesOf(q.schema).has("number") || typesOf(q.schema).has("integer");
    drafts.push(() => {
      const query = ctx.validQuery(op);
      const q = rng.pick(op.query);
      const t = typesOf(q.schema);
      let value: string;
      let why: string;
      if (numeric(q)) {
        const ranged = outOfRange(q.schema).filter(([v]) => typeof v === "number" && Number.isFinite(v));
        [value, why] = rng.chance(0.5) && ranged.length > 0 ? (([v, w]) => [String(v), w])(rng.pick(ranged)) : (([v]) => [v, `not a number (${v})`])([rng.pick(["abc", "NaN", "Infinity", "-Infinity", "1e400", "1,5", "12abc", "--1", "[]"])]);
      } else if (t.has("boolean")) {
        [value, why] = [rng.pick(["maybe", "truee", "yes please", "null", "{}"]), "not a boolean"];
      } else if (q.schema.anyOf?.every((m) => m.const !== undefined) || q.schema.enum) {
        [value, why] = [rng.pick(["eaten", "PLACED", "placed ", "*"]), "not one of the values"];
      } else if (q.schema.maxLength !== undefined) {
        [value, why] = ["c".repeat(q.schema.maxLength + 1 + rng.int(2000)), `over maxLength ${q.schema.maxLength}`];
      } else {
        [value, why] = [`x${rng.pick(REFUSED_CHARACTERS)[0]}y`, "refused character"];
      }
      return { label: `${name} query ${q.name}=${value.slice(0, 40)}${value.length > 40 ? "…" : ""}: ${why}`, query: { ...query, [q.name]: value } };
    });
    const required = op.query.filter((q) => q.required);
    if (required.length > 0) {
      drafts.push(() => {
        const q = rng.pick(required);
        const query = { ...ctx.validQuery(op) };
        delete query[q.name];
        return { label: `${name} query: required ${q.name} missing`, query };
      });
    }
    drafts.push(() => {
      const q = rng.pick(op.query);
      const [ch, what] = rng.pick(REFUSED_CHARACTERS.filter(([c]) => !/[\uD800-\uDFFF]/.test(c)));
      return { label: `${name} query ${q.name}: ${what}`, query: { ...ctx.validQuery(op), [q.name]: `a${ch}b` } };
    });
  }

  if (op.pathParams.length > 0) {
    drafts.push(() => {
      const pathValues = Object.fromEntries(op.pathParams.map((p) => [p, encodeURIComponent(ctx.pathValue(op, p))]));
      const p = rng.pick(op.pathParams);
      const [value, why] = rng.pick<[string, string]>([
        ["x".repeat(65), "65 characters"],
        ["x".repeat(5000), "5000 characters"],
        ["%ZZ", "bad percent-encoding"],
        ["%", "lone percent"],
        ["%00", "NUL"],
        ["%E2%80%AE", "RLO"],
        ["%ED%A0%80", "encoded surrogate (invalid UTF-8)"],
        ["..%2F..%2Fetc%2Fpasswd", "encoded traversal"],
        ["0123456789abcdef01234567", "no such id"],
        ["ffffffffffffffffffffffff", "no such id"],
        ["null", "the word null"],
        ["%5Bobject%20Object%5D", "[object Object]"],
        ["%7B%22%24gt%22%3A%22%22%7D", "an operator object"],
      ]);
      pathValues[p] = value;
      return { label: `${name} path {${p}} = ${value.slice(0, 30)}: ${why}`, pathValues };
    });
  }

  if (op.secured) {
    drafts.push(() => {
      const [what, token] = rng.pick(ctx.hostileTokens);
      return { label: `${name} Authorization: ${what} token`, caller: { label: what, token: null }, headers: { authorization: `Bearer ${token}` } };
    });
    drafts.push(() => {
      const [value, why] = rng.pick<[string, string]>([
        ["Bearer", "Bearer without token"],
        ["Bearer ", "Bearer and a space"],
        ["Basic dXNlcjpwYXNzd29yZA==", "Basic credentials"],
        ["Bearer a.b.c", "three junk segments"],
        [`Bearer ${"A".repeat(6000)}`, "6000-character token"],
        ["Token abc", "unknown scheme"],
        ["Bearer\tabc.def.ghi", "tab separator"],
        ["bearer abc def", "two tokens"],
        ["Bearer é", "latin-1 character"],
      ]);
      return { label: `${name} Authorization: ${why}`, caller: { label: why, token: null }, headers: { authorization: value } };
    });
  }
  for (const h of op.headers) {
    const values: Array<[string, string]> =
      h.name === "if-match"
        ? [["abc", "letters"], ["*", "star"], ['"-1"', "negative"], ['W/"x"', "weak, not a number"], ["99999999999999999999", "20 digits"], ["1, 2", "a list"], ['"1" "2"', "two tags"], ["", "empty"]]
        : h.name === "idempotency-key"
          ? [["", "empty"], ["k".repeat(256), "256 characters"], ["has space", "a space"], ["café", "latin-1"], ["a\tb", "a tab"]]
          : [["x".repeat((h.schema.maxLength ?? 1000) + 1), "too long"]];
    drafts.push(() => {
      const [value, why] = rng.pick(values);
      return { label: `${name} header ${h.name}: ${why}`, headers: { [h.name]: value } };
    });
  }
  drafts.push(() => ({ label: `${name} a 200 KB header`, headers: { "x-padding": "p".repeat(200_000) }, transportStatus: [431] }));
  return drafts;
}

/** `count` malformed requests drawn across all operations (each operation in turn, a random kind of damage). */
export function generateRequests(ops: readonly Operation[], count: number, ctx: GenerationContext): BadRequest[] {
  const pools = ops.map((op) => ({ op, drafts: draftsFor(op, ctx) })).filter((p) => p.drafts.length > 1);
  const out: BadRequest[] = [];
  for (let i = 0; i < count; i++) {
    const { op, drafts } = pools[i % pools.length];
    const draft = ctx.rng.pick(drafts)();
    const caller = draft.caller ?? ctx.rng.pick(ctx.callers);
    const headers: Record<string, string> = {};
    if (caller.token) headers.authorization = `Bearer ${caller.token}`;
    let body: BadRequest["body"];
    if (draft.rawBody !== undefined) body = draft.rawBody;
    else if (draft.body !== undefined) body = JSON.stringify(draft.body);
    else if (op.body) body = JSON.stringify(ctx.validBody(op) ?? sampleOf(op.body, ctx.rng));
    if (body !== undefined && !draft.noContentType) headers["content-type"] = "application/json";
    Object.assign(headers, draft.headers);
    const pathValues = draft.pathValues ?? Object.fromEntries(op.pathParams.map((p) => [p, encodeURIComponent(ctx.pathValue(op, p))]));
    const query = draft.query ?? ctx.validQuery(op);
    const qs = Object.entries(query)
      .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
      .join("&");
    out.push({
      label: `#${i} ${draft.label} [caller: ${caller.label}]`,
      method: op.method,
      target: draft.pathValues ? rawTarget(op, pathValues, qs) : target(op, pathValues, query),
      headers,
      ...(body !== undefined ? { body } : {}),
      ...(draft.transportStatus ? { transportStatus: draft.transportStatus } : {}),
    });
  }
  return out;
}

// ---------------------------------------------------------------- WebSocket frames

export type BadFrame = { label: string; data: string | Uint8Array };

/** Malformed client frames: binary, invalid JSON, wrong shapes, unknown ops, wrong types, refused strings. */
export function generateFrames(count: number, rng: Rng, ids: { orderId: string; restaurantId: string; courierId: string }, maxFrameBytes: number): BadFrame[] {
  const topics = [`order:${ids.orderId}`, `restaurant:${ids.restaurantId}`, `courier:${ids.courierId}`];
  const kinds: Array<() => BadFrame> = [
    () => ({ label: "binary frame", data: new Uint8Array(Array.from({ length: rng.between(1, 64) }, () => rng.int(256))) }),
    () => {
      const text = rng.pick(['{"op":"ping"', "{op:'ping'}", "ping", '{"op":"ping",}', "", " ", '{"op":"subscribe","topic":"order:1"}}', "\u0000", '{"op":NaN}', '{"op":"ping"}x']);
      return { label: `invalid JSON ${JSON.stringify(text)}`, data: text };
    },
    () => {
      const text = rng.pick(["[]", "42", '"ping"', "null", "true", '[{"op":"ping"}]']);
      return { label: `JSON that is not an object: ${text}`, data: text };
    },
    () => {
      const op = rng.pick(["pong", "SUBSCRIBE", "sub", "", "__proto__", "constructor", "toString", "hasOwnProperty", "publish", "location "]);
      return { label: `unknown op ${JSON.stringify(op)}`, data: JSON.stringify({ op, topic: rng.pick(topics) }) };
    },
    () => ({ label: "no op", data: JSON.stringify({ topic: rng.pick(topics) }) }),
    () => {
      const [value, why] = rng.pick<[unknown, string]>([[42, "number"], [null, "null"], [["order:1"], "array"], [{ id: 1 }, "object"], ["", "empty"], ["t".repeat(101), "101 characters"], ["x".repeat(5000), "5000 characters"]]);
      return { label: `subscribe with topic ${why}`, data: JSON.stringify({ op: rng.pick(["subscribe", "unsubscribe"]), topic: value }) };
    },
    () => {
      const [raw, why] = rng.pick<[string, string]>([['"5"', "numeric string"], ["-1", "negative"], ["1.5", "fractional"], ["1e400", "Infinity"], ["NaN", "NaN literal"], ["null", "null"], ['{"$gt":0}', "operator object"], ["9007199254740993", "past 2^53"]]);
      const text = `{"op":"subscribe","topic":${JSON.stringify(rng.pick(topics))},"since":${raw}}`;
      // 2^53+1 parses to a valid-looking integer; it must not crash whatever it means.
      return { label: `subscribe with since ${why}`, data: why === "past 2^53" ? text.replace("9007199254740993", "-9007199254740993") : text };
    },
    () => {
      const [field, raw, why] = rng.pick<[string, string, string]>([
        ["lat", "91", "lat 91"],
        ["lat", "-90.0001", "lat below -90"],
        ["lng", "180.5", "lng 180.5"],
        ["lat", "1e400", "lat Infinity"],
        ["lng", '"2.35"', "lng as a string"],
        ["lat", "null", "lat null"],
        ["heading", "361", "heading 361"],
        ["speedMps", "-1", "negative speed"],
        ["speedMps", "151", "speed 151 m/s"],
        ["at", '"not a date"', "at not a date"],
        ["at", "-5", "at negative"],
        ["at", '"' + "9".repeat(41) + '"', "at 41 characters"],
      ]);
      const base: Record<string, string> = { op: '"location"', lat: "48.85", lng: "2.35" };
      base[field] = raw;
      return { label: `location with ${why}`, data: `{${Object.entries(base).map(([k, v]) => `"${k}":${v}`).join(",")}}` };
    },
    () => {
      const [ch, what] = rng.pick(REFUSED_CHARACTERS);
      return { label: `subscribe to a topic with ${what}`, data: JSON.stringify({ op: "subscribe", topic: `order:${ids.orderId.slice(0, 5)}${ch}` }) };
    },
    () => ({ label: "topic of another kind", data: JSON.stringify({ op: "subscribe", topic: rng.pick(["user:1", "order:", ":x", "orders:1", "restaurant", "*", "order:*", "courier:../x"]) }) }),
    () => {
      const size = rng.pick([maxFrameBytes + 1, maxFrameBytes * 2, maxFrameBytes * 4 - 64]);
      return { label: `frame of ${size} bytes (limit ${maxFrameBytes})`, data: JSON.stringify({ op: "ping", pad: "x".repeat(size) }) };
    },
    () => ({ label: "object nested 10000 deep", data: '{"op":"ping","a":' + nested(10_000, "object") + "}" }),
  ];
  return Array.from({ length: count }, (_, i) => {
    const frame = rng.pick(kinds)();
    return { ...frame, label: `#${i} ${frame.label}` };
  });
}

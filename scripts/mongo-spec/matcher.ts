// "Evaluating Matches" of the unified test format: expected values may contain special
// operators ($$exists, $$type, $$unsetOrMatches, ...); root-level documents may carry extra
// fields, nested ones may not; numbers compare by value across int32/int64/double.
import { BSON } from "mongodb";
import { asDocument, type Doc, hasKey, isDocument, numbersEqual, numericValue, scalarsEqual, show, typeNames } from "./values";

const { EJSON } = BSON;

/** What the matcher needs from the entity map. */
export interface EntityLookup {
  /** The entity's value; throws when absent. */
  get(name: string): unknown;
  /** The logical session id document of a session entity; throws when absent or not a session. */
  sessionLsid(name: string): unknown;
}

export interface MatchOptions {
  /** Whether a top-level document expected value is a root-level document (default true). */
  root?: boolean;
  entities?: EntityLookup;
}

/** Thrown for malformed expectations (an error in the test file, not a mismatch). */
export class MatcherUsageError extends Error {}

const TYPE_NAMES = new Set([
  "double", "string", "object", "array", "binData", "undefined", "objectId", "bool", "date",
  "null", "regex", "dbPointer", "javascript", "symbol", "javascriptWithScope", "int",
  "timestamp", "long", "decimal", "minKey", "maxKey", "number",
]);

/** The operator name when `v` is a document whose first and only key starts with `$$`. */
export function specialOperator(v: unknown): string | null {
  if (!isDocument(v)) return null;
  const keys = Object.keys(v);
  return keys.length === 1 && keys[0].startsWith("$$") ? keys[0] : null;
}

/** Returns null when `actual` matches `expected`, otherwise a reason naming the path. */
export function match(expected: unknown, actual: unknown, opts: MatchOptions = {}): string | null {
  return matchAt(expected, actual, "$", opts.root ?? true, opts.entities);
}

function matchAt(expected: unknown, actual: unknown, path: string, root: boolean, entities?: EntityLookup): string | null {
  const op = specialOperator(expected);
  if (op !== null) return matchOperator(op, (expected as Doc)[op], actual, path, root, entities);

  if (isDocument(expected)) {
    const doc = asDocument(actual);
    if (!doc) return `${path}: expected a document ${show(expected)}, got ${show(actual)}`;
    return matchDocument(expected, doc, path, root, entities);
  }

  if (Array.isArray(expected)) {
    if (!Array.isArray(actual)) return `${path}: expected an array ${show(expected)}, got ${show(actual)}`;
    if (actual.length !== expected.length) {
      return `${path}: expected ${expected.length} element(s), got ${actual.length}: ${show(actual)}`;
    }
    for (let i = 0; i < expected.length; i++) {
      const why = matchAt(expected[i], actual[i], `${path}[${i}]`, false, entities);
      if (why) return why;
    }
    return null;
  }

  if (asDocument(actual) || Array.isArray(actual)) return `${path}: expected ${show(expected)}, got ${show(actual)}`;
  return scalarsEqual(expected, actual) ? null : `${path}: expected ${show(expected)}, got ${show(actual)}`;
}

function matchDocument(expected: Doc, actual: Doc, path: string, root: boolean, entities?: EntityLookup): string | null {
  for (const [key, value] of Object.entries(expected)) {
    const keyPath = `${path}.${key}`;
    const keyOp = specialOperator(value);
    if (keyOp === "$$exists") {
      const want = (value as Doc)[keyOp];
      if (typeof want !== "boolean") throw new MatcherUsageError(`${keyPath}: $$exists needs a boolean`);
      const has = hasKey(actual, key);
      if (has !== want) return `${keyPath}: expected key to ${want ? "exist" : "be absent"}, got ${show(actual[key])}`;
      continue;
    }
    if (keyOp === "$$unsetOrMatches" && !hasKey(actual, key)) continue;
    if (!hasKey(actual, key)) return `${keyPath}: expected ${show(value)}, key is missing`;
    const why = matchAt(value, actual[key], keyPath, false, entities);
    if (why) return why;
  }
  if (!root) {
    const extra = Object.keys(actual).filter((k) => hasKey(actual, k) && !(k in expected));
    if (extra.length) return `${path}: unexpected extra field(s) ${extra.join(", ")} in ${show(actual)}`;
  }
  return null;
}

function matchOperator(
  op: string, arg: unknown, actual: unknown, path: string, root: boolean, entities?: EntityLookup,
): string | null {
  switch (op) {
    case "$$exists":
      // Only meaningful as a field value; handled by the document loop.
      throw new MatcherUsageError(`${path}: $$exists used outside a document field`);
    case "$$type": {
      const wanted = Array.isArray(arg) ? arg : [arg];
      for (const t of wanted) {
        if (typeof t !== "string" || !TYPE_NAMES.has(t)) throw new MatcherUsageError(`${path}: unknown $$type ${show(t)}`);
      }
      if (actual === undefined) return `${path}: expected a value of type ${wanted.join("|")}, key is missing`;
      const have = typeNames(actual);
      return wanted.some((t) => have.includes(t as string))
        ? null
        : `${path}: expected type ${wanted.join("|")}, got ${have.join("|") || "unknown"} (${show(actual)})`;
    }
    case "$$unsetOrMatches":
      if (actual === undefined) return null;
      return matchAt(arg, actual, path, root, entities);
    case "$$matchesEntity": {
      if (typeof arg !== "string") throw new MatcherUsageError(`${path}: $$matchesEntity needs an entity name`);
      if (!entities) throw new MatcherUsageError(`${path}: $$matchesEntity without an entity map`);
      return matchAt(entities.get(arg), actual, path, root, entities);
    }
    case "$$matchesHexBytes": {
      if (typeof arg !== "string" || !/^([0-9a-fA-F]{2})*$/.test(arg)) {
        throw new MatcherUsageError(`${path}: malformed $$matchesHexBytes ${show(arg)}`);
      }
      const hex = hexOf(actual);
      if (hex === null) return `${path}: expected bytes ${arg}, got ${show(actual)}`;
      return hex === arg.toLowerCase() ? null : `${path}: expected bytes ${arg.toLowerCase()}, got ${hex}`;
    }
    case "$$sessionLsid": {
      if (typeof arg !== "string") throw new MatcherUsageError(`${path}: $$sessionLsid needs a session entity name`);
      if (!entities) throw new MatcherUsageError(`${path}: $$sessionLsid without an entity map`);
      const lsid = entities.sessionLsid(arg);
      return matchAt(lsid, actual, path, false, entities) === null
        ? null
        : `${path}: expected lsid of ${arg} ${show(lsid)}, got ${show(actual)}`;
    }
    case "$$lte": {
      const limit = numericValue(arg);
      if (limit === null) throw new MatcherUsageError(`${path}: $$lte needs a number`);
      const value = numericValue(actual);
      if (value === null) return `${path}: expected a number <= ${show(arg)}, got ${show(actual)}`;
      return value < limit || numbersEqual(value, limit) ? null : `${path}: expected <= ${show(arg)}, got ${show(actual)}`;
    }
    case "$$matchAsDocument": {
      if (typeof actual !== "string") return `${path}: expected an extended JSON string, got ${show(actual)}`;
      let parsed: unknown;
      try {
        parsed = EJSON.parse(actual, { relaxed: true });
      } catch (e) {
        return `${path}: actual is not extended JSON (${(e as Error).message})`;
      }
      return matchAt(arg, parsed, path, false, entities);
    }
    case "$$matchAsRoot":
      return matchAt(arg, actual, path, true, entities);
    default:
      throw new MatcherUsageError(`${path}: unsupported special operator ${op}`);
  }
}

function hexOf(v: unknown): string | null {
  if (typeof v === "string") return Buffer.from(v, "latin1").toString("hex");
  if (ArrayBuffer.isView(v)) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("hex");
  return null;
}

/**
 * Exact comparison used for `outcome` collection contents: no special operators, no extra
 * fields at any level, key order ignored, numbers by value (JSON test data cannot carry
 * int-versus-double distinctions once parsed into JS numbers).
 */
export function matchExact(expected: unknown, actual: unknown, path = "$"): string | null {
  if (isDocument(expected)) {
    if (!isDocument(actual)) return `${path}: expected a document ${show(expected)}, got ${show(actual)}`;
    const ek = Object.keys(expected).filter((k) => hasKey(expected, k));
    const ak = Object.keys(actual).filter((k) => hasKey(actual, k));
    const missing = ek.filter((k) => !hasKey(actual, k));
    if (missing.length) return `${path}: missing field(s) ${missing.join(", ")} in ${show(actual)}`;
    const extra = ak.filter((k) => !hasKey(expected, k));
    if (extra.length) return `${path}: unexpected extra field(s) ${extra.join(", ")} in ${show(actual)}`;
    for (const k of ek) {
      const why = matchExact(expected[k], actual[k], `${path}.${k}`);
      if (why) return why;
    }
    return null;
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual)) return `${path}: expected an array ${show(expected)}, got ${show(actual)}`;
    if (actual.length !== expected.length) {
      return `${path}: expected ${expected.length} element(s), got ${actual.length}: ${show(actual)}`;
    }
    for (let i = 0; i < expected.length; i++) {
      const why = matchExact(expected[i], actual[i], `${path}[${i}]`);
      if (why) return why;
    }
    return null;
  }
  if (isDocument(actual) || Array.isArray(actual)) return `${path}: expected ${show(expected)}, got ${show(actual)}`;
  return scalarsEqual(expected, actual) ? null : `${path}: expected ${show(expected)}, got ${show(actual)}`;
}

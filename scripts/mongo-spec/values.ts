// Value helpers shared by the matcher and the runner. BSON values are recognised by
// `_bsontype`, never `instanceof`: the driver loads bson's CJS build, tests may load the ESM one.
import { BSON } from "mongodb";

const { EJSON } = BSON;

export type Doc = Record<string, unknown>;

interface BsonTagged {
  _bsontype: string;
}

export function bsonTypeTag(v: unknown): string | undefined {
  if (v !== null && typeof v === "object" && "_bsontype" in v) {
    const tag = (v as BsonTagged)._bsontype;
    return typeof tag === "string" ? tag : undefined;
  }
  return undefined;
}

/** A JSON-like document (not an array, not a BSON wrapper, not Date/RegExp/bytes). */
export function isDocument(v: unknown): v is Doc {
  if (v === null || typeof v !== "object") return false;
  if (Array.isArray(v) || v instanceof Date || v instanceof RegExp || ArrayBuffer.isView(v)) return false;
  if (bsonTypeTag(v) !== undefined) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/**
 * The actual value as a document: plain documents as they are, Maps (the driver sends `sort` as
 * a Map) as their entries, and the driver's value objects (ReadConcern, WriteConcern,
 * ReadPreference, ...: class instances that are not BSON values) as their defined own fields,
 * which is what they serialize to on the wire; null for anything else.
 */
export function asDocument(v: unknown): Doc | null {
  if (isDocument(v)) return v;
  if (v instanceof Map) {
    const out: Doc = {};
    for (const [k, val] of v) out[String(k)] = val;
    return out;
  }
  if (v === null || typeof v !== "object" || Array.isArray(v) || v instanceof Date || v instanceof RegExp || ArrayBuffer.isView(v)) return null;
  if (bsonTypeTag(v) !== undefined || typeof (v as { toBSON?: unknown }).toBSON === "function") return null;
  const out: Doc = {};
  for (const [k, val] of Object.entries(v)) if (val !== undefined) out[k] = val;
  return out;
}

/** A key counts as present when it is an own property whose value is not `undefined`. */
export function hasKey(doc: Doc, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(doc, key) && doc[key] !== undefined;
}

/** Numeric value of number/Int32/Double/Long (Decimal128 excluded, as the spec says). */
export function numericValue(v: unknown): number | bigint | null {
  if (typeof v === "number") return v;
  if (typeof v === "bigint") return v;
  const tag = bsonTypeTag(v);
  if (tag === "Int32" || tag === "Double") return Number((v as { valueOf(): number }).valueOf());
  if (tag === "Long") {
    const long = v as { toBigInt(): bigint };
    return long.toBigInt();
  }
  return null;
}

export function numbersEqual(a: number | bigint, b: number | bigint): boolean {
  if (typeof a === "bigint" && typeof b === "bigint") return a === b;
  if (typeof a === "number" && typeof b === "number") return a === b || (Number.isNaN(a) && Number.isNaN(b));
  // Mixed: compare exactly when the number is an integer, otherwise they differ.
  const n = typeof a === "number" ? a : (b as number);
  const big = typeof a === "bigint" ? a : (b as bigint);
  return Number.isInteger(n) && BigInt(n) === big;
}

function bytesOf(v: unknown): Uint8Array | null {
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  return null;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Type names of `v` as the `$type` query operator spells them. A promoted JS number
 * cannot tell int32, int64 and an integral double apart, so an integral number carries
 * every name it could have been on the wire; a fractional one is only a double.
 */
export function typeNames(v: unknown): string[] {
  if (v === undefined) return [];
  if (v === null) return ["null"];
  if (typeof v === "string") return ["string"];
  if (typeof v === "boolean") return ["bool"];
  if (typeof v === "number") {
    if (!Number.isInteger(v)) return ["double", "number"];
    if (v >= -2147483648 && v <= 2147483647) return ["int", "long", "double", "number"];
    return ["long", "double", "number"];
  }
  if (typeof v === "bigint") return ["long", "number"];
  if (Array.isArray(v)) return ["array"];
  if (v instanceof Map) return ["object"];
  if (v instanceof Date) return ["date"];
  if (v instanceof RegExp) return ["regex"];
  if (ArrayBuffer.isView(v)) return ["binData"];
  switch (bsonTypeTag(v)) {
    case "Int32":
      return ["int", "number"];
    case "Double":
      return ["double", "number"];
    case "Long":
      return ["long", "number"];
    case "Decimal128":
      return ["decimal", "number"];
    case "ObjectId":
    case "ObjectID":
      return ["objectId"];
    case "Binary":
      return ["binData"];
    case "BSONRegExp":
      return ["regex"];
    case "Timestamp":
      return ["timestamp"];
    case "Code":
      return (v as { scope?: unknown }).scope ? ["javascriptWithScope"] : ["javascript"];
    case "MinKey":
      return ["minKey"];
    case "MaxKey":
      return ["maxKey"];
    case "BSONSymbol":
    case "Symbol":
      return ["symbol"];
    case "DBRef":
      return ["object"];
    case undefined:
      return isDocument(v) ? ["object"] : [];
    default:
      return [];
  }
}

/** Canonical EJSON text of a non-document scalar, used to compare BSON wrapper values. */
function canonical(v: unknown): string {
  return EJSON.stringify({ v }, { relaxed: false });
}

/**
 * Equality of two scalars (neither a document nor an array), with flexible numerics:
 * int32, int64 and double are equal when numerically equal.
 */
export function scalarsEqual(expected: unknown, actual: unknown): boolean {
  const en = numericValue(expected);
  const an = numericValue(actual);
  if (en !== null || an !== null) return en !== null && an !== null && numbersEqual(en, an);
  if (expected === null || actual === null || expected === undefined || actual === undefined) {
    return expected === actual;
  }
  if (typeof expected !== "object" || typeof actual !== "object") return expected === actual;
  if (expected instanceof Date || actual instanceof Date) {
    return expected instanceof Date && actual instanceof Date && expected.getTime() === actual.getTime();
  }
  const eb = bytesOf(expected) ?? binaryBytes(expected);
  const ab = bytesOf(actual) ?? binaryBytes(actual);
  if (eb || ab) {
    return !!eb && !!ab && bytesEqual(eb, ab) && binarySubtype(expected) === binarySubtype(actual);
  }
  const er = regexParts(expected);
  const ar = regexParts(actual);
  if (er || ar) return !!er && !!ar && er.pattern === ar.pattern && er.flags === ar.flags;
  const et = bsonTypeTag(expected);
  const at = bsonTypeTag(actual);
  if (et === undefined || at === undefined) return false;
  if (normaliseTag(et) !== normaliseTag(at)) return false;
  return canonical(expected) === canonical(actual);
}

function normaliseTag(tag: string): string {
  return tag === "ObjectID" ? "ObjectId" : tag;
}

function binaryBytes(v: unknown): Uint8Array | null {
  if (bsonTypeTag(v) !== "Binary") return null;
  const bin = v as { buffer: Uint8Array; position?: number };
  const len = typeof bin.position === "number" ? bin.position : bin.buffer.length;
  return bin.buffer.subarray(0, len);
}

function binarySubtype(v: unknown): number {
  if (bsonTypeTag(v) === "Binary") return (v as { sub_type: number }).sub_type;
  return 0;
}

function regexParts(v: unknown): { pattern: string; flags: string } | null {
  const sortFlags = (f: string) => [...f].sort().join("");
  if (v instanceof RegExp) return { pattern: v.source, flags: sortFlags(v.flags.replace(/[gy]/g, "")) };
  if (bsonTypeTag(v) === "BSONRegExp") {
    const r = v as { pattern: string; options: string };
    return { pattern: r.pattern, flags: sortFlags(r.options) };
  }
  return null;
}

/** Short human-readable rendering for failure messages. */
export function show(v: unknown, max = 240): string {
  if (v === undefined) return "<missing>";
  let text: string;
  try {
    text = EJSON.stringify(v as never, { relaxed: true });
  } catch {
    text = String(v);
  }
  if (text === undefined) text = String(v);
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

// Value helpers shared by storage, indexes and commands: BSON type tests, MongoDB equality keys,
// MongoDB sort order, cloning and dotted-path access.
//
// Decoding choice (see wire.ts): command documents are deserialized with bson's defaults, so
// int32/double become JS numbers, int64 becomes a number when it fits in 53 bits (else a Long),
// dates become Date and regexes RegExp; ObjectId, Binary, Decimal128, Timestamp stay BSON objects.
// mingo can then compare numbers, strings and dates natively and ObjectIds through toString().
// The price: int32/int64/double are not told apart after a round trip (a stored Long(5) comes
// back as int32 5), which the driver's own promotion hides from JS callers anyway.

import type { Document } from "bson";

export type { Document };

/** The `_bsontype` tag of a BSON value object ("ObjectId", "Long", ...), or undefined. */
export function bsonTypeOf(v: unknown): string | undefined {
  if (v === null || typeof v !== "object") return undefined;
  const t = (v as { _bsontype?: unknown })._bsontype;
  return typeof t === "string" ? t : undefined;
}

/** A plain object (a BSON embedded document), not an array, Date, RegExp or BSON value object. */
export function isPlainObject(v: unknown): v is Document {
  if (v === null || typeof v !== "object" || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return (proto === Object.prototype || proto === null) && bsonTypeOf(v) === undefined;
}

/** A number from a JS number or a numeric BSON wrapper; null for anything else. */
export function numericValue(v: unknown): number | null {
  if (typeof v === "number") return v;
  switch (bsonTypeOf(v)) {
    case "Int32":
    case "Double":
      return Number((v as { value: number }).value);
    case "Long":
      return (v as { toNumber(): number }).toNumber();
    case "Decimal128":
      return Number.parseFloat(String(v));
    default:
      return null;
  }
}

export function isNumeric(v: unknown): boolean {
  return numericValue(v) !== null;
}

/** MongoDB's type name for error messages ("int", "string", "objectId", ...). */
export function mongoTypeName(v: unknown): string {
  if (v === undefined) return "missing";
  if (v === null) return "null";
  if (typeof v === "number") return Number.isInteger(v) && Math.abs(v) <= 2147483647 ? "int" : "double";
  if (typeof v === "string") return "string";
  if (typeof v === "boolean") return "bool";
  if (typeof v === "bigint") return "long";
  if (Array.isArray(v)) return "array";
  if (v instanceof Date) return "date";
  if (v instanceof RegExp) return "regex";
  switch (bsonTypeOf(v)) {
    case "ObjectId":
      return "objectId";
    case "Long":
      return "long";
    case "Int32":
      return "int";
    case "Double":
      return "double";
    case "Decimal128":
      return "decimal";
    case "Binary":
      return "binData";
    case "Timestamp":
      return "timestamp";
    case "MinKey":
      return "minKey";
    case "MaxKey":
      return "maxKey";
    case "BSONRegExp":
      return "regex";
    case "Code":
      return "javascript";
    case undefined:
      return "object";
    default:
      return "object";
  }
}

function binaryKey(v: unknown): string {
  const b = v as { sub_type: number; buffer: Uint8Array };
  return `${b.sub_type}:${Buffer.from(b.buffer).toString("base64")}`;
}

/** True when JSON.stringify would only add the quotes (no quote, backslash, control or surrogate code unit). */
function plainString(v: string): boolean {
  if (v.length > 64) return false; // long strings: JSON.stringify is as quick as this loop
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c < 0x20 || c === 0x22 || c === 0x5c || (c >= 0xd800 && c <= 0xdfff)) return false;
  }
  return true;
}

/**
 * A string that is equal for two values exactly when MongoDB considers them equal
 * (1, 1.0 and Long(1) share a key; "1" and 1 do not). Used for _id lookup and index keys.
 */
export function canonicalKey(v: unknown): string {
  if (v === undefined || v === null) return "z";
  switch (typeof v) {
    case "number":
      return Number.isNaN(v) ? "nNaN" : `n${v === 0 ? 0 : v}`;
    case "string":
      return `s${plainString(v) ? `"${v}"` : JSON.stringify(v)}`;
    case "boolean":
      return v ? "bT" : "bF";
    case "bigint":
      return Number.isSafeInteger(Number(v)) ? `n${Number(v)}` : `n${v}`;
  }
  if (Array.isArray(v)) return `[${v.map(canonicalKey).join(",")}]`;
  if (v instanceof Date) return `t${v.getTime()}`;
  if (v instanceof RegExp) return `r${v.source}/${v.flags}`;
  const t = bsonTypeOf(v);
  switch (t) {
    case undefined: {
      const o = v as Document;
      let out = "{";
      for (const k of Object.keys(o)) {
        if (o[k] === undefined) continue;
        out += `${JSON.stringify(k)}:${canonicalKey(o[k])},`;
      }
      return `${out}}`;
    }
    case "ObjectId":
      return `o${(v as { toHexString(): string }).toHexString()}`;
    case "Int32":
    case "Double":
      return canonicalKey(numericValue(v));
    case "Long": {
      const n = (v as { toNumber(): number }).toNumber();
      return Number.isSafeInteger(n) ? `n${n}` : `n${String(v)}`;
    }
    case "Decimal128":
      return `n${Number.parseFloat(String(v))}`;
    case "Binary":
      return `x${binaryKey(v)}`;
    case "Timestamp":
      return `T${String(v)}`;
    case "MinKey":
      return "<min>";
    case "MaxKey":
      return "<max>";
    case "BSONRegExp": {
      const r = v as { pattern: string; options: string };
      return `r${r.pattern}/${r.options}`;
    }
    default:
      return `${t}:${String(v)}`;
  }
}

/** MongoDB's canonical BSON type order for comparisons across types. */
/** MongoDB's BSON type order (comparisons only match values of the same rank: numbers with numbers, dates with dates). */
export function typeRank(v: unknown): number {
  if (v === undefined || v === null) return 2;
  switch (typeof v) {
    case "number":
    case "bigint":
      return 3;
    case "string":
      return 4;
    case "boolean":
      return 9;
  }
  if (Array.isArray(v)) return 6;
  if (v instanceof Date) return 10;
  if (v instanceof RegExp) return 12;
  switch (bsonTypeOf(v)) {
    case undefined:
      return 5;
    case "MinKey":
      return 1;
    case "Int32":
    case "Double":
    case "Long":
    case "Decimal128":
      return 3;
    case "BSONSymbol":
      return 4;
    case "Binary":
      return 7;
    case "ObjectId":
      return 8;
    case "Timestamp":
      return 11;
    case "BSONRegExp":
      return 12;
    case "MaxKey":
      return 13;
    default:
      return 5;
  }
}

function cmp<T extends number | string | bigint>(a: T, b: T): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Compares two values in MongoDB's order (type order first, then value). Arrays compare element-wise. */
export function compareValues(a: unknown, b: unknown): number {
  const ra = typeRank(a);
  const rb = typeRank(b);
  if (ra !== rb) return ra - rb;
  switch (ra) {
    case 2:
      return 0;
    case 3: {
      const na = numericValue(a) ?? Number(a);
      const nb = numericValue(b) ?? Number(b);
      if (Number.isNaN(na)) return Number.isNaN(nb) ? 0 : -1;
      if (Number.isNaN(nb)) return 1;
      return cmp(na, nb);
    }
    case 4:
      return cmp(String(a), String(b));
    case 5: {
      const ka = Object.keys(a as Document);
      const kb = Object.keys(b as Document);
      for (let i = 0; i < Math.min(ka.length, kb.length); i++) {
        const va = (a as Document)[ka[i]];
        const vb = (b as Document)[kb[i]];
        const byType = typeRank(va) - typeRank(vb);
        if (byType !== 0) return byType;
        const byName = cmp(ka[i], kb[i]);
        if (byName !== 0) return byName;
        const byValue = compareValues(va, vb);
        if (byValue !== 0) return byValue;
      }
      return ka.length - kb.length;
    }
    case 6: {
      const xa = a as unknown[];
      const xb = b as unknown[];
      for (let i = 0; i < Math.min(xa.length, xb.length); i++) {
        const c = compareValues(xa[i], xb[i]);
        if (c !== 0) return c;
      }
      return xa.length - xb.length;
    }
    case 7: {
      const ba = (a as { buffer: Uint8Array }).buffer;
      const bb = (b as { buffer: Uint8Array }).buffer;
      if (ba.length !== bb.length) return ba.length - bb.length;
      return Buffer.compare(Buffer.from(ba), Buffer.from(bb));
    }
    case 8:
      return cmp((a as { toHexString(): string }).toHexString(), (b as { toHexString(): string }).toHexString());
    case 9:
      return cmp(Number(a), Number(b));
    case 10:
      return cmp((a as Date).getTime(), (b as Date).getTime());
    case 11:
      return (a as { compare(o: unknown): number }).compare(b);
    default:
      return cmp(String(a), String(b));
  }
}

/**
 * Deep copy of a document tree. BSON value objects (ObjectId, Binary, ...) are immutable here
 * and shared; plain objects, arrays and dates are copied.
 */
export function cloneValue<T>(v: T): T {
  if (v === null || typeof v !== "object") return v;
  if (Array.isArray(v)) return v.map(cloneValue) as T;
  if (v instanceof Date) return new Date(v.getTime()) as T;
  if (!isPlainObject(v)) return v;
  const out: Document = {};
  for (const k of Object.keys(v)) out[k] = cloneValue((v as Document)[k]);
  return out as T;
}

/** Value at a dotted path without array expansion (numeric parts index arrays); undefined if absent. */
export function getPath(doc: unknown, path: string): unknown {
  let cur: unknown = doc;
  for (const part of path.split(".")) {
    if (cur === null || typeof cur !== "object") return undefined;
    if (Array.isArray(cur)) {
      if (!/^\d+$/.test(part)) return undefined;
      cur = cur[Number(part)];
    } else {
      cur = (cur as Document)[part];
    }
  }
  return cur;
}

/** Sets a dotted path on a plain-object tree, creating intermediate objects. */
export function setPath(doc: Document, path: string, value: unknown): void {
  const parts = path.split(".");
  let cur: Document = doc;
  for (let i = 0; i < parts.length - 1; i++) {
    const next = cur[parts[i]];
    if (next === null || typeof next !== "object") cur[parts[i]] = {};
    cur = cur[parts[i]] as Document;
  }
  cur[parts[parts.length - 1]] = value;
}

/**
 * Every value a dotted path reaches, expanding arrays as MongoDB's multikey indexes do:
 * arrays along the path are traversed element-wise and a trailing array contributes its
 * elements. A path that reaches nothing yields `[undefined]`.
 */
/** The values at a dotted path, through arrays of subdocuments, without expanding a final array (geo values). */
export function rawPathValues(doc: unknown, path: string): unknown[] {
  const out: unknown[] = [];
  const walk = (value: unknown, parts: string[], i: number): void => {
    if (i === parts.length) {
      out.push(value);
      return;
    }
    if (Array.isArray(value)) {
      if (/^\d+$/.test(parts[i])) walk(value[Number(parts[i])], parts, i + 1);
      else for (const el of value) if (isPlainObject(el)) walk(el, parts, i);
      return;
    }
    if (isPlainObject(value)) walk(value[parts[i]], parts, i + 1);
  };
  walk(doc, path.split("."), 0);
  return out;
}

export function pathValues(doc: unknown, path: string): unknown[] {
  const out: unknown[] = [];
  collect(doc, path.split("."), 0, out);
  return out.length === 0 ? [undefined] : out;
}

function collect(value: unknown, parts: string[], i: number, out: unknown[]): void {
  if (i === parts.length) {
    if (Array.isArray(value)) {
      if (value.length === 0) out.push(undefined);
      else for (const el of value) out.push(el);
    } else {
      out.push(value);
    }
    return;
  }
  if (Array.isArray(value)) {
    const part = parts[i];
    if (/^\d+$/.test(part) && Number(part) < value.length) collect(value[Number(part)], parts, i + 1, out);
    for (const el of value) if (isPlainObject(el)) collect(el, parts, i, out);
    return;
  }
  if (isPlainObject(value)) {
    collect(value[parts[i]], parts, i + 1, out);
    return;
  }
  out.push(undefined);
}

/** Renders a value the way mongod prints BSON in error messages ({ a: 1, b: "x" }). */
export function formatValue(v: unknown): string {
  if (v === undefined) return "undefined";
  if (v === null) return "null";
  if (typeof v === "string") return JSON.stringify(v);
  if (typeof v === "number" || typeof v === "boolean" || typeof v === "bigint") return String(v);
  if (Array.isArray(v)) return v.length === 0 ? "[]" : `[ ${v.map(formatValue).join(", ")} ]`;
  if (v instanceof Date) return `new Date(${v.getTime()})`;
  if (v instanceof RegExp) return String(v);
  switch (bsonTypeOf(v)) {
    case undefined: {
      const entries = Object.entries(v as Document).filter(([, x]) => x !== undefined);
      return entries.length === 0 ? "{}" : `{ ${entries.map(([k, x]) => `${k}: ${formatValue(x)}`).join(", ")} }`;
    }
    case "ObjectId":
      return `ObjectId('${(v as { toHexString(): string }).toHexString()}')`;
    default:
      return String(v);
  }
}

/** Returns the document with `_id` as its first field (MongoDB always stores it first). */
export function idFirst(doc: Document): Document {
  const keys = Object.keys(doc);
  if (keys.length === 0 || keys[0] === "_id" || !("_id" in doc)) return doc;
  const out: Document = { _id: doc._id };
  for (const k of keys) if (k !== "_id") out[k] = doc[k];
  return out;
}

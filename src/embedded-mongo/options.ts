// What each command accepts, checked before it runs: an option the engine implements is passed to
// the handler; an option MongoDB has and the engine does not implement is refused with
// NotImplemented (238) saying so; anything else is MongoDB's unknown-field error (40415). So no
// option is ever accepted and silently ignored. The README's support table is checked against
// these lists by a test.

import { type Document, Timestamp } from "bson";
import { CommandError, ErrorCode } from "./errors";
import { bsonTypeOf, isPlainObject, numericValue } from "./values";

/** Fields any command may carry (sessions, transactions, concerns, API version, routing). */
export const GENERIC_FIELDS: readonly string[] = [
  "$db",
  "lsid",
  "txnNumber",
  "autocommit",
  "startTransaction",
  "$clusterTime",
  "$readPreference",
  "readConcern",
  "writeConcern",
  "comment",
  "maxTimeMS",
  "apiVersion",
  "apiStrict",
  "apiDeprecationErrors",
];

/**
 * Options MongoDB has that the engine does not implement, and why. Refused wherever they appear
 * (as a command field, in an update/delete statement, in an index spec); a value that asks for
 * MongoDB's default behaviour is accepted (see `asksForDefault`).
 */
export const REFUSED_OPTIONS: Readonly<Record<string, string>> = {
  collation: "collations are not supported (only { locale: 'simple' }, binary comparison)",
  capped: "capped collections are not supported",
  size: "capped collections are not supported",
  max: "capped collections and min/max index bounds are not supported",
  min: "min/max index bounds are not supported",
  validator: "collection validators and $jsonSchema are not enforced, so they are refused",
  timeseries: "time-series collections are not supported",
  clusteredIndex: "clustered collections are not supported",
  changeStreamPreAndPostImages: "change streams are not supported",
  encryptedFields: "queryable encryption is not supported",
  expireAfterSeconds: "expiring collections (clustered or time-series) are not supported; TTL indexes are",
  returnKey: "returnKey is not supported",
  showRecordId: "showRecordId is not supported",
  tailable: "tailable cursors need capped collections, which are not supported",
  awaitData: "tailable cursors need capped collections, which are not supported",
  oplogReplay: "oplogReplay is not supported",
  weights: "text indexes are not supported",
  default_language: "text indexes are not supported",
  language_override: "text indexes are not supported",
  textIndexVersion: "text indexes are not supported",
  bits: "2d indexes are not supported",
  wildcardProjection: "wildcard indexes are not supported",
  prepareUnique: "prepareUnique (converting to a unique index) is not supported",
  scale: "scaled statistics are not supported",
};

/** True when an otherwise refused option only asks for what the engine does anyway. */
function asksForDefault(option: string, value: unknown): boolean {
  switch (option) {
    case "collation":
      return isPlainObject(value) && value.locale === "simple";
    case "capped":
    case "tailable":
    case "awaitData":
    case "returnKey":
    case "showRecordId":
    case "oplogReplay":
    case "prepareUnique":
      return value === false;
    case "validator":
      return isPlainObject(value) && Object.keys(value).length === 0;
    case "scale":
      return numericValue(value) === 1;
    default:
      return false;
  }
}

/** Throws NotImplemented for a refused option, or the unknown-field error, for one field of `where`. */
export function refuseOption(where: string, field: string, value: unknown): void {
  const reason = Object.hasOwn(REFUSED_OPTIONS, field) ? REFUSED_OPTIONS[field] : undefined;
  if (reason !== undefined) {
    if (asksForDefault(field, value)) return;
    throw new CommandError(ErrorCode.NotImplemented, `BSON field '${where}.${field}' is not implemented by the embedded engine: ${reason}`);
  }
  throw new CommandError(ErrorCode.UnknownBsonField, `BSON field '${where}.${field}' is an unknown field.`);
}

/** Checks every field of `doc` against `accepted`, refusing the rest (see refuseOption). */
export function checkFields(where: string, doc: Document, accepted: ReadonlySet<string>, skip?: ReadonlySet<string>): void {
  for (const [k, v] of Object.entries(doc)) {
    if (accepted.has(k) || skip?.has(k)) continue;
    refuseOption(where, k, v);
  }
}

const READ_CONCERN_LEVELS = new Set(["local", "majority", "linearizable", "available", "snapshot"]);
/** Commands that take readConcern snapshot outside a transaction (MongoDB: find, aggregate, distinct). */
const SNAPSHOT_READS = new Set(["find", "aggregate", "distinct"]);

/** Validates readConcern as a single-node primary would; returns the level (null when absent). */
export function readConcernLevel(command: string, cmd: Document, inTransaction: boolean, clusterTime: Timestamp): string | null {
  const rc = cmd.readConcern;
  if (rc === undefined) return null;
  if (!isPlainObject(rc)) throw new CommandError(ErrorCode.TypeMismatch, "BSON field 'readConcern' is the wrong type, expected type 'object'");
  checkFields("readConcern", rc, new Set(["level", "afterClusterTime", "atClusterTime", "afterOpTime"]));
  const level = rc.level === undefined ? "local" : rc.level;
  if (typeof level !== "string" || !READ_CONCERN_LEVELS.has(level)) {
    throw new CommandError(ErrorCode.FailedToParse, `Invalid readConcern level: ${String(level)}`);
  }
  if (level === "snapshot" && !inTransaction && !SNAPSHOT_READS.has(command)) {
    throw new CommandError(ErrorCode.InvalidOptions, `Command ${command} does not support { readConcern: { level: "snapshot" } }`);
  }
  if (rc.atClusterTime !== undefined && level !== "snapshot") {
    throw new CommandError(ErrorCode.InvalidOptions, "readConcern.atClusterTime is only valid with level snapshot");
  }
  if (rc.atClusterTime !== undefined) {
    // Older times are read from the history (Engine.snapshotReadAt), or refused with SnapshotTooOld.
    const at = rc.atClusterTime;
    if (!(at instanceof Timestamp) && bsonTypeOf(at) !== "Timestamp") throw new CommandError(ErrorCode.TypeMismatch, "readConcern.atClusterTime must be a Timestamp");
    if (clusterTime.compare(at as Timestamp) < 0) {
      throw new CommandError(ErrorCode.InvalidOptions, "readConcern atClusterTime value must not be greater than the current clusterTime");
    }
  }
  return level;
}

/** readConcern snapshot outside a transaction: the whole result is read at once, so later getMores see the same snapshot. */
export function isSnapshotRead(cmd: Document): boolean {
  return isPlainObject(cmd.readConcern) && cmd.readConcern.level === "snapshot" && cmd.autocommit !== false;
}

/** A writeConcern a single-node replica set cannot satisfy: the writeConcernError mongod adds to the reply. */
export function unsatisfiableWriteConcern(cmd: Document): Document | null {
  const wc = cmd.writeConcern;
  if (!isPlainObject(wc) || wc.w === undefined) return null;
  const w = wc.w;
  const n = numericValue(w);
  if (n !== null) {
    if (n > 1) return { code: 100, codeName: "UnsatisfiableWriteConcern", errmsg: "Not enough data-bearing nodes" };
    return null;
  }
  if (w === "majority") return null;
  if (typeof w === "string") return { code: 79, codeName: "UnknownReplWriteConcern", errmsg: `No write concern mode named '${w}' found in replica set configuration` };
  return null;
}

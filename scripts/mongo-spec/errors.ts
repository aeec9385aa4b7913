// expectedError assertions. A server error is one the driver built from a server reply
// (MongoServerError and its subclasses, bulk write errors included); anything else the
// driver raised (validation, network) is a client error.
import { MongoBulkWriteError, MongoError, MongoOperationTimeoutError, MongoServerError } from "mongodb";
import { RunnerError } from "./entities";
import { type EntityLookup, match } from "./matcher";
import { type Doc, isDocument, show } from "./values";

/** Codes for names a bulk write error can only report as numbers. */
const CODE_NAMES: Record<string, number> = {
  badvalue: 2, failedtoparse: 9, typemismatch: 14, namespacenotfound: 26, indexnotfound: 27,
  commandnotfound: 59, immutablefield: 66, invalidoptions: 72, writeconflict: 112,
  nosuchtransaction: 251, duplicatekey: 11000,
};

const KNOWN = new Set([
  "isError", "isClientError", "isTimeoutError", "errorContains", "errorCode", "errorCodeName",
  "errorLabelsContain", "errorLabelsOmit", "errorResponse", "expectResult",
]);

export function describeError(err: unknown): string {
  if (err instanceof MongoError) {
    const code = (err as MongoServerError).code;
    return `${err.name}${code !== undefined ? ` (code ${String(code)})` : ""}: ${err.message}`;
  }
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return show(err);
}

/** The message, write error and write concern error messages of an error, for errorContains. */
function aggregatedMessages(err: unknown): string[] {
  const out: string[] = [];
  if (err instanceof Error) out.push(err.message);
  if (err instanceof MongoBulkWriteError) {
    const list = Array.isArray(err.writeErrors) ? err.writeErrors : [err.writeErrors];
    for (const we of list) if (we?.errmsg) out.push(we.errmsg);
    if (err.err?.errmsg) out.push(err.err.errmsg);
  }
  if (err instanceof MongoServerError && isDocument(err.writeConcernError)) {
    out.push(String(err.writeConcernError.errmsg ?? ""));
  }
  return out;
}

function aggregatedCodes(err: unknown): number[] {
  const out: number[] = [];
  if (err instanceof MongoServerError && typeof err.code === "number") out.push(err.code);
  if (err instanceof MongoBulkWriteError) {
    const list = Array.isArray(err.writeErrors) ? err.writeErrors : [err.writeErrors];
    for (const we of list) if (we && typeof we.code === "number") out.push(we.code);
    if (err.err && typeof err.err.code === "number") out.push(err.err.code);
  }
  if (err instanceof MongoServerError && isDocument(err.writeConcernError) && typeof err.writeConcernError.code === "number") {
    out.push(err.writeConcernError.code);
  }
  return out;
}

/**
 * Null when `err` satisfies the expectedError document; otherwise the first reason it does not.
 * `resultOf` converts a result carried by the error (bulk write) into a document.
 */
export function checkError(
  expected: unknown, err: unknown, entities: EntityLookup, resultOf: (err: unknown) => unknown,
): string | null {
  if (!isDocument(expected) || Object.keys(expected).length === 0) throw new RunnerError("expectError must be a non-empty document");
  for (const k of Object.keys(expected)) if (!KNOWN.has(k)) throw new RunnerError(`unsupported expectError field ${k}`);
  const e: Doc = expected;
  const isServer = err instanceof MongoServerError;
  const what = describeError(err);

  if (typeof e.isClientError === "boolean" && e.isClientError === isServer) {
    return e.isClientError ? `expected a client error, got server error ${what}` : `expected a server error, got client error ${what}`;
  }
  if (typeof e.isTimeoutError === "boolean" && e.isTimeoutError !== err instanceof MongoOperationTimeoutError) {
    return `expected ${e.isTimeoutError ? "" : "no "}timeout error, got ${what}`;
  }
  if (typeof e.errorContains === "string") {
    const needle = e.errorContains.toLowerCase();
    if (!aggregatedMessages(err).some((m) => m.toLowerCase().includes(needle))) {
      return `expected error message containing ${JSON.stringify(e.errorContains)}, got ${what}`;
    }
  }
  if (e.errorCode !== undefined) {
    if (!isServer) return `expected server error code ${String(e.errorCode)}, got client error ${what}`;
    if (!aggregatedCodes(err).includes(Number(e.errorCode))) return `expected error code ${String(e.errorCode)}, got ${what}`;
  }
  if (typeof e.errorCodeName === "string") {
    if (!isServer) return `expected server error ${e.errorCodeName}, got client error ${what}`;
    const want = e.errorCodeName.toLowerCase();
    const names: string[] = [];
    const codeName = (err as MongoServerError).codeName;
    if (typeof codeName === "string") names.push(codeName.toLowerCase());
    const ok = names.includes(want) || (CODE_NAMES[want] !== undefined && aggregatedCodes(err).includes(CODE_NAMES[want]));
    if (!ok) return `expected error code name ${e.errorCodeName}, got ${what}`;
  }
  const labelsOf = (label: string) => err instanceof MongoError && err.hasErrorLabel(label);
  if (Array.isArray(e.errorLabelsContain)) {
    for (const l of e.errorLabelsContain) if (!labelsOf(String(l))) return `expected error label ${String(l)}, got ${what}`;
  }
  if (Array.isArray(e.errorLabelsOmit)) {
    for (const l of e.errorLabelsOmit) if (labelsOf(String(l))) return `expected no error label ${String(l)}, got ${what}`;
  }
  if (e.errorResponse !== undefined) {
    if (!isServer) return `expected a server error response, got ${what}`;
    const why = match(e.errorResponse, (err as MongoServerError).errorResponse, { root: true, entities });
    if (why) return `errorResponse mismatch: ${why}`;
  }
  if (e.expectResult !== undefined) {
    const why = match(e.expectResult, resultOf(err), { root: true, entities });
    if (why) return `error result mismatch: ${why}`;
  }
  return null;
}

import { createHash } from "node:crypto";

/**
 * Idempotency-Key as the IETF httpapi draft (draft-ietf-httpapi-idempotency-key-header) says:
 * the key is a Structured Field String (`"8e03978e-…"`); a bare token is taken as it is, so
 * clients that send `Idempotency-Key: abc` keep working. The request body's fingerprint tells
 * a true retry from a reuse of the key with another request.
 */
export function parseIdempotencyKey(header: string): string {
  const quoted = /^"((?:[^"\\]|\\["\\])*)"$/.exec(header);
  return quoted ? quoted[1]!.replace(/\\(["\\])/g, "$1") : header;
}

/** Key order and whitespace do not matter: sha-256 of the body with object keys sorted. */
export function requestFingerprint(body: unknown): string {
  return createHash("sha256").update(canonicalJson(body)).digest("base64url");
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

/** What a stored key says about a new request carrying it. */
export type KeyClaim =
  /** The caller runs the request; `token` is unique to this use of the key (it ends when the key expires). */
  | { kind: "run"; token: string }
  /** The first request finished and created this order. */
  | { kind: "done"; orderId: string }
  | { kind: "mismatch" }
  | { kind: "inFlight" };

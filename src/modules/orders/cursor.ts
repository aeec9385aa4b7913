import type { ObjectId } from "mongodb";
import { toObjectId } from "../../db/keys";
import { InvalidInput } from "../../errors";

/**
 * Keyset cursor for order lists: the (createdAt, _id) of the last order served, newest first.
 * Opaque to clients (base64url JSON), like the restaurants' discovery cursor beside it.
 */
export function encodeCursor(createdAt: Date, id: ObjectId): string {
  return Buffer.from(JSON.stringify([createdAt.getTime(), id.toHexString()])).toString("base64url");
}

export function decodeCursor(cursor: string): { createdAt: Date; id: ObjectId } {
  const bad = () => new InvalidInput("cursor is invalid", [{ path: "/cursor", message: "not a cursor this server issued" }]);
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
  } catch {
    throw bad();
  }
  if (!Array.isArray(parsed) || parsed.length !== 2 || !Number.isSafeInteger(parsed[0]) || typeof parsed[1] !== "string") throw bad();
  const id = toObjectId(parsed[1]);
  if (!id) throw bad();
  return { createdAt: new Date(parsed[0]), id };
}

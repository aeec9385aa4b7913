import { MongoServerError, ObjectId } from "mongodb";

/** The ObjectId a 24-hex-digit id names; null for anything else, so a malformed id reads as missing. */
export function toObjectId(id: string): ObjectId | null {
  return /^[0-9a-f]{24}$/i.test(id) ? new ObjectId(id) : null;
}

/** A write refused by a unique index (E11000). */
export function isDuplicateKey(err: unknown): boolean {
  return err instanceof MongoServerError && err.code === 11000;
}

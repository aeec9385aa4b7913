import { randomBytes } from "node:crypto";
import type { Db } from "mongodb";
import { isDuplicateKey } from "./keys";
import { COLLECTIONS } from "./mongo";

type SecretDoc = { _id: string; value: string; createdAt: Date };

const JWT_KEY_ID = "jwt-hs256";
/** 512 bits: HMAC-SHA256's block size, well over the 256 a signing key needs. */
const KEY_BYTES = 64;

/**
 * The deployment's own token key, for when JWT_SECRET is not set: read from the database, or
 * generated from the CSPRNG and inserted under a fixed _id. Two instances starting together
 * both try the insert; the unique _id lets exactly one win and the other reads the winner's,
 * so every instance on the database (and every restart) signs and verifies with the same key.
 */
export async function deploymentJwtSecret(db: Db, now: Date): Promise<{ secret: string; created: boolean }> {
  const col = db.collection<SecretDoc>(COLLECTIONS.secrets);
  const existing = await col.findOne({ _id: JWT_KEY_ID });
  if (existing) return { secret: checked(existing), created: false };
  const value = randomBytes(KEY_BYTES).toString("base64url");
  try {
    await col.insertOne({ _id: JWT_KEY_ID, value, createdAt: now }, { writeConcern: { w: "majority" } });
    return { secret: value, created: true };
  } catch (err) {
    if (!isDuplicateKey(err)) throw err;
  }
  const winner = await col.findOne({ _id: JWT_KEY_ID });
  if (!winner) throw new Error(`${COLLECTIONS.secrets}.${JWT_KEY_ID}: insert reported a duplicate but the document is gone`);
  return { secret: checked(winner), created: false };
}

/** A hand-edited or truncated key would silently weaken every token: refuse to start instead. */
function checked(doc: SecretDoc): string {
  if (typeof doc.value !== "string" || Buffer.from(doc.value, "base64url").length < 32) {
    throw new Error(`${COLLECTIONS.secrets}.${JWT_KEY_ID}: stored token key is not at least 256 bits of base64url; delete it to generate a new one (every token becomes invalid)`);
  }
  return doc.value;
}

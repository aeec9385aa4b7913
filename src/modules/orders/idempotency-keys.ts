import { ObjectId, type Collection, type Db, type IndexDescription } from "mongodb";
import { isDuplicateKey } from "../../db/keys";
import { COLLECTIONS } from "../../db/mongo";
import type { KeyClaim } from "./idempotency";

/** One customer's use of one Idempotency-Key. Only this file knows the shape. */
type KeyDoc = {
  _id: ObjectId;
  customerId: string;
  key: string;
  fingerprint: string;
  state: "pending" | "done";
  orderId?: string;
  /** A pending key whose request died (process killed) may be run again after this. */
  lockedUntil: Date;
  createdAt: Date;
  /** The TTL index deletes the key after this; a later request with it is a new request. */
  expiresAt: Date;
};

export const IDEMPOTENCY_KEY_INDEXES: IndexDescription[] = [
  { name: "idempotency_customer_key", key: { customerId: 1, key: 1 }, unique: true },
  { name: "idempotency_expiresAt_ttl", key: { expiresAt: 1 }, expireAfterSeconds: 0 },
];

export async function ensureIdempotencyKeyIndexes(db: Db): Promise<void> {
  await db.collection(COLLECTIONS.idempotencyKeys).createIndexes(IDEMPOTENCY_KEY_INDEXES);
}

export type ClaimRequest = { customerId: string; key: string; fingerprint: string; now: Date; ttlMs: number; lockMs: number };

/** The idempotency_keys collection: who used which key with which body, and what came of it. */
export class IdempotencyKeys {
  private readonly keys: Collection<KeyDoc>;

  constructor(db: Db) {
    this.keys = db.collection<KeyDoc>(COLLECTIONS.idempotencyKeys);
  }

  /**
   * Says what an earlier use of the key decided, or records it as pending for this request.
   * Read first (a repeat costs one indexed read); the unique index picks one winner among
   * concurrent first uses, and the losers read the winner's pending key.
   */
  async claim(req: ClaimRequest): Promise<KeyClaim> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const existing = await this.keys.findOne({ customerId: req.customerId, key: req.key });
      if (existing) return this.decide(existing, req);
      const doc: KeyDoc = {
        _id: new ObjectId(),
        customerId: req.customerId,
        key: req.key,
        fingerprint: req.fingerprint,
        state: "pending",
        lockedUntil: new Date(req.now.getTime() + req.lockMs),
        createdAt: req.now,
        expiresAt: new Date(req.now.getTime() + req.ttlMs),
      };
      try {
        await this.keys.insertOne(doc);
        return { kind: "run", token: doc._id.toHexString() };
      } catch (err) {
        if (!isDuplicateKey(err)) throw err;
      }
    }
    return { kind: "inFlight" };
  }

  private async decide(existing: KeyDoc, req: ClaimRequest): Promise<KeyClaim> {
    if (existing.fingerprint !== req.fingerprint) return { kind: "mismatch" };
    if (existing.state === "done" && existing.orderId !== undefined) return { kind: "done", orderId: existing.orderId };
    if (existing.lockedUntil.getTime() > req.now.getTime()) return { kind: "inFlight" };
    // The first request died holding the key: take it over (one winner), with the same token so
    // an order it did manage to insert is found instead of doubled.
    const taken = await this.keys.findOneAndUpdate(
      { _id: existing._id, state: "pending", lockedUntil: existing.lockedUntil },
      { $set: { lockedUntil: new Date(req.now.getTime() + req.lockMs) } },
    );
    return taken ? { kind: "run", token: existing._id.toHexString() } : { kind: "inFlight" };
  }

  /** The request with this key created `orderId`: repeats now get that order. */
  async complete(token: string, orderId: string): Promise<void> {
    await this.keys.updateOne({ _id: new ObjectId(token) }, { $set: { state: "done", orderId } });
  }

  /** The request failed (the domain refused it): the key is free for a retry. */
  async release(token: string): Promise<void> {
    await this.keys.deleteOne({ _id: new ObjectId(token), state: "pending" });
  }
}

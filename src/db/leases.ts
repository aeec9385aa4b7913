import { MongoServerError, type Collection, type Db } from "mongodb";
import { COLLECTIONS } from "./mongo";

type LeaseDoc = { _id: string; owner: string; until: Date };

const DUPLICATE_KEY = 11000;

/**
 * A named lease in MongoDB: one holder at a time, taken over once it lapses. Taking or renewing
 * it is one conditional write (free, lapsed or already ours), so two instances never both hold it.
 */
export class Lease {
  private readonly leases: Collection<LeaseDoc>;

  constructor(
    db: Db,
    private readonly name: string,
    private readonly owner: string,
  ) {
    this.leases = db.collection<LeaseDoc>(COLLECTIONS.leases);
  }

  /** Takes or renews the lease until `now + ttlMs`; false while another holder's is live. */
  async acquire(now: Date, ttlMs: number): Promise<boolean> {
    try {
      const doc = await this.leases.findOneAndUpdate(
        { _id: this.name, $or: [{ owner: this.owner }, { until: { $lte: now } }] },
        { $set: { owner: this.owner, until: new Date(now.getTime() + ttlMs) } },
        { upsert: true, returnDocument: "after" },
      );
      return doc?.owner === this.owner;
    } catch (err) {
      // Another holder's live lease exists, so the upsert tried to insert a second one.
      if (err instanceof MongoServerError && err.code === DUPLICATE_KEY) return false;
      throw err;
    }
  }

  /** Lets the lease go (on shutdown), if it is ours. */
  async release(): Promise<void> {
    await this.leases.deleteOne({ _id: this.name, owner: this.owner });
  }
}

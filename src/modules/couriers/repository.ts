import { MongoServerError, type Collection, type Db, type IndexDescription } from "mongodb";
import { COLLECTIONS } from "../../db/mongo";
import type { CourierModel } from "./model";

/** How a courier's position is stored: one document per courier, keyed by its user id. */
type CourierDoc = {
  _id: string;
  /** GeoJSON, so nearest-courier queries can use the 2dsphere index. */
  position: { type: "Point"; coordinates: [number, number] };
  heading?: number;
  speedMps?: number;
  fixAt: Date;
  lastSeenAt: Date;
};

export const COURIER_INDEXES: IndexDescription[] = [{ name: "couriers_position_2dsphere", key: { position: "2dsphere" } }];

export async function ensureCourierIndexes(db: Db): Promise<void> {
  await db.collection(COLLECTIONS.couriers).createIndexes(COURIER_INDEXES);
}

const DUPLICATE_KEY = 11000;

function toPosition(doc: CourierDoc): CourierModel.position {
  const [lng, lat] = doc.position.coordinates;
  const out: CourierModel.position = {
    courierId: doc._id,
    lat,
    lng,
    fixAt: doc.fixAt.toISOString(),
    lastSeenAt: doc.lastSeenAt.toISOString(),
  };
  if (doc.heading !== undefined) out.heading = doc.heading;
  if (doc.speedMps !== undefined) out.speedMps = doc.speedMps;
  return out;
}

export class CourierRepository {
  private readonly couriers: Collection<CourierDoc>;

  constructor(db: Db) {
    this.couriers = db.collection<CourierDoc>(COLLECTIONS.couriers);
  }

  /**
   * Stores a fix unless the stored one is as new or newer (another connection or instance may
   * have written a later fix): the condition is part of the write, so the newest fix always
   * wins. False when the fix was older and nothing changed.
   */
  async recordPosition(courierId: string, fix: CourierModel.fix, seenAt: Date): Promise<boolean> {
    const set: Partial<CourierDoc> = {
      position: { type: "Point", coordinates: [fix.lng, fix.lat] },
      fixAt: fix.at,
      lastSeenAt: seenAt,
    };
    const unset: Record<string, ""> = {};
    if (fix.heading !== undefined) set.heading = fix.heading;
    else unset.heading = "";
    if (fix.speedMps !== undefined) set.speedMps = fix.speedMps;
    else unset.speedMps = "";
    try {
      // No stored fix as new as this one: update it, or insert the first one (upsert).
      await this.couriers.updateOne(
        { _id: courierId, fixAt: { $not: { $gte: fix.at } } },
        Object.keys(unset).length ? { $set: set, $unset: unset } : { $set: set },
        { upsert: true },
      );
      return true;
    } catch (err) {
      // The document exists with a newer fix, so the upsert tried to insert a second one.
      if (err instanceof MongoServerError && err.code === DUPLICATE_KEY) return false;
      throw err;
    }
  }

  async findPosition(courierId: string): Promise<CourierModel.position | null> {
    const doc = await this.couriers.findOne({ _id: courierId });
    return doc ? toPosition(doc) : null;
  }
}

import { MongoServerError, type Collection, type Db, type Document, type Filter, type IndexDescription } from "mongodb";
import { COLLECTIONS } from "../../db/mongo";
import type { CourierModel } from "./model";

/**
 * How a courier is stored: one document per courier, keyed by its user id. A courier who set
 * its availability before sending any position has no position yet.
 */
type CourierDoc = {
  _id: string;
  /** GeoJSON, so nearest-courier queries can use the 2dsphere index. */
  position?: { type: "Point"; coordinates: [number, number] };
  heading?: number;
  speedMps?: number;
  fixAt?: Date;
  lastSeenAt?: Date;
  available?: boolean;
  /**
   * The offer this courier holds now: set only when no live offer exists (one offer at a time).
   * `orderIds`: every order of a bundle (the first is `orderId`); absent for a single order.
   */
  offer?: { orderId: string; orderIds?: string[]; expiresAt: Date } | null;
};

/** Which couriers a nearest-first search returns. */
export type NearbyCriteria = {
  point: { lat: number; lng: number };
  radiusMeters: number;
  limit: number;
  /** Only couriers who could take an offer now: available, seen since `seenSince`, no live offer, not excluded. */
  dispatchable?: { now: Date; seenSince: Date; exclude: string[] };
};

export const COURIER_INDEXES: IndexDescription[] = [{ name: "couriers_position_2dsphere", key: { position: "2dsphere" } }];

export async function ensureCourierIndexes(db: Db): Promise<void> {
  await db.collection(COLLECTIONS.couriers).createIndexes(COURIER_INDEXES);
}

const DUPLICATE_KEY = 11000;

function toPosition(doc: CourierDoc): CourierModel.position | null {
  if (!doc.position || !doc.fixAt || !doc.lastSeenAt) return null;
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

  async find(courierId: string): Promise<CourierModel.record> {
    const doc = await this.couriers.findOne({ _id: courierId });
    return toRecord(doc ?? { _id: courierId });
  }

  async setAvailability(courierId: string, available: boolean): Promise<CourierModel.record> {
    const doc = await this.couriers.findOneAndUpdate({ _id: courierId }, { $set: { available } }, { upsert: true, returnDocument: "after" });
    return toRecord(doc ?? { _id: courierId, available });
  }

  /** Couriers with a position near a point, nearest first ($geoNear on the 2dsphere index). */
  async nearby(c: NearbyCriteria): Promise<Array<CourierModel.record & { distanceMeters: number }>> {
    const query: Filter<CourierDoc> = {};
    if (c.dispatchable) {
      const { now, seenSince, exclude } = c.dispatchable;
      query.available = true;
      query.lastSeenAt = { $gte: seenSince };
      if (exclude.length) query._id = { $nin: exclude };
      query.$or = [{ offer: null }, { "offer.expiresAt": { $lte: now } }];
    }
    const pipeline: Document[] = [
      {
        $geoNear: {
          near: { type: "Point", coordinates: [c.point.lng, c.point.lat] },
          key: "position",
          distanceField: "distanceMeters",
          maxDistance: c.radiusMeters,
          spherical: true,
          query,
        },
      },
      { $limit: c.limit },
    ];
    const docs = await this.couriers.aggregate<CourierDoc & { distanceMeters: number }>(pipeline).toArray();
    return docs.map((d) => ({ ...toRecord(d), distanceMeters: d.distanceMeters }));
  }

  /**
   * Reserves the courier for an offer of `orderId` until `expiresAt`, only if it is available
   * and holds no live offer: the check and the reservation are one atomic write, so a courier
   * never holds two offers at once, whichever instances dispatch.
   */
  async reserveOffer(courierId: string, orderId: string, expiresAt: Date, now: Date, bundle?: string[]): Promise<boolean> {
    const doc = await this.couriers.findOneAndUpdate(
      { _id: courierId, available: true, $or: [{ offer: null }, { "offer.expiresAt": { $lte: now } }] },
      { $set: { offer: bundle && bundle.length > 1 ? { orderId, orderIds: bundle, expiresAt } : { orderId, expiresAt } } },
      { projection: { _id: 1 } },
    );
    return doc !== null;
  }

  /** Ends the courier's reservation for `orderId` or the bundle holding it (no-op if it holds another one, or none). */
  async releaseOffer(courierId: string, orderId: string): Promise<void> {
    await this.couriers.updateOne({ _id: courierId, $or: [{ "offer.orderId": orderId }, { "offer.orderIds": orderId }] }, { $set: { offer: null } });
  }

  /** Narrows the courier's live offer (expiring at `expiresAt`) to the orders of a bundle that were offered. */
  async narrowOffer(courierId: string, expiresAt: Date, orderIds: string[]): Promise<void> {
    await this.couriers.updateOne({ _id: courierId, "offer.expiresAt": expiresAt }, { $set: { "offer.orderId": orderIds[0]!, "offer.orderIds": orderIds } });
  }

  /** The orders of the courier's live offer (a bundle's, or the one), or [] when it holds none. */
  async offeredOrders(courierId: string, now: Date): Promise<string[]> {
    const doc = await this.couriers.findOne({ _id: courierId, "offer.expiresAt": { $gt: now } }, { projection: { offer: 1 } });
    return doc?.offer ? (doc.offer.orderIds ?? [doc.offer.orderId]) : [];
  }

  /** Couriers who could take an offer now (available, seen since `seenSince`, a position, no live offer). */
  async dispatchable(now: Date, seenSince: Date, limit: number): Promise<CourierModel.record[]> {
    const docs = await this.couriers
      .find({ available: true, lastSeenAt: { $gte: seenSince }, position: { $exists: true }, $or: [{ offer: null }, { offer: { $exists: false } }, { "offer.expiresAt": { $lte: now } }] })
      .limit(limit)
      .toArray();
    return docs.map(toRecord);
  }
}

function toRecord(doc: CourierDoc): CourierModel.record {
  let position: CourierModel.record["position"] = null;
  if (doc.position && doc.fixAt) {
    const [lng, lat] = doc.position.coordinates;
    position = { lat, lng, fixAt: doc.fixAt };
    if (doc.heading !== undefined) position.heading = doc.heading;
    if (doc.speedMps !== undefined) position.speedMps = doc.speedMps;
  }
  return {
    id: doc._id,
    available: doc.available === true,
    position,
    lastSeenAt: doc.lastSeenAt ?? null,
    offer: doc.offer ? { orderId: doc.offer.orderId, expiresAt: doc.offer.expiresAt } : null,
  };
}

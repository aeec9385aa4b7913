import { type Collection, type Db, type Document, type Filter, type IndexDescription } from "mongodb";
import { isDuplicateKey } from "../../db/keys";
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
  /**
   * The orders this courier carries or is being given (capacity.ts): one slot per order, taken
   * before the assignment is committed, so COURIER_MAX_ACTIVE is one conditional write. Absent
   * until the courier first takes an order.
   */
  carrying?: CarrySlot[];
};

/** One order a courier holds a slot for, and when the slot was taken or last renewed. */
export type CarrySlot = { orderId: string; at: Date };

/** What taking slots did: all taken now, all already held (renewed), or refused: too many. */
export type TakeSlots = "taken" | "held" | "full";

/** Which couriers a nearest-first search returns. */
export type NearbyCriteria = {
  point: { lat: number; lng: number };
  radiusMeters: number;
  limit: number;
  /** Only couriers who could take an offer now: available, seen since `seenSince`, no live offer, not excluded, fewer than `maxActive` slots. */
  dispatchable?: { now: Date; seenSince: Date; exclude: string[]; maxActive?: number };
};

/** Statements per `update` command (MongoDB takes up to 100,000; this keeps each command well under 16 MiB). */
const POSITION_STATEMENTS_PER_COMMAND = 10_000;

export const COURIER_INDEXES: IndexDescription[] = [{ name: "couriers_position_2dsphere", key: { position: "2dsphere" } }];

export async function ensureCourierIndexes(db: Db): Promise<void> {
  await db.collection(COLLECTIONS.couriers).createIndexes(COURIER_INDEXES);
}

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

  constructor(private readonly db: Db) {
    this.couriers = db.collection<CourierDoc>(COLLECTIONS.couriers);
  }

  /**
   * Stores a fix unless the stored one is as new or newer (another connection or instance may
   * have written a later fix): the condition is part of the write, so the newest fix always
   * wins. False when the fix was older and nothing changed.
   */
  /**
   * The latest fix of each of these couriers in ONE write (an unordered bulkWrite): each
   * update applies only if no fix as new is stored (a newer one, from another instance, wins).
   */
  async recordPositions(positions: Array<{ courierId: string; fix: CourierModel.fix; seenAt: Date }>): Promise<void> {
    // The `update` command itself, not bulkWrite: the driver's bulk API serializes every
    // statement once to size the batch and again to send it (most of the server's CPU per fix).
    for (let from = 0; from < positions.length; from += POSITION_STATEMENTS_PER_COMMAND) {
      const updates = positions.slice(from, from + POSITION_STATEMENTS_PER_COMMAND).map(({ courierId, fix, seenAt }) => {
        const { set, unset } = positionUpdate(fix, seenAt);
        return {
          q: { _id: courierId, fixAt: { $not: { $gte: fix.at } } },
          u: Object.keys(unset).length ? { $set: set, $unset: unset } : { $set: set },
          upsert: true,
        };
      });
      const reply = await this.db.command({ update: COLLECTIONS.couriers, updates, ordered: false });
      // Duplicate keys: a newer fix is stored, so the upsert tried to insert a second document.
      const failed = ((reply.writeErrors ?? []) as Array<{ code?: number; errmsg?: string }>).filter((e) => e.code !== 11000);
      if (failed.length > 0) throw new Error(`storing courier positions: ${failed.length} statement(s) failed, first: ${failed[0].code} ${failed[0].errmsg}`);
    }
  }

  async recordPosition(courierId: string, fix: CourierModel.fix, seenAt: Date): Promise<boolean> {
    const { set, unset } = positionUpdate(fix, seenAt);
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
      if (isDuplicateKey(err)) return false;
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
      const { now, seenSince, exclude, maxActive } = c.dispatchable;
      query.available = true;
      if (maxActive !== undefined) query[`carrying.${maxActive - 1}`] = { $exists: false };
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

  /** The courier's slots, or null when it never took any (the field is absent). */
  async slots(courierId: string): Promise<CarrySlot[] | null> {
    const doc = await this.couriers.findOne({ _id: courierId }, { projection: { carrying: 1 } });
    return doc?.carrying ? doc.carrying.map((s) => ({ orderId: s.orderId, at: s.at })) : null;
  }

  /**
   * Takes one slot per order in `orderIds` for the courier, all or none, only if it then holds
   * at most `max`: one conditional write (no slot for any of them yet, and fewer than
   * max − n + 1 slots), so concurrent takers on any instance can never together exceed `max`.
   * Orders it already holds slots for are renewed (`at`), not counted twice.
   */
  async takeSlots(courierId: string, orderIds: string[], max: number, at: Date): Promise<TakeSlots> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const held = new Set((await this.slots(courierId))?.map((s) => s.orderId) ?? []);
      const missing = orderIds.filter((id) => !held.has(id));
      const renew = orderIds.filter((id) => held.has(id));
      if (renew.length) {
        await this.couriers.updateOne(
          { _id: courierId },
          { $set: { "carrying.$[s].at": at } },
          { arrayFilters: [{ "s.orderId": { $in: renew } }] },
        );
      }
      if (missing.length === 0) return "held";
      if (held.size + missing.length > max) return "full";
      try {
        // Index max − n exists exactly when the courier already holds more than max − n slots.
        const res = await this.couriers.updateOne(
          { _id: courierId, "carrying.orderId": { $nin: missing }, [`carrying.${max - missing.length}`]: { $exists: false } },
          { $push: { carrying: { $each: missing.map((orderId) => ({ orderId, at })) } } },
          { upsert: true },
        );
        if (res.modifiedCount === 1 || res.upsertedCount === 1) return "taken";
      } catch (err) {
        // The document exists but did not match: the upsert tried to insert a second one.
        if (!isDuplicateKey(err)) throw err;
      }
      // Another taker or releaser changed the slots between the read and the write: read again.
    }
    return "full";
  }

  /** Frees the courier's slots of these orders (no-op for slots it does not hold). */
  async releaseSlots(courierId: string, orderIds: string[]): Promise<void> {
    await this.couriers.updateOne({ _id: courierId }, { $pull: { carrying: { orderId: { $in: orderIds } } } });
  }

  /**
   * Replaces the courier's slots with `next` only if they are still exactly `expected` (null:
   * the field is absent): a reconciliation never overwrites a slot taken meanwhile. True when written.
   */
  async replaceSlots(courierId: string, expected: CarrySlot[] | null, next: CarrySlot[]): Promise<boolean> {
    const filter: Filter<CourierDoc> =
      expected === null ? { _id: courierId, carrying: { $exists: false } } : { _id: courierId, carrying: expected.map((s) => ({ orderId: s.orderId, at: s.at })) };
    try {
      const res = await this.couriers.updateOne(filter, { $set: { carrying: next } }, { upsert: expected === null });
      return res.modifiedCount === 1 || res.upsertedCount === 1;
    } catch (err) {
      if (isDuplicateKey(err)) return false;
      throw err;
    }
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

/** The fields a position fix sets and the optional ones it clears. */
function positionUpdate(fix: CourierModel.fix, seenAt: Date): { set: Partial<CourierDoc>; unset: Record<string, ""> } {
  const set: Partial<CourierDoc> = { position: { type: "Point", coordinates: [fix.lng, fix.lat] }, fixAt: fix.at, lastSeenAt: seenAt };
  const unset: Record<string, ""> = {};
  if (fix.heading !== undefined) set.heading = fix.heading;
  else unset.heading = "";
  if (fix.speedMps !== undefined) set.speedMps = fix.speedMps;
  else unset.speedMps = "";
  return { set, unset };
}

import { ObjectId, type Collection, type Db, type Document, type Filter } from "mongodb";
import { toObjectId } from "../../db/keys";
import { COLLECTIONS } from "../../db/mongo";
import type { LatLng } from "../../geo";
import { localTime, openIntervals, type OpenInterval } from "./hours";
import type { RestaurantModel } from "./model";

/** How a restaurant is stored: GeoJSON location for the 2dsphere index, plus derived query keys. */
type RestaurantDoc = {
  _id: ObjectId;
  ownerId: string;
  name: string;
  cuisines: string[];
  /** Lower-cased cuisines, so `cuisine=` matches regardless of case. */
  cuisineKeys: string[];
  location: { type: "Point"; coordinates: [lng: number, lat: number] };
  address?: string;
  deliveryRadiusMeters: number;
  /** GeoJSON, under a 2dsphere index (discovery's `delivers` asks it with $geoIntersects). */
  deliveryArea?: RestaurantModel.deliveryArea;
  prepTimeMinutes: number;
  isOpen: boolean;
  openingHours?: RestaurantModel.openingHours;
  /** openingHours split into same-day intervals, so `openNow` is answered by the database. */
  openIntervals?: OpenInterval[];
  menu: RestaurantModel.menuItem[];
  rating?: number;
  createdAt: Date;
};

export type NewRestaurant = Omit<RestaurantModel.restaurant, "id" | "createdAt"> & { createdAt: Date };

/** Fields to change; `null` removes an optional field. */
export type RestaurantChanges = Partial<
  Pick<RestaurantModel.restaurant, "name" | "cuisines" | "isOpen" | "deliveryRadiusMeters" | "prepTimeMinutes" | "menu">
> & { address?: string | null; openingHours?: RestaurantModel.openingHours | null; deliveryArea?: RestaurantModel.deliveryArea | null };

export type NearbyCriteria = {
  point: LatLng;
  radiusMeters: number;
  cuisine?: string;
  /** Only restaurants open at this instant. */
  openAt?: Date;
  /** Only restaurants whose delivery radius reaches `point`. */
  delivers?: boolean;
  /** Keyset: strictly after this (distance, id). */
  after?: { distance: number; id: string };
  limit: number;
};

export type NearbyHit = { restaurant: RestaurantModel.restaurant; distanceMeters: number };

const DISTANCE_FIELD = "dist";

function toDomain(doc: RestaurantDoc): RestaurantModel.restaurant {
  const r: RestaurantModel.restaurant = {
    id: doc._id.toHexString(),
    ownerId: doc.ownerId,
    name: doc.name,
    cuisines: doc.cuisines,
    location: { lat: doc.location.coordinates[1], lng: doc.location.coordinates[0] },
    deliveryRadiusMeters: doc.deliveryRadiusMeters,
    prepTimeMinutes: doc.prepTimeMinutes,
    isOpen: doc.isOpen,
    menu: doc.menu.map((m) => ({ id: m.id, name: m.name, priceCents: m.priceCents, available: m.available })),
    createdAt: doc.createdAt.toISOString(),
  };
  if (doc.address !== undefined) r.address = doc.address;
  if (doc.deliveryArea) r.deliveryArea = doc.deliveryArea;
  if (doc.openingHours) r.openingHours = { tz: doc.openingHours.tz, weekly: doc.openingHours.weekly.map((p) => ({ day: p.day, open: p.open, close: p.close })) };
  if (typeof doc.rating === "number") r.rating = doc.rating;
  return r;
}

/** The stored fields derived from domain values (location as GeoJSON, cuisine keys, open intervals). */
function storedFields(changes: RestaurantChanges & { location?: LatLng }): { set: Partial<RestaurantDoc>; unset: Array<keyof RestaurantDoc> } {
  const set: Partial<RestaurantDoc> = {};
  const unset: Array<keyof RestaurantDoc> = [];
  if (changes.name !== undefined) set.name = changes.name;
  if (changes.cuisines !== undefined) {
    set.cuisines = changes.cuisines;
    set.cuisineKeys = [...new Set(changes.cuisines.map((c) => c.toLowerCase()))];
  }
  if (changes.location !== undefined) set.location = { type: "Point", coordinates: [changes.location.lng, changes.location.lat] };
  if (changes.address === null) unset.push("address");
  else if (changes.address !== undefined) set.address = changes.address;
  if (changes.isOpen !== undefined) set.isOpen = changes.isOpen;
  if (changes.deliveryRadiusMeters !== undefined) set.deliveryRadiusMeters = changes.deliveryRadiusMeters;
  if (changes.deliveryArea === null) unset.push("deliveryArea");
  else if (changes.deliveryArea !== undefined) set.deliveryArea = changes.deliveryArea;
  if (changes.prepTimeMinutes !== undefined) set.prepTimeMinutes = changes.prepTimeMinutes;
  if (changes.menu !== undefined) set.menu = changes.menu;
  if (changes.openingHours === null) unset.push("openingHours", "openIntervals");
  else if (changes.openingHours !== undefined) {
    set.openingHours = changes.openingHours;
    set.openIntervals = openIntervals(changes.openingHours.weekly);
  }
  return { set, unset };
}

export async function ensureRestaurantIndexes(db: Db): Promise<void> {
  const col = db.collection(COLLECTIONS.restaurants);
  // Reads by _id use the default index; discovery needs the 2dsphere ones (restaurants without
  // an area are left out of the second: 2dsphere indexes are sparse).
  await col.createIndex({ location: "2dsphere" }, { name: "location_2dsphere" });
  await col.createIndex({ deliveryArea: "2dsphere" }, { name: "deliveryArea_2dsphere" });
}

export class RestaurantRepository {
  private readonly col: Collection<RestaurantDoc>;

  constructor(db: Db) {
    this.col = db.collection<RestaurantDoc>(COLLECTIONS.restaurants);
  }

  async create(r: NewRestaurant): Promise<RestaurantModel.restaurant> {
    const { set } = storedFields(r);
    const doc: RestaurantDoc = {
      _id: new ObjectId(),
      ownerId: r.ownerId,
      name: r.name,
      cuisines: r.cuisines,
      cuisineKeys: set.cuisineKeys ?? [],
      location: set.location ?? { type: "Point", coordinates: [r.location.lng, r.location.lat] },
      deliveryRadiusMeters: r.deliveryRadiusMeters,
      prepTimeMinutes: r.prepTimeMinutes,
      isOpen: r.isOpen,
      menu: r.menu,
      createdAt: r.createdAt,
    };
    if (r.address !== undefined) doc.address = r.address;
    if (r.deliveryArea) doc.deliveryArea = r.deliveryArea;
    if (r.openingHours) {
      doc.openingHours = r.openingHours;
      doc.openIntervals = set.openIntervals;
    }
    if (r.rating !== undefined) doc.rating = r.rating;
    await this.col.insertOne(doc);
    return toDomain(doc);
  }

  async findById(id: string): Promise<RestaurantModel.restaurant | null> {
    const _id = toObjectId(id);
    if (!_id) return null;
    const doc = await this.col.findOne({ _id });
    return doc ? toDomain(doc) : null;
  }

  /** Applies the changes and returns the restaurant as stored afterwards; null if it no longer exists. */
  async update(id: string, changes: RestaurantChanges): Promise<RestaurantModel.restaurant | null> {
    const _id = toObjectId(id);
    if (!_id) return null;
    const { set, unset } = storedFields(changes);
    const update: Document = {};
    if (Object.keys(set).length > 0) update.$set = set;
    if (unset.length > 0) update.$unset = Object.fromEntries(unset.map((k) => [k, ""]));
    if (Object.keys(update).length === 0) return this.findById(id);
    const doc = await this.col.findOneAndUpdate({ _id }, update, { returnDocument: "after" });
    return doc ? toDomain(doc) : null;
  }

  /** Up to `limit` restaurants near a point, nearest first, ties broken by id. */
  async nearby(criteria: NearbyCriteria): Promise<NearbyHit[]> {
    const pipeline = await this.nearbyPipeline(criteria);
    const docs = await this.col.aggregate<RestaurantDoc & { [DISTANCE_FIELD]: number }>(pipeline).toArray();
    return docs.map((d) => ({ restaurant: toDomain(d), distanceMeters: d[DISTANCE_FIELD] }));
  }

  /** The engine's plan for a discovery query (to check it uses the 2dsphere index). */
  async explainNearby(criteria: NearbyCriteria): Promise<Document> {
    const pipeline = await this.nearbyPipeline(criteria);
    return this.col.aggregate(pipeline).explain("queryPlanner");
  }

  private async nearbyPipeline(c: NearbyCriteria): Promise<Document[]> {
    const query: Filter<RestaurantDoc> = {};
    if (c.cuisine !== undefined) query.cuisineKeys = c.cuisine.toLowerCase();
    if (c.openAt) {
      query.isOpen = true;
      query.$or = await this.openAtClauses(c.openAt);
    }
    const geoNear: Document = {
      near: { type: "Point", coordinates: [c.point.lng, c.point.lat] },
      key: "location",
      spherical: true,
      distanceField: DISTANCE_FIELD,
      maxDistance: c.radiusMeters,
      query,
    };
    // minDistance lets the index skip pages already served; the exact keyset cut is the $match below.
    if (c.after) geoNear.minDistance = Math.max(0, c.after.distance - 0.01);
    const pipeline: Document[] = [{ $geoNear: geoNear }];
    if (c.delivers) {
      // Restaurants with an area deliver where it contains the point (asked of the areas' own
      // 2dsphere index); the others where their radius reaches it.
      const reaching = await this.deliveringAreas(c.point);
      pipeline.push({
        $match: {
          $or: [{ _id: { $in: reaching } }, { deliveryArea: { $exists: false }, $expr: { $lte: [`$${DISTANCE_FIELD}`, "$deliveryRadiusMeters"] } }],
        },
      });
    }
    if (c.after) {
      const afterId = toObjectId(c.after.id) ?? new ObjectId("000000000000000000000000");
      pipeline.push({
        $match: { $or: [{ [DISTANCE_FIELD]: { $gt: c.after.distance } }, { [DISTANCE_FIELD]: c.after.distance, _id: { $gt: afterId } }] },
      });
    }
    pipeline.push({ $sort: { [DISTANCE_FIELD]: 1, _id: 1 } }, { $limit: c.limit });
    return pipeline;
  }

  /** Ids of the restaurants whose delivery area contains the point (boundary included). */
  private async deliveringAreas(point: LatLng): Promise<ObjectId[]> {
    const docs = await this.col
      .find({ deliveryArea: { $geoIntersects: { $geometry: { type: "Point", coordinates: [point.lng, point.lat] } } } }, { projection: { _id: 1 } })
      .toArray();
    return docs.map((d) => d._id);
  }

  /** The plan of the area lookup behind `delivers=true` (to check it uses the deliveryArea index). */
  explainDeliveringAreas(point: LatLng): Promise<Document> {
    return this.col.find({ deliveryArea: { $geoIntersects: { $geometry: { type: "Point", coordinates: [point.lng, point.lat] } } } }).explain("queryPlanner");
  }

  /**
   * One clause per time zone in use: local weekday and minute differ per zone, so the
   * database can match the stored intervals directly. No opening hours means always open.
   */
  private async openAtClauses(at: Date): Promise<Filter<RestaurantDoc>[]> {
    const zones = (await this.col.distinct("openingHours.tz")).filter((z): z is string => typeof z === "string");
    const clauses: Filter<RestaurantDoc>[] = [{ openingHours: { $exists: false } }];
    for (const tz of zones) {
      let local: { day: number; minute: number };
      try {
        local = localTime(tz, at);
      } catch {
        continue; // a zone this runtime no longer knows cannot be open
      }
      clauses.push({
        "openingHours.tz": tz,
        openIntervals: { $elemMatch: { day: local.day, from: { $lte: local.minute }, to: { $gt: local.minute } } },
      });
    }
    return clauses;
  }
}

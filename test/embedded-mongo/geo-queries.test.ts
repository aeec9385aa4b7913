// Geo through the official driver: $geoNear, $nearSphere/$near and $geoWithin on a 2dsphere
// index, distances checked against an independent haversine, and MongoDB's usage errors.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type Collection, MongoServerError } from "mongodb";
import { type TestMongo, startTestMongo } from "../helpers/embedded-mongo";

type Place = { _id: number; kind: string; loc: { type: "Point"; coordinates: [number, number] } };

const EARTH_RADIUS = 6378100; // MongoDB's sphere for 2dsphere distances
function haversine([lng1, lat1]: [number, number], [lng2, lat2]: [number, number]): number {
  const rad = Math.PI / 180;
  const h = Math.sin(((lat2 - lat1) * rad) / 2) ** 2 + Math.cos(lat1 * rad) * Math.cos(lat2 * rad) * Math.sin(((lng2 - lng1) * rad) / 2) ** 2;
  return 2 * EARTH_RADIUS * Math.asin(Math.sqrt(h));
}

const CENTER: [number, number] = [13.405, 52.52];
let mongo: TestMongo;
let places: Collection<Place>;
const all: Place[] = [];

beforeAll(async () => {
  mongo = await startTestMongo();
  places = mongo.client.db("geo").collection<Place>("places");
  await places.createIndex({ loc: "2dsphere" });
  // A deterministic scatter of 300 points within ~15 km of the center.
  let seed = 7;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let i = 0; i < 300; i++) {
    all.push({ _id: i, kind: i % 3 === 0 ? "pizza" : "sushi", loc: { type: "Point", coordinates: [CENTER[0] + (rnd() - 0.5) * 0.4, CENTER[1] + (rnd() - 0.5) * 0.25] } });
  }
  await places.insertMany(all);
});
afterAll(() => mongo.close());

function byDistance(from: [number, number], filter: (p: Place) => boolean = () => true) {
  return all
    .filter(filter)
    .map((p) => ({ id: p._id, d: haversine(from, p.loc.coordinates) }))
    .sort((a, b) => a.d - b.d);
}

describe("$geoNear", () => {
  test("returns documents nearest first with distances in meters on MongoDB's sphere", async () => {
    const got = await places
      .aggregate<Place & { dist: number }>([{ $geoNear: { near: { type: "Point", coordinates: CENTER }, distanceField: "dist", spherical: true } }, { $limit: 20 }])
      .toArray();
    const expected = byDistance(CENTER).slice(0, 20);
    expect(got.map((d) => d._id)).toEqual(expected.map((e) => e.id));
    got.forEach((d, i) => expect(Math.abs(d.dist - expected[i].d)).toBeLessThan(0.01));
  });

  test("maxDistance, minDistance, query, includeLocs and distanceMultiplier", async () => {
    const got = await places
      .aggregate<Place & { km: number; where: unknown }>([
        {
          $geoNear: {
            near: { type: "Point", coordinates: CENTER },
            distanceField: "km",
            minDistance: 1000,
            maxDistance: 3000,
            query: { kind: "pizza" },
            includeLocs: "where",
            distanceMultiplier: 0.001,
          },
        },
      ])
      .toArray();
    const expected = byDistance(CENTER, (p) => p.kind === "pizza").filter((e) => e.d >= 1000 && e.d <= 3000);
    expect(expected.length).toBeGreaterThan(0);
    expect(got.map((d) => d._id)).toEqual(expected.map((e) => e.id));
    for (const [i, d] of got.entries()) {
      expect(Math.abs(d.km - expected[i].d / 1000)).toBeLessThan(1e-5);
      expect(d.where).toEqual(all[d._id].loc);
    }
  });

  test("usage errors: not the first stage, no 2dsphere index, bad coordinates", async () => {
    const db = mongo.client.db("geo");
    const near = { type: "Point", coordinates: CENTER };
    const notFirst = await places.aggregate([{ $match: {} }, { $geoNear: { near, distanceField: "d" } }]).toArray().catch((e: unknown) => e as MongoServerError);
    expect((notFirst as MongoServerError).code).toBe(40602);
    await db.collection("plain").insertOne({ loc: near });
    const noIndex = await db.collection("plain").aggregate([{ $geoNear: { near, distanceField: "d" } }]).toArray().catch((e: unknown) => e as MongoServerError);
    expect((noIndex as MongoServerError).code).toBe(27);
    expect((noIndex as MongoServerError).message).toBe("$geoNear requires a 2d or 2dsphere index, but none were found");
    const badPoint = await places
      .aggregate([{ $geoNear: { near: { type: "Point", coordinates: [181, 0] }, distanceField: "d" } }])
      .toArray()
      .catch((e: unknown) => e as MongoServerError);
    expect((badPoint as MongoServerError).code).toBe(2);
    expect((badPoint as MongoServerError).message).toContain("longitude/latitude is out of bounds");
    const noField = await places.aggregate([{ $geoNear: { near } }]).toArray().catch((e: unknown) => e as MongoServerError);
    expect((noField as MongoServerError).code).toBe(2);
  });

  test("uses the 2dsphere index (explain) and sees later writes", async () => {
    const explained = await places.aggregate([{ $geoNear: { near: { type: "Point", coordinates: CENTER }, distanceField: "d" } }]).explain();
    expect(explained.queryPlanner.winningPlan).toMatchObject({ stage: "GEO_NEAR_2DSPHERE", indexName: "loc_2dsphere" });
    await places.updateOne({ _id: 299 }, { $set: { loc: { type: "Point", coordinates: CENTER } } });
    const [first] = await places.aggregate<{ _id: number; d: number }>([{ $geoNear: { near: { type: "Point", coordinates: CENTER }, distanceField: "d" } }, { $limit: 1 }]).toArray();
    expect(first).toMatchObject({ _id: 299, d: 0 });
    await places.updateOne({ _id: 299 }, { $set: { loc: all[299].loc } });
  });
});

describe("$nearSphere / $near", () => {
  test("find sorts by distance and honours $maxDistance in meters", async () => {
    const got = await places.find({ loc: { $nearSphere: { $geometry: { type: "Point", coordinates: CENTER }, $maxDistance: 2000 } }, kind: "sushi" }).toArray();
    const expected = byDistance(CENTER, (p) => p.kind === "sushi").filter((e) => e.d <= 2000);
    expect(got.map((d) => d._id)).toEqual(expected.map((e) => e.id));
    const near = await places.find({ loc: { $near: { $geometry: { type: "Point", coordinates: CENTER } } } }).limit(5).toArray();
    expect(near.map((d) => d._id)).toEqual(byDistance(CENTER).slice(0, 5).map((e) => e.id));
  });

  test("legacy coordinate pairs measure $maxDistance in radians", async () => {
    const got = await places.find({ loc: { $nearSphere: CENTER, $maxDistance: 1500 / EARTH_RADIUS } }).toArray();
    expect(got.map((d) => d._id)).toEqual(byDistance(CENTER).filter((e) => e.d <= 1500).map((e) => e.id));
  });

  test("$near without a 2dsphere index is an error", async () => {
    const err = await mongo.client
      .db("geo")
      .collection("plain")
      .find({ loc: { $near: { $geometry: { type: "Point", coordinates: CENTER } } } })
      .toArray()
      .catch((e: unknown) => e as MongoServerError);
    expect((err as MongoServerError).code).toBe(291);
  });
});

describe("$geoWithin", () => {
  test("$centerSphere selects the points within the radius", async () => {
    const radius = 2500;
    const got = await places.find({ loc: { $geoWithin: { $centerSphere: [CENTER, radius / EARTH_RADIUS] } } }).toArray();
    const expected = byDistance(CENTER).filter((e) => e.d <= radius);
    expect(got.map((d) => d._id).sort((a, b) => a - b)).toEqual(expected.map((e) => e.id).sort((a, b) => a - b));
  });

  test("$geometry Polygon selects the points inside it", async () => {
    const [w, e, s, n] = [13.35, 13.45, 52.49, 52.55];
    const got = await places
      .find({
        loc: {
          $geoWithin: {
            $geometry: {
              type: "Polygon",
              coordinates: [
                [
                  [w, s],
                  [e, s],
                  [e, n],
                  [w, n],
                  [w, s],
                ],
              ],
            },
          },
        },
      })
      .toArray();
    const inside = all.filter((p) => {
      const [lng, lat] = p.loc.coordinates;
      return lng > w && lng < e && lat > s && lat < n;
    });
    // Polygon edges are geodesics; only points well inside the box are certain to match.
    const certain = inside.filter((p) => p.loc.coordinates[1] > s + 0.001 && p.loc.coordinates[1] < n - 0.001).map((p) => p._id);
    const ids = got.map((d) => d._id);
    for (const id of certain) expect(ids).toContain(id);
    expect(ids.length).toBeLessThanOrEqual(inside.length + 2);
  });

  test("documents with an invalid location cannot enter a 2dsphere-indexed collection", async () => {
    const err = await places.insertOne({ _id: 10_000, kind: "x", loc: { type: "Point", coordinates: [200, 100] } }).catch((e: unknown) => e as MongoServerError);
    expect((err as MongoServerError).code).toBe(16755);
  });
});

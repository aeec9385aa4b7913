// Geo as MongoDB treats points and polygons, through the official driver: $geoIntersects with a point
// against stored Polygon/MultiPolygon zones, points on edges and vertices, invalid polygons refused on
// insert under a 2dsphere index (16755) and in queries (BadValue), $within, $near over stored
// polygons, $minDistance/$maxDistance units and where they are refused, $geoNear inside $lookup.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type Collection, type Document } from "mongodb";
import { type TestMongo, rejectionOf, startTestMongo } from "../helpers/embedded-mongo";

type Doc = { _id: number | string; [field: string]: unknown };
const R = 6378100;
let mongo: TestMongo;
let zones: Collection<Doc>;

const square = (x0: number, y0: number, x1: number, y1: number) => [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]];
const point = (lng: number, lat: number) => ({ type: "Point", coordinates: [lng, lat] });

beforeAll(async () => {
  mongo = await startTestMongo();
  zones = mongo.client.db("geo-shapes").collection<Doc>("zones");
  await zones.createIndex({ area: "2dsphere" });
  await zones.insertMany([
    // A delivery zone with a hole (a park the couriers do not enter).
    { _id: 1, name: "centre", area: { type: "Polygon", coordinates: [square(0, 0, 10, 10), square(4, 4, 6, 6)] } },
    { _id: 2, name: "islands", area: { type: "MultiPolygon", coordinates: [[square(20, 20, 21, 21)], [square(30, 30, 31, 31)]] } },
    { _id: 3, name: "overlap", area: { type: "Polygon", coordinates: [square(8, 8, 12, 12)] } },
    { _id: 4, name: "a shop", area: point(50, 50) },
    { _id: 5, name: "no area" },
  ]);
});
afterAll(() => mongo.close());

async function ids(filter: Document): Promise<number[]> {
  const docs = await zones.find(filter).toArray();
  return docs.map((d) => d._id as number).sort((a, b) => a - b);
}

describe("$geoIntersects with a point against stored zones", () => {
  const at = (lng: number, lat: number) => ids({ area: { $geoIntersects: { $geometry: point(lng, lat) } } });

  test("inside, in a hole, outside, and in the overlap of two zones", async () => {
    expect(await at(2, 2)).toEqual([1]);
    expect(await at(5, 5)).toEqual([]); // the hole
    expect(await at(9, 9)).toEqual([1, 3]);
    expect(await at(11, 11)).toEqual([3]);
    expect(await at(-1, 5)).toEqual([]);
  });

  test("MultiPolygon: any of its polygons", async () => {
    expect(await at(20.5, 20.5)).toEqual([2]);
    expect(await at(30.5, 30.2)).toEqual([2]);
    expect(await at(25, 25)).toEqual([]);
  });

  test("points on an edge or a vertex intersect (the shell's and the hole's)", async () => {
    expect(await at(0, 5)).toEqual([1]); // on a meridian edge
    expect(await at(5, 0)).toEqual([1]); // on the equator edge
    expect(await at(10, 0)).toEqual([1]); // a vertex
    expect(await at(4, 5)).toEqual([1]); // on the hole's edge
    expect(await at(50, 50)).toEqual([4]); // a stored point intersects the same point
  });

  test("a query polygon intersects stored polygons and points it overlaps", async () => {
    expect(await ids({ area: { $geoIntersects: { $geometry: { type: "Polygon", coordinates: [square(11, 11, 25, 25)] } } } })).toEqual([2, 3]);
    expect(await ids({ area: { $geoIntersects: { $geometry: { type: "Polygon", coordinates: [square(49, 49, 51, 51)] } } } })).toEqual([4]);
    // A line through the hole crosses the shell.
    expect(await ids({ area: { $geoIntersects: { $geometry: { type: "LineString", coordinates: [[5, 5], [5, -5]] } } } })).toEqual([1]);
  });

  test("legacy shapes are refused", async () => {
    const err = await rejectionOf(zones.find({ area: { $geoIntersects: { $box: [[0, 0], [1, 1]] } } }).toArray());
    expect(err.code).toBe(2);
  });
});

describe("invalid polygons", () => {
  const invalid: Array<[string, number[][][]]> = [
    ["self-intersecting (bow tie)", [[[0, 0], [2, 2], [2, 0], [0, 2], [0, 0]]]],
    ["a hole outside its shell", [square(0, 0, 1, 1), square(3, 3, 4, 4)]],
    ["a hole equal to its shell", [square(0, 0, 1, 1), square(0, 0, 1, 1)]],
    ["a hole crossing its shell", [square(0, 0, 2, 2), square(1, 1, 3, 3)]],
    ["an unclosed ring", [[[0, 0], [1, 0], [1, 1], [0, 1]]]],
    ["fewer than 3 distinct vertices", [[[0, 0], [1, 0], [1, 0], [0, 0]]]],
    ["a duplicated vertex", [[[0, 0], [2, 0], [1, 1], [2, 2], [0, 2], [1, 1], [0, 0]]]],
  ];

  for (const [what, coordinates] of invalid) {
    test(`${what}: refused on insert under a 2dsphere index, and in queries`, async () => {
      const err = await rejectionOf(zones.insertOne({ _id: 100, area: { type: "Polygon", coordinates } }));
      expect(err.code).toBe(16755);
      expect(err.message).toContain("Can't extract geo keys");
      expect(await zones.countDocuments({ _id: 100 })).toBe(0);
      for (const op of ["$geoWithin", "$geoIntersects"]) {
        const q = await rejectionOf(zones.find({ area: { [op]: { $geometry: { type: "Polygon", coordinates } } } }).toArray());
        expect(q.code).toBe(2);
      }
    });
  }

  test("an update that would make a location invalid is refused and changes nothing", async () => {
    const err = await rejectionOf(zones.updateOne({ _id: 3 }, { $set: { "area.coordinates": [[[0, 0], [2, 2], [2, 0], [0, 2], [0, 0]]] } }));
    expect(err.code).toBe(16755);
    expect((await zones.findOne({ _id: 3 }))?.area).toEqual({ type: "Polygon", coordinates: [square(8, 8, 12, 12)] });
  });

  test("valid shapes are accepted: a hole touching its shell at a vertex, lines, collections", async () => {
    const other = mongo.client.db("geo-shapes").collection<Doc>("valid");
    await other.createIndex({ g: "2dsphere" });
    await other.insertMany([
      { _id: 1, g: { type: "Polygon", coordinates: [square(0, 0, 4, 4), [[0, 0], [1, 2], [2, 1], [0, 0]]] } },
      { _id: 2, g: { type: "LineString", coordinates: [[0, 0], [1, 1], [2, 0]] } },
      { _id: 3, g: { type: "GeometryCollection", geometries: [point(1, 1), { type: "LineString", coordinates: [[0, 0], [1, 0]] }] } },
      { _id: 4, g: [[1, 2], [3, 4]] },
    ]);
    expect(await other.countDocuments()).toBe(4);
  });
});

describe("$geoWithin and $within", () => {
  const within = { $geometry: { type: "Polygon", coordinates: [square(-1, -1, 11, 11)] } };

  test("$within is $geoWithin; polygons are within only when wholly inside", async () => {
    expect(await ids({ area: { $geoWithin: within } })).toEqual([1]);
    expect(await ids({ area: { $within: within } })).toEqual([1]);
    expect(await ids({ area: { $within: { $centerSphere: [[50, 50], 0.001] } } })).toEqual([4]);
  });

  test("points on a polygon's edge or vertex are within it", async () => {
    const pts = mongo.client.db("geo-shapes").collection<Doc>("edge-points");
    await pts.createIndex({ loc: "2dsphere" });
    await pts.insertMany([
      { _id: 1, loc: point(0, 5) },
      { _id: 2, loc: point(10, 10) },
      { _id: 3, loc: point(5, 0) },
      { _id: 4, loc: point(10.001, 5) },
    ]);
    const got = await pts.find({ loc: { $geoWithin: { $geometry: { type: "Polygon", coordinates: [square(0, 0, 10, 10)] } } } }).toArray();
    expect(got.map((d) => d._id).sort()).toEqual([1, 2, 3]);
  });
});

describe("$near and $nearSphere", () => {
  test("stored polygons rank by their nearest part, 0 from inside", async () => {
    const got = await zones.find({ area: { $near: { $geometry: point(9, 9) } } }).toArray();
    expect(got.map((d) => d._id)).toEqual([1, 3, 2, 4]);
    const agg = await zones.aggregate([{ $geoNear: { near: point(15, 5), distanceField: "d" } }, { $project: { d: 1 } }]).toArray();
    expect(agg.map((d) => d._id)).toEqual([3, 1, 2, 4]);
    // To the zone [8,12]²: nearest is its corner (12, 8).
    const toCorner = Math.acos(Math.sin(5 * (Math.PI / 180)) * Math.sin(8 * (Math.PI / 180)) + Math.cos(5 * (Math.PI / 180)) * Math.cos(8 * (Math.PI / 180)) * Math.cos(3 * (Math.PI / 180))) * R;
    expect(Math.abs((agg[0].d as number) - toCorner)).toBeLessThan(1);
  });

  const places = () => mongo.client.db("geo-shapes").collection<Doc>("places");
  beforeAll(async () => {
    await places().createIndex({ loc: "2dsphere" });
    // Points due north of (0, 0) at 1, 2, 3 and 4 km.
    await places().insertMany([1, 2, 3, 4].map((km) => ({ _id: km, loc: point(0, ((km * 1000) / R) * (180 / Math.PI)) })));
  });
  const origin = point(0, 0);
  const got = async (filter: Document) => (await places().find(filter).toArray()).map((d) => d._id);

  test("GeoJSON points: meters, in the $geometry form and beside a plain GeoJSON point", async () => {
    expect(await got({ loc: { $nearSphere: { $geometry: origin, $minDistance: 1500, $maxDistance: 3500 } } })).toEqual([2, 3]);
    expect(await got({ loc: { $near: { $geometry: origin, $minDistance: 1500, $maxDistance: 3500 } } })).toEqual([2, 3]);
    expect(await got({ loc: { $nearSphere: origin, $minDistance: 2500 } })).toEqual([3, 4]);
    expect(await got({ loc: { $near: origin, $maxDistance: 2500 } })).toEqual([1, 2]);
  });

  test("legacy pairs under $nearSphere: radians", async () => {
    expect(await got({ loc: { $nearSphere: [0, 0], $minDistance: 1500 / R, $maxDistance: 3500 / R } })).toEqual([2, 3]);
  });

  test("refused: a flat legacy $near (needs a 2d index), distances beside $geometry, distances outside $near", async () => {
    expect((await rejectionOf(places().find({ loc: { $near: [0, 0], $maxDistance: 0.1 } }).toArray())).code).toBe(291);
    expect((await rejectionOf(places().find({ loc: { $near: { $geometry: origin }, $maxDistance: 10 } }).toArray())).code).toBe(2);
    expect((await rejectionOf(places().find({ loc: { $maxDistance: 10 } }).toArray())).code).toBe(2);
    expect((await rejectionOf(places().find({ loc: { $geoWithin: { $centerSphere: [[0, 0], 1] }, $minDistance: 10 } }).toArray())).code).toBe(2);
    expect((await rejectionOf(places().find({ loc: { $nearSphere: { $geometry: origin, $minDistance: -1 } } }).toArray())).code).toBe(2);
  });

  test("$geoNear inside a $lookup sub-pipeline, near from a let variable", async () => {
    const shops = mongo.client.db("geo-shapes").collection<Doc>("shops");
    await shops.insertMany([
      { _id: "a", at: point(0, 0) },
      { _id: "b", at: point(0, ((3.2 * 1000) / R) * (180 / Math.PI)) },
    ]);
    const out = await shops
      .aggregate([
        { $sort: { _id: 1 } },
        {
          $lookup: {
            from: "places",
            let: { here: "$at" },
            pipeline: [{ $geoNear: { near: "$$here", distanceField: "m", maxDistance: 1500 } }, { $project: { _id: 1 } }],
            as: "nearby",
          },
        },
      ])
      .toArray();
    expect(out.map((d) => [d._id, (d.nearby as Document[]).map((n) => n._id)])).toEqual([
      ["a", [1]],
      ["b", [3, 4, 2]],
    ]);
  });
});

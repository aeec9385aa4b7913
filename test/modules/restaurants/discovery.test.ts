import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { distanceMeters, type LatLng } from "../../../src/geo";
import { isOpenAt } from "../../../src/modules/restaurants/hours";
import { RestaurantRepository } from "../../../src/modules/restaurants/repository";
import { startTestServer, TestClock, type Registered, type TestServer } from "../../helpers/server";

// Monday 2025-01-06 12:00 UTC.
const clock = new TestClock("2025-01-06T12:00:00Z");
let srv: TestServer;
let owner: Registered;

beforeAll(async () => {
  srv = await startTestServer({}, { clock });
  owner = await srv.register("restaurant");
});
afterAll(async () => {
  await srv?.stop();
});

type Item = { id: string; name: string; distanceMeters: number; location: LatLng; deliveryRadiusMeters: number };

/** Deterministic pseudo-random numbers, so a failure can be replayed. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A point `north` and `east` meters away from `from` (small offsets). */
function offset(from: LatLng, north: number, east: number): LatLng {
  return { lat: from.lat + north / 111_320, lng: from.lng + east / (111_320 * Math.cos((from.lat * Math.PI) / 180)) };
}

async function create(body: Record<string, unknown>): Promise<Item> {
  const res = await srv.request("POST", "/restaurants", { token: owner.token, body: { name: "R", ...body } });
  if (res.status !== 201) throw new Error(`create failed: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

async function nearby(params: Record<string, string | number | boolean | undefined>) {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined) qs.set(k, String(v));
  return srv.request("GET", `/restaurants?${qs}`);
}

/** Follows nextCursor to the end; `between` runs after the first page. */
async function allPages(params: Record<string, string | number | boolean>, between?: () => Promise<void>): Promise<Item[][]> {
  const pages: Item[][] = [];
  let cursor: string | null = null;
  do {
    const res = await nearby(cursor ? { ...params, cursor } : params);
    expect(res.status).toBe(200);
    pages.push(res.body.items);
    cursor = res.body.nextCursor;
    if (pages.length === 1 && between) await between();
  } while (cursor && pages.length < 100);
  return pages;
}

describe("GET /restaurants (discovery)", () => {
  const center: LatLng = { lat: 48.8566, lng: 2.3522 };
  const seeded: Item[] = [];

  beforeAll(async () => {
    const rand = prng(42);
    const cuisines = ["thai", "Italian", "sushi"];
    for (let i = 0; i < 40; i++) {
      // Up to ~8 km away in any direction, so some fall outside the 5 km default radius.
      const angle = rand() * 2 * Math.PI;
      const dist = 200 + rand() * 7800;
      const location = offset(center, Math.sin(angle) * dist, Math.cos(angle) * dist);
      seeded.push(await create({ name: `Seed ${i}`, location, cuisines: [cuisines[i % 3]], deliveryRadiusMeters: 1000 + Math.floor(rand() * 6000) }));
    }
  });

  test("when asked near a point then nearest first, matching an independent haversine, with distanceMeters on each", async () => {
    const res = await nearby({ lat: center.lat, lng: center.lng, limit: 100 });
    expect(res.status).toBe(200);
    const expected = seeded
      .map((r) => ({ id: r.id, d: distanceMeters(center, r.location) }))
      .filter((r) => r.d <= 5000)
      .sort((a, b) => a.d - b.d);
    expect(expected.length).toBeGreaterThan(10);
    expect(expected.length).toBeLessThan(seeded.length);
    expect(res.body.items.map((i: Item) => i.id)).toEqual(expected.map((e) => e.id));
    res.body.items.forEach((item: Item, n: number) => expect(Math.abs(item.distanceMeters - expected[n].d)).toBeLessThan(0.5));
    expect(res.body.nextCursor).toBeNull();
  });

  test("when a radius is given then only restaurants within it", async () => {
    const res = await nearby({ lat: center.lat, lng: center.lng, radius: 2500, limit: 100 });
    expect(res.status).toBe(200);
    const expected = seeded.filter((r) => distanceMeters(center, r.location) <= 2500).map((r) => r.id);
    expect(res.body.items.map((i: Item) => i.id).sort()).toEqual(expected.sort());
    for (const item of res.body.items) expect(item.distanceMeters).toBeLessThanOrEqual(2500);
  });

  test("when a cuisine is given then only that cuisine, in any letter case", async () => {
    const res = await nearby({ lat: center.lat, lng: center.lng, cuisine: "ITALIAN", limit: 100 });
    expect(res.status).toBe(200);
    const expected = seeded.filter((r, i) => i % 3 === 1 && distanceMeters(center, r.location) <= 5000).map((r) => r.id);
    expect(res.body.items.map((i: Item) => i.id).sort()).toEqual(expected.sort());
  });

  test("when delivers=true then only restaurants whose delivery radius reaches the point", async () => {
    const res = await nearby({ lat: center.lat, lng: center.lng, delivers: true, limit: 100 });
    expect(res.status).toBe(200);
    const expected = seeded
      .filter((r) => {
        const d = distanceMeters(center, r.location);
        return d <= 5000 && d <= r.deliveryRadiusMeters;
      })
      .map((r) => r.id);
    expect(expected.length).toBeGreaterThan(0);
    expect(res.body.items.map((i: Item) => i.id).sort()).toEqual(expected.sort());
  });

  test("when following nextCursor with an insert between pages then no repeats and no gaps", async () => {
    const params = { lat: center.lat, lng: center.lng, limit: 4 };
    const inserted: Item[] = [];
    const pages = await allPages(params, async () => {
      // One nearer than anything served so far (the cursor is past it) and one far down the list.
      inserted.push(await create({ name: "Late near", location: offset(center, 1, 1) }));
      inserted.push(await create({ name: "Late far", location: offset(center, 4900, 0) }));
    });
    expect(pages.length).toBeGreaterThan(3);
    for (const page of pages.slice(0, -1)) expect(page).toHaveLength(4);
    const ids = pages.flat().map((i) => i.id);
    expect(new Set(ids).size).toBe(ids.length);
    const existed = seeded.filter((r) => distanceMeters(center, r.location) <= 5000).map((r) => r.id);
    for (const id of existed) expect(ids).toContain(id);
    // The far newcomer lies beyond the cursor, so it shows up in its place; the near one was already passed.
    expect(ids).toContain(inserted[1].id);
    expect(ids).not.toContain(inserted[0].id);
    const distances = pages.flat().map((i) => i.distanceMeters);
    expect(distances).toEqual([...distances].sort((a, b) => a - b));
  });

  test("when the cursor is garbage or from another query then 400 problem+json on /cursor", async () => {
    const first = await nearby({ lat: center.lat, lng: center.lng, limit: 2 });
    const cursor = first.body.nextCursor as string;
    expect(typeof cursor).toBe("string");
    for (const bad of [
      { lat: center.lat, lng: center.lng, limit: 2, cursor: "garbage" },
      { lat: center.lat, lng: center.lng, limit: 2, cursor: cursor.slice(0, -3) },
      { lat: center.lat, lng: center.lng, radius: 3000, limit: 2, cursor },
      { lat: center.lat, lng: center.lng, cuisine: "thai", limit: 2, cursor },
    ]) {
      const res = await nearby(bad);
      expect(res.status).toBe(400);
      expect(res.headers.get("content-type")).toContain("application/problem+json");
      expect(res.body.errors[0].path).toBe("/cursor");
    }
    // The page size may change between pages.
    expect((await nearby({ lat: center.lat, lng: center.lng, limit: 7, cursor })).status).toBe(200);
  });
});

describe("GET /restaurants: equal distances", () => {
  test("restaurants at the same spot page one at a time with no repeat or gap (ties broken by id)", async () => {
    const spot: LatLng = { lat: -33.8688, lng: 151.2093 };
    const twins: Item[] = [];
    for (let i = 0; i < 5; i++) twins.push(await create({ name: `Twin ${i}`, location: offset(spot, 300, 0) }));
    const pages = await allPages({ lat: spot.lat, lng: spot.lng, limit: 1 });
    const ids = pages.flat().map((i) => i.id);
    expect(ids).toEqual(twins.map((t) => t.id).sort());
  });
});

describe("GET /restaurants?openNow=true", () => {
  const spot: LatLng = { lat: 35.6762, lng: 139.6503 };
  const named: Record<string, Item> = {};

  beforeAll(async () => {
    const specs: Array<[string, Record<string, unknown>]> = [
      ["parisLunch", { isOpen: true, openingHours: { tz: "Europe/Paris", weekly: [{ day: 1, open: "11:00", close: "14:00" }] } }],
      ["newYorkLunch", { isOpen: true, openingHours: { tz: "America/New_York", weekly: [{ day: 1, open: "11:00", close: "14:00" }] } }],
      ["tokyoMondayNight", { isOpen: true, openingHours: { tz: "Asia/Tokyo", weekly: [{ day: 1, open: "20:00", close: "02:00" }] } }],
      ["tokyoSundayNight", { isOpen: true, openingHours: { tz: "Asia/Tokyo", weekly: [{ day: 0, open: "22:00", close: "02:00" }] } }],
      ["alwaysOpen", { isOpen: true }],
      ["switchedOff", { isOpen: false }],
      ["switchedOffInHours", { isOpen: false, openingHours: { tz: "Europe/Paris", weekly: [{ day: 1, open: "00:00", close: "00:00" }] } }],
    ];
    let n = 0;
    for (const [name, spec] of specs) named[name] = await create({ name, location: offset(spot, 100 * ++n, 0), ...spec });
  });

  async function openNames(): Promise<string[]> {
    const res = await nearby({ lat: spot.lat, lng: spot.lng, openNow: true, limit: 100 });
    expect(res.status).toBe(200);
    return res.body.items.map((i: Item) => i.name).sort();
  }

  test("evaluates each restaurant's hours in its own time zone, overnight hours included", async () => {
    // Monday 12:00 UTC = 13:00 Paris (open), 07:00 New York (closed), 21:00 Tokyo (Monday night open).
    clock.set("2025-01-06T12:00:00Z");
    expect(await openNames()).toEqual(["alwaysOpen", "parisLunch", "tokyoMondayNight"]);
    // Sunday 16:30 UTC = Monday 01:30 Tokyo: Sunday's overnight period is still running.
    clock.set("2025-01-05T16:30:00Z");
    expect(await openNames()).toEqual(["alwaysOpen", "tokyoSundayNight"]);
    // Monday 17:30 UTC = Tuesday 02:30 Tokyo, 12:30 New York.
    clock.set("2025-01-06T17:30:00Z");
    expect(await openNames()).toEqual(["alwaysOpen", "newYorkLunch"]);
  });

  test("agrees with isOpenAt for every restaurant at many instants", async () => {
    const all = Object.values(named);
    for (let h = 0; h < 48; h += 5) {
      const at = new Date(Date.parse("2025-01-05T00:00:00Z") + h * 3_600_000 + 17 * 60_000);
      clock.set(at);
      const expected = all
        .filter((r) => isOpenAt(r as unknown as Parameters<typeof isOpenAt>[0], at))
        .map((r) => r.name)
        .sort();
      expect({ at: at.toISOString(), open: await openNames() }).toEqual({ at: at.toISOString(), open: expected });
    }
    clock.set("2025-01-06T12:00:00Z");
  });

  test("without openNow, closed restaurants are listed too", async () => {
    const res = await nearby({ lat: spot.lat, lng: spot.lng, limit: 100 });
    expect(res.body.items.map((i: Item) => i.name).sort()).toEqual(Object.keys(named).sort());
  });
});

describe("GET /restaurants: validation", () => {
  test("bad coordinates, radius or limit give 400 problem+json naming the parameter", async () => {
    const cases: Array<[Record<string, string | number>, string]> = [
      [{ lat: 91, lng: 0 }, "/lat"],
      [{ lat: -90.5, lng: 0 }, "/lat"],
      [{ lat: 0, lng: 180.01 }, "/lng"],
      [{ lat: 0, lng: -200 }, "/lng"],
      [{ lat: "abc", lng: 0 }, "/lat"],
      [{ lat: "NaN", lng: 0 }, "/lat"],
      [{ lng: 0 }, "/lat"],
      [{ lat: 0 }, "/lng"],
      [{ lat: 0, lng: 0, radius: 50_001 }, "/radius"],
      [{ lat: 0, lng: 0, radius: -1 }, "/radius"],
      [{ lat: 0, lng: 0, limit: 101 }, "/limit"],
      [{ lat: 0, lng: 0, limit: 0 }, "/limit"],
      [{ lat: 0, lng: 0, limit: 2.5 }, "/limit"],
      [{ lat: 0, lng: 0, openNow: "yes" }, "/openNow"],
    ];
    for (const [params, path] of cases) {
      const res = await nearby(params);
      expect({ params, status: res.status }).toEqual({ params, status: 400 });
      expect(res.headers.get("content-type")).toContain("application/problem+json");
      expect({ params, paths: res.body.errors.map((e: { path: string }) => e.path) }).toEqual({ params, paths: expect.arrayContaining([path]) });
    }
  });

  test("infinite coordinates are refused with 400", async () => {
    for (const params of [{ lat: "Infinity", lng: 0 }, { lat: 0, lng: "-Infinity" }, { lat: "1e400", lng: 0 }]) {
      const res = await nearby(params);
      expect({ params, status: res.status }).toEqual({ params, status: 400 });
      expect(res.body.errors.length).toBeGreaterThan(0);
    }
  });

  test("the edges of the valid ranges are accepted", async () => {
    for (const params of [{ lat: 90, lng: 180 }, { lat: -90, lng: -180 }, { lat: 0, lng: 0, radius: 50_000, limit: 100 }]) {
      expect({ params, status: (await nearby(params)).status }).toEqual({ params, status: 200 });
    }
  });
});

describe("discovery index", () => {
  test("the restaurants collection has a 2dsphere index on location", async () => {
    const indexes = await srv.deps.db.db.collection("restaurants").listIndexes().toArray();
    expect(indexes.some((i) => i.key?.location === "2dsphere")).toBe(true);
  });

  test("the discovery query is planned on the 2dsphere index", async () => {
    const plan = await new RestaurantRepository(srv.deps.db.db).explainNearby({
      point: { lat: 48.8566, lng: 2.3522 },
      radiusMeters: 5000,
      cuisine: "thai",
      openAt: new Date("2025-01-06T12:00:00Z"),
      delivers: true,
      after: { distance: 10, id: "0123456789abcdef01234567" },
      limit: 21,
    });
    // Plan stages nest differently on real MongoDB (FETCH → GEO_NEAR_2DSPHERE), so search the whole tree.
    const stages: Array<{ stage?: unknown; indexName?: unknown }> = [];
    const walk = (v: unknown): void => {
      if (Array.isArray(v)) v.forEach(walk);
      else if (v && typeof v === "object") {
        if ("stage" in v) stages.push(v as { stage?: unknown; indexName?: unknown });
        Object.values(v).forEach(walk);
      }
    };
    walk(plan);
    expect(stages.some((s) => s.stage === "GEO_NEAR_2DSPHERE" && s.indexName === "location_2dsphere")).toBe(true);
    expect(stages.some((s) => s.stage === "COLLSCAN")).toBe(false);
  });
});

// bun run bench:db — the embedded engine through the official driver, next to Redis GEOSEARCH.
// (a) $geoNear nearest-20 within 3 km over 10k and 100k points in a 30 × 30 km square vs
//     GEOSEARCH ... BYRADIUS 3 km ASC COUNT 20 on the same points (a redis-server started here);
// (b) insertOne / findOne by _id / findOneAndUpdate by _id+version, ops/s, in memory and with a
//     data dir (fsync on every write). Sequential requests on one connection: this is latency, not throughput.
// (c) group commit: commit latency, fsyncs and commits per fsync under 1, 8 and 32 concurrent writers.
// Options: --quick (1k queries per size), --sizes 10000,100000; BENCH_TINY=1 (the `bun test` smoke run).

import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import Redis from "ioredis";
import { MongoClient } from "mongodb";
import { startEmbeddedMongo } from "../../src/embedded-mongo";
import { EARTH_RADIUS_METERS, sphereDistanceMeters } from "../../src/embedded-mongo/geo";
import { seededRandom } from "../lib/random";
import { TINY } from "./lib";

const args = process.argv.slice(2);
const quick = args.includes("--quick") || TINY;
const sizesArg = args[args.indexOf("--sizes") + 1];
const SIZES = args.includes("--sizes") && sizesArg ? sizesArg.split(",").map(Number) : TINY ? [2_000] : [10_000, 100_000];
const QUERIES = TINY ? 100 : quick ? 1000 : 3000;
const WARMUP = TINY ? 20 : 300;
const CRUD_SECONDS = TINY ? 0.3 : quick ? 1 : 2;
const WRITERS = [1, 8, 32];

// A 30 × 30 km square around central Berlin.
const ORIGIN = { lng: 13.25, lat: 52.4 };
const DEG_M = (Math.PI / 180) * EARTH_RADIUS_METERS;
const SPAN_LAT = 30_000 / DEG_M;
const SPAN_LNG = 30_000 / (DEG_M * Math.cos(((ORIGIN.lat + SPAN_LAT / 2) * Math.PI) / 180));


function randomPoints(n: number, seed: number): Array<[number, number]> {
  const r = seededRandom(seed);
  return Array.from({ length: n }, () => [ORIGIN.lng + r() * SPAN_LNG, ORIGIN.lat + r() * SPAN_LAT]);
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

async function startRedis(): Promise<{ port: number; stop(): Promise<void> }> {
  const port = await freePort();
  const proc = Bun.spawn(["redis-server", "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
    stdout: "ignore",
    stderr: "inherit",
  });
  const deadline = Date.now() + 5000;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, "127.0.0.1", () => {
        s.end();
        resolve(true);
      });
      s.once("error", () => resolve(false));
    });
    if (ok) break;
    if (Date.now() > deadline) {
      proc.kill(9);
      throw new Error("redis-server did not start");
    }
    await Bun.sleep(20);
  }
  return {
    port,
    async stop() {
      proc.kill("SIGTERM");
      await proc.exited;
    },
  };
}

const fmt = (ms: number) => (ms < 1 ? `${(ms * 1000).toFixed(0)} µs` : `${ms.toFixed(2)} ms`);

function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
  return [line(headers), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...rows.map(line)].join("\n");
}

async function geoBench(uri: string, redisPort: number): Promise<string[][]> {
  const client = new MongoClient(uri, { maxPoolSize: 1 });
  const redis = new Redis({ port: redisPort, host: "127.0.0.1", lazyConnect: true });
  await client.connect();
  await redis.connect();
  const rows: string[][] = [];
  try {
    for (const n of SIZES) {
      process.stderr.write(`geo: ${n} points…\n`);
      const points = randomPoints(n, n);
      const coll = client.db("bench").collection<{ _id: number; loc: { type: "Point"; coordinates: [number, number] } }>(`points_${n}`);
      await coll.drop().catch(() => undefined);
      await coll.createIndex({ loc: "2dsphere" });
      const tLoad = performance.now();
      for (let i = 0; i < n; i += 5000) {
        await coll.insertMany(points.slice(i, i + 5000).map((p, j) => ({ _id: i + j, loc: { type: "Point", coordinates: p } })), { ordered: false });
      }
      const loadMongo = performance.now() - tLoad;
      const key = `points:${n}`;
      await redis.del(key);
      for (let i = 0; i < n; i += 5000) {
        const args: Array<string | number> = [];
        points.slice(i, i + 5000).forEach((p, j) => args.push(p[0], p[1], String(i + j)));
        await redis.geoadd(key, ...args);
      }

      const centers = randomPoints(WARMUP + QUERIES, n + 1);
      const geoNear = (c: [number, number]) =>
        coll
          .aggregate<{ _id: number; dist: number }>([
            { $geoNear: { near: { type: "Point", coordinates: c }, distanceField: "dist", maxDistance: 3000, spherical: true, key: "loc" } },
            { $limit: 20 },
          ])
          .toArray();
      const geoSearch = async (c: [number, number]) =>
        (await redis.call("GEOSEARCH", key, "FROMLONLAT", c[0], c[1], "BYRADIUS", 3, "km", "ASC", "COUNT", 20)) as string[];

      // Same answers? Redis uses its own earth radius and 52-bit geohash cells, so compare sets.
      let overlap = 0;
      let checked = 0;
      for (let i = 0; i < 50; i++) {
        const c = centers[i];
        const [m, r] = await Promise.all([geoNear(c), geoSearch(c)]);
        const ids = new Set(r.map(Number));
        overlap += m.filter((d) => ids.has(d._id)).length;
        checked += Math.max(m.length, r.length);
        const brute = points
          .map((p, id) => ({ id, d: sphereDistanceMeters(c, p) }))
          .filter((x) => x.d <= 3000)
          .sort((a, b) => a.d - b.d)
          .slice(0, 20);
        if (brute.length !== m.length || brute.some((b, k) => b.id !== m[k]._id)) throw new Error(`$geoNear disagrees with brute force at query ${i}`);
      }

      // Interleaved, so both sides see the same machine load.
      const mongo: number[] = [];
      const red: number[] = [];
      for (let i = 0; i < WARMUP + QUERIES; i++) {
        const t0 = performance.now();
        await geoNear(centers[i]);
        const t1 = performance.now();
        await geoSearch(centers[i]);
        const t2 = performance.now();
        if (i >= WARMUP) {
          mongo.push(t1 - t0);
          red.push(t2 - t1);
        }
      }
      mongo.sort((a, b) => a - b);
      red.sort((a, b) => a - b);
      const ratio = percentile(mongo, 50) / percentile(red, 50);
      rows.push([
        n.toLocaleString("en-US"),
        fmt(percentile(mongo, 50)),
        fmt(percentile(mongo, 99)),
        fmt(percentile(red, 50)),
        fmt(percentile(red, 99)),
        `${ratio.toFixed(2)}×`,
        `${((overlap / Math.max(1, checked)) * 100).toFixed(1)}%`,
        `${(loadMongo / 1000).toFixed(1)} s`,
      ]);
      await coll.drop();
      await redis.del(key);
    }
  } finally {
    await client.close();
    redis.disconnect();
  }
  return rows;
}

async function crudBench(label: string, uri: string): Promise<string[]> {
  process.stderr.write(`crud: ${label}…\n`);
  const client = new MongoClient(uri, { maxPoolSize: 1 });
  await client.connect();
  try {
    const coll = client.db("bench").collection<{ _id: number; version: number; status: string; total: number }>("orders");
    await coll.drop().catch(() => undefined);
    const rate = async (op: (i: number) => Promise<unknown>): Promise<[number, number]> => {
      const until = performance.now() + CRUD_SECONDS * 1000;
      let i = 0;
      while (performance.now() < until) await op(i++);
      return [i / CRUD_SECONDS, i];
    };
    const [ins, inserted] = await rate((i) => coll.insertOne({ _id: i, version: 0, status: "placed", total: 12.5 + i }));
    const [find] = await rate((i) => coll.findOne({ _id: i % inserted }));
    const versions = new Array<number>(inserted).fill(0);
    const [upd] = await rate(async (i) => {
      const id = i % inserted;
      const res = await coll.findOneAndUpdate({ _id: id, version: versions[id] }, { $set: { status: "accepted" }, $inc: { version: 1 } }, { returnDocument: "after" });
      if (!res) throw new Error("compare-and-set missed");
      versions[id]++;
    });
    await coll.drop();
    const n = (v: number) => Math.round(v).toLocaleString("en-US");
    return [label, n(ins), n(find), n(upd)];
  } finally {
    await client.close();
  }
}

/**
 * Commit latency under 1, 8 and 32 concurrent writers on a data dir with fsync on every write:
 * each writer compare-and-sets its own document in a loop. The engine's serverStatus.journal
 * counts fsyncs and how many commits each covered (group commit).
 */
async function groupCommitBench(uri: string): Promise<string[][]> {
  const rows: string[][] = [];
  for (const writers of WRITERS) {
    process.stderr.write(`group commit: ${writers} writer(s)…\n`);
    const client = new MongoClient(uri, { maxPoolSize: writers + 1 });
    await client.connect();
    try {
      const coll = client.db("bench").collection<{ _id: number; version: number; status: string }>(`commits_${writers}`);
      await coll.insertMany(Array.from({ length: writers }, (_, i) => ({ _id: i, version: 0, status: "placed" })));
      const journal = async () => (await client.db("admin").command({ serverStatus: 1 })).journal as { fsyncs: number; commits: number; groups: Record<string, number> };
      const before = await journal();
      const latencies: number[] = [];
      const started = performance.now();
      const until = started + CRUD_SECONDS * 1000;
      await Promise.all(
        Array.from({ length: writers }, async (_, w) => {
          for (let v = 0; performance.now() < until; v++) {
            const t0 = performance.now();
            const res = await coll.findOneAndUpdate({ _id: w, version: v }, { $set: { status: v % 2 ? "accepted" : "placed" }, $inc: { version: 1 } });
            latencies.push(performance.now() - t0);
            if (!res) throw new Error("compare-and-set missed");
          }
        }),
      );
      const seconds = (performance.now() - started) / 1000;
      const after = await journal();
      const fsyncs = after.fsyncs - before.fsyncs;
      const commits = after.commits - before.commits;
      let largest = 0;
      for (const [size, n] of Object.entries(after.groups)) if (n > (before.groups[size] ?? 0)) largest = Math.max(largest, Number(size));
      latencies.sort((a, b) => a - b);
      rows.push([
        String(writers),
        Math.round(latencies.length / seconds).toLocaleString("en-US"),
        fmt(percentile(latencies, 50)),
        fmt(percentile(latencies, 99)),
        String(fsyncs),
        fsyncs > 0 ? (commits / fsyncs).toFixed(1) : "–",
        String(largest),
      ]);
      await coll.drop();
    } finally {
      await client.close();
    }
  }
  return rows;
}

async function main(): Promise<void> {
  const started = performance.now();
  const redis = await startRedis();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "bench-db-"));
  let mem: Awaited<ReturnType<typeof startEmbeddedMongo>> | null = null;
  let groupRows: string[][] = [];
  try {
    mem = await startEmbeddedMongo({ port: 0, dataDir: ":memory:" });
    const geoRows = await geoBench(mem.uri, redis.port);
    const crudRows = [await crudBench("in memory (:memory:)", mem.uri)];
    await mem.close();
    const disk = await startEmbeddedMongo({ port: 0, dataDir });
    try {
      crudRows.push(await crudBench("data dir, fsync each write (default)", disk.uri));
      groupRows = await groupCommitBench(disk.uri);
    } finally {
      await disk.close();
    }

    const cpu = os.cpus()[0]?.model ?? "unknown CPU";
    const redisVersion = /v=(\S+)/.exec(Bun.spawnSync(["redis-server", "--version"]).stdout.toString())?.[1] ?? "?";
    process.stdout.write(`\nbench:db — bun ${Bun.version}, redis-server ${redisVersion}, ${os.cpus().length} × ${cpu}, ${os.platform()} ${os.release()}\n`);
    process.stdout.write(`sequential requests over one connection each; ${QUERIES} timed queries per size after ${WARMUP} warm-up, the two sides interleaved\n\n`);
    process.stdout.write("(a) nearest 20 within 3 km, points uniform in 30 × 30 km\n");
    process.stdout.write(
      `${table(["points", "$geoNear p50", "$geoNear p99", "GEOSEARCH p50", "GEOSEARCH p99", "p50 ratio", "same ids", "driver load"], geoRows)}\n\n`,
    );
    process.stdout.write(`(b) single-document operations through the driver, ops/s (${CRUD_SECONDS} s each)\n`);
    process.stdout.write(`${table(["engine", "insertOne", "findOne by _id", "findOneAndUpdate _id+version"], crudRows)}\n\n`);
    process.stdout.write(`(c) group commit: concurrent writers, each compare-and-setting its own document on the data dir (fsync before each acknowledgement), ${CRUD_SECONDS} s each\n`);
    process.stdout.write(`${table(["writers", "commits/s", "commit p50", "commit p99", "fsyncs", "commits per fsync", "largest group"], groupRows)}\n\n`);
    process.stdout.write(`total ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
  } finally {
    await mem?.close().catch(() => undefined);
    await redis.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

await main();

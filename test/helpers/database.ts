import { MongoClient, type Db } from "mongodb";

/**
 * Which database the suite runs on. With MONGODB_URI in the environment (CI's real-MongoDB
 * job: a replica set), every server a test starts gets a fresh database on that deployment,
 * dropped when the test stops it; without it, the embedded engine (in process, in memory, or
 * a standalone engine process for multi-process tests). REDIS_URL likewise puts in-process
 * test servers on that Redis (each on its own channel, named after its database).
 */
export const EXTERNAL_MONGODB_URI: string | undefined = process.env.MONGODB_URI || undefined;
export const EXTERNAL_REDIS_URL: string | undefined = process.env.REDIS_URL || undefined;

/** "real MongoDB" or "embedded engine", for test names and failure messages. */
export const DATABASE_MODE = EXTERNAL_MONGODB_URI ? "external MongoDB" : "embedded engine";

/** A database name no other test server uses (MongoDB allows 63 characters; no dots). */
export function uniqueDatabaseName(prefix = "t"): string {
  return `${prefix}_${Date.now().toString(36)}_${crypto.randomUUID().replaceAll("-", "").slice(0, 10)}`;
}

/** Drops a database on the external deployment (best effort: a failed drop must not fail a test's cleanup). */
export async function dropExternalDatabase(name: string): Promise<void> {
  if (!EXTERNAL_MONGODB_URI) return;
  const client = new MongoClient(EXTERNAL_MONGODB_URI, { serverSelectionTimeoutMS: 5_000 });
  try {
    await client.connect();
    await client.db(name).dropDatabase();
  } catch {
    // The deployment may already be gone at the end of a CI job.
  } finally {
    await client.close().catch(() => undefined);
  }
}

/**
 * Whether a connected database is the embedded engine (in process, or standalone behind a
 * MONGODB_URI): it answers buildInfo with gitVersion "embedded-mongo". Tests whose
 * expectations differ between engines (query plans) should ask this, not how it was started.
 */
export async function isEmbeddedEngine(db: Db): Promise<boolean> {
  const info = await db.admin().command({ buildInfo: 1 });
  return info.gitVersion === "embedded-mongo";
}

// An in-process embedded engine on a free port with a connected official driver client.

import { afterAll, beforeAll, expect } from "bun:test";
import { MongoClient, MongoServerError, type Document, type MongoClientOptions } from "mongodb";
import { type EmbeddedMongo, type EmbeddedMongoOptions, startEmbeddedMongo } from "../../src/embedded-mongo";

export interface TestMongo {
  engine: EmbeddedMongo;
  client: MongoClient;
  uri: string;
  /** Closes the client, then the engine (safe to call twice). */
  close(): Promise<void>;
}

/** Starts an in-memory engine (or on `options.dataDir`) and connects a client with the plain engine URI. */
export async function startTestMongo(
  options: { engine?: EmbeddedMongoOptions; client?: MongoClientOptions } = {},
): Promise<TestMongo> {
  const engine = await startEmbeddedMongo({ dataDir: ":memory:", log: "silent", ...options.engine });
  const client = new MongoClient(engine.uri, { serverSelectionTimeoutMS: 5_000, ...options.client });
  try {
    await client.connect();
  } catch (err) {
    await engine.close();
    throw err;
  }
  let closed: Promise<void> | null = null;
  return {
    engine,
    client,
    uri: engine.uri,
    close() {
      closed ??= (async () => {
        await client.close();
        await engine.close();
      })();
      return closed;
    },
  };
}

/**
 * One engine for a test file (started before its tests, closed after them), and a fresh
 * collection per call in database `dbName`.
 */
export function engineForFile(dbName: string) {
  let mongo: TestMongo | undefined;
  let n = 0;
  beforeAll(async () => {
    mongo = await startTestMongo();
  });
  afterAll(() => mongo?.close());
  const started = (): TestMongo => {
    if (!mongo) throw new Error("the engine starts in beforeAll");
    return mongo;
  };
  return {
    get mongo(): TestMongo {
      return started();
    },
    freshCollection<T extends Document = Document>() {
      return started().client.db(dbName).collection<T>(`c${++n}`);
    },
  };
}

/** What `p` rejects with, checked to be a `kind` (MongoServerError unless said); fails the test when `p` resolves. */
export async function rejectionOf<E extends Error = MongoServerError>(p: Promise<unknown>, kind: abstract new (...args: never[]) => Error = MongoServerError): Promise<E> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(kind);
  return err as E;
}

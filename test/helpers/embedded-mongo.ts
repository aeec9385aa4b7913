// An in-process embedded engine on a free port with a connected official driver client.

import { MongoClient, type MongoClientOptions } from "mongodb";
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

// A fresh in-process embedded engine (in memory) for one spec file.
import { startEmbeddedMongo } from "../../src/embedded-mongo/index";
import type { Target } from "./runner";

export async function embeddedTarget(): Promise<Target> {
  const engine = await startEmbeddedMongo({ dataDir: ":memory:" });
  return {
    uri: engine.uri,
    close: async () => {
      await engine.close();
    },
  };
}

/** An already running server: shared by every file, never closed by the runner. */
export function externalTarget(uri: string): () => Promise<Target> {
  return async () => ({ uri, close: async () => {} });
}

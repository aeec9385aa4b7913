import type { Db } from "mongodb";

/**
 * Every index the server's queries need, created at start-up. Each repository exports its
 * own `ensure…Indexes(db)`; this is the one list of them.
 */
const ensurers: Array<(db: Db) => Promise<void>> = [];

export async function ensureIndexes(db: Db): Promise<void> {
  for (const ensure of ensurers) await ensure(db);
}

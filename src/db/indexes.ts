import type { Db } from "mongodb";
import { ensureOrderIndexes } from "../modules/orders/repository";
import { ensureIdempotencyKeyIndexes } from "../modules/orders/idempotency-keys";
import { ensureUserIndexes } from "../modules/auth/repository";
import { ensureRestaurantIndexes } from "../modules/restaurants/repository";
import { ensureCourierIndexes } from "../modules/couriers/repository";

/**
 * Every index the server's queries need, created at start-up. Each repository exports its
 * own `ensure…Indexes(db)`; this is the one list of them.
 */
const ensurers: Array<(db: Db) => Promise<void>> = [ensureUserIndexes, ensureRestaurantIndexes, ensureOrderIndexes, ensureIdempotencyKeyIndexes, ensureCourierIndexes];

export async function ensureIndexes(db: Db): Promise<void> {
  for (const ensure of ensurers) await ensure(db);
}

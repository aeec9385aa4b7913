import { MongoNetworkError, MongoServerClosedError, MongoServerSelectionError, MongoTopologyClosedError } from "mongodb";

/**
 * Whether an error means the database could not be reached (down, restarting, or the driver
 * reconnecting): the request is answered 503 with Retry-After, not 500, since a retry may work.
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  return err instanceof MongoServerSelectionError || err instanceof MongoNetworkError || err instanceof MongoTopologyClosedError || err instanceof MongoServerClosedError;
}

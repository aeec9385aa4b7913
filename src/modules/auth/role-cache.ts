import type { Role } from "../../vocabulary";

/** Entries kept at most; past it the one read longest ago goes (a flood of users cannot grow memory). */
const MAX_ENTRIES = 100_000;

/**
 * Users' roles as recently read, so an authenticated request (every one checks the token's role
 * against the user's) costs no database read while the entry is fresh. A deletion or role change
 * made through this instance's UserRepository drops the entry at once; one made elsewhere (another
 * instance, or the database directly) is seen once the entry is older than `ttlMs`
 * (AUTH_ROLE_CACHE_MS). A `ttlMs` of 0 keeps nothing: every check reads.
 */
export class RoleCache {
  private readonly entries = new Map<string, { role: Role; until: number }>();
  /** Bumped by forget(): a read that started before it does not fill the cache. */
  private generation = 0;

  constructor(
    private readonly ttlMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  async roleOf(userId: string, read: (userId: string) => Promise<Role | null>): Promise<Role | null> {
    if (this.ttlMs <= 0) return read(userId);
    const startedAt = this.now();
    const hit = this.entries.get(userId);
    if (hit && hit.until > startedAt) return hit.role;
    const generation = this.generation;
    const role = await read(userId);
    this.entries.delete(userId);
    // Only users that exist are kept: a missing one is read again (its id may be a typo'd token's).
    if (role !== null && generation === this.generation) {
      this.entries.set(userId, { role, until: startedAt + this.ttlMs });
      if (this.entries.size > MAX_ENTRIES) this.entries.delete(this.entries.keys().next().value!);
    }
    return role;
  }

  /** Drops what is known of a user (deleted, or its role changed), including reads in flight. */
  forget(userId: string): void {
    this.entries.delete(userId);
    this.generation++;
  }
}

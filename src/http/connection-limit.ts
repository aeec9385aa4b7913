/**
 * How many WebSocket connections one user may hold open at once. A store shared by every
 * instance (Redis) can replace the in-process one without touching callers.
 */
export interface ConnectionLimiter {
  /** Registers connection `connectionId` of `userId`; false (and nothing registered) when the user is at the limit. */
  acquire(userId: string, connectionId: string): Promise<boolean>;
  /** Forgets a connection (closed); harmless for one never acquired. */
  release(userId: string, connectionId: string): Promise<void>;
  close(): Promise<void>;
}

/** One process's connections; good for a single instance, and the fallback of the shared store. */
export class MemoryConnectionLimiter implements ConnectionLimiter {
  private readonly open = new Map<string, Set<string>>();

  constructor(private readonly max: number) {}

  async acquire(userId: string, connectionId: string): Promise<boolean> {
    return this.acquireNow(userId, connectionId);
  }

  acquireNow(userId: string, connectionId: string): boolean {
    const mine = this.open.get(userId);
    if (mine && !mine.has(connectionId) && mine.size >= this.max) return false;
    this.track(userId, connectionId);
    return true;
  }

  /** Records a connection another authority (the shared store) already admitted. */
  track(userId: string, connectionId: string): void {
    let mine = this.open.get(userId);
    if (!mine) this.open.set(userId, (mine = new Set()));
    mine.add(connectionId);
  }

  async release(userId: string, connectionId: string): Promise<void> {
    const mine = this.open.get(userId);
    if (!mine) return;
    mine.delete(connectionId);
    if (mine.size === 0) this.open.delete(userId);
  }

  /** This process's connections, per user (the shared store re-registers them after an outage). */
  entries(): IterableIterator<[string, Set<string>]> {
    return this.open.entries();
  }

  async close(): Promise<void> {
    this.open.clear();
  }
}

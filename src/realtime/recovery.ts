import { changesFromOrder, type OrderChange } from "../events/change";
import type { EventBus } from "../events/bus";
import { topics } from "../events/topics";
import { errorField, type Logger } from "../log";
import { isFinalStatus } from "../vocabulary";
import type { CatchUp } from "./client";
import { orderTopicReplay } from "./history";
import type { RealtimeSources } from "./sources";

/**
 * How often order topics with local subscribers are compared with the database. A change
 * committed on another instance can miss this one (Redis down, or that instance died between
 * commit and publish); when it was the order's last, nothing else would ever bring it.
 */
const RECONCILE_MS = 2_000;
/** Orders changed more recently than this are left to the relay (their publish may be in flight). */
const RECONCILE_QUIET_MS = 1_000;
/** Each pass over restaurant and courier topics reads back this far before the previous one (clock skew, commits in flight). */
const FEED_RECONCILE_OVERLAP_MS = 10_000;
/** At most this many changed orders per restaurant or courier topic and pass. */
const FEED_RECONCILE_LIMIT = 1_000;
/**
 * Order ids per version query of the reconciliation. The engine runs one command at a time, so
 * one query over every watched order would hold up the PATCHes' compare-and-sets behind it
 * (docs/realtime.md, "Reconciliation cost").
 */
export const RECONCILE_BATCH = 128;
/** The longest wait between reads of an order for a catching-up subscriber while the database does not answer. */
const FILL_RETRY_MAX_MS = 2_000;

type RecoveryDeps = {
  bus: EventBus;
  sources: Pick<RealtimeSources, "findOrder" | "orderVersions" | "versionsChangedSince">;
  log: Logger;
};

/**
 * Order subscriptions that are behind the native topic (see CatchUp): fed from the bus
 * listener with only the seqs they lack, reading from the database what the bus skipped, and
 * joined to the native topic inside the listener call at which the bus reaches them.
 */
export class CatchUps {
  private readonly byTopic = new Map<string, Set<CatchUp>>();

  constructor(private readonly deps: RecoveryDeps) {}

  get active(): boolean {
    return this.byTopic.size > 0;
  }

  follows(topic: string): boolean {
    return this.byTopic.has(topic);
  }

  /** The lowest seq a catching-up subscriber of the order has (undefined when none catches up). */
  lowestLastSent(orderId: string): number | undefined {
    const entries = this.byTopic.get(topics.order(orderId));
    return entries?.size ? Math.min(...[...entries].map((e) => e.lastSent)) : undefined;
  }

  start(entry: CatchUp): void {
    entry.client.catchingUp.set(entry.topic, entry);
    let set = this.byTopic.get(entry.topic);
    if (!set) this.byTopic.set(entry.topic, (set = new Set()));
    set.add(entry);
  }

  stop(entry: CatchUp): void {
    if (entry.client.catchingUp.get(entry.topic) === entry) entry.client.catchingUp.delete(entry.topic);
    const set = this.byTopic.get(entry.topic);
    if (!set) return;
    set.delete(entry);
    if (set.size === 0) this.byTopic.delete(entry.topic);
  }

  /** A change of the topic's order, already on the native topic, to each subscriber catching up there. */
  deliver(topic: string, seq: number, data: string): void {
    const entries = this.byTopic.get(topic);
    if (entries) for (const entry of entries) this.catchUp(entry, seq, data);
  }

  /** A transient message on the topic (courier positions): catching-up subscribers get it too. */
  deliverTransient(topic: string, data: string): void {
    const entries = this.byTopic.get(topic);
    if (entries) for (const entry of entries) entry.client.sendRaw(data, "order");
  }

  /**
   * One change of a catching-up subscription's order: sent if the subscriber lacks it; once the
   * bus has delivered what the subscriber has, the socket joins the topic here, before the bus
   * delivers anything else.
   */
  private catchUp(entry: CatchUp, seq: number, data: string): void {
    if (entry.held) {
      entry.held.push({ seq, data });
      return;
    }
    if (seq > entry.lastSent + 1) {
      // The bus skipped seqs this subscriber lacks: they never reached this instance (a relay
      // loss) and this is the first change of the order it sees, so its sequencer had nothing
      // to compare against. Read them first; later deliveries wait behind the read.
      entry.held = [{ seq, data }];
      void this.fill(entry);
      return;
    }
    this.send(entry, seq, data);
    this.joinIfCaughtUp(entry);
  }

  private send(entry: CatchUp, seq: number, data: string): void {
    if (seq <= entry.lastSent) return;
    entry.client.sendRaw(data, "order");
    entry.lastSent = seq;
  }

  /** Joins the native topic once the bus has delivered what the subscriber has (nothing it has can follow there). */
  private joinIfCaughtUp(entry: CatchUp): void {
    const delivered = this.deps.bus.deliveredSeq(entry.orderId);
    if (delivered === undefined || delivered < entry.lastSent) return;
    this.stop(entry);
    if (!entry.client.closed) entry.client.socket.subscribe(entry.topic);
  }

  /** Sends a catching-up subscriber the order's seqs it lacks from the database, then what was held meanwhile. */
  private async fill(entry: CatchUp, attempt = 0): Promise<void> {
    const { client } = entry;
    try {
      const stored = await this.deps.sources.findOrder(entry.orderId);
      if (stored && !client.closed && client.catchingUp.get(entry.topic) === entry) {
        for (const event of orderTopicReplay(stored.order, entry.topic, entry.lastSent)) this.send(entry, event.seq, event.data);
      }
    } catch (err) {
      // Sending what was held now would leave the subscriber a gap: keep holding and read again.
      if (client.closed || client.catchingUp.get(entry.topic) !== entry) return;
      if (attempt === 0) this.deps.log.warn("reading an order to fill a subscriber's gap failed; retrying", { orderId: entry.orderId, err: errorField(err) });
      await Bun.sleep(Math.min(100 * 2 ** attempt, FILL_RETRY_MAX_MS));
      return this.fill(entry, attempt + 1);
    }
    const held = entry.held ?? [];
    entry.held = null;
    if (client.catchingUp.get(entry.topic) !== entry) return; // unsubscribed or closed meanwhile
    // Every delivery since the read began is in `held`, in bus order: only after the last one may the topic be joined.
    for (const h of held) this.send(entry, h.seq, h.data);
    this.joinIfCaughtUp(entry);
  }
}

/**
 * Compares the orders local clients are subscribed to with the database every RECONCILE_MS,
 * and has the bus deliver what this instance missed (from what it delivered, or for an order
 * it never saw, from the lowest seq a catching-up subscriber has). Orders whose final change
 * arrived, and orders that changed in the last second, are skipped. Only for buses that relay
 * between instances (only they can miss changes).
 */
export class Reconciler {
  private readonly timer: ReturnType<typeof setInterval> | null = null;
  private running = false;
  /** Per order with local subscribers: when a change last reached this bus, and whether it was final. */
  private readonly lastChange = new Map<string, { atMs: number; final: boolean }>();
  /** Restaurant and courier topics: when the reconciliation last read their orders (epoch ms). */
  private readonly feedCheckedAt = new Map<string, number>();

  constructor(
    private readonly deps: RecoveryDeps & {
      catchUps: CatchUps;
      /** The orders local clients follow on order topics now. */
      subscribedOrders(): Set<string>;
      /** The restaurant and courier topics local clients follow now. */
      subscribedFeeds(): Set<string>;
    },
  ) {
    if (deps.bus.redeliver) {
      this.timer = setInterval(() => void this.reconcile(), RECONCILE_MS);
      this.timer.unref?.();
    }
  }

  /** A change reached this bus (the bus listener calls this first). */
  noteChange(change: OrderChange): void {
    if (this.lastChange.has(change.orderId)) this.lastChange.set(change.orderId, { atMs: performance.now(), final: isFinalStatus(change.status) });
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  private async reconcile(): Promise<void> {
    const { bus, sources } = this.deps;
    if (this.running || !bus.redeliver) return;
    this.running = true;
    try {
      const subscribed = this.deps.subscribedOrders();
      for (const orderId of this.lastChange.keys()) if (!subscribed.has(orderId)) this.lastChange.delete(orderId);
      const now = performance.now();
      const check: string[] = [];
      for (const orderId of subscribed) {
        const last = this.lastChange.get(orderId);
        if (!last) this.lastChange.set(orderId, { atMs: 0, final: false });
        else if (last.final || now - last.atMs < RECONCILE_QUIET_MS) continue;
        check.push(orderId);
      }
      for (let i = 0; i < check.length; i += RECONCILE_BATCH) {
        const batch = check.slice(i, i + RECONCILE_BATCH);
        const versions = await sources.orderVersions(batch);
        for (const orderId of batch) {
          const version = versions.get(orderId);
          if (version === undefined) continue;
          const from = bus.deliveredSeq(orderId) ?? this.deps.catchUps.lowestLastSent(orderId) ?? version;
          if (version <= from) continue;
          const stored = await sources.findOrder(orderId);
          if (stored) bus.redeliver(changesFromOrder(stored.order, from));
        }
      }
      await this.reconcileFeeds();
    } catch (err) {
      this.deps.log.warn("comparing subscribed orders with the database failed; retrying", { err: errorField(err) });
    } finally {
      this.running = false;
    }
  }

  /**
   * Restaurant and courier topics with local subscribers (chaos finding F5): the orders of each
   * that changed since the previous pass (minus FEED_RECONCILE_OVERLAP_MS) are compared with
   * what the bus delivered, by id and version, and what this instance missed is redelivered in
   * seq order (a whole order is read only then). An order the bus never delivered gets its
   * changes from that window on.
   */
  private async reconcileFeeds(): Promise<void> {
    const { bus, sources } = this.deps;
    const feeds = this.deps.subscribedFeeds();
    for (const topic of this.feedCheckedAt.keys()) if (!feeds.has(topic)) this.feedCheckedAt.delete(topic);
    const now = Date.now();
    for (const topic of feeds) {
      const [kind, id] = [topic.slice(0, topic.indexOf(":")), topic.slice(topic.indexOf(":") + 1)];
      const sinceMs = (this.feedCheckedAt.get(topic) ?? now) - FEED_RECONCILE_OVERLAP_MS;
      const scope = kind === "restaurant" ? { restaurantId: id } : { courierId: id };
      const changed = await sources.versionsChangedSince(scope, new Date(sinceMs), FEED_RECONCILE_LIMIT);
      for (const { id: orderId, version, updatedAt } of changed) {
        // A change of the last second may still be on its way through the bus.
        if (now - updatedAt.getTime() < RECONCILE_QUIET_MS) continue;
        const delivered = bus.deliveredSeq(orderId);
        if (delivered !== undefined && version <= delivered) continue;
        const stored = await sources.findOrder(orderId);
        if (!stored) continue;
        const before = stored.order.history.filter((e) => Date.parse(e.at) < sinceMs).at(-1)?.seq ?? 0;
        bus.redeliver?.(changesFromOrder(stored.order, delivered ?? before));
      }
      // The next pass starts where this one read, less the overlap (quiet orders are read again then).
      this.feedCheckedAt.set(topic, now);
    }
  }
}

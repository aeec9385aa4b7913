import { ObjectId, type Collection, type Db, type Filter, type IndexDescription } from "mongodb";
import { isDuplicateKey, toObjectId } from "../../db/keys";
import { COLLECTIONS } from "../../db/mongo";
import { CARRYING_STATUSES } from "../../vocabulary";
import { decodeCursor, encodeCursor } from "./cursor";
import { TimerStore, type TimerDoc } from "../../db/timers";
import { toOrder, toStored, toStoredDispatch, toStoredTimers, type EtaDates, type HistoryDoc, type OrderDoc, type StoredOrder } from "./documents";
import type { DispatchView, OrderTimer, PersistedOrderMachine } from "./machine";
import type { OrderModel } from "./model";

export type { EtaDates, StoredOrder };

export type ApproachTarget = "pickup" | "dropoff";

/** An order a courier carries, with what the position stream needs (geofence, ETA). */
export type CarriedOrder = {
  id: string;
  status: OrderModel.status;
  restaurantId: string;
  pickup: OrderModel.latLng | null;
  dropoff: OrderModel.latLng;
  prepTimeMinutes: number | null;
  approached: { pickup: boolean; dropoff: boolean };
  etaRefreshedAt: Date | null;
  history: Array<{ status: OrderModel.status; at: Date }>;
};

export type NewOrder = Omit<OrderModel.order, "id" | "version" | "status" | "courierId" | "createdAt" | "updatedAt" | "history" | "dispatch" | "eta"> & {
  restaurantOwnerId: string;
  at: Date;
  by: OrderModel.actor;
  machine: PersistedOrderMachine;
  idempotencyKey?: string;
  pickup: OrderModel.latLng;
  prepTimeMinutes: number;
  dispatch: DispatchView;
  timers: OrderTimer[];
  eta: EtaDates | null;
};

export type Transition = {
  id: string;
  expectedVersion: number;
  expectedRev: number;
  /**
   * False for a transition parties cannot see (status, courier and dispatch view unchanged):
   * it bumps rev only, with no history entry, no new version and no updatedAt.
   */
  visible: boolean;
  status: OrderModel.status;
  courierId: string | null;
  machine: PersistedOrderMachine;
  event: string;
  at: Date;
  by: OrderModel.actor;
  reason?: string;
  dispatch: DispatchView;
  timers: OrderTimer[];
  /** Absent: the stored ETA stays as it is. */
  eta?: EtaDates | null;
};

/** Whose orders a list shows: the caller's part in them, or every order (admins). */
export type OrderScope =
  | { kind: "customer"; id: string }
  | { kind: "restaurantOwner"; id: string }
  | { kind: "courier"; id: string }
  | { kind: "all" };

export type ListOptions = { status?: OrderModel.status; restaurantId?: string; limit: number; cursor?: string };

export type OrderPage = { items: OrderModel.order[]; nextCursor: string | null };

export const ORDER_INDEXES: IndexDescription[] = [
  { name: "orders_customer_createdAt", key: { customerId: 1, createdAt: -1, _id: -1 } },
  { name: "orders_owner_createdAt", key: { restaurantOwnerId: 1, createdAt: -1, _id: -1 } },
  { name: "orders_restaurant_createdAt", key: { restaurantId: 1, createdAt: -1, _id: -1 } },
  { name: "orders_courier_createdAt", key: { courierId: 1, createdAt: -1, _id: -1 } },
  { name: "orders_status_createdAt", key: { status: 1, createdAt: -1, _id: -1 } },
  { name: "orders_createdAt", key: { createdAt: -1, _id: -1 } },
  // Realtime resume of restaurant and courier topics (changedSince).
  { name: "orders_restaurant_updatedAt", key: { restaurantId: 1, updatedAt: 1 } },
  { name: "orders_courier_updatedAt", key: { courierId: 1, updatedAt: 1 } },
  // The batched planner's read (openForDispatch): orders waiting for a courier, oldest first.
  { name: "orders_dispatchState_createdAt", key: { "dispatch.state": 1, createdAt: 1 } },
  // The timer sweeper's claim (db/timers.ts): due orders, earliest first.
  { name: "orders_timerPending_nextTimerAt", key: { timerPending: 1, nextTimerAt: 1 } },
  {
    name: "orders_customer_idempotencyKey",
    key: { customerId: 1, idempotencyKey: 1 },
    unique: true,
    partialFilterExpression: { idempotencyKey: { $type: "string" } },
  },
];

export async function ensureOrderIndexes(db: Db): Promise<void> {
  await db.collection(COLLECTIONS.orders).createIndexes(ORDER_INDEXES);
}

export class OrderRepository {
  private readonly orders: Collection<OrderDoc>;

  constructor(private readonly db: Db) {
    this.orders = db.collection<OrderDoc>(COLLECTIONS.orders);
  }

  /**
   * Stores a new order (version 1, history seq 1). With an idempotency key that this customer
   * already used, stores nothing and returns the existing order (`created: false`); the unique
   * index decides between concurrent duplicates.
   */
  async insert(input: NewOrder): Promise<{ created: boolean; stored: StoredOrder }> {
    const { at, by, machine, idempotencyKey, restaurantOwnerId, notes, pickup, prepTimeMinutes, dispatch, timers, eta, ...rest } = input;
    const doc: OrderDoc = {
      _id: new ObjectId(),
      status: "placed",
      version: 1,
      rev: 0,
      customerId: rest.customerId,
      restaurantId: rest.restaurantId,
      restaurantOwnerId,
      courierId: null,
      items: rest.items,
      subtotalCents: rest.subtotalCents,
      deliveryFeeCents: rest.deliveryFeeCents,
      totalCents: rest.totalCents,
      deliveryLocation: rest.deliveryLocation,
      ...(notes !== undefined ? { notes } : {}),
      createdAt: at,
      updatedAt: at,
      history: [{ seq: 1, status: "placed", event: "PLACE", at, by }],
      machine,
      ...(idempotencyKey !== undefined ? { idempotencyKey } : {}),
      pickup: { lat: pickup.lat, lng: pickup.lng },
      prepTimeMinutes,
      dispatch: toStoredDispatch(dispatch),
      eta,
      etaRefreshedAt: at,
      ...toStoredTimers(timers),
    };
    try {
      await this.orders.insertOne(doc);
      return { created: true, stored: toStored(doc) };
    } catch (err) {
      if (idempotencyKey !== undefined && isDuplicateKey(err)) {
        const existing = await this.findByIdempotencyKey(rest.customerId, idempotencyKey);
        if (existing) return { created: false, stored: existing };
      }
      throw err;
    }
  }

  async findById(id: string): Promise<StoredOrder | null> {
    const _id = toObjectId(id);
    if (!_id) return null;
    const doc = await this.orders.findOne({ _id });
    return doc ? toStored(doc) : null;
  }

  /** The current version of each of these orders (missing ones are absent), in one read. */
  async versionsOf(ids: string[]): Promise<Map<string, number>> {
    const oids = ids.flatMap((id) => toObjectId(id) ?? []);
    const docs = await this.orders.find({ _id: { $in: oids } }, { projection: { version: 1 } }).toArray();
    return new Map(docs.map((d) => [d._id.toHexString(), d.version]));
  }

  /** Who holds each of these orders and in which status (missing ones are absent), in one read. */
  async holdersOf(ids: string[]): Promise<Map<string, { courierId: string | null; status: OrderModel.status }>> {
    const oids = ids.flatMap((id) => toObjectId(id) ?? []);
    const docs = await this.orders.find({ _id: { $in: oids } }, { projection: { courierId: 1, status: 1 } }).toArray();
    return new Map(docs.map((d) => [d._id.toHexString(), { courierId: d.courierId, status: d.status }]));
  }

  async findByIdempotencyKey(customerId: string, idempotencyKey: string): Promise<StoredOrder | null> {
    const doc = await this.orders.findOne({ customerId, idempotencyKey });
    return doc ? toStored(doc) : null;
  }

  /**
   * Commits one accepted transition in ONE write: a compare-and-set on `version` and `rev` that
   * sets the new status, courier, machine snapshot, dispatch view and timers; a visible one also
   * bumps the version and appends the history entry whose seq is the new version. Null when
   * another writer committed first.
   */
  async commitTransition(t: Transition): Promise<StoredOrder | null> {
    const _id = toObjectId(t.id);
    if (!_id) return null;
    const filter: Filter<OrderDoc> = { _id, version: t.expectedVersion };
    // Orders written before `rev` existed have none: rev 0 matches those too.
    if (t.expectedRev === 0) filter.$or = [{ rev: 0 }, { rev: { $exists: false } }];
    else filter.rev = t.expectedRev;
    const set: Partial<OrderDoc> = {
      machine: t.machine,
      dispatch: toStoredDispatch(t.dispatch),
      ...toStoredTimers(t.timers),
      ...(t.eta !== undefined ? { eta: t.eta, etaRefreshedAt: t.at } : {}),
    };
    // New timers are due on their own terms; a lease taken on the old ones no longer applies.
    const unset = { timerLease: "" as const };
    if (!t.visible) {
      const doc = await this.orders.findOneAndUpdate(filter, { $set: set, $unset: unset, $inc: { rev: 1 } }, { returnDocument: "after" });
      return doc ? toStored(doc) : null;
    }
    const seq = t.expectedVersion + 1;
    const entry: HistoryDoc = { seq, status: t.status, event: t.event, at: t.at, by: { role: t.by.role, id: t.by.id } };
    if (t.reason !== undefined) entry.reason = t.reason;
    const doc = await this.orders.findOneAndUpdate(
      filter,
      {
        $set: { ...set, status: t.status, courierId: t.courierId, updatedAt: t.at },
        $unset: unset,
        $inc: { version: 1, rev: 1 },
        $push: { history: entry },
      },
      { returnDocument: "after" },
    );
    return doc ? toStored(doc) : null;
  }

  /**
   * Orders of a restaurant or a courier changed at or after `since`, least recently changed
   * first, at most `limit` (resume of restaurant and courier topics).
   */
  async changedSince(scope: { restaurantId: string } | { courierId: string }, since: Date, limit: number): Promise<OrderModel.order[]> {
    const filter: Filter<OrderDoc> = "restaurantId" in scope ? { restaurantId: scope.restaurantId } : { courierId: scope.courierId };
    filter.updatedAt = { $gte: since };
    const docs = await this.orders.find(filter, { projection: { machine: 0, idempotencyKey: 0 } }).sort({ updatedAt: 1 }).limit(limit).toArray();
    return docs.map(toOrder);
  }

  /** Id, version and last change of the orders a restaurant or courier changed at or after `since` (the hub's reconciliation; no history read). */
  async versionsChangedSince(scope: { restaurantId: string } | { courierId: string }, since: Date, limit: number): Promise<Array<{ id: string; version: number; updatedAt: Date }>> {
    const filter: Filter<OrderDoc> = "restaurantId" in scope ? { restaurantId: scope.restaurantId } : { courierId: scope.courierId };
    filter.updatedAt = { $gte: since };
    const docs = await this.orders.find(filter, { projection: { _id: 1, version: 1, updatedAt: 1 } }).sort({ updatedAt: 1 }).limit(limit).toArray();
    return docs.map((d) => ({ id: d._id.toHexString(), version: d.version, updatedAt: d.updatedAt }));
  }

  /** The orders a courier carries now: assigned to it and not final (the courier-limit reconciliation). */
  async activeForCourier(courierId: string): Promise<Array<{ id: string; status: OrderModel.status }>> {
    const docs = await this.orders.find({ courierId, status: { $in: [...CARRYING_STATUSES] } }, { projection: { _id: 1, status: 1 } }).toArray();
    return docs.map((d) => ({ id: d._id.toHexString(), status: d.status }));
  }

  /** How many orders are in each status (for /metrics; one aggregation over the collection). */
  async countByStatus(): Promise<Partial<Record<OrderModel.status, number>>> {
    const rows = await this.orders.aggregate<{ _id: OrderModel.status; n: number }>([{ $group: { _id: "$status", n: { $sum: 1 } } }]).toArray();
    const counts: Partial<Record<OrderModel.status, number>> = {};
    for (const row of rows) counts[row._id] = row.n;
    return counts;
  }

  /** The orders a courier carries now, with what the position stream needs (geofence, ETA). */
  async carriedBy(courierId: string): Promise<CarriedOrder[]> {
    const docs = await this.orders
      .find(
        { courierId, status: { $in: [...CARRYING_STATUSES] } },
        { projection: { _id: 1, status: 1, restaurantId: 1, pickup: 1, deliveryLocation: 1, prepTimeMinutes: 1, approached: 1, etaRefreshedAt: 1, history: 1 } },
      )
      .toArray();
    return docs.map(toCarried);
  }

  /** Records when the restaurant expects the food to be ready (a planning hint). */
  async setExpectedReady(orderId: string, at: Date): Promise<void> {
    const _id = toObjectId(orderId);
    if (_id) await this.orders.updateOne({ _id }, { $set: { expectedReadyAt: at } });
  }

  /**
   * Orders waiting for a courier (dispatch state searching: no courier, no offer out), oldest
   * first, with what the planner needs; `carriedBy`'s shape, so one reader serves both.
   */
  async openForDispatch(limit: number): Promise<Array<CarriedOrder & { createdAt: Date; expectedReadyAt: Date | null }>> {
    const docs = await this.orders
      .find(
        { "dispatch.state": "searching", courierId: null, status: { $in: ["accepted", "preparing", "ready_for_pickup"] } },
        { projection: { _id: 1, status: 1, restaurantId: 1, pickup: 1, deliveryLocation: 1, prepTimeMinutes: 1, approached: 1, etaRefreshedAt: 1, history: 1, createdAt: 1, expectedReadyAt: 1 } },
      )
      .sort({ createdAt: 1 })
      .limit(limit)
      .toArray();
    return docs.map((d) => ({ ...toCarried(d), createdAt: d.createdAt, expectedReadyAt: d.expectedReadyAt ?? null }));
  }

  /** How many orders each courier carries now (dispatch: couriers at COURIER_MAX_ACTIVE get no offers). */
  async countCarried(courierIds: string[]): Promise<Map<string, number>> {
    const counts = new Map<string, number>(courierIds.map((id) => [id, 0]));
    if (courierIds.length === 0) return counts;
    const rows = await this.orders
      .aggregate<{ _id: string; n: number }>([
        { $match: { courierId: { $in: courierIds }, status: { $in: [...CARRYING_STATUSES] } } },
        { $group: { _id: "$courierId", n: { $sum: 1 } } },
      ])
      .toArray();
    for (const row of rows) counts.set(row._id, row.n);
    return counts;
  }

  /**
   * Marks the courier as approaching `target` unless it already was: true only for the one
   * call (on any instance) that set it, so the announcement goes out once per target.
   */
  async markApproached(orderId: string, courierId: string, target: ApproachTarget): Promise<boolean> {
    const _id = toObjectId(orderId);
    if (!_id) return false;
    const field = `approached.${target}`;
    const res = await this.orders.updateOne({ _id, courierId, [field]: { $ne: true } }, { $set: { [field]: true } });
    return res.modifiedCount === 1;
  }

  /**
   * Stores an ETA computed from a courier position unless one was written less than
   * `minIntervalMs` ago (by a transition or another position, on any instance). True when written.
   * Not a transition: no version bump, no history entry.
   */
  async refreshEta(orderId: string, eta: EtaDates, at: Date, minIntervalMs: number): Promise<boolean> {
    const _id = toObjectId(orderId);
    if (!_id) return false;
    const res = await this.orders.updateOne(
      { _id, etaRefreshedAt: { $not: { $gt: new Date(at.getTime() - minIntervalMs) } } },
      { $set: { eta, etaRefreshedAt: at } },
    );
    return res.modifiedCount === 1;
  }

  /** The durable timers kept on orders, for the sweeper. */
  timerStore(): TimerStore {
    return new TimerStore(this.db.collection<TimerDoc>(COLLECTIONS.orders));
  }

  /** The scope's orders, newest first, keyset-paginated. */
  async list(scope: OrderScope, opts: ListOptions): Promise<OrderPage> {
    const filter = orderListFilter(scope, opts);
    if (opts.cursor !== undefined) {
      const after = decodeCursor(opts.cursor);
      filter.$or = [{ createdAt: { $lt: after.createdAt } }, { createdAt: after.createdAt, _id: { $lt: after.id } }];
    }
    const docs = await this.orders
      .find(filter, { projection: { machine: 0, idempotencyKey: 0, restaurantOwnerId: 0 } })
      .sort({ createdAt: -1, _id: -1 })
      .limit(opts.limit + 1)
      .toArray();
    const page = docs.slice(0, opts.limit);
    const last = page[page.length - 1];
    return { items: page.map(toOrder), nextCursor: docs.length > opts.limit && last ? encodeCursor(last.createdAt, last._id) : null };
  }
}

/** The filter of a list of `scope`'s orders (also what test/helpers/order-query-plans.ts explains). */
export function orderListFilter(scope: OrderScope, opts: Omit<ListOptions, "limit" | "cursor">): Filter<OrderDoc> {
  const filter = scopeFilter(scope);
  if (opts.status !== undefined) filter.status = opts.status;
  if (opts.restaurantId !== undefined) filter.restaurantId = opts.restaurantId;
  return filter;
}

function scopeFilter(scope: OrderScope): Filter<OrderDoc> {
  switch (scope.kind) {
    case "customer":
      return { customerId: scope.id };
    case "restaurantOwner":
      return { restaurantOwnerId: scope.id };
    case "courier":
      return { courierId: scope.id };
    case "all":
      return {};
  }
}

function toCarried(d: Pick<OrderDoc, "_id" | "status" | "restaurantId" | "pickup" | "deliveryLocation" | "prepTimeMinutes" | "approached" | "etaRefreshedAt" | "history">): CarriedOrder {
  return {
    id: d._id.toHexString(),
    status: d.status,
    restaurantId: d.restaurantId,
    pickup: d.pickup ?? null,
    dropoff: { lat: d.deliveryLocation.lat, lng: d.deliveryLocation.lng },
    prepTimeMinutes: d.prepTimeMinutes ?? null,
    approached: { pickup: d.approached?.pickup === true, dropoff: d.approached?.dropoff === true },
    etaRefreshedAt: d.etaRefreshedAt ?? null,
    history: d.history.map((h) => ({ status: h.status, at: h.at })),
  };
}

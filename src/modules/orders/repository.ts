import { MongoServerError, ObjectId, type Collection, type Db, type Filter, type IndexDescription } from "mongodb";
import { COLLECTIONS } from "../../db/mongo";
import { InvalidInput } from "../../http/errors";
import type { PersistedOrderMachine } from "./machine";
import type { OrderModel } from "./model";

/** How an order is stored. Only this file knows it. */
type HistoryDoc = {
  seq: number;
  status: OrderModel.status;
  event: string;
  at: Date;
  by: OrderModel.actor;
  reason?: string;
};

type OrderDoc = {
  _id: ObjectId;
  status: OrderModel.status;
  version: number;
  customerId: string;
  restaurantId: string;
  /** Copied from the restaurant at creation: the machine's guards and the owner's order list read it. */
  restaurantOwnerId: string;
  courierId: string | null;
  items: OrderModel.order["items"];
  subtotalCents: number;
  deliveryFeeCents: number;
  totalCents: number;
  deliveryLocation: OrderModel.latLng;
  notes?: string;
  createdAt: Date;
  updatedAt: Date;
  history: HistoryDoc[];
  machine: PersistedOrderMachine;
  idempotencyKey?: string;
};

/** An order with what the server keeps beside its API shape. */
export type StoredOrder = {
  order: OrderModel.order;
  restaurantOwnerId: string;
  machine: PersistedOrderMachine;
};

export type NewOrder = Omit<OrderModel.order, "id" | "version" | "status" | "courierId" | "createdAt" | "updatedAt" | "history"> & {
  restaurantOwnerId: string;
  at: Date;
  by: OrderModel.actor;
  machine: PersistedOrderMachine;
  idempotencyKey?: string;
};

export type Transition = {
  id: string;
  expectedVersion: number;
  status: OrderModel.status;
  courierId: string | null;
  machine: PersistedOrderMachine;
  event: string;
  at: Date;
  by: OrderModel.actor;
  reason?: string;
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

const DUPLICATE_KEY = 11000;

function toObjectId(id: string): ObjectId | null {
  return /^[0-9a-f]{24}$/i.test(id) ? new ObjectId(id) : null;
}

function toOrder(doc: OrderDoc): OrderModel.order {
  const order: OrderModel.order = {
    id: doc._id.toHexString(),
    status: doc.status,
    version: doc.version,
    customerId: doc.customerId,
    restaurantId: doc.restaurantId,
    courierId: doc.courierId,
    items: doc.items.map((i) => ({ menuItemId: i.menuItemId, name: i.name, quantity: i.quantity, unitPriceCents: i.unitPriceCents })),
    subtotalCents: doc.subtotalCents,
    deliveryFeeCents: doc.deliveryFeeCents,
    totalCents: doc.totalCents,
    deliveryLocation: { lat: doc.deliveryLocation.lat, lng: doc.deliveryLocation.lng },
    createdAt: doc.createdAt.toISOString(),
    updatedAt: doc.updatedAt.toISOString(),
    history: doc.history.map((h) => ({
      seq: h.seq,
      status: h.status,
      event: h.event,
      at: h.at.toISOString(),
      by: { role: h.by.role, id: h.by.id },
      ...(h.reason !== undefined ? { reason: h.reason } : {}),
    })),
  };
  if (doc.notes !== undefined) order.notes = doc.notes;
  return order;
}

function toStored(doc: OrderDoc): StoredOrder {
  return { order: toOrder(doc), restaurantOwnerId: doc.restaurantOwnerId, machine: doc.machine };
}

/** Keyset cursor over (createdAt desc, _id desc); opaque to clients. */
function encodeCursor(doc: Pick<OrderDoc, "createdAt" | "_id">): string {
  return Buffer.from(JSON.stringify([doc.createdAt.getTime(), doc._id.toHexString()])).toString("base64url");
}

function decodeCursor(cursor: string): { createdAt: Date; id: ObjectId } {
  const bad = () => new InvalidInput("cursor is invalid", [{ path: "/cursor", message: "not a cursor this server issued" }]);
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
  } catch {
    throw bad();
  }
  if (!Array.isArray(parsed) || parsed.length !== 2 || !Number.isSafeInteger(parsed[0]) || typeof parsed[1] !== "string") throw bad();
  const id = toObjectId(parsed[1]);
  if (!id) throw bad();
  return { createdAt: new Date(parsed[0]), id };
}

export class OrderRepository {
  private readonly orders: Collection<OrderDoc>;

  constructor(db: Db) {
    this.orders = db.collection<OrderDoc>(COLLECTIONS.orders);
  }

  /**
   * Stores a new order (version 1, history seq 1). With an idempotency key that this customer
   * already used, stores nothing and returns the existing order (`created: false`); the unique
   * index decides between concurrent duplicates.
   */
  async insert(input: NewOrder): Promise<{ created: boolean; stored: StoredOrder }> {
    const { at, by, machine, idempotencyKey, restaurantOwnerId, notes, ...rest } = input;
    const doc: OrderDoc = {
      _id: new ObjectId(),
      status: "placed",
      version: 1,
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
    };
    try {
      await this.orders.insertOne(doc);
      return { created: true, stored: toStored(doc) };
    } catch (err) {
      if (idempotencyKey !== undefined && err instanceof MongoServerError && err.code === DUPLICATE_KEY) {
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

  async findByIdempotencyKey(customerId: string, idempotencyKey: string): Promise<StoredOrder | null> {
    const doc = await this.orders.findOne({ customerId, idempotencyKey });
    return doc ? toStored(doc) : null;
  }

  /**
   * Commits one accepted transition in ONE write: a compare-and-set on `version` that sets the
   * new status, courier and machine snapshot, bumps the version and appends the history entry
   * whose seq is the new version. Null when another writer committed first.
   */
  async commitTransition(t: Transition): Promise<StoredOrder | null> {
    const _id = toObjectId(t.id);
    if (!_id) return null;
    const seq = t.expectedVersion + 1;
    const entry: HistoryDoc = { seq, status: t.status, event: t.event, at: t.at, by: { role: t.by.role, id: t.by.id } };
    if (t.reason !== undefined) entry.reason = t.reason;
    const doc = await this.orders.findOneAndUpdate(
      { _id, version: t.expectedVersion },
      {
        $set: { status: t.status, courierId: t.courierId, machine: t.machine, updatedAt: t.at },
        $inc: { version: 1 },
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

  /** The orders a courier carries now: assigned to it and not final (courier.location forwarding). */
  async activeForCourier(courierId: string): Promise<Array<{ id: string; status: OrderModel.status }>> {
    const docs = await this.orders
      .find({ courierId, status: { $in: ["accepted", "preparing", "ready_for_pickup", "picked_up"] } }, { projection: { _id: 1, status: 1 } })
      .toArray();
    return docs.map((d) => ({ id: d._id.toHexString(), status: d.status }));
  }

  /** How many orders are in each status (for /metrics; one aggregation over the collection). */
  async countByStatus(): Promise<Partial<Record<OrderModel.status, number>>> {
    const rows = await this.orders.aggregate<{ _id: OrderModel.status; n: number }>([{ $group: { _id: "$status", n: { $sum: 1 } } }]).toArray();
    const counts: Partial<Record<OrderModel.status, number>> = {};
    for (const row of rows) counts[row._id] = row.n;
    return counts;
  }

  /** The scope's orders, newest first, keyset-paginated. */
  async list(scope: OrderScope, opts: ListOptions): Promise<OrderPage> {
    const filter = this.listFilter(scope, opts);
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
    return { items: page.map(toOrder), nextCursor: docs.length > opts.limit && last ? encodeCursor(last) : null };
  }

  /**
   * The plan of every query this repository makes, run with the same filters and sorts on
   * sample values (for tests and operators: which index answers each one).
   */
  async explainQueries(sample: {
    orderId: string;
    customerId: string;
    ownerId: string;
    courierId: string;
    restaurantId: string;
    idempotencyKey: string;
  }): Promise<Array<{ query: string; plan: Record<string, unknown> }>> {
    const _id = toObjectId(sample.orderId) ?? new ObjectId();
    const newestFirst = { createdAt: -1, _id: -1 } as const;
    const page = (scope: OrderScope, opts: Omit<ListOptions, "limit" | "cursor"> = {}) =>
      this.orders.find(this.listFilter(scope, opts)).sort(newestFirst).limit(21).explain("queryPlanner");
    const queries: Array<[string, Promise<Record<string, unknown>>]> = [
      ["findById", this.orders.find({ _id }).explain("queryPlanner")],
      ["commitTransition (compare-and-set)", this.orders.find({ _id, version: 1 }).explain("queryPlanner")],
      [
        "findByIdempotencyKey",
        this.orders.find({ customerId: sample.customerId, idempotencyKey: sample.idempotencyKey }).explain("queryPlanner"),
      ],
      ["list: customer", page({ kind: "customer", id: sample.customerId })],
      ["list: restaurant owner", page({ kind: "restaurantOwner", id: sample.ownerId })],
      ["list: restaurant owner, one restaurant", page({ kind: "restaurantOwner", id: sample.ownerId }, { restaurantId: sample.restaurantId })],
      ["list: courier", page({ kind: "courier", id: sample.courierId })],
      ["list: admin", page({ kind: "all" })],
      ["list: admin by status", page({ kind: "all" }, { status: "placed" })],
      ["changedSince: restaurant", this.orders.find({ restaurantId: sample.restaurantId, updatedAt: { $gte: new Date(0) } }).sort({ updatedAt: 1 }).explain("queryPlanner")],
      ["changedSince: courier", this.orders.find({ courierId: sample.courierId, updatedAt: { $gte: new Date(0) } }).sort({ updatedAt: 1 }).explain("queryPlanner")],
      ["activeForCourier", this.orders.find({ courierId: sample.courierId, status: { $in: ["accepted", "picked_up"] } }).explain("queryPlanner")],
    ];
    const plans = await Promise.all(queries.map(([, p]) => p));
    return queries.map(([query], i) => ({ query, plan: plans[i] }));
  }

  private listFilter(scope: OrderScope, opts: Omit<ListOptions, "limit" | "cursor">): Filter<OrderDoc> {
    const filter = this.scopeFilter(scope);
    if (opts.status !== undefined) filter.status = opts.status;
    if (opts.restaurantId !== undefined) filter.restaurantId = opts.restaurantId;
    return filter;
  }

  private scopeFilter(scope: OrderScope): Filter<OrderDoc> {
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
}

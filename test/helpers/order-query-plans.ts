import { ObjectId, type Db, type Document, type Filter } from "mongodb";
import { toObjectId } from "../../src/db/keys";
import { COLLECTIONS } from "../../src/db/mongo";
import { orderListFilter, type ListOptions, type OrderScope } from "../../src/modules/orders/repository";

export type OrderQuerySample = {
  orderId: string;
  customerId: string;
  ownerId: string;
  courierId: string;
  restaurantId: string;
  idempotencyKey: string;
};

/**
 * The plan of every query the orders repository makes, run with the same filters and sorts on
 * sample values (which index answers each one).
 */
export async function explainOrderQueries(db: Db, sample: OrderQuerySample): Promise<Array<{ query: string; plan: Record<string, unknown> }>> {
  const orders = db.collection(COLLECTIONS.orders);
  const _id = toObjectId(sample.orderId) ?? new ObjectId();
  const newestFirst = { createdAt: -1, _id: -1 } as const;
  const page = (scope: OrderScope, opts: Omit<ListOptions, "limit" | "cursor"> = {}) =>
    orders.find(orderListFilter(scope, opts) as Filter<Document>).sort(newestFirst).limit(21).explain("queryPlanner");
  const queries: Array<[string, Promise<Record<string, unknown>>]> = [
    ["findById", orders.find({ _id }).explain("queryPlanner")],
    ["commitTransition (compare-and-set)", orders.find({ _id, version: 1 }).explain("queryPlanner")],
    ["findByIdempotencyKey", orders.find({ customerId: sample.customerId, idempotencyKey: sample.idempotencyKey }).explain("queryPlanner")],
    ["list: customer", page({ kind: "customer", id: sample.customerId })],
    ["list: restaurant owner", page({ kind: "restaurantOwner", id: sample.ownerId })],
    ["list: restaurant owner, one restaurant", page({ kind: "restaurantOwner", id: sample.ownerId }, { restaurantId: sample.restaurantId })],
    ["list: courier", page({ kind: "courier", id: sample.courierId })],
    ["list: admin", page({ kind: "all" })],
    ["list: admin by status", page({ kind: "all" }, { status: "placed" })],
    ["changedSince: restaurant", orders.find({ restaurantId: sample.restaurantId, updatedAt: { $gte: new Date(0) } }).sort({ updatedAt: 1 }).explain("queryPlanner")],
    ["changedSince: courier", orders.find({ courierId: sample.courierId, updatedAt: { $gte: new Date(0) } }).sort({ updatedAt: 1 }).explain("queryPlanner")],
    ["activeForCourier", orders.find({ courierId: sample.courierId, status: { $in: ["accepted", "picked_up"] } }).explain("queryPlanner")],
    ["carriedBy", orders.find({ courierId: sample.courierId, status: { $in: ["accepted", "picked_up"] } }).explain("queryPlanner")],
    [
      "openForDispatch",
      orders.find({ "dispatch.state": "searching", courierId: null, status: { $in: ["accepted", "preparing", "ready_for_pickup"] } }).sort({ createdAt: 1 }).limit(500).explain("queryPlanner"),
    ],
    ["timers: claim due", orders.find({ timerPending: true, nextTimerAt: { $lte: new Date() } }).sort({ nextTimerAt: 1 }).explain("queryPlanner")],
  ];
  const plans = await Promise.all(queries.map(([, p]) => p));
  return queries.map(([query], i) => ({ query, plan: plans[i] }));
}

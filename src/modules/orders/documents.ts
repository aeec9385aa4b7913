import type { ObjectId } from "mongodb";
import { timerFields, type StoredTimer } from "../../db/timers";
import type { DispatchView, OrderTimer, PersistedOrderMachine } from "./machine";
import type { OrderModel } from "./model";

/** An order's ETA as stored (Dates). */
export type EtaDates = { pickupAt: Date; deliveryAt: Date };

/** How an order is stored. Only this file and the repository know it. */
export type HistoryDoc = {
  seq: number;
  status: OrderModel.status;
  event: string;
  at: Date;
  by: OrderModel.actor;
  reason?: string;
};

export type OrderDoc = {
  /** When the restaurant said the food would be ready (PATCH readyInMinutes): dispatch plans on it. */
  expectedReadyAt?: Date;
  _id: ObjectId;
  status: OrderModel.status;
  version: number;
  /**
   * Bumped by every committed transition, also those parties do not see (a dispatch retry):
   * the compare-and-set is on version and rev. Absent on older orders (read as 0).
   */
  rev?: number;
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
  /** Copied from the restaurant at creation (dispatch, ETA and the geofence read them). Absent on older orders. */
  pickup?: OrderModel.latLng;
  prepTimeMinutes?: number;
  dispatch?: { state: DispatchView["state"]; attempts: number };
  eta?: EtaDates | null;
  /** Last ETA write (transitions and, at most every ETA_REFRESH_SECONDS, courier positions). */
  etaRefreshedAt?: Date;
  /** Durable timers (db/timers.ts): written with the transition that sets them. */
  timers?: StoredTimer[];
  timerPending?: boolean;
  nextTimerAt?: Date | null;
  timerLease?: { owner: string; until: Date };
  /** Targets the assigned courier was announced as approaching (once each). */
  approached?: { pickup?: boolean; dropoff?: boolean };
};

/** An order with what the server keeps beside its API shape. */
export type StoredOrder = {
  order: OrderModel.order;
  rev: number;
  restaurantOwnerId: string;
  machine: PersistedOrderMachine;
  pickup: OrderModel.latLng | null;
  prepTimeMinutes: number | null;
};

export function toStoredTimers(timers: OrderTimer[]) {
  return timerFields(timers.map((t) => ({ kind: t.kind, dueAt: new Date(t.dueAt), ref: t.ref })));
}

export function toStoredDispatch(view: DispatchView): NonNullable<OrderDoc["dispatch"]> {
  return { state: view.state, attempts: view.attempts };
}

export function toOrder(doc: OrderDoc): OrderModel.order {
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
  const dispatch = doc.dispatch ?? { state: doc.courierId !== null ? "assigned" : "idle", attempts: 0 };
  order.dispatch = { state: dispatch.state, attempts: dispatch.attempts };
  order.eta = doc.eta ? { pickupAt: doc.eta.pickupAt.toISOString(), deliveryAt: doc.eta.deliveryAt.toISOString() } : null;
  return order;
}

export function toStored(doc: OrderDoc): StoredOrder {
  return {
    order: toOrder(doc),
    rev: doc.rev ?? 0,
    restaurantOwnerId: doc.restaurantOwnerId,
    machine: doc.machine,
    pickup: doc.pickup ?? null,
    prepTimeMinutes: doc.prepTimeMinutes ?? null,
  };
}


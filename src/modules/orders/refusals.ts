import { Conflict, IllegalTransition, NotFound, PreconditionFailed, ServiceUnavailable } from "../../errors";
import { allowedTargets, type OrderEvent, type OrderSnapshot } from "./machine";
import type { OrderModel } from "./model";

/** Why the machine refused `event` on `order`: 409, with the statuses the actor may move to when it is not a claim. */
export function refusal(order: OrderModel.order, snapshot: OrderSnapshot, event: OrderEvent): Error {
  if (event.type === "ASSIGN_COURIER") {
    if (order.courierId !== null) return new Conflict(`order ${order.id} already has a courier`);
    return new Conflict(`order ${order.id} is ${order.status}; only accepted, preparing or ready_for_pickup orders can be claimed`);
  }
  const allowed = allowedTargets(snapshot, event.actor);
  return new IllegalTransition(
    `${event.actor.role} ${event.actor.id} may not make ${event.type} on a ${order.status} order` +
      (allowed.length ? ` (allowed: ${allowed.join(", ")})` : " (no move allowed now)"),
    allowed,
  );
}

/** A refused or failed event's metric label. */
export function outcomeOf(err: unknown): string {
  if (!(err instanceof Error)) return "error";
  if (err instanceof IllegalTransition || err instanceof Conflict) return "refused";
  if (err instanceof PreconditionFailed) return "conflict";
  if (err instanceof ServiceUnavailable) return "unavailable";
  if (err instanceof NotFound) return "not_found";
  return "error";
}

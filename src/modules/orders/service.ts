import type { Clock } from "../../clock";
import type { Config } from "../../config";
import { isClaimableStatus, type Principal } from "../../vocabulary";
import { Conflict, IdempotencyKeyInFlight, IdempotencyKeyReused, IllegalTransition, NotFound, Unprocessable } from "../../errors";
import { errorField, type Logger } from "../../log";
import type { EventBus } from "../../events/bus";
import { latestChange } from "../../events/change";
import { isParty } from "../../events/order";
import type { RestaurantRepository } from "../restaurants/repository";
import { estimateEta } from "./eta";
import { requestFingerprint } from "./idempotency";
import type { IdempotencyKeys } from "./idempotency-keys";
import { dispatchViewOf, eventForTarget, initialOrderSnapshot, persistSnapshot, timersOf } from "./machine";
import type { OrderModel } from "./model";
import { priceOrder } from "./pricing";
import type { OrderActorRegistry } from "./registry";
import type { OrderRepository, OrderScope, StoredOrder } from "./repository";

export type OrderServiceDeps = {
  repo: OrderRepository;
  keys: IdempotencyKeys;
  restaurants: RestaurantRepository;
  registry: OrderActorRegistry;
  bus: EventBus;
  clock: Clock;
  config: Pick<Config, "DELIVERY_BASE_FEE_CENTS" | "DELIVERY_FEE_PER_KM_CENTS" | "INSTANCE_ID" | "IDEMPOTENCY_KEY_TTL_SECONDS" | "REQUEST_TIMEOUT_MS" | "ACCEPT_TIMEOUT_SECONDS" | "COURIER_SPEED_MPS" | "DISPATCH_RETRY_SECONDS">;
  log: Logger;
};

function scopeOf(who: Principal): OrderScope {
  switch (who.role) {
    case "admin":
      return { kind: "all" };
    case "customer":
      return { kind: "customer", id: who.id };
    case "restaurant":
      return { kind: "restaurantOwner", id: who.id };
    case "courier":
      return { kind: "courier", id: who.id };
  }
}

export class OrderService {
  constructor(private readonly deps: OrderServiceDeps) {}

  /**
   * Places an order priced from the menu. With an Idempotency-Key (IETF draft): a repeat with the
   * same body returns the first order (`created: false`); another body is 422; a repeat while the
   * first is still running is 409. Keys are per customer and expire after IDEMPOTENCY_KEY_TTL_SECONDS.
   */
  async place(customer: Principal, input: OrderModel.create, idempotencyKey?: string): Promise<{ created: boolean; order: OrderModel.order }> {
    if (idempotencyKey === undefined) return this.create(customer, input);
    const now = this.deps.clock.now();
    const claim = await this.deps.keys.claim({
      customerId: customer.id,
      key: idempotencyKey,
      fingerprint: requestFingerprint(input),
      now,
      ttlMs: this.deps.config.IDEMPOTENCY_KEY_TTL_SECONDS * 1000,
      // Past this a pending key is taken as abandoned (its process died). Safe even if the first
      // is only slow: both runs insert under the same token, and the unique index keeps one order.
      lockMs: this.deps.config.REQUEST_TIMEOUT_MS,
    });
    switch (claim.kind) {
      case "mismatch":
        throw new IdempotencyKeyReused(`Idempotency-Key ${JSON.stringify(idempotencyKey)} was already used with a different request body; use a new key for a new order`);
      case "inFlight":
        throw new IdempotencyKeyInFlight(`the first request with Idempotency-Key ${JSON.stringify(idempotencyKey)} is still being processed; retry later`);
      case "done": {
        const first = await this.deps.repo.findById(claim.orderId);
        if (!first) throw new NotFound(`order ${claim.orderId} not found`);
        return { created: false, order: first.order };
      }
      case "run":
        break;
    }
    let placed: { created: boolean; order: OrderModel.order };
    try {
      // The order carries the claim's token (unique per use of the key), so a takeover after a
      // crash finds the order the first run inserted instead of placing a second one.
      placed = await this.create(customer, input, claim.token);
    } catch (err) {
      await this.deps.keys.release(claim.token);
      throw err;
    }
    // Should this write fail, the key stays pending: after lockMs a retry takes it over and finds the order.
    await this.deps.keys.complete(claim.token, placed.order.id);
    return placed;
  }

  private async create(customer: Principal, input: OrderModel.create, idempotencyKey?: string): Promise<{ created: boolean; order: OrderModel.order }> {
    const restaurant = await this.deps.restaurants.findById(input.restaurantId);
    if (!restaurant) throw new NotFound(`restaurant ${input.restaurantId} not found`);
    const at = this.deps.clock.now();
    const priced = priceOrder(restaurant, input.items, input.deliveryLocation, at, {
      baseFeeCents: this.deps.config.DELIVERY_BASE_FEE_CENTS,
      perKmCents: this.deps.config.DELIVERY_FEE_PER_KM_CENTS,
    });
    const by: OrderModel.actor = { role: "customer", id: customer.id };
    // The restaurant must accept by then (a durable timer, written with the order).
    const acceptBy = at.getTime() + this.deps.config.ACCEPT_TIMEOUT_SECONDS * 1000;
    const snapshot = initialOrderSnapshot({ customerId: customer.id, restaurantOwnerId: restaurant.ownerId, courierId: null, acceptBy });
    const eta = estimateEta({
      status: "placed",
      now: at.getTime(),
      pickup: restaurant.location,
      dropoff: input.deliveryLocation,
      prepTimeMinutes: restaurant.prepTimeMinutes,
      courier: null,
      history: [],
      speedMps: this.deps.config.COURIER_SPEED_MPS,
    });
    const { created, stored } = await this.deps.repo.insert({
      customerId: customer.id,
      restaurantId: restaurant.id,
      restaurantOwnerId: restaurant.ownerId,
      items: priced.items,
      subtotalCents: priced.subtotalCents,
      deliveryFeeCents: priced.deliveryFeeCents,
      totalCents: priced.totalCents,
      deliveryLocation: { lat: input.deliveryLocation.lat, lng: input.deliveryLocation.lng },
      ...(input.notes !== undefined ? { notes: input.notes } : {}),
      at,
      by,
      machine: persistSnapshot(snapshot),
      ...(idempotencyKey !== undefined ? { idempotencyKey } : {}),
      pickup: restaurant.location,
      prepTimeMinutes: restaurant.prepTimeMinutes,
      dispatch: dispatchViewOf(snapshot),
      timers: timersOf(snapshot, { searchTimeoutMs: this.deps.config.DISPATCH_RETRY_SECONDS * 1000 }),
      eta: eta && { pickupAt: new Date(eta.pickupAt), deliveryAt: new Date(eta.deliveryAt) },
    });
    if (created) this.announceCreated(stored.order);
    return { created, order: stored.order };
  }

  /**
   * The order if `who` takes part in it; otherwise 404, exactly as for a missing order. With
   * `cached`, a live copy in the registry may answer: who takes part in an order only grows
   * (a courier joins once), so a stale copy that says "party" is still right, and one that
   * says "not a party" is checked against the database.
   */
  async visibleTo(who: Principal, orderId: string, opts: { cached?: boolean } = {}): Promise<StoredOrder> {
    const live = opts.cached ? this.deps.registry.peek(orderId) : undefined;
    if (live && isParty(who, live)) return live;
    const stored = await this.deps.repo.findById(orderId);
    if (!stored || !isParty(who, stored)) throw new NotFound(`order ${orderId} not found`);
    return stored;
  }

  list(who: Principal, query: OrderModel.listQuery): Promise<OrderModel.page> {
    return this.deps.repo.list(scopeOf(who), {
      limit: query.limit ?? 20,
      ...(query.status !== undefined ? { status: query.status } : {}),
      ...(query.restaurantId !== undefined ? { restaurantId: query.restaurantId } : {}),
      ...(query.cursor !== undefined ? { cursor: query.cursor } : {}),
    });
  }

  /** `loaded`: the order as this request already read it (its actor starts from it when none is live). */
  async changeStatus(who: Principal, orderId: string, change: OrderModel.patch, ifMatch?: number, loaded?: StoredOrder): Promise<OrderModel.order> {
    const actor = { role: who.role, id: who.id };
    if (change.readyInMinutes !== undefined && change.status !== "accepted" && change.status !== "preparing") {
      throw new Unprocessable("readyInMinutes goes with status accepted or preparing");
    }
    const type = eventForTarget(change.status);
    if (type === null) {
      const allowed = await this.deps.registry.allowedTargets(orderId, actor);
      throw new IllegalTransition(`no move leads back to ${change.status}`, allowed);
    }
    const order = await this.deps.registry.send(orderId, {
      event: { type, actor },
      ...(change.reason !== undefined ? { reason: change.reason } : {}),
      ...(ifMatch !== undefined ? { ifMatch } : {}),
      ...(loaded !== undefined ? { loaded } : {}),
    });
    // A planning hint beside the order, not part of its state: lost with a crash right here, the estimate is used instead.
    if (change.readyInMinutes !== undefined) await this.deps.repo.setExpectedReady(orderId, new Date(this.deps.clock.now().getTime() + change.readyInMinutes * 60_000));
    return order;
  }

  async claim(courier: Principal, orderId: string): Promise<OrderModel.order> {
    try {
      return await this.deps.registry.send(orderId, { event: { type: "ASSIGN_COURIER", actor: { role: courier.role, id: courier.id } } });
    } catch (err) {
      // Any courier may claim inside the claim window, so there a refusal (taken) may say so
      // (API.md: 409). Outside it, a courier who takes no part gets the missing-order answer.
      if (err instanceof Conflict) {
        const stored = this.deps.registry.peek(orderId) ?? (await this.deps.repo.findById(orderId));
        if (stored && !isParty(courier, stored) && !isClaimableStatus(stored.order.status)) throw new NotFound(`order ${orderId} not found`);
      }
      throw err;
    }
  }

  private announceCreated(order: OrderModel.order): void {
    try {
      this.deps.bus.publish(latestChange(order, this.deps.config.INSTANCE_ID));
    } catch (err) {
      this.deps.log.error("publishing a new order failed", { orderId: order.id, err: errorField(err) });
    }
  }
}

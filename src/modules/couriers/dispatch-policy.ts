import type { LatLng } from "../../geo";
import type { DispatchContext } from "../orders/machine";
import { rankNearest } from "./planning";

/**
 * The dispatch choice, as plain functions: who is dispatchable, who gets the next offer, and
 * what the offer says. No I/O: the dispatcher (dispatcher.ts) feeds them what it read.
 */

export type DispatchPolicy = {
  /** Offers per search round. */
  maxAttempts: number;
  radiusMeters: number;
  /** Orders a courier may carry and still get offers. */
  maxActive: number;
  /** A courier must have sent a position this recently. */
  seenWithinMs: number;
  offerTtlMs: number;
  /** Wait before the next round when nobody was found. */
  retryMs: number;
};

export type Candidate = {
  id: string;
  available: boolean;
  lastSeenAt: Date | null;
  offer: { orderId: string; expiresAt: Date } | null;
  distanceMeters: number;
  /** Orders it carries now. */
  activeOrders: number;
};

/** Available, seen recently, below the carrying limit, and holding no live offer. */
export function isDispatchable(c: Omit<Candidate, "distanceMeters" | "id">, now: Date, policy: Pick<DispatchPolicy, "maxActive" | "seenWithinMs">): boolean {
  return (
    c.available &&
    c.lastSeenAt !== null &&
    now.getTime() - c.lastSeenAt.getTime() <= policy.seenWithinMs &&
    c.activeOrders < policy.maxActive &&
    (c.offer === null || c.offer.expiresAt.getTime() <= now.getTime())
  );
}

export type DispatchDecision =
  /** Offer to the first of `ranked` that can still be reserved (nearest first). */
  | { kind: "offer"; ranked: Candidate[]; expiresAt: Date }
  /** Nobody to offer it to now: wait until `retryAt`. */
  | { kind: "wait"; reason: "max_attempts" | "no_courier"; retryAt: Date };

/**
 * Who gets the order next: the `nearest` policy's rule (planning/nearest.ts, the one the MDRP benchmark
 * replays) over the dispatchable couriers, unless this round's attempts are used up.
 */
export function decide(
  order: Pick<DispatchContext, "roundAttempts" | "excluded">,
  candidates: Candidate[],
  now: Date,
  policy: DispatchPolicy,
): DispatchDecision {
  const retryAt = new Date(now.getTime() + policy.retryMs);
  if (order.roundAttempts >= policy.maxAttempts) return { kind: "wait", reason: "max_attempts", retryAt };
  const dispatchable = candidates.filter((c) => isDispatchable(c, now, policy));
  const ranked = rankNearest(dispatchable, (c) => c.distanceMeters, order.excluded, policy.radiusMeters);
  if (ranked.length === 0) return { kind: "wait", reason: "no_courier", retryAt };
  return { kind: "offer", ranked, expiresAt: new Date(now.getTime() + policy.offerTtlMs) };
}

/** The message on `courier:<id>` that offers an order. */
export function offerMessage(
  topic: string,
  offer: { orderId: string; expiresAt: Date; pickup: LatLng; dropoff: LatLng; distanceMeters: number },
): Record<string, unknown> {
  return {
    type: "offer",
    topic,
    orderId: offer.orderId,
    expiresAt: offer.expiresAt.toISOString(),
    pickup: { lat: offer.pickup.lat, lng: offer.pickup.lng },
    dropoff: { lat: offer.dropoff.lat, lng: offer.dropoff.lng },
    distanceMeters: Math.round(offer.distanceMeters),
  };
}

/** Why an offer a courier held ended without it: sent as `offer.revoked` (not after its own decline). */
export type RevokeReason = "expired" | "taken" | "cancelled";

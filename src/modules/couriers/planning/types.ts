/**
 * The dispatch planning interface: what a policy sees and what it decides. Plain data, no I/O,
 * so the server's dispatcher and the MDRP benchmark (scripts/bench/mdrp.ts) drive the same code.
 * Times are minutes on the caller's clock (fractions allowed); points are whatever the caller's
 * geometry measures (lat/lng in the server, metres in the benchmark).
 */

export type Minutes = number;

/** How the caller measures its world. */
export type Geometry<P> = {
  /** Straight-line distance in metres (the `nearest` policy ranks and limits by it). */
  meters(a: P, b: P): number;
  /** Travel time in minutes between two points. */
  travelMinutes(a: P, b: P): Minutes;
};

/** An order nobody is assigned to yet. */
export type PlanOrder<P> = {
  id: string;
  restaurantId: string;
  pickup: P;
  dropoff: P;
  placedAt: Minutes;
  /** When the food is expected to be ready (the restaurant's word, an estimate, or the truth). */
  readyAt: Minutes;
  /** Orders this courier declined or let expire: never offered to it again. */
  excluded?: readonly string[];
};

/** An on-duty courier. */
export type PlanCourier<P> = {
  id: string;
  /** Where it is now. */
  position: P;
  /** Orders it carries or is committed to. */
  carrying: number;
  /** When and where it finishes what it carries (now and `position` when it carries nothing). */
  freeAt: Minutes;
  freePoint: P;
  /** End of its shift when known: it cannot pick up after it. */
  shiftEnd: Minutes | null;
  /** It holds an unanswered offer (the server's couriers hold at most one). */
  offered?: boolean;
};

export type ServiceTimes = {
  /** Minutes at the restaurant; the pickup happens half-way through. */
  pickupMinutes: Minutes;
  /** Minutes at the customer; the drop-off happens half-way through. */
  dropoffMinutes: Minutes;
};

export type NearestParams = {
  radiusMeters: number;
  /** Orders a courier may carry and still get offers. */
  maxActive: number;
};

export type BatchedParams = {
  /** Minutes between planning rounds (the rolling horizon's step). */
  intervalMinutes: Minutes;
  /** Orders expected ready within this many minutes are planned this round. */
  horizonMinutes: Minutes;
  /** Most orders in one bundle (and on one courier at once). */
  maxBundle: number;
  /** Orders of one restaurant are bundled when planned orders per free courier exceed this. */
  bundleFromOrdersPerCourier: number;
  /** An order joins a bundle only when that adds at most this many minutes of click-to-door to the bundle. */
  bundleMaxExtraMinutes: Minutes;
  /** A courier still on a trip is planned too when it finishes within this many minutes (from its last drop-off). */
  busyLookaheadMinutes: Minutes;
  /** ...but committed only if it would reach the food at most this many minutes after it is ready. */
  busyLateMaxMinutes: Minutes;
  /** Couriers further than this (metres) from the restaurant are not offered its orders (the server's DISPATCH_RADIUS_METERS). */
  radiusMeters?: number;
  /** Click-to-door target: minutes past it cost `latePenalty` more per minute. */
  targetMinutes: Minutes;
  latePenalty: number;
  /** Cost per minute an order's food waits for its courier, on top of its click-to-door (ready-to-pickup is a metric of its own). */
  foodWaitWeight: number;
  /** Cost per minute a courier waits at the restaurant for food. */
  waitWeight: number;
  /** Cost per minute a courier drives to the restaurant (keeps far couriers for later). */
  approachWeight: number;
  /** A courier is sent when it would arrive at most one round plus this many minutes before the food. */
  commitSlackMinutes: Minutes;
  /**
   * A free courier matched to a bundle too early to commit is sent towards its restaurant when the food is
   * expected within this many minutes (0: never; the courier then waits where it is).
   */
  repositionWithinMinutes: Minutes;
  /**
   * What an order left without a courier this round is taken to cost, in minutes. Couriers short, the
   * assignment then serves as many orders as it can before it minimises their cost (bundles win couriers).
   */
  unservedMinutes: Minutes;
};

export type PlanInput<P> = {
  now: Minutes;
  orders: readonly PlanOrder<P>[];
  couriers: readonly PlanCourier<P>[];
  geometry: Geometry<P>;
  service: ServiceTimes;
};

/** What a policy decides for one round; orders it does not name wait for a later round. */
export type PlanDecision =
  /** Offer these orders (one restaurant, dropped off in this sequence) to the courier as one bundle. */
  | { kind: "offer"; courierId: string; orderIds: string[] }
  /**
   * Send the courier (free, carrying nothing) towards the restaurant of a bundle whose food is not ready
   * for a while yet, without committing either: the bundle is fixed in a later round (most often on this
   * courier, by then close by), and the courier may get another one meanwhile.
   */
  | { kind: "reposition"; courierId: string; restaurantId: string; orderIds: string[] };

export type PolicyName = "nearest" | "batched";

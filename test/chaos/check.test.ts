import { describe, expect, test } from "bun:test";
import {
  check,
  checkAcks,
  checkCourierLimit,
  checkFeed,
  checkStuck,
  checkTimers,
  checkWatch,
  replayOrder,
  type Ack,
  type CheckConfig,
  type FeedWatch,
  type Order,
  type OrderNote,
  type Watch,
} from "../../scripts/chaos/check";

/**
 * The chaos run's checker on hand-made histories: a legal one passes, and each kind of
 * damage the run exists to catch (gap, illegal step, timer fired twice or early, lost ack,
 * WebSocket gap/duplicate/reorder/tail, courier over its limit) is reported.
 */
const CONFIG: CheckConfig = { acceptTimeoutMs: 4_000, offerTtlMs: 2_000, courierMaxActive: 1 };
const OWNER = "owner-1";
const CUSTOMER = "customer-1";
const T0 = Date.parse("2030-01-01T12:00:00.000Z");

type Step = [event: string, status: Order["status"], role: string, id: string, ms: number, reason?: string];

function order(id: string, steps: Step[], opts: { courierId?: string | null; dispatch?: Order["dispatch"] } = {}): Order {
  const history = steps.map(([event, status, role, by, ms, reason], i) => ({
    seq: i + 1,
    event,
    status,
    at: new Date(T0 + ms).toISOString(),
    by: { role: role as Order["history"][number]["by"]["role"], id: by },
    ...(reason ? { reason } : {}),
  }));
  const last = history[history.length - 1];
  const assigned = [...history].reverse().find((e) => e.event === "OFFER_ACCEPT" || e.event === "ASSIGN_COURIER");
  return {
    id,
    status: last.status,
    version: history.length,
    customerId: CUSTOMER,
    restaurantId: "r-1",
    courierId: opts.courierId !== undefined ? opts.courierId : (assigned?.by.id ?? null),
    items: [],
    subtotalCents: 0,
    deliveryFeeCents: 0,
    totalCents: 0,
    deliveryLocation: { lat: 0, lng: 0 },
    createdAt: history[0].at,
    updatedAt: last.at,
    history,
    ...(opts.dispatch ? { dispatch: opts.dispatch } : {}),
  };
}

/** Placed, accepted, offered to k1 (expired), offered to k2 (declined), offered to k3 (accepted), cooked, delivered. */
const LIFE: Step[] = [
  ["PLACE", "placed", "customer", CUSTOMER, 0],
  ["ACCEPT", "accepted", "restaurant", OWNER, 500],
  ["OFFER", "accepted", "system", "dispatch", 510],
  ["OFFER_EXPIRE", "accepted", "system", "timer", 2_600, "offer_expired"],
  ["OFFER", "accepted", "system", "dispatch", 2_620],
  ["OFFER_DECLINE", "accepted", "courier", "k2", 3_000, "declined"],
  ["OFFER", "accepted", "system", "dispatch", 3_020],
  ["OFFER_ACCEPT", "accepted", "courier", "k3", 3_300],
  ["START_PREPARING", "preparing", "restaurant", OWNER, 3_500],
  ["MARK_READY", "ready_for_pickup", "restaurant", OWNER, 5_000],
  ["PICK_UP", "picked_up", "courier", "k3", 5_500],
  ["DELIVER", "delivered", "courier", "k3", 6_500],
];

const owners = new Map([["r-1", OWNER]]);

describe("replaying histories through the order machine", () => {
  test("a legal life with expiry, decline and accept replays cleanly, dispatch view included", () => {
    expect(replayOrder(order("o1", LIFE, { dispatch: { state: "assigned", attempts: 3 } }), OWNER, CONFIG)).toEqual([]);
  });

  test("a claim, a restaurant timeout and a rejection replay cleanly", () => {
    const claimed: Step[] = [LIFE[0], LIFE[1], ["ASSIGN_COURIER", "accepted", "courier", "k9", 700], ["CANCEL", "cancelled", "restaurant", OWNER, 900]];
    const timedOut: Step[] = [LIFE[0], ["ACCEPT_TIMEOUT", "cancelled", "system", "timer", 4_050, "restaurant_timeout"]];
    const rejected: Step[] = [LIFE[0], ["REJECT", "rejected", "restaurant", OWNER, 300]];
    for (const steps of [claimed, timedOut, rejected]) expect(replayOrder(order("o", steps), OWNER, CONFIG)).toEqual([]);
  });

  test("a gap in seqs, a version that disagrees, a wrong status are reported", () => {
    const o = order("o2", LIFE);
    o.history.splice(4, 1);
    expect(replayOrder(o, OWNER, CONFIG).map((v) => v.kind)).toContain("history-seq");
    const v = order("o3", LIFE);
    v.version = 11;
    expect(replayOrder(v, OWNER, CONFIG).map((x) => x.kind)).toContain("history-seq");
    const s = order("o4", LIFE);
    s.history[8] = { ...s.history[8], status: "ready_for_pickup" };
    expect(replayOrder(s, OWNER, CONFIG)[0]).toMatchObject({ kind: "illegal-step" });
  });

  test("moves the machine refuses are reported: wrong actor, skipped status, a second offer while one is out", () => {
    const wrongCourier = LIFE.map((s, i): Step => (i === 10 ? ["PICK_UP", "picked_up", "courier", "k2", 5_500] : s));
    const skipped: Step[] = [LIFE[0], ["DELIVER", "delivered", "courier", "k3", 100]];
    const twoOffers: Step[] = [LIFE[0], LIFE[1], LIFE[2], ["OFFER", "accepted", "system", "dispatch", 600]];
    const byCustomer: Step[] = [LIFE[0], ["ACCEPT", "accepted", "customer", CUSTOMER, 100]];
    for (const steps of [wrongCourier, skipped, twoOffers, byCustomer]) {
      const found = replayOrder(order("bad", steps), OWNER, CONFIG);
      expect(found.length).toBe(1);
      expect(found[0].kind).toBe("illegal-step");
    }
  });

  test("a courier or dispatch view the replay does not reach is reported", () => {
    expect(replayOrder(order("o5", LIFE, { courierId: "k2" }), OWNER, CONFIG)[0]).toMatchObject({ kind: "replay-mismatch" });
    expect(replayOrder(order("o6", LIFE, { dispatch: { state: "assigned", attempts: 2 } }), OWNER, CONFIG)[0]).toMatchObject({ kind: "replay-mismatch" });
  });
});

describe("timers", () => {
  test("one restaurant timeout on time is fine; twice, or early, is not", () => {
    const once = order("t1", [LIFE[0], ["ACCEPT_TIMEOUT", "cancelled", "system", "timer", 4_000]]);
    expect(checkTimers(once, [], CONFIG)).toEqual({ violations: [], fired: 1 });
    const early = order("t2", [LIFE[0], ["ACCEPT_TIMEOUT", "cancelled", "system", "timer", 3_999]]);
    expect(checkTimers(early, [], CONFIG).violations[0]).toMatchObject({ kind: "timer-early" });
    const twice = order("t3", [LIFE[0], ["ACCEPT_TIMEOUT", "cancelled", "system", "timer", 4_000], ["ACCEPT_TIMEOUT", "cancelled", "system", "timer", 4_100]]);
    expect(checkTimers(twice, [], CONFIG).violations.map((v) => v.kind)).toContain("timer-twice");
  });

  test("an offer expiry fires once per offer, not before the deadline the courier was told", () => {
    const o = order("t4", LIFE);
    const told = [{ orderId: "t4", courierId: "k1", expiresAtMs: T0 + 2_505 }];
    expect(checkTimers(o, told, CONFIG).violations).toEqual([]);
    const beforeDeadline = order("t4", LIFE.map((s, i): Step => (i === 3 ? ["OFFER_EXPIRE", "accepted", "system", "timer", 2_400] : s)));
    expect(checkTimers(beforeDeadline, told, CONFIG).violations[0]).toMatchObject({ kind: "timer-early" });
    const again = order("t5", [...LIFE.slice(0, 4), ["OFFER_EXPIRE", "accepted", "system", "timer", 2_700]]);
    expect(checkTimers(again, [], CONFIG).violations[0]).toMatchObject({ kind: "timer-twice" });
  });
});

describe("acknowledged writes", () => {
  const o = order("a1", LIFE);
  const byId = new Map([[o.id, o]]);
  const courier = { role: "courier" as const, id: "k3" };

  test("acks matching their entries pass", () => {
    const acks: Ack[] = [
      { kind: "place", orderId: "a1", by: { role: "customer", id: CUSTOMER }, version: 1, status: "placed", courierId: null },
      { kind: "patch", orderId: "a1", by: { role: "restaurant", id: OWNER }, version: 2, status: "accepted", courierId: null },
      { kind: "accept", orderId: "a1", by: courier, version: 8, status: "accepted", courierId: "k3" },
      { kind: "decline", orderId: "a1", by: { role: "courier", id: "k2" } },
      { kind: "patch", orderId: "a1", by: courier, version: 12, status: "delivered", courierId: "k3" },
    ];
    expect(checkAcks(byId, acks)).toEqual([]);
  });

  test("an ack whose entry is missing, differs, or belongs to someone else is reported", () => {
    const acks: Ack[] = [
      { kind: "patch", orderId: "a1", by: courier, version: 13, status: "delivered", courierId: "k3" },
      { kind: "patch", orderId: "a1", by: { role: "restaurant", id: OWNER }, version: 9, status: "ready_for_pickup", courierId: "k3" },
      { kind: "patch", orderId: "a1", by: { role: "restaurant", id: "someone" }, version: 10, status: "ready_for_pickup", courierId: "k3" },
      { kind: "claim", orderId: "a1", by: { role: "courier", id: "k1" }, version: 8, status: "accepted", courierId: "k3" },
      { kind: "decline", orderId: "a1", by: { role: "courier", id: "k1" } },
      { kind: "place", orderId: "nope", by: { role: "customer", id: CUSTOMER }, version: 1, status: "placed", courierId: null },
    ];
    expect(checkAcks(byId, acks).map((v) => v.kind)).toEqual(["ack-missing", "ack-missing", "ack-missing", "ack-missing", "ack-missing", "order-missing"]);
  });
});

describe("WebSocket streams", () => {
  const o = order("w1", LIFE);
  const frames = (seqs: number[]) => seqs.map((seq) => ({ seq, status: o.history[seq - 1].status, event: o.history[seq - 1].event }));
  const watch = (firstSeq: number, seqs: number[]): Watch => ({ orderId: "w1", watcher: "c", firstSeq, resumes: 1, received: frames(seqs) });

  test("exactly the entries after the first seq pass", () => {
    expect(checkWatch(o, watch(1, [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]))).toEqual([]);
    expect(checkWatch(o, watch(7, [8, 9, 10, 11, 12]))).toEqual([]);
  });

  test("a gap, a duplicate, a reorder, a missing tail and a wrong event are each reported", () => {
    const cases: Array<[number[], string]> = [
      [[2, 3, 5, 6, 7, 8, 9, 10, 11, 12], "gap: seq 4 missing"],
      [[2, 3, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], "duplicate seq 3"],
      [[2, 4, 3, 5, 6, 7, 8, 9, 10, 11, 12], "gap: seq 3 missing"],
      [[2, 3, 4, 5, 6, 7, 8, 9, 10], "missing the last 2 event(s) from seq 11"],
    ];
    for (const [seqs, detail] of cases) {
      const found = checkWatch(o, watch(1, seqs));
      expect(found.length).toBe(1);
      expect(found[0].kind).toBe("ws-stream");
      expect(found[0].detail).toContain(detail);
    }
    const wrong = watch(10, [11, 12]);
    wrong.received[0] = { ...wrong.received[0], status: "delivered" };
    expect(checkWatch(o, wrong)[0].detail).toContain("says PICK_UP/delivered");
  });
});

describe("courier limit", () => {
  test("one order after another is fine; two held at once is reported", () => {
    const first = order("c1", LIFE);
    const after = order("c2", [LIFE[0], LIFE[1], ["ASSIGN_COURIER", "accepted", "courier", "k3", 6_500], ["CANCEL", "cancelled", "restaurant", OWNER, 7_000]]);
    expect(checkCourierLimit([first, after], 1)).toEqual([]);
    const overlapping = order("c3", [LIFE[0], LIFE[1], ["ASSIGN_COURIER", "accepted", "courier", "k3", 6_000]]);
    const found = checkCourierLimit([first, overlapping], 1);
    expect(found.length).toBe(1);
    expect(found[0]).toMatchObject({ kind: "courier-limit" });
    expect(checkCourierLimit([first, overlapping], 2)).toEqual([]);
  });
});

describe("restaurant and courier topics (issue 11)", () => {
  const o = order("f1", LIFE);
  const entries = (from: number) => o.history.filter((e) => e.seq >= from).map((e) => ({ orderId: "f1", seq: e.seq, status: e.status, event: e.event }));
  const feed = (kind: "restaurant" | "courier", id: string, received: FeedWatch["received"]): FeedWatch => ({ topic: `${kind}:${id}`, kind, id, fromMs: T0 - 1_000, resumes: 1, received });

  test("a restaurant watcher with every change, some repeated by a resume, passes; a courier's starts at its assignment", () => {
    const repeated = [...entries(1).slice(0, 6), ...entries(4)];
    expect(checkFeed([o], feed("restaurant", "r-1", repeated))).toEqual([]);
    // The courier topic carries the order from its assignment (seq 8) on; replayed earlier entries are skipped.
    expect(checkFeed([o], feed("courier", "k3", [...entries(8).slice(0, 2), ...entries(6)]))).toEqual([]);
    // Another courier's or restaurant's watcher expects nothing of it.
    expect(checkFeed([o], feed("courier", "k2", []))).toEqual([]);
  });

  test("a missing change, a reorder, a foreign event and a missing assignment are each reported", () => {
    const all = entries(1);
    const missing = checkFeed([o], feed("restaurant", "r-1", all.filter((e) => e.seq !== 5)));
    expect(missing.map((v) => v.kind)).toEqual(["feed-stream"]);
    expect(missing[0].detail).toContain("missing 5 OFFER");
    const reordered = [...all.slice(0, 4), all[5], all[4], ...all.slice(6)];
    expect(checkFeed([o], feed("restaurant", "r-1", reordered))[0].detail).toContain("seq 5 after 6");
    expect(checkFeed([o], feed("restaurant", "r-2", all.slice(0, 1)))[0].detail).toContain("not an event of this topic");
    expect(checkFeed([o], feed("courier", "k3", entries(9)))[0].detail).toContain("missing 8 OFFER_ACCEPT");
  });

  test("changes committed after the load stopped watching (less 2 s) are not required, on any topic", () => {
    const stoppedAt = T0 + 6_000; // DELIVER (6.5 s) and MARK_READY (5 s, within the 2 s grace) came after
    const cut = { ...feed("restaurant", "r-1", entries(1).slice(0, 9)), untilMs: stoppedAt };
    expect(checkFeed([o], cut)).toEqual([]);
    expect(checkFeed([o], { ...cut, untilMs: undefined })[0].detail).toContain("missing 10 MARK_READY");
    const w: Watch = { orderId: "f1", watcher: "c", firstSeq: 1, resumes: 0, received: entries(2).slice(0, 8), untilMs: stoppedAt };
    expect(checkWatch(o, w)).toEqual([]);
  });
});

describe("orders left open", () => {
  const note = (cause: OrderNote["cause"], text: string): OrderNote => ({ at: "2030-01-01T12:00:09.000Z", cause, text });

  test("each open order is listed with its last state; the server caused it unless only the load's own actor explains it", () => {
    const refused = order("s1", LIFE.slice(0, 9), { dispatch: { state: "assigned", attempts: 3 } });
    const placed = order("s2", LIFE.slice(0, 1));
    const unassigned = order("s3", LIFE.slice(0, 3), { dispatch: { state: "offered", attempts: 1 } });
    const clientOnly = order("s4", LIFE.slice(0, 10));
    const unexplained = order("s5", LIFE.slice(0, 11));
    const done = order("s6", LIFE);
    const notes = new Map<string, OrderNote[]>([
      ["s1", [note("server", "PATCH → ready_for_pickup by restaurant:owner-1 refused 409 (Version conflict)"), note("client", "courier k3 stopped waiting")]],
      ["s4", [note("client", "courier k3 stopped waiting for it to become ready (ready_for_pickup)")]],
    ]);
    const stuck = checkStuck([refused, placed, unassigned, clientOnly, unexplained, done], notes);
    expect(stuck.map((s) => [s.orderId, s.serverCaused])).toEqual([
      ["s1", true],
      ["s2", true],
      ["s3", true],
      ["s4", false],
      ["s5", true],
    ]);
    expect(stuck[0].state).toBe(`preparing, dispatch assigned (3 offers), courier k3, last START_PREPARING by restaurant:${OWNER} at 2030-01-01T12:00:03.500Z`);
    expect(stuck[0].reason).toContain("refused 409");
    expect(stuck[1].reason).toContain("accept timeout");
    expect(stuck[2].reason).toContain("no courier");
    expect(stuck[3].reason).toContain("stopped waiting");
    // With every courier still busy at the end, an unassigned order is the load's excess, not the server's doing.
    expect(checkStuck([unassigned], notes, 0)).toMatchObject([{ orderId: "s3", serverCaused: false }]);
    // In check(), the server-caused ones are violations.
    const result = check({ orders: [refused, clientOnly], owners, acks: [], watches: [], offers: [], notes, config: CONFIG });
    expect(result.violations.filter((v) => v.kind === "stuck-order").map((v) => v.orderId)).toEqual(["s1"]);
    expect(result.stuck.length).toBe(2);
  });
});

test("check() sums it up: counts, and the violations of every part", () => {
  const good = order("g1", LIFE);
  const result = check({
    orders: [good],
    owners,
    acks: [{ kind: "patch", orderId: "g1", by: { role: "restaurant", id: OWNER }, version: 2, status: "accepted", courierId: null }],
    watches: [{ orderId: "g1", watcher: "c", firstSeq: 1, resumes: 2, received: good.history.slice(1).map((e) => ({ seq: e.seq, status: e.status, event: e.event })) }],
    offers: [],
    overdueTimers: [{ orderId: "x", kind: "accept_timeout", dueAt: "2030-01-01T12:00:04.000Z" }],
    config: CONFIG,
  });
  expect(result).toMatchObject({ orders: 1, transitions: 11, timersFired: 1, acksChecked: 1, watchesChecked: 1 });
  expect(result.violations.map((v) => v.kind)).toEqual(["timer-overdue"]);
});

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { redisCluster, singleRedis, type RedisDeployment } from "../../helpers/redis-deployments";
import { startEngineProcess, startServerProcess, stopAllProcesses, type EngineProcess, type ServerProcess, openPizzeriaOn, processHttp, registerOn, type ProcessResponse } from "../../helpers/processes";
import { WsClient } from "../../helpers/ws";

/**
 * Dispatch across server processes: the instance that commits an order's acceptance makes the
 * offer, and it reaches the courier connected to another instance; the courier answers through a
 * third. Twice: behind one redis-server, and behind a Redis Cluster (3 masters, 3 replicas), where
 * the offer crosses on the courier topic's sharded channel.
 */
type User = { token: string; id: string };
type Res = ProcessResponse;
const http = processHttp;

dispatchAcross("one Redis", singleRedis);
dispatchAcross("a Redis Cluster", redisCluster);

function dispatchAcross(deployment: string, startDeployment: () => Promise<RedisDeployment>): void {
describe(`dispatch across instances behind ${deployment}`, () => {
let redis: RedisDeployment;
let engine: EngineProcess;
let A: ServerProcess;
let B: ServerProcess;
let C: ServerProcess;
const clients: WsClient[] = [];
const register = (role: string): Promise<User> => registerOn(A, role, "dispatch-multi.test");

beforeAll(async () => {
  [redis, engine] = await Promise.all([startDeployment(), startEngineProcess()]);
  const env = {
    MONGODB_URI: engine.uri,
    ...redis.env,
    PASSWORD_HASH_MEMORY_KIB: "1024",
    PASSWORD_HASH_TIME_COST: "1",
    COURIER_LOCATION_INTERVAL_MS: "0",
    RATE_LIMIT_USER_WRITES: "100000",
    RATE_LIMIT_IP_WRITES: "100000",
  };
  A = await startServerProcess({ ...env, INSTANCE_ID: "DA" });
  [B, C] = await Promise.all([startServerProcess({ ...env, INSTANCE_ID: "DB" }), startServerProcess({ ...env, INSTANCE_ID: "DC" })]);
}, 60_000);

afterAll(async () => {
  for (const c of clients) c.close();
  await Promise.all([A, B, C].filter(Boolean).map((s) => s.stop("SIGTERM")));
  await engine?.stop();
  await redis?.stop();
  await stopAllProcesses();
});

  test("an order accepted through A is offered to a courier connected to B; the courier accepts through C", async () => {
    const [customer, owner, courier] = await Promise.all([register("customer"), register("restaurant"), register("courier")]);
    const restaurantId = await openPizzeriaOn(A, owner, "Far Pizza");
    expect((await http(C, "PUT", "/couriers/me/availability", courier, { available: true })).status).toBe(200);
    const ws = await WsClient.open(B.wsUrl, courier.token);
    clients.push(ws);
    expect((await ws.subscribe(`courier:${courier.id}`)).type).toBe("subscribed");
    // Its position over B's socket (stored in the shared database).
    ws.send({ op: "location", lat: 48.8576, lng: 2.3522 });
    const deadline = performance.now() + 5_000;
    while ((await http(C, "GET", "/couriers/me", courier)).body.position === null) {
      if (performance.now() > deadline) throw new Error("position never stored");
      await Bun.sleep(20);
    }

    const placed = await http(A, "POST", "/orders", customer, { restaurantId, items: [{ menuItemId: "pizza", quantity: 1 }], deliveryLocation: { lat: 48.8606, lng: 2.3622 } });
    expect(placed.status).toBe(201);
    expect((await http(A, "PATCH", `/orders/${placed.body.id}`, owner, { status: "accepted" })).status).toBe(200);
    const offer = await ws.next((f) => f.type === "offer" && f.orderId === placed.body.id);
    expect(offer.distanceMeters).toBe(111);

    const accepted = await http(C, "POST", `/orders/${placed.body.id}/offer/accept`, courier);
    expect(accepted.status).toBe(200);
    expect(accepted.body).toMatchObject({ courierId: courier.id, dispatch: { state: "assigned", attempts: 1 } });
    // The assignment reaches the courier's socket on B (order.updated on its topic, relayed).
    const update = await ws.next((f) => f.type === "order.updated" && f.orderId === placed.body.id && f.event === "OFFER_ACCEPT");
    expect(update.order.courierId).toBe(courier.id);
    const history = (await http(B, "GET", `/orders/${placed.body.id}`, customer)).body.history.map((h: { event: string }) => h.event);
    expect(history).toEqual(["PLACE", "ACCEPT", "OFFER", "OFFER_ACCEPT"]);
  }, 20_000);
});
}

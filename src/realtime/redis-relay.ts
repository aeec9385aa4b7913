import { connectRedis, type RedisClient, type RedisTarget } from "../redis";
import { toError } from "../log";
import type { OrderChange } from "../events/change";
import { RelayEventBus, type RelayOptions } from "./relay";

export type { GapFiller, RelayMetrics } from "./relay";

export type RedisEventBusOptions = RelayOptions & {
  redis: RedisTarget;
  /** Pub/sub channel shared by the instances of one deployment. */
  channel: string;
};

/**
 * The broadcast relay (RELAY_MODE=broadcast): every committed change and every transient
 * message goes to one channel every instance subscribes to, so each instance parses all of the
 * deployment's traffic whether or not one of its sockets watches it. Kept to compare against
 * the interest relay (interest-relay.ts, the default) in `bun run bench:scale`. On a cluster it
 * uses classic PUBLISH, which the cluster bus forwards to every node.
 */
export class RedisEventBus extends RelayEventBus {
  protected readonly pub: RedisClient;
  protected readonly sub: RedisClient;

  constructor(private readonly opts: RedisEventBusOptions) {
    super(opts);
    const name = `dispatch:${opts.instanceId}`;
    this.pub = connectRedis(opts.redis, { connectionName: name, offlineQueue: false, maxRetriesPerRequest: 1 });
    // The subscriber keeps its offline queue (and retries without limit) so the first SUBSCRIBE
    // waits for Redis however long it is down; ioredis re-subscribes after every reconnect.
    this.sub = connectRedis(opts.redis, { connectionName: name, offlineQueue: true, maxRetriesPerRequest: null });
    this.watchConnections();
    this.sub.on("message", (_channel: string, payload: string) => this.receive(payload, true));
    this.sub.subscribe(opts.channel).then(
      () => this.relay.metrics?.channels?.(1),
      (err: unknown) => this.markDown("subscriber", toError(err)),
    );
  }

  override publish(change: OrderChange): void {
    this.sequencer.offer(change);
    this.send([this.opts.channel], this.envelope("change", change), false);
  }

  override publishTransient(topic: string, message: Record<string, unknown>): void {
    super.publishTransient(topic, message);
    this.send([this.opts.channel], this.envelope("transient", topic, message), false);
  }

  protected describe(): Record<string, unknown> {
    return { mode: "broadcast", channel: this.opts.channel };
  }
}

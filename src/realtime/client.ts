import type { ServerWebSocket } from "bun";
import type { TopicWatch } from "../events/bus";
import type { Logger } from "../log";
import type { Metrics } from "../metrics";
import type { Principal } from "../vocabulary";
import type { TopicEvent } from "./history";
import type { RealtimeModel } from "./model";

export type Socket = ServerWebSocket<unknown>;

export const CLOSE_POLICY = 1008;
export const CLOSE_TRY_AGAIN_LATER = 1013;
export const CLOSE_GOING_AWAY = 1001;

/** A subscribe in progress: what the bus delivered on its topic while the replay was read. */
export type PendingSubscription = {
  topic: string;
  buffer: TopicEvent[];
  cancelled: boolean;
};

/**
 * An order topic whose subscriber has seq `lastSent` while the bus has not yet delivered that
 * far (a change committed before the read and published after it, or a relay gap filled
 * later): the native topic would send it seqs it has. Fed by the bus listener instead, with
 * only greater seqs, until the bus's delivered seq reaches `lastSent` (see CatchUps).
 */
export type CatchUp = {
  client: Client;
  topic: string;
  orderId: string;
  lastSent: number;
  /** Deliveries held while seqs the bus skipped are read from the database. */
  held?: Array<{ seq: number; data: string }> | null;
};

/** What every client sends through: metrics, the log, and the slow-consumer limit. */
export type ClientContext = {
  metrics: Pick<Metrics, "wsMessagesSent">;
  log: Logger;
  maxBufferedBytes: number;
};

/** One connection's state: who it is, its subscriptions, its frame allowance, and how it is sent to. */
export class Client {
  /** Topics subscribed, on the native topic or catching up. */
  readonly subscribed = new Set<string>();
  readonly pending = new Map<string, PendingSubscription>();
  readonly catchingUp = new Map<string, CatchUp>();
  /** This connection's interest in each topic it subscribes to (the relay routes by it). */
  readonly watches = new Map<string, TopicWatch>();
  /** Times of recent invalid frames (see FrameLimits). */
  strikes: number[] = [];
  /** Token bucket for client frames. */
  allowance: number;
  lastFrameMs = performance.now();
  /** Nothing more is sent (a close was started, or the socket is gone). */
  closed = false;
  /** The socket's close event came (the hub forgot this client). */
  gone = false;

  constructor(
    readonly socket: Socket,
    readonly principal: Principal,
    private readonly ctx: ClientContext,
    frameBurst: number,
  ) {
    this.allowance = frameBurst;
  }

  send(frame: Record<string, unknown>): void {
    this.sendRaw(JSON.stringify(frame));
  }

  sendError(code: RealtimeModel.errorCode, message: string, topic?: string): void {
    this.send(topic === undefined ? { type: "error", code, message } : { type: "error", code, message, topic });
  }

  /** `kind`: the metric label (replies, or topic messages sent one by one while catching up). */
  sendRaw(data: string, kind: "reply" | "order" = "reply"): void {
    if (this.closed) return;
    const status = this.socket.send(data);
    if (status !== 0) this.ctx.metrics.wsMessagesSent.inc({ kind });
    // -1: queued under backpressure; 0: dropped. Either way, see whether the client keeps up.
    if (status <= 0) this.closeIfSlow();
  }

  /** Closes with `code` and sends nothing more. */
  close(code: number, reason: string): void {
    this.closed = true;
    this.socket.close(code, reason);
  }

  /**
   * Closes a client whose queue passed the limit (1013), and cuts it after a grace period
   * (one that reads nothing never completes the close handshake).
   */
  closeIfSlow(): void {
    if (this.closed || this.socket.getBufferedAmount() <= this.ctx.maxBufferedBytes) return;
    this.ctx.log.info("closing a slow websocket client", { principalId: this.principal.id, bufferedBytes: this.socket.getBufferedAmount() });
    this.close(CLOSE_TRY_AGAIN_LATER, "client too slow; reconnect and resume with since");
    const socket = this.socket;
    setTimeout(() => {
      if (!this.gone) socket.terminate();
    }, 5_000).unref?.();
  }
}

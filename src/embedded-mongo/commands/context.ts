// What a command handler receives.

import type { Document } from "bson";
import type { OpContext } from "../engine";
import type { FailPoints } from "../failpoints";

/** The client connection a command arrived on. */
export interface ConnectionInfo {
  readonly id: number;
  /** Compressors agreed in the handshake (zlib or none). */
  compressors: string[];
  /** The driver's appName from the handshake metadata, for fail points. */
  appName: string | null;
}

/** Facts about the listening server that hello reports. */
export interface ServerInfo {
  /** host:port as advertised in hello (me, hosts, primary); set once the listener has its port. */
  address: string;
  readonly failPoints: FailPoints;
}

export interface CommandContext extends OpContext {
  readonly connection: ConnectionInfo;
  readonly server: ServerInfo;
}

export type CommandHandler = (cmd: Document, ctx: CommandContext) => Document;

export interface CommandSpec {
  handler: CommandHandler;
  /**
   * The command's own fields the handler implements (besides its name and the generic fields), or
   * "any" for read-only diagnostics whose fields cannot change what is stored or returned as data.
   */
  options: readonly string[] | "any";
  /** May run inside a multi-document transaction. */
  inTransaction?: boolean;
  /** A write the driver may retry with the same txnNumber (answered from the session's record). */
  retryableWrite?: boolean;
}

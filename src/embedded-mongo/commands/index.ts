// Routes a command document to its handler, wrapping it in what every command shares: fail
// points, sessions, transactions, retryable writes, error replies and the journal batch.

import { Binary, type Document, Long, type Timestamp } from "bson";
import type { Engine, OpContext } from "../engine";
import { CommandError, ErrorCode, serverErrorLabels, toCommandError } from "../errors";
import type { ServerSession } from "../sessions";
import { TRANSIENT_TRANSACTION_ERROR, type Transaction } from "../transactions";
import { isPlainObject, numericValue } from "../values";
import type { CommandContext, CommandSpec, ConnectionInfo, ServerInfo } from "./context";
import { crudCommands } from "./crud";
import { ddlCommands } from "./ddl";
import { handshakeCommands } from "./handshake";
import { GENERIC_FIELDS, isSnapshotRead, readConcernLevel, refuseOption, unsatisfiableWriteConcern } from "../options";
import { noSuchTransaction, sessionCommands } from "./sessions";

export type { CommandContext, ConnectionInfo, ServerInfo } from "./context";

/** Every command the engine answers, with the options each implements (the README's table is checked against it). */
export const COMMANDS: Readonly<Record<string, CommandSpec>> = { ...handshakeCommands, ...crudCommands, ...ddlCommands, ...sessionCommands };

const GENERIC = new Set(GENERIC_FIELDS);
const ACCEPTED = new Map(Object.entries(COMMANDS).map(([name, spec]) => [name, spec.options === "any" ? null : new Set(spec.options)]));

/** Refuses what the command does not implement and validates the concerns, before anything runs. */
function checkCommand(name: string, cmd: Document, clusterTime: Timestamp): void {
  const accepted = ACCEPTED.get(name);
  if (accepted) {
    for (const [k, v] of Object.entries(cmd)) {
      if (k === name || GENERIC.has(k) || accepted.has(k)) continue;
      refuseOption(name, k, v);
    }
  }
  readConcernLevel(name, cmd, cmd.autocommit === false, clusterTime);
}

/** The reply to send, or `close` to drop the connection without one (failCommand closeConnection). */
export type DispatchResult = { reply: Document } | { close: true };

/** Without authentication the cluster time carries an all-zero signature, as on an unauthenticated mongod. */
const NO_SIGNATURE = { hash: new Binary(new Uint8Array(20), 0), keyId: Long.fromNumber(0) };

/** Drops the connection instead of replying, once whatever was applied is journaled (onPrimaryTransactionalWrite). */
class DropConnection extends Error {
  constructor(override readonly cause: unknown) {
    super("connection dropped by a fail point");
  }
}

export class CommandDispatcher {
  private readonly engine: Engine;
  private readonly server: ServerInfo;

  constructor(engine: Engine, server: ServerInfo) {
    this.engine = engine;
    this.server = server;
  }

  async dispatch(cmd: Document, defaultDb: string, connection: ConnectionInfo): Promise<DispatchResult> {
    const name = Object.keys(cmd)[0] ?? "";
    const spec = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
    if (!spec) return { reply: new CommandError(ErrorCode.CommandNotFound, `no such command: '${name}'`).toReply() };

    const fail = this.server.failPoints.check(name, connection.appName);
    if (fail) {
      if (fail.blockTimeMS > 0) await Bun.sleep(fail.blockTimeMS);
      if (fail.closeConnection) return { close: true };
      if (fail.error) {
        const e = fail.error;
        const labels = fail.labelsGiven ? e.errorLabels : serverErrorLabels(name, cmd, e.code, null);
        return { reply: new CommandError(e.code, e.message, { errorLabels: labels }).toReply() };
      }
    }

    const db = typeof cmd.$db === "string" ? cmd.$db : defaultDb;
    const ctx: CommandContext = { engine: this.engine, db, session: null, txn: null, journal: [], connection, server: this.server };
    let reply: Document;
    let dropConnection = false;
    try {
      checkCommand(name, cmd, this.engine.clusterTime());
      if (isSnapshotRead(cmd)) ctx.readAt = this.engine.snapshotReadAt(cmd);
      reply = this.run(name, spec, cmd, ctx);
    } catch (err) {
      dropConnection = err instanceof DropConnection;
      const e = toCommandError(dropConnection ? ((err as DropConnection).cause ?? new CommandError(ErrorCode.InternalError, "no reply")) : err);
      if (e.code === ErrorCode.InternalError && !(err instanceof CommandError) && !dropConnection) {
        this.engine.log.error("command failed", { command: name, error: String(err), stack: err instanceof Error ? err.stack : undefined });
      }
      reply = e.toReply();
    }
    const operationTime = this.engine.finishCommand(ctx.journal.length > 0);
    // Whatever was applied (also before an error in an ordered batch) is journaled before the reply.
    try {
      await this.engine.commit(ctx.journal);
    } catch (err) {
      this.engine.log.error("journal append failed", { command: name, error: String(err) });
      reply = new CommandError(ErrorCode.InternalError, `write could not be made durable: ${String(err)}`).toReply();
    }
    if (dropConnection) return { close: true };
    // A replica-set member's gossip: the driver keeps the newest and sends it back (afterClusterTime in causal sessions).
    reply = { ...reply, operationTime, $clusterTime: { clusterTime: operationTime, signature: NO_SIGNATURE } };
    const unsatisfiable = reply.ok === 1 ? unsatisfiableWriteConcern(cmd) : null;
    if (unsatisfiable) reply = { ...reply, writeConcernError: unsatisfiable };
    if (fail?.writeConcernError && reply.ok === 1) {
      // The command ran; only its acknowledgement "failed" (drivers retry such writes).
      reply = { ...reply, writeConcernError: fail.writeConcernError };
      const wcCode = typeof fail.writeConcernError.code === "number" ? fail.writeConcernError.code : null;
      const labels = fail.labelsGiven ? fail.errorLabels : serverErrorLabels(name, cmd, null, wcCode);
      if (labels.length > 0) reply.errorLabels = labels;
    }
    return { reply };
  }

  private run(name: string, spec: CommandSpec, cmd: Document, ctx: CommandContext): Document {
    if (cmd.lsid === undefined) return spec.handler(cmd, ctx);
    if (!isPlainObject(cmd.lsid)) throw new CommandError(ErrorCode.TypeMismatch, "lsid must be an object");
    const session = this.engine.sessions.touch(cmd.lsid);
    ctx.session = session;
    const txnNumber = cmd.txnNumber === undefined ? null : numericValue(cmd.txnNumber);

    if (cmd.autocommit === false) {
      if (txnNumber === null) throw new CommandError(ErrorCode.InvalidOptions, "'autocommit' field requires a transaction number to also be specified");
      const txn = this.transactionFor(name, cmd, session, txnNumber);
      if (!spec.inTransaction) {
        throw new CommandError(ErrorCode.OperationNotSupportedInTransaction, `Cannot run '${name}' in a multi-document transaction.`);
      }
      ctx.txn = txn.state === "inProgress" ? txn : null;
      return this.runInTransaction(spec, cmd, ctx, txn);
    }

    if (txnNumber !== null) {
      if (txnNumber < session.txnNumber) {
        throw new CommandError(
          ErrorCode.TransactionTooOld,
          `Retryable write with txnNumber ${txnNumber} is prohibited on session because a newer retryable write with txnNumber ${session.txnNumber} has already started on this session.`,
        );
      }
      if (spec.retryableWrite && session.lastRetryable?.txnNumber === txnNumber) return session.lastRetryable.reply;
      if (session.txn?.state === "inProgress" && txnNumber > session.txn.txnNumber) this.engine.transactions.abort(session.txn);
      session.txnNumber = txnNumber;
      const fault = spec.retryableWrite ? this.server.failPoints.checkTransactionalWrite() : null;
      if (fault?.failBeforeCommit) throw fault.closeConnection ? new DropConnection(fault.failBeforeCommit) : fault.failBeforeCommit;
      const reply = spec.handler(cmd, ctx);
      if (spec.retryableWrite) session.lastRetryable = { txnNumber, reply };
      // The write is applied and recorded (and journaled by dispatch), but its reply is lost.
      if (fault?.closeConnection) throw new DropConnection(null);
      return reply;
    }
    return spec.handler(cmd, ctx);
  }

  /** The session's transaction for this command, started by `startTransaction: true`. */
  private transactionFor(name: string, cmd: Document, session: ServerSession, txnNumber: number): Transaction {
    if (cmd.startTransaction === true) {
      const at = isPlainObject(cmd.readConcern) ? (cmd.readConcern.atClusterTime as Timestamp | undefined) : undefined;
      if (txnNumber < session.txnNumber || (txnNumber === session.txnNumber && session.txn?.txnNumber === txnNumber)) {
        throw new CommandError(
          ErrorCode.TransactionTooOld,
          `Cannot start transaction ${txnNumber} on session because a newer transaction ${session.txnNumber} has already started.`,
        );
      }
      if (session.txn?.state === "inProgress") this.engine.transactions.abort(session.txn);
      session.txnNumber = txnNumber;
      session.lastRetryable = null;
      session.txn = this.engine.beginTransaction(txnNumber, session.key, at);
      return session.txn;
    }
    if (cmd.readConcern !== undefined) {
      throw new CommandError(ErrorCode.InvalidOptions, "Only the first command in a transaction may specify a readConcern");
    }
    const txn = session.txn;
    if (!txn || txn.txnNumber !== txnNumber) {
      if (txnNumber < session.txnNumber) throw new CommandError(ErrorCode.TransactionTooOld, `txnNumber ${txnNumber} is less than last txnNumber ${session.txnNumber} seen in this session`);
      throw new CommandError(
        ErrorCode.NoSuchTransaction,
        `Given transaction number ${txnNumber} does not match any in-progress transactions. The active transaction number is ${session.txnNumber}`,
        { errorLabels: [TRANSIENT_TRANSACTION_ERROR] },
      );
    }
    if (txn.state === "aborted" && name !== "abortTransaction") throw noSuchTransaction(txnNumber, true);
    if (txn.state === "committed" && name !== "commitTransaction" && name !== "abortTransaction") {
      throw new CommandError(ErrorCode.TransactionCommitted, `Transaction with { txnNumber: ${txnNumber} } has been committed.`);
    }
    return txn;
  }

  /** A failed statement aborts the transaction, as in MongoDB; the driver then sees NoSuchTransaction on its next use. */
  private runInTransaction(spec: CommandSpec, cmd: Document, ctx: OpContext, txn: Transaction): Document {
    try {
      const reply = spec.handler(cmd, ctx as CommandContext);
      if (Array.isArray(reply.writeErrors) && reply.writeErrors.length > 0) this.engine.transactions.abort(txn);
      return reply;
    } catch (err) {
      if (txn.state === "inProgress") this.engine.transactions.abort(txn);
      throw err;
    }
  }
}

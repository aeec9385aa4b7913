// Sessions and transactions: endSessions, commitTransaction, abortTransaction, ...

import type { Document } from "bson";
import { CommandError, ErrorCode } from "../errors";
import { TRANSIENT_TRANSACTION_ERROR } from "../transactions";
import type { CommandContext, CommandSpec } from "./context";

export function noSuchTransaction(txnNumber: number, transient: boolean): CommandError {
  return new CommandError(ErrorCode.NoSuchTransaction, `Transaction with { txnNumber: ${txnNumber} } has been aborted.`, {
    errorLabels: transient ? [TRANSIENT_TRANSACTION_ERROR] : [],
  });
}

function commitTransaction(_cmd: Document, ctx: CommandContext): Document {
  const txn = ctx.session?.txn;
  if (!txn) throw new CommandError(ErrorCode.NoSuchTransaction, "no transaction to commit", { errorLabels: [TRANSIENT_TRANSACTION_ERROR] });
  if (txn.state === "committed") return { ok: 1 }; // a retried commit
  if (txn.state === "aborted") throw noSuchTransaction(txn.txnNumber, true);
  ctx.journal.push(...ctx.engine.commitTransaction(txn));
  return { ok: 1 };
}

function abortTransaction(_cmd: Document, ctx: CommandContext): Document {
  const txn = ctx.session?.txn;
  if (!txn) throw new CommandError(ErrorCode.NoSuchTransaction, "no transaction to abort");
  if (txn.state === "committed") throw new CommandError(ErrorCode.TransactionCommitted, `Transaction with { txnNumber: ${txn.txnNumber} } has been committed.`);
  if (txn.state === "aborted") throw noSuchTransaction(txn.txnNumber, false);
  ctx.engine.transactions.abort(txn);
  return { ok: 1 };
}

function endSessions(cmd: Document, ctx: CommandContext): Document {
  const lsids = Array.isArray(cmd.endSessions) ? cmd.endSessions : [];
  ctx.engine.endSessions(ctx.engine.sessions.end(lsids));
  return { ok: 1 };
}

function killAllSessions(_cmd: Document, ctx: CommandContext): Document {
  ctx.engine.endSessions(ctx.engine.sessions.clear());
  return { ok: 1 };
}

export const sessionCommands: Record<string, CommandSpec> = {
  commitTransaction: { handler: commitTransaction, inTransaction: true, options: ["recoveryToken"] },
  abortTransaction: { handler: abortTransaction, inTransaction: true, options: ["recoveryToken"] },
  endSessions: { handler: endSessions, options: [] },
  killSessions: { handler: (cmd, ctx) => endSessions({ endSessions: cmd.killSessions }, ctx), options: [] },
  killAllSessions: { handler: killAllSessions, options: [] },
  killAllSessionsByPattern: { handler: killAllSessions, options: [] },
  refreshSessions: { handler: () => ({ ok: 1 }), options: [] },
};

// MongoDB server errors: the codes, names and reply shapes the driver maps to its exceptions.

import type { Document } from "bson";

export const ErrorCode = {
  InternalError: 1,
  BadValue: 2,
  NoSuchKey: 4,
  FailedToParse: 9,
  TypeMismatch: 14,
  InvalidLength: 16,
  IllegalOperation: 20,
  NotImplemented: 238,
  SnapshotTooOld: 239,
  NamespaceNotFound: 26,
  IndexNotFound: 27,
  PathNotViable: 28,
  ConflictingUpdateOperators: 40,
  CursorNotFound: 43,
  NamespaceExists: 48,
  DollarPrefixedFieldName: 52,
  InvalidIdField: 53,
  EmptyFieldName: 56,
  CommandNotFound: 59,
  ImmutableField: 66,
  CannotCreateIndex: 67,
  IndexAlreadyExists: 68,
  InvalidOptions: 72,
  InvalidNamespace: 73,
  IndexOptionsConflict: 85,
  IndexKeySpecsConflict: 86,
  WriteConflict: 112,
  DocumentValidationFailure: 121,
  CommandNotSupportedOnView: 166,
  InvalidPipelineOperator: 168,
  TransactionTooOld: 225,
  NoSuchTransaction: 251,
  TransactionCommitted: 256,
  OperationNotSupportedInTransaction: 263,
  NoQueryExecutionPlans: 291,
  HostUnreachable: 6,
  HostNotFound: 7,
  LockTimeout: 24,
  MaxTimeMSExpired: 50,
  WriteConcernFailed: 64,
  UnknownReplWriteConcern: 79,
  NetworkTimeout: 89,
  ShutdownInProgress: 91,
  UnsatisfiableWriteConcern: 100,
  PrimarySteppedDown: 189,
  ExceededTimeLimit: 262,
  SocketException: 9001,
  LegacyNotPrimary: 10058,
  NotWritablePrimary: 10107,
  NotPrimaryNoSecondaryOk: 13435,
  NotPrimaryOrSecondary: 13436,
  InterruptedAtShutdown: 11600,
  Interrupted: 11601,
  InterruptedDueToReplStateChange: 11602,
  DuplicateKey: 11000,
  UnrecognizedPipelineStage: 40324,
  GeoNearNotFirstStage: 40602,
  UnknownBsonField: 40415,
  CannotExtractGeoKeys: 16755,
} as const;

// Codes MongoDB only knows by source location are named "Location<code>".
const LOCATION_CODES = new Set<number>([
  ErrorCode.UnrecognizedPipelineStage,
  ErrorCode.GeoNearNotFirstStage,
  ErrorCode.UnknownBsonField,
  ErrorCode.CannotExtractGeoKeys,
]);

const CODE_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(ErrorCode)
    .filter(([, code]) => !LOCATION_CODES.has(code))
    .map(([name, code]) => [code, name]),
);

export function codeName(code: number): string {
  return CODE_NAMES[code] ?? `Location${code}`;
}

/** A command failure, sent as `{ok: 0, errmsg, code, codeName, ...extra}`. */
export class CommandError extends Error {
  readonly code: number;
  readonly errorLabels: string[];
  /** Extra reply fields (keyPattern/keyValue for duplicate keys, ...). */
  readonly extra: Document;

  constructor(code: number, message: string, options: { errorLabels?: string[]; extra?: Document } = {}) {
    super(message);
    this.name = "CommandError";
    this.code = code;
    this.errorLabels = options.errorLabels ?? [];
    this.extra = options.extra ?? {};
  }

  toReply(): Document {
    const reply: Document = { ok: 0, errmsg: this.message, code: this.code, codeName: codeName(this.code), ...this.extra };
    if (this.errorLabels.length > 0) reply.errorLabels = this.errorLabels;
    return reply;
  }

  /** The per-statement form used in `writeErrors`. */
  toWriteError(index: number): Document {
    return { index, code: this.code, errmsg: this.message, ...this.extra };
  }
}

export function badValue(message: string): CommandError {
  return new CommandError(ErrorCode.BadValue, message);
}

export function failedToParse(message: string): CommandError {
  return new CommandError(ErrorCode.FailedToParse, message);
}

export function typeMismatch(message: string): CommandError {
  return new CommandError(ErrorCode.TypeMismatch, message);
}

export function namespaceNotFound(message = "ns not found"): CommandError {
  return new CommandError(ErrorCode.NamespaceNotFound, message);
}

/** MongoDB's retriable errors (ErrorCodes::isRetriableError): the driver may retry the write or commit. */
const RETRIABLE = new Set<number>([
  ErrorCode.HostUnreachable,
  ErrorCode.HostNotFound,
  ErrorCode.NetworkTimeout,
  ErrorCode.ShutdownInProgress,
  ErrorCode.PrimarySteppedDown,
  ErrorCode.ExceededTimeLimit,
  ErrorCode.SocketException,
  ErrorCode.LegacyNotPrimary,
  ErrorCode.NotWritablePrimary,
  ErrorCode.NotPrimaryNoSecondaryOk,
  ErrorCode.NotPrimaryOrSecondary,
  ErrorCode.InterruptedAtShutdown,
  ErrorCode.InterruptedDueToReplStateChange,
]);

/**
 * The labels mongod attaches to an error (getErrorLabels): TransientTransactionError inside a
 * transaction for write conflicts and retriable errors (for commit/abort only NoSuchTransaction
 * without a write concern error), RetryableWriteError on retryable writes, commit and abort for
 * retriable errors and write concern errors.
 */
export function serverErrorLabels(commandName: string, cmd: Document, code: number | null, writeConcernCode: number | null): string[] {
  if (cmd.txnNumber === undefined) return [];
  const labels: string[] = [];
  const inTransaction = cmd.autocommit === false;
  const commitOrAbort = commandName === "commitTransaction" || commandName === "abortTransaction";
  if (inTransaction && code !== null) {
    let transient = code === ErrorCode.WriteConflict || code === ErrorCode.LockTimeout || code === ErrorCode.SnapshotTooOld;
    if (commitOrAbort) transient ||= code === ErrorCode.NoSuchTransaction && writeConcernCode === null;
    else transient ||= RETRIABLE.has(code) || code === ErrorCode.NoSuchTransaction;
    if (transient) labels.push("TransientTransactionError");
  }
  if ((!inTransaction || commitOrAbort) && ((code !== null && RETRIABLE.has(code)) || (writeConcernCode !== null && RETRIABLE.has(writeConcernCode)))) {
    labels.push("RetryableWriteError");
  }
  return labels;
}

/** Turns anything thrown by a handler (our errors, mingo's, geo's) into a CommandError. */
export function toCommandError(err: unknown): CommandError {
  if (err instanceof CommandError) return err;
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === "number") return new CommandError(code, err.message);
    // A failing engine invariant, not a bad request.
    if (err instanceof TypeError || err instanceof ReferenceError || err instanceof RangeError) {
      return new CommandError(ErrorCode.InternalError, `${err.name}: ${err.message}`);
    }
    // mingo reports bad operators and expression type errors as plain errors.
    if (/unregistered pipeline operator/i.test(err.message)) {
      const stage = /(\$\w+)/.exec(err.message)?.[1] ?? "";
      return new CommandError(ErrorCode.UnrecognizedPipelineStage, `Unrecognized pipeline stage name: '${stage}'`);
    }
    if (/unknown (query )?operator|unregistered/i.test(err.message)) {
      const op = /(\$\w+)/.exec(err.message)?.[1] ?? "";
      return new CommandError(ErrorCode.BadValue, `unknown operator: ${op}`);
    }
    return new CommandError(ErrorCode.BadValue, err.message);
  }
  return new CommandError(ErrorCode.InternalError, String(err));
}

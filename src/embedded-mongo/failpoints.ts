// MongoDB's `failCommand` fail point (configureFailPoint), which test suites use to make the
// next N commands fail, close the connection or stall.

import type { Document } from "bson";
import { CommandError, ErrorCode } from "./errors";
import { isPlainObject, numericValue } from "./values";

export interface FailAction {
  /** Whether the fail point named its labels (then mongod adds none of its own). */
  labelsGiven: boolean;
  closeConnection: boolean;
  blockTimeMS: number;
  error: CommandError | null;
  writeConcernError: Document | null;
  /** Labels for the reply: the error's, or the writeConcernError reply's. */
  errorLabels: string[];
}

interface ActiveFailPoint {
  remaining: number; // Infinity for alwaysOn
  skip: number;
  commands: Set<string>;
  appName: string | null;
  data: Document;
}

/** What `onPrimaryTransactionalWrite` does to a retryable write: fail it before it commits, and/or drop the connection instead of replying. */
export interface TransactionalWriteFault {
  closeConnection: boolean;
  failBeforeCommit: CommandError | null;
}

export class FailPoints {
  private failCommand: ActiveFailPoint | null = null;
  private onPrimaryTransactionalWrite: ActiveFailPoint | null = null;

  /** Handles `{configureFailPoint: "failCommand" | "onPrimaryTransactionalWrite", mode, data}`. */
  configure(cmd: Document): void {
    const name = cmd.configureFailPoint;
    if (name !== "failCommand" && name !== "onPrimaryTransactionalWrite") {
      throw new CommandError(ErrorCode.FailedToParse, `Unknown fail point: ${String(name)}`);
    }
    const mode = cmd.mode;
    const data = isPlainObject(cmd.data) ? cmd.data : {};
    if (mode === "off") {
      if (name === "failCommand") this.failCommand = null;
      else this.onPrimaryTransactionalWrite = null;
      return;
    }
    let remaining = Number.POSITIVE_INFINITY;
    let skip = 0;
    if (isPlainObject(mode)) {
      if (mode.times !== undefined) remaining = numericValue(mode.times) ?? 0;
      if (mode.skip !== undefined) skip = numericValue(mode.skip) ?? 0;
    } else if (mode !== "alwaysOn") {
      throw new CommandError(ErrorCode.BadValue, "mode must be 'alwaysOn', 'off', {times: n} or {skip: n}");
    }
    const commands = Array.isArray(data.failCommands) ? data.failCommands.map(String) : [];
    if (name === "onPrimaryTransactionalWrite") {
      this.onPrimaryTransactionalWrite = { remaining, skip, commands: new Set(), appName: null, data };
      return;
    }
    this.failCommand = {
      remaining,
      skip,
      commands: new Set(commands),
      appName: typeof data.appName === "string" ? data.appName : null,
      data,
    };
  }

  /** The fault for a retryable write about to execute (not one answered from the session's record), consuming one activation. */
  checkTransactionalWrite(): TransactionalWriteFault | null {
    const fp = this.onPrimaryTransactionalWrite;
    if (!fp) return null;
    if (fp.skip > 0) {
      fp.skip--;
      return null;
    }
    fp.remaining--;
    if (fp.remaining <= 0) this.onPrimaryTransactionalWrite = null;
    const code = numericValue(fp.data.failBeforeCommitExceptionCode);
    return {
      closeConnection: fp.data.closeConnection !== false,
      failBeforeCommit: code !== null ? new CommandError(code, "Failing write due to onPrimaryTransactionalWrite failpoint") : null,
    };
  }

  /** The action for a command about to run, consuming one activation; null when none applies. */
  check(commandName: string, appName: string | null): FailAction | null {
    const fp = this.failCommand;
    if (!fp || !fp.commands.has(commandName)) return null;
    if (fp.appName !== null && fp.appName !== appName) return null;
    if (fp.skip > 0) {
      fp.skip--;
      return null;
    }
    fp.remaining--;
    if (fp.remaining <= 0) this.failCommand = null;
    const d = fp.data;
    const code = numericValue(d.errorCode);
    const labels = Array.isArray(d.errorLabels) ? d.errorLabels.map(String) : undefined;
    return {
      labelsGiven: labels !== undefined,
      closeConnection: d.closeConnection === true,
      blockTimeMS: d.blockConnection === true ? (numericValue(d.blockTimeMS) ?? 0) : 0,
      error: code !== null ? new CommandError(code, "Failing command via 'failCommand' failpoint", { errorLabels: labels }) : null,
      writeConcernError: isPlainObject(d.writeConcernError) ? d.writeConcernError : null,
      errorLabels: labels ?? [],
    };
  }
}

import { AsyncLocalStorage } from "node:async_hooks";

/** Structured JSON logs, one line per event. Secrets never go in `fields`. */
export type LogLevel = "debug" | "info" | "warn" | "error" | "silent";
export type LogFields = Record<string, unknown>;

const rank: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 99 };

/**
 * Fields every line logged inside a scope carries (the HTTP layer runs each request in one, so
 * its request id and user id reach the lines any module logs while serving it).
 */
export const logContext = new AsyncLocalStorage<LogFields>();

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

/** How a caught error goes into a log line's fields (an Error is logged with its name, message and stack). */
export function errorField(err: unknown): Error | string {
  return err instanceof Error ? err : String(err);
}

/** A caught value as an Error (a thrown non-Error becomes one with its text as the message). */
export function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

export function createLogger(level: LogLevel, base: LogFields = {}, sink: (line: string) => void = (l) => process.stdout.write(l + "\n")): Logger {
  const threshold = rank[level];
  const emit = (lvl: Exclude<LogLevel, "silent">, msg: string, fields?: LogFields) => {
    if (rank[lvl] < threshold) return;
    const line: LogFields = { t: new Date().toISOString(), level: lvl, msg, ...base, ...logContext.getStore(), ...fields };
    if (line.err instanceof Error) line.err = { name: line.err.name, message: line.err.message, stack: line.err.stack };
    sink(JSON.stringify(line));
  };
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
    child: (fields) => createLogger(level, { ...base, ...fields }, sink),
  };
}

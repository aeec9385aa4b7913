// Logical sessions (lsid): the retryable-write record and the open transaction of each session.

import type { Document } from "bson";
import { CommandError, ErrorCode } from "./errors";
import type { Transaction } from "./transactions";
import { bsonTypeOf, isPlainObject } from "./values";

/** What hello advertises; idle sessions are forgotten after this long. */
export const SESSION_TIMEOUT_MINUTES = 30;

export class ServerSession {
  readonly lsid: Document;
  readonly key: string;
  lastUse = Date.now();
  /** The highest txnNumber seen on this session (retryable writes and transactions share it). */
  txnNumber = -1;
  /** The reply of the last retryable write, returned again when the driver retries it. */
  lastRetryable: { txnNumber: number; reply: Document } | null = null;
  txn: Transaction | null = null;

  constructor(lsid: Document, key: string) {
    this.lsid = lsid;
    this.key = key;
  }
}

/** The session key of an lsid document ({id: UUID}). */
export function sessionKey(lsid: unknown): string {
  if (!isPlainObject(lsid) || bsonTypeOf(lsid.id) !== "Binary") {
    throw new CommandError(ErrorCode.BadValue, "lsid must be an object with a UUID 'id' field");
  }
  const id = lsid.id as { buffer: Uint8Array };
  return Buffer.from(id.buffer).toString("hex");
}

export class SessionRegistry {
  private readonly sessions = new Map<string, ServerSession>();

  /** The session for an lsid, created on first use, with its last-use time refreshed. */
  touch(lsid: Document): ServerSession {
    const key = sessionKey(lsid);
    let s = this.sessions.get(key);
    if (!s) {
      s = new ServerSession({ id: lsid.id }, key);
      this.sessions.set(key, s);
    }
    s.lastUse = Date.now();
    return s;
  }

  get(key: string): ServerSession | undefined {
    return this.sessions.get(key);
  }

  /** Removes the sessions, returning them so their transactions and cursors can be dropped. */
  end(lsids: unknown[]): ServerSession[] {
    const ended: ServerSession[] = [];
    for (const lsid of lsids) {
      const key = sessionKey(lsid);
      const s = this.sessions.get(key);
      if (s) {
        this.sessions.delete(key);
        ended.push(s);
      }
    }
    return ended;
  }

  /** Sessions idle for longer than the timeout. */
  expired(now = Date.now()): ServerSession[] {
    const limit = SESSION_TIMEOUT_MINUTES * 60_000;
    const out: ServerSession[] = [];
    for (const [key, s] of this.sessions) {
      if (now - s.lastUse > limit) {
        this.sessions.delete(key);
        out.push(s);
      }
    }
    return out;
  }

  all(): ServerSession[] {
    return [...this.sessions.values()];
  }

  clear(): ServerSession[] {
    const all = this.all();
    this.sessions.clear();
    return all;
  }
}

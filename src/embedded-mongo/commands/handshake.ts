// Handshake and server information: hello, buildInfo, serverStatus, fail points, ...

import { type Document, ObjectId, Timestamp } from "bson";
import { SESSION_TIMEOUT_MINUTES } from "../sessions";
import { isPlainObject } from "../values";
import { SUPPORTED_COMPRESSORS } from "../wire";
import type { CommandContext, CommandSpec } from "./context";

/** MongoDB 7.0: wire version 21. */
export const SERVER_VERSION = "7.0.0";
export const MAX_WIRE_VERSION = 21;
export const REPLICA_SET_NAME = "rs0";
const MAX_BSON_OBJECT_SIZE = 16 * 1024 * 1024;
const MAX_MESSAGE_SIZE_BYTES = 48_000_000;
const MAX_WRITE_BATCH_SIZE = 100_000;
// Fixed for the process: the driver compares (setVersion, electionId) to spot stale primaries.
const ELECTION_ID = new ObjectId("7fffffff0000000000000001");

/**
 * A single-node replica-set primary, so the driver runs transactions and retryable writes as on
 * production MongoDB. No topologyVersion: awaitable (streaming) hello is not implemented.
 */
function hello(cmd: Document, ctx: CommandContext, legacy: boolean): Document {
  if (Array.isArray(cmd.compression)) {
    const offered = cmd.compression.map(String);
    ctx.connection.compressors = SUPPORTED_COMPRESSORS.filter((c) => offered.includes(c));
  }
  const app = isPlainObject(cmd.client) && isPlainObject(cmd.client.application) ? cmd.client.application.name : undefined;
  if (typeof app === "string") ctx.connection.appName = app;
  const address = ctx.server.address;
  const reply: Document = {
    helloOk: true,
    [legacy ? "ismaster" : "isWritablePrimary"]: true,
    secondary: false,
    setName: REPLICA_SET_NAME,
    setVersion: 1,
    electionId: ELECTION_ID,
    hosts: [address],
    primary: address,
    me: address,
    lastWrite: { lastWriteDate: new Date(), opTime: { ts: new Timestamp({ t: Math.floor(Date.now() / 1000), i: 1 }), t: 1 } },
    maxBsonObjectSize: MAX_BSON_OBJECT_SIZE,
    maxMessageSizeBytes: MAX_MESSAGE_SIZE_BYTES,
    maxWriteBatchSize: MAX_WRITE_BATCH_SIZE,
    localTime: new Date(),
    logicalSessionTimeoutMinutes: SESSION_TIMEOUT_MINUTES,
    connectionId: ctx.connection.id,
    minWireVersion: 0,
    maxWireVersion: MAX_WIRE_VERSION,
    readOnly: false,
    ok: 1,
  };
  if (ctx.connection.compressors.length > 0) reply.compression = ctx.connection.compressors;
  return reply;
}

function buildInfo(): Document {
  const [major, minor, patch] = SERVER_VERSION.split(".").map(Number);
  return {
    version: SERVER_VERSION,
    gitVersion: "embedded-mongo",
    versionArray: [major, minor, patch, 0],
    bits: 64,
    debug: false,
    maxBsonObjectSize: MAX_BSON_OBJECT_SIZE,
    storageEngines: ["embedded"],
    javascriptEngine: "none",
    modules: [],
    ok: 1,
  };
}

function serverStatus(ctx: CommandContext): Document {
  const c = ctx.engine.counters;
  const journal = ctx.engine.journalStats();
  return {
    host: ctx.server.address,
    version: SERVER_VERSION,
    process: "embedded-mongo",
    pid: process.pid,
    uptime: Math.floor((Date.now() - ctx.engine.startedAt) / 1000),
    uptimeMillis: Date.now() - ctx.engine.startedAt,
    localTime: new Date(),
    connections: { current: c.connectionsCurrent, totalCreated: c.connectionsTotal, available: 1_000_000 },
    network: {
      bytesIn: c.bytesIn,
      bytesOut: c.bytesOut,
      numRequests: c.requests,
      compression: {
        zlib: {
          compressor: { bytesIn: c.uncompressedOut, bytesOut: c.compressedOut },
          decompressor: { bytesIn: c.compressedIn, bytesOut: c.decompressedIn, messages: c.compressedMessagesIn },
        },
      },
    },
    transactions: { currentOpen: ctx.engine.transactions.openCount },
    metrics: { cursor: { open: { total: ctx.engine.cursors.size } } },
    // Not mongod's: group commit of the journal (absent in memory).
    ...(journal ? { journal } : {}),
    ok: 1,
  };
}

function getParameter(cmd: Document): Document {
  const known: Document = {
    featureCompatibilityVersion: { version: "7.0" },
    requireApiVersion: false,
    authenticationMechanisms: [],
    transactionLifetimeLimitSeconds: 60,
    cursorTimeoutMillis: 600_000,
  };
  if (cmd.getParameter === "*") return { ...known, ok: 1 };
  const out: Document = {};
  for (const k of Object.keys(cmd)) if (k in known) out[k] = known[k];
  return { ...out, ok: 1 };
}

export const handshakeCommands: Record<string, CommandSpec> = {
  hello: { handler: (cmd, ctx) => hello(cmd, ctx, false), options: "any" },
  isMaster: { handler: (cmd, ctx) => hello(cmd, ctx, true), options: "any" },
  ismaster: { handler: (cmd, ctx) => hello(cmd, ctx, true), options: "any" },
  ping: { handler: () => ({ ok: 1 }), options: "any" },
  buildInfo: { handler: buildInfo, options: "any" },
  buildinfo: { handler: buildInfo, options: "any" },
  serverStatus: { handler: (_cmd, ctx) => serverStatus(ctx), options: "any" },
  getParameter: { handler: getParameter, options: "any" },
  hostInfo: {
    handler: () => ({ system: { currentTime: new Date(), hostname: "embedded-mongo", numCores: navigator.hardwareConcurrency }, ok: 1 }),
    options: "any",
  },
  whatsmyuri: { handler: (_cmd, ctx) => ({ you: `connection ${ctx.connection.id}`, ok: 1 }), options: "any" },
  getCmdLineOpts: { handler: () => ({ argv: process.argv, parsed: {}, ok: 1 }), options: "any" },
  connectionStatus: { handler: () => ({ authInfo: { authenticatedUsers: [], authenticatedUserRoles: [] }, ok: 1 }), options: "any" },
  getLog: { handler: () => ({ totalLinesWritten: 0, log: [], ok: 1 }), options: "any" },
  configureFailPoint: {
    handler: (cmd, ctx) => {
      ctx.server.failPoints.configure(cmd);
      return { ok: 1 };
    },
    options: ["mode", "data"],
  },
};

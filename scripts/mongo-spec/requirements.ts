// runOnRequirements: compare what a test needs with what the server claims in hello/buildInfo.
import type { MongoClient } from "mongodb";
import { isDocument, numbersEqual, numericValue, scalarsEqual, type Doc } from "./values";

export type Topology = "single" | "replicaset" | "sharded" | "load-balanced";

export interface ServerInfo {
  version: [number, number, number];
  versionText: string;
  topology: Topology;
  /** Whether the target is Atlas Serverless (cannot be detected; configured by the caller). */
  serverless: boolean;
  auth: boolean;
}

/** "4.2" → [4, 2, 0]; anything after the third component (e.g. "-rc1") is dropped. */
export function parseVersion(text: string): [number, number, number] {
  const parts = text.split(/[.-]/).slice(0, 3).map((p) => Number.parseInt(p, 10));
  const [a = 0, b = 0, c = 0] = parts.map((n) => (Number.isFinite(n) ? n : 0));
  return [a, b, c];
}

export function compareVersions(a: [number, number, number], b: [number, number, number]): number {
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
  return 0;
}

export async function probeServer(client: MongoClient, serverless = false): Promise<ServerInfo> {
  const admin = client.db("admin");
  const hello = await admin.command({ hello: 1 });
  const build = await admin.command({ buildInfo: 1 });
  let version: [number, number, number];
  const arr = build.versionArray;
  if (Array.isArray(arr) && arr.length >= 3) {
    version = [Number(arr[0]), Number(arr[1]), Number(arr[2])];
  } else {
    version = parseVersion(String(build.version ?? "0"));
  }
  let topology: Topology = "single";
  if (hello.msg === "isdbgrid") topology = "sharded";
  else if (typeof hello.setName === "string") topology = "replicaset";
  if (hello.serviceId !== undefined) topology = "load-balanced";
  return { version, versionText: String(build.version ?? version.join(".")), topology, serverless, auth: false };
}

/** Why one requirement is not met, or null when it is. */
export async function unmetReason(
  req: Doc, info: ServerInfo, getParameter: (name: string) => Promise<unknown>,
): Promise<string | null> {
  for (const key of Object.keys(req)) {
    if (!KNOWN_KEYS.has(key)) return `unsupported runOnRequirement field ${key}`;
  }
  if (typeof req.minServerVersion === "string" && compareVersions(info.version, parseVersion(req.minServerVersion)) < 0) {
    return `server ${info.versionText} < minServerVersion ${req.minServerVersion}`;
  }
  if (typeof req.maxServerVersion === "string" && compareVersions(info.version, parseVersion(req.maxServerVersion)) > 0) {
    return `server ${info.versionText} > maxServerVersion ${req.maxServerVersion}`;
  }
  if (Array.isArray(req.topologies)) {
    const ok = req.topologies.some((t) => t === info.topology || (t === "sharded-replicaset" && info.topology === "sharded"));
    if (!ok) return `topology ${info.topology} not in ${req.topologies.join(",")}`;
  }
  if (req.serverless === "require" && !info.serverless) return "requires serverless";
  if (req.serverless === "forbid" && info.serverless) return "forbids serverless";
  if (typeof req.auth === "boolean" && req.auth !== info.auth) return `requires auth=${req.auth}`;
  if (typeof req.authMechanism === "string" && !info.auth) return `requires auth mechanism ${req.authMechanism}`;
  if (req.csfle === true) return "requires client-side field level encryption";
  if (isDocument(req.serverParameters)) {
    for (const [name, want] of Object.entries(req.serverParameters)) {
      let have: unknown;
      try {
        have = await getParameter(name);
      } catch (e) {
        return `server parameter ${name} unavailable (${(e as Error).message})`;
      }
      const wn = numericValue(want);
      const hn = numericValue(have);
      const equal = wn !== null && hn !== null ? numbersEqual(wn, hn) : scalarsEqual(want, have);
      if (!equal) return `server parameter ${name} is ${String(have)}, needs ${String(want)}`;
    }
  }
  return null;
}

const KNOWN_KEYS = new Set([
  "minServerVersion", "maxServerVersion", "topologies", "serverless", "serverParameters", "auth", "authMechanism", "csfle",
]);

/** Null when at least one requirement holds (or there are none), else the reasons. */
export async function requirementsUnmet(
  reqs: unknown, info: ServerInfo, getParameter: (name: string) => Promise<unknown>,
): Promise<string | null> {
  if (reqs === undefined) return null;
  if (!Array.isArray(reqs) || reqs.length === 0) return "malformed runOnRequirements";
  const reasons: string[] = [];
  for (const req of reqs) {
    if (!isDocument(req)) return "malformed runOnRequirement";
    const why = await unmetReason(req, info, getParameter);
    if (why === null) return null;
    reasons.push(why);
  }
  return reasons.join("; ");
}

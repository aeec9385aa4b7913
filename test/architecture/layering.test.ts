import { beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";

/**
 * The layering rules of docs/architecture.md, checked by dependency-cruiser with
 * .dependency-cruiser.cjs. dependency-cruiser refuses Node 20, so it runs under Bun.
 */
const ROOT = resolve(import.meta.dir, "../..");
const CONFIG = join(ROOT, ".dependency-cruiser.cjs");
const DEPCRUISE = join(ROOT, "node_modules/dependency-cruiser/bin/dependency-cruiser.mjs");

type Violation = { rule: { name: string }; from: string; to: string };
type Cruise = { modules: Array<{ source: string; dependencies: Array<{ resolved: string }> }>; summary: { violations: Violation[] } };

async function cruise(cwd: string, what: string[]): Promise<Cruise> {
  const proc = Bun.spawn(["bun", "--bun", DEPCRUISE, ...what, "--config", CONFIG, "--output-type", "json"], { cwd, stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (!out.trim().startsWith("{")) throw new Error(`depcruise exited ${code}: ${err.slice(0, 2000)}`);
  return JSON.parse(out) as Cruise;
}

const described = (v: Violation) => `${v.rule.name}: ${v.from} → ${v.to}`;

/** A file's room: its top-level folder under src/ (a feature under modules/), or the file itself at the top. */
function roomOf(path: string): string | null {
  const m = /^src\/(?:(modules\/[^/]+)\/|([^/]+)\/|([^/]+\.ts)$)/.exec(path);
  return m ? `src/${m[1] ?? m[2] ?? m[3]}` : null;
}

/** Cycles in the graph of rooms (folders and top-level files), each as a path a → … → a. */
function roomCycles(result: Cruise): string[][] {
  const edges = new Map<string, Set<string>>();
  for (const m of result.modules) {
    const from = roomOf(m.source);
    if (!from) continue;
    for (const d of m.dependencies) {
      const to = roomOf(d.resolved);
      if (!to || to === from) continue;
      let set = edges.get(from);
      if (!set) edges.set(from, (set = new Set()));
      set.add(to);
    }
  }
  const cycles: string[][] = [];
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const visit = (room: string) => {
    state.set(room, "open");
    stack.push(room);
    for (const next of edges.get(room) ?? []) {
      if (state.get(next) === "open") cycles.push([...stack.slice(stack.indexOf(next)), next]);
      else if (!state.has(next)) visit(next);
    }
    stack.pop();
    state.set(room, "done");
  };
  for (const room of edges.keys()) if (!state.has(room)) visit(room);
  return cycles;
}

describe("layering (dependency-cruiser)", () => {
  let src: Cruise;
  beforeAll(async () => {
    src = await cruise(ROOT, ["src"]);
  }, 60_000);

  test("src/ breaks none of the rules: no cycles, modules/ never imports realtime/ (nor the reverse), domain files import no Elysia, MongoDB or Redis, embedded-mongo/ stands alone, nothing from scripts/ or test/, the kernel imports no feature, only the entry points import app.ts", () => {
    expect(src.modules.length).toBeGreaterThan(100);
    expect(src.summary.violations.map(described)).toEqual([]);
  });

  test("no cycle between folders either (each feature of modules/ and each top-level file is a room of its own)", () => {
    expect(roomCycles(src).map((c) => c.join(" → "))).toEqual([]);
  });

  test("a breach of each rule fails with the rule's name", async () => {
    // Inside the checkout, so `elysia` resolves from its node_modules.
    const dir = mkdtempSync(join(ROOT, ".depcruise-fixture-"));
    try {
      const write = (path: string, text: string) => {
        mkdirSync(join(dir, path, ".."), { recursive: true });
        writeFileSync(join(dir, path), text);
      };
      write("tsconfig.json", JSON.stringify({ compilerOptions: { module: "ESNext", moduleResolution: "bundler", strict: true } }));
      write("src/a.ts", 'import { b } from "./b";\nexport const a = () => b;\n');
      write("src/b.ts", 'import { a } from "./a";\nexport const b = () => a;\n');
      write("src/realtime/hub.ts", "export const hub = 1;\n");
      write("src/modules/orders/service.ts", 'import { hub } from "../../realtime/hub";\nexport const service = hub;\n');
      write("src/embedded-mongo/engine.ts", 'import { a } from "../a";\nexport const engine = a;\n');
      write("scripts/tool.ts", "export const tool = 1;\n");
      write("src/app-helper.ts", 'import { tool } from "../scripts/tool";\nexport const helper = tool;\n');
      write("src/modules/orders/pricing.ts", 'import { t } from "elysia";\nexport const price = t.Number();\n');
      write("src/realtime/access.ts", 'import { service } from "../modules/orders/service";\nexport const access = service;\n');
      write("src/app.ts", "export const app = 1;\n");
      write("src/realtime/client.ts", "export const client = 1;\n");
      write("src/realtime/relay.ts", 'import { client } from "./client";\nexport const relay = client;\n');
      write("src/events/change.ts", 'import { app } from "../app";\nimport { service } from "../modules/orders/service";\nexport const change = [app, service];\n');
      const result = await cruise(dir, ["src"]);
      const rules = new Set(result.summary.violations.map((v) => v.rule.name));
      expect([...rules].sort()).toEqual([
        "broker-knows-no-sockets",
        "domain-no-io",
        "embedded-mongo-stands-alone",
        "kernel-below-features",
        "modules-not-realtime",
        "no-cycles",
        "only-entry-points-import-app",
        "realtime-not-modules",
        "src-not-scripts-or-tests",
      ]);
      expect(roomCycles({ ...result, modules: result.modules }).length).toBeGreaterThan(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

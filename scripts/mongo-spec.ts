// bun run mongo-spec -- PATH... [--uri URI] [--skip-events] [--filter TEXT] [--verbose]
// Runs MongoDB unified-format test files (a directory of *.json, or single files) against a
// fresh in-memory embedded engine per file (or --uri), through the official driver.
import { existsSync } from "node:fs";
import { embeddedTarget, externalTarget } from "./mongo-spec/engine-target";
import { failureLine, runSpecPaths, summaryLine } from "./mongo-spec/runner";

const USAGE = "usage: bun run mongo-spec -- PATH... [--uri URI] [--skip-events] [--filter TEXT] [--verbose]";

function parseArgs(argv: string[]) {
  const paths: string[] = [];
  let uri: string | undefined;
  let filter: string | undefined;
  let skipEvents = false;
  let verbose = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--uri") uri = argv[++i];
    else if (a === "--filter") filter = argv[++i];
    else if (a === "--skip-events") skipEvents = true;
    else if (a === "--verbose" || a === "-v") verbose = true;
    else if (a === "--help" || a === "-h") return null;
    else if (a.startsWith("-")) throw new Error(`unknown option ${a}`);
    else paths.push(a);
  }
  return { paths, uri, filter, skipEvents, verbose };
}

async function main(): Promise<number> {
  let args: ReturnType<typeof parseArgs>;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (!args || args.paths.length === 0) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  for (const p of args.paths) {
    if (!existsSync(p)) {
      process.stderr.write(`no such file or directory: ${p}\n`);
      return 2;
    }
  }
  const verbose = args.verbose;
  const summary = await runSpecPaths(args.paths, {
    target: args.uri ? externalTarget(args.uri) : embeddedTarget,
    events: args.skipEvents ? "skip" : "check",
    filter: args.filter,
    onResult: (r) => {
      if (r.status === "failed") process.stdout.write(`${failureLine(r)}\n`);
      else if (verbose) process.stdout.write(`${r.status === "passed" ? "ok  " : "SKIP"} ${r.file} :: ${r.description}${r.reason ? ` :: ${r.reason}` : ""}\n`);
    },
  });
  const unchecked = summary.results.filter((r) => r.eventsSkipped).length;
  if (unchecked > 0) process.stdout.write(`(expectEvents not checked in ${unchecked} test(s): --skip-events)\n`);
  process.stdout.write(`${summaryLine(summary)}\n`);
  return summary.failed > 0 ? 1 : 0;
}

process.exit(await main());

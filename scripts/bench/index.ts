/**
 * `bun run bench`: every benchmark, one after another (each in its own process, so none
 * inherits another's heap or sockets): bench:db, bench:api, bench:ws, bench:locations. Exits non-zero if any fails.
 */
import { resolve } from "node:path";

const REPO_ROOT = resolve(import.meta.dir, "../..");
const BENCHES = ["db", "api", "ws", "locations"];

let failed = 0;
for (const name of BENCHES) {
  process.stderr.write(`\n=== bench:${name} ===\n`);
  const proc = Bun.spawn(["bun", "run", `scripts/bench/${name}.ts`], { cwd: REPO_ROOT, stdin: "ignore", stdout: "inherit", stderr: "inherit" });
  const code = await proc.exited;
  if (code !== 0) {
    failed++;
    process.stderr.write(`bench:${name} exited with ${code}\n`);
  }
}
process.exit(failed === 0 ? 0 : 1);

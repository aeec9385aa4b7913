import { setDefaultTimeout } from "bun:test";
import { missingPrerequisites } from "./helpers/prerequisites";

// A missing redis-server or chromium stops the run here with one line, before any test starts.
const missing = missingPrerequisites();
if (missing !== null) {
  process.stderr.write(`${missing}\n`);
  process.exit(1);
}

// Integration tests start real servers, engines and redis-server processes; 5 s is too tight
// on a loaded 2-core machine.
setDefaultTimeout(30_000);

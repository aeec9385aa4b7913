import { setDefaultTimeout } from "bun:test";

// Integration tests start real servers, engines and redis-server processes; 5 s is too tight
// on a loaded 2-core machine.
setDefaultTimeout(30_000);

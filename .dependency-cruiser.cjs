/**
 * The layering rules of docs/architecture.md, checked by dependency-cruiser
 * (test/architecture.test.ts runs it in `bun test`; a violation fails with the rule's name).
 */
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: "no-cycles",
      severity: "error",
      comment: "No import cycles between files in src/ (type-only imports count too).",
      from: { path: "^src/" },
      to: { circular: true },
    },
    {
      name: "modules-not-realtime",
      severity: "error",
      comment: "Features publish through the event contract (src/events/); they never import realtime/.",
      from: { path: "^src/modules/" },
      to: { path: "^src/realtime/" },
    },
    {
      name: "realtime-not-modules",
      severity: "error",
      comment: "realtime/ reads orders, restaurants and couriers through the narrow interfaces it declares; the composition root wires them.",
      from: { path: "^src/realtime/" },
      to: { path: "^src/modules/" },
    },
    {
      name: "broker-knows-no-sockets",
      severity: "error",
      comment: "The broker (buses, Redis relays, sequencer) knows nothing of sockets: the hub, clients, subscriptions, recovery, frame limits and the route are above it.",
      from: { path: "^src/realtime/(bus|relay|redis-relay|interest-relay|sequencer)\\.ts$" },
      to: { path: "^src/realtime/(hub|client|subscriptions|recovery|frame-limits|ws|access|sources|model)\\.ts$" },
    },
    {
      name: "domain-no-io",
      severity: "error",
      comment: "Domain files (order machine, pricing, dispatch policy, ETA, geo math) import no Elysia, MongoDB or Redis, so they are unit-tested without I/O.",
      from: {
        path: [
          "^src/modules/orders/(machine|pricing|eta|idempotency)\\.ts$",
          "^src/modules/couriers/(dispatch-policy|geofence|tracker)\\.ts$",
          "^src/modules/couriers/planning/",
          "^src/modules/restaurants/(hours|area)\\.ts$",
          "^src/geo\\.ts$",
          "^src/vocabulary\\.ts$",
          "^src/realtime/(sequencer|history)\\.ts$",
        ],
      },
      to: { dependencyTypesNot: ["type-only"], path: "(^|/)node_modules/(elysia|@elysiajs/[^/]+|mongodb|bson|ioredis)/" },
    },
    {
      name: "embedded-mongo-stands-alone",
      severity: "error",
      comment: "The embedded engine imports nothing else from src/ (it could be its own package).",
      from: { path: "^src/embedded-mongo/" },
      to: { path: "^src/", pathNot: "^src/embedded-mongo/" },
    },
    {
      name: "src-not-scripts-or-tests",
      severity: "error",
      comment: "The server never imports scripts/ or test/.",
      from: { path: "^src/" },
      to: { path: "^(scripts|test)/" },
    },
    {
      name: "kernel-below-features",
      severity: "error",
      comment: "The shared kernel (clock, deps, errors, vocabulary, geo, config, log, metrics, redis, events/, db/, http/) imports no feature, no realtime/ and not the composition root.",
      from: { path: "^src/(clock|deps|errors|vocabulary|geo|config|log|metrics|redis)\\.ts$|^src/(events|db|http)/" },
      to: { path: "^src/(modules|realtime|demo)/|^src/(app|server|index)\\.ts$" },
    },
    {
      name: "only-entry-points-import-app",
      severity: "error",
      comment: "app.ts only composes: inside src/ only the entry points (server.ts, index.ts) import it.",
      from: { path: "^src/", pathNot: "^src/(server|index)\\.ts$" },
      to: { path: "^src/app\\.ts$" },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    parser: "swc",
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: { exportsFields: ["exports"], conditionNames: ["import", "require", "node", "default", "types"] },
  },
};

import { Type as T, type Static } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";

/**
 * The environment the server reads, as one TypeBox schema. This is the only file that
 * reads process.env; everything else receives a typed, frozen Config.
 */
export const ConfigSchema = T.Object({
  NODE_ENV: T.Union([T.Literal("development"), T.Literal("production"), T.Literal("test")], { default: "development" }),
  PORT: T.Integer({ minimum: 0, maximum: 65535, default: 3000 }),
  /** Loopback by default: a quick start is not reachable from the network until HOST says so. */
  HOST: T.String({ minLength: 1, default: "127.0.0.1" }),
  MONGODB_URI: T.Optional(T.String({ pattern: "^mongodb(\\+srv)?://" })),
  MONGODB_DB: T.String({ minLength: 1, maxLength: 63, pattern: "^[^/\\\\. \"$]+$", default: "dispatch" }),
  /** The driver's connectTimeoutMS; a server heartbeat pending past twice this (plus the streaming wait) is hung and the driver is reconnected (chaos F6). */
  MONGODB_CONNECT_TIMEOUT_MS: T.Integer({ minimum: 100, maximum: 120_000, default: 10_000 }),
  DATA_DIR: T.String({ minLength: 1, default: "./data" }),
  REDIS_URL: T.Optional(T.String({ pattern: "^rediss?://" })),
  /** Redis Cluster instead of REDIS_URL: some of its nodes as host:port,host:port (the rest are discovered). */
  REDIS_CLUSTER_NODES: T.Optional(T.String({ pattern: "^[A-Za-z0-9._-]+:[0-9]{1,5}(,[A-Za-z0-9._-]+:[0-9]{1,5})*$", maxLength: 4096 })),
  /** interest: one channel per topic, an instance receives only the topics its sockets watch; broadcast: one channel, every instance receives every message. */
  RELAY_MODE: T.Union([T.Literal("interest"), T.Literal("broadcast")], { default: "interest" }),
  /** Interest relay: how long a topic's channel stays subscribed after its last local watcher left (a quick re-subscribe costs nothing). */
  RELAY_UNSUBSCRIBE_GRACE_MS: T.Integer({ minimum: 0, maximum: 600_000, default: 5_000 }),
  /** Interest relay: how often a probe message goes through each Redis shard to find a subscriber connection that silently stopped receiving. */
  RELAY_PROBE_INTERVAL_MS: T.Integer({ minimum: 100, maximum: 600_000, default: 2_000 }),
  JWT_SECRET: T.Optional(T.String({ minLength: 16 })),
  JWT_TTL_SECONDS: T.Integer({ minimum: 60, maximum: 30 * 24 * 3600, default: 12 * 3600 }),
  INSTANCE_ID: T.Optional(T.String({ minLength: 1, maxLength: 64, pattern: "^[A-Za-z0-9._-]+$" })),
  ADMIN_EMAIL: T.Optional(T.String({ pattern: "^[^@\\s]+@[^@\\s]+$", maxLength: 254 })),
  ADMIN_PASSWORD: T.Optional(T.String({ minLength: 8, maxLength: 128 })),
  LOG_LEVEL: T.Union([T.Literal("debug"), T.Literal("info"), T.Literal("warn"), T.Literal("error"), T.Literal("silent")], { default: "info" }),
  /** Login attempts allowed per email and per IP in LOGIN_WINDOW_SECONDS. */
  LOGIN_MAX_ATTEMPTS: T.Integer({ minimum: 1, maximum: 10_000, default: 10 }),
  LOGIN_WINDOW_SECONDS: T.Integer({ minimum: 1, maximum: 86_400, default: 60 }),
  /** Take the client IP from X-Forwarded-For (its last entry); only behind one reverse proxy that sets it. */
  TRUST_PROXY: T.Boolean({ default: false }),
  /** Argon2id cost (Bun's defaults); production needs at least OWASP's 19456 KiB. */
  PASSWORD_HASH_MEMORY_KIB: T.Integer({ minimum: 1024, maximum: 4_194_304, default: 65_536 }),
  PASSWORD_HASH_TIME_COST: T.Integer({ minimum: 1, maximum: 20, default: 2 }),
  /** Delivery fee: base plus a per-km rate on the straight-line distance (see README). */
  DELIVERY_BASE_FEE_CENTS: T.Integer({ minimum: 0, maximum: 100_000, default: 199 }),
  DELIVERY_FEE_PER_KM_CENTS: T.Integer({ minimum: 0, maximum: 100_000, default: 50 }),
  /** An order actor with no event for this long is dropped from memory (it reloads on demand). */
  ACTOR_IDLE_SECONDS: T.Integer({ minimum: 1, maximum: 86_400, default: 300 }),
  /** Dispatch (docs/dispatch.md): a placed order not accepted within this is cancelled (restaurant_timeout). */
  ACCEPT_TIMEOUT_SECONDS: T.Integer({ minimum: 1, maximum: 86_400, default: 300 }),
  /** How long a courier has to accept an offer before it goes to the next one. */
  OFFER_TTL_SECONDS: T.Integer({ minimum: 1, maximum: 3_600, default: 30 }),
  /** Offers per search round; after them (or with nobody in range) the order waits DISPATCH_RETRY_SECONDS. */
  DISPATCH_MAX_ATTEMPTS: T.Integer({ minimum: 1, maximum: 1_000, default: 10 }),
  /** Couriers further than this from the restaurant are not offered the order. */
  DISPATCH_RADIUS_METERS: T.Integer({ minimum: 1, maximum: 100_000, default: 8000 }),
  /** Wait between search rounds for an unassigned order (also restarts a search that never reported). */
  DISPATCH_RETRY_SECONDS: T.Integer({ minimum: 1, maximum: 3_600, default: 30 }),
  /** Who plans dispatch (docs/dispatch.md, Planning): `batched` plans every DISPATCH_INTERVAL_SECONDS, bundling and assigning optimally; `nearest` offers each order to the nearest courier as it is accepted. */
  DISPATCH_POLICY: T.Union([T.Literal("nearest"), T.Literal("batched")], { default: "batched" }),
  /** batched: seconds between planning rounds (one instance plans at a time, under a lease). */
  DISPATCH_INTERVAL_SECONDS: T.Integer({ minimum: 1, maximum: 3_600, default: 60 }),
  /** Tests and benchmarks only, never production: the server's clock runs this many times faster than real time from start-up (the dispatch planner's rounds with it). */
  CLOCK_SPEEDUP: T.Number({ minimum: 1, maximum: 10_000, default: 1 }),
  /** batched: a free courier matched to food expected within this many minutes, too early to offer, is sent `courier.reposition` towards the restaurant (0: off; docs/dispatch.md). */
  DISPATCH_REPOSITION_MINUTES: T.Integer({ minimum: 0, maximum: 600, default: 0 }),
  /** Preparation minutes assumed for a restaurant whose orders have not been ready yet (and no readyInMinutes given). */
  READY_DEFAULT_MINUTES: T.Integer({ minimum: 0, maximum: 600, default: 15 }),
  /** Orders a courier may carry at once and still get offers. */
  COURIER_MAX_ACTIVE: T.Integer({ minimum: 1, maximum: 100, default: 1 }),
  /** A courier not seen (position) for longer is not dispatchable. */
  COURIER_SEEN_SECONDS: T.Integer({ minimum: 1, maximum: 3_600, default: 60 }),
  /** Geofence: `courier.approaching` once the assigned courier is this close to pickup or dropoff. */
  APPROACH_METERS: T.Integer({ minimum: 1, maximum: 10_000, default: 200 }),
  /** Average courier speed for ETAs. */
  COURIER_SPEED_MPS: T.Number({ exclusiveMinimum: 0, maximum: 100, default: 6 }),
  /** ETAs are refreshed from courier positions at most this often per order. */
  ETA_REFRESH_SECONDS: T.Integer({ minimum: 1, maximum: 3_600, default: 15 }),
  /** Durable timers: how often each instance looks for due ones, and how long a claim holds. */
  TIMER_SWEEP_INTERVAL_MS: T.Integer({ minimum: 10, maximum: 60_000, default: 500 }),
  TIMER_LEASE_MS: T.Integer({ minimum: 100, maximum: 600_000, default: 10_000 }),
  /** A move that keeps losing the compare-and-set to other writers is retried this long, then answered 503. */
  ORDER_CONTENTION_RETRY_MS: T.Integer({ minimum: 10, maximum: 60_000, default: 3_000 }),
  SHUTDOWN_TIMEOUT_MS: T.Integer({ minimum: 100, maximum: 60_000, default: 10_000 }),
  /** WebSocket: largest client frame answered normally; larger ones get an error frame (4× this closes with 1009). */
  WS_MAX_FRAME_BYTES: T.Integer({ minimum: 1024, maximum: 1024 * 1024, default: 16 * 1024 }),
  WS_MAX_SUBSCRIPTIONS: T.Integer({ minimum: 1, maximum: 10_000, default: 100 }),
  /** Invalid frames tolerated within 10 s before the connection is closed with 1008. */
  WS_MAX_INVALID_FRAMES: T.Integer({ minimum: 1, maximum: 1000, default: 5 }),
  /** A connection silent this long is pinged, and dropped if it does not answer (Bun rounds 1..7 up to 8). */
  WS_IDLE_TIMEOUT_SECONDS: T.Integer({ minimum: 1, maximum: 960, default: 60 }),
  /** Bytes queued for a slow client before it is closed with 1013. */
  WS_MAX_BUFFERED_BYTES: T.Integer({ minimum: 16 * 1024, maximum: 256 * 1024 * 1024, default: 1024 * 1024 }),
  /** Most events a resume of a restaurant or courier topic replays; beyond it the client reloads over REST. */
  WS_REPLAY_MAX_EVENTS: T.Integer({ minimum: 1, maximum: 100_000, default: 1000 }),
  /** Courier positions: at most one write per courier per this many ms (later fixes coalesce). */
  COURIER_LOCATION_INTERVAL_MS: T.Integer({ minimum: 0, maximum: 60_000, default: 1000 }),
  /** Relay: how long a change waits for a missing earlier seq of its order before the gap is read from the database. */
  RELAY_GAP_WAIT_MS: T.Integer({ minimum: 1, maximum: 10_000, default: 250 }),
  /** GET /metrics: when set, scrapers must send `Authorization: Bearer <METRICS_TOKEN>`; unset, only loopback callers get it. */
  METRICS_TOKEN: T.Optional(T.String({ minLength: 16, maxLength: 256 })),
  /**
   * How long a user's role, read to check a token, is reused (no database read per request while
   * fresh); a user deleted or given another role elsewhere (another instance, the database
   * directly) is refused within this time. 0 reads on every request.
   */
  AUTH_ROLE_CACHE_MS: T.Integer({ minimum: 0, maximum: 60_000, default: 2_000 }),
  /** How long the orders-per-status counts of /metrics are reused (each refresh is one aggregation). */
  METRICS_ORDERS_CACHE_MS: T.Integer({ minimum: 0, maximum: 600_000, default: 5_000 }),
  /** Writes (POST, PUT, PATCH, DELETE) allowed per signed-in user and per client IP in RATE_LIMIT_WINDOW_SECONDS; 0 = no limit. Shared through Redis when REDIS_URL is set. */
  RATE_LIMIT_USER_WRITES: T.Integer({ minimum: 0, maximum: 1_000_000, default: 120 }),
  RATE_LIMIT_IP_WRITES: T.Integer({ minimum: 0, maximum: 1_000_000, default: 600 }),
  RATE_LIMIT_WINDOW_SECONDS: T.Integer({ minimum: 1, maximum: 86_400, default: 60 }),
  /** Open WebSocket connections per user, across instances when REDIS_URL is set; more are closed with 1008. */
  WS_MAX_CONNECTIONS_PER_USER: T.Integer({ minimum: 1, maximum: 100_000, default: 10 }),
  /** A request not answered within this gets 503 (the work may still complete; retry with the same Idempotency-Key or If-Match). */
  REQUEST_TIMEOUT_MS: T.Integer({ minimum: 100, maximum: 300_000, default: 15_000 }),
  /** Idempotency-Key: how long a customer's key is remembered (TTL index on idempotency_keys); after it the same key places a new order. */
  IDEMPOTENCY_KEY_TTL_SECONDS: T.Integer({ minimum: 60, maximum: 30 * 86_400, default: 86_400 }),
  /** Live tracking page: map tile URL template ({z}/{x}/{y}, optional {s}); when its tiles do not load, the page shows a plain grid. */
  MAP_TILE_URL: T.String({ pattern: "^https?://[^\\s]*\\{z\\}[^\\s]*$", maxLength: 2048, default: "https://tile.openstreetmap.org/{z}/{x}/{y}.png" }),
  /** Attribution the tile provider requires, shown on the map (HTML). */
  MAP_TILE_ATTRIBUTION: T.String({ minLength: 1, maxLength: 1024, default: '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors' }),
  /** OpenTelemetry: traces go to this OTLP/HTTP endpoint (`<endpoint>/v1/traces`); unset, nothing is traced or exported. */
  OTEL_EXPORTER_OTLP_ENDPOINT: T.Optional(T.String({ pattern: "^https?://", maxLength: 2048 })),
  /** The `service.name` of the traces. */
  OTEL_SERVICE_NAME: T.String({ minLength: 1, maxLength: 128, default: "dispatch" }),
  /** Browser origins allowed by CORS: comma-separated exact origins (https://app.example.com), or `*` for any; unset = no CORS headers. */
  CORS_ORIGINS: T.Optional(T.String({ minLength: 1, maxLength: 4096 })),
  /** Send Access-Control-Allow-Credentials (only with exact origins; tokens travel in Authorization, so rarely needed). */
  CORS_ALLOW_CREDENTIALS: T.Boolean({ default: false }),
  /** Strict-Transport-Security max-age when TLS terminates in front of the server; 0 = header not sent. */
  HSTS_MAX_AGE_SECONDS: T.Integer({ minimum: 0, maximum: 63_072_000, default: 0 }),
});

/**
 * The environment as loaded: JWT_SECRET may be absent (outside production), and then the server
 * uses the deployment's generated key from the database (src/db/jwt-secret.ts).
 */
export type EnvConfig = Readonly<Static<typeof ConfigSchema> & { INSTANCE_ID: string }>;

/** The configuration the running app sees: the token key is always known. */
export type Config = Readonly<EnvConfig & { JWT_SECRET: string }>;

export class ConfigError extends Error {
  override name = "ConfigError";
}

/** The running configuration: the loaded one with the token key it will sign and verify with. */
export function withJwtSecret(config: EnvConfig, secret: string): Config {
  return Object.freeze({ ...config, JWT_SECRET: secret });
}

/** Parses an environment (process.env by default) into a Config, or throws a ConfigError naming the variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env): EnvConfig {
  const known = Object.keys(ConfigSchema.properties);
  const raw: Record<string, unknown> = {};
  for (const key of known) {
    const value = env[key];
    if (value !== undefined && value !== "") raw[key] = value;
  }
  const withDefaults = Value.Default(ConfigSchema, raw);
  const converted = Value.Convert(ConfigSchema, withDefaults);
  if (!Value.Check(ConfigSchema, converted)) {
    const problems = [...Value.Errors(ConfigSchema, converted)].map((e) => {
      const name = e.path.replace(/^\//, "") || "(environment)";
      return `${name}: ${e.message} (got ${JSON.stringify(env[name] ?? null)})`;
    });
    throw new ConfigError(`invalid configuration: ${problems.join("; ")}`);
  }
  const parsed = converted as Static<typeof ConfigSchema>;
  if (parsed.NODE_ENV === "production" && !parsed.JWT_SECRET) {
    throw new ConfigError("JWT_SECRET: required when NODE_ENV=production");
  }
  if (parsed.NODE_ENV === "production" && parsed.PASSWORD_HASH_MEMORY_KIB < 19_456) {
    throw new ConfigError("PASSWORD_HASH_MEMORY_KIB: at least 19456 when NODE_ENV=production");
  }
  if (parsed.REDIS_URL !== undefined && parsed.REDIS_CLUSTER_NODES !== undefined) {
    throw new ConfigError("REDIS_URL and REDIS_CLUSTER_NODES: set one or the other (a single Redis, or a Redis Cluster)");
  }
  if ((parsed.ADMIN_EMAIL === undefined) !== (parsed.ADMIN_PASSWORD === undefined)) {
    throw new ConfigError("ADMIN_EMAIL and ADMIN_PASSWORD: set both or neither");
  }
  const missing = ["{x}", "{y}", "{z}"].filter((p) => !parsed.MAP_TILE_URL.includes(p));
  if (missing.length > 0) throw new ConfigError(`MAP_TILE_URL: the template needs ${missing.join(", ")} (e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png)`);
  if (parsed.CORS_ORIGINS !== undefined) {
    const origins = parsed.CORS_ORIGINS.split(",").map((o) => o.trim());
    const wildcard = origins.includes("*");
    if (wildcard && origins.length > 1) throw new ConfigError("CORS_ORIGINS: `*` cannot be combined with other origins");
    const bad = origins.find((o) => o !== "*" && !/^https?:\/\/[^/\s?#]+$/.test(o));
    if (bad !== undefined) throw new ConfigError(`CORS_ORIGINS: ${JSON.stringify(bad)} is not an origin like https://app.example.com`);
    if (wildcard && parsed.CORS_ALLOW_CREDENTIALS) throw new ConfigError("CORS_ALLOW_CREDENTIALS: not allowed with CORS_ORIGINS=*; list the origins");
  }
  return Object.freeze({
    ...parsed,
    INSTANCE_ID: parsed.INSTANCE_ID ?? `i-${crypto.randomUUID().slice(0, 8)}`,
  });
}

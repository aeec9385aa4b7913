# syntax=docker/dockerfile:1
# dispatch: multi-stage build on the official Bun image.
#   deps     production dependencies only (no typescript, test or demo tooling)
#   runtime  slim Bun, non-root, tini as PID 1, source run directly by Bun (no build step)
ARG BUN_VERSION=1.4

FROM oven/bun:${BUN_VERSION} AS deps
WORKDIR /app
COPY package.json bun.lock ./
RUN bun install --frozen-lockfile --production --ignore-scripts

FROM oven/bun:${BUN_VERSION}-slim AS runtime
# tini as PID 1: forwards SIGTERM/SIGINT to the server and reaps any zombie, so the server's own
# SIGTERM handler (drain, close sockets, close the database) runs on `docker stop`.
RUN apt-get update \
  && apt-get install -y --no-install-recommends tini \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production \
    PORT=3000 \
    HOST=0.0.0.0 \
    DATA_DIR=/app/data
COPY --from=deps --chown=root:root /app/node_modules ./node_modules
COPY --chown=root:root package.json bun.lock tsconfig.json ./
COPY --chown=root:root src ./src
COPY --chown=root:root scripts/embedded-mongo.ts ./scripts/embedded-mongo.ts
# Code stays root-owned and read-only to the server; only the embedded engine's data dir is writable.
RUN mkdir -p /app/data && chown bun:bun /app/data
USER bun
VOLUME ["/app/data"]
EXPOSE 3000
# /health answers 200 while the process is up (readiness, incl. database and Redis, is /ready).
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
  CMD ["bun", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--"]
# Bun runs the entry file itself (not through `bun run <script>` and a shell), so the signal
# reaches the process that handles it.
CMD ["bun", "src/index.ts"]

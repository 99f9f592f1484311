# realtime-gateway image: one image, two processes.
#   gateway (default CMD): node dist/services/gateway/main.js
#   worker:                node dist/services/worker/main.js   (the Helm chart sets it as the container args)
# Build:  docker build -t realtime-gateway:dev .      (or: make image)

ARG NODE_IMAGE=node:20-bookworm-slim

# ---- build: full dependency tree, compile TypeScript, copy Lua/static assets into dist/ ----
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig*.json ./
COPY scripts/ ./scripts/
COPY services/ ./services/
# `npm run build` = tsc + scripts/copy-assets.js (Lua scripts, the demo page).
RUN npm run build

# ---- runtime: production dependencies only, non-root, tini as PID 1 ----
FROM ${NODE_IMAGE} AS runtime
# tini reaps zombies and forwards SIGTERM to node, so graceful shutdown (readiness off -> drain) runs.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
# Numeric uid/gid (the image's `node` user, 1000) so Kubernetes can verify runAsNonRoot.
USER 1000:1000
# 3000: Socket.IO, /healthz, /readyz, publish API.  9091: /metrics (internal).
EXPOSE 3000 9091
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "dist/services/gateway/main.js"]

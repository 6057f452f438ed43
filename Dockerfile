# syntax=docker/dockerfile:1
# bankstream: one image for every role (`start`, `sink`, `migrate`, `topics create`, `reconcile`, `load`).
# Node 24 runs the TypeScript sources directly (type stripping), so there is no build step, only
# production dependencies. Build: docker build -t bankstream .

# ---- dependencies: production packages only, native modules compiled here if no prebuild fits ----
FROM node:24-slim AS deps
WORKDIR /app
# classic-level ships prebuilt binaries for linux x64/arm64; the toolchain is the fallback for others.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-fund --no-audit \
 && npm cache clean --force

# ---- runtime ----
FROM node:24-slim AS runtime
ENV NODE_ENV=production \
    STATE_DIR=/var/lib/bankstream/state \
    HTTP_HOST=0.0.0.0 \
    HTTP_PORT=8080
WORKDIR /app
# A fixed, non-root uid/gid so that volumes and Kubernetes' fsGroup line up with the image.
RUN groupadd --system --gid 10001 bankstream \
 && useradd --system --uid 10001 --gid bankstream --home-dir /var/lib/bankstream --shell /usr/sbin/nologin bankstream \
 && mkdir -p /var/lib/bankstream/state \
 && chown -R bankstream:bankstream /var/lib/bankstream
COPY --from=deps /app/node_modules ./node_modules
COPY package.json package-lock.json ./
COPY bin ./bin
COPY scripts/node-env.sh ./scripts/node-env.sh
COPY migrations ./migrations
COPY src ./src
# `bankstream <command>` on the PATH for one-shot jobs (migrate, topics create, reconcile).
RUN ln -s /app/bin/bankstream /usr/local/bin/bankstream
USER 10001:10001
# LevelDB stores and their checkpoints: keep them across restarts (a lost volume is restored from
# the changelog topics, which takes time but loses nothing).
VOLUME ["/var/lib/bankstream"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.HTTP_PORT || 8080) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# SIGTERM starts the graceful stop (commit, leave the group); give it time (docker stop -t 30).
STOPSIGNAL SIGTERM
CMD ["node", "--disable-warning=ExperimentalWarning", "src/cli/main.ts", "start"]

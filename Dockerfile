# syntax=docker/dockerfile:1
# botserver: the compiled server on a distroless Node.js 24 runtime, as a non-root user, without a shell.
#   docker build -t botserver .
#   docker run --read-only --tmpfs /tmp -v botserver-data:/var/lib/botserver --env-file deploy/.env botserver api
# The argument picks the role: api | worker <reply|embed|email|files|audit> | migrate | keygen | user create ... | audit verify

# 1. Production dependencies only, on the runtime's Node.js major, so native addons (argon2) match it (a prebuilt
#    N-API binary, or compiled here: python3, make and g++ are in this image).
FROM node:24-bookworm AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

# 2. The TypeScript compiled to JavaScript (dist/), with the development dependencies it needs to build.
FROM node:24-bookworm AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY api ./api
COPY adapters ./adapters
COPY shared ./shared
COPY workers ./workers
COPY scripts ./scripts
RUN npm run build \
  && mkdir -p /out/var/lib/botserver \
  && chmod 0700 /out/var/lib/botserver

# 3. Runtime: no shell, no package manager; every file read-only to the process. NODE_OPTIONS caps V8's young
#    generation (shared/runtime.ts, IMAGE_NODE_OPTIONS): Node 24 would size it from the heap limit.
FROM gcr.io/distroless/nodejs24-debian12:nonroot AS runtime
WORKDIR /app
ENV NODE_ENV=production \
    NODE_OPTIONS=--max-semi-space-size=8 \
    BOTSERVER_HOST=0.0.0.0 \
    BOTSERVER_PORT=8080 \
    BOTSERVER_DATA_DIR=/var/lib/botserver
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# The data dir (upload staging, local file storage) is a volume; a new named volume takes this owner and mode.
# (Copied as an entry of its parent, so that the folder itself gets the owner, not only its contents.)
COPY --from=build --chown=65532:65532 /out/var/lib/ /var/lib/
USER nonroot
EXPOSE 8080
STOPSIGNAL SIGTERM
ENTRYPOINT ["/nodejs/bin/node", "/app/dist/scripts/cli.js"]
CMD ["api"]

# syntax=docker/dockerfile:1
# Upshift image: one image, every role (`serve`, `worker`, `sandbox`, and the CLI commands).
# Node 20 is the LTS line the project targets (package.json engines); bookworm-slim keeps it small.

# ---- build: dev dependencies, TypeScript compile ------------------------------------------------
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# No dependency needs its install script (README, "npm 11 asks ..."): skipping them keeps the
# build free of compilers and of downloads outside the registry.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY bench ./bench
COPY scripts ./scripts
RUN npm run build

# ---- runtime: production dependencies and the compiled output only ------------------------------
FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
# The image's unprivileged user; the app files stay root-owned, so the process cannot change them.
USER node
# The slim image has no curl: Node's fetch does the probe. Which endpoint depends on the role, so
# docker-compose.yml sets one per service; this default probes `serve` on its default port.
ENV UPSHIFT_HEALTH_URL=http://127.0.0.1:3000/healthz
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch(process.env.UPSHIFT_HEALTH_URL).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "dist/src/cli/main.js"]
CMD ["--help"]

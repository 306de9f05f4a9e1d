# Images idempo-sidecar and idempo-operator (one build, two targets):
#   docker build --target sidecar  -t idempo-sidecar:0.1.0 .
#   docker build --target operator -t idempo-operator:0.1.0 .
# Both run as a non-root user on a read-only root filesystem (the chart and the webhook set
# readOnlyRootFilesystem); nothing is written at run time.
FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm install --no-audit --no-fund --loglevel=error
COPY tsconfig.json ./
COPY api api
COPY sidecar sidecar
COPY operator operator
COPY scripts/gen-crds.ts scripts/gen-crds.ts
RUN npx tsc -p tsconfig.json --outDir dist && npm prune --omit=dev --no-audit --no-fund

FROM gcr.io/distroless/nodejs24-debian12:nonroot AS runtime
WORKDIR /app
COPY --from=build /src/node_modules node_modules
COPY --from=build /src/dist dist
COPY package.json ./
USER 65532:65532

FROM runtime AS sidecar
EXPOSE 19092 9464
ENTRYPOINT ["/nodejs/bin/node", "--max-semi-space-size=2", "dist/sidecar/main.js"]

FROM runtime AS operator
EXPOSE 9443 8080
ENTRYPOINT ["/nodejs/bin/node", "dist/operator/main.js"]

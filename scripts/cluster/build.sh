#!/usr/bin/env bash
# Builds what a real single-node cluster needs beyond scripts/kube/build.sh (kube-apiserver,
# kubectl, etcd), once per machine, into ${IDEMPO_CACHE:-~/.cache/idempo}:
#   kube-<v>/bin: kube-controller-manager, kube-scheduler, kubelet, kube-proxy — from the same
#                 wrapper module and Go build cache as the apiserver (so only their own
#                 packages compile);
#   containerd-<v>/bin: containerd, containerd-shim-runc-v2, ctr (go install, CGO off);
#   cluster/pause: the sandbox binary (scripts/cluster/pause; up.sh packs it as an image).
# The Debian parts (runc, CNI plugins, iptables) come from scripts/cluster/install-debian.sh.
# Prints two lines: the kubernetes bin dir, then the containerd bin dir.
# One Go link of kubelet peaks near 2 GB: everything is built one binary at a time.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
CONTAINERD_VERSION=v2.2.9
CACHE=${IDEMPO_CACHE:-$HOME/.cache/idempo}

log() { echo "cluster/build: $*" >&2; }

"$here/install-debian.sh"
KBIN=$("$repo/scripts/kube/build.sh" | tail -n 1)
KROOT=$(dirname "$KBIN")
KSTAMP=$(cat "$KBIN/.stamp")
CBIN=$CACHE/containerd-$CONTAINERD_VERSION/bin
PAUSE=$CACHE/cluster/pause
# The pause binary is ours: rebuild when its source changes.
PAUSE_SUM=$(cat "$here/pause/main.go" "$here/pause/go.mod" | sha256sum | cut -c1-16)

have_all() {
  for b in kube-controller-manager kube-scheduler kubelet kube-proxy; do
    [[ -x $KBIN/$b && $(cat "$KBIN/.stamp-$b" 2>/dev/null) == "$KSTAMP" ]] || return 1
  done
  for b in containerd containerd-shim-runc-v2 ctr; do [[ -x $CBIN/$b ]] || return 1; done
  [[ -x $PAUSE/pause && $(cat "$PAUSE/.sum" 2>/dev/null) == "$PAUSE_SUM" ]]
}
if have_all; then echo "$KBIN"; echo "$CBIN"; exit 0; fi

mkdir -p "$CACHE/cluster"
exec 9>"$CACHE/cluster/.build.lock"
flock 9
if have_all; then echo "$KBIN"; echo "$CBIN"; exit 0; fi

export CGO_ENABLED=0 GOTOOLCHAIN=${GOTOOLCHAIN:-local}
start=$(date +%s)

# Same version stamping as scripts/kube/build.sh (kubelet reports it to the API server).
K8S_VERSION=${KSTAMP#kubernetes=}; K8S_VERSION=${K8S_VERSION%% *}
ver=${K8S_VERSION#v}; major=${ver%%.*}; minor=${ver#*.}; minor=${minor%%.*}
xflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  xflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
  xflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
for b in kube-proxy kube-scheduler kube-controller-manager kubelet; do
  [[ -x $KBIN/$b && $(cat "$KBIN/.stamp-$b" 2>/dev/null) == "$KSTAMP" ]] && continue
  t=$(date +%s)
  log "building $b $K8S_VERSION"
  (cd "$KROOT/src/kubernetes" && GOFLAGS="${GOFLAGS:-} -mod=mod" \
    go build -trimpath -ldflags "-s -w $xflags" -o "$KBIN/$b" "k8s.io/kubernetes/cmd/$b")
  echo "$KSTAMP" >"$KBIN/.stamp-$b"
  log "$b built in $(($(date +%s) - t))s"
done

for b in containerd containerd-shim-runc-v2 ctr; do
  [[ -x $CBIN/$b ]] && continue
  t=$(date +%s)
  log "building $b $CONTAINERD_VERSION"
  # go install pkg@version builds in module mode on its own go.mod: no -mod flag allowed.
  GOFLAGS= GOBIN="$CBIN" go install -trimpath -ldflags "-s -w" "github.com/containerd/containerd/v2/cmd/$b@$CONTAINERD_VERSION"
  log "$b built in $(($(date +%s) - t))s"
done

if [[ ! -x $PAUSE/pause || $(cat "$PAUSE/.sum" 2>/dev/null) != "$PAUSE_SUM" ]]; then
  mkdir -p "$PAUSE"
  (cd "$here/pause" && GOFLAGS= go build -trimpath -ldflags "-s -w" -o "$PAUSE/pause" .)
  echo "$PAUSE_SUM" >"$PAUSE/.sum"
fi
log "done in $(($(date +%s) - start))s"
echo "$KBIN"
echo "$CBIN"

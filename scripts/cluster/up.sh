#!/usr/bin/env bash
# make cluster-up: a real single-node Kubernetes on this machine, from processes — etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler, containerd (+ runc, the CNI bridge),
# kubelet, kube-proxy — with the project's images imported (dist/images/*.oci.tar, `make
# images`) as idempo-sidecar:dev / idempo-operator:dev. Free ports, everything on loopback
# except the pod bridge; what it changes outside its run dir is recorded so that down.sh
# puts the machine back as it was (shared/CLUSTER-NOTES.md has the why of each setting).
# The last line printed is KUBECONFIG=path.
#
# Env:
#   IDEMPO_CLUSTER_RUN_DIR    certs, data, configs, logs, pids (default: cache run dir)
#   IDEMPO_CLUSTER_OWNER_PID  if set, a watchdog runs down.sh when that process is gone
#   IDEMPO_CLUSTER_TIMEOUT    seconds for each wait (default 180)
#   IDEMPO_IMAGES_DIR         OCI archives to import (default: dist/images of this checkout)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$here/lib.sh"
TIMEOUT=${IDEMPO_CLUSTER_TIMEOUT:-180}
IMAGES_DIR=${IDEMPO_IMAGES_DIR:-$repo/dist/images}
started=$(date +%s%N)
elapsed() { awk -v a="$started" -v b="$(date +%s%N)" 'BEGIN{printf "%.1f", (b-a)/1e9}'; }

[[ $(id -u) -eq 0 ]] || { clog "needs root (containerd, kubelet, iptables, the pod bridge)"; exit 1; }

if [[ -f $RUN/kubeconfig ]] && alive "$RUN/apiserver.pid" && alive "$RUN/kubelet.pid"; then
  clog "already running (make cluster-down to stop)"
  echo "KUBECONFIG=$RUN/kubeconfig"
  exit 0
fi
if [[ -f $OWNER_FILE ]]; then
  other=$(cat "$OWNER_FILE")
  if [[ $other != "$RUN" ]] && [[ -f $other/apiserver.pid ]] && alive "$other/apiserver.pid"; then
    clog "a node is already up from $other (one per machine); stop it with IDEMPO_CLUSTER_RUN_DIR=$other scripts/cluster/down.sh"
    exit 1
  fi
  IDEMPO_CLUSTER_RUN_DIR=$other "$here/down.sh" >/dev/null 2>&1 || true
fi
"$here/down.sh" >/dev/null 2>&1 || true

mapfile -t bins < <("$here/build.sh")
KBIN=${bins[0]}
CBIN=${bins[1]}
export PATH="$KBIN:$CBIN:$PATH"

mkdir -p "$RUN"
RUN=$(cd "$RUN" && pwd)
echo "$RUN" >"$OWNER_FILE"
# From here on a failure tears down whatever was started.
trap 'rc=$?; if ((rc != 0)); then clog "failed; logs in $RUN (tearing down)"; tail -n 5 "$RUN"/*.log >&2 2>/dev/null; IDEMPO_CLUSTER_RUN_DIR=$RUN "$here/down.sh" --keep-logs >/dev/null 2>&1; fi' EXIT

# --- what the machine looks like before ------------------------------------------------
before=$RUN/before
mkdir -p "$before"
for s in "${SYSCTLS[@]}"; do
  v=$(sysctl -n "$s" 2>/dev/null) && printf '%s\t%s\n' "$s" "$v"
done >"$before/sysctls"
for p in "${MACHINE_PATHS[@]}"; do [[ -e $p ]] && echo "$p"; done >"$before/paths"
for c in /sys/fs/cgroup/*/; do for r in "${CGROUP_ROOTS[@]}"; do [[ -d $c$r ]] && echo "$c$r"; done; done >"$before/cgroups"
for t in iptables ip6tables; do
  command -v "$t-save" >/dev/null && "$t-save" 2>/dev/null | sed -n 's/^:\([^ ]*\) .*/\1/p' | sort -u >"$before/$t-chains"
done
command -v nft >/dev/null && nft list tables 2>/dev/null | sort >"$before/nft-tables"

# --- addresses and ports -----------------------------------------------------------------
# Pods get a /24 on our own bridge; its .1 is the node's address pods reach (apiserver
# endpoint, brokers in tests). The first candidate no route on this machine overlaps.
routes=$(ip -4 route show)
POD_CIDR=""
for third in 244 245 246 247 248 249; do
  [[ $routes == *"10.$third."* ]] && continue
  POD_CIDR=10.$third.0.0/24 NODE_IP=10.$third.0.1 SERVICE_CIDR=10.$((third - 148)).0.0/24 KUBE_SVC_IP=10.$((third - 148)).0.1
  break
done
[[ -n $POD_CIDR ]] || { clog "no free 10.24x.0.0/24 for pods"; exit 1; }
used_ports() { ss -Htan 2>/dev/null | awk '{print $4}' | sed 's/.*://' | sort -u; }
taken=" $(used_ports | tr '\n' ' ') "
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 40000))
    [[ $taken == *" $p "* ]] || { taken+="$p "; echo "$p"; return; }
  done
}
ETCD_PORT=$(free_port) ETCD_PEER=$(free_port) API_PORT=$(free_port) CM_PORT=$(free_port) SCHED_PORT=$(free_port)
KUBELET_PORT=$(free_port) KUBELET_HEALTHZ=$(free_port) PROXY_HEALTHZ=$(free_port) PROXY_METRICS=$(free_port)
NODE_NAME=localhost   # the kubelet binds 127.0.0.1; the apiserver reaches it by this Hostname address
cat >"$RUN/env" <<EOF
NODE_IP=$NODE_IP
POD_CIDR=$POD_CIDR
SERVICE_CIDR=$SERVICE_CIDR
API_PORT=$API_PORT
NODE_NAME=$NODE_NAME
KUBELET_PORT=$KUBELET_PORT
KBIN=$KBIN
CBIN=$CBIN
EOF

# --- the pod bridge ------------------------------------------------------------------------
# Created here (not by the CNI plugin at the first pod) so the apiserver can listen on it.
ip link add "$BRIDGE" type bridge
ip addr add "$NODE_IP/24" dev "$BRIDGE"
ip link set "$BRIDGE" up

# --- PKI -----------------------------------------------------------------------------------
PKI=$RUN/pki
mkdir -p "$PKI"
pki_ca "$PKI" idempo-cluster-ca
pki_issue "$PKI" apiserver "/CN=kube-apiserver" serverAuth \
  "IP:127.0.0.1,IP:$NODE_IP,IP:$KUBE_SVC_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
pki_issue "$PKI" admin "/O=system:masters/CN=admin" clientAuth
pki_issue "$PKI" controller-manager "/CN=system:kube-controller-manager" clientAuth
pki_issue "$PKI" scheduler "/CN=system:kube-scheduler" clientAuth
pki_issue "$PKI" kube-proxy "/CN=system:kube-proxy" clientAuth
pki_issue "$PKI" kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" clientAuth
pki_issue "$PKI" kubelet-serving "/CN=$NODE_NAME" serverAuth "IP:127.0.0.1,DNS:localhost,DNS:$NODE_NAME"
pki_issue "$PKI" apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth

SERVER=https://$NODE_IP:$API_PORT
b64() { base64 -w0 <"$1"; }
# kubeconfig FILE CERT-NAME [SERVER]
kubeconfig() {
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: idempo-node
  cluster: { server: "${3:-$SERVER}", certificate-authority-data: $(b64 "$PKI/ca.crt") }
users:
- name: $2
  user: { client-certificate-data: $(b64 "$PKI/$2.crt"), client-key-data: $(b64 "$PKI/$2.key") }
contexts:
- name: idempo-node
  context: { cluster: idempo-node, user: $2, namespace: default }
current-context: idempo-node
EOF
  chmod 600 "$1"
}
for who in controller-manager scheduler kube-proxy kubelet; do kubeconfig "$RUN/$who.kubeconfig" "$who"; done

# --- start / wait helpers ---------------------------------------------------------------
# start NAME CMD...: runs CMD in its own session, logs to RUN/NAME.log, pid in RUN/NAME.pid.
start() {
  local name=$1
  shift
  setsid "$@" </dev/null >"$RUN/$name.log" 2>&1 &
  echo $! >"$RUN/$name.pid"
}
# wait_until NAME WHAT CMD...: polls CMD until it succeeds; fails when NAME's process died
# or after TIMEOUT seconds.
wait_until() {
  local name=$1 what=$2 deadline=$(($(date +%s) + TIMEOUT))
  shift 2
  until "$@" >/dev/null 2>&1; do
    if [[ $name != - ]] && ! alive "$RUN/$name.pid"; then clog "$name exited before $what:"; tail -n 30 "$RUN/$name.log" >&2; return 1; fi
    (($(date +%s) < deadline)) || { clog "timed out waiting for $what (${TIMEOUT}s)"; return 1; }
    sleep 0.2
  done
  clog "$what after $(elapsed)s"
}
KUBECTL=("$KBIN/kubectl" --kubeconfig "$RUN/kubeconfig")

# --- etcd + kube-apiserver ----------------------------------------------------------------
start etcd "$KBIN/etcd" --name default --data-dir "$RUN/etcd-data" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER" \
  --initial-cluster "default=http://127.0.0.1:$ETCD_PEER" --unsafe-no-fsync --log-level warn
wait_until etcd "etcd healthy" bash -c "curl -sf http://127.0.0.1:$ETCD_PORT/health | grep -q '\"health\":\"true\"'"

# The apiserver listens on the bridge address only: the `kubernetes` Service's endpoint must
# not be loopback, and pods reach it there; host clients use the same address.
start apiserver "$KBIN/kube-apiserver" \
  --advertise-address="$NODE_IP" --bind-address="$NODE_IP" --secure-port="$API_PORT" \
  --cert-dir="$RUN/apiserver-certs" --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
  --client-ca-file="$PKI/ca.crt" --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
  --service-account-issuer=https://kubernetes.default.svc --service-account-key-file="$PKI/sa.pub" \
  --service-account-signing-key-file="$PKI/sa.key" \
  --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
  --allow-privileged=true --service-cluster-ip-range="$SERVICE_CIDR" \
  --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
  --kubelet-certificate-authority="$PKI/ca.crt" \
  --kubelet-preferred-address-types=Hostname,InternalIP
kubeconfig "$RUN/kubeconfig" admin
wait_until apiserver "apiserver ready" curl -sf --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" "$SERVER/readyz"

# --- containerd ----------------------------------------------------------------------------
CTRD=$RUN/containerd
mkdir -p "$CTRD" "$RUN/cni/net.d" "$RUN/cni/ipam"
cat >"$CTRD/config.toml" <<EOF
version = 3
root = "$CTRD/root"
state = "$CTRD/state"
# Plugins that would create machine paths (/opt/containerd, /var/run/nri) or need devices.
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.nri.v1.nri", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.blockfile",
  "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "$CTRD/containerd.sock"
[ttrpc]
  address = "$CTRD/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "docker.io/library/idempo-pause:dev"

[plugins."io.containerd.cri.v1.runtime"]
  enable_selinux = false
  # root here lacks CAP_SYS_RESOURCE: a negative oom_score_adj makes runc fail (CLUSTER-NOTES 2).
  restrict_oom_score_adj = true
  # Network namespaces under the state dir, so down.sh finds and unmounts them (CLUSTER-NOTES 5).
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "$RUN/cni/net.d"
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        Root = "$CTRD/runc"
        SystemdCgroup = false

[plugins."io.containerd.grpc.v1.cri"]
  # exec/attach/port-forward streams: loopback, a port the kernel picks.
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
EOF
cat >"$RUN/cni/net.d/10-idempo.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "idempo",
  "plugins": [
    {
      "type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
      "ipam": { "type": "host-local", "ranges": [[{ "subnet": "$POD_CIDR", "gateway": "$NODE_IP" }]],
                "routes": [{ "dst": "$SERVICE_CIDR" }], "dataDir": "$RUN/cni/ipam" }
    }
  ]
}
EOF
start containerd "$CBIN/containerd" --config "$CTRD/config.toml" --log-level warn
CTR=("$CBIN/ctr" --address "$CTRD/containerd.sock" -n k8s.io)
wait_until containerd "containerd serving" "${CTR[@]}" version
ctr() { "${CTR[@]}" "$@" 2>&1 | grep -v 'DEPRECATION: The support for cgroup v1' >&2; return "${PIPESTATUS[0]}"; }

# Images: our pause, then the project's (containerd names them from the archive annotations).
mkdir -p "$RUN/pause-rootfs"
cp "$CACHE/cluster/pause/pause" "$RUN/pause-rootfs/pause"
node "$repo/dist/scripts/images/oci.js" "$RUN/pause-rootfs" idempo-pause /pause 65535:65535 "$RUN/pause.oci.tar" >/dev/null
archives=("$RUN/pause.oci.tar")
for a in "$IMAGES_DIR"/*.oci.tar; do [[ -f $a ]] && archives+=("$a"); done
((${#archives[@]} > 1)) || clog "no images in $IMAGES_DIR (make images); importing only the pause image"
for a in "${archives[@]}"; do
  ctr images import --platform linux/amd64 "$a" >/dev/null || { clog "import of $a failed"; exit 1; }
done
clog "imported $(("${#archives[@]}")) images after $(elapsed)s: $("${CTR[@]}" images ls -q | grep -v '^sha256:' | tr '\n' ' ')"

# --- controller-manager, scheduler --------------------------------------------------------
start controller-manager "$KBIN/kube-controller-manager" --kubeconfig="$RUN/controller-manager.kubeconfig" \
  --authentication-kubeconfig="$RUN/controller-manager.kubeconfig" --authorization-kubeconfig="$RUN/controller-manager.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port="$CM_PORT" --leader-elect=false \
  --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" --use-service-account-credentials=true \
  --cluster-cidr="$POD_CIDR" --service-cluster-ip-range="$SERVICE_CIDR" --allocate-node-cidrs=false
start scheduler "$KBIN/kube-scheduler" --kubeconfig="$RUN/scheduler.kubeconfig" \
  --authentication-kubeconfig="$RUN/scheduler.kubeconfig" --authorization-kubeconfig="$RUN/scheduler.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port="$SCHED_PORT" --leader-elect=false

# --- kubelet -------------------------------------------------------------------------------
mkdir -p "$RUN/kubelet" "$RUN/pod-logs"
cat >"$RUN/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ
tlsCertFile: $PKI/kubelet-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-serving.key
authentication:
  anonymous: { enabled: false }
  webhook: { enabled: false }
  x509: { clientCAFile: $PKI/ca.crt }
authorization: { mode: AlwaysAllow }
containerRuntimeEndpoint: unix://$CTRD/containerd.sock
# cgroups are v1 here; 1.35 refuses them unless told (CLUSTER-NOTES 1).
cgroupDriver: cgroupfs
failCgroupV1: false
# ConfigMap volumes (the policy file) reach running pods within seconds, not a minute.
syncFrequency: 5s
podLogsDir: $RUN/pod-logs
# A shared CI disk must not evict the test's pods or garbage-collect the imported images.
evictionHard: { memory.available: "1Mi", nodefs.available: "1%", nodefs.inodesFree: "1%", imagefs.available: "1%" }
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
failSwapOn: false
shutdownGracePeriod: 0s
serializeImagePulls: false
maxPods: 64
EOF
start kubelet "$KBIN/kubelet" --config="$RUN/kubelet.yaml" --kubeconfig="$RUN/kubelet.kubeconfig" \
  --root-dir="$RUN/kubelet" --hostname-override="$NODE_NAME" --node-ip="$NODE_IP"

# --- kube-proxy ----------------------------------------------------------------------------
cat >"$RUN/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: { kubeconfig: $RUN/kube-proxy.kubeconfig }
mode: iptables
clusterCIDR: $POD_CIDR
hostnameOverride: $NODE_NAME
healthzBindAddress: 127.0.0.1:$PROXY_HEALTHZ
metricsBindAddress: 127.0.0.1:$PROXY_METRICS
# Leave conntrack sysctls and route_localnet alone (nothing here needs them).
conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s }
iptables: { localhostNodePorts: false }
EOF
start kube-proxy "$KBIN/kube-proxy" --config="$RUN/kube-proxy.yaml"

if [[ -n ${IDEMPO_CLUSTER_OWNER_PID:-} ]]; then
  # Polls once a second: the owner may be SIGKILLed, which no exit hook sees.
  setsid bash -c 'up() { st=$(sed "s/.*) //" "/proc/$1/stat" 2>/dev/null) && [[ ${st:0:1} != [ZX] ]]; }
    while up "$1" && [ -f "$2/apiserver.pid" ]; do sleep 1; done
    IDEMPO_CLUSTER_RUN_DIR="$2" "$3/down.sh" >/dev/null 2>&1' \
    watchdog "$IDEMPO_CLUSTER_OWNER_PID" "$RUN" "$here" </dev/null >/dev/null 2>&1 &
  echo $! >"$RUN/watchdog.pid"
fi

node_ready() { [[ $("${KUBECTL[@]}" get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}') == True ]]; }
wait_until kubelet "node Ready" node_ready
wait_until kube-proxy "kube-proxy healthy" curl -sf "http://127.0.0.1:$PROXY_HEALTHZ/healthz"
wait_until controller-manager "default ServiceAccount" "${KUBECTL[@]}" get serviceaccount default -n default
trap - EXIT
clog "node $NODE_NAME Ready in $(elapsed)s (pods $POD_CIDR on $BRIDGE, services $SERVICE_CIDR); logs in $RUN; kubectl: $KBIN/kubectl"
echo "KUBECONFIG=$RUN/kubeconfig"

#!/usr/bin/env bash
# Starts a local control plane the way controller-runtime's envtest does: etcd and a
# real kube-apiserver as plain processes on loopback, with a throwaway CA, RBAC on, and
# no controller-manager/scheduler/kubelet. The last line printed is KUBECONFIG=path.
#
# Env:
#   IDEMPO_KUBE_RUN_DIR    where certs, data, logs and pids go (default: cache run dir).
#                          One control plane per dir; down.sh takes the same variable.
#   IDEMPO_KUBE_OWNER_PID  if set, a watchdog stops the control plane when that process
#                          is gone (tests use it so a killed runner leaves nothing behind).
#   IDEMPO_KUBE_TIMEOUT    seconds to wait for /readyz (default 120).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
CACHE=${IDEMPO_CACHE:-$HOME/.cache/idempo}
RUN=${IDEMPO_KUBE_RUN_DIR:-$CACHE/run/kube}
TIMEOUT=${IDEMPO_KUBE_TIMEOUT:-120}

log() { echo "kube/up: $*" >&2; }
. "$here/lib.sh"

# Already up (make kube-up twice): say where it is instead of starting a second one.
if alive "$RUN/apiserver.pid" && alive "$RUN/etcd.pid" && [[ -f $RUN/kubeconfig ]]; then
  log "already running (make kube-down to stop)"
  echo "KUBECONFIG=$RUN/kubeconfig"
  exit 0
fi
"$here/down.sh" >/dev/null 2>&1 || true

BIN=$("$here/build.sh" | tail -n 1)
mkdir -p "$RUN"
RUN=$(cd "$RUN" && pwd)
PKI=$RUN/pki
mkdir -p "$PKI"

# --- throwaway PKI (kube/lib.sh) -----------------------------------------------------
pki_ca "$PKI" idempo-test-ca
pki_issue "$PKI" serving "/CN=kube-apiserver" serverAuth \
  "IP:127.0.0.1,DNS:localhost,IP:10.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
# O=system:masters: the group RBAC lets do anything, like envtest's admin user.
pki_issue "$PKI" admin "/O=system:masters/CN=admin" clientAuth

# --- ports -----------------------------------------------------------------------------
# A random unused loopback port. Another process may grab it before we bind; the start
# loop below retries with fresh ports when a process dies early.
used_ports() { ss -Htan 2>/dev/null | awk '{print $4}' | sed 's/.*://' | sort -u; }
free_port() {
  local used p
  used=$(used_ports)
  while :; do
    p=$((20000 + RANDOM % 40000))
    grep -qx "$p" <<<"$used" || { echo "$p"; return; }
  done
}

# wait_for PIDFILE LOGFILE SECONDS CHECK-CMD...: 0 when CHECK passes, 1 when the process dies.
wait_for() {
  local pidf=$1 logf=$2 deadline=$(($(date +%s) + $3))
  shift 3
  until "$@" >/dev/null 2>&1; do
    alive "$pidf" || { log "$(basename "$logf" .log) exited:"; tail -n 20 "$logf" >&2; return 1; }
    (($(date +%s) < deadline)) || { log "timed out; see $logf"; tail -n 20 "$logf" >&2; return 2; }
    sleep 0.2
  done
}

start_etcd() {
  ETCD_PORT=$(free_port)
  local peer
  peer=$(free_port)
  rm -rf "$RUN/etcd-data"
  # --unsafe-no-fsync: test data is throwaway, and fsync dominates etcd latency on CI disks.
  setsid "$BIN/etcd" --name default --data-dir "$RUN/etcd-data" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "default=http://127.0.0.1:$peer" --unsafe-no-fsync --log-level warn \
    </dev/null >"$RUN/etcd.log" 2>&1 &
  echo $! >"$RUN/etcd.pid"
  wait_for "$RUN/etcd.pid" "$RUN/etcd.log" 30 \
    bash -c "curl -sf http://127.0.0.1:$ETCD_PORT/health | grep -q '\"health\":\"true\"'"
}

start_apiserver() {
  API_PORT=$(free_port)
  # --endpoint-reconciler-type=none: the default one would publish 127.0.0.1 as the
  # endpoint of Service "kubernetes", which validation rejects (loopback), every 10s.
  setsid "$BIN/kube-apiserver" \
    --advertise-address=127.0.0.1 --endpoint-reconciler-type=none --bind-address=127.0.0.1 --secure-port="$API_PORT" \
    --cert-dir="$RUN/apiserver-certs" \
    --tls-cert-file="$PKI/serving.crt" --tls-private-key-file="$PKI/serving.key" \
    --client-ca-file="$PKI/ca.crt" \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --service-account-issuer="https://127.0.0.1:$API_PORT" \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --authorization-mode=RBAC \
    --disable-admission-plugins=ServiceAccount \
    --allow-privileged=true \
    --service-cluster-ip-range=10.0.0.0/24 \
    </dev/null >"$RUN/apiserver.log" 2>&1 &
  echo $! >"$RUN/apiserver.pid"
  wait_for "$RUN/apiserver.pid" "$RUN/apiserver.log" "$TIMEOUT" \
    curl -sf --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    "https://127.0.0.1:$API_PORT/readyz"
}

started=$(date +%s%N)
ok=""
for attempt in 1 2 3; do
  if start_etcd; then
    if start_apiserver; then ok=1; break; else rc=$?; fi
  else rc=$?; fi
  stop_pidfile "$RUN/apiserver.pid" kube-apiserver
  stop_pidfile "$RUN/etcd.pid" etcd
  ((rc == 1)) || break # a timeout isn't a port race; retrying would only double the wait
  log "attempt $attempt failed; retrying with fresh ports"
done
if [[ -z $ok ]]; then "$here/down.sh" >/dev/null 2>&1 || true; log "failed to start"; exit 1; fi

b64() { base64 -w0 <"$1"; }
cat >"$RUN/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: idempo-test
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority-data: $(b64 "$PKI/ca.crt")
users:
- name: admin
  user:
    client-certificate-data: $(b64 "$PKI/admin.crt")
    client-key-data: $(b64 "$PKI/admin.key")
contexts:
- name: idempo-test
  context: { cluster: idempo-test, user: admin, namespace: default }
current-context: idempo-test
EOF
chmod 600 "$RUN/kubeconfig"
echo "https://127.0.0.1:$API_PORT" >"$RUN/server"

if [[ -n ${IDEMPO_KUBE_OWNER_PID:-} ]]; then
  # Polls once a second: the owner may be SIGKILLed, which no exit hook sees.
  setsid bash -c 'up() { st=$(sed "s/.*) //" "/proc/$1/stat" 2>/dev/null) && [[ ${st:0:1} != [ZX] ]]; }
    while up "$1" && [ -f "$2/apiserver.pid" ]; do sleep 1; done
    IDEMPO_KUBE_RUN_DIR="$2" "$3/down.sh" >/dev/null 2>&1' \
    watchdog "$IDEMPO_KUBE_OWNER_PID" "$RUN" "$here" </dev/null >/dev/null 2>&1 &
  echo $! >"$RUN/watchdog.pid"
fi

log "apiserver https://127.0.0.1:$API_PORT ready in $(awk -v a="$started" -v b="$(date +%s%N)" 'BEGIN{printf "%.1f", (b-a)/1e9}')s; logs in $RUN; kubectl: $BIN/kubectl"
echo "KUBECONFIG=$RUN/kubeconfig"

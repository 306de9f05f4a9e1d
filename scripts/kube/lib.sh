# Helpers shared by up.sh and down.sh (sourced, not run).

# Running = exists and not a zombie: PID 1 in some containers reaps orphans late or never.
running() {
  local st
  st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) && [[ ${st:0:1} != [ZX] ]]
}
alive() { [[ -f $1 ]] && running "$(cat "$1")"; }

# The pid must still be the program we started: a stale pid file could name a reused pid.
ours() { [[ $(readlink "/proc/$1/exe" 2>/dev/null) == *"/$2" ]]; }

# stop_pidfile FILE EXE-NAME: SIGTERM, wait up to 5s, then SIGKILL; removes FILE.
# Everything is throwaway, so no long graceful wait: a kube-apiserver whose etcd is
# already gone can hang in shutdown for a long time.
stop_pidfile() {
  local pid
  [[ -f $1 ]] || return 0
  pid=$(cat "$1")
  if running "$pid" && ours "$pid" "$2"; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 50); do running "$pid" || break; sleep 0.1; done
    running "$pid" && kill -KILL "$pid" 2>/dev/null
    for _ in $(seq 50); do running "$pid" || break; sleep 0.1; done
  fi
  rm -f "$1"
}

# --- throwaway PKI (EC keys: generated in milliseconds; the apiserver accepts ES256 SA tokens) ---
# Both control planes (kube/up.sh for envtest-style runs, cluster/up.sh for the node) use these.
ossl() { openssl "$@" 2>/dev/null; }

# pki_ca DIR CN: a 7-day CA (ca.key, ca.crt) plus the service-account signing pair (sa.key, sa.pub).
pki_ca() {
  ossl ecparam -name prime256v1 -genkey -noout -out "$1/ca.key"
  ossl req -x509 -new -key "$1/ca.key" -subj "/CN=$2" -days 7 -out "$1/ca.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
  ossl ecparam -name prime256v1 -genkey -noout -out "$1/sa.key"
  ossl ec -in "$1/sa.key" -pubout -out "$1/sa.pub"
  [[ -s $1/ca.crt && -s $1/sa.pub ]] || { echo "openssl failed for the CA in $1" >&2; return 1; }
}

# pki_issue DIR NAME SUBJECT EXTENDED-KEY-USAGE [SANS]: NAME.key + NAME.crt signed by DIR's CA.
pki_issue() {
  local d=$1 n=$2
  ossl ecparam -name prime256v1 -genkey -noout -out "$d/$n.key"
  ossl req -new -key "$d/$n.key" -subj "$3" -out "$d/$n.csr"
  { echo 'basicConstraints=CA:FALSE'; echo 'keyUsage=critical,digitalSignature,keyEncipherment'
    echo "extendedKeyUsage=$4"; [[ -n ${5:-} ]] && echo "subjectAltName=$5"; } >"$d/$n.ext"
  ossl x509 -req -in "$d/$n.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 7 \
    -extfile "$d/$n.ext" -out "$d/$n.crt"
  rm -f "$d/$n.csr" "$d/$n.ext"
  [[ -s $d/$n.crt ]] || { echo "openssl failed for $n" >&2; return 1; }
}

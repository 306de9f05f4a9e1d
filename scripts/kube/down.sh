#!/usr/bin/env bash
# Stops what up.sh started in IDEMPO_KUBE_RUN_DIR (default: the cache run dir) and
# removes the files it made there. Safe to run when nothing is up.
set -uo pipefail
CACHE=${IDEMPO_CACHE:-$HOME/.cache/idempo}
RUN=${IDEMPO_KUBE_RUN_DIR:-$CACHE/run/kube}
[[ -d $RUN ]] || exit 0

# The pid must still be the program we started: a stale pid file could name a reused pid.
# Running = exists and not a zombie: PID 1 in some containers never reaps orphans.
running() { local st; st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) && [[ ${st:0:1} != [ZX] ]]; }
ours() { [[ $(readlink "/proc/$1/exe" 2>/dev/null) == *"/$2"* ]]; }

# The apiserver first, so it doesn't spend its shutdown retrying a vanished etcd.
for name in apiserver etcd; do
  f=$RUN/$name.pid
  [[ -f $f ]] || continue
  pid=$(cat "$f")
  exe=$([[ $name == apiserver ]] && echo kube-apiserver || echo etcd)
  if ours "$pid" "$exe"; then
    kill -TERM "$pid" 2>/dev/null
    # Graceful stop takes ~1s; after 15s stop asking.
    for _ in $(seq 150); do running "$pid" || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
  fi
  rm -f "$f"
done

# The watchdog (see up.sh) runs this script itself; don't kill our own parent.
if [[ -f $RUN/watchdog.pid ]]; then
  wpid=$(cat "$RUN/watchdog.pid")
  [[ $wpid != "$PPID" ]] && ours "$wpid" bash && kill "$wpid" 2>/dev/null
  rm -f "$RUN/watchdog.pid"
fi

# Only what up.sh created: the run dir may be one a caller handed us.
rm -rf "$RUN/pki" "$RUN/etcd-data" "$RUN/apiserver-certs" \
  "$RUN/kubeconfig" "$RUN/server" "$RUN/etcd.log" "$RUN/apiserver.log"
rmdir "$RUN" 2>/dev/null
echo "kube/down: stopped ($RUN)" >&2
exit 0

#!/usr/bin/env bash
# Stops what up.sh started in IDEMPO_KUBE_RUN_DIR (default: the cache run dir) and
# removes the files it made there. Safe to run when nothing is up.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
CACHE=${IDEMPO_CACHE:-$HOME/.cache/idempo}
RUN=${IDEMPO_KUBE_RUN_DIR:-$CACHE/run/kube}
[[ -d $RUN ]] || exit 0

# The apiserver first, so it doesn't spend its shutdown retrying a vanished etcd.
stop_pidfile "$RUN/apiserver.pid" kube-apiserver
stop_pidfile "$RUN/etcd.pid" etcd

# The watchdog (see up.sh) runs this script itself; don't kill our own parent.
if [[ -f $RUN/watchdog.pid ]]; then
  wpid=$(cat "$RUN/watchdog.pid")
  [[ $wpid != "$PPID" ]] && running "$wpid" && ours "$wpid" bash && kill "$wpid" 2>/dev/null
  rm -f "$RUN/watchdog.pid"
fi

# Only what up.sh created: the run dir may be one a caller handed us.
rm -rf "$RUN/pki" "$RUN/etcd-data" "$RUN/apiserver-certs" \
  "$RUN/kubeconfig" "$RUN/server" "$RUN/etcd.log" "$RUN/apiserver.log"
rmdir "$RUN" 2>/dev/null
echo "kube/down: stopped ($RUN)" >&2
exit 0

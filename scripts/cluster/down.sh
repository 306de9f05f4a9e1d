#!/usr/bin/env bash
# make cluster-down: stops what scripts/cluster/up.sh started and puts the machine back as
# it found it — processes (the kubelet first, then every container, then the components in
# reverse order), containerd shims bound to this run's socket, mounts under the run dir, the
# pod bridge, the KUBE-*/CNI-* iptables chains the run added, the sysctls the kubelet and
# the CNI plugin changed, the kubepods cgroups and machine paths that did not exist before.
# Safe to run when nothing is up, and after a failed or killed run.
#   --keep-logs   leave RUN/*.log (up.sh uses it when start-up fails, for the message)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
keep_logs=""
[[ ${1:-} == --keep-logs ]] && keep_logs=1
[[ -d $RUN ]] || exit 0
RUN=$(cd "$RUN" && pwd)
before=$RUN/before
KBIN=$(sed -n 's/^KBIN=//p' "$RUN/env" 2>/dev/null)
CBIN=$(sed -n 's/^CBIN=//p' "$RUN/env" 2>/dev/null)
CTRD=$RUN/containerd

# The watchdog runs this script itself; don't kill our own parent.
if [[ -f $RUN/watchdog.pid ]]; then
  wpid=$(cat "$RUN/watchdog.pid")
  [[ $wpid != "$PPID" ]] && running "$wpid" && ours "$wpid" bash && kill "$wpid" 2>/dev/null
  rm -f "$RUN/watchdog.pid"
fi

# 1. The kubelet, so nothing restarts what is stopped next.
stop_pidfile "$RUN/kubelet.pid" kubelet

# 2. Every container: kill the processes in the kubepods cgroups this run created (all of
#    them are pods of this node), then let containerd clean its tasks up.
new_cgroups() {
  local c r
  [[ -f $before/cgroups ]] || return 0 # not recorded: not ours to touch
  for c in /sys/fs/cgroup/*/; do
    for r in "${CGROUP_ROOTS[@]}"; do
      [[ -d $c$r ]] && ! grep -qxF "$c$r" "$before/cgroups" 2>/dev/null && echo "$c$r"
    done
  done
}
for attempt in 1 2 3 4 5; do
  pids=$(for d in $(new_cgroups); do find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null; done | sort -u)
  [[ -z $pids ]] && break
  kill -KILL $pids 2>/dev/null
  sleep 0.2
done
if [[ -n $CBIN && -S $CTRD/containerd.sock ]] && alive "$RUN/containerd.pid"; then
  ctr=("$CBIN/ctr" --address "$CTRD/containerd.sock" -n k8s.io)
  for t in $(timeout 10 "${ctr[@]}" tasks ls -q 2>/dev/null); do timeout 10 "${ctr[@]}" tasks delete -f "$t" >/dev/null 2>&1; done
fi

# 3. The components, last started first.
stop_pidfile "$RUN/kube-proxy.pid" kube-proxy
stop_pidfile "$RUN/containerd.pid" containerd
stop_pidfile "$RUN/scheduler.pid" kube-scheduler
stop_pidfile "$RUN/controller-manager.pid" kube-controller-manager
stop_pidfile "$RUN/apiserver.pid" kube-apiserver
stop_pidfile "$RUN/etcd.pid" etcd

# Shims outlive containerd by design; only those bound to this run's socket are ours.
for p in $(pgrep -x containerd-shim 2>/dev/null; pgrep -f containerd-shim-runc-v2 2>/dev/null); do
  tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -qF -- "-address $CTRD/containerd.sock" && kill -KILL "$p" 2>/dev/null
done

# 4. Mounts under the run dir (pod volumes, overlay rootfs, netns), deepest first.
for attempt in 1 2 3; do
  mounts=$(awk -v p="$RUN/" 'index($5, p) == 1 {print $5}' /proc/self/mountinfo | sort -r)
  [[ -z $mounts ]] && break
  for m in $mounts; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
done

# 5. Network: the bridge (pod veths went with their namespaces), then iptables.
ip link show "$BRIDGE" >/dev/null 2>&1 && ip link del "$BRIDGE"
for t in iptables ip6tables; do
  command -v "$t-save" >/dev/null || continue
  for table in filter nat mangle raw; do
    chains=$("$t-save" -t "$table" 2>/dev/null | sed -n 's/^:\(KUBE-[^ ]*\|CNI-[^ ]*\) .*/\1/p' |
      grep -vxF -f "$before/$t-chains" 2>/dev/null || true)
    [[ -z $chains ]] && continue
    # Rules in other chains that jump to ours, then our chains themselves.
    pattern=$(echo "$chains" | paste -sd'|')
    "$t-save" -t "$table" 2>/dev/null | grep -E "^-A " | grep -E -- "-j ($pattern)( |$)" | grep -Ev "^-A ($pattern) " |
      while IFS= read -r rule; do eval "$t -t $table -D ${rule#-A }" 2>/dev/null; done
    for c in $chains; do "$t" -t "$table" -F "$c" 2>/dev/null; done
    for c in $chains; do "$t" -t "$table" -X "$c" 2>/dev/null; done
  done
done

# iptables-nft creates a table the first time a rule goes into it; ours are gone, so a table
# that did not exist before and holds no rule now (only base chains) is dropped too.
if command -v nft >/dev/null && [[ -f $before/nft-tables ]]; then
  nft list tables 2>/dev/null | sort | comm -13 "$before/nft-tables" - | while read -r _ family name; do
    rules=$(nft list table "$family" "$name" 2>/dev/null | grep -Ev '^\s*(table |chain |type |policy |}|$)')
    [[ -z $rules ]] && nft delete table "$family" "$name" 2>/dev/null
  done
fi

# 6. Sysctls back to what they were.
if [[ -f $before/sysctls ]]; then
  while IFS=$'\t' read -r key value; do
    [[ $(sysctl -n "$key" 2>/dev/null) == "$value" ]] || sysctl -qw "$key=$value" >/dev/null 2>&1
  done <"$before/sysctls"
fi

# 7. cgroups and machine paths this run created.
for d in $(new_cgroups); do find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null; done
if [[ -f $before/paths ]]; then
  for p in "${MACHINE_PATHS[@]}"; do
    [[ -e $p ]] && ! grep -qxF "$p" "$before/paths" && rm -rf "$p"
  done
fi

# 8. The run dir (what up.sh made; it may be one a caller handed us).
[[ $(cat "$OWNER_FILE" 2>/dev/null) == "$RUN" ]] && rm -f "$OWNER_FILE"
if [[ -n $keep_logs ]]; then
  find "$RUN" -mindepth 1 -maxdepth 1 ! -name '*.log' -exec rm -rf {} + 2>/dev/null
else
  rm -rf "$RUN"
fi
clog "stopped ($RUN)"
exit 0

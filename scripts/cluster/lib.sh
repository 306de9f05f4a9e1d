# Shared by scripts/cluster/up.sh and down.sh (sourced). What a run changes on the machine
# outside its run dir, so that down.sh can put it back (shared/CLUSTER-NOTES.md).
. "$(dirname "${BASH_SOURCE[0]}")/../kube/lib.sh"

CACHE=${IDEMPO_CACHE:-$HOME/.cache/idempo}
RUN=${IDEMPO_CLUSTER_RUN_DIR:-$CACHE/run/cluster}
# One node per machine: kubepods cgroups, the bridge and the iptables chains are machine-wide.
OWNER_FILE=/run/idempo-cluster.owner
BRIDGE=idempo0

# Sysctls the kubelet (setupKernelTunables), the CNI bridge plugin (ip_forward) and kube-proxy
# may write. Recorded before the run, written back after it.
SYSCTLS=(kernel.panic kernel.panic_on_oops vm.overcommit_memory vm.panic_on_oom
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.ipv4.ip_forward
  net.ipv4.conf.all.route_localnet net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables
  net.netfilter.nf_conntrack_max net.netfilter.nf_conntrack_tcp_timeout_established
  net.netfilter.nf_conntrack_tcp_timeout_close_wait net.ipv6.conf.all.forwarding)

# Machine paths some part creates whatever its configuration says (containerd's shim socket
# dir under /run/containerd, kubelet's /var/log/containers, libcni's cache): removed on the
# way down when they did not exist before.
MACHINE_PATHS=(/run/containerd /var/log/containers /var/log/pods /var/lib/cni /opt/containerd /var/run/nri /etc/cni
  /var/lib/kubelet /etc/kubernetes)

# cgroup v1 hierarchies the kubelet creates under every controller (cgroupDriver cgroupfs).
CGROUP_ROOTS=(kubepods kubepods.slice)

clog() { echo "cluster/${0##*/}: $*" >&2; }

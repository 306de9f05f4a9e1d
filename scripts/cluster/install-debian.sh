#!/usr/bin/env bash
# The node's Debian parts, once: runc (containerd's runtime), the CNI plugins (bridge,
# host-local, loopback, portmap in /usr/lib/cni), iptables (kube-proxy) and conntrack
# (kube-proxy clears stale UDP entries with it), nft (down.sh drops the empty iptables-nft
# tables the run brought into being).
set -euo pipefail
need=()
command -v runc >/dev/null 2>&1 || need+=(runc)
[[ -x /usr/lib/cni/bridge ]] || need+=(containernetworking-plugins)
command -v iptables >/dev/null 2>&1 || need+=(iptables)
command -v conntrack >/dev/null 2>&1 || need+=(conntrack)
command -v nft >/dev/null 2>&1 || need+=(nftables)
[[ ${#need[@]} -eq 0 ]] && exit 0
SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
echo "cluster/install-debian: installing ${need[*]}" >&2
$SUDO apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null

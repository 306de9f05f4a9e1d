#!/usr/bin/env bash
# Installs the Debian packages the tests use (kcat = librdkafka's CLI, prometheus + promtool,
# faketime = libfaketime: kcat with a stopped wall clock, i.e. application-set timestamps), once.
set -euo pipefail
need=()
command -v kcat >/dev/null 2>&1 || need+=(kcat)
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v faketime >/dev/null 2>&1 || need+=(faketime)
[ ${#need[@]} -eq 0 ] && exit 0
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null

#!/usr/bin/env bash
# Stops the broker started by up.sh (SIGTERM, then SIGKILL after 30 s) and removes its run dir.
set -euo pipefail
CACHE="${IDEMPO_CACHE:-$HOME/.cache/idempo}"
run="$CACHE/run/kafka"
if [ -f "$run/pid" ]; then
  pid="$(cat "$run/pid")"
  # Only signal it if that pid is still our java kafka.Kafka (the pid may have been reused).
  if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q "kafka.Kafka $run/server.properties"; then
    kill -TERM "$pid"
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && { echo "down.sh: broker $pid did not stop in 30 s; killing" >&2; kill -KILL "$pid" 2>/dev/null || true; }
  fi
fi
rm -rf "$run"
echo "Kafka stopped" >&2

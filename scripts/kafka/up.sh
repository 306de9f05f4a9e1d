#!/usr/bin/env bash
# Starts one local KRaft node (broker + controller in one JVM) on 127.0.0.1 and a free port.
# Idempotent: when it is already running, prints its address again. Last line printed:
#   KAFKA_BOOTSTRAP=127.0.0.1:PORT
# Env: IDEMPO_CACHE (run dir lives in $IDEMPO_CACHE/run/kafka), IDEMPO_KAFKA_HEAP (default 512m),
#      IDEMPO_KAFKA_TIMEOUT_MS (readiness timeout, default 60000),
#      IDEMPO_KAFKA_JVM_OPTS (GC/JIT flags; default G1 with full JIT, as benchmarks want).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
CACHE="${IDEMPO_CACHE:-$HOME/.cache/idempo}"
run="$CACHE/run/kafka"
heap="${IDEMPO_KAFKA_HEAP:-512m}"
timeout_ms="${IDEMPO_KAFKA_TIMEOUT_MS:-60000}"
command -v java >/dev/null || { echo "up.sh: java (17+) not found on PATH" >&2; exit 1; }
# Node >= 24 (the probe is TypeScript run by Node directly), whatever node the machine has.
export PATH="$("$repo/scripts/ensure-node.sh"):$PATH"

if [ -f "$run/pid" ] && kill -0 "$(cat "$run/pid")" 2>/dev/null && [ -f "$run/bootstrap" ]; then
  echo "KAFKA_BOOTSTRAP=$(cat "$run/bootstrap")"
  exit 0
fi

libs="$("$here/fetch.sh")"
rm -rf "$run"
mkdir -p "$run/data"

free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
port="$(free_port)"
cport="$(free_port)"
while [ "$cport" = "$port" ]; do cport="$(free_port)"; done

{
  cat "$here/broker-defaults.properties"
  cat <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$run/data
PROPS
} > "$run/server.properties"
cp "$here/log4j2.properties" "$run/log4j2.properties"

# Kafka cluster ids are 16 random bytes in URL-safe base64 without padding. Like Kafka's own
# Uuid.randomUuid, avoid a leading '-' (command-line parsers would read it as an option).
cluster_id="-"
while [ "${cluster_id:0:1}" = "-" ]; do
  cluster_id="$(head -c16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
done

# The format step is a short-lived tool: C1 only + serial GC start faster.
java -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xmx256m \
  -Dlog4j2.configurationFile="$run/log4j2.properties" -Didempo.kafka.logfile="$run/format.log" \
  -cp "$libs/*" kafka.tools.StorageTool format -t "$cluster_id" -c "$run/server.properties" --standalone \
  > "$run/format.out" 2>&1 || { cat "$run/format.out" >&2; exit 1; }

# shellcheck disable=SC2086 # word splitting of the JVM flags is intended
nohup java -Xmx"$heap" -Xms128m ${IDEMPO_KAFKA_JVM_OPTS:--XX:+UseG1GC -XX:MaxGCPauseMillis=20} -Djava.awt.headless=true \
  -Dlog4j2.configurationFile="$run/log4j2.properties" -Didempo.kafka.logfile="$run/server.log" \
  -cp "$libs/*" kafka.Kafka "$run/server.properties" > "$run/stdout.log" 2>&1 < /dev/null &
pid=$!
echo "$pid" > "$run/pid"

if ! node "$here/probe.ts" "127.0.0.1:$port" 1 "$timeout_ms" "$pid" > /dev/null; then
  echo "up.sh: Kafka did not become ready; last log lines ($run/server.log):" >&2
  tail -n 30 "$run/server.log" "$run/stdout.log" >&2 || true
  kill -9 "$pid" 2>/dev/null || true
  exit 1
fi
echo "127.0.0.1:$port" > "$run/bootstrap"
echo "Kafka (KRaft, pid $pid) ready; logs in $run" >&2
echo "KAFKA_BOOTSTRAP=127.0.0.1:$port"

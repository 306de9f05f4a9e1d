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

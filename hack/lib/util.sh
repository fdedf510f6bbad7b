# shellcheck shell=bash
# The process helpers hack/cluster.sh and hack/node.sh share: sourced, as Kubernetes' scripts
# source hack/lib/util.sh. Each component runs in its own session, its pid in
# $STATE/pids/NAME.pid, its output in $STATE/logs/NAME.log.
#
# The sourcing script sets:
#   SCRIPT         its name, the prefix of die's messages (callers strip "node.sh: ")
#   STATE          its state directory (pids/ and logs/ beneath it)
#   OURS           array: paths one of which a process's command line names when it is ours
#   COMPONENTS     array: the components wait_for watches
#   WAIT_TIMEOUT   seconds one wait_for may take, unless WAIT_DEADLINE (a $SECONDS value) is set
#   WAIT_INTERVAL  seconds between two tries of wait_for (default 0.5)
#   UP_START       optional: a $SECONDS value; wait_for then logs the time since it

log() { echo ">> $*" >&2; }
die() {
  echo "$SCRIPT: $*" >&2
  exit 1
}

pid_of() { cat "$STATE/pids/$1.pid" 2>/dev/null || true; }

# alive NAME: the recorded pid runs and is ours (its command line names one of OURS, so a
# recycled pid is never taken for one of our processes: stop and healthy rely on that).
alive() {
  local pid cmd path
  pid=$(pid_of "$1")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  # No pipe: under pipefail, `tr | grep -q` fails whenever grep exits before tr has written all
  # (SIGPIPE), which called a running component dead.
  cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  for path in "${OURS[@]}"; do
    [[ "$cmd" == *"$path"* ]] && return 0
  done
  return 1
}

# exited NAME: NAME was started (its pid is recorded) and that process is gone, or is a zombie
# not yet reaped. Judged by the pid alone, never by the command line: until a child has exec'd
# its binary (and a registry started through this script runs a build first) its command line
# is this script's, so `alive` calls it dead. That was "kwok exited at start" and "containerd
# exited while waiting for registry", each with an empty log: the component had not run yet.
exited() {
  local pid stat
  pid=$(pid_of "$1")
  [ -n "$pid" ] || return 1
  stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 0
  stat=${stat##*) } # after the command name, which may hold spaces and parentheses
  [ "${stat%% *}" = Z ]
}

# start NAME BINARY ARGS...: runs it in its own session, output to logs/NAME.log.
start() {
  local name=$1
  shift
  # 9>&-: the children must not inherit cluster.sh's up/down lock.
  setsid "$@" >"$STATE/logs/$name.log" 2>&1 </dev/null 9>&- &
  echo $! >"$STATE/pids/$name.pid"
  exec_done "$name"
}

# exec_done NAME: waits (5 s at most) until the child has exec'd, so that `alive` can tell it is
# ours; a child that exited is left to wait_for, which reports it with its log.
exec_done() {
  local pid
  pid=$(pid_of "$1")
  for _ in $(seq 1 100); do
    alive "$1" && return 0
    [ -d "/proc/$pid" ] || return 0
    sleep 0.05
  done
}

# stop NAME: SIGTERM, and SIGKILL when it has not stopped 10 s later.
stop() {
  local name=$1 pid
  alive "$name" || return 0
  pid=$(pid_of "$name")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do
    alive "$name" || return 0
    sleep 0.2
  done
  log "$name (pid $pid) did not stop in 10 s, killing it"
  kill -KILL "$pid" 2>/dev/null || true
}

# restart NAME [PAUSE]: stops NAME (as `stop` does) and starts it again with the command line it
# ran, after PAUSE seconds (default 0): the fault suite's restarts of one component. The old
# run's log is kept as logs/NAME.log.EPOCH.
restart() {
  local name=$1 pause=${2:-0} pid argv=()
  alive "$name" || die "$name is not running: nothing to restart"
  pid=$(pid_of "$name")
  mapfile -d '' -t argv <"/proc/$pid/cmdline"
  stop "$name"
  mv "$STATE/logs/$name.log" "$STATE/logs/$name.log.$(date +%s)"
  sleep "$pause"
  start "$name" "${argv[@]}"
}

# wait_for WHAT CMD...: retries CMD until it succeeds; dies when one of COMPONENTS has exited
# (with the tail of its log) or when the deadline passes.
wait_for() {
  local what=$1 t0=$SECONDS deadline name
  shift
  deadline=${WAIT_DEADLINE:-$((SECONDS + WAIT_TIMEOUT))}
  until "$@" >/dev/null 2>&1; do
    for name in "${COMPONENTS[@]}"; do
      if exited "$name"; then
        tail -n 30 "$STATE/logs/$name.log" >&2 || true
        die "$name exited while waiting for $what (log: $STATE/logs/$name.log)"
      fi
    done
    if ((SECONDS >= deadline)); then
      die "timed out after $((SECONDS - t0)) s waiting for $what (logs: $STATE/logs/)"
    fi
    sleep "${WAIT_INTERVAL:-0.5}"
  done
  if [ -n "${UP_START:-}" ]; then
    log "$what ($((SECONDS - UP_START)) s)"
  else
    log "$what (+$((SECONDS - t0)) s)"
  fi
}

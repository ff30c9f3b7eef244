# Shared by the cluster benchmarks (drain.sh, ec.sh); sourced, not run.
#
# The caller sets, before sourcing: ROOT, WORK, DATA (= WORK/data), LOGS, QUIET, POLL,
# DRAIN_TIMEOUT, CAIRN (the release binary), N_STORES; and may set GATEWAY_SET (more gateway config
# values: "section.key=value ...", strings) and define bench_cleanup (run on exit before the processes are
# stopped). It then calls, in order:
#   build_release ARGS...   cargo build --release ARGS (unless NO_BUILD=1)
#   start_cluster           `cairn up --stores N_STORES` lays out DATA and is stopped; the stores
#                           (names a, b, c, ...) and the gateway, its [drain] quiet set to QUIET,
#                           are started here as separate processes, stopped by PID on exit
# and has: log, die, now_ns, secs, status_json, url NAME, alive_check, start_store NAME,
# stop_gateway, start_gateway, set_gateway section.key=value...,
# kill9_store NAME, wait_online NAME true|false, ticks PID, store_ticks, cpu_s TICKS, backlog,
# wait_drained T0_NS (sets D_WALL, D_FIRST, D_START), QUIET_S, C_PORT, GW_PID, STORE_PID[NAME].
# Everything listens on 127.0.0.1.

T_START=$(date +%s)
STORES=$(echo a b c d e f g h i j k l | cut -d' ' -f1-"$N_STORES")

log() { echo "[$(date +%T)] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now_ns() { date +%s%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", (b-a)/1e9}'; }

# ---------------------------------------------------------------- teardown
UP_PID=""; GW_PID=""; declare -A STORE_PID=()
stop_pid() { # label pid
  local label=$1 pid=$2 i rc=0
  [ -n "$pid" ] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      log "$label (pid $pid) still alive 30 s after SIGTERM: SIGKILL"; kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || rc=$?
  log "$label (pid $pid) exited with status $rc"
}
stop_all() {
  local p n
  p=$UP_PID; UP_PID=""; stop_pid "cairn up" "$p"
  p=$GW_PID; GW_PID=""; stop_pid gateway "$p"   # the gateway first: it is the stores' client
  for n in $STORES; do
    p=${STORE_PID[$n]:-}; STORE_PID[$n]=""; stop_pid "store $n" "$p"
  done
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if declare -F bench_cleanup >/dev/null; then bench_cleanup; fi
  stop_all
  if [ "${KEEP:-0}" != 1 ]; then rm -rf "$DATA" "$WORK/src"; fi
  log "done in $(( $(date +%s) - T_START )) s (exit $rc)"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- build
build_release() {
  local b
  for b in cargo python3 nfs-cp sync cp awk sed; do command -v $b >/dev/null || die "missing $b"; done
  if [ "${NO_BUILD:-0}" != 1 ]; then
    log "building release: cargo build --release $* (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
    (cd "$ROOT" && cargo build --release "$@") || die "cargo build failed"
  fi
  [ -x "$CAIRN" ] || die "$CAIRN not built"
}

# ---------------------------------------------------------------- cluster
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
status_json() { "$CAIRN" status --data "$DATA" --json 2>/dev/null; }
store_port() { sed -n 's/^listen = "127\.0\.0\.1:\([0-9]*\)"/\1/p' "$DATA/stores/$1/store.toml"; }

start_store() { # name: starts (or restarts) one store and waits until it listens
  local n=$1 port i before
  port=$(store_port "$n"); [ -n "$port" ] || die "no listen port in $DATA/stores/$n/store.toml"
  before=$(grep -c "^cairn chunkstore listening" "$LOGS/store-$n.log" 2>/dev/null || true)
  "$CAIRN" chunkstore --config "$DATA/stores/$n/store.toml" >>"$LOGS/store-$n.log" 2>&1 </dev/null &
  STORE_PID[$n]=$!
  for i in $(seq 1 150); do
    kill -0 "${STORE_PID[$n]}" 2>/dev/null || { tail -20 "$LOGS/store-$n.log" >&2; die "store $n exited"; }
    [ "$(grep -c "^cairn chunkstore listening on 127.0.0.1:$port" "$LOGS/store-$n.log" || true)" -gt "${before:-0}" ] && break
    sleep 0.1
  done
  [ "$(grep -c "^cairn chunkstore listening" "$LOGS/store-$n.log" || true)" -gt "${before:-0}" ] \
    || die "store $n did not listen on $port"
  log "store $n pid ${STORE_PID[$n]} on 127.0.0.1:$port, data $DATA/stores/$n/data"
}

kill9_store() { # name
  local p=${STORE_PID[$1]:-}
  [ -n "$p" ] || die "store $1 is not running"
  kill -KILL "$p"; wait "$p" 2>/dev/null || true; STORE_PID[$1]=""
  log "store $1 (pid $p) killed with SIGKILL"
}

wait_online() { # name true|false: polls `cairn store list --json` (the gateway probes every 2 s)
  local i
  for i in $(seq 1 300); do
    "$CAIRN" store list --data "$DATA" --json 2>/dev/null | python3 -c '
import json, sys
s = [x for x in json.load(sys.stdin)["stores"] if x["name"] == sys.argv[1]]
sys.exit(0 if s and str(s[0]["online"]).lower() == sys.argv[2] else 1)' "$1" "$2" && return 0
    sleep 0.1
  done
  die "store $1 not online=$2 after 30 s"
}

start_cluster() {
  local p i online
  rm -rf "$DATA"; mkdir -p "$DATA" "$WORK/src" "$LOGS"
  C_PORT=$(free_port)
  log "laying out $DATA with cairn up --stores $N_STORES (stopped again once it serves)"
  "$CAIRN" up --data "$DATA" --nfs "127.0.0.1:$C_PORT" --stores "$N_STORES" >"$LOGS/up.log" 2>&1 </dev/null &
  UP_PID=$!
  # readiness from the logs, not by connecting: a store logs a WARN for a connection without a handshake
  for i in $(seq 1 300); do
    kill -0 "$UP_PID" 2>/dev/null || { tail -20 "$LOGS/up.log" >&2; die "cairn up exited"; }
    grep -q '^cairn is up' "$LOGS/up.log" && break
    sleep 0.1
  done
  grep -q '^cairn is up' "$LOGS/up.log" || die "cairn up did not come up; see $LOGS/up.log"
  p=$UP_PID; UP_PID=""; stop_pid "cairn up" "$p"

  GW_CONF=$DATA/gateway/gateway.toml
  [ -f "$GW_CONF" ] || die "cairn up wrote no $GW_CONF"
  # [drain] quiet = QUIET and GATEWAY_SET (cairn up rewrites the config at every start; we do not
  # run it again)
  # shellcheck disable=SC2086
  set_gateway "drain.quiet=$QUIET" ${GATEWAY_SET:-} || die "cannot edit $GW_CONF"
  QUIET_S=$(awk -v q="$QUIET" 'BEGIN{ n=q+0; u=q; sub(/^[0-9]+ */, "", u);
    f = (u=="ms") ? 0.001 : (u=="s") ? 1 : (u=="m") ? 60 : -1; if (f < 0) exit 1; printf "%.3f", n*f }') \
    || die "QUIET=$QUIET: use ms, s or m"
  grep -A4 '^\[drain\]' "$GW_CONF" | sed 's/^/  /' >&2

  for n in $STORES; do start_store "$n"; done
  GW_LOG=$LOGS/gateway.log
  start_gateway
  Q="?nfsport=$C_PORT&mountport=$C_PORT"
}

start_gateway() { # (again) from GW_CONF; waits until it sees every store online
  local i online=0
  "$CAIRN" gateway --config "$GW_CONF" >>"$GW_LOG" 2>&1 </dev/null &
  GW_PID=$!
  for i in $(seq 1 300); do
    kill -0 "$GW_PID" 2>/dev/null || { tail -20 "$GW_LOG" >&2; die "the gateway exited"; }
    online=$(status_json | grep -c '"online": true' || true)
    [ "$online" = "$N_STORES" ] && break
    sleep 0.1
  done
  [ "$online" = "$N_STORES" ] || die "the gateway does not see $N_STORES stores online ($online)"
  log "gateway pid $GW_PID serving on 127.0.0.1:$C_PORT, $N_STORES stores online, quiet $QUIET"
}

stop_gateway() {
  local p=$GW_PID; GW_PID=""; stop_pid gateway "$p"
}

set_gateway() { # section.key=value ...: edits GW_CONF (strings)
  python3 - "$GW_CONF" "$@" <<'EOF'
import re, sys
path = sys.argv[1]
text = open(path).read()
for setting in sys.argv[2:]:
    name, value = setting.split("=", 1)
    section, key = name.split(".", 1)
    pattern = r'(?m)^(\[%s\]\n(?:(?!\[).*\n)*?)%s = .*$' % (re.escape(section), re.escape(key))
    text, n = re.subn(pattern, lambda m: m.group(1) + '%s = %s' % (key, value if value in ("true", "false") or value.isdigit() else '"%s"' % value), text)
    if n != 1:
        sys.exit("cannot find [%s] %s in %s" % (section, key, path))
open(path, "w").write(text)
EOF
}

url() { echo "nfs://127.0.0.1//$1$Q"; }
alive_check() {
  local n
  if [ -n "$GW_PID" ] && ! kill -0 "$GW_PID" 2>/dev/null; then
    GW_PID=""; log "the gateway died; last log lines:"; tail -20 "$GW_LOG" >&2; die "the gateway exited on its own"
  fi
  for n in $STORES; do
    if [ -n "${STORE_PID[$n]:-}" ] && ! kill -0 "${STORE_PID[$n]}" 2>/dev/null; then
      STORE_PID[$n]=""; tail -20 "$LOGS/store-$n.log" >&2; die "store $n exited on its own"
    fi
  done
}

# ---------------------------------------------------------------- measuring helpers
TICK=$(getconf CLK_TCK)
ticks() { [ -n "$1" ] && [ -r "/proc/$1/stat" ] && awk '{print $14+$15}' "/proc/$1/stat" || echo 0; }
store_ticks() { local n t=0; for n in $STORES; do t=$((t + $(ticks "${STORE_PID[$n]:-}"))); done; echo $t; }
cpu_s() { awk -v t="$1" -v k="$TICK" 'BEGIN{printf "%.1f", t/k}'; }
backlog() { status_json | sed -n 's/^  "backlog_bytes": \([0-9]*\).*/\1/p'; }
# wait_drained T0_NS: polls until backlog_bytes is 0; sets D_WALL (s since T0), D_FIRST (s from T0
# to the first poll that saw the backlog shrink, i.e. the first chunk committed), D_START (the
# backlog at the first poll).
wait_drained() {
  local t0=$1 b first="" start="" deadline t
  deadline=$(( t0 + DRAIN_TIMEOUT * 1000000000 ))
  while :; do
    b=$(backlog); t=$(now_ns)
    [ -n "$b" ] || { alive_check; die "cairn status --json gave no backlog_bytes"; }
    [ -n "$start" ] || start=$b
    if [ -z "$first" ] && [ "$b" -lt "$start" ]; then first=$t; fi
    [ "$b" = 0 ] && break
    if [ "$t" -gt "$deadline" ]; then
      alive_check; grep -E ' (WARN|ERROR) ' "$GW_LOG" | tail -5 >&2
      die "backlog still $b bytes ${DRAIN_TIMEOUT} s after the upload"
    fi
    sleep "$POLL"
  done
  D_WALL=$(secs "$t0" "$t"); D_START=$start
  if [ -n "$first" ]; then D_FIRST=$(secs "$t0" "$first"); else D_FIRST=$D_WALL; fi
}

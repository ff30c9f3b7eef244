#!/usr/bin/env bash
# cairn against nfs-ganesha, same client, same disk, same run (issue 2, "Benchmark").
#
#   bench/nfs.sh                       build (release), start both servers, run, print a table
#
# Workloads, each against cairn and against nfs-ganesha (FSAL_VFS exporting a plain local
# directory; harness in bench/ganesha/), REPS times, interleaved, medians reported:
#   seq_write   nfs-cp of a SIZE_MB MiB file from /dev/urandom (made once per run) to a new name
#   seq_read    nfs-cat of that file > /dev/null (nfs-cp refuses existing local targets)
#   create      COUNT files of FILE_SIZE bytes over ONE nfs3_client connection:
#               CREATE + UNSTABLE WRITE + COMMIT each (tests/examples/nfs_smallfiles.rs)
#   stat        LOOKUP + GETATTR of each of those files, same connection
# ratio = cairn / ganesha throughput, so higher is better for cairn. Targets (issue 2):
# sequential >= 0.8x, small files >= 0.5x.
#
# Env: REPS (3), READS (3: timed reads per rep), SIZE_MB (1024), COUNT (10000), FILE_SIZE (4096),
#      WORK (/tmp/cairn-bench: cairn's data_dir, the source file, logs, results),
#      GANESHA_BASE (/tmp/ganesha: ganesha's state and export, passed to the harness as BASE),
#      GANESHA_NFS_PORT (20490), GANESHA_MNT_PORT (20048),
#      BENCH_GANESHA_DIR (bench/ganesha, else ../../shared/bench/ganesha next to the repo),
#      CARGO_TARGET_DIR (<repo>/target), NO_BUILD=1 (use the binaries already built),
#      KEEP=1 (keep WORK and ganesha's export contents afterwards).
# Processes: cairn is started here and stopped by its PID (SIGTERM, SIGKILL after 30 s).
# ganesha (+ a loopback-only rpcbind) is started by bench/ganesha/setup.sh (installed with
# apt-get first if ganesha.nfsd is missing) and stopped by teardown.sh; if a ganesha is already
# answering on GANESHA_NFS_PORT it is used as is and left running. Everything listens on
# 127.0.0.1 only.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
if [ -z "${BENCH_GANESHA_DIR:-}" ]; then
  if [ -x "$HERE/ganesha/setup.sh" ]; then BENCH_GANESHA_DIR=$HERE/ganesha
  else BENCH_GANESHA_DIR="$(dirname "$0")/../../shared/bench/ganesha"; fi
fi
BENCH_GANESHA_DIR=$(cd "$BENCH_GANESHA_DIR" && pwd)
REPS=${REPS:-3}; READS=${READS:-3}; SIZE_MB=${SIZE_MB:-1024}; COUNT=${COUNT:-10000}; FILE_SIZE=${FILE_SIZE:-4096}
WORK=${WORK:-/tmp/cairn-bench}
GANESHA_BASE=${GANESHA_BASE:-/tmp/ganesha}
G_NFS=${GANESHA_NFS_PORT:-20490}; G_MNT=${GANESHA_MNT_PORT:-20048}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
CAIRN=$CARGO_TARGET_DIR/release/cairn
SMALL=$CARGO_TARGET_DIR/release/examples/nfs_smallfiles
T_START=$(date +%s)

log() { echo "[$(date +%T)] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
tcp_up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
now_ns() { date +%s%N; }

# ---------------------------------------------------------------- teardown
CAIRN_PID=""; GANESHA_STARTED=0
stop_cairn() {
  [ -n "$CAIRN_PID" ] || return 0
  local pid=$CAIRN_PID i; CAIRN_PID=""
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      log "cairn (pid $pid) still alive 30 s after SIGTERM: SIGKILL"; kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  local rc=0; wait "$pid" 2>/dev/null || rc=$?
  log "cairn (pid $pid) exited with status $rc"
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_cairn
  if [ "$GANESHA_STARTED" = 1 ]; then
    BASE=$GANESHA_BASE "$BENCH_GANESHA_DIR/teardown.sh" >&2 || log "ganesha teardown reported a problem"
  fi
  if [ "${KEEP:-0}" != 1 ]; then
    rm -rf "$WORK/gateway" "$WORK/src" "$WORK/rd"
    if [ -n "${G_EXPORT_DIR:-}" ]; then rm -rf "$G_EXPORT_DIR"/cairn-bench-$$-*; fi
  fi
  log "done in $(( $(date +%s) - T_START )) s (exit $rc)"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- build
for b in cargo python3 sha256sum ss df awk; do command -v $b >/dev/null || die "missing $b"; done
if [ "${NO_BUILD:-0}" != 1 ]; then
  log "building release: cairn and the nfs_smallfiles example (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
  (cd "$ROOT" && cargo build --release -p cairn-gateway -p cairn-tests --bins --examples) \
    || die "cargo build failed"
fi
[ -x "$CAIRN" ] || die "$CAIRN not built"
[ -x "$SMALL" ] || die "$SMALL not built"

# ---------------------------------------------------------------- ganesha
if tcp_up "$G_NFS"; then
  log "a server already answers on 127.0.0.1:$G_NFS: using it as the ganesha baseline (not started here, left running)"
else
  if ! command -v ganesha.nfsd >/dev/null || ! command -v nfs-cp >/dev/null; then
    log "installing nfs-ganesha and libnfs-utils (apt-get)"
    INSTALL_FLAG=1
  else
    INSTALL_FLAG=0
  fi
  log "starting ganesha (BASE=$GANESHA_BASE) with $BENCH_GANESHA_DIR/setup.sh"
  GANESHA_STARTED=1   # teardown.sh only stops what setup.sh recorded
  INSTALL=$INSTALL_FLAG BASE=$GANESHA_BASE NFS_PORT=$G_NFS MNT_PORT=$G_MNT \
    "$BENCH_GANESHA_DIR/setup.sh" >&2 || die "ganesha setup failed"
fi
G_EXPORT_DIR=$GANESHA_BASE/export
[ -d "$G_EXPORT_DIR" ] || die "ganesha export dir $G_EXPORT_DIR not found"
G_Q="?nfsport=$G_NFS&mountport=$G_MNT"
nfs-ls "nfs://127.0.0.1/$G_Q" >/dev/null || die "nfs-ls of ganesha's export failed"

# ---------------------------------------------------------------- cairn
rm -rf "$WORK/gateway" "$WORK/rd"; mkdir -p "$WORK/gateway" "$WORK/src" "$WORK/logs" "$WORK/rd"
dev_of() { df -P "$1" | awk 'NR==2 {print $1}'; }
if [ "$(dev_of "$WORK")" != "$(dev_of "$G_EXPORT_DIR")" ]; then
  log "WARNING: cairn's data ($WORK: $(dev_of "$WORK")) and ganesha's export ($G_EXPORT_DIR: $(dev_of "$G_EXPORT_DIR")) are on different filesystems"
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
CAIRN_LOG=$WORK/logs/cairn.log
start_cairn() {
  local attempt i
  for attempt in 1 2 3; do
    C_PORT=$(free_port)
    cat > "$WORK/gateway.toml" <<EOF
data_dir = "$WORK/gateway"

[nfs]
listen = "127.0.0.1:$C_PORT"

[cache]
max_size = "$(( (SIZE_MB * (REPS + 1)) / 1024 + 4 )) GiB"
EOF
    "$CAIRN" gateway --config "$WORK/gateway.toml" >"$CAIRN_LOG" 2>&1 </dev/null &
    CAIRN_PID=$!
    for i in $(seq 1 300); do
      kill -0 "$CAIRN_PID" 2>/dev/null || break
      tcp_up "$C_PORT" && { log "cairn pid $CAIRN_PID serving on 127.0.0.1:$C_PORT, data $WORK/gateway"; return 0; }
      sleep 0.1
    done
    log "cairn did not come up on port $C_PORT (attempt $attempt):"; tail -5 "$CAIRN_LOG" >&2
    stop_cairn
  done
  die "cairn would not start"
}
start_cairn
C_Q="?nfsport=$C_PORT&mountport=$C_PORT"
nfs-ls "nfs://127.0.0.1/$C_Q" >/dev/null || die "nfs-ls of cairn's export failed"

url() { # server name (in the export's root: libnfs MNTs the URL's path up to its last '/')
  case $1 in
    cairn) echo "nfs://127.0.0.1//$2$C_Q" ;;
    ganesha) echo "nfs://127.0.0.1//$2$G_Q" ;;
  esac
}
server_pid() { case $1 in cairn) echo "$CAIRN_PID" ;; ganesha) cat "$GANESHA_BASE/run/ganesha.launch.pid" 2>/dev/null || true ;; esac; }
cpu_ticks() { local p; p=$(server_pid "$1"); [ -n "$p" ] && [ -r "/proc/$p/stat" ] && awk '{print $14+$15}' "/proc/$p/stat" || echo 0; }
alive_check() {
  if [ -n "$CAIRN_PID" ] && ! kill -0 "$CAIRN_PID" 2>/dev/null; then
    CAIRN_PID=""; log "cairn died; last log lines:"; tail -20 "$CAIRN_LOG" >&2; die "cairn exited on its own"
  fi
}

# ---------------------------------------------------------------- source file
BIG=$((SIZE_MB * 1048576))
SRC=$WORK/src/random_${SIZE_MB}M.bin
log "making $SRC ($SIZE_MB MiB from /dev/urandom)"
head -c "$BIG" /dev/urandom > "$SRC"
SRC_SHA=$(sha256sum < "$SRC" | cut -d' ' -f1)

# ---------------------------------------------------------------- runs
RES=$WORK/results.csv
echo "server,workload,rep,value,unit,seconds,server_cpu_s" > "$RES"
TICK=$(getconf CLK_TCK)
record() { # server workload rep value unit seconds cpu_ticks
  local cpu; cpu=$(awk -v t="$7" -v k="$TICK" 'BEGIN{printf "%.2f", t/k}')
  echo "$1,$2,$3,$4,$5,$6,$cpu" >> "$RES"
  printf '  %-8s %-10s rep %d: %10s %-8s (%6s s, server cpu %s s)\n' "$1" "$2" "$3" "$4" "$5" "$6" "$cpu" >&2
}
timed() { # server workload rep cmd... : MiB/s of SIZE_MB over the command's wall time
  local srv=$1 wl=$2 rep=$3; shift 3
  local c0 c1 t0 t1 s
  c0=$(cpu_ticks "$srv"); t0=$(now_ns)
  "$@" || { alive_check; die "$srv $wl rep $rep failed: $*"; }
  t1=$(now_ns); c1=$(cpu_ticks "$srv")
  s=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", (b-a)/1e9}')
  record "$srv" "$wl" "$rep" "$(awk -v s="$s" -v m="$SIZE_MB" 'BEGIN{printf "%.1f", m/s}')" MiB/s "$s" $((c1 - c0))
}
cat_null() { nfs-cat "$1" > /dev/null; }
cp_quiet() { nfs-cp "$1" "$2" > /dev/null; }   # it prints "copied N bytes"
check_sha() { # server name: read back through NFS (not timed), compare with the source
  local got; got=$(nfs-cat "$(url "$1" "$2")" | sha256sum | cut -d' ' -f1)
  [ "$got" = "$SRC_SHA" ] || die "$1: $2 read back with sha256 $got, expected $SRC_SHA"
}
small() { # server rep
  local srv=$1 rep=$2 port mport c0 c1 out
  case $srv in cairn) port=$C_PORT; mport=$C_PORT ;; ganesha) port=$G_NFS; mport=$G_MNT ;; esac
  c0=$(cpu_ticks "$srv")
  out=$("$SMALL" --host 127.0.0.1 --nfs-port "$port" --mount-port "$mport" --export / \
        --count "$COUNT" --size "$FILE_SIZE" --dir "cairn-bench-$$-small_$rep" 2>&1) \
    || { echo "$out" >&2; alive_check; die "$srv small files rep $rep failed"; }
  c1=$(cpu_ticks "$srv")
  echo "## $srv rep $rep" >> "$WORK/logs/smallfiles.out"; echo "$out" >> "$WORK/logs/smallfiles.out"
  kv() { echo "$out" | sed -n "s/^$1=//p"; }
  # the server CPU time covers both phases; it is recorded on the create line
  record "$srv" create "$rep" "$(kv create_files_per_sec)" files/s "$(kv create_seconds)" $((c1 - c0))
  record "$srv" stat "$rep" "$(kv stat_files_per_sec)" files/s "$(kv stat_seconds)" 0
  printf '           latency us: create p50 %s p99 %s max %s; stat p50 %s p99 %s max %s\n' \
    "$(kv create_p50_us)" "$(kv create_p99_us)" "$(kv create_max_us)" \
    "$(kv stat_p50_us)" "$(kv stat_p99_us)" "$(kv stat_max_us)" >&2
  printf '           create per call, mean/p50/p99 us: CREATE %s/%s/%s WRITE %s/%s/%s COMMIT %s/%s/%s\n' \
    "$(kv create_CREATE_mean_us)" "$(kv create_CREATE_p50_us)" "$(kv create_CREATE_p99_us)" \
    "$(kv create_WRITE_mean_us)" "$(kv create_WRITE_p50_us)" "$(kv create_WRITE_p99_us)" \
    "$(kv create_COMMIT_mean_us)" "$(kv create_COMMIT_p50_us)" "$(kv create_COMMIT_p99_us)" >&2
}

for rep in $(seq 1 "$REPS"); do
  # alternate which server goes first, so drift in the machine's load does not favour one
  if [ $((rep % 2)) = 1 ]; then order="cairn ganesha"; else order="ganesha cairn"; fi
  log "rep $rep/$REPS (order: $order; load $(cut -d' ' -f1-3 /proc/loadavg))"
  for srv in $order; do
    name=cairn-bench-$$-big_$rep.bin
    cat "$SRC" > /dev/null   # the source in the page cache before every write
    timed "$srv" seq_write "$rep" cp_quiet "$SRC" "$(url "$srv" "$name")"
    alive_check
    # a read of 1 GiB from the server's page cache takes ~0.3 s: READS samples per rep
    for k in $(seq 1 "$READS"); do
      timed "$srv" seq_read "$rep" cat_null "$(url "$srv" "$name")"
    done
    alive_check
    if [ "$rep" = 1 ]; then check_sha "$srv" "$name"; fi
    if [ "$srv" = ganesha ]; then rm -f "${G_EXPORT_DIR:?}/$name"; fi
  done
  for srv in $order; do
    small "$srv" "$rep"
    alive_check
    if [ "$srv" = ganesha ]; then rm -rf "${G_EXPORT_DIR:?}/cairn-bench-$$-small_$rep"; fi
  done
done
# the sha256 checks of rep 1 passed (a mismatch exits)

# ---------------------------------------------------------------- table
median() { # server workload
  awk -F, -v s="$1" -v w="$2" 'NR>1 && $1==s && $2==w {print $4}' "$RES" | sort -g | \
    awk '{a[NR]=$1} END{ if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else printf "%.1f\n", (a[NR/2]+a[NR/2+1])/2 }'
}
echo
echo "cairn vs nfs-ganesha, medians ($REPS reps, reads x$READS); $SIZE_MB MiB sequential via libnfs-utils; $COUNT x $FILE_SIZE B files over one nfs3_client connection"
echo "$(date -u +%FT%TZ) $(uname -r) $(nproc) cpus; load at end $(cut -d' ' -f1-3 /proc/loadavg); data on $(dev_of "$WORK")"
printf '%-46s %10s %10s %7s %7s\n' workload cairn ganesha ratio target
for row in "seq_write|sequential write (nfs-cp)|MiB/s|0.8" \
           "seq_read|sequential read (nfs-cat > /dev/null)|MiB/s|0.8" \
           "create|small files: create+write+commit|files/s|0.5" \
           "stat|small files: lookup+getattr|files/s|0.5"; do
  IFS='|' read -r wl label unit target <<<"$row"
  c=$(median cairn "$wl"); g=$(median ganesha "$wl")
  r=$(awk -v c="$c" -v g="$g" 'BEGIN{ if (g+0 > 0) printf "%.2f", c/g; else print "nan" }')
  ok=$(awk -v r="$r" -v t="$target" 'BEGIN{ print (r+0 >= t) ? "ok" : "BELOW" }')
  printf '%-46s %10s %10s %6sx %6sx %s\n' "$label [$unit]" "$c" "$g" "$r" "$target" "$ok"
done
echo
echo "per-rep results: $RES"
n_warn=$(grep -cE ' (WARN|ERROR) ' "$CAIRN_LOG" || true)
echo "cairn log: $CAIRN_LOG ($n_warn WARN/ERROR lines)"
if [ "$n_warn" != 0 ]; then grep -E ' (WARN|ERROR) ' "$CAIRN_LOG" | head -5; fi

#!/usr/bin/env bash
# Cold random 4 KiB reads: cairn (file drained to its stores and evicted from the ingest cache)
# against nfs-ganesha on the same disk, same client, same offsets, same run (issue 13).
#
#   bench/randread.sh                  build (release), start both, run, print a table
#
# cairn: `cairn up --stores 3` layout (default class, 2 replicas) started as in bench/drain.sh
# (bench/cluster.sh); a SIZE_MB MiB file from /dev/urandom is written with nfs-cp, drained
# (backlog_bytes 0), then before every rep `cairn cache drop` evicts it from the ingest cache and
# forgets the blocks held in memory: every read comes from the stores (verified, decrypted).
# ganesha: the same file in its export (bench/ganesha/, FSAL_VFS).
# Each rep: tests/examples/nfs_randread.rs over ONE connection, READS reads of SIZE bytes at
# random SIZE-aligned offsets (seed = the rep, so both servers see the same offsets).
# ratio = cairn reads/s / ganesha reads/s (target >= 0.3x). Both servers read through the same page
# cache (cairn's stores keep their shards in files on the same disk). By default the page cache is
# not dropped: ganesha's file and cairn's shards are both in it (both were written through it; a
# store fsyncs each put at commit), so a rep measures each server's read path. DROP=1 drops the
# kernel's page cache (sync; echo 3 > /proc/sys/vm/drop_caches, as root) before every rep of both
# servers: both read cold from the disk.
#
# Env: PROFILE (release | debug: which build to run), DROP (0 | 1), REPS (5), READS (2000), SIZE (4096), SIZE_MB (256), QUIET (500ms), POLL (0.1),
#      DRAIN_TIMEOUT (600), WORK (/tmp/cairn-randread-bench), GANESHA_BASE (/tmp/ganesha),
#      GANESHA_NFS_PORT (20490), GANESHA_MNT_PORT (20048), BENCH_GANESHA_DIR (bench/ganesha),
#      CARGO_TARGET_DIR (<repo>/target), NO_BUILD=1, KEEP=1, RUST_LOG (default "info").
# Processes: the stores and the gateway are started here and stopped by PID on exit (also on
# Ctrl-C); ganesha as in bench/nfs.sh (installed with apt-get if missing, started by setup.sh and stopped by teardown.sh, or used as
# is and left running if one already answers on GANESHA_NFS_PORT). Everything on 127.0.0.1.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
if [ -z "${BENCH_GANESHA_DIR:-}" ]; then
  if [ -x "$HERE/ganesha/setup.sh" ]; then BENCH_GANESHA_DIR=$HERE/ganesha
  else BENCH_GANESHA_DIR="$HERE/../../shared/bench/ganesha"; fi
fi
BENCH_GANESHA_DIR=$(cd "$BENCH_GANESHA_DIR" && pwd)
REPS=${REPS:-5}; READS=${READS:-2000}; SIZE=${SIZE:-4096}; SIZE_MB=${SIZE_MB:-256}
QUIET=${QUIET:-500ms}; POLL=${POLL:-0.1}; DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-600}
WORK=${WORK:-/tmp/cairn-randread-bench}
DATA=$WORK/data
LOGS=$WORK/logs
GANESHA_BASE=${GANESHA_BASE:-/tmp/ganesha}
G_NFS=${GANESHA_NFS_PORT:-20490}; G_MNT=${GANESHA_MNT_PORT:-20048}
export RUST_LOG=${RUST_LOG:-info}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
PROFILE=${PROFILE:-release}
CAIRN=$CARGO_TARGET_DIR/$PROFILE/cairn
RANDREAD=$CARGO_TARGET_DIR/$PROFILE/examples/nfs_randread
N_STORES=3
NAME=randread-$$.bin

GANESHA_STARTED=0
bench_cleanup() {
  if [ "${KEEP:-0}" != 1 ] && [ -n "${G_EXPORT_DIR:-}" ]; then rm -f "$G_EXPORT_DIR/$NAME"; fi
  if [ "$GANESHA_STARTED" = 1 ]; then
    BASE=$GANESHA_BASE "$BENCH_GANESHA_DIR/teardown.sh" >&2 || log "ganesha teardown reported a problem"
  fi
}
# shellcheck source=bench/cluster.sh
. "$HERE/cluster.sh"
if [ "$PROFILE" = release ]; then
  build_release -p cairn-gateway -p cairn-tests --bins --examples
elif [ "${NO_BUILD:-0}" != 1 ]; then
  (cd "$ROOT" && cargo build -p cairn-gateway -p cairn-tests --bins --examples) || die "cargo build failed"
fi
[ -x "$CAIRN" ] || die "$CAIRN not built"
[ -x "$RANDREAD" ] || die "$RANDREAD not built"
for b in nfs-cat nfs-ls sha256sum; do command -v $b >/dev/null || die "missing $b"; done

# ---------------------------------------------------------------- ganesha
tcp_up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if tcp_up "$G_NFS"; then
  log "a server already answers on 127.0.0.1:$G_NFS: using it as the ganesha baseline (left running)"
else
  log "starting ganesha (BASE=$GANESHA_BASE) with $BENCH_GANESHA_DIR/setup.sh"
  GANESHA_STARTED=1   # teardown.sh only stops what setup.sh recorded
  INSTALL_FLAG=0; command -v ganesha.nfsd >/dev/null || INSTALL_FLAG=1   # apt-get installs it
  INSTALL=$INSTALL_FLAG BASE=$GANESHA_BASE NFS_PORT=$G_NFS MNT_PORT=$G_MNT \
    "$BENCH_GANESHA_DIR/setup.sh" >&2 || die "ganesha setup failed"
fi
G_EXPORT_DIR=$GANESHA_BASE/export
[ -d "$G_EXPORT_DIR" ] || die "ganesha export dir $G_EXPORT_DIR not found"
G_Q="?nfsport=$G_NFS&mountport=$G_MNT"

# ---------------------------------------------------------------- the file on both
start_cluster
mkdir -p "$WORK/src"
SRC=$WORK/src/$NAME
log "making $SRC ($SIZE_MB MiB from /dev/urandom)"
head -c $((SIZE_MB * 1048576)) /dev/urandom > "$SRC"
nfs-cp "$SRC" "nfs://127.0.0.1//$NAME$Q" >/dev/null || die "nfs-cp to cairn failed"
nfs-cp "$SRC" "nfs://127.0.0.1//$NAME$G_Q" >/dev/null || die "nfs-cp to ganesha failed"
log "draining $SIZE_MB MiB to the stores"
wait_drained "$(now_ns)"
log "drained in $D_WALL s"
cairn_() { "$CAIRN" "$@" --data "$DATA"; }
cairn_ cache drop >&2
want=$(sha256sum < "$SRC" | cut -d' ' -f1)
got=$(nfs-cat "nfs://127.0.0.1//$NAME$Q" | sha256sum | cut -d' ' -f1)
[ "$got" = "$want" ] || die "cairn read the file back with sha256 $got, expected $want"

# ---------------------------------------------------------------- runs
RES=$WORK/results.csv
echo "server,rep,reads,median_us,p99_us,per_sec" > "$RES"
drop_page_cache() {
  if [ "${DROP:-0}" = 1 ]; then
    sync && echo 3 > /proc/sys/vm/drop_caches || die "DROP=1 needs root (writing /proc/sys/vm/drop_caches)"
  fi
}
run() { # server rep: one JSON line
  local out
  drop_page_cache
  case $1 in
    cairn) cairn_ cache drop >/dev/null
           out=$("$RANDREAD" --server "127.0.0.1:$C_PORT" --path "/$NAME" --reads "$READS" \
                 --size "$SIZE" --seed "$2") ;;
    ganesha) out=$("$RANDREAD" --server "127.0.0.1:$G_NFS" --mount-port "$G_MNT" --path "/$NAME" \
                   --reads "$READS" --size "$SIZE" --seed "$2") ;;
  esac || { alive_check; die "$1 rep $2 failed"; }
  echo "$out" | python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
print(",".join([sys.argv[1], sys.argv[2]] + [str(r[k]) for k in ("reads", "median_us", "p99_us", "per_sec")]))' "$1" "$2" >> "$RES"
  log "$1 rep $2: $out"
}
for rep in $(seq 1 "$REPS"); do
  if [ $((rep % 2)) = 1 ]; then run cairn "$rep"; run ganesha "$rep"
  else run ganesha "$rep"; run cairn "$rep"; fi
done
alive_check

python3 - "$RES" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
med = lambda srv, k: statistics.median(float(r[k]) for r in rows if r["server"] == srv)
import os
mode = "page cache dropped before each rep" if os.environ.get("DROP") == "1" else "page cache kept"
print("%-34s %12s %12s %8s   (%s)" % ("cold random reads (medians)", "cairn", "ganesha", "ratio", mode))
for k, label in (("per_sec", "reads/s"), ("median_us", "median latency (us)"), ("p99_us", "p99 latency (us)")):
    c, g = med("cairn", k), med("ganesha", k)
    print("%-34s %12.1f %12.1f %7.2fx" % (label, c, g, c / g if k == "per_sec" else g / c))
EOF

#!/usr/bin/env bash
# Erasure coding against replicas, same bytes, same cluster, same run (issue 4, "Benchmark").
#
#   bench/ec.sh                        build (release), start a 5-store cluster, run, print a table
#
# Classes: r2 (2 replicas, spread host) on /r2 and ec41 (4+1 shards, spread host) on /ec; five local
# stores a..e, each its own host. Workloads, REPS times, alternating which class goes first, medians:
#   drain       nfs-cp of a SIZE_MB MiB file from /dev/urandom into the class's folder, then the
#               time until `cairn status --json` shows backlog_bytes = 0, counted from the end of
#               nfs-cp; throughput = SIZE_MB / (that time - the quiet period QUIET).
#   read        `cairn cache drop` (the ingest cache and the in-memory blocks), then nfs-cat of the
#               ec41 file to /dev/null: every byte comes from the stores, verified and decrypted.
#               healthy: all five stores up; degraded: store a killed with SIGKILL first (it holds
#               one shard of every chunk, so a fifth of all reads are rebuilt from the other four);
#               a is restarted afterwards. The r2 file is read healthy too, for reference.
# ratios: ec41 drain / r2 drain, degraded read / healthy read. Stored bytes per class come from
# `cairn status --json` (stored_bytes / logical_bytes).
#
# Env: REPS (3), SIZE_MB (1024), QUIET (500ms), POLL (0.1), DRAIN_TIMEOUT (600),
#      WORK (/tmp/cairn-ec-bench), CARGO_TARGET_DIR (<repo>/target), NO_BUILD=1, KEEP=1,
#      RUST_LOG (default "info").
# Processes: as bench/drain.sh (bench/cluster.sh): `cairn up --stores 5` lays out WORK/data and is
# stopped, the stores and the gateway run as separate processes, all stopped by PID on exit.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
REPS=${REPS:-3}; SIZE_MB=${SIZE_MB:-1024}
QUIET=${QUIET:-500ms}; POLL=${POLL:-0.1}; DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-600}
WORK=${WORK:-/tmp/cairn-ec-bench}
DATA=$WORK/data
LOGS=$WORK/logs
export RUST_LOG=${RUST_LOG:-info}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
CAIRN=$CARGO_TARGET_DIR/release/cairn
SMALL=$CARGO_TARGET_DIR/release/examples/nfs_smallfiles
N_STORES=5
# shellcheck source=bench/cluster.sh
. "$HERE/cluster.sh"
build_release -p cairn-gateway -p cairn-tests --bins --examples
[ -x "$SMALL" ] || die "$SMALL not built"
command -v nfs-cat >/dev/null || die "missing nfs-cat"
start_cluster

cairn_() { "$CAIRN" "$@" --data "$DATA"; }
cairn_ class create r2 --replicas 2 --spread host >&2
cairn_ class create ec41 --ec 4+1 --spread host >&2
for d in r2 ec; do # nfs-cp cannot make folders: the small-files client makes each with one file in it
  "$SMALL" --host 127.0.0.1 --nfs-port "$C_PORT" --mount-port "$C_PORT" --export / \
    --count 1 --size 1 --dir "$d" >/dev/null || die "cannot make /$d"
done
cairn_ class set /r2 r2 >&2
cairn_ class set /ec ec41 >&2
dir_url() { echo "nfs://127.0.0.1/$1/$2$Q"; }   # the folder is the mount path, the file is in it

RES=$WORK/results.csv
echo "workload,rep,metric,value,unit" > "$RES"
rec() { echo "$1,$2,$3,$4,$5" >> "$RES"; }
mibs() { awk -v s="$1" -v m="$SIZE_MB" 'BEGIN{ if (s > 0) printf "%.1f", m/s; else print "nan" }'; }

BIG=$((SIZE_MB * 1048576))
SRC=$WORK/src/random_${SIZE_MB}M.bin
log "making $SRC ($SIZE_MB MiB from /dev/urandom)"
head -c "$BIG" /dev/urandom > "$SRC"
SUM=$(sha256sum "$SRC" | cut -d' ' -f1)

run_drain() { # class dir rep
  local class=$1 dir=$2 rep=$3 t0 t1 net g0 s0
  cat "$SRC" > /dev/null
  t0=$(now_ns)
  nfs-cp "$SRC" "$(dir_url "$dir" "bench-$rep.bin")" > /dev/null || { alive_check; die "nfs-cp into /$dir failed"; }
  t1=$(now_ns)
  g0=$(ticks "$GW_PID"); s0=$(store_ticks)
  wait_drained "$t1"
  alive_check
  net=$(awk -v w="$D_WALL" -v q="$QUIET_S" 'BEGIN{printf "%.3f", w-q}')
  rec "drain-$class" "$rep" throughput "$(mibs "$net")" MiB/s
  printf '  drain %-5s rep %d: upload %6s s; drained %6s s after it = %7s MiB/s net of quiet; cpu gateway %s s, stores %s s\n' \
    "$class" "$rep" "$(secs "$t0" "$t1")" "$D_WALL" "$(mibs "$net")" \
    "$(cpu_s $(( $(ticks "$GW_PID") - g0 )))" "$(cpu_s $(( $(store_ticks) - s0 )))" >&2
}
run_read() { # label dir file rep
  local label=$1 dir=$2 file=$3 rep=$4 t0 t1 s sum
  cairn_ cache drop >/dev/null
  t0=$(now_ns)
  sum=$(nfs-cat "$(dir_url "$dir" "$file")" | sha256sum | cut -d' ' -f1) || { alive_check; die "nfs-cat /$dir/$file failed"; }
  t1=$(now_ns)
  [ "$sum" = "$SUM" ] || die "/$dir/$file read back with sha256 $sum, wrote $SUM ($label)"
  s=$(secs "$t0" "$t1")
  rec "read-$label" "$rep" throughput "$(mibs "$s")" MiB/s
  printf '  read  %-12s rep %d: %6s s = %7s MiB/s (sha256 equal)\n' "$label" "$rep" "$s" "$(mibs "$s")" >&2
}

for rep in $(seq 1 "$REPS"); do
  log "drain rep $rep/$REPS (load $(cut -d' ' -f1-3 /proc/loadavg))"
  if [ $((rep % 2)) = 1 ]; then run_drain r2 r2 "$rep"; run_drain ec41 ec "$rep"
  else run_drain ec41 ec "$rep"; run_drain r2 r2 "$rep"; fi
done
for rep in $(seq 1 "$REPS"); do
  log "read rep $rep/$REPS (load $(cut -d' ' -f1-3 /proc/loadavg))"
  run_read ec-healthy ec bench-1.bin "$rep"
  run_read r2-healthy r2 bench-1.bin "$rep"
  kill9_store a
  wait_online a false
  run_read ec-degraded ec bench-1.bin "$rep"
  start_store a
  wait_online a true
done

# ---------------------------------------------------------------- table
median() { # workload metric
  awk -F, -v w="$1" -v m="$2" 'NR>1 && $1==w && $3==m {print $4}' "$RES" | sort -g | \
    awk '{a[NR]=$1} END{ if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b+0 > 0) printf "%.2f", a/b; else print "nan" }'; }
class_bytes() { # class -> "logical stored ratio"
  status_json | python3 -c '
import json, sys
c = [x for x in json.load(sys.stdin)["classes"] if x["name"] == sys.argv[1]][0]
print(c["logical_bytes"], c["stored_bytes"], c["stored_ratio"])' "$1"
}
dr=$(median drain-r2 throughput); de=$(median drain-ec41 throughput)
rh=$(median read-ec-healthy throughput); rd=$(median read-ec-degraded throughput); rr=$(median read-r2-healthy throughput)
read -r r2_log r2_st r2_ratio <<<"$(class_bytes r2)"
read -r ec_log ec_st ec_ratio <<<"$(class_bytes ec41)"
echo
echo "cairn erasure coding vs replicas, medians of $REPS reps; 5 local stores on 5 hosts; drain quiet $QUIET"
echo "$(date -u +%FT%TZ) $(uname -r) $(nproc) cpus; load at end $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-50s %10s %10s %7s\n' "$SIZE_MB MiB from /dev/urandom [MiB/s]" "ec 4+1" "replica 2" ratio
printf '%-50s %10s %10s %6sx\n' "drain (wall - quiet)" "$de" "$dr" "$(ratio "$de" "$dr")"
printf '%-50s %10s %10s\n' "read, cache dropped, all stores up" "$rh" "$rr"
printf '%-50s %10s %10s %7s\n' "" healthy degraded ratio
printf '%-50s %10s %10s %6sx\n' "ec 4+1 read, cache dropped (degraded: a killed)" "$rh" "$rd" "$(ratio "$rd" "$rh")"
echo
printf '%-50s %10s %10s\n' "stored bytes / logical bytes (cairn status)" "${ec_ratio}x" "${r2_ratio}x"
printf '%-50s %10s %10s\n' "  stored bytes" "$ec_st" "$r2_st"
echo "per-rep results: $RES"
n_warn=$(grep -cE ' (WARN|ERROR) ' "$GW_LOG" || true)
echo "gateway log: $GW_LOG ($n_warn WARN/ERROR lines: the store killed for the degraded reads is expected)"

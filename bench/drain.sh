#!/usr/bin/env bash
# The drain against `cp`, same bytes, same folders, same run (issue 3, "Benchmark").
#
#   bench/drain.sh                     build (release), start a 3-store cluster, run, print a table
#
# Workloads, REPS times, interleaved (odd reps: cp first; even reps: cairn first), medians reported:
#   drain       nfs-cp of a SIZE_MB MiB file from /dev/urandom (made once per run) into cairn, then
#               the time until `cairn status --json` shows backlog_bytes = 0, counted from the
#               moment nfs-cp returned. The drain encrypts, checksums and writes every byte to the
#               2 replicas of the default class, each shard fsync'd, on three local chunk stores.
#               Throughput = SIZE_MB / (that wall time - the quiet period QUIET); the wall time
#               itself is printed too.
#   cp          `cp` of the same file into two of the stores' data folders (a and b, the folders
#               the shards go to), the two copies concurrently as the drain's two puts are, then
#               `sync` of both files (the drain fsyncs), all timed together.
#   small       SMALL_REPS times: COUNT files of FILE_SIZE bytes over one NFS connection
#               (tests/examples/nfs_smallfiles.rs: CREATE + UNSTABLE WRITE + COMMIT each, then a
#               LOOKUP + GETATTR pass), then the time until backlog_bytes = 0, counted from the end
#               of the create phase (the stat pass only reads; files go quiet and drain while later
#               ones are still being created, so the backlog is polled in the background from before
#               the upload, trace in WORK/logs/small-REP.backlog), and the remote objects it made
#               (new shard files in the stores' folders; also the new chunks, as the gateway lists them).
# ratio = drain / cp throughput. Target (issue 3): >= 0.5x.
#
# Env: REPS (3), SMALL_REPS (3), SIZE_MB (1024), COUNT (10000), FILE_SIZE (4096),
#      QUIET (500ms: the gateway's [drain] quiet for this run; cairn's default is 3s),
#      POLL (0.1: seconds between status polls), DRAIN_TIMEOUT (600 s per drain),
#      WORK (/tmp/cairn-drain-bench: the cluster's data, the source file, logs, results),
#      CARGO_TARGET_DIR (<repo>/target), NO_BUILD=1 (use the binaries already built),
#      KEEP=1 (keep WORK's data and source afterwards; logs and results are always kept),
#      RUST_LOG (default "info,cairn_gateway::drain=debug": one line per stored chunk).
# Processes: `cairn up --stores 3` runs once to lay out WORK/data (gateway config, secret, the
# stores' configs and markers) and is stopped; then the three `cairn chunkstore` processes and
# `cairn gateway` (its config edited: [drain] quiet = QUIET) are started here, and all are stopped
# by PID on exit (SIGTERM, SIGKILL after 30 s), also on Ctrl-C. Everything listens on 127.0.0.1.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
REPS=${REPS:-3}; SMALL_REPS=${SMALL_REPS:-3}; SIZE_MB=${SIZE_MB:-1024}
COUNT=${COUNT:-10000}; FILE_SIZE=${FILE_SIZE:-4096}
QUIET=${QUIET:-500ms}; POLL=${POLL:-0.1}; DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-600}
WORK=${WORK:-/tmp/cairn-drain-bench}
DATA=$WORK/data
LOGS=$WORK/logs
export RUST_LOG=${RUST_LOG:-info,cairn_gateway::drain=debug}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
CAIRN=$CARGO_TARGET_DIR/release/cairn
SMALL=$CARGO_TARGET_DIR/release/examples/nfs_smallfiles
N_STORES=3
# shellcheck source=bench/cluster.sh
. "$HERE/cluster.sh"
POLLER_PID=""
stop_poller() { local p=$POLLER_PID; POLLER_PID=""; [ -n "$p" ] || return 0; kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; }
bench_cleanup() { stop_poller; }
build_release -p cairn-gateway -p cairn-tests --bins --examples
[ -x "$SMALL" ] || die "$SMALL not built"
start_cluster
shard_files() { find "$DATA"/stores/*/data/shards -type f ! -name '.*' 2>/dev/null | wc -l; }
chunk_count() { "$CAIRN" store chunks --data "$DATA" --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["chunks"]))'; }
chunk_copies() { # "chunks copies min max" over all chunks, as the gateway lists them
  "$CAIRN" store chunks --data "$DATA" --json | python3 -c '
import json, sys
c = json.load(sys.stdin)["chunks"]; n = [len(x["stores"]) for x in c]
print(len(c), sum(n), min(n, default=0), max(n, default=0))'
}

RES=$WORK/results.csv
echo "workload,rep,metric,value,unit" > "$RES"
rec() { echo "$1,$2,$3,$4,$5" >> "$RES"; }

# ---------------------------------------------------------------- source file
BIG=$((SIZE_MB * 1048576))
SRC=$WORK/src/random_${SIZE_MB}M.bin
log "making $SRC ($SIZE_MB MiB from /dev/urandom)"
head -c "$BIG" /dev/urandom > "$SRC"

# ---------------------------------------------------------------- runs
run_cp() { # rep
  local rep=$1 a=$DATA/stores/a/data/cp-baseline-$1.bin b=$DATA/stores/b/data/cp-baseline-$1.bin t0 t1 s
  cat "$SRC" > /dev/null   # the source in the page cache, as for nfs-cp
  sync "$DATA/stores/a/data" "$DATA/stores/b/data"
  t0=$(now_ns)
  cp "$SRC" "$a" & local p1=$!
  cp "$SRC" "$b" & local p2=$!
  wait "$p1" && wait "$p2" || die "cp failed"
  sync "$a" "$b"
  t1=$(now_ns)
  s=$(secs "$t0" "$t1")
  rm -f "$a" "$b"
  rec cp "$rep" seconds "$s" s
  rec cp "$rep" throughput "$(awk -v s="$s" -v m="$SIZE_MB" 'BEGIN{printf "%.1f", m/s}')" MiB/s
  printf '  cp    rep %d: %s MiB x 2 + sync in %6s s = %7s MiB/s\n' "$rep" "$SIZE_MB" "$s" \
    "$(awk -v s="$s" -v m="$SIZE_MB" 'BEGIN{printf "%.1f", m/s}')" >&2
}
run_drain() { # rep
  local rep=$1 name=drain-bench-$1.bin t0 t1 up g0 s0 obj0 obj1 net mibs
  cat "$SRC" > /dev/null
  obj0=$(shard_files)
  t0=$(now_ns)
  nfs-cp "$SRC" "$(url "$name")" > /dev/null || { alive_check; die "nfs-cp rep $rep failed"; }
  t1=$(now_ns)
  up=$(secs "$t0" "$t1")
  g0=$(ticks "$GW_PID"); s0=$(store_ticks)
  wait_drained "$t1"
  alive_check
  obj1=$(shard_files)
  net=$(awk -v w="$D_WALL" -v q="$QUIET_S" 'BEGIN{printf "%.3f", w-q}')
  mibs=$(awk -v s="$net" -v m="$SIZE_MB" 'BEGIN{ if (s > 0) printf "%.1f", m/s; else print "nan" }')
  rec drain "$rep" upload_seconds "$up" s
  rec drain "$rep" wall_seconds "$D_WALL" s
  rec drain "$rep" net_seconds "$net" s
  rec drain "$rep" first_chunk_seconds "$D_FIRST" s
  rec drain "$rep" throughput "$mibs" MiB/s
  rec drain "$rep" objects "$((obj1 - obj0))" files
  printf '  drain rep %d: upload %6s s (%s MiB/s); backlog %s B; drained %6s s after it (first chunk at %s s) = %7s MiB/s net of quiet; %d new shard files; cpu gateway %s s, stores %s s\n' \
    "$rep" "$up" "$(awk -v s="$up" -v m="$SIZE_MB" 'BEGIN{printf "%.1f", m/s}')" "$D_START" "$D_WALL" "$D_FIRST" \
    "$mibs" "$((obj1 - obj0))" "$(cpu_s $(( $(ticks "$GW_PID") - g0 )))" "$(cpu_s $(( $(store_ticks) - s0 )))" >&2
}
run_small() { # rep
  # The files go quiet while later ones are still being created, so the drain runs during the
  # upload: a background poller records (time, backlog_bytes) from before the upload on, and the
  # drain ends at the first zero after the last create.
  local rep=$1 out t1 tc obj0 obj1 ch0 ch1 cs ss trace=$LOGS/small-$1.backlog line t b at_end="" peak=0 deadline
  obj0=$(shard_files); ch0=$(chunk_count)
  ( while :; do b=$(backlog); echo "$(now_ns) ${b:-x}"; sleep "$POLL"; done ) > "$trace" 2>/dev/null &
  POLLER_PID=$!
  out=$("$SMALL" --host 127.0.0.1 --nfs-port "$C_PORT" --mount-port "$C_PORT" --export / \
        --count "$COUNT" --size "$FILE_SIZE" --dir "drain-bench-small-$rep" 2>&1) \
    || { echo "$out" >&2; alive_check; die "small files rep $rep failed"; }
  t1=$(now_ns)
  echo "## rep $rep" >> "$LOGS/smallfiles.out"; echo "$out" >> "$LOGS/smallfiles.out"
  cs=$(echo "$out" | sed -n 's/^create_seconds=//p'); ss=$(echo "$out" | sed -n 's/^stat_seconds=//p')
  # the end of the create phase: the stat pass that follows it only reads
  tc=$(( t1 - $(awk -v s="$ss" 'BEGIN{printf "%.0f", s*1e9}') ))
  deadline=$(( tc + DRAIN_TIMEOUT * 1000000000 ))
  D_WALL=""
  while [ -z "$D_WALL" ]; do
    while read -r t b; do
      [ "$b" != x ] || continue
      if [ "$t" -lt "$tc" ]; then at_end=$b; [ "$b" -gt "$peak" ] && peak=$b; continue; fi
      [ -n "$at_end" ] || at_end=$b
      if [ "$b" = 0 ]; then D_WALL=$(secs "$tc" "$t"); break; fi
    done < "$trace"
    if [ -z "$D_WALL" ]; then
      alive_check
      [ "$(now_ns)" -lt "$deadline" ] || { stop_poller; die "small files rep $rep: backlog not 0 ${DRAIN_TIMEOUT} s after the creates"; }
      at_end=""; peak=0; sleep "$POLL"
    fi
  done
  stop_poller
  alive_check
  obj1=$(shard_files); ch1=$(chunk_count)
  local net; net=$(awk -v w="$D_WALL" -v q="$QUIET_S" 'BEGIN{printf "%.3f", w-q}')
  rec small "$rep" upload_seconds "$cs" s
  rec small "$rep" wall_seconds "$D_WALL" s
  rec small "$rep" net_seconds "$net" s
  rec small "$rep" backlog_at_end "${at_end:-0}" B
  rec small "$rep" objects "$((obj1 - obj0))" files
  rec small "$rep" chunks "$((ch1 - ch0))" chunks
  printf '  small rep %d: %s x %s B created in %s s (stat pass %s s); backlog during the creates peaked at %s B, %s B at their end; 0 B %s s after their end; %d new shard files, %d new chunks\n' \
    "$rep" "$COUNT" "$FILE_SIZE" "$cs" "$ss" "$peak" "${at_end:-0}" "$D_WALL" "$((obj1 - obj0))" "$((ch1 - ch0))" >&2
}

for rep in $(seq 1 "$REPS"); do
  log "rep $rep/$REPS (load $(cut -d' ' -f1-3 /proc/loadavg))"
  if [ $((rep % 2)) = 1 ]; then run_cp "$rep"; run_drain "$rep"; else run_drain "$rep"; run_cp "$rep"; fi
done
for rep in $(seq 1 "$SMALL_REPS"); do
  log "small files rep $rep/$SMALL_REPS (load $(cut -d' ' -f1-3 /proc/loadavg))"
  run_small "$rep"
done
read -r N_CHUNKS N_COPIES MIN_COPIES MAX_COPIES <<<"$(chunk_copies)"

# ---------------------------------------------------------------- table
median() { # workload metric
  awk -F, -v w="$1" -v m="$2" 'NR>1 && $1==w && $3==m {print $4}' "$RES" | sort -g | \
    awk '{a[NR]=$1} END{ if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2 }'
}
dev_of() { df -P "$1" | awk 'NR==2 {print $1}'; }
d=$(median drain throughput); c=$(median cp throughput)
r=$(awk -v d="$d" -v c="$c" 'BEGIN{ if (c+0 > 0) printf "%.2f", d/c; else print "nan" }')
ok=$(awk -v r="$r" 'BEGIN{ print (r+0 >= 0.5) ? "ok" : "BELOW" }')
echo
echo "cairn drain vs cp, medians ($REPS reps; small files $SMALL_REPS); 3 local stores, default class (2 replicas); drain quiet $QUIET"
echo "$(date -u +%FT%TZ) $(uname -r) $(nproc) cpus; load at end $(cut -d' ' -f1-3 /proc/loadavg); data on $(dev_of "$WORK")"
printf '%-54s %10s %10s %7s %7s\n' "$SIZE_MB MiB from /dev/urandom" drain cp ratio target
printf '%-54s %10s %10s %6sx %6sx %s\n' "throughput [MiB/s] (drain: wall - quiet; cp: 2 copies+sync)" "$d" "$c" "$r" 0.5 "$ok"
printf '%-54s %10s %10s\n' "time [s] (drain: wall from the end of nfs-cp)" "$(median drain wall_seconds)" "$(median cp seconds)"
printf '%-54s %10s\n' "  drain: first chunk committed after [s]" "$(median drain first_chunk_seconds)"
printf '%-54s %10s\n' "  nfs-cp upload before it [s]" "$(median drain upload_seconds)"
printf '%-54s %10s\n' "  remote objects (new shard files)" "$(median drain objects)"
echo
printf '%-54s %10s\n' "$COUNT x $FILE_SIZE B files (one NFS connection)" ""
printf '%-54s %10s\n' "upload: create+write+commit [s]" "$(median small upload_seconds)"
printf '%-54s %10s\n' "drain: wall from the end of the creates [s]" "$(median small wall_seconds)"
printf '%-54s %10s\n' "drain: wall - quiet [s]" "$(median small net_seconds)"
printf '%-54s %10s\n' "  backlog left at the end of the creates [B]" "$(median small backlog_at_end)"
printf '%-54s %10s\n' "remote objects (new shard files)" "$(median small objects)"
printf '%-54s %10s\n' "chunks (as the gateway lists them)" "$(median small chunks)"
echo
echo "all chunks: $N_CHUNKS, copies per chunk $MIN_COPIES..$MAX_COPIES ($N_COPIES in all; shard files on disk: $(shard_files))"
echo "per-rep results: $RES"
n_warn=$(grep -cE ' (WARN|ERROR) ' "$GW_LOG" || true)
echo "gateway log: $GW_LOG ($n_warn WARN/ERROR lines)"
if [ "$n_warn" != 0 ]; then grep -E ' (WARN|ERROR) ' "$GW_LOG" | head -5; fi
for n in $STORES; do
  n_warn=$(grep -cE ' (WARN|ERROR) ' "$LOGS/store-$n.log" || true)
  if [ "$n_warn" != 0 ]; then echo "store $n log: $LOGS/store-$n.log ($n_warn WARN/ERROR lines)"; grep -E ' (WARN|ERROR) ' "$LOGS/store-$n.log" | head -3; fi
done

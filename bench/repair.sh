#!/usr/bin/env bash
# Repair after losing a store, against `cp` of the same bytes, same run (issue 5, "Benchmark").
#
#   bench/repair.sh                    build (release), start a 4-store cluster, run, print a table
#
# Four local stores a..d, one host each, the default class (2 replicas, spread host); [repair]
# grace GRACE, no bandwidth limit. One run:
#   1. nfs-cp a SIZE_MB MiB file (from /dev/urandom) in; wait until it drained.
#   2. read, healthy: `cairn cache drop`, nfs-cat of the file to sha256sum.
#   3. kill -9 the store holding the most bytes (BYTES: its shard files); wait the grace period out
#      (the gateway's status shows the store offline), then at once `cairn cache drop` and nfs-cat
#      the file again, in the background, while the repair runs: read during a repair.
#   4. repair time, meanwhile: from the store showing offline until every chunk is healthy again
#      (polled in `cairn status --json`); repair throughput = BYTES / that time.
#   5. cp: `cp -r` of the dead store's shard folder to a scratch folder on the same disk, then
#      `sync` (the repair fsyncs every copy): the same bytes copied store-to-store.
# ratios: repair / cp throughput; read during repair / healthy read. The table says how much of
# the read overlapped the repair.
#
# Env: SIZE_MB (1024), GRACE (2s), QUIET (500ms), POLL (0.1), DRAIN_TIMEOUT (600),
#      WORK (/tmp/cairn-repair-bench), CARGO_TARGET_DIR (<repo>/target), NO_BUILD=1, KEEP=1,
#      RUST_LOG (default "info").
# Processes: as bench/drain.sh (bench/cluster.sh), stopped by PID on exit.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SIZE_MB=${SIZE_MB:-1024}; GRACE=${GRACE:-2s}
QUIET=${QUIET:-500ms}; POLL=${POLL:-0.1}; DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-600}
WORK=${WORK:-/tmp/cairn-repair-bench}
DATA=$WORK/data
LOGS=$WORK/logs
export RUST_LOG=${RUST_LOG:-info}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
CAIRN=$CARGO_TARGET_DIR/release/cairn
N_STORES=4
# [repair] in start_cluster's gateway config: short grace, unlimited, audits often.
GATEWAY_SET="repair.grace=$GRACE repair.bandwidth=0 repair.audit_every=5s"
# shellcheck source=bench/cluster.sh
. "$HERE/cluster.sh"
build_release -p cairn-gateway --bins
command -v nfs-cat >/dev/null || die "missing nfs-cat"
start_cluster

mibs() { awk -v s="$1" -v b="$2" 'BEGIN{ if (s > 0) printf "%.1f", b/1048576/s; else print "nan" }'; }
health() { # "healthy worse" over all classes
  status_json | python3 -c '
import json, sys
v = json.load(sys.stdin); h = w = 0
for c in v["classes"]:
    k = c["chunks"]; h += k["healthy"]; w += k["undergoal"] + k["endangered"] + k["missing"] + k["at_risk"]
print(h, w)'
}
store_state() { status_json | python3 -c '
import json, sys
print([s["state"] for s in json.load(sys.stdin)["stores"] if s["name"] == sys.argv[1]][0])' "$1"; }

BIG=$((SIZE_MB * 1048576))
SRC=$WORK/src/random_${SIZE_MB}M.bin
log "making $SRC ($SIZE_MB MiB from /dev/urandom)"
head -c "$BIG" /dev/urandom > "$SRC"
SUM=$(sha256sum "$SRC" | cut -d' ' -f1)

nfs-cp "$SRC" "$(url big.bin)" >/dev/null || die "nfs-cp failed"
wait_drained "$(now_ns)"
log "drained $SIZE_MB MiB"

timed_read() { # label -> sets R_SECS
  local t0 t1 sum
  "$CAIRN" cache drop --data "$DATA" >/dev/null
  t0=$(now_ns)
  sum=$(nfs-cat "$(url big.bin)" | sha256sum | cut -d' ' -f1) || { alive_check; die "nfs-cat failed ($1)"; }
  t1=$(now_ns)
  [ "$sum" = "$SUM" ] || die "read back with sha256 $sum, wrote $SUM ($1)"
  R_SECS=$(secs "$t0" "$t1"); R_END=$t1
  log "read $1: $R_SECS s = $(mibs "$R_SECS" "$BIG") MiB/s (sha256 equal)"
}
timed_read healthy; R_HEALTHY=$R_SECS

# the store with the most bytes
VICTIM=""; BYTES=0
for n in $STORES; do
  b=$(find "$DATA/stores/$n/data/shards" -type f ! -name '.*' -printf '%s\n' | awk '{s+=$1} END{print s+0}')
  if [ "$b" -gt "$BYTES" ]; then BYTES=$b; VICTIM=$n; fi
done
log "store $VICTIM holds $BYTES bytes in shard files"
kill9_store "$VICTIM"
for i in $(seq 1 600); do [ "$(store_state "$VICTIM")" = offline ] && break; sleep "$POLL"; done
[ "$(store_state "$VICTIM")" = offline ] || die "$VICTIM never turned offline"
T_OFF=$(now_ns)
log "$VICTIM offline (grace $GRACE over): repair starts; reading during it"
# the read in the background, the repair polled meanwhile
( timed_read during-repair; echo "$R_SECS" > "$WORK/read-during-repair" ) &
READER=$!
while :; do
  read -r h w <<<"$(health)"
  [ "$w" = 0 ] && [ "$h" -gt 0 ] && break
  [ $(( $(now_ns) - T_OFF )) -lt $(( DRAIN_TIMEOUT * 1000000000 )) ] || die "not healthy ${DRAIN_TIMEOUT} s after the loss"
  sleep "$POLL"
done
T_OK=$(now_ns)
REPAIR_SECS=$(secs "$T_OFF" "$T_OK")
wait "$READER" || die "the read during the repair failed"
R_REPAIR=$(cat "$WORK/read-during-repair")
OVERLAP=$(awk -v a="$REPAIR_SECS" -v r="$R_REPAIR" 'BEGIN{ o = (a < r) ? a : r; printf "%.0f", 100*o/r }')
log "every chunk healthy again $REPAIR_SECS s after $VICTIM went offline"

CP_DST=$WORK/cp-baseline
rm -rf "$CP_DST"; sync
t0=$(now_ns)
cp -r "$DATA/stores/$VICTIM/data/shards" "$CP_DST"
sync
t1=$(now_ns)
CP_SECS=$(secs "$t0" "$t1")
rm -rf "$CP_DST"
alive_check

rep=$(mibs "$REPAIR_SECS" "$BYTES"); cpm=$(mibs "$CP_SECS" "$BYTES")
rh=$(mibs "$R_HEALTHY" "$BIG"); rr=$(mibs "$R_REPAIR" "$BIG")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b+0 > 0) printf "%.2f", a/b; else print "nan" }'; }
echo
echo "cairn repair after losing a store vs cp; 4 local stores on 4 hosts, 2 replicas; grace $GRACE"
echo "$(date -u +%FT%TZ) $(uname -r) $(nproc) cpus; load at end $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-52s %10s %10s %7s\n' "restore redundancy: $BYTES B from store $VICTIM" repair cp ratio
printf '%-52s %10s %10s\n' "time [s] (repair: from offline to all healthy)" "$REPAIR_SECS" "$CP_SECS"
printf '%-52s %10s %10s %6sx\n' "throughput [MiB/s]" "$rep" "$cpm" "$(ratio "$rep" "$cpm")"
printf '%-52s %10s %10s %7s\n' "read $SIZE_MB MiB, cache dropped [MiB/s]" healthy "in repair" ratio
printf '%-52s %10s %10s %6sx\n' "nfs-cat (overlap with the repair: ${OVERLAP}% of the read)" "$rh" "$rr" "$(ratio "$rr" "$rh")"
n_warn=$(grep -cE ' (WARN|ERROR) ' "$GW_LOG" || true)
echo "gateway log: $GW_LOG ($n_warn WARN/ERROR lines; the killed store's are expected)"

#!/usr/bin/env bash
# Metadata shipping: its cost on small-file creates, and the time to restore a big namespace
# (issue 7, "Benchmark").
#
#   bench/backup.sh                    build (release), start a 3-store cluster, run, print a table
#
# 1. COUNT files of FILE_SIZE bytes over one NFS connection (tests/examples/nfs_smallfiles.rs:
#    CREATE + UNSTABLE WRITE + COMMIT each), REPS times with [backup] on (ship_every 5s, the
#    default) and REPS times off (enabled = false: no change recording at all), alternating,
#    the gateway restarted between (with backup on, after the snapshot each start ships, so the
#    steady shipping of changes is what is measured); medians. ratio = on / off files per
#    second. Target >= 0.9.
# 2. RESTORE_COUNT empty files (in folders of 10,000); wait until `cairn status` shows them
#    shipped; stop the gateway; time `cairn restore --stores … --secret-file … --data NEW`.
#
# Env: REPS (3), COUNT (10000), FILE_SIZE (4096), RESTORE_COUNT (100000), QUIET (500ms), POLL (0.1),
#      DRAIN_TIMEOUT (600), WORK (/tmp/cairn-backup-bench), CARGO_TARGET_DIR, NO_BUILD=1, KEEP=1.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
REPS=${REPS:-3}; COUNT=${COUNT:-10000}; FILE_SIZE=${FILE_SIZE:-4096}; RESTORE_COUNT=${RESTORE_COUNT:-100000}
QUIET=${QUIET:-500ms}; POLL=${POLL:-0.1}; DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-600}
WORK=${WORK:-/tmp/cairn-backup-bench}
DATA=$WORK/data
LOGS=$WORK/logs
export RUST_LOG=${RUST_LOG:-info}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
CAIRN=$CARGO_TARGET_DIR/release/cairn
SMALL=$CARGO_TARGET_DIR/release/examples/nfs_smallfiles
N_STORES=3
# shellcheck source=bench/cluster.sh
. "$HERE/cluster.sh"
bench_cleanup() { rm -rf "$WORK/restored"; }
build_release -p cairn-gateway -p cairn-tests --bins --examples
[ -x "$SMALL" ] || die "$SMALL not built"
start_cluster

RES=$WORK/results.csv
echo "workload,rep,metric,value,unit" > "$RES"
rec() { echo "$1,$2,$3,$4,$5" >> "$RES"; }
small() { # dir count size -> prints files per second of the create phase
  local out cs
  out=$("$SMALL" --host 127.0.0.1 --nfs-port "$C_PORT" --mount-port "$C_PORT" --export / \
        --count "$2" --size "$3" --dir "$1" 2>&1) || { echo "$out" >&2; alive_check; die "small files into /$1 failed"; }
  cs=$(echo "$out" | sed -n 's/^create_seconds=//p')
  awk -v c="$2" -v s="$cs" 'BEGIN{printf "%.1f", c/s}'
}
with_backup() { # true|false: restarts the gateway with [backup] enabled set so; when on, waits
  # for the snapshot every start takes, so what is measured is the steady shipping of changes
  local i behind
  stop_gateway
  set_gateway "backup.enabled=$1"
  start_gateway
  [ "$1" = true ] || return 0
  for i in $(seq 1 600); do
    behind=$(status_json | python3 -c 'import json,sys; b=json.load(sys.stdin)["backup"]; print(b["recovery_point_seconds"] if b and b["recovery_point_seconds"] is not None else "")')
    [ -n "$behind" ] && return 0
    sleep 0.2
  done
  die "the first metadata snapshot was not shipped within 2 minutes"
}

for rep in $(seq 1 "$REPS"); do
  for mode in $( [ $((rep % 2)) = 1 ] && echo "true false" || echo "false true"); do
    with_backup "$mode"
    rate=$(small "creates-$mode-$rep" "$COUNT" "$FILE_SIZE")
    rec "creates-backup-$mode" "$rep" files_per_second "$rate" files/s
    log "rep $rep, backup enabled=$mode: $COUNT x $FILE_SIZE B at $rate files/s"
  done
done

# ---------------------------------------------------------------- restore of a big namespace
with_backup true
left=$RESTORE_COUNT; i=0
while [ "$left" -gt 0 ]; do
  n=$(( left < 10000 ? left : 10000 ))
  small "ns-$i" "$n" 0 >/dev/null
  left=$((left - n)); i=$((i + 1))
done
T_MADE=$(now_ns)
log "made $RESTORE_COUNT files; waiting until they are shipped"
for i in $(seq 1 1200); do
  behind=$(status_json | python3 -c 'import json,sys; b=json.load(sys.stdin)["backup"]; print(b["recovery_point_seconds"] if b["recovery_point_seconds"] is not None else 1e9)')
  since=$(secs "$T_MADE" "$(now_ns)")
  awk -v b="$behind" -v s="$since" 'BEGIN{exit !(b + 0.2 < s)}' && break
  sleep 0.5
done
stop_gateway
ADDRS=""
for n in $STORES; do ADDRS="$ADDRS${ADDRS:+,}127.0.0.1:$(store_port "$n")"; done
rm -rf "$WORK/restored"; mkdir -p "$WORK/restored"
t0=$(now_ns)
"$CAIRN" restore --stores "$ADDRS" --secret-file "$DATA/cluster.secret" --data "$WORK/restored" > "$LOGS/restore.out" 2>&1 \
  || { cat "$LOGS/restore.out" >&2; die "cairn restore failed"; }
t1=$(now_ns)
RESTORE_SECS=$(secs "$t0" "$t1")
DB_BYTES=$(stat -c %s "$WORK/restored/meta.db")
sed 's/^/  /' "$LOGS/restore.out" >&2

median() {
  awk -F, -v w="$1" 'NR>1 && $1==w {print $4}' "$RES" | sort -g | \
    awk '{a[NR]=$1} END{ if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else printf "%.1f\n", (a[NR/2]+a[NR/2+1])/2 }'
}
on=$(median creates-backup-true); off=$(median creates-backup-false)
ratio=$(awk -v a="$on" -v b="$off" 'BEGIN{ if (b+0 > 0) printf "%.2f", a/b; else print "nan" }')
ok=$(awk -v r="$ratio" 'BEGIN{ print (r+0 >= 0.9) ? "ok" : "BELOW" }')
echo
echo "cairn metadata shipping, medians of $REPS reps; 3 local stores"
echo "$(date -u +%FT%TZ) $(uname -r) $(nproc) cpus; load at end $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-52s %10s %10s %7s %7s\n' "$COUNT x $FILE_SIZE B creates [files/s]" "backup on" "off" ratio target
printf '%-52s %10s %10s %6sx %6sx %s\n' "CREATE + WRITE + COMMIT, one NFS connection" "$on" "$off" "$ratio" 0.9 "$ok"
printf '%-52s %10s\n' "restore of $RESTORE_COUNT files [s] (meta.db $DB_BYTES B)" "$RESTORE_SECS"
echo "per-rep results: $RES; restore report: $LOGS/restore.out"

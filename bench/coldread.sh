#!/usr/bin/env bash
# Cold sequential read against a read from the cache, same file, same run (issue 13, readahead).
#
#   bench/coldread.sh                  build (release), start a 3-store cluster, run, print a table
#
# One SIZE_MB MiB file from /dev/urandom is written with nfs-cp and drained to the three local
# chunk stores (default class: 2 replicas). Then REPS times each:
#   cached   `nfs-cat URL > /dev/null` with the file in the ingest cache (drained data stays there);
#   cold     after the cached reps (a cold read does not bring evicted data back): `cairn cache
#            drop` (evicts every drained byte, forgets the hot blocks and the blocks read ahead),
#            then the same nfs-cat: every block comes from the stores (over loopback the stores'
#            files are in the page cache, so this measures the gateway's fetch path: one block
#            per round trip without readahead).
# Prints MiB/s (medians), cold / cached, and checks the bytes once (sha256).
#
# Env: REPS (3), SIZE_MB (256), RTT_MS (0: off; else every store is reached through
#      its own WAN emulator, tests/examples/wanproxy.rs, with that round trip and no bandwidth cap), READAHEAD (unset: the gateway's default; "0" turns readahead off,
#      e.g. READAHEAD=0 for the before-numbers; needs a gateway that knows `[read] readahead`),
#      PROFILE (release | debug: which build to run), QUIET (500ms), POLL (0.1), DRAIN_TIMEOUT
#      (600 s), WORK (/tmp/cairn-coldread-bench), CARGO_TARGET_DIR (<repo>/target), CAIRN (a
#      cairn binary to run instead of the built one, e.g. an older build for a before/after),
#      NO_BUILD=1, KEEP=1, RUST_LOG (info).
# Processes: as bench/drain.sh (cluster.sh): `cairn up --stores 3` lays out WORK/data and is
# stopped; the stores and the gateway run here and are stopped by PID on exit. All on 127.0.0.1.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
REPS=${REPS:-3}; SIZE_MB=${SIZE_MB:-256}; PROFILE=${PROFILE:-release}
QUIET=${QUIET:-500ms}; POLL=${POLL:-0.1}; DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-600}
WORK=${WORK:-/tmp/cairn-coldread-bench}
DATA=$WORK/data
LOGS=$WORK/logs
export RUST_LOG=${RUST_LOG:-info}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BUILT=$CARGO_TARGET_DIR/$PROFILE/cairn
CAIRN=${CAIRN:-$BUILT}
N_STORES=3
if [ -n "${READAHEAD:-}" ]; then GATEWAY_SET="read.readahead=$READAHEAD"; fi
# shellcheck source=bench/cluster.sh
. "$HERE/cluster.sh"
for b in nfs-cat sha256sum; do command -v $b >/dev/null || die "missing $b"; done
if [ "$PROFILE" = release ]; then
  build_release -p cairn-gateway --bin cairn
else
  [ "${NO_BUILD:-0}" = 1 ] || (cd "$ROOT" && cargo build -p cairn-gateway --bin cairn) || die "cargo build failed"
  [ -x "$CAIRN" ] || die "$CAIRN not built"
fi
start_cluster
declare -A WAN_PID=()
bench_cleanup() {
  local n p
  for n in $STORES; do p=${WAN_PID[$n]:-}; WAN_PID[$n]=""; stop_pid "wanproxy $n" "$p"; done
}
if [ "${RTT_MS:-0}" != 0 ]; then
  # every store reached through its own emulated link: the gateway restarts on the links' ports
  WANPROXY=$CARGO_TARGET_DIR/$PROFILE/examples/wanproxy
  if [ "${NO_BUILD:-0}" != 1 ]; then
    if [ "$PROFILE" = release ]; then flag=--release; else flag=; fi
    # shellcheck disable=SC2086
    (cd "$ROOT" && cargo build $flag -p cairn-tests --example wanproxy) || die "cargo build of wanproxy failed"
  fi
  [ -x "$WANPROXY" ] || die "$WANPROXY not built"
  stop_gateway
  for n in $STORES; do
    sp=$(store_port "$n"); pp=$(free_port)
    "$WANPROXY" --listen "127.0.0.1:$pp" --target "127.0.0.1:$sp" --rtt-ms "$RTT_MS" \
      --counters "$LOGS/wan-$n.json" >>"$LOGS/wan-$n.log" 2>&1 </dev/null &
    WAN_PID[$n]=$!
    for _ in $(seq 1 100); do [ -s "$LOGS/wan-$n.json" ] && break; sleep 0.1; done
    [ -s "$LOGS/wan-$n.json" ] || die "wanproxy $n wrote no counters; see $LOGS/wan-$n.log"
    sed -i "s/^address = \"127\.0\.0\.1:$sp\"/address = \"127.0.0.1:$pp\"/" "$GW_CONF"
  done
  log "stores behind a ${RTT_MS} ms round trip (wanproxy pids ${WAN_PID[*]})"
  start_gateway
fi
log "[read] section of the gateway config:"; grep -A8 '^\[read\]' "$GW_CONF" | sed 's/^/  /' >&2

RES=$WORK/results.csv
echo "workload,rep,seconds,mib_per_s" > "$RES"
BIG=$((SIZE_MB * 1048576))
SRC=$WORK/src/random_${SIZE_MB}M.bin
log "making $SRC ($SIZE_MB MiB from /dev/urandom)"
head -c "$BIG" /dev/urandom > "$SRC"
NAME=coldread.bin
nfs-cp "$SRC" "$(url "$NAME")" > /dev/null || { alive_check; die "nfs-cp failed"; }
wait_drained "$(now_ns)"
log "drained in $D_WALL s"

read_once() { # workload rep: one timed nfs-cat of the whole file to /dev/null
  local t0 t1 s mibs
  t0=$(now_ns)
  nfs-cat "$(url "$NAME")" > /dev/null || { alive_check; die "nfs-cat ($1 rep $2) failed"; }
  t1=$(now_ns)
  s=$(secs "$t0" "$t1")
  mibs=$(awk -v s="$s" -v m="$SIZE_MB" 'BEGIN{printf "%.1f", m/s}')
  echo "$1,$2,$s,$mibs" >> "$RES"
  printf '  %-6s rep %d: %s MiB in %6s s = %8s MiB/s\n' "$1" "$2" "$SIZE_MB" "$s" "$mibs" >&2
}
drop() { "$CAIRN" cache drop --data "$DATA" > /dev/null || die "cairn cache drop failed"; }

# cached first (a cold read does not bring evicted data back into the cache)
for rep in $(seq 1 "$REPS"); do
  log "cached rep $rep/$REPS (load $(cut -d' ' -f1-3 /proc/loadavg))"; read_once cached "$rep"
done
# the bytes, once, cold
drop
got=$(nfs-cat "$(url "$NAME")" | sha256sum | cut -d' ' -f1); want=$(sha256sum < "$SRC" | cut -d' ' -f1)
[ "$got" = "$want" ] || die "a cold read gave other bytes: sha256 $got, want $want"
log "cold read byte-exact (sha256 $got)"
for rep in $(seq 1 "$REPS"); do
  log "cold rep $rep/$REPS (load $(cut -d' ' -f1-3 /proc/loadavg))"; drop; read_once cold "$rep"
done

median() { # workload
  awk -F, -v w="$1" 'NR>1 && $1==w {print $4}' "$RES" | sort -g | \
    awk '{a[NR]=$1} END{ if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else printf "%.1f\n", (a[NR/2]+a[NR/2+1])/2 }'
}
cold=$(median cold); cached=$(median cached)
ratio=$(awk -v a="$cold" -v b="$cached" 'BEGIN{ if (b+0 > 0) printf "%.2f", a/b; else print "nan" }')
ra=$(sed -n 's/^readahead = //p' "$GW_CONF"); ra=${ra:-"(key absent: this build has no readahead)"}
echo
echo "cairn cold sequential read vs cached, medians of $REPS; $SIZE_MB MiB, 3 local stores (round trip to them: ${RTT_MS:-0} ms added), 2 replicas, $PROFILE build; [read] readahead = $ra"
echo "$(date -u +%FT%TZ) $(uname -r) $(nproc) cpus; load at end $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-40s %10s\n' "cold (evicted, from the stores) [MiB/s]" "$cold"
printf '%-40s %10s\n' "cached (ingest cache) [MiB/s]" "$cached"
printf '%-40s %9sx\n' "cold / cached" "$ratio"
echo "per-rep results: $RES; gateway log: $GW_LOG ($(grep -cE ' (WARN|ERROR) ' "$GW_LOG" || true) WARN/ERROR lines)"

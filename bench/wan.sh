#!/usr/bin/env bash
# The data path over emulated WAN links against loopback, same cluster, same run (issue 13, "Benchmark").
#
#   bench/wan.sh                       build (release), start a 3-store cluster, run, print a table
#
# Links: each store behind its own emulator (tests/examples/wanproxy.rs: RTT_MS round trip ± JITTER_MS,
# MBIT Mbit/s per direction, STALL_PCT percent of the MiBs relayed start a 2-10 s stall), or, for the
# baseline, the gateway talking to the stores directly (loopback). The gateway's [[stores]] addresses
# are switched between the two and the gateway restarted; the stores keep running.
# Workloads, each once per mode (loopback first, then wan):
#   drain       nfs-cp of a SIZE_MB MiB file from /dev/urandom (made once), then the time until
#               `cairn status --json` shows backlog_bytes = 0, counted from the end of nfs-cp, less
#               the quiet period. The default class writes 2 copies, so on the WAN the ceiling is
#               3 links x MBIT / 2: printed as "fraction of capacity" (target >= 0.8).
#   seq read    `cairn cache drop`, then nfs-cat of that file to /dev/null; the ceiling is the links
#               of the stores holding its chunks (`cairn store chunks --json`) x MBIT (target >= 0.8).
#   rand read   `cairn cache drop`, then READS cold 4 KiB reads at random offsets of the file over one
#               NFS connection (tests/examples/nfs_randread.rs, from the `frames` work: skipped with a
#               note while it is missing); median and p99 in round trips (target median <= 1.5 RTT),
#               and bytes the links moved per read, from the emulators' counters (target <= 64 KiB).
# Ratios wan / loopback are printed for each.
#
# Env: SIZE_MB (1024), RTT_MS (100), JITTER_MS (10), MBIT (100; lower it if the 2 cores cannot push 3
#      links, the table says what ran), STALL_PCT (1% of 32 MiB transfers: 0.03125), READS (200),
#      SEED (1), RANDREAD (the nfs_randread binary), QUIET (500ms), POLL (0.2), DRAIN_TIMEOUT (1800 s), WORK (/tmp/cairn-wan-bench),
#      CARGO_TARGET_DIR (<repo>/target), PROFILE (release; debug = the dev profile's binaries, which
#      the workspace builds optimised), NO_BUILD=1, KEEP=1 (keep WORK's data), RUST_LOG (info).
# Processes: `cairn up --stores 3` lays out WORK/data and is stopped; the stores, the gateway and the
# three emulators are started here and stopped by PID on exit (also on Ctrl-C). Everything listens
# on 127.0.0.1.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SIZE_MB=${SIZE_MB:-1024}; RTT_MS=${RTT_MS:-100}; JITTER_MS=${JITTER_MS:-10}; MBIT=${MBIT:-100}
STALL_PCT=${STALL_PCT:-0.03125}; READS=${READS:-200}; SEED=${SEED:-1}
QUIET=${QUIET:-500ms}; POLL=${POLL:-0.2}; DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-1800}
WORK=${WORK:-/tmp/cairn-wan-bench}
DATA=$WORK/data
LOGS=$WORK/logs
export RUST_LOG=${RUST_LOG:-info}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
PROFILE=${PROFILE:-release}
CAIRN=$CARGO_TARGET_DIR/$PROFILE/cairn
WANPROXY=$CARGO_TARGET_DIR/$PROFILE/examples/wanproxy
RANDREAD=${RANDREAD:-$CARGO_TARGET_DIR/$PROFILE/examples/nfs_randread}
N_STORES=3
# shellcheck source=bench/cluster.sh
. "$HERE/cluster.sh"
declare -A WAN_PID=() WAN_PORT=()
bench_cleanup() {
  local n p
  for n in $STORES; do p=${WAN_PID[$n]:-}; WAN_PID[$n]=""; stop_pid "wanproxy $n" "$p"; done
}
if [ "$PROFILE" = debug ] && [ "${NO_BUILD:-0}" != 1 ]; then
  log "building: cargo build -p cairn-gateway -p cairn-tests --bins --examples (dev profile)"
  (cd "$ROOT" && cargo build -p cairn-gateway -p cairn-tests --bins --examples) || die "cargo build failed"
  NO_BUILD=1
fi
build_release -p cairn-gateway -p cairn-tests --bins --examples
[ -x "$WANPROXY" ] || die "$WANPROXY not built"
start_cluster

RES=$WORK/results.csv
echo "mode,metric,value,unit" > "$RES"
rec() { echo "$1,$2,$3,$4" >> "$RES"; }
get() { awk -F, -v m="$1" -v k="$2" '$1==m && $2==k {print $3}' "$RES" | tail -1; }

# ---------------------------------------------------------------- emulators
for n in $STORES; do
  WAN_PORT[$n]=$(free_port)
  "$WANPROXY" --listen "127.0.0.1:${WAN_PORT[$n]}" --target "127.0.0.1:$(store_port "$n")" \
    --rtt-ms "$RTT_MS" --jitter-ms "$JITTER_MS" --mbit "$MBIT" --stall-pct "$STALL_PCT" \
    --seed "$((SEED + ${#WAN_PID[@]}))" --counters "$LOGS/wan-$n.json" >>"$LOGS/wan-$n.log" 2>&1 </dev/null &
  WAN_PID[$n]=$!
  log "wanproxy $n pid ${WAN_PID[$n]}: 127.0.0.1:${WAN_PORT[$n]} -> store $n ($RTT_MS ms ± $JITTER_MS, $MBIT Mbit/s, stalls $STALL_PCT %/MiB)"
done
for n in $STORES; do
  for _ in $(seq 1 100); do [ -s "$LOGS/wan-$n.json" ] && break; sleep 0.1; done
  [ -s "$LOGS/wan-$n.json" ] || die "wanproxy $n wrote no counters; see $LOGS/wan-$n.log"
done
link_bytes() { # total bytes both ways over every link
  python3 - "$LOGS" $STORES <<'EOF'
import json, sys
print(sum(json.load(open("%s/wan-%s.json" % (sys.argv[1], n)))["up_bytes"] + json.load(open("%s/wan-%s.json" % (sys.argv[1], n)))["down_bytes"] for n in sys.argv[2:]))
EOF
}
link_events() { # "stalls drops" over every link
  python3 - "$LOGS" $STORES <<'EOF'
import json, sys
c = [json.load(open("%s/wan-%s.json" % (sys.argv[1], n))) for n in sys.argv[2:]]
print(sum(x["stalls"] for x in c), sum(x["drops"] for x in c))
EOF
}
counters_settle() { sleep 0.3; }  # the counter files are rewritten every 100 ms

use_links() { # loopback|wan: points the gateway's [[stores]] at the stores or at their emulators
  local mode=$1 n port args=()
  for n in $STORES; do
    if [ "$mode" = wan ]; then port=${WAN_PORT[$n]}; else port=$(store_port "$n"); fi
    args+=("$n=$port")
  done
  stop_gateway
  python3 - "$GW_CONF" "${args[@]}" <<'EOF' || die "cannot point [[stores]] in $GW_CONF"
import re, sys
path = sys.argv[1]
text = open(path).read()
for a in sys.argv[2:]:
    name, port = a.split("=")
    pat = r'(?m)^(\[\[stores\]\]\nname = "%s"\naddress = "127\.0\.0\.1:)\d+"' % re.escape(name)
    text, k = re.subn(pat, lambda m: m.group(1) + port + '"', text)
    if k != 1:
        sys.exit("no [[stores]] %s in %s" % (name, path))
open(path, "w").write(text)
EOF
  start_gateway
}

# ---------------------------------------------------------------- workloads
BIG=$((SIZE_MB * 1048576))
SRC=$WORK/src/random_${SIZE_MB}M.bin
log "making $SRC ($SIZE_MB MiB from /dev/urandom)"
head -c "$BIG" /dev/urandom > "$SRC"

holders() { # how many stores hold a chunk (the bench writes two files; with 3 stores: all of them)
  "$CAIRN" store chunks --data "$DATA" --json | python3 -c '
import json, sys
s = set()
for c in json.load(sys.stdin)["chunks"]:
    s.update(c["stores"])
print(len(s))'
}

run_mode() { # loopback|wan
  local mode=$1 name=wan-bench-$1.bin t0 t1 net mbs b0 b1 out ev0 ev1
  use_links "$mode"
  read -r ev0 <<<"$(link_events | tr ' ' ,)"
  cat "$SRC" > /dev/null
  t0=$(now_ns)
  nfs-cp "$SRC" "$(url "$name")" > /dev/null || { alive_check; die "nfs-cp ($mode) failed"; }
  t1=$(now_ns)
  wait_drained "$t1"
  alive_check
  net=$(awk -v w="$D_WALL" -v q="$QUIET_S" 'BEGIN{printf "%.3f", w-q}')
  mbs=$(awk -v s="$net" -v b="$BIG" 'BEGIN{ if (s > 0) printf "%.2f", b/s/1e6; else print "nan" }')
  rec "$mode" drain_seconds "$net" s; rec "$mode" drain_mbs "$mbs" MB/s
  log "$mode drain: $SIZE_MB MiB drained $D_WALL s after nfs-cp ($net s net of quiet) = $mbs MB/s"

  "$CAIRN" cache drop --data "$DATA" > /dev/null || die "cairn cache drop failed"
  counters_settle; b0=$(link_bytes)
  t0=$(now_ns)
  nfs-cat "$(url "$name")" > /dev/null || { alive_check; die "nfs-cat ($mode) failed"; }
  t1=$(now_ns)
  counters_settle; b1=$(link_bytes)
  net=$(secs "$t0" "$t1")
  mbs=$(awk -v s="$net" -v b="$BIG" 'BEGIN{printf "%.2f", b/s/1e6}')
  rec "$mode" read_seconds "$net" s; rec "$mode" read_mbs "$mbs" MB/s; rec "$mode" holders "$(holders)" stores
  log "$mode cold sequential read: $SIZE_MB MiB in $net s = $mbs MB/s; $((b1 - b0)) bytes over the links"

  if [ -x "$RANDREAD" ]; then
    "$CAIRN" cache drop --data "$DATA" > /dev/null || die "cairn cache drop failed"
    counters_settle; b0=$(link_bytes)
    out=$("$RANDREAD" --server "127.0.0.1:$C_PORT" --path "/$name" --reads "$READS" --size 4096 --seed "$SEED" | tail -1) \
      || { alive_check; die "nfs_randread ($mode) failed"; }
    counters_settle; b1=$(link_bytes)
    echo "$mode $out" >> "$LOGS/randread.out"
    rec "$mode" rand_median_us "$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["median_us"])')" us
    rec "$mode" rand_p99_us "$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["p99_us"])')" us
    rec "$mode" rand_per_sec "$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["per_sec"])')" 1/s
    rec "$mode" rand_bytes_per_read "$(( (b1 - b0) / READS ))" B
    log "$mode random 4 KiB reads: $out; $(( (b1 - b0) / READS )) link bytes per read"
  else
    log "no $RANDREAD (tests/examples/nfs_randread.rs comes with the frames work): random reads skipped"
  fi
  read -r ev1 <<<"$(link_events | tr ' ' ,)"
  rec "$mode" stalls "$(( ${ev1%,*} - ${ev0%,*} ))" n; rec "$mode" drops "$(( ${ev1#*,} - ${ev0#*,} ))" n
}

run_mode loopback
run_mode wan

# ---------------------------------------------------------------- table
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b+0 > 0 && a != "") printf "%.2f", a/b; else print "-" }'; }
okif() { awk -v r="$1" -v t="$2" -v d="$3" 'BEGIN{ if (r == "-") print "-"; else if (d == "ge") print (r+0 >= t) ? "ok" : "BELOW"; else print (r+0 <= t) ? "ok" : "ABOVE" }'; }
LINK_MBS=$(awk -v m="$MBIT" 'BEGIN{printf "%.3f", m/8}')
DRAIN_CAP=$(awk -v l="$LINK_MBS" -v n="$N_STORES" 'BEGIN{printf "%.2f", l*n/2}')
READ_CAP=$(awk -v l="$LINK_MBS" -v h="$(get wan holders)" 'BEGIN{printf "%.2f", l*h}')
fd=$(ratio "$(get wan drain_mbs)" "$DRAIN_CAP"); fr=$(ratio "$(get wan read_mbs)" "$READ_CAP")
echo
echo "cairn over emulated WAN links vs loopback; 3 stores, default class (2 replicas); $SIZE_MB MiB file; drain quiet $QUIET"
echo "links: $RTT_MS ms ± $JITTER_MS ms RTT, $MBIT Mbit/s per direction per store$([ "$MBIT" != 100 ] && echo " (scaled down from the issue's 100 Mbit/s)"), $STALL_PCT % of MiBs start a 2-10 s stall; wan run saw $(get wan stalls) stalls, $(get wan drops) drops"
echo "$(date -u +%FT%TZ) $(uname -r) $(nproc) cpus; load at end $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-56s %10s %10s %8s %10s %7s\n' "" loopback wan wan/lo "of capacity" target
printf '%-56s %10s %10s %8s %10s %7s %s\n' "drain [MB/s] (wall - quiet; cap = 3 links / 2 copies)" \
  "$(get loopback drain_mbs)" "$(get wan drain_mbs)" "$(ratio "$(get wan drain_mbs)" "$(get loopback drain_mbs)")" "$fd" 0.8 "$(okif "$fd" 0.8 ge)"
printf '%-56s %10s %10s %8s %10s %7s %s\n' "cold sequential read [MB/s] (cap = $(get wan holders) holders)" \
  "$(get loopback read_mbs)" "$(get wan read_mbs)" "$(ratio "$(get wan read_mbs)" "$(get loopback read_mbs)")" "$fr" 0.8 "$(okif "$fr" 0.8 ge)"
if [ -n "$(get wan rand_median_us)" ]; then
  RTT_US=$((RTT_MS * 1000))
  m=$(ratio "$(get wan rand_median_us)" "$RTT_US"); p=$(ratio "$(get wan rand_p99_us)" "$RTT_US")
  printf '%-56s %10s %10s %8s %10s %7s %s\n' "random 4 KiB cold read, median [us] (wan: in RTTs)" \
    "$(get loopback rand_median_us)" "$(get wan rand_median_us)" "$(ratio "$(get wan rand_median_us)" "$(get loopback rand_median_us)")" "${m} RTT" 1.5 "$(okif "$m" 1.5 le)"
  printf '%-56s %10s %10s %8s %10s\n' "random 4 KiB cold read, p99 [us] (wan: in RTTs)" \
    "$(get loopback rand_p99_us)" "$(get wan rand_p99_us)" "$(ratio "$(get wan rand_p99_us)" "$(get loopback rand_p99_us)")" "${p} RTT"
  printf '%-56s %10s %10s %8s %10s %7s %s\n' "random 4 KiB cold read, reads/s" \
    "$(get loopback rand_per_sec)" "$(get wan rand_per_sec)" "$(ratio "$(get wan rand_per_sec)" "$(get loopback rand_per_sec)")" "" "" ""
  b=$(get wan rand_bytes_per_read)
  printf '%-56s %10s %10s %8s %10s %7s %s\n' "  link bytes per random read [B]" "-" "$b" "" "" 65536 "$(okif "$b" 65536 le)"
else
  echo "random 4 KiB cold reads: skipped (no $RANDREAD yet)"
fi
echo "per-mode results: $RES; logs: $LOGS/"
n_warn=$(grep -cE ' (WARN|ERROR) ' "$GW_LOG" || true)
echo "gateway log: $GW_LOG ($n_warn WARN/ERROR lines)"
if [ "$n_warn" != 0 ]; then grep -E ' (WARN|ERROR) ' "$GW_LOG" | tail -5; fi

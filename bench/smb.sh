#!/usr/bin/env bash
# SMB through cairn against the same smbd sharing a plain local folder, in one run (issue 6, "Benchmark").
#
#   bench/smb.sh              build (release), start `cairn up --stores 0 --smb`, run, print a table
#
# Workloads, REPS times each, medians reported:
#   put / get   smbclient put and get of a SIZE_MB MiB file (from /dev/urandom, made once) to the
#               bridge's `cairn` share, and to a second smbd run from a copy of the bridge's own
#               smb.conf whose share is a plain folder in WORK on the same disk (same Samba, same
#               settings, no FUSE view, no root preexec).
#   dd          dd of the same file (bs=1M, conv=fsync) into the gateway's FUSE view and into the
#               plain folder, to show what the FUSE write path costs on its own.
# ratio = cairn / plain throughput. Targets (issue 6): put >= 0.5x, get >= 0.8x.
#
# Env: REPS (3), SIZE_MB (512), WORK (/tmp/cairn-smb-bench: data, source, logs), PORT (24450, and
#      PORT+1 for the plain smbd, PORT+2 for NFS), CARGO_TARGET_DIR (<repo>/target),
#      NO_BUILD=1 (use the binary already built), CAIRN (the binary; default the release one).
#      Needs root, samba, smbclient and fuse3.
# Processes: `cairn up` and the plain smbd are stopped by PID on exit (also on Ctrl-C). Everything
# listens on 127.0.0.1.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
REPS=${REPS:-3}; SIZE_MB=${SIZE_MB:-512}
WORK=${WORK:-/tmp/cairn-smb-bench}
PORT=${PORT:-24450}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
CAIRN=${CAIRN:-$CARGO_TARGET_DIR/release/cairn}
USER_NAME=cairnbench; PASS=bench-Pass1
UP_PID=""; PLAIN_PID=""
die() { echo "bench/smb.sh: $*" >&2; exit 1; }
cleanup() {
    [ -n "$PLAIN_PID" ] && kill -TERM "$PLAIN_PID" 2>/dev/null && wait "$PLAIN_PID" 2>/dev/null || true
    [ -n "$UP_PID" ] && kill -TERM "$UP_PID" 2>/dev/null && wait "$UP_PID" 2>/dev/null || true
}
trap cleanup EXIT INT TERM
[ "$(id -u)" = 0 ] || die "run as root (FUSE allow_other, smbd)"
command -v smbd >/dev/null && command -v smbclient >/dev/null || die "install samba and smbclient"
[ -n "${NO_BUILD:-}" ] || cargo build --release -p cairn-gateway --manifest-path "$ROOT/Cargo.toml"
[ -x "$CAIRN" ] || die "$CAIRN not built"

rm -rf "$WORK"; mkdir -p "$WORK/logs" "$WORK/plain" "$WORK/p"
DATA=$WORK/d
SRC=$WORK/src.bin
head -c "$((SIZE_MB << 20))" /dev/urandom > "$SRC"
"$CAIRN" up --data "$DATA" --stores 0 --nfs "127.0.0.1:$((PORT + 2))" --smb "127.0.0.1:$PORT" \
    > "$WORK/logs/up.log" 2>&1 &
UP_PID=$!
for _ in $(seq 1 300); do grep -q "cairn is up" "$WORK/logs/up.log" && break; sleep 0.1; done
grep -q "cairn is up" "$WORK/logs/up.log" || die "cairn up did not start; see $WORK/logs/up.log"
echo "$PASS" | "$CAIRN" smb user add "$USER_NAME" --data "$DATA" >/dev/null
VIEW=$DATA/gateway/smb/view
chmod 777 "$VIEW" "$WORK/plain"

# The plain smbd: the bridge's config, its folders and port moved, its share a plain folder.
BASE=$DATA/gateway/smb
PCONF=$WORK/p/smb.conf
sed -e "s|smb ports = $PORT|smb ports = $((PORT + 1))|" \
    -e "s#$BASE/\(lock\|state\|cache\|pid\|ncalrpc\|log\)#$WORK/p/\1#g" \
    -e "s|path = $VIEW|path = $WORK/plain|" \
    -e "/root preexec/d" "$BASE/smb.conf" > "$PCONF"
mkdir -p "$WORK/p/lock" "$WORK/p/state" "$WORK/p/cache" "$WORK/p/pid" "$WORK/p/ncalrpc" "$WORK/p/log"
smbd --foreground --debug-stdout -s "$PCONF" > "$WORK/logs/plain-smbd.log" 2>&1 &
PLAIN_PID=$!
for _ in $(seq 1 100); do (echo > "/dev/tcp/127.0.0.1/$((PORT + 1))") 2>/dev/null && break; sleep 0.1; done

secs() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1 || die "failed: $*"; e=$(date +%s.%N); echo "$e - $s" | bc -l; }
smb() { smbclient "//127.0.0.1/cairn" -p "$1" -U "$USER_NAME%$PASS" -m SMB3 -c "$2"; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mibs() { echo "$SIZE_MB / $1" | bc -l | xargs printf '%.0f'; }
declare -A T
for rep in $(seq 1 "$REPS"); do
    for side in cairn plain; do
        port=$PORT; dir=$VIEW
        [ "$side" = plain ] && port=$((PORT + 1)) && dir=$WORK/plain
        T[$side-put]+="$(secs smb "$port" "put $SRC f.bin") "
        T[$side-get]+="$(secs smb "$port" "get f.bin $WORK/back.bin") "
        cmp -s "$SRC" "$WORK/back.bin" || die "$side: the file read back differs"
        smb "$port" "del f.bin" >/dev/null
        T[$side-dd]+="$(secs dd if="$SRC" of="$dir/dd.bin" bs=1M conv=fsync) "
        rm -f "$dir/dd.bin"
    done
done
printf '\n%-6s %12s %12s %8s   (%s MiB, median of %s)\n' "" "cairn MiB/s" "plain MiB/s" "ratio" "$SIZE_MB" "$REPS"
for w in put get dd; do
    c=$(mibs "$(echo "${T[cairn-$w]}" | tr ' ' '\n' | grep . | median)")
    p=$(mibs "$(echo "${T[plain-$w]}" | tr ' ' '\n' | grep . | median)")
    printf '%-6s %12s %12s %7.2fx\n' "$w" "$c" "$p" "$(echo "$c / $p" | bc -l)"
done
echo "targets: put >= 0.50x, get >= 0.80x (smbclient against the same smbd on a plain folder)"

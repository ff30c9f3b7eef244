#!/usr/bin/env bash
# Bucket stores against a plain S3 client, same bucket, same bytes, same run (issue 14, "Benchmark").
#
#   bench/s3.sh            build (release), start a three-node Garage and a gateway whose one
#                          store is a Garage bucket, run tests/examples/s3bench.rs, print a table
#
# Workloads (see tests/examples/s3bench.rs for the details):
#   drain       nfs-cp of SIZE_MB MiB into the gateway (class: 1 replica in the bucket), the time
#               until the backlog is 0, against the plain object_store client PUTting the same bytes
#               as 32 MiB objects, 4 at once (the drain's chunk size and store_concurrency)
#   cold read   `cairn cache drop`, nfs-cp of the file out, against the plain client's ranged GETs
#               of 4 MiB, 4 at once
#   small       COUNT x 4 KiB files over one NFS connection, drained; the S3 requests Garage counted
#               (PutObject, GetObject, ListObjectsV2, HeadObject...), metadata shipping included
# ratio = cairn / plain throughput. Target: drain >= 0.8x.
#
# Env: SIZE_MB (1024), COUNT (10000), CARGO_TARGET_DIR (<repo>/target), NO_BUILD=1 (use the
#      binaries already built), CAIRN_GARAGE (the garage binary; default: the one ./test.sh builds).
# Everything listens on 127.0.0.1 and is stopped when the example exits.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
export SIZE_MB=${SIZE_MB:-1024} COUNT=${COUNT:-10000}
export CAIRN_GARAGE=${CAIRN_GARAGE:-${CAIRN_CACHE:-$HOME/.cache/cairn}/garage-2.5.0/bin/garage}
[ -x "$CAIRN_GARAGE" ] || { echo "bench/s3.sh: no garage at $CAIRN_GARAGE: run ./test.sh once (it builds it)" >&2; exit 1; }
command -v nfs-cp >/dev/null || { echo "bench/s3.sh: nfs-cp missing (apt-get install libnfs-utils)" >&2; exit 1; }
if [ "${NO_BUILD:-0}" != 1 ]; then
  (cd "$ROOT" && cargo build --release -p cairn-gateway --bins -p cairn-tests --example s3bench)
fi
export CAIRN_BIN=$CARGO_TARGET_DIR/release/cairn
OUT=$("$CARGO_TARGET_DIR/release/examples/s3bench")
echo "$OUT" >&2
val() { echo "$OUT" | sed -n "s/^$1=//p"; }
echo
printf '%-34s %12s %12s %8s\n' workload cairn plain ratio
printf '%-34s %9s MB/s %7s MB/s %7sx\n' "drain of $SIZE_MB MiB to the bucket" "$(val drain_mb_s)" "$(val plain_put_mb_s)" "$(val drain_ratio)"
printf '%-34s %9s MB/s %7s MB/s %7sx\n' "cold read of it" "$(val cold_read_mb_s)" "$(val plain_get_mb_s)" "$(val cold_read_ratio)"
echo
echo "$(val small_files) x 4 KiB files: $(val small_create_files_per_sec) creates/s, $(val small_chunks_total) chunks in all; S3 requests:"
echo "$OUT" | sed -n 's/^small_requests_/  /p'

#!/usr/bin/env bash
# Runs every test: unit tests of each crate and the end-to-end tests that
# start real cairn processes, sharing one debug build.
set -euo pipefail
cd "$(dirname "$0")"
# Garage, a real S3 server for the bucket-store tests: built once from
# crates.io (about 15 minutes on 2 cores) into a cache folder outside the
# clone, and reused from there. CAIRN_GARAGE=PATH uses another binary.
GARAGE_VERSION=2.5.0
GARAGE_ROOT=${CAIRN_CACHE:-$HOME/.cache/cairn}/garage-$GARAGE_VERSION
if [ -z "${CAIRN_GARAGE:-}" ] && [ ! -x "$GARAGE_ROOT/bin/garage" ]; then
  echo "test.sh: building garage $GARAGE_VERSION into $GARAGE_ROOT (once)" >&2
  cargo install garage --locked --version "$GARAGE_VERSION" --root "$GARAGE_ROOT"
fi
export CAIRN_GARAGE=${CAIRN_GARAGE:-$GARAGE_ROOT/bin/garage}
cargo build --workspace --all-targets
cargo test --workspace --no-fail-fast -- --test-threads=2

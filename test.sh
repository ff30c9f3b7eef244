#!/usr/bin/env bash
# Runs every test: unit tests of each crate and the end-to-end tests that
# start real cairn processes, sharing one debug build.
set -euo pipefail
cd "$(dirname "$0")"
cargo build --workspace --all-targets
cargo test --workspace --no-fail-fast -- --test-threads=2

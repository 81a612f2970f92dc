#!/usr/bin/env bash
# Runs one fuzz target for SECONDS (default 60) at the lowest CPU priority, on the stable
# toolchain: RUSTC_BOOTSTRAP=1 lets it take the nightly flags cargo-fuzz passes. Installs
# cargo-fuzz if missing and seeds the corpus first (fuzz/seed.sh). Crashes land in
# fuzz/artifacts/TARGET; reproduce one with `fuzz/run.sh TARGET 0 fuzz/artifacts/TARGET/crash-…`.
# Usage: fuzz/run.sh bid_request|campaign_file|event_token [SECONDS] [libFuzzer args…]
# FUZZ_SANITIZER=address adds AddressSanitizer (slower; the default `none` relies on Rust's
# own checks, with debug assertions and overflow checks on).
set -euo pipefail
cd "$(dirname "$0")"
target=${1:?usage: fuzz/run.sh bid_request|campaign_file|event_token [SECONDS] [libFuzzer args]}
seconds=${2:-60}
shift $(( $# < 2 ? $# : 2 ))
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz
./seed.sh "$target"
export RUSTC_BOOTSTRAP=1
cd ..
if [ "$seconds" = 0 ]; then
  exec nice -n 19 cargo fuzz run --fuzz-dir fuzz -a -s "${FUZZ_SANITIZER:-none}" "$target" "$@"
fi
exec nice -n 19 cargo fuzz run --fuzz-dir fuzz -a -s "${FUZZ_SANITIZER:-none}" "$target" \
  "fuzz/corpus/$target" -- -max_total_time="$seconds" -print_final_stats=1 "$@"

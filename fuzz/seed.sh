#!/usr/bin/env bash
# Seeds fuzz/corpus/TARGET (generated, gitignored) from what precis really reads:
#   bid_request    the bid requests of tests/fixtures (openrtb-corpus and invalid-requests)
#   campaign_file  the example campaigns of campaigns/
#   event_token    nothing: libFuzzer grows it from scratch (the target signs what it needs)
# Usage: fuzz/seed.sh TARGET. Re-running adds what is missing and keeps what the fuzzer found.
set -euo pipefail
cd "$(dirname "$0")"
target=${1:?usage: fuzz/seed.sh bid_request|campaign_file|event_token}
corpus=corpus/$target
mkdir -p "$corpus"
case $target in
  bid_request)
    fixtures=../tests/fixtures
    cp -n "$fixtures"/openrtb-corpus/*.json "$corpus"/
    for f in "$fixtures"/invalid-requests/*.json; do cp -n "$f" "$corpus/invalid-$(basename "$f")"; done ;;
  campaign_file) cp -n ../campaigns/*.toml "$corpus"/ ;;
  event_token) ;;
  *) echo "unknown target $target" >&2; exit 1 ;;
esac
echo "$corpus: $(ls "$corpus" | wc -l) inputs"

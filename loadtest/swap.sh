#!/usr/bin/env bash
# Hot swap under load: precis serves CAMPAIGNS generated campaigns (seed 7) while precis-load sends
# RATE bid requests a second (open loop) for SECONDS; a third of the way in, every campaign file is
# replaced by the same campaign from another seed (new prices, targeting and creatives), each file
# renamed into place whole. The watcher reloads them, re-parses all and swaps the new set in. Prints
# the load's outcome (requests, errors, p99 per second around the swap), how many reloads ran and
# the live campaigns before and after.
#
#   loadtest/swap.sh [CAMPAIGNS] [RATE] [SECONDS]
#
# Everything runs on 127.0.0.1; scratch files go to a temporary directory removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
campaigns=${1:-100000}
rate=${2:-2000}
seconds=${3:-60}
cargo build --release --quiet --workspace --bins
bin=$PWD/target/release
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"' EXIT

echo "generating $campaigns campaigns twice (seeds 7 and 8)"
"$bin/precis" gen-campaigns --count "$campaigns" --out "$work/campaigns" --seed 7 >/dev/null
"$bin/precis" gen-campaigns --count "$campaigns" --out "$work/next" --seed 8 >/dev/null

cd "$work"   # precis writes its event log under ./logs
export PRECIS_SECRET=swap-secret-0123456789abcdef
"$bin/precis" serve --config "$OLDPWD/precis.toml" --campaigns "$work/campaigns" \
    --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 2>"$work/precis.log" &
pids+=($!)
for _ in $(seq 1200); do grep -q "ready: answering bids" "$work/precis.log" && break; sleep 0.1; done
grep -q "ready: answering bids" "$work/precis.log" || { echo "precis did not get ready"; exit 1; }
bid=$(sed -n 's/.*listening on \([0-9.:]*\).*/\1/p' "$work/precis.log" | head -1)
admin=$(sed -n 's/.*admin listening on \([0-9.:]*\).*/\1/p' "$work/precis.log" | head -1)
metric() { curl -s "http://$admin/metrics" | sed -n "s/^$1 //p"; }
echo "loaded: $(metric precis_campaigns_live) live, generation $(metric precis_reload_generation)"

"$bin/precis-load" --url "http://$bid/openrtb2/bid" --rate "$rate" --warmup 1s \
    --duration "${seconds}s" --generated --seed 7 >"$work/load.out" 2>&1 &
load=$!
pids+=("$load")
sleep $((seconds / 3 + 1))
echo "swapping every file at $(date -u +%T)"
find "$work/next" -name '*.toml' -exec mv -t "$work/campaigns/" {} +
echo "renamed at $(date -u +%T)"
wait "$load"
echo "after: $(metric precis_campaigns_live) live, generation $(metric precis_reload_generation), $(metric precis_reloads_total) reloads, $(metric precis_campaign_files_refused) refused"
grep -iE "reload|swap|refus" "$work/precis.log" | cut -c1-200 || true
echo "--- the load (errors must be 0)"
cat "$work/load.out"

#!/usr/bin/env bash
# Soak: precis under steady load with the exchange simulation on, watching its memory.
#
#   loadtest/soak.sh [RATE] [SECONDS] [OUT] [SLO]
#
# Starts precis (release build, the sample campaigns/ and precis.toml) on 127.0.0.1. Without RATE (or
# with ""), first finds the highest rate it holds at p99 <= SLO (default 5ms; precis-load
# --find-max) and soaks at half of it. Then sends synthetic bid requests open loop at RATE for SECONDS (default 600) after a
# 120 s warmup, with the simulated exchange answering bids (20% won: win, impression, clicks,
# conversions), the generator niced (not while finding the max: a niced generator's own lag on a
# busy machine would count as latency), and samples precis' resident memory (VmRSS) every 10 s from
# the end of the warmup. precis keeps state that grows with traffic up to configured bounds: the
# events it de-duplicates for the token lifetime (a day by default) and the users frequency caps
# remember (2M): the soak lowers them to 60 s and 20,000 so that they fill during the warmup and
# what the samples show is whether memory grows beyond its bounds. Prints requests, 5xx answers (bids and follow-ups), p99, RSS first, min,
# max and last, and the drift: the largest distance of any sample from the first, in %. Exits 1
# when the drift is over 10% or any answer was a 5xx. OUT (optional) keeps precis-load's
# summary.json, latency.hgrm and report.html, the RSS samples and precis' log.
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${1:-}
seconds=${2:-600}
out=${3:-}
slo=${4:-5ms}
warmup=120
cargo build --release --quiet --workspace --bins
bin=$PWD/target/release
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"' EXIT

sed -e 's/^token_ttl_secs = [0-9]*/token_ttl_secs = 60/' -e 's/^max_users = [0-9]*/max_users = 20000/' \
    precis.toml >"$work/precis.toml"
grep -q '^token_ttl_secs = 60' "$work/precis.toml" && grep -q '^max_users = 20000' "$work/precis.toml" \
    || { echo "precis.toml: token_ttl_secs or max_users not found to lower" >&2; exit 2; }
cd "$work"   # precis writes its event log under ./logs
export PRECIS_SECRET=soak-secret-0123456789abcdef
"$bin/precis" serve --config "$work/precis.toml" --campaigns "$OLDPWD/campaigns" \
    --listen 127.0.0.1:0 2>"$work/precis.log" &
precis=$!
pids+=("$precis")
cd "$OLDPWD"
for _ in $(seq 300); do grep -qs "listening on" "$work/precis.log" && break; sleep 0.1; done
addr=$(sed -n 's/.*listening on //p' "$work/precis.log" | head -1)
[ -n "$addr" ] || { echo "precis did not start:" >&2; cat "$work/precis.log" >&2; exit 2; }
url="http://$addr/openrtb2/bid"
load=("$bin/precis-load" --url "$url" --synthetic --connections 64)

if [ -z "$rate" ]; then
    echo "finding the max rate at p99 <= $slo ..."
    "${load[@]}" --find-max --slo-p99 "$slo" --rate 2000 --duration 5s --warmup 2s \
        --out "$work/findmax" >/dev/null 2>&1
    jq -r '.find_max.steps[] | "  step \(.target_rate) req/s: p99 \(.p99_ms) ms, errors \(.error_rate), \(if .pass then "pass" else "fail" end)"' \
        "$work/findmax/summary.json"
    max=$(jq -r '.find_max.max_rate // empty' "$work/findmax/summary.json")
    [ -n "$max" ] || { echo "no rate held p99 <= $slo" >&2; exit 2; }
    rate=$(awk "BEGIN { printf \"%d\", $max / 2 }")
    echo "max rate ${max} req/s: soaking at ${rate} req/s"
fi

rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$precis/status"; }
echo "soak: $rate req/s for ${seconds} s (after ${warmup} s warmup) at $url, exchange win rate 0.2"
nice -n 5 "${load[@]}" --rate "$rate" --duration "${seconds}s" --warmup "${warmup}s" --win-rate 0.2 \
    --out "$work/soak" >"$work/soak.txt" 2>"$work/soak.err" &
client=$!
pids+=("$client")
sleep "$warmup"
: >"$work/rss.txt"
while kill -0 "$client" 2>/dev/null; do
    echo "$(date +%s) $(rss)" >>"$work/rss.txt"
    sleep 10
done
wait "$client" || { echo "precis-load failed:" >&2; cat "$work/soak.err" >&2; exit 2; }
cat "$work/soak.txt"

summary=$work/soak/summary.json
requests=$(jq '.requests' "$summary")
bid_5xx=$(jq '.counts.status_5xx' "$summary")
follow_5xx=$(jq '[.exchange // {} | (.win, .imp, .click, .conv) | select(. != null)
    | .status | to_entries[] | select((.key | tonumber) >= 500) | .value] | add // 0' "$summary")
p99=$(jq '.latency_ms.p99' "$summary")
read -r first min max last drift samples < <(awk '
    NR == 1 { first = $2; min = $2; max = $2 }
    { if ($2 < min) min = $2; if ($2 > max) max = $2; last = $2; n++ }
    END {
        up = (max - first) / first * 100; down = (first - min) / first * 100
        printf "%d %d %d %d %.1f %d\n", first / 1024, min / 1024, max / 1024, last / 1024, (up > down ? up : down), n
    }' "$work/rss.txt")
echo "soak result: $requests requests at $rate req/s, 5xx: $bid_5xx bids + $follow_5xx follow-ups, p99 $p99 ms"
echo "RSS MiB ($samples samples, every 10 s): first $first, min $min, max $max, last $last; drift ±${drift}%"
if [ -n "$out" ]; then
    mkdir -p "$out"
    cp -r "$work/soak/." "$out/"
    cp "$work/rss.txt" "$work/precis.log" "$out/"
fi
status=0
awk "BEGIN { exit !($drift > 10) }" && { echo "FAIL: RSS drifted over 10%"; status=1; }
[ $((bid_5xx + follow_5xx)) -eq 0 ] || { echo "FAIL: 5xx answers"; status=1; }
exit $status

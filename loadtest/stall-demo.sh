#!/usr/bin/env bash
# Coordinated omission, demonstrated: a server that freezes for 100 ms once a second (about 10%
# of the time), measured three ways over 16 connections:
#   - precis-load --closed-loop: each connection waits for its answer before sending again, and
#     latency counts from the send, so only the 16 requests in flight when a stall begins see it:
#     the p99 stays small (this is coordinated omission, as ab and wrk before 4.0 report it);
#   - wrk (4.x): closed loop too, but it adds synthetic samples after the run for slow requests,
#     spaced by the mean interval per connection (stats_correct), which puts the stalls back;
#   - precis-load (open loop): requests fall due on a schedule and latency counts from the due
#     time, so the ~10% of requests due during a stall wait: p99 near 90 ms.
#
#   loadtest/stall-demo.sh [SECONDS] [RATE]      (defaults: 10 s, 2000 req/s for precis-load)
#
# Needs wrk (sudo apt-get install -y wrk). Only talks to 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
rate=${2:-2000}
command -v wrk >/dev/null || { echo "needs wrk: sudo apt-get install -y wrk" >&2; exit 1; }
cargo build --release --quiet -p precis-load --bins
cargo build --release --quiet -p precis --example stall-server   # the bidder's package: see its doc
bin=target/release
work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null; rm -rf "$work"' EXIT

"$bin/examples/stall-server" --listen 127.0.0.1:0 --stall-ms 100 --every-ms 1000 2>"$work/server.log" &
server=$!
for _ in $(seq 50); do grep -q "listening on" "$work/server.log" && break; sleep 0.1; done
addr=$(sed -n 's/.*listening on //p' "$work/server.log")
url="http://$addr/openrtb2/bid"
cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = io.open("../shared/openrtb-corpus/iab26__spec-6.2.1-simple-banner.json"):read("*a")
LUA

echo "== precis-load --closed-loop --connections 16 against $url"
"$bin/precis-load" --url "$url" --closed-loop --duration "${seconds}s" --warmup 2s \
    --connections 16 --synthetic 2>/dev/null | grep -E "achieved|latency ms"
echo
echo "== wrk -t1 -c16 -d${seconds}s --latency (closed loop, corrected after the run) against $url"
wrk -t1 -c16 -d"${seconds}s" --latency -s "$work/post.lua" "$url" | sed -n '/Latency Distribution/,/Requests\/sec/p'
echo
echo "== precis-load --rate $rate --connections 16 (open loop) against $url"
"$bin/precis-load" --url "$url" --rate "$rate" --duration "${seconds}s" --warmup 2s \
    --connections 16 --synthetic --out "$work/out" 2>/dev/null

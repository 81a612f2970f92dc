#!/usr/bin/env bash
# Closed-loop throughput of precis-load next to wrk's, same server, same settings: one thread,
# the same connections, the same request body (the IAB 2.6 simple banner; precis-load gives each
# copy its own id), alternating so that both see the same machine.
#
#   loadtest/compare-wrk.sh [URL] [CONNECTIONS] [SECONDS] [ROUNDS]
#
# Without URL it starts the stall-server example as a bare server (--stall-ms 0). To compare
# against precis: `cargo run --release -- serve` in another shell, then
#   loadtest/compare-wrk.sh http://127.0.0.1:8080/openrtb2/bid
# Needs wrk (sudo apt-get install -y wrk). Only talks to the URL given, or to 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
url=${1:-}
connections=${2:-64}
seconds=${3:-10}
rounds=${4:-3}
command -v wrk >/dev/null || { echo "needs wrk: sudo apt-get install -y wrk" >&2; exit 1; }
cargo build --release --quiet -p precis-load --bins
cargo build --release --quiet -p precis --example stall-server   # the bidder's package: see its doc
bin=target/release
work=$(mktemp -d)
server=
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$work"' EXIT

if [ -z "$url" ]; then
    "$bin/examples/stall-server" --listen 127.0.0.1:0 --stall-ms 0 2>"$work/server.log" &
    server=$!
    for _ in $(seq 50); do grep -q "listening on" "$work/server.log" && break; sleep 0.1; done
    url="http://$(sed -n 's/.*listening on //p' "$work/server.log")/openrtb2/bid"
fi
body=../shared/openrtb-corpus/iab26__spec-6.2.1-simple-banner.json
mkdir "$work/requests"
cp "$body" "$work/requests/"
cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = io.open("$body"):read("*a")
LUA

echo "closed loop, 1 thread, $connections connections, ${seconds} s, against $url"
for round in $(seq "$rounds"); do
    wrk_rate=$(wrk -t1 -c"$connections" -d"${seconds}s" -s "$work/post.lua" "$url" \
        | sed -n 's/^Requests\/sec: *//p')
    load_rate=$("$bin/precis-load" --url "$url" --closed-loop --threads 1 \
        --connections "$connections" --warmup 0s --duration "${seconds}s" \
        --requests "$work/requests" 2>/dev/null | sed -n 's/.*achieved \([0-9]*\) req\/s.*/\1/p')
    echo "round $round: wrk $wrk_rate req/s, precis-load $load_rate req/s ($(awk "BEGIN { printf \"%.2f\", $load_rate / $wrk_rate }") of wrk)"
done

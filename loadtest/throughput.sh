#!/usr/bin/env bash
# The bidder next to the HTTP floor: precis serving 10,000 generated campaigns, and a bare hyper
# server that reads the body and answers 204 (the stall-server example, --stall-ms 0, on precis'
# per-core runtimes), driven alternately by the same client (precis-load, closed loop, the
# generator's visitors as the request mix, the same connections). Prints each round's
# requests/s, the ratio, and the CPU time each server spent per request (user + system, all its
# threads; the warmup's requests counted at the measured rate): steadier than requests/s on a
# shared machine.
#
#   loadtest/throughput.sh [CAMPAIGNS] [CONNECTIONS] [SECONDS] [ROUNDS] [WORKERS]
#
# WORKERS is both servers' request threads (`--workers`; 0: one per core). It is 1 by default
# because the client shares the machine: on 2 cores the single-threaded client keeps one core
# busy, and a second request thread only fights it for that core (measured in one sitting: precis
# 42,700 req/s with one, 27,800 with two; the bare server 50,100 and 49,000). On a machine of its
# own, precis runs one per core (`workers = 0`, the default of `precis serve`).
#
# Everything runs on 127.0.0.1; scratch files go to a temporary directory removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
campaigns=${1:-10000}
connections=${2:-32}
seconds=${3:-10}
rounds=${4:-3}
workers=${5:-1}
cargo build --release --quiet --workspace --bins --examples
bin=target/release
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"' EXIT

# Starts a server that logs `listening on ADDR`; sets `addr` to ADDR. (Not run in a `$(...)`
# subshell: that would run the EXIT trap and stop the server at once.)
start() {
    local log=$1; shift
    "$@" 2>"$log" &
    pids+=($!)
    for _ in $(seq 300); do grep -q "listening on" "$log" && break; sleep 0.1; done
    addr=$(sed -n 's/.*listening on //p' "$log" | head -1)
}

"$bin/precis" gen-campaigns --count "$campaigns" --out "$work/campaigns" --seed 7 >/dev/null
cd "$work"   # precis writes its event log under ./logs
export PRECIS_SECRET=throughput-secret-0123456789
start "$work/precis.log" "$OLDPWD/$bin/precis" serve --config "$OLDPWD/precis.toml" \
    --campaigns "$work/campaigns" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
    --workers "$workers"
precis=$addr
# It listens at once and answers 503 until the campaigns are loaded.
for _ in $(seq 600); do grep -q "ready: answering bids" "$work/precis.log" && break; sleep 0.1; done
start "$work/bare.log" "$OLDPWD/$bin/examples/stall-server" --listen 127.0.0.1:0 --stall-ms 0 \
    --workers "$workers"
bare=$addr
cd "$OLDPWD"

# Drives the server at $1 (pid $2) for a round; prints its requests/s and CPU µs per request.
rate() {
    local ticks before after
    ticks=$(getconf CLK_TCK)
    before=$(awk '{ print $14 + $15 }' "/proc/$2/stat")
    "$bin/precis-load" --url "http://$1/openrtb2/bid" --closed-loop --connections "$connections" \
        --warmup 1s --duration "${seconds}s" --generated --seed 7 2>/dev/null >"$work/round.out"
    after=$(awk '{ print $14 + $15 }' "/proc/$2/stat")
    awk -v cpu=$((after - before)) -v ticks="$ticks" -v seconds="$seconds" '
        /achieved/ { for (i = 1; i < NF; i++) if ($i == "achieved") rate = $(i + 1) }
        END { printf "%d %.1f\n", rate, cpu / ticks * 1e6 / (rate * (seconds + 1)) }' "$work/round.out"
}

threads=$workers
[ "$workers" = 0 ] && threads="one per core:"
echo "closed loop, $connections connections, ${seconds} s a round, $campaigns generated campaigns, $threads request thread(s) per server"
total_precis=0
total_bare=0
for round in $(seq "$rounds"); do
    read -r p p_cpu < <(rate "$precis" "${pids[0]}")
    read -r b b_cpu < <(rate "$bare" "${pids[1]}")
    total_precis=$((total_precis + p))
    total_bare=$((total_bare + b))
    echo "round $round: precis $p req/s ($p_cpu µs CPU each), bare hyper $b req/s ($b_cpu µs)" \
        "($(awk "BEGIN { printf \"%.2f\", $p / $b }")×)"
done
echo "all rounds: precis $((total_precis / rounds)) req/s, bare hyper $((total_bare / rounds)) req/s: $(awk "BEGIN { printf \"%.2f\", $total_precis / $total_bare }")× the HTTP floor"

#!/usr/bin/env bash
# Throughput of a 3-node gsmo cluster in each ordering mode, side by side with
# redis-server on the same machine in the same run.
#
#   bench/cluster.sh                # 100000 requests (1000000 at -P 16: N16), 100000 random
#                                   # keys, 50 clients (rows `x3`: the 50 clients and N spread
#                                   # over all 3 nodes, one redis-benchmark per node at once,
#                                   # rates summed)
#   N=20000 MODES="total-isis" bench/cluster.sh
#   SUITE=default N=5000 bench/cluster.sh   # redis-benchmark's default suite (every command it
#                                           # knows), requests/s per command and target
#
# Needs redis-server and redis-benchmark (Debian: redis-server, redis-tools).
# Prints one line per target and pipeline depth: SET and GET requests/s, and
# the ratio to redis-server, which runs before and after the clusters (ratios are
# to the faster of its two runs), and for gsmo how long node 0's writes waited for
# their order (p50/p99 ms, INFO latencystats). A benchmark, not a test: numbers
# vary by machine.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-100000}
# Pipelined runs are 10x longer: 100 k requests at -P 16 last a fifth of a second,
# shorter than the swings of a machine whose cores the client and 3 nodes share.
N16=${N16:-$((N * 10))}
R=${R:-100000}
C=${C:-50}
MODES=${MODES:-"fifo causal total-sequencer total-isis"}
REDIS_PORT=${REDIS_PORT:-16999}
CLIENT_BASE=${CLIENT_BASE:-16480}
PEER_BASE=${PEER_BASE:-17480}

# shellcheck source=bench/common.sh
. bench/common.sh

requests() { # pipeline: requests per run at that depth
  if [ "$1" -gt 1 ]; then echo "$N16"; else echo "$N"; fi
}

# `SET: 123.45 requests per second, ...` -> 123.45
rate() { # port pipeline test
  redis-benchmark -p "$1" -t "$3" -n "$(requests "$2")" -r "$R" -c "$C" -P "$2" -q 2>/dev/null \
    | tr '\r' '\n' | awk -F'[: ]+' '/requests per second/ {print $2}' | tail -1
}

# The same, with the clients and requests spread over the 3 nodes at once: the summed rate.
rate3() { # base-port pipeline test
  local dir jobs=() n; dir=$(mktemp -d); n=$(requests "$2")
  for i in 0 1 2; do
    local c=$(( (C + 2 - i) / 3 ))
    redis-benchmark -p $(($1 + i)) -t "$3" -n $((n / 3)) -r "$R" -c "$c" -P "$2" -q 2>/dev/null \
      | tr '\r' '\n' | awk -F'[: ]+' '/requests per second/ {print $2}' | tail -1 >"$dir/$i" &
    jobs+=($!)
  done
  wait "${jobs[@]}"
  cat "$dir"/0 "$dir"/1 "$dir"/2 | awk '{s += $1} END {printf "%.2f", s}'
  rm -rf "$dir"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }

# How long a node's writes waited for their order (INFO latencystats, emptied by
# CONFIG RESETSTAT before each SET run): `p50/p99` in ms at node 0.
reset_latency() { for i in 0 1 2; do redis-cli -p $((CLIENT_BASE + i)) CONFIG RESETSTAT >/dev/null; done; }
write_latency() { # port
  redis-cli -p "$1" INFO latencystats | tr -d '\r' | awk -F'[:,=]' '/^write_latency_usec:/ {
    for (i = 2; i < NF; i += 2) v[$i] = $(i + 1)
    printf "%.1f/%.1f", v["p50"] / 1000, v["p99"] / 1000 }'
}

# The default suite: one column per target, one row per command.
if [ "${SUITE:-}" = default ]; then
  out=$(mktemp -d)
  suite() { # port name
    # An error reply makes redis-benchmark exit 1; count it and keep going.
    { redis-benchmark -p "$1" -n "$N" -r "$R" -c "$C" -q 2>&1 || true; } | tr '\r' '\n' >"$out/$2.raw"
    awk -F': ' '/requests per second/ {split($2, a, " "); print $1 "\t" a[1]}' "$out/$2.raw" >"$out/$2"
    errors=$(grep -c '^Error' "$out/$2.raw" || true)
    [ "$errors" -eq 0 ] || echo "$2: $errors error replies, e.g. $(grep -m1 '^Error' "$out/$2.raw")"
  }
  redis-server --port "$REDIS_PORT" --save '' --appendonly no --daemonize no >/dev/null &
  pids+=($!)
  wait_ping "$REDIS_PORT"
  suite "$REDIS_PORT" redis-server
  kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true; unset 'pids[-1]'
  names=(redis-server)
  for mode in $MODES; do
    "$GSMO" cluster --nodes 3 --mode "$mode" --client-base "$CLIENT_BASE" --peer-base "$PEER_BASE" \
      >/tmp/gsmo-bench-$mode.log 2>&1 &
    pids+=($!)
    for i in 0 1 2; do wait_ping $((CLIENT_BASE + i)); done
    suite "$CLIENT_BASE" "$mode"
    names+=("$mode")
    kill -INT "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true; unset 'pids[-1]'
  done
  printf '%-38s' "requests/s (N=$N, 3 nodes)"; printf '%16s' "${names[@]}"; echo
  cut -f1 "$out/redis-server" | while IFS= read -r test; do
    printf '%-38s' "$test"
    for n in "${names[@]}"; do
      printf '%16s' "$(awk -F'\t' -v t="$test" '$1 == t {print $2}' "$out/$n" | head -1)"
    done
    echo
  done
  rm -rf "$out"
  exit 0
fi

declare -A base
rows=()
# redis-server runs first and last; ratios are to the faster of its two runs, so
# a slow moment of redis-server's cannot flatter gsmo.
redis_rows() { # label
  redis-server --port "$REDIS_PORT" --save '' --appendonly no --daemonize no >/dev/null &
  pids+=($!)
  wait_ping "$REDIS_PORT"
  for P in 1 16; do
    s=$(rate "$REDIS_PORT" "$P" set); g=$(rate "$REDIS_PORT" "$P" get)
    base[$P-set]=$(awk -v a="$s" -v b="${base[$P-set]:-0}" 'BEGIN { print (a > b ? a : b) }')
    base[$P-get]=$(awk -v a="$g" -v b="${base[$P-get]:-0}" 'BEGIN { print (a > b ? a : b) }')
    rows+=("$1|$P|$s|$g")
  done
  kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true; unset 'pids[-1]'
}

redis_rows "redis-server"
for mode in $MODES; do
  "$GSMO" cluster --nodes 3 --mode "$mode" --client-base "$CLIENT_BASE" --peer-base "$PEER_BASE" \
    >/tmp/gsmo-bench-$mode.log 2>&1 &
  pids+=($!)
  for i in 0 1 2; do wait_ping $((CLIENT_BASE + i)); done
  for P in 1 16; do
    reset_latency; s=$(rate "$CLIENT_BASE" "$P" set); l=$(write_latency "$CLIENT_BASE")
    rows+=("gsmo 3 nodes $mode|$P|$s|$(rate "$CLIENT_BASE" "$P" get)|$l")
  done
  for P in 1 16; do
    reset_latency; s=$(rate3 "$CLIENT_BASE" "$P" set); l=$(write_latency "$CLIENT_BASE")
    rows+=("gsmo 3 nodes $mode x3|$P|$s|$(rate3 "$CLIENT_BASE" "$P" get)|$l")
  done
  kill -INT "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true; unset 'pids[-1]'
done
redis_rows "redis-server (again)"

printf '%-34s %3s %14s %14s %9s %9s %12s\n' target P "SET req/s" "GET req/s" "SET/redis" "GET/redis" \
  "SET wait ms"
for row in "${rows[@]}"; do
  IFS='|' read -r name P s g l <<<"$row"
  printf '%-34s %3s %14s %14s %9s %9s %12s\n' "$name" "$P" "$s" "$g" \
    "$(ratio "$s" "${base[$P-set]}")" "$(ratio "$g" "${base[$P-get]}")" "${l:--}"
done
echo "SET wait ms: p50/p99 of node 0's writes from its event loop to their reply (INFO latencystats)"

#!/usr/bin/env bash
# CPU time per request of each node of a 3-node cluster, the steadier twin of
# bench/cluster.sh: on a shared 2-core machine requests/s swing with whatever
# else runs, but the CPU a node spends per request hardly does. Also measures
# redis-server the same way, for scale.
#
#   bench/cpu.sh                              # fifo and total-isis; GET and SET at -P 1 and -P 16
#   MODES=causal TESTS=get PIPES=16 bench/cpu.sh
#   GSMO=/path/to/other/gsmo bench/cpu.sh      # another build (before/after)
#   CLUSTER_ARGS="--max-batch 1" bench/cpu.sh  # flags for `gsmo cluster` (unbatched writes)
#   N=50000 N16=500000 bench/cpu.sh            # requests per run at -P 1 and at -P 16 (default 10 N)
#
# Prints one line per mode, test and pipeline depth: user+system CPU
# microseconds per request on node 0 (which the client talks to) and on each
# peer (which only delivers the multicast), read from /proc/PID/stat around
# one redis-benchmark run, and redis-benchmark's own (GNU time). `ceiling/s` is
# the rate at which every process together would use all the machine's cores
# (nproc x 1e6 / the sum): on a machine whose cores the client and the nodes
# share, that sum, not one process, bounds the rate, and `ceil/redis` compares
# it with redis-server's in the same test. For SET also the writes per multicast
# batch (node 0's INFO `writes_multicast` / `multicasts_sent` over the run).
# A benchmark, not a test.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-200000}
# Pipelined runs are 10x longer, so each lasts seconds, not a fraction of one.
N16=${N16:-$((N * 10))}
R=${R:-100000}
C=${C:-50}
MODES=${MODES:-"fifo total-isis"}
TESTS=${TESTS:-"get set"}
PIPES=${PIPES:-"1 16"}
REDIS_PORT=${REDIS_PORT:-16999}
CLIENT_BASE=${CLIENT_BASE:-16480}
PEER_BASE=${PEER_BASE:-17480}

# shellcheck source=bench/common.sh
. bench/common.sh
command -v /usr/bin/time >/dev/null || { echo "bench: /usr/bin/time not found (apt-get install -y time)" >&2; exit 1; }
CORES=$(nproc)

ticks() { # pid: user + system CPU in clock ticks
  cpu_ticks "$1" | awk '{print $1 + $2}'
}

# µs per request for each pid, then redis-benchmark's own, around one run.
per_request() { # port test pipeline pid...
  local port=$1 test=$2 p=$3; shift 3
  local before=() hz n=$N client; hz=$(getconf CLK_TCK); client=$(mktemp)
  if [ "$p" -gt 1 ]; then n=$N16; fi
  for pid in "$@"; do before+=("$(ticks "$pid")"); done
  # The keyspace is filled first for GET, so GET reads values, not misses.
  /usr/bin/time -f '%U %S' -o "$client" \
    redis-benchmark -p "$port" -t "$test" -n "$n" -r "$R" -c "$C" -P "$p" -q >/dev/null 2>&1
  local i=0 out=()
  for pid in "$@"; do
    out+=("$(awk -v a="${before[$i]}" -v b="$(ticks "$pid")" -v hz="$hz" -v n="$n" \
      'BEGIN { printf "%.2f", (b - a) / hz * 1e6 / n }')")
    i=$((i + 1))
  done
  out+=("$(tail -1 "$client" | awk -v n="$n" '{ printf "%.2f", ($1 + $2) * 1e6 / n }')")
  rm -f "$client"
  echo "${out[*]}"
}

ceiling() { # µs per request of every process: requests/s that would fill every core
  echo "$@" | awk -v c="$CORES" '{ s = 0; for (i = 1; i <= NF; i++) s += $i; printf "%.0f", c * 1e6 / s }'
}

info_field() { # port field: one number from INFO
  redis-cli -p "$1" INFO | tr -d '\r' | awk -F: -v f="$2" '$1 == f { print $2 }'
}

row() { printf '%-16s %-4s %3s %10s %16s %10s %10s %10s %14s\n' "$@"; }
row target test P node0_us peers_us client_us ceiling/s ceil/redis writes/batch
declare -A redis_ceiling
redis-server --port "$REDIS_PORT" --save '' --appendonly no --daemonize no >/dev/null &
pids+=($!)
wait_ping "$REDIS_PORT"
redis-benchmark -p "$REDIS_PORT" -t set -n "$R" -r "$R" -c "$C" -P 16 -q >/dev/null 2>&1
for t in $TESTS; do
  for p in $PIPES; do
    read -r server client < <(per_request "$REDIS_PORT" "$t" "$p" "${pids[-1]}")
    redis_ceiling[$t-$p]=$(ceiling "$server" "$client")
    row redis-server "$t" "$p" "$server" - "$client" "${redis_ceiling[$t-$p]}" 1.00 -
  done
done
kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true; unset 'pids[-1]'

for mode in $MODES; do
  # shellcheck disable=SC2086 # CLUSTER_ARGS is a list of flags
  "$GSMO" cluster --nodes 3 --mode "$mode" --client-base "$CLIENT_BASE" --peer-base "$PEER_BASE" \
    ${CLUSTER_ARGS:-} >/tmp/gsmo-cpu-$mode.log 2>&1 &
  pids+=($!)
  for i in 0 1 2; do wait_ping $((CLIENT_BASE + i)); done
  nodes=()
  for i in 0 1 2; do
    nodes+=("$(pgrep -f -- "--client-port $((CLIENT_BASE + i)) " | head -1)")
  done
  redis-benchmark -p "$CLIENT_BASE" -t set -n "$R" -r "$R" -c "$C" -P 16 -q >/dev/null 2>&1
  for t in $TESTS; do
    for p in $PIPES; do
      m0=$(info_field "$CLIENT_BASE" multicasts_sent)
      w0=$(info_field "$CLIENT_BASE" writes_multicast)
      read -r n0 n1 n2 client < <(per_request "$CLIENT_BASE" "$t" "$p" "${nodes[@]}")
      top=$(ceiling "$n0" "$n1" "$n2" "$client")
      batch=$(awk -v m=$(($(info_field "$CLIENT_BASE" multicasts_sent) - m0)) \
        -v w=$(($(info_field "$CLIENT_BASE" writes_multicast) - w0)) \
        'BEGIN { if (m > 0) printf "%.1f", w / m; else print "-" }')
      row "$mode" "$t" "$p" "$n0" "$n1 / $n2" "$client" "$top" \
        "$(awk -v a="$top" -v b="${redis_ceiling[$t-$p]}" 'BEGIN { printf "%.2f", a / b }')" "$batch"
    done
  done
  kill -INT "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true; unset 'pids[-1]'
done

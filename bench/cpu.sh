#!/usr/bin/env bash
# CPU time per request of each node of a 3-node cluster, the steadier twin of
# bench/cluster.sh: on a shared 2-core machine requests/s swing with whatever
# else runs, but the CPU a node spends per request hardly does. Also measures
# redis-server the same way, for scale.
#
#   bench/cpu.sh                              # fifo and total-isis; GET and SET at -P 1 and -P 16,
#                                             # from one node and spread (x3)
#   MODES=causal TESTS=get PIPES=16 SHAPES=one bench/cpu.sh
#   GSMO=/path/to/other/gsmo bench/cpu.sh      # another build (before/after)
#   CLUSTER_ARGS="--max-batch 1" bench/cpu.sh  # flags for `gsmo cluster` (unbatched writes)
#   N=50000 N16=500000 bench/cpu.sh            # requests per run at -P 1 and at -P 16 (default 10 N)
#
# Prints one line per mode, shape, test and pipeline depth: user+system CPU
# microseconds per request on node 0 and on each peer, read from /proc/PID/stat
# around the run, and redis-benchmark's own (GNU time). Shape `one`: one
# redis-benchmark of C clients at node 0 (the peers only deliver the multicast);
# `x3`: three at once, one per node, the clients and requests split 17/17/16
# ways (redis-server: the same three at its one port). `req/s` is the run's
# requests over its wall time, and `cores` how many cores the nodes (or
# redis-server) used meanwhile: on a machine whose cores the client and the
# nodes share, the rate is those cores over the cluster's CPU per request.
# `ceiling/s` is the rate at which every process together would use all the
# machine's cores (nproc x 1e6 / the sum), and `ceil/redis` compares it with
# redis-server's in the same test and shape. For SET also the writes per
# multicast batch (INFO `writes_multicast` / `multicasts_sent`, all nodes).
# `turns/req` and `us/turn`: each node's event-loop turns per request and
# their mean busy time (INFO `eventloop_cycles`, `eventloop_duration_sum`
# after a `CONFIG RESETSTAT`), node 0 first: how often the loop wakes, and
# for how long, is what a protocol's messages cost beyond their bytes.
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
SHAPES=${SHAPES:-"one x3"}
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

requests() { # shape pipeline: the requests of one run (x3: three equal thirds)
  local n=$N
  if [ "$2" -gt 1 ]; then n=$N16; fi
  if [ "$1" = x3 ]; then n=$((n / 3 * 3)); fi
  echo "$n"
}

# Around one run in a shape: µs per request for each pid, redis-benchmark's own
# (all of its processes), the run's requests/s, and the cores the pids used.
per_request() { # shape port step test pipeline pid...
  local shape=$1 port=$2 step=$3 test=$4 p=$5; shift 5
  local before=() hz n dir start end i k jobs=()
  hz=$(getconf CLK_TCK); dir=$(mktemp -d)
  n=$(requests "$shape" "$p")
  for pid in "$@"; do before+=("$(ticks "$pid")"); done
  start=$(date +%s.%N)
  if [ "$shape" = x3 ]; then
    for k in 0 1 2; do
      /usr/bin/time -f '%U %S' -o "$dir/time$k" redis-benchmark -p $((port + k * step)) -t "$test" \
        -n $((n / 3)) -r "$R" -c "$(share_of_clients "$k")" -P "$p" -q >/dev/null 2>&1 &
      jobs+=($!)
    done
    wait "${jobs[@]}"
  else
    /usr/bin/time -f '%U %S' -o "$dir/time0" \
      redis-benchmark -p "$port" -t "$test" -n "$n" -r "$R" -c "$C" -P "$p" -q >/dev/null 2>&1
  fi
  end=$(date +%s.%N)
  local out=() used=0 now
  i=0
  for pid in "$@"; do
    now=$(ticks "$pid")
    out+=("$(awk -v a="${before[$i]}" -v b="$now" -v hz="$hz" -v n="$n" \
      'BEGIN { printf "%.2f", (b - a) / hz * 1e6 / n }')")
    used=$((used + now - before[i]))
    i=$((i + 1))
  done
  # Each time file's last line is `user system` in seconds.
  out+=("$(for f in "$dir"/time*; do tail -1 "$f"; done \
    | awk -v n="$n" '{ s += $1 + $2 } END { printf "%.2f", s * 1e6 / n }')")
  out+=("$(awk -v n="$n" -v a="$start" -v b="$end" 'BEGIN { printf "%.0f", n / (b - a) }')")
  out+=("$(awk -v u="$used" -v hz="$hz" -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", u / hz / (b - a) }')")
  rm -rf "$dir"
  echo "${out[*]}"
}

ceiling() { # µs per request of every process: requests/s that would fill every core
  echo "$@" | awk -v c="$CORES" '{ s = 0; for (i = 1; i <= NF; i++) s += $i; printf "%.0f", c * 1e6 / s }'
}

info_field() { # port field: one number from INFO
  redis-cli -p "$1" INFO | tr -d '\r' | awk -F: -v f="$2" '$1 == f { print $2 }'
}

row() { printf '%-20s %-4s %3s %10s %16s %10s %9s %6s %10s %10s %13s %22s %22s\n' "$@"; }
row target test P node0_us peers_us client_us req/s cores ceiling/s ceil/redis writes/batch turns/req us/turn
declare -A redis_ceiling
redis-server --port "$REDIS_PORT" --save '' --appendonly no --daemonize no >/dev/null &
pids+=($!)
wait_ping "$REDIS_PORT"
redis-benchmark -p "$REDIS_PORT" -t set -n "$R" -r "$R" -c "$C" -P 16 -q >/dev/null 2>&1
for shape in $SHAPES; do
  name=redis-server; [ "$shape" = x3 ] && name+=" x3"
  for t in $TESTS; do
    for p in $PIPES; do
      read -r server client rate cores < <(per_request "$shape" "$REDIS_PORT" 0 "$t" "$p" "${pids[-1]}")
      redis_ceiling[$shape-$t-$p]=$(ceiling "$server" "$client")
      row "$name" "$t" "$p" "$server" - "$client" "$rate" "$cores" "${redis_ceiling[$shape-$t-$p]}" 1.00 - - -
    done
  done
done
kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true; unset 'pids[-1]'

sum_info() { # field: summed over the three nodes
  local s=0 i
  for i in 0 1 2; do s=$((s + $(info_field $((CLIENT_BASE + i)) "$1"))); done
  echo "$s"
}

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
  for shape in $SHAPES; do
    name=$mode; [ "$shape" = x3 ] && name+=" x3"
    for t in $TESTS; do
      for p in $PIPES; do
        m0=$(sum_info multicasts_sent)
        w0=$(sum_info writes_multicast)
        for i in 0 1 2; do redis-cli -p $((CLIENT_BASE + i)) CONFIG RESETSTAT >/dev/null; done
        read -r n0 n1 n2 client rate cores < <(per_request "$shape" "$CLIENT_BASE" 1 "$t" "$p" "${nodes[@]}")
        n=$(requests "$shape" "$p")
        turns=() took=()
        for i in 0 1 2; do
          c=$(info_field $((CLIENT_BASE + i)) eventloop_cycles)
          d=$(info_field $((CLIENT_BASE + i)) eventloop_duration_sum)
          turns+=("$(awk -v c="$c" -v n="$n" 'BEGIN { printf "%.3f", c / n }')")
          took+=("$(awk -v c="$c" -v d="$d" 'BEGIN { if (c > 0) printf "%.1f", d / c; else print "-" }')")
        done
        top=$(ceiling "$n0" "$n1" "$n2" "$client")
        batch=$(awk -v m=$(($(sum_info multicasts_sent) - m0)) -v w=$(($(sum_info writes_multicast) - w0)) \
          'BEGIN { if (m > 0) printf "%.1f", w / m; else print "-" }')
        row "$name" "$t" "$p" "$n0" "$n1 / $n2" "$client" "$rate" "$cores" "$top" \
          "$(awk -v a="$top" -v b="${redis_ceiling[$shape-$t-$p]}" 'BEGIN { printf "%.2f", a / b }')" "$batch" \
          "${turns[0]} / ${turns[1]} / ${turns[2]}" "${took[0]} / ${took[1]} / ${took[2]}"
      done
    done
  done
  kill -INT "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true; unset 'pids[-1]'
done

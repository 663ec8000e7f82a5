#!/usr/bin/env bash
# Chandy-Lamport on a loaded cluster: 3 `gsmo node` processes, each with its
# own data dir (as on 3 hosts), holding KEYS keys of VALUE bytes (default
# 1 000 000 x 90 B, about 100 MB of payload per replica). Prints:
#   * the time to snapshot the idle cluster, and its parts;
#   * the longest event-loop pause at the record point (INFO
#     max_snapshot_record_step_us: the spec step that captures the state);
#   * SET throughput and p99 / max latency without snapshots and while
#     snapshotting back to back, and the throughput ratio during/without;
#   * the time to restart the cluster from its latest snapshot until every
#     node serves again, each node's own restore time (its log), and the user
#     and system CPU seconds each node spent.
#
#   bench/snapshot.sh
#   KEYS=100000 MODE=total-sequencer bench/snapshot.sh
#   GSMO=/path/to/other/gsmo bench/snapshot.sh   # another build (before/after)
#
# Needs redis-benchmark and redis-cli (Debian: redis-tools). A benchmark, not a test.
set -euo pipefail
cd "$(dirname "$0")/.."

KEYS=${KEYS:-1000000}
VALUE=${VALUE:-90}
MODE=${MODE:-total-isis}
WRITES=${WRITES:-200000}
CLIENT_BASE=${CLIENT_BASE:-16580}
PEER_BASE=${PEER_BASE:-17580}

TOOLS="redis-benchmark redis-cli python3"
# shellcheck source=bench/common.sh
. bench/common.sh
DATA=$(mktemp -d /tmp/gsmo-bench-snap.XXXXXX)
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$DATA"; }

members="127.0.0.1:$PEER_BASE,127.0.0.1:$((PEER_BASE + 1)),127.0.0.1:$((PEER_BASE + 2))"
start_nodes() { # extra flags for every node
  for i in 0 1 2; do
    "$GSMO" node --id "$i" --cluster "$members" --mode "$MODE" --cluster-id bench \
      --client-port $((CLIENT_BASE + i)) --data-dir "$DATA/n$i" --snapshot-timeout 600 "$@" \
      >>"$DATA/node$i.log" 2>&1 &
    pids+=($!)
  done
}
start_nodes
for i in 0 1 2; do wait_ping $((CLIENT_BASE + i)); done

echo "loading $KEYS keys x $VALUE bytes into a 3-node $MODE cluster ..."
start=$(date +%s.%N)
python3 - "$KEYS" "$VALUE" <<'PY' | redis-cli -p "$CLIENT_BASE" --pipe >/dev/null
import sys
n, size = int(sys.argv[1]), int(sys.argv[2])
out = sys.stdout.buffer
value = b"v" * size
for i in range(n):
    key = b"key:%010d" % i
    out.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(key), key, size, value))
PY
for i in 0 1 2; do
  until [ "$(redis-cli -p $((CLIENT_BASE + i)) DBSIZE)" -ge "$KEYS" ]; do sleep 0.2; done
done
echo "loaded in $(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN{printf "%.1f", e-s}') s; every replica holds $KEYS keys"

snap() { "$GSMO" snapshot take --port "$CLIENT_BASE" --data-dir "$DATA/n0" --wait 600 2>/dev/null \
  | awk '/COMPLETE in/ { sub("s:", "", $5); print $5 }'; }
t=$(snap)
bytes=$(du -scb "$DATA"/n*/snapshots | tail -1 | cut -f1)
echo "snapshot of the idle cluster: ${t} s, $((bytes / 1000000)) MB on disk (3 parts, one per node's dir)"
"$GSMO" snapshot show latest --data-dir "$DATA/n0" --data-dir "$DATA/n1" --data-dir "$DATA/n2"

# redis-benchmark --csv: "SET","rps","avg","min","p50","p95","p99","max" (ms).
bench() { redis-benchmark -p "$CLIENT_BASE" -t set -n "$WRITES" -r "$KEYS" -d "$VALUE" -c 50 -P 16 --csv 2>/dev/null \
  | awk -F'","' '/^"SET/ { gsub("\"", "", $8); print $2, $7, $8 }'; }
read -r quiet quiet_p99 quiet_max <<<"$(bench)"
echo "writes without a snapshot: $quiet SET/s, p99 $quiet_p99 ms, max $quiet_max ms"
bench >"$DATA/during" &
bpid=$!
taken=0; times=()
while kill -0 "$bpid" 2>/dev/null; do
  t=$(snap); [ -n "$t" ] && { taken=$((taken + 1)); times+=("$t"); }
done
wait "$bpid"
read -r during during_p99 during_max <"$DATA/during"
echo "writes while snapshotting back to back ($taken snapshots, ${times[*]:-} s each): $during SET/s, p99 $during_p99 ms, max $during_max ms"
awk -v a="$during" -v b="$quiet" 'BEGIN { printf "throughput ratio during/without: %.2f\n", a / b }'
for i in 0 1 2; do
  info=$(redis-cli -p $((CLIENT_BASE + i)) INFO | tr -d '\r')
  max=$(sed -n 's/^max_snapshot_record_step_us://p' <<<"$info")
  recorded=$(sed -n 's/^snapshots_recorded://p' <<<"$info")
  echo "node $i: longest event-loop pause at a record point: $((max / 1000)).$(printf %03d $((max % 1000))) ms over $recorded records"
done

# Restart from the latest snapshot: each node reads and checks its own part
# from its own dir, decodes it and rebuilds its store before it serves. The
# commit reaches the other dirs just after node 0's, so wait for it there.
latest() { # node: the newest complete snapshot in its dir (node 0 started them all, in order)
  "$GSMO" snapshot list --data-dir "$DATA/n$1" | awk '$2 == "complete" { id = $1 } END { print id }'
}
id=$(latest 0)
[ -n "$id" ] || { echo "bench: no complete snapshot in $DATA/n0" >&2; exit 1; }
for i in 1 2; do
  for _ in $(seq 1 200); do [ "$(latest "$i")" = "$id" ] && break; sleep 0.05; done
done
for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
wait 2>/dev/null || true
pids=()
start=$(date +%s.%N)
start_nodes --restore "$id"
# A node opens its client port once its store is rebuilt.
for i in 0 1 2; do
  until redis-cli -p $((CLIENT_BASE + i)) PING >/dev/null 2>&1; do
    kill -0 "${pids[$i]}" 2>/dev/null || { echo "bench: node $i did not restore:" >&2; tail -3 "$DATA/node$i.log" >&2; exit 1; }
    sleep 0.02
  done
done
echo "restore from snapshot $id until every node serves:" \
  "$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN{printf "%.2f", e-s}') s," \
  "$(redis-cli -p "$CLIENT_BASE" DBSIZE) keys on node 0"
grep -h "restored snapshot" "$DATA"/node?.log # each node's own time to read, check, decode and rebuild
hz=$(getconf CLK_TCK)
for i in 0 1 2; do
  cpu_ticks "${pids[$i]}" | awk -v i="$i" -v hz="$hz" \
    '{ printf "node %d: %.2f s user, %.2f s system CPU (restore, then idle)\n", i, $1 / hz, $2 / hz }'
done

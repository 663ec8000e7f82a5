#!/usr/bin/env bash
# Chandy-Lamport on a loaded cluster: time to snapshot a 3-node cluster holding
# KEYS keys of VALUE bytes (default 1 000 000 x 90 B, about 100 MB of payload
# per replica), and write throughput with vs without snapshots running.
#
#   bench/snapshot.sh
#   KEYS=100000 MODE=total-sequencer bench/snapshot.sh
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

cargo build --release -q -p gsmo-node
GSMO=${CARGO_TARGET_DIR:-target}/release/gsmo
DATA=$(mktemp -d /tmp/gsmo-bench-snap.XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill -INT "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$DATA"; }
trap cleanup EXIT

"$GSMO" cluster --nodes 3 --mode "$MODE" --data-dir "$DATA" --snapshot-timeout 600 \
  --client-base "$CLIENT_BASE" --peer-base "$PEER_BASE" >"$DATA/cluster.log" 2>&1 &
pid=$!
for i in 0 1 2; do
  for _ in $(seq 1 200); do redis-cli -p $((CLIENT_BASE + i)) PING >/dev/null 2>&1 && break; sleep 0.05; done
done

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

snap() { "$GSMO" snapshot take --port "$CLIENT_BASE" --data-dir "$DATA" --wait 600 2>/dev/null \
  | awk '/COMPLETE in/ { sub("s:", "", $5); print $5 }'; }
t=$(snap)
bytes=$(du -sb "$DATA/snapshots" | cut -f1)
echo "snapshot of the idle cluster: ${t} s, $((bytes / 1000000)) MB on disk (3 parts)"
"$GSMO" snapshot show latest --data-dir "$DATA"

bench() { redis-benchmark -p "$CLIENT_BASE" -t set -n "$WRITES" -r "$KEYS" -d "$VALUE" -c 50 -P 16 -q 2>/dev/null \
  | tr '\r' '\n' | awk -F'[: ]+' '/requests per second/ {print $2}' | tail -1; }
quiet=$(bench)
echo "writes without a snapshot: $quiet SET/s"
bench >"$DATA/during" &
bpid=$!
taken=0; times=()
while kill -0 "$bpid" 2>/dev/null; do
  t=$(snap); [ -n "$t" ] && { taken=$((taken + 1)); times+=("$t"); }
done
wait "$bpid"
during=$(cat "$DATA/during")
echo "writes while snapshotting back to back ($taken snapshots, ${times[*]:-} s each): $during SET/s"
awk -v a="$during" -v b="$quiet" 'BEGIN { printf "throughput ratio during/without: %.2f\n", a / b }'

#!/usr/bin/env bash
# The model checker's speed and memory on the configurations issue 16 tracks.
#
#   bench/check.sh                 # all three
#   CONFIGS="causal" bench/check.sh
#
# Prints, per configuration: wall seconds, unique states (from check's summary),
# and peak RSS (GNU time's maximum resident set size). A benchmark, not a test.
# For scale: TLC checks the causal configuration (0.54 M distinct states) in 83 s
# on this machine class.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p gsmo-model --bin check
CHECK=${CARGO_TARGET_DIR:-target}/release/check
command -v /usr/bin/time >/dev/null || { echo "bench: /usr/bin/time not found (apt-get install -y time)" >&2; exit 1; }

declare -A ARGS=(
  [causal]="causal --nodes 3 --msgs 2 --network unordered"
  [snapshot]="snapshot --nodes 3"
  [kv-isis]="kv --mode total-isis --nodes 3 --msgs 1"
)
CONFIGS=${CONFIGS:-"causal snapshot kv-isis"}
printf '%-10s %10s %14s %12s  %s\n' config seconds states peak_rss_mb args
for c in $CONFIGS; do
  out=$(mktemp)
  start=$(date +%s%N)
  # shellcheck disable=SC2086
  /usr/bin/time -f '%M' -o "$out.rss" "$CHECK" ${ARGS[$c]} >"$out" 2>&1 || true
  end=$(date +%s%N)
  states=$(grep -oE '[0-9,]+ (unique )?states' "$out" | tail -1 | grep -oE '^[0-9,]+' | tr -d , || echo '?')
  rss_kb=$(tail -1 "$out.rss")
  printf '%-10s %10.1f %14s %12d  %s\n' "$c" "$(awk "BEGIN{print ($end - $start) / 1e9}")" "$states" "$((rss_kb / 1024))" "${ARGS[$c]}"
  rm -f "$out" "$out.rss"
done

#!/usr/bin/env bash
# The model checker's speed and memory on the configurations issue 16 tracks.
#
#   bench/check.sh                          # all eight
#   CONFIGS="causal causal-sym" bench/check.sh
#   TIMEOUT=600 bench/check.sh              # give each run at most 600 s (check --timeout)
#   CHECK=/path/to/other/check bench/check.sh   # another build (before/after)
#   ROUNDS=3 CONFIGS=snapshot-sleep bench/check.sh  # each run 3 times: the median and range
#
# Without CHECK it builds check with Cargo.toml's release-lto profile (release
# with fat LTO: 6-7% less CPU than --release, about a minute more to build).
#
# Prints, per configuration: wall seconds, user CPU seconds (on a shared machine
# the steadier number), unique states (from check's summary; "+" if the run
# stopped at the timeout), and peak RSS (GNU time's maximum resident set size);
# with ROUNDS above 1, the median seconds with the lowest and highest, and the
# highest RSS (bench/stats.sh). The three configurations issue 16 sets targets
# for say whether the median meets them: causal under 4 s, snapshot-sleep
# (snapshot --nodes 3, the fastest sound search) under 60 s, kv-isis complete
# in under 8 GB.
# check searches depth first by default (causal); causal-bfs is the same space
# breadth first, which holds the whole frontier (1.4 GB; on snapshot and kv-isis
# it ran out of 14 GB). snapshot-2x2 is a bank small enough to finish
# (2 accounts x 2 transfers, 61,383 states; 89,010 while the sequencer's
# members sent their writes to everyone), so its CPU seconds compare builds exactly. There is no snapshot --symmetry: the bank's total orders break ties
# by node id, so not even rotations are sound (model/src/symmetry.rs).
# snapshot-por is the bank under partial-order reduction (model/src/por.rs);
# snapshot-sleep adds sleep sets (model/src/sleep.rs).
# A benchmark, not a test.
# For scale: TLC checks the causal configuration (0.54 M distinct states) in 83 s
# on this machine class.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${CHECK:-}" ]; then
  # Release, optimised as one program (Cargo.toml's release-lto: 6-7% less CPU).
  cargo build --profile release-lto -q -p gsmo-model --bin check
  CHECK=${CARGO_TARGET_DIR:-target}/release-lto/check
fi
command -v /usr/bin/time >/dev/null || { echo "bench: /usr/bin/time not found (apt-get install -y time)" >&2; exit 1; }
. bench/stats.sh

declare -A ARGS=(
  [causal]="causal --nodes 3 --msgs 2 --network unordered"
  [causal-bfs]="causal --nodes 3 --msgs 2 --network unordered --bfs"
  [causal-sym]="causal --nodes 3 --msgs 2 --network unordered --symmetry"
  [snapshot]="snapshot --nodes 3 --dfs"
  [snapshot-por]="snapshot --nodes 3 --dfs --por"
  [snapshot-sleep]="snapshot --nodes 3 --por --sleep"
  [snapshot-2x2]="snapshot --msgs 2 --dfs --threads 1"
  [kv-isis]="kv --mode total-isis --nodes 3 --msgs 1 --dfs"
)
CONFIGS=${CONFIGS:-"causal causal-bfs causal-sym snapshot-2x2 snapshot snapshot-por snapshot-sleep kv-isis"}
LIMIT=${TIMEOUT:+--timeout $TIMEOUT}
ROUNDS=${ROUNDS:-1}
positive ROUNDS "$ROUNDS"
declare -A TARGET=(
  [causal]="wall 4" [snapshot-sleep]="wall 60" [kv-isis]="rss 8192"
)
printf '%-14s %-21s %9s %14s %12s  %-22s %s\n' config wall_s user_s states peak_rss_mb target args
for c in $CONFIGS; do
  walls=() users=() rss_mb=0 states='?'
  for _ in $(seq "$ROUNDS"); do
    out=$(mktemp)
    # shellcheck disable=SC2086
    /usr/bin/time -f '%e %U %M' -o "$out.time" "$CHECK" ${ARGS[$c]} $LIMIT >"$out" 2>/dev/null || true
    states=$(grep -E '^ +[0-9,]+ unique states' "$out" | tail -1 | grep -oE '[0-9,]+' | head -1 | tr -d , || true)
    grep -q INCOMPLETE "$out" && states="$states+"
    read -r wall user rss_kb < <(tail -1 "$out.time")
    walls+=("$wall"); users+=("$user")
    [ $((rss_kb / 1024)) -gt "$rss_mb" ] && rss_mb=$((rss_kb / 1024))
    rm -f "$out" "$out.time"
  done
  read -r wm wl wh < <(stats "${walls[@]}")
  read -r um _ _ < <(stats "${users[@]}")
  wm=$(printf %.2f "$wm") um=$(printf %.1f "$um")
  shown=$wm; [ "$ROUNDS" -gt 1 ] && shown="$wm ($wl-$wh)"
  verdict=-
  if [ -n "${TARGET[$c]:-}" ]; then
    read -r what limit <<<"${TARGET[$c]}"
    if [ "$what" = wall ]; then
      verdict="under $limit s: "; value=$wm
    else
      verdict="in $limit MB: "; value=$rss_mb
    fi
    if [[ "$states" != *+ && "$states" != "?" ]] && awk -v v="$value" -v l="$limit" 'BEGIN { exit !(v < l) }'; then
      verdict+=met
    else
      verdict+=missed
    fi
  fi
  printf '%-14s %-21s %9s %14s %12d  %-22s %s\n' "$c" "$shown" "$um" "${states:-?}" "$rss_mb" "$verdict" "${ARGS[$c]} $LIMIT"
done

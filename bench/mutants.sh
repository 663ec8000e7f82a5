#!/usr/bin/env bash
# Mutation testing of the protocol: cargo-mutants plants one small bug at a time
# in spec/src (gsmo-spec) and each mutant is judged by what a user trusts: the
# default model-check sweep (the `check` binary's test
# `the_default_sweep_passes_with_every_example_found`, which fails on any
# violation or missing example) plus spec's and the model crate's tests (the
# targets are listed below). Prints the mutation score and the surviving
# mutants. A benchmark of the checker's power, not a test: every mutant costs an
# incremental build of gsmo-spec and gsmo-model (`--profile mutants`, see
# Cargo.toml) and the judge's tests. `.cargo/mutants.toml` says what is not mutated.
#
#   bench/mutants.sh                                  # all of spec/src (~1,150 mutants: ~7.5 h on 2 quiet cores)
#   SHARD=1/24 bench/mutants.sh                       # every 24th mutant (round-robin): the first sample
#   bench/mutants.sh --in-place --re 'KvStore::put'   # re-judge chosen mutants in this tree (no cold build)
#   bench/mutants.sh --file spec/src/snapshot.rs      # one file
#   SAMPLE="multicast/isis.rs" bench/mutants.sh       # whole files under spec/src
#   bench/mutants.sh --in-diff <(git diff main)       # only mutants in a diff (CI-sized)
#   JOBS=2 bench/mutants.sh --list                    # any cargo-mutants option passes through (not test
#                                                     # arguments after `--`: the script passes its own)
#
# Survivors ("missed") are either killed by a new property or configuration, or
# listed in docs/mutation-testing.md as equivalent, with the reason.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo-mutants >/dev/null 2>&1 || cargo install cargo-mutants --locked

OUT=${OUT:-${CARGO_TARGET_DIR:-target}/mutants-report}
JOBS=${JOBS:-1}
jobs=()  # cargo-mutants runs one at a time by default, and refuses --jobs with --in-place
if [ "$JOBS" != 1 ]; then jobs=(--jobs "$JOBS"); fi
# cargo-mutants sets a test timeout from its baseline, which is skipped (below),
# and the judge runs ~25 s of tests on 2 quiet cores (stop 64; ~8 s when this was set,
# before the model crate grew), 20-45 s more on busy ones: the test timeout
# is explicit (seconds; builds have none), above the slowest judge seen. A timed-out
# mutant counts as caught, so a timeout near the judge's time would flatter the score;
# a mutant that loops (most timeouts) pays all of it, so 180 s cost a full run hours.
TIMEOUT=${TIMEOUT:-90}
sample=()
for f in ${SAMPLE:-}; do sample+=(--file "spec/src/$f"); done
# SHARD=k/n: shard k (0-based) of n, every n-th mutant in source order, so a
# sample spans all of spec/src and is the same on every run of the same tree.
if [ -n "${SHARD:-}" ]; then sample+=(--shard "$SHARD" --sharding round-robin); fi
# Build and run only the judge's test targets: spec's unit tests and its
# `interleavings` proptests, its `predicates` and `consistency` oracles, the
# model crate's unit tests, its batched kv models (tests/batches.rs) and the
# `check` binary's tests (which hold the
# default sweep). Left out: model/tests/exit_status.rs and explorer.rs test the
# checker's exit codes and HTTP explorer, not the protocol, and would need the
# `check` executable linked for every mutant. As `--cargo-arg` they reach the
# build (`cargo test --no-run`) too, so nothing else is built; cargo-mutants'
# baseline (tests of the unmutated tree) runs gsmo-spec alone, which has no
# `check` target, so it is skipped: CI runs these tests on the unmutated tree.
judge=(--cargo-arg=--lib --cargo-arg=--bin=check
  --cargo-arg=--test=interleavings --cargo-arg=--test=predicates --cargo-arg=--test=consistency
  --cargo-arg=--test=batches)
# Skipped in every judged binary: the two tests that compare the whole unreduced
# 3-replica bank with its reductions (model/src/por.rs). They test the model's
# reduction, not the protocol, and at the mutants profile's opt-level they take
# 55-57 s each, which alone came near the timeout and let mutants "time out"
# (counted as caught) before spec's own unit tests ran.
skip=(-- --skip por::tests::silent_receipts_keep_what_is_judged
  --skip por::tests::sleep_sets_keep_what_is_judged)
mkdir -p "$OUT"

set +e
cargo mutants \
  --package gsmo-spec \
  --test-package gsmo-spec --test-package gsmo-model \
  --profile mutants \
  ${jobs[@]+"${jobs[@]}"} \
  --output "$OUT" \
  --timeout "$TIMEOUT" \
  --baseline skip \
  "${judge[@]}" \
  ${sample[@]+"${sample[@]}"} \
  "$@" \
  "${skip[@]}"
status=$?
set -e

dir="$OUT/mutants.out"
count() { if [ -f "$dir/$1" ]; then grep -c . "$dir/$1" || true; else echo 0; fi; }  # grep -c prints 0, exits 1
caught=$(count caught.txt)
missed=$(count missed.txt)
timeout=$(count timeout.txt)
unviable=$(count unviable.txt)
judged=$((caught + missed + timeout))
echo
echo "mutants: $caught caught, $timeout timed out (counted as caught: a deadline noticed them), $missed missed, $unviable unviable (did not build)"
if [ "$judged" -gt 0 ]; then
  awk -v c="$caught" -v t="$timeout" -v j="$judged" \
    'BEGIN { printf "mutation score: %.1f%% (%d of %d viable mutants killed)\n", 100 * (c + t) / j, c + t, j }'
fi
if [ "$missed" -gt 0 ]; then
  echo "survivors:"
  sed 's/^/  /' "$dir/missed.txt"
fi
# cargo-mutants exits 2 when mutants were missed, 3 on timeouts: report, do not hide.
exit "$status"

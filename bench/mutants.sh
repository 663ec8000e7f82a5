#!/usr/bin/env bash
# Mutation testing of the protocol: cargo-mutants plants one small bug at a time
# in spec/src (gsmo-spec) and each mutant is judged by what a user trusts: the
# default model-check sweep (the `check` binary's test
# `the_default_sweep_passes_with_every_example_found`, which fails on any
# violation or missing example) plus every spec and model test. Prints the
# mutation score and the surviving mutants. A benchmark of the checker's power,
# not a test: every mutant costs a release build of gsmo-spec and gsmo-model.
#
#   bench/mutants.sh                                  # all of spec/src (1055 mutants: ~30 h on 2 busy cores)
#   bench/mutants.sh --file spec/src/snapshot.rs      # one file
#   SAMPLE="multicast/isis.rs" bench/mutants.sh       # the README's measured sample (files under spec/src)
#   bench/mutants.sh --in-diff <(git diff main)       # only mutants in a diff (CI-sized)
#   JOBS=2 bench/mutants.sh --list                    # any cargo-mutants option passes through
#
# Survivors ("missed") are either killed by a new property or configuration, or
# listed in README.md ("Mutation testing") as equivalent, with the reason.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo-mutants >/dev/null 2>&1 || cargo install cargo-mutants --locked

OUT=${OUT:-${CARGO_TARGET_DIR:-target}/mutants-report}
JOBS=${JOBS:-1}
# cargo-mutants' baseline runs only the mutated package's tests (gsmo-spec, ~1 s)
# and would auto-set a 20 s test timeout, below the model tests' ~45 s: every
# mutant would "time out". So the test timeout is explicit (seconds; builds have none).
TIMEOUT=${TIMEOUT:-180}
sample=()
for f in ${SAMPLE:-}; do sample+=(--file "spec/src/$f"); done
mkdir -p "$OUT"

set +e
cargo mutants \
  --package gsmo-spec \
  --test-package gsmo-spec --test-package gsmo-model \
  --profile mutants \
  --jobs "$JOBS" \
  --output "$OUT" \
  --timeout "$TIMEOUT" \
  ${sample[@]+"${sample[@]}"} \
  "$@"
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

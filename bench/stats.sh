# shellcheck shell=bash
# Sourced by the benchmarks that repeat a measurement (ROUNDS).

stats() { # numbers...: their median, lowest and highest, on one line
  printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {
    m = (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2)
    print m, v[1], v[NR] }'
}

positive() { # name value: exits unless value is a positive integer
  [[ "$2" =~ ^[1-9][0-9]*$ ]] || { echo "bench: $1 must be a positive integer, not '$2'" >&2; exit 1; }
}

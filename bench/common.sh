# shellcheck shell=bash
# Sourced by the benchmarks in bench/: the tools they need (TOOLS, set by a
# script that needs fewer than these), the gsmo binary they measure, the ports
# they must find free, their child processes, and waiting for a port to answer.

for tool in ${TOOLS:-redis-server redis-benchmark redis-cli}; do
  command -v "$tool" >/dev/null || { echo "bench: $tool not found (apt-get install -y redis-server redis-tools)" >&2; exit 1; }
done
if [ -z "${GSMO:-}" ]; then # GSMO=path/to/gsmo measures that binary instead of building
  cargo build --release -q -p gsmo-node
  GSMO=${CARGO_TARGET_DIR:-target}/release/gsmo
fi

# A leftover server on a port the benchmark uses would answer its PINGs and be
# measured in place of the build under test: refuse to start instead.
for port in ${REDIS_PORT:-} ${CLIENT_BASE:+$CLIENT_BASE $((CLIENT_BASE + 1)) $((CLIENT_BASE + 2))} \
  ${PEER_BASE:+$PEER_BASE $((PEER_BASE + 1)) $((PEER_BASE + 2))}; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "bench: port $port is already in use (a leftover cluster or redis-server?);" \
      "stop it or choose other ports with REDIS_PORT, CLIENT_BASE and PEER_BASE" >&2
    exit 1
  fi
done

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

cpu_ticks() { # pid: its user and system CPU in clock ticks (fields 14 and 15 of
  # /proc/PID/stat; the process name before them may hold spaces)
  sed 's/.*) //' "/proc/$1/stat" | awk '{print $12, $13}'
}

wait_ping() { # port
  for _ in $(seq 1 200); do
    redis-cli -p "$1" PING >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "bench: nothing answers on port $1" >&2; exit 1
}

share_of_clients() { # k: clients of the k-th (0-2) of three redis-benchmarks sharing C (17/17/16 of 50)
  echo $(( (C + 2 - $1) / 3 ))
}

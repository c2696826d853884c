#!/usr/bin/env bash
# Reproduces docs/BENCHMARKS.md: starts the local stack and release builds of
# cx-ingest and cx-scoring, then measures ingest (with its raw-produce
# baseline) and scoring (with Redis commands per event and the
# redis-benchmark baseline), then the criterion benches.
#
#   deploy/local/bench.sh [ingest|scoring|criterion|all]
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
export PATH="$HOME/.cargo/bin:$PATH"
what="${1:-all}"
run="$root/.local/bench"
mkdir -p "$run"
token="bench-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  deploy/local/stack.sh down
}
trap cleanup EXIT

deploy/local/stack.sh up
cargo build --release --bins --locked

export CX_AUTH_TOKENS="$token=ingest:write,metrics:read"
export CX_KAFKA_PROPERTIES="fetch.wait.max.ms=10"
export RUST_LOG=warn
export CX_BENCH_TOKEN="$token"

# Starts one service, waits until it is ready.
start() {
  target/release/cx-$1 >"$run/$1.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 300); do
    curl -fsS "http://127.0.0.1:$2/readyz" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "cx-$1 did not become ready; see $run/$1.log" >&2
  exit 1
}
stop_all() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
}

echo "machine: $(nproc) cores, commit $(git rev-parse --short HEAD)"
# Each service is measured alone with the broker and Redis, on a fresh broker.
if [ "$what" = ingest ] || [ "$what" = all ]; then
  start ingest 8081
  target/release/cx-bench ingest --count "${CX_BENCH_COUNT:-200000}" --kafka-properties "$CX_KAFKA_PROPERTIES"
  stop_all
  deploy/local/stack.sh down && deploy/local/stack.sh up
fi
if [ "$what" = scoring ] || [ "$what" = all ]; then
  start scoring 8082
  target/release/cx-bench scoring --count "${CX_BENCH_COUNT:-200000}" --kafka-properties "$CX_KAFKA_PROPERTIES"
  stop_all
fi
if [ "$what" = criterion ] || [ "$what" = all ]; then
  cargo bench --locked -p cx-scoring --bench per_event -- --warm-up-time 1 --measurement-time 5
  cargo bench --locked -p cx-analytics -- --warm-up-time 1 --measurement-time 3
fi

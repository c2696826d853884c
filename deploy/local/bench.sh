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
# shellcheck source=services.sh
. deploy/local/services.sh
token="$(new_token bench)"
cleanup() {
  stop_services
  deploy/local/stack.sh down
}
trap cleanup EXIT

deploy/local/stack.sh up
cargo build --release --bins --locked

export CX_AUTH_TOKENS="$token=ingest:write,metrics:read"
export CX_KAFKA_PROPERTIES="fetch.wait.max.ms=10"
export RUST_LOG=warn
export CX_BENCH_TOKEN="$token"

echo "machine: $(nproc) cores, commit $(git rev-parse --short HEAD)"
# Each service is measured alone with the broker and Redis, on a fresh broker.
if [ "$what" = ingest ] || [ "$what" = all ]; then
  start_service ingest 8081
  target/release/cx-bench ingest --count "${CX_BENCH_COUNT:-200000}" --kafka-properties "$CX_KAFKA_PROPERTIES"
  stop_services
  deploy/local/stack.sh down && deploy/local/stack.sh up
fi
if [ "$what" = scoring ] || [ "$what" = all ]; then
  start_service scoring 8082
  target/release/cx-bench scoring --count "${CX_BENCH_COUNT:-200000}" --kafka-properties "$CX_KAFKA_PROPERTIES"
  stop_services
fi
if [ "$what" = criterion ] || [ "$what" = all ]; then
  cargo bench --locked -p cx-scoring --bench per_event -- --warm-up-time 1 --measurement-time 5
  cargo bench --locked -p cx-analytics -- --warm-up-time 1 --measurement-time 3
fi

#!/usr/bin/env bash
# Reproduces docs/BENCHMARKS.md: starts the local stack and release builds of
# cx-ingest and cx-scoring, then measures ingest (with its raw-produce
# baseline) and scoring (with Redis commands per event and the
# redis-benchmark baseline), then the criterion benches.
#
# "loop" runs all four services and measures ingest-ack → alert → task
# latency at 2k interactions/s (cx-bench loop-latency).
#
# "throughput" runs all four services and offers 20k interactions/s in
# batches for 20 s (CX_BENCH_RATE, CX_BENCH_SECONDS): the sustained
# end-to-end rate, nothing lost.
#
# CX_SERVICE_BIN_DIR runs the services from another folder (e.g. an older
# build's target/release) to compare two builds on the same machine.
#
#   deploy/local/bench.sh [ingest|scoring|loop|throughput|criterion|all]
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
# A stack of its own, started empty for each measurement: data left by
# earlier runs (or a demo) would slow Redis and skew the figures.
export CX_STACK_STATE="$run/stack"
fresh_stack() {
  deploy/local/stack.sh down
  rm -rf "$CX_STACK_STATE"
  deploy/local/stack.sh up
  # stack.sh uses a Redis or broker it finds on the ports: figures taken on
  # someone else's (a demo's, a test run's) would not be comparable.
  if [ ! -f "$CX_STACK_STATE/redis.pid" ] || [ ! -f "$CX_STACK_STATE/kafka.pid" ]; then
    echo "bench: a Redis or broker not started by this bench is on the ports; stop it first" >&2
    exit 1
  fi
}
cleanup() {
  stop_services
  deploy/local/stack.sh down
}
trap cleanup EXIT

fresh_stack
cargo build --release --bins --locked

export CX_AUTH_TOKENS="$token=ingest:write,metrics:read,alerts:read,followups:read,followups:write"
# librdkafka properties for the services and the benches (CX_BENCH_KAFKA_PROPERTIES
# overrides): tansu holds every fetch for the full fetch.wait.max.ms.
export CX_KAFKA_PROPERTIES="${CX_BENCH_KAFKA_PROPERTIES:-fetch.wait.max.ms=10}"
# Per-group properties (CX_KAFKA_GROUP_PROPERTIES, `group:name=value;…`): none
# unless CX_BENCH_KAFKA_GROUP_PROPERTIES gives some.
export CX_KAFKA_GROUP_PROPERTIES="${CX_BENCH_KAFKA_GROUP_PROPERTIES:-}"
export RUST_LOG=warn
export CX_BENCH_TOKEN="$token"

echo "machine: $(nproc) cores, commit $(git rev-parse --short HEAD)"
# Each service is measured alone with the broker and Redis, on a fresh broker.
if [ "$what" = ingest ] || [ "$what" = all ]; then
  start_service ingest 8081
  target/release/cx-bench ingest --count "${CX_BENCH_COUNT:-200000}" --kafka-properties "$CX_KAFKA_PROPERTIES"
  stop_services
  fresh_stack
fi
if [ "$what" = scoring ] || [ "$what" = all ]; then
  start_service scoring 8082
  target/release/cx-bench scoring --count "${CX_BENCH_COUNT:-200000}" --kafka-properties "$CX_KAFKA_PROPERTIES"
  stop_services
fi
start_loop() {
  # One partition per topic (CX_TOPIC_PARTITIONS overrides): one replica of
  # each service needs no more. tansu (0.6.0) lists every stored batch of
  # each partition a fetch reads, so each partition adds to every fetch:
  # at 6, ack -> alert p99 was 220-240 ms at 2k/s against 100-159 ms at 1
  # (docs/BENCHMARKS.md). Not for low rates (the demo's 25/s): there each
  # request is one batch anyway and one partition holds them all.
  # Deployments size partitions to their replicas.
  export CX_TOPIC_PARTITIONS="${CX_TOPIC_PARTITIONS:-1}"
  echo "topics: $CX_TOPIC_PARTITIONS partition(s) each"
  fresh_stack
  machine_baseline before
  start_service ingest 8081
  start_service scoring 8082
  start_service alerting 8083
  start_service followup 8084
}
# This machine's speed right now, for comparing runs: the same code gave
# 13.5k and 19.4k interactions/s twenty minutes apart (docs/BENCHMARKS.md).
# Taken on the fresh Redis before the services start and again after the
# figures are printed; its keys and command statistics are cleared each time.
# One short probe: it only tells a fast period from a slow one.
machine_baseline() {
  local port="${CX_STACK_REDIS_PORT:-6379}"
  echo "machine baseline $1: redis-benchmark -P 64 -t set: $(redis-benchmark -p "$port" -q -n 1000000 -P 64 -t set | tr '\r' '\n' | grep -o 'SET: [0-9.]*' | tail -1 | cut -d' ' -f2) ops/s"
  redis-cli -p "$port" flushall >/dev/null
  redis-cli -p "$port" config resetstat >/dev/null
}
cpu_s() { # CPU seconds (user + system) a process has used
  awk -v hz="$(getconf CLK_TCK)" '{printf "%.1f", ($14 + $15) / hz}' "/proc/$1/stat"
}
peak_rss() {
  # start_service appended their PIDs in this order.
  local names=(ingest scoring alerting followup) i
  for i in "${!names[@]}"; do
    echo "cx-${names[$i]} peak RSS: $(awk '/VmHWM/ {print $2, $3}' "/proc/${pids[$i]}/status"), CPU $(cpu_s "${pids[$i]}") s"
  done
  echo "redis-server CPU $(cpu_s "$(cat "$CX_STACK_STATE/redis.pid")") s, broker CPU $(cpu_s "$(cat "$CX_STACK_STATE/kafka.pid")") s"
  echo "Redis commands by time spent (calls, seconds):"
  redis-cli -p "${CX_STACK_REDIS_PORT:-6379}" info commandstats | awk -F'[:=,]' '/^cmdstat_/ {printf "  %-22s %10d %8.2f\n", substr($1, 9), $3, $5 / 1e6}' |
    sort -k3 -nr | head -10
}
if [ "$what" = loop ] || [ "$what" = all ]; then
  start_loop
  # 200 response alerts/s (the alerting target's load), then 500/s with tasks.
  target/release/cx-bench loop-latency --rate 2000 --seconds 20 --detractor-share 0.1
  target/release/cx-bench loop-latency --rate 2000 --seconds 20 --detractor-share 0.25 --tasks
  target/release/cx-bench task-updates --tasks 5000 --concurrency 64
  peak_rss
  machine_baseline after
  stop_services
fi
if [ "$what" = throughput ] || [ "$what" = all ]; then
  start_loop
  target/release/cx-bench loop-latency --rate "${CX_BENCH_RATE:-20000}" --seconds "${CX_BENCH_SECONDS:-20}" \
    --batch 500 --detractor-share 0.05 --tasks --wait-seconds 120
  peak_rss
  machine_baseline after
  stop_services
fi
if [ "$what" = criterion ] || [ "$what" = all ]; then
  cargo bench --locked -p cx-scoring --bench per_event -- --warm-up-time 1 --measurement-time 5
  cargo bench --locked -p cx-rules --bench rules -- --warm-up-time 1 --measurement-time 5
  cargo bench --locked -p cx-analytics -- --warm-up-time 1 --measurement-time 3
  cargo bench --locked -p cx-proto --bench decode -- --warm-up-time 1 --measurement-time 5
fi

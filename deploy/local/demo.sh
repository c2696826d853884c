#!/usr/bin/env bash
# The demo: installs and starts Redis and the broker if missing, builds and
# starts cxloop's services, feeds sample contact-centre interactions and
# shows what lands on Kafka. Ctrl-C stops everything it started.
#
# At this stage cx-ingest and cx-scoring exist; alerting and follow-up join
# the demo as they land.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
export PATH="$HOME/.cargo/bin:$PATH"
run="$root/.local/demo"
mkdir -p "$run"
# shellcheck source=services.sh
. deploy/local/services.sh
token="$(new_token demo)"

cleanup() {
  stop_services
  deploy/local/stack.sh down
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "1/4 local stack (Redis + Kafka-protocol broker)"
deploy/local/stack.sh up

step "2/4 building cxloop (release; the first build takes several minutes)"
cargo build --release --bins --locked

step "3/4 starting cx-ingest (127.0.0.1:50051 / :8081) and cx-scoring (127.0.0.1:50052 / :8082)"
export CX_AUTH_TOKENS="$token=ingest:write,metrics:read,alerts:read,alerts:write,followups:read,followups:write"
export CX_KAFKA_PROPERTIES="fetch.wait.max.ms=10"
# A Redis key prefix of its own: the rolling metrics show this run only.
printf '[redis]\nkey_prefix = "cxdemo:%s"\n' "${token#demo-}" >"$run/cx.toml"
export CX_CONFIG="$run/cx.toml"
start_service ingest 8081
start_service scoring 8082
unset CX_AUTH_TOKENS
echo "ready (logs: $run/)"

step "4/4 submitting sample interactions; records as they land on cx.interactions.v1"
target/release/cx-bench tail --topic cx.interactions.v1 --idle-exit-s 5 &
tail_pid=$!
pids+=($tail_pid)
sleep 1
CX_BENCH_TOKEN="$token" target/release/cx-bench sample --count 40
wait "$tail_pid" || true

echo
echo "rolling metrics per queue (MetricsService.RankKeys, worst NPS first):"
sleep 1
CX_BENCH_TOKEN="$token" target/release/cx-bench metrics --dimension queue --window 1h --metric nps
echo
echo "ingest metrics:"
curl -fsS http://127.0.0.1:8081/metrics | grep -E '^cx_ingest_(interactions|redactions)_total' || true
echo
echo "Note the verbatims: e-mail addresses, phone and card numbers were redacted before publishing,"
echo "and the resubmitted interaction was answered duplicate=true and not published again."

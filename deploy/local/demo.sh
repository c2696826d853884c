#!/usr/bin/env bash
# The demo: installs and starts Redis and the broker if missing, builds and
# starts cxloop's services, feeds sample contact-centre interactions and
# shows what lands on Kafka. Ctrl-C stops everything it started.
#
# At this stage of the project only cx-ingest exists; scoring, alerting and
# follow-up join the demo as they land.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
export PATH="$HOME/.cargo/bin:$PATH"
run="$root/.local/demo"
mkdir -p "$run"
token="demo-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
pids=()

cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  deploy/local/stack.sh down
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "1/4 local stack (Redis + Kafka-protocol broker)"
deploy/local/stack.sh up

step "2/4 building cxloop (release; the first build takes several minutes)"
cargo build --release --bins --locked

step "3/4 starting cx-ingest (gRPC 127.0.0.1:50051, HTTP 127.0.0.1:8081)"
CX_AUTH_TOKENS="$token=ingest:write,metrics:read,alerts:read,alerts:write,followups:read,followups:write" \
CX_KAFKA_PROPERTIES="fetch.wait.max.ms=10" \
  target/release/cx-ingest >"$run/ingest.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 300); do
  curl -fsS http://127.0.0.1:8081/readyz >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS http://127.0.0.1:8081/readyz >/dev/null || { echo "cx-ingest did not become ready; see $run/ingest.log"; exit 1; }
echo "ready (logs: $run/ingest.log)"

step "4/4 submitting sample interactions; records as they land on cx.interactions.v1"
target/release/cx-bench tail --topic cx.interactions.v1 --idle-exit-s 5 &
tail_pid=$!
pids+=($tail_pid)
sleep 1
CX_BENCH_TOKEN="$token" target/release/cx-bench sample --count 12
wait "$tail_pid" || true

echo
echo "ingest metrics:"
curl -fsS http://127.0.0.1:8081/metrics | grep -E '^cx_ingest_(interactions|redactions)_total' || true
echo
echo "Note the verbatims: e-mail addresses, phone and card numbers were redacted before publishing,"
echo "and the resubmitted interaction was answered duplicate=true and not published again."

#!/usr/bin/env bash
# The demo: installs and starts Redis and the broker if missing, builds and
# starts the four services, runs cx-sim (realistic contact-centre traffic,
# an incident on one queue, and a CRM that works the follow-up tasks), and
# shows live what happens: alerts, tasks opened, escalated, resolved, the
# customer recovered, and NPS per queue. Ctrl-C stops everything it started.
#
#   deploy/local/demo.sh               # until Ctrl-C
#   CX_DEMO_SECONDS=120 deploy/local/demo.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
export PATH="$HOME/.cargo/bin:$PATH"
run="$root/.local/demo"
mkdir -p "$run"
# shellcheck source=services.sh
. deploy/local/services.sh
token="$(new_token demo)"
seconds="${CX_DEMO_SECONDS:-0}"

cleanup() {
  trap - EXIT INT TERM
  echo
  echo "stopping…"
  # Viewers and their pipelines first (every direct child), then the services.
  pkill -P $$ 2>/dev/null || true
  stop_services
  deploy/local/stack.sh down
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "1/5 local stack: Redis + a Kafka-protocol broker (installed if missing)"
deploy/local/stack.sh up

step "2/5 building cxloop (release; the first build takes several minutes)"
cargo build --release --bins --locked

step "3/5 starting cx-ingest, cx-scoring, cx-alerting, cx-followup"
export CX_AUTH_TOKENS="$token=ingest:write,metrics:read,alerts:read,alerts:write,followups:read,followups:write"
export CX_KAFKA_PROPERTIES="fetch.wait.max.ms=10"
export RUST_LOG="${RUST_LOG:-warn}"
# This run's own Redis key prefix (fresh metrics), a routing directory, and
# short SLAs so escalations show up within the demo.
cat >"$run/cx.toml" <<EOF
[redis]
key_prefix = "cxdemo:${token#demo-}"

[followup.sla]
critical_s = 90
high_s = 120
normal_s = 180

[followup.directory]
default_owner = "cx-desk"
head_of_cx = "head-of-cx"
teams = { team-0 = { lead = "lead-ana", manager = "mgr-bo" }, team-1 = { lead = "lead-cy", manager = "mgr-di" }, team-2 = { lead = "lead-ed", manager = "mgr-fa" } }
queues = { billing = { owner = "billing-owner", manager = "billing-manager" }, retention = { owner = "retention-owner" } }
EOF
export CX_CONFIG="$run/cx.toml"
for service in ingest:8081 scoring:8082 alerting:8083 followup:8084; do
  printf '  cx-%-9s' "${service%%:*}"
  start_service "${service%%:*}" "${service##*:}"
  echo "ready on 127.0.0.1:${service##*:} (log $run/${service%%:*}.log)"
done
unset CX_AUTH_TOKENS
export CX_TOKEN="$token"

step "4/5 cx-sim: traffic, an incident on the billing queue, and a CRM working the tasks"
# A week of history first (so spike alerts have a baseline), then live traffic.
target/release/cx-sim --token "$token" --rate 25 --backfill 3000 --seed 7 \
  --incident-queue billing --incident-after-s 30 --incident-for-s 60 \
  --crm --quiet >"$run/sim.log" 2>&1 &
pids+=($!)

step "5/5 live: alerts (A), task changes (T), CRM actions, NPS per queue every 20 s"
target/release/cxctl alerts tail | sed -u 's/^/A  /' &
pids+=($!)
target/release/cxctl tasks watch | sed -u 's/^/T  /' &
pids+=($!)
tail -n +1 -F "$run/sim.log" 2>/dev/null | grep --line-buffered '^crm' | sed -u 's/^/   /' &
pids+=($!)

started=$SECONDS
while true; do
  sleep 20
  echo
  echo "---- NPS per queue, last hour (worst first) ----"
  target/release/cxctl metrics --dimension queue --window 1h --metric nps --min-responses 5 || true
  echo "---- loop measures (GET /v1/stats) ----"
  curl -fsS -H "authorization: Bearer $token" http://127.0.0.1:8084/v1/stats || true
  echo
  if [ "$seconds" -gt 0 ] && [ $((SECONDS - started)) -ge "$seconds" ]; then
    break
  fi
done

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

sim_pid=""
cleanup() {
  trap - EXIT INT TERM HUP
  echo
  echo "stopping…"
  # The viewers and their pipelines first (every other direct child), so
  # they do not report the services going away. cx-sim stops on SIGINT and
  # prints its summary. The services and the stack run in sessions of their
  # own: the one SIGTERM from stop_services drains each service while Kafka
  # and Redis are still up, then the stack stops.
  local child
  for child in $(pgrep -P $$ || true); do
    case " ${pids[*]} $sim_pid " in
      *" $child "*) ;;
      *) kill "$child" 2>/dev/null || true ;;
    esac
  done
  if [ -n "$sim_pid" ]; then
    kill -INT "$sim_pid" 2>/dev/null || true
    # cx-sim waits up to 10 s for its sends in flight, then summarises.
    for _ in $(seq 1 120); do kill -0 "$sim_pid" 2>/dev/null || break; sleep 0.1; done
    kill "$sim_pid" 2>/dev/null || true
    sed -n '/^cx-sim summary:/,$p' "$run/sim.log" 2>/dev/null || true
  fi
  stop_services
  deploy/local/stack.sh down
}
trap cleanup EXIT
# HUP too: the services run in sessions of their own, so a closed terminal
# reaches them only through this cleanup.
trap 'exit 130' INT TERM HUP

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "1/5 local stack: Redis + a Kafka-protocol broker (installed if missing)"
deploy/local/stack.sh up

step "2/5 building cxloop (release; the first build takes several minutes)"
cargo build --release --bins --locked

step "3/5 starting cx-ingest, cx-scoring, cx-alerting, cx-followup"
export CX_AUTH_TOKENS="$token=ingest:write,metrics:read,alerts:read,alerts:write,followups:read,followups:write"
export CX_KAFKA_PROPERTIES="fetch.wait.max.ms=10"
export RUST_LOG="${RUST_LOG:-warn}"
# This run's own Redis key prefix (fresh metrics), a routing directory,
# short SLAs so escalations show up within the demo, and window rules on
# 15 minutes with large samples so the incident (not noise) fires them.
cat >"$run/cx.toml" <<EOF
[redis]
key_prefix = "cxdemo:${token#demo-}"

[[alerting.rules]]
name = "detractor"
kind = "response"
severity = "warning"

[[alerting.rules]]
name = "churn_risk"
kind = "keyword"
severity = "warning"
keywords = ["cancel", "close my account", "switch provider", "terminate contract"]
tags = ["cancellation"]

[[alerting.rules]]
name = "legal_threat"
kind = "keyword"
severity = "critical"
keywords = ["lawyer", "solicitor", "legal action", "ombudsman", "regulator"]

[[alerting.rules]]
name = "queue_nps_low"
kind = "threshold"
severity = "critical"
dimension = "queue"
window = "15m"
metric = "nps"
op = "below"
bound = -8.0
min_responses = 150

[[alerting.rules]]
name = "queue_detractor_spike"
kind = "spike"
severity = "critical"
dimension = "queue"
window = "15m"
p_value = 0.0001
min_responses = 150
min_rate_increase = 0.15

[followup.sla]
critical_s = 90
high_s = 120
normal_s = 180

[followup.directory]
default_owner = "cx-desk"
head_of_cx = "head-of-cx"
teams = { team-01 = { lead = "lead-ana", manager = "mgr-bo" }, team-02 = { lead = "lead-cy", manager = "mgr-di" }, team-03 = { lead = "lead-ed", manager = "mgr-fa" }, team-04 = { lead = "lead-gus", manager = "mgr-bo" }, team-05 = { lead = "lead-hal", manager = "mgr-di" } }
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

step "4/5 cx-sim: a week of history, live traffic, an incident on billing at 20 s, a CRM working the tasks (5 % left alone: they escalate when their SLA runs out)"
target/release/cx-sim --token "$token" --rate 25 --backfill 20000 --seed 7 \
  --incident-queue billing --incident-after-s 20 --incident-for-s 120 \
  --crm --crm-skip-pct 5 --quiet >"$run/sim.log" 2>&1 &
sim_pid=$!
# The CRM starts reading tasks once the history is in.
for _ in $(seq 1 100); do grep -q 'backfill done' "$run/sim.log" 2>/dev/null && break; sleep 0.2; done

step "5/5 one customer's story, critical alerts, and the numbers every 20 s"
echo "   T = changes of cust-demo's task, CRM = what the CRM does for it, ESC = escalations (cx-followup's SLA timer),"
echo "   A = critical alerts (legal threats, the incident's threshold and spike alerts), INC = the incident starting and ending"
target/release/cxctl alerts tail --severity critical | sed -u 's/^/A    /' &
target/release/cxctl tasks watch --customer cust-demo | sed -u 's/^/T    /' &
tail -n 0 -F "$run/sim.log" 2>/dev/null | grep --line-buffered -E 'cust-demo| escalated to |^sim: incident' \
  | sed -u -E -e '/ escalated to /s/^crm: /ESC  /' -e 's/^sim: /INC  /' -e '/^(ESC|INC) /!s/^/CRM  /' &
sleep 1
now="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
printf '%s\n' "{\"interaction_id\":\"demo-$RANDOM$RANDOM\",\"customer_id\":\"cust-demo\",\"occurred_at\":\"$now\",\"channel\":\"voice\",\"agent_id\":\"agent-001\",\"team_id\":\"team-01\",\"queue_id\":\"billing\",\"nps\":2,\"csat\":1,\"verbatim\":\"Charged twice and nobody called back. I will cancel. Call me on 07700 900123\",\"hold_time_s\":900,\"transfers\":2}" \
  | target/release/cxctl submit - | sed "s/^/     $(date -u +%H:%M:%S) submitted: /"
sleep 2
echo "     cust-demo's alerts:"
target/release/cxctl alerts list --limit 0 | grep 'cust-demo' | sed 's/^/A    /' || true

started=$SECONDS
while true; do
  sleep 20
  echo
  echo "---- NPS per queue, last 15 minutes (worst first) ----"
  target/release/cxctl metrics --dimension queue --window 15m --metric nps --min-responses 5 || true
  echo "---- alerts so far, by rule ----"
  target/release/cxctl alerts list --limit 0 --json | grep -o '"rule":"[^"]*"' | cut -d'"' -f4 \
    | sort | uniq -c | sort -rn || true
  echo "---- the loop, per team (GET /v1/stats) ----"
  target/release/cxctl stats || true
  if [ "$seconds" -gt 0 ] && [ $((SECONDS - started)) -ge "$seconds" ]; then
    break
  fi
done

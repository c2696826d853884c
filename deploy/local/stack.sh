#!/usr/bin/env bash
# The local stack cxloop runs against: Redis (Debian's redis-server) and a
# Kafka-protocol broker (tansu; deployments use Apache Kafka, see
# docker-compose.yml). Installs what is missing, starts both on 127.0.0.1,
# waits until they answer, and stops exactly what it started (by PID).
#
#   deploy/local/stack.sh install | up | down | status
#
# Ports: CX_STACK_REDIS_PORT (6379), CX_STACK_KAFKA_PORT (9092); state: CX_STACK_STATE.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# CX_STACK_STATE: where Redis keeps its data and both keep logs and PIDs
# (benchmarks use a fresh one so earlier runs' data cannot slow them).
state="${CX_STACK_STATE:-$root/.local/stack}"
redis_port="${CX_STACK_REDIS_PORT:-6379}"
kafka_port="${CX_STACK_KAFKA_PORT:-9092}"
export PATH="$HOME/.cargo/bin:$PATH"

log() { printf '[stack] %s\n' "$*" >&2; }

answers() { # host port: true when something accepts TCP connections there
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install() {
  local tool
  for tool in curl openssl; do
    if ! command -v "$tool" >/dev/null 2>&1; then
      log "installing $tool (apt-get)"
      as_root apt-get install -y "$tool" >/dev/null 2>&1 || {
        as_root apt-get update >/dev/null
        as_root apt-get install -y "$tool" >/dev/null
      }
    fi
  done
  if ! command -v redis-server >/dev/null 2>&1; then
    log "installing redis-server (apt-get)"
    as_root apt-get install -y redis-server >/dev/null 2>&1 || {
      as_root apt-get update >/dev/null
      as_root apt-get install -y redis-server >/dev/null
    }
  fi
  if ! command -v tansu >/dev/null 2>&1; then
    log "installing the tansu broker (cargo install; about 10 minutes on 2 cores)"
    cargo install tansu --locked --features dynostore,libsql
  fi
}

wait_for() { # name port seconds
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    if answers "$2"; then return 0; fi
    sleep 0.1
  done
  log "$1 did not answer on port $2 within $3 s"
  return 1
}

# The services' default ports (50051–50054, 8081–8084) lie inside Linux's
# ephemeral range, so the kernel may hand one to a client connection as its
# source port; a service starting meanwhile cannot bind it (cx-followup
# failed so on 50054 in three bench runs in a row, and not once the ports
# were reserved). Reserving them keeps the kernel from handing them out.
# Best effort: it needs root.
reserve_service_ports() {
  local file=/proc/sys/net/ipv4/ip_local_reserved_ports wanted="50051-50054,8081-8084" current
  [ -r "$file" ] || return 0
  current="$(cat "$file")"
  case ",$current," in *",50051-50054,"*) return 0 ;; esac
  if as_root sh -c "echo '${current:+$current,}$wanted' > $file" 2>/dev/null; then
    log "reserved the service ports $wanted (net.ipv4.ip_local_reserved_ports)"
  else
    log "could not reserve ports $wanted; a service may rarely fail to bind (Address already in use)"
  fi
}

start_redis() {
  if answers "$redis_port"; then
    log "redis already answers on $redis_port: using it (not ours to stop)"
    return
  fi
  mkdir -p "$state/redis"
  # setsid: a session of its own, so a Ctrl-C meant for the script that
  # started it (the demo) does not stop it under services still draining.
  setsid redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$state/redis" \
    --appendonly yes --appendfsync everysec --save "" --daemonize no \
    >"$state/redis.log" 2>&1 &
  echo $! >"$state/redis.pid"
  wait_for redis "$redis_port" 20
  # The port answers before the AOF is loaded; until then commands fail.
  for _ in $(seq 1 600); do
    [ "$(redis-cli -p "$redis_port" ping 2>/dev/null)" = "PONG" ] && break
    sleep 0.1
  done
  log "redis up on 127.0.0.1:$redis_port (pid $(cat "$state/redis.pid"))"
}

start_kafka() {
  if answers "$kafka_port"; then
    log "a broker already answers on $kafka_port: using it (not ours to stop)"
    return
  fi
  setsid tansu broker \
    --listener-url "tcp://127.0.0.1:$kafka_port" \
    --advertised-listener-url "tcp://127.0.0.1:$kafka_port" \
    --storage-engine memory://tansu/ \
    >"$state/kafka.log" 2>&1 &
  echo $! >"$state/kafka.pid"
  wait_for broker "$kafka_port" 60
  log "broker (tansu) up on 127.0.0.1:$kafka_port (pid $(cat "$state/kafka.pid"))"
}

stop_one() {
  local pidfile="$state/$1.pid"
  [ -f "$pidfile" ] || return 0
  local pid
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    log "stopped $1 (pid $pid)"
  fi
  rm -f "$pidfile"
}

case "${1:-}" in
  install) install ;;
  up)
    install
    mkdir -p "$state"
    reserve_service_ports
    start_redis
    start_kafka
    ;;
  down)
    stop_one kafka
    stop_one redis
    ;;
  status)
    answers "$redis_port" && log "redis: up on $redis_port" || log "redis: down"
    answers "$kafka_port" && log "broker: up on $kafka_port" || log "broker: down"
    ;;
  *)
    echo "usage: $0 install|up|down|status" >&2
    exit 2
    ;;
esac

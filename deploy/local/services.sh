# Sourced by demo.sh and bench.sh: start release builds of cxloop services
# in the background, wait for /readyz, and stop exactly those on exit.
# Expects $root (repository) and $run (log folder) to be set.

pids=()

# start_service NAME HTTP_PORT: runs target/release/cx-NAME (or cx-NAME in
# CX_SERVICE_BIN_DIR, e.g. another build to compare), waits until ready.
# In a session of its own (setsid): a terminal's Ctrl-C reaches the script
# only, and stop_services sends the one SIGTERM that drains the service (a
# second signal would make it exit without draining). These scripts run
# without job control, so a background job is no process group leader and
# setsid execs in place: $! is the service's own PID.
start_service() {
  setsid "${CX_SERVICE_BIN_DIR:-$root/target/release}/cx-$1" >"$run/$1.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 300); do
    curl -fsS "http://127.0.0.1:$2/readyz" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "cx-$1 did not become ready; see $run/$1.log:" >&2
  tail -n 5 "$run/$1.log" >&2
  if grep -q "Address already in use" "$run/$1.log" && command -v ss >/dev/null; then
    echo "sockets on its ports:" >&2
    ss -tanp | grep -E ":($2|$(grep -o '127.0.0.1:[0-9]*' "$run/$1.log" | head -1 | cut -d: -f2))\b" >&2 || true
  fi
  exit 1
}

stop_services() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
}

# A random bearer token for this run, never written to disk.
new_token() {
  printf '%s-%s' "$1" "$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
}

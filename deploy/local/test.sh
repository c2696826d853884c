#!/usr/bin/env bash
# The whole test suite: formatting, deployment-file schemas, lints, unit,
# integration and end-to-end tests against a real broker and Redis (started here if missing, stopped
# after). Fails on any failure; a test that needs the stack never skips.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
export PATH="$HOME/.cargo/bin:$PATH"

deploy/local/stack.sh up
trap 'deploy/local/stack.sh down' EXIT

export CX_TEST_KAFKA_BROKERS="127.0.0.1:${CX_STACK_KAFKA_PORT:-9092}"
export CX_TEST_REDIS_URL="redis://127.0.0.1:${CX_STACK_REDIS_PORT:-6379}"

cargo fmt --all -- --check
# Docker and Kubernetes cannot run here: their files are checked against
# their schemas instead (and against the services by tests/tests/deploy.rs).
deploy/local/check-manifests.sh
cargo clippy --workspace --all-targets --locked -- -D warnings
# End-to-end tests run the real binaries: build them first.
cargo build --workspace --bins --locked
cargo test --workspace --locked -- --test-threads "${CX_TEST_THREADS:-4}"

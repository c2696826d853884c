# syntax=docker/dockerfile:1
#
# One image with every cxloop binary: cx-ingest, cx-scoring, cx-alerting,
# cx-followup, the cx-sim traffic simulator, the cxctl operator CLI and the
# cx-bench load tool. The command picks the binary:
#
#   docker build -t cxloop .
#   docker run --rm -p 127.0.0.1:8081:8081 \
#     -e CX_HTTP_ADDR=0.0.0.0:8081 -e CX_GRPC_ADDR=0.0.0.0:50051 \
#     -e CX_KAFKA_BROKERS=kafka:9092 -e CX_REDIS_URL=redis://redis:6379 \
#     cxloop cx-ingest
#
# The services listen on 127.0.0.1 by default: in a container set
# CX_GRPC_ADDR / CX_HTTP_ADDR to 0.0.0.0:<port> (docker-compose.yml and
# deploy/k8s do). Ports: ingest 50051/8081, scoring 50052/8082,
# alerting 50053/8083, followup 50054/8084 (gRPC/HTTP).
#
# Needs BuildKit (default in Docker 23+) for the cache mounts.

# Cargo.toml says rust-version 1.86, but the locked dependencies need more
# (tonic 0.14.9, redis 1.8, time 0.3.55: 1.88; uuid 1.29: 1.89). The repo's
# own toolchain is 1.95; override with --build-arg RUST_VERSION=...
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS builder
# librdkafka is built from source by rdkafka-sys (./configure + make, no
# cmake): a C/C++ toolchain, make, pkg-config and zlib headers (rdkafka's
# "libz" feature). python3 only lets librdkafka's configure generate its
# linker script. protoc is vendored (protoc-bin-vendored), no apt package.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential pkg-config zlib1g-dev python3 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The registry and target directory live in BuildKit cache mounts, so a
# rebuild after a source change recompiles only the workspace crates. The
# binaries are copied out of the cache mount (it is not part of the image).
# --strip-debug drops line tables (the release profile keeps them) but keeps
# symbols, so panics still name functions.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bins \
 && mkdir -p /out \
 && for bin in cx-ingest cx-scoring cx-alerting cx-followup cx-sim cxctl cx-bench; do \
      cp "target/release/$bin" /out/ && strip --strip-debug "/out/$bin"; \
    done

FROM debian:bookworm-slim AS runtime
# ca-certificates: https webhooks (rustls with the system roots) and TLS.
# curl: container health checks against /readyz and /healthz.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 cxloop \
 && useradd --system --uid 10001 --gid cxloop --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin cxloop
COPY --from=builder /out/ /usr/local/bin/
# Numeric so Kubernetes runAsNonRoot can verify it.
USER 10001:10001
WORKDIR /
ENV RUST_LOG=info \
    CX_LOG_FORMAT=json
EXPOSE 50051 50052 50053 50054 8081 8082 8083 8084
# The services drain on SIGTERM (CX_SHUTDOWN_GRACE_S, default 30 s); give
# the runtime's stop timeout more than that.
STOPSIGNAL SIGTERM
# No default command: name the binary, e.g. `docker run cxloop cx-scoring`.

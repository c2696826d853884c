//! What the four cxloop services share: configuration, telemetry, the admin
//! HTTP endpoints, bearer-token auth, gRPC plumbing (health, reflection,
//! errors), Kafka and Redis helpers, the Redis-stream outbox relay and
//! watch feed, and SIGTERM drain.
#![deny(unsafe_code)]

pub mod admin;
pub mod auth;
pub mod config;
pub mod consumer;
pub mod error;
pub mod grpc;
pub mod kafka;
pub mod main_support;
pub mod outbox;
pub mod paging;
pub mod redis_pool;
pub mod server;
pub mod shutdown;
pub mod telemetry;
pub mod tls;

pub use admin::Readiness;
pub use config::{Config, ConfigError, ServiceName};
pub use error::ServiceError;
pub use redis_pool::RedisPool;
pub use server::StartError;

//! cx-ingest: the entry point of cxloop. Interactions arrive over gRPC or
//! HTTP, are validated and redacted (cx-domain), and are published once to
//! `cx.interactions.v1` (key customer_id, protobuf value), acknowledged only
//! after Kafka has them (acks=all).
#![forbid(unsafe_code)]

pub mod admission;
pub mod api;
mod app;
pub mod convert;
pub mod dedupe;
pub mod submit;
pub mod telemetry;

pub use app::{IngestApp, IngestError, IngestSettings};

//! cx-alerting: tells the right people, once, fast, and only when it matters.
//!
//! Consumes `cx.scored.v1` (consumer group, at-least-once), evaluates the
//! per-interaction rules (response, keyword) and, for every key a batch
//! touched, the window rules (threshold, two-proportion spike) against the
//! rolling windows scoring keeps in Redis. Candidates are decided in one
//! Redis script (deterministic alert ids, shared cooldowns, suppressed
//! counts) that also appends new alerts to an outbox stream; a relay
//! publishes it to `cx.alerts.v1`. Webhook delivery is a consumer group of
//! its own on `cx.alerts.v1`. Serves `AlertService`.
#![forbid(unsafe_code)]

pub mod api;
mod app;
pub mod pipeline;
pub mod relay;
pub mod store;
pub mod telemetry;
pub mod webhook;

pub use app::{AlertingApp, AlertingError, AlertingSettings};

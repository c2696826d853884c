//! cx-scoring: turns each interaction into numbers operations can trust.
//!
//! Consumes `cx.interactions.v1` (consumer group, at-least-once), scores
//! each interaction (NPS/CSAT/CES buckets, detractor flag, VADER-style
//! sentiment, topic tags, repeat contact), counts it exactly once into
//! rolling event-time windows in Redis, publishes `cx.scored.v1`, and
//! serves `MetricsService`.
#![forbid(unsafe_code)]

pub mod api;
mod app;
pub mod pipeline;
pub mod score;
pub mod store;
pub mod telemetry;

pub use app::{ScoringApp, ScoringError, ScoringSettings};

//! cx-followup: closes the loop with detractor customers.
//!
//! Consumes `cx.alerts.v1` (one task per customer with a detractor alert;
//! later alerts attach to it), `cx.followup-updates.v1` (CRM updates) and
//! `cx.scored.v1` (the next survey decides the outcome); escalates tasks
//! past their SLA along the routing directory's chain; keeps tasks in Redis
//! behind compare-and-set with a transactional outbox that a relay
//! publishes to `cx.followups.v1`; serves `FollowUpService` and
//! `GET /v1/stats`.
#![forbid(unsafe_code)]

pub mod api;
mod app;
pub mod clock;
pub mod followups;
pub mod pipeline;
pub mod relay;
pub mod store;
pub mod telemetry;
pub mod timer;

pub use app::{FollowupApp, FollowupError, FollowupSettings};
pub use clock::{Clock, ManualClock, SystemClock};

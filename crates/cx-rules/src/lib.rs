//! IO-free alert rules for cxloop's alerting service.
//!
//! - Event rules judge one scored interaction: `response` (a detractor score)
//!   and `keyword` (word forms in the verbatim, or the event's tags).
//! - Window rules judge one dimension key's rolling aggregate: `threshold`
//!   (a metric crosses a bound) and `spike` (the detractor rate is
//!   significantly above the key's 7-day baseline).
//!
//! Rules produce [`Candidate`]s with deterministic alert ids; the service
//! applies cooldowns, stamps the time and publishes an [`Alert`] (the
//! contract's JSON alert).

#![forbid(unsafe_code)]

mod alert;
mod config;
mod rules;
pub mod stats;

pub use alert::{alert_id, Alert, Candidate, Comparison, Kind, Scope, Severity};
pub use config::{
    KeywordRuleConfig, ResponseRuleConfig, RuleConfig, RulesConfig, SpikeRuleConfig,
    ThresholdRuleConfig, DEFAULT_EVENT_COOLDOWN_S, DEFAULT_WINDOW_COOLDOWN_S,
};
pub use rules::{
    responses_for_metric, EventView, RuleSet, RulesError, WindowRule, WindowTest, MAX_NAME_LEN,
};

#[cfg(test)]
mod tests;

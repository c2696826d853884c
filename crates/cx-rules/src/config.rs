//! Rule configuration as read from TOML/JSON; validated by [`crate::RuleSet::compile`].

use serde::{Deserialize, Serialize};

use crate::{Kind, Severity};

/// Every configured rule, in evaluation order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesConfig {
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
}

/// One rule, tagged by `kind` (`response`, `keyword`, `threshold`, `spike`).
///
/// Dimension, window, metric and op are plain strings here so that a bad
/// value is reported by `RuleSet::compile` with the rule's index and name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum RuleConfig {
    Response(ResponseRuleConfig),
    Keyword(KeywordRuleConfig),
    Threshold(ThresholdRuleConfig),
    Spike(SpikeRuleConfig),
}

impl RuleConfig {
    pub fn name(&self) -> &str {
        match self {
            RuleConfig::Response(r) => &r.name,
            RuleConfig::Keyword(r) => &r.name,
            RuleConfig::Threshold(r) => &r.name,
            RuleConfig::Spike(r) => &r.name,
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            RuleConfig::Response(_) => Kind::Response,
            RuleConfig::Keyword(_) => Kind::Keyword,
            RuleConfig::Threshold(_) => Kind::Threshold,
            RuleConfig::Spike(_) => Kind::Spike,
        }
    }

    pub fn enabled(&self) -> bool {
        match self {
            RuleConfig::Response(r) => r.enabled,
            RuleConfig::Keyword(r) => r.enabled,
            RuleConfig::Threshold(r) => r.enabled,
            RuleConfig::Spike(r) => r.enabled,
        }
    }
}

/// A single detractor interaction: fires when any score present is at or
/// below its maximum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseRuleConfig {
    pub name: String,
    pub severity: Severity,
    #[serde(default = "default_event_cooldown_s")]
    pub cooldown_s: u64,
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default = "default_nps_max")]
    pub nps_max: u8,
    #[serde(default = "default_csat_max")]
    pub csat_max: u8,
    #[serde(default = "default_ces_max")]
    pub ces_max: u8,
}

/// The verbatim holds one of `keywords` (any word form) or the event carries
/// one of `tags`; both case-insensitive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeywordRuleConfig {
    pub name: String,
    pub severity: Severity,
    #[serde(default = "default_event_cooldown_s")]
    pub cooldown_s: u64,
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default)]
    pub keywords: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// A rolling-window metric of one dimension key crosses `bound`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdRuleConfig {
    pub name: String,
    pub severity: Severity,
    #[serde(default = "default_window_cooldown_s")]
    pub cooldown_s: u64,
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// `agent`, `team`, `queue`, `channel` or `global`.
    pub dimension: String,
    /// `15m`, `1h`, `24h` or `7d`.
    pub window: String,
    /// One of `cx_windows::Metrics::NAMES`.
    pub metric: String,
    /// `below` or `above` (strict).
    pub op: String,
    pub bound: f64,
    /// Fewest responses relevant to the metric (see [`crate::responses_for_metric`]).
    #[serde(default = "default_min_responses")]
    pub min_responses: u64,
}

/// The NPS detractor rate of a short window is significantly above the same
/// key's 7-day baseline (one-sided two-proportion z-test).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpikeRuleConfig {
    pub name: String,
    pub severity: Severity,
    #[serde(default = "default_window_cooldown_s")]
    pub cooldown_s: u64,
    #[serde(default = "default_true")]
    pub enabled: bool,
    pub dimension: String,
    /// The short window; must be shorter than `7d`.
    pub window: String,
    #[serde(default = "default_p_value")]
    pub p_value: f64,
    /// Fewest NPS responses in each of the short window and the baseline.
    #[serde(default = "default_min_responses")]
    pub min_responses: u64,
    /// Fewest absolute rate increase (0.05 = 5 points) worth an alert.
    #[serde(default)]
    pub min_rate_increase: f64,
}

pub const DEFAULT_EVENT_COOLDOWN_S: u64 = 3600;
pub const DEFAULT_WINDOW_COOLDOWN_S: u64 = 1800;

fn default_event_cooldown_s() -> u64 {
    DEFAULT_EVENT_COOLDOWN_S
}
fn default_window_cooldown_s() -> u64 {
    DEFAULT_WINDOW_COOLDOWN_S
}
fn default_true() -> bool {
    true
}
fn default_nps_max() -> u8 {
    6
}
fn default_csat_max() -> u8 {
    2
}
fn default_ces_max() -> u8 {
    2
}
fn default_p_value() -> f64 {
    0.01
}
fn default_min_responses() -> u64 {
    30
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

impl RulesConfig {
    /// A starting rule set for a contact centre.
    pub fn contact_centre_default() -> RulesConfig {
        RulesConfig {
            rules: vec![
                RuleConfig::Response(ResponseRuleConfig {
                    name: "detractor".into(),
                    severity: Severity::Warning,
                    cooldown_s: DEFAULT_EVENT_COOLDOWN_S,
                    enabled: true,
                    nps_max: default_nps_max(),
                    csat_max: default_csat_max(),
                    ces_max: default_ces_max(),
                }),
                RuleConfig::Keyword(KeywordRuleConfig {
                    name: "churn_risk".into(),
                    severity: Severity::Warning,
                    cooldown_s: DEFAULT_EVENT_COOLDOWN_S,
                    enabled: true,
                    keywords: strings(&[
                        "cancel",
                        "close my account",
                        "switch provider",
                        "leave",
                        "terminate contract",
                    ]),
                    tags: strings(&["cancellation"]),
                }),
                RuleConfig::Keyword(KeywordRuleConfig {
                    name: "legal_threat".into(),
                    severity: Severity::Critical,
                    cooldown_s: DEFAULT_EVENT_COOLDOWN_S,
                    enabled: true,
                    keywords: strings(&[
                        "lawyer",
                        "solicitor",
                        "legal action",
                        "sue",
                        "ombudsman",
                        "regulator",
                        "court",
                    ]),
                    tags: Vec::new(),
                }),
                RuleConfig::Threshold(ThresholdRuleConfig {
                    name: "queue_nps_low".into(),
                    severity: Severity::Warning,
                    cooldown_s: DEFAULT_WINDOW_COOLDOWN_S,
                    enabled: true,
                    dimension: "queue".into(),
                    window: "1h".into(),
                    metric: "nps".into(),
                    op: "below".into(),
                    bound: 0.0,
                    min_responses: 30,
                }),
                RuleConfig::Threshold(ThresholdRuleConfig {
                    name: "queue_csat_low".into(),
                    severity: Severity::Warning,
                    cooldown_s: DEFAULT_WINDOW_COOLDOWN_S,
                    enabled: true,
                    dimension: "queue".into(),
                    window: "24h".into(),
                    metric: "csat_pct".into(),
                    op: "below".into(),
                    bound: 60.0,
                    min_responses: 50,
                }),
                RuleConfig::Spike(SpikeRuleConfig {
                    name: "queue_detractor_spike".into(),
                    severity: Severity::Critical,
                    cooldown_s: DEFAULT_WINDOW_COOLDOWN_S,
                    enabled: true,
                    dimension: "queue".into(),
                    window: "1h".into(),
                    p_value: 0.01,
                    min_responses: 30,
                    min_rate_increase: 0.0,
                }),
            ],
        }
    }
}

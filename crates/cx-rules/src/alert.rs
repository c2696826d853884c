//! What rules produce: candidates, deterministic alert ids, the contract's JSON alert.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The contract's rule kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Response,
    Keyword,
    Threshold,
    Spike,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Response => "response",
            Kind::Keyword => "keyword",
            Kind::Threshold => "threshold",
            Kind::Spike => "spike",
        }
    }

    /// Response and keyword rules judge one interaction; the others a window.
    pub fn is_event(self) -> bool {
        matches!(self, Kind::Response | Kind::Keyword)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Alert severity, ordered `Info < Warning < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Direction of a threshold rule (strict comparison).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Comparison {
    Below,
    Above,
}

impl Comparison {
    pub fn as_str(self) -> &'static str {
        match self {
            Comparison::Below => "below",
            Comparison::Above => "above",
        }
    }

    pub fn parse(s: &str) -> Option<Comparison> {
        match s {
            "below" => Some(Comparison::Below),
            "above" => Some(Comparison::Above),
            _ => None,
        }
    }

    /// True when `value` is strictly past `bound`; false for NaN.
    pub fn crosses(self, value: f64, bound: f64) -> bool {
        match self {
            Comparison::Below => value < bound,
            Comparison::Above => value > bound,
        }
    }
}

/// An alert a rule wants to raise; the service decides cooldown/suppression
/// and stamps `created_at`.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub alert_id: String,
    /// Shared with the rule's other candidates.
    pub rule: Arc<str>,
    pub kind: Kind,
    pub severity: Severity,
    pub window: Option<&'static str>,
    pub metric: Option<&'static str>,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    pub message: String,
    pub cooldown_s: u64,
    /// Shared by all the candidates of an event: ten rules often fire on one
    /// detractor, and copying these strings into each was most of the cost.
    pub scope: Arc<Scope>,
}

/// Who and where a candidate is about: the cooldown subject, the alert's
/// dimension and key, and for event alerts the customer, interaction and
/// where it was handled.
#[derive(Debug, Clone, PartialEq)]
pub struct Scope {
    /// Cooldown scope: "customer:{id}" for response/keyword, "{dimension}:{key}" for window rules.
    pub subject: String,
    pub dimension: &'static str,
    pub key: String,
    pub customer_id: Option<String>,
    pub interaction_id: Option<String>,
    /// Where the interaction was handled (event alerts only), so follow-up
    /// can pick an owner; extra fields beyond the contract.
    pub agent_id: Option<String>,
    pub team_id: Option<String>,
    pub queue_id: Option<String>,
}

/// `"al_"` + hex of the first 16 bytes of SHA-256 over the length-prefixed
/// subject, discriminator (interaction id, or `bucket:{n}` for window
/// rules), rule name and kind. Length prefixes keep field boundaries
/// unambiguous, so ("a:b", "c") and ("a", "b:c") never collide.
pub fn alert_id(rule: &str, kind: Kind, subject: &str, discriminator: &str) -> String {
    AlertIdPrefix::new(subject, discriminator).finish(&AlertIdSuffix::new(rule, kind))
}

/// Appends `part` length-prefixed, as every field of an alert id is hashed.
fn length_prefixed(out: &mut Vec<u8>, part: &str) {
    out.extend_from_slice(&(part.len() as u64).to_be_bytes());
    out.extend_from_slice(part.as_bytes());
}

/// The hashed bytes of rule name and kind, built once per rule so that each
/// candidate's id costs one hash update.
#[derive(Debug, Clone)]
pub(crate) struct AlertIdSuffix(Box<[u8]>);

impl AlertIdSuffix {
    pub(crate) fn new(rule: &str, kind: Kind) -> AlertIdSuffix {
        let mut bytes = Vec::with_capacity(16 + rule.len() + kind.as_str().len());
        length_prefixed(&mut bytes, rule);
        length_prefixed(&mut bytes, kind.as_str());
        AlertIdSuffix(bytes.into_boxed_slice())
    }
}

/// The hash state after subject and discriminator: hashed once per event and
/// finished per rule that fires (subject and discriminator come first for that).
#[derive(Clone)]
pub(crate) struct AlertIdPrefix(ring::digest::Context);

impl AlertIdPrefix {
    pub(crate) fn new(subject: &str, discriminator: &str) -> AlertIdPrefix {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for part in ["cx-rules/alert-id/v1", subject, discriminator] {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part.as_bytes());
        }
        AlertIdPrefix(ctx)
    }

    pub(crate) fn finish(&self, suffix: &AlertIdSuffix) -> String {
        let mut ctx = self.0.clone();
        ctx.update(&suffix.0);
        let digest = ctx.finish();
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut id = String::with_capacity(3 + 32);
        id.push_str("al_");
        for b in &digest.as_ref()[..16] {
            id.push(char::from(HEX[usize::from(b >> 4)]));
            id.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
        id
    }
}

/// The contract's JSON alert (topic `cx.alerts.v1`, webhooks). Every key is
/// always present; absent optional values are `null`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "AlertWire")]
pub struct Alert {
    pub alert_id: String,
    pub rule: String,
    pub kind: Kind,
    pub severity: Severity,
    pub dimension: String,
    pub key: String,
    pub customer_id: Option<String>,
    pub interaction_id: Option<String>,
    pub window: Option<String>,
    pub metric: Option<String>,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    pub message: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub suppressed_count: u64,
    pub acknowledged: bool,
    pub acknowledged_by: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub acknowledged_at: Option<OffsetDateTime>,
    pub agent_id: Option<String>,
    pub team_id: Option<String>,
    pub queue_id: Option<String>,
    /// Kafka key, derived from kind/customer_id/dimension/key when built or
    /// read; not part of the JSON.
    #[serde(skip)]
    subject: String,
}

/// The JSON shape of [`Alert`], read before the Kafka key is derived.
#[derive(Deserialize)]
struct AlertWire {
    alert_id: String,
    rule: String,
    kind: Kind,
    severity: Severity,
    dimension: String,
    key: String,
    #[serde(default)]
    customer_id: Option<String>,
    #[serde(default)]
    interaction_id: Option<String>,
    #[serde(default)]
    window: Option<String>,
    #[serde(default)]
    metric: Option<String>,
    #[serde(default)]
    value: Option<f64>,
    #[serde(default)]
    threshold: Option<f64>,
    message: String,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(default)]
    suppressed_count: u64,
    #[serde(default)]
    acknowledged: bool,
    #[serde(default)]
    acknowledged_by: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    acknowledged_at: Option<OffsetDateTime>,
    #[serde(default)]
    agent_id: Option<String>,
    #[serde(default)]
    team_id: Option<String>,
    #[serde(default)]
    queue_id: Option<String>,
}

impl From<AlertWire> for Alert {
    fn from(w: AlertWire) -> Alert {
        let subject = kafka_subject(w.kind, w.customer_id.as_deref(), &w.dimension, &w.key);
        Alert {
            alert_id: w.alert_id,
            rule: w.rule,
            kind: w.kind,
            severity: w.severity,
            dimension: w.dimension,
            key: w.key,
            customer_id: w.customer_id,
            interaction_id: w.interaction_id,
            window: w.window,
            metric: w.metric,
            value: w.value,
            threshold: w.threshold,
            message: w.message,
            created_at: w.created_at,
            suppressed_count: w.suppressed_count,
            acknowledged: w.acknowledged,
            acknowledged_by: w.acknowledged_by,
            acknowledged_at: w.acknowledged_at,
            agent_id: w.agent_id,
            team_id: w.team_id,
            queue_id: w.queue_id,
            subject,
        }
    }
}

/// Customer id for event alerts (so a customer's alerts stay ordered on one
/// partition), `{dimension}:{key}` otherwise.
fn kafka_subject(kind: Kind, customer_id: Option<&str>, dimension: &str, key: &str) -> String {
    match customer_id {
        Some(id) if kind.is_event() => id.to_owned(),
        _ => format!("{dimension}:{key}"),
    }
}

impl Alert {
    /// Reads a JSON alert (a record of cx.alerts.v1), naming the field
    /// that does not fit, for the dead letter's reason:
    /// `suppressed_count: invalid type: string "many", expected u64 …`.
    pub fn from_json(bytes: &[u8]) -> Result<Alert, String> {
        let mut json = serde_json::Deserializer::from_slice(bytes);
        let alert: Alert = serde_path_to_error::deserialize(&mut json).map_err(|error| {
            let path = error.path().to_string();
            let error = error.into_inner();
            if path == "." {
                error.to_string()
            } else {
                format!("{path}: {error}")
            }
        })?;
        json.end().map_err(|error| error.to_string())?;
        Ok(alert)
    }

    pub fn from_candidate(
        c: &Candidate,
        created_at: OffsetDateTime,
        suppressed_count: u64,
    ) -> Alert {
        Alert {
            alert_id: c.alert_id.clone(),
            rule: c.rule.as_ref().to_owned(),
            kind: c.kind,
            severity: c.severity,
            dimension: c.scope.dimension.to_owned(),
            key: c.scope.key.clone(),
            customer_id: c.scope.customer_id.clone(),
            interaction_id: c.scope.interaction_id.clone(),
            window: c.window.map(str::to_owned),
            metric: c.metric.map(str::to_owned),
            value: c.value,
            threshold: c.threshold,
            message: c.message.clone(),
            created_at,
            suppressed_count,
            acknowledged: false,
            acknowledged_by: None,
            acknowledged_at: None,
            agent_id: c.scope.agent_id.clone(),
            team_id: c.scope.team_id.clone(),
            queue_id: c.scope.queue_id.clone(),
            subject: kafka_subject(
                c.kind,
                c.scope.customer_id.as_deref(),
                c.scope.dimension,
                &c.scope.key,
            ),
        }
    }

    /// The Kafka key on `cx.alerts.v1`: customer_id for response/keyword
    /// alerts, `{dimension}:{key}` for window alerts.
    pub fn kafka_key(&self) -> &str {
        &self.subject
    }
}

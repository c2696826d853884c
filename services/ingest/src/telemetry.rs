//! Ingest's metric names and the events that count them, in one place.

use cx_runtime::telemetry::{MetricHelp, MetricKind};

use crate::submit::Outcome;

pub const INTERACTIONS_TOTAL: &str = "cx_ingest_interactions_total";
pub const REDACTIONS_TOTAL: &str = "cx_ingest_redactions_total";
pub const MARK_DONE_FAILED_TOTAL: &str = "cx_ingest_mark_done_failed_total";
pub const REQUEST_SECONDS: &str = "cx_ingest_request_seconds";
pub const SHED_TOTAL: &str = "cx_ingest_shed_total";

/// Ingest's metrics and their `# HELP` text.
pub const METRICS: &[MetricHelp] = &[
    MetricHelp {
        name: INTERACTIONS_TOTAL,
        kind: MetricKind::Counter,
        help: "Interactions submitted, by outcome (accepted, duplicate, invalid, unavailable)",
    },
    MetricHelp {
        name: REDACTIONS_TOTAL,
        kind: MetricKind::Counter,
        help: "PII masked in verbatims, by kind (email, phone, card)",
    },
    MetricHelp {
        name: MARK_DONE_FAILED_TOTAL,
        kind: MetricKind::Counter,
        help: "Accepted interactions whose done mark Redis did not take (a retry may publish a second copy; consumers count it once)",
    },
    MetricHelp {
        name: REQUEST_SECONDS,
        kind: MetricKind::Histogram,
        help: "Submit call latency, by protocol",
    },
    MetricHelp {
        name: SHED_TOTAL,
        kind: MetricKind::Counter,
        help: "Calls answered 503 or UNAVAILABLE because the bytes in progress were at the admission budget, by api",
    },
];

/// Ingest's counters at 0 for every label value they take.
pub fn start_counters_at_zero() {
    use cx_runtime::telemetry::start_at_zero;
    for outcome in ["accepted", "duplicate", "invalid", "unavailable"] {
        start_at_zero(INTERACTIONS_TOTAL, &[("outcome", outcome)]);
    }
    for kind in ["email", "phone", "card"] {
        start_at_zero(REDACTIONS_TOTAL, &[("kind", kind)]);
    }
    for api in ["http", "grpc"] {
        start_at_zero(SHED_TOTAL, &[("api", api)]);
    }
    start_at_zero(MARK_DONE_FAILED_TOTAL, &[]);
}

pub fn count_outcome(outcome: &Outcome) {
    let label = match outcome {
        Outcome::Accepted => "accepted",
        Outcome::Duplicate => "duplicate",
        Outcome::Unavailable(_) => "unavailable",
    };
    metrics::counter!(INTERACTIONS_TOTAL, "outcome" => label).increment(1);
}

pub fn count_invalid() {
    metrics::counter!(INTERACTIONS_TOTAL, "outcome" => "invalid").increment(1);
}

pub fn count_redactions(counts: &cx_domain::redact::RedactionCounts) {
    if counts.total() == 0 {
        return;
    }
    metrics::counter!(REDACTIONS_TOTAL, "kind" => "email").increment(u64::from(counts.emails));
    metrics::counter!(REDACTIONS_TOTAL, "kind" => "phone").increment(u64::from(counts.phones));
    metrics::counter!(REDACTIONS_TOTAL, "kind" => "card").increment(u64::from(counts.cards));
}

pub fn observe_request(protocol: &'static str, started: std::time::Instant) {
    metrics::histogram!(REQUEST_SECONDS, "protocol" => protocol)
        .record(started.elapsed().as_secs_f64());
}

/// A request refused because the admission budget was full.
pub fn count_shed(api: &'static str) {
    metrics::counter!(SHED_TOTAL, "api" => api).increment(1);
}

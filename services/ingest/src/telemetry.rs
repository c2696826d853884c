//! Ingest's metric names and the events that count them, in one place.

use crate::submit::Outcome;

pub const INTERACTIONS_TOTAL: &str = "cx_ingest_interactions_total";
pub const REDACTIONS_TOTAL: &str = "cx_ingest_redactions_total";
pub const MARK_DONE_FAILED_TOTAL: &str = "cx_ingest_mark_done_failed_total";
pub const REQUEST_SECONDS: &str = "cx_ingest_request_seconds";

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

pub const SHED_TOTAL: &str = "cx_ingest_shed_total";

/// A request refused because the admission budget was full.
pub fn count_shed(api: &'static str) {
    metrics::counter!(SHED_TOTAL, "api" => api).increment(1);
}

//! Alerting's metric names and the events that count them.

use cx_runtime::telemetry::{MetricHelp, MetricKind};

use cx_rules::Candidate;

use crate::store::Raised;

pub const EVALUATED_TOTAL: &str = "cx_alerting_evaluated_total";
pub const CANDIDATES_TOTAL: &str = "cx_alerting_candidates_total";
pub const DEADLETTERED_TOTAL: &str = "cx_alerting_deadlettered_total";
pub const RELAYED_TOTAL: &str = "cx_alerting_relayed_total";
/// Seconds from an alert's created_at to its ack on cx.alerts.v1.
pub const RELAY_DELAY_SECONDS: &str = "cx_alerting_relay_delay_seconds";
pub const WEBHOOK_DELIVERIES_TOTAL: &str = "cx_alerting_webhook_deliveries_total";
pub const WEBHOOK_ATTEMPTS_TOTAL: &str = "cx_alerting_webhook_attempts_total";
/// Deliveries in hand (queued or being retried): the back-pressure gauge.
pub const WEBHOOK_IN_FLIGHT: &str = "cx_alerting_webhook_in_flight";
pub const WEBHOOK_DIGESTED_TOTAL: &str = "cx_alerting_webhook_digested_total";
pub const WATCHERS: &str = "cx_alerting_watchers";
/// A batch's handling in two steps: `windows` (reading the window
/// aggregates threshold and spike rules need) and `decide` (the decide and
/// outbox script).
pub const HANDLE_STEP_SECONDS: &str = "cx_alerting_handle_step_seconds";

/// Alerting's metrics and their `# HELP` text.
pub const METRICS: &[MetricHelp] = &[
    MetricHelp {
        name: EVALUATED_TOTAL,
        kind: MetricKind::Counter,
        help: "Scored interactions evaluated against the rules",
    },
    MetricHelp {
        name: CANDIDATES_TOTAL,
        kind: MetricKind::Counter,
        help: "Rule matches, by rule and outcome (alerted, suppressed, redelivered)",
    },
    MetricHelp {
        name: DEADLETTERED_TOTAL,
        kind: MetricKind::Counter,
        help: "Records of cx.scored.v1 refused and dead-lettered",
    },
    MetricHelp {
        name: RELAYED_TOTAL,
        kind: MetricKind::Counter,
        help: "Alerts published to cx.alerts.v1 by the outbox relay",
    },
    MetricHelp {
        name: RELAY_DELAY_SECONDS,
        kind: MetricKind::Histogram,
        help: "Seconds from an alert's created_at to its acknowledgement on cx.alerts.v1",
    },
    MetricHelp {
        name: WEBHOOK_DELIVERIES_TOTAL,
        kind: MetricKind::Counter,
        help: "Webhook deliveries finished, by destination and result (delivered, digest, deadlettered)",
    },
    MetricHelp {
        name: WEBHOOK_ATTEMPTS_TOTAL,
        kind: MetricKind::Counter,
        help: "Webhook requests sent, retries included, by destination",
    },
    MetricHelp {
        name: WEBHOOK_IN_FLIGHT,
        kind: MetricKind::Gauge,
        help: "Webhook deliveries queued or being retried",
    },
    MetricHelp {
        name: WEBHOOK_DIGESTED_TOTAL,
        kind: MetricKind::Counter,
        help: "Alerts folded into a digest by a destination's rate limit",
    },
    MetricHelp {
        name: WATCHERS,
        kind: MetricKind::Gauge,
        help: "Open WatchAlerts streams",
    },
    MetricHelp {
        name: HANDLE_STEP_SECONDS,
        kind: MetricKind::Histogram,
        help: "Time of a batch in a step: windows (window reads for threshold and spike rules), decide (decide and outbox script)",
    },
];

/// Alerting's counters at 0: per rule and per webhook destination for
/// those configured.
pub fn start_counters_at_zero(rules: &cx_rules::RuleSet, directory: &crate::webhook::Directory) {
    use cx_runtime::telemetry::start_at_zero;
    for name in [EVALUATED_TOTAL, DEADLETTERED_TOTAL, RELAYED_TOTAL] {
        start_at_zero(name, &[]);
    }
    for rule in rules.rule_names() {
        for outcome in ["alerted", "redelivered", "suppressed"] {
            start_at_zero(CANDIDATES_TOTAL, &[("rule", rule), ("outcome", outcome)]);
        }
    }
    for destination in directory.destinations() {
        let name = destination.name.as_str();
        for result in ["delivered", "deadlettered", "digest"] {
            start_at_zero(
                WEBHOOK_DELIVERIES_TOTAL,
                &[("destination", name), ("result", result)],
            );
        }
        start_at_zero(WEBHOOK_ATTEMPTS_TOTAL, &[("destination", name)]);
        start_at_zero(WEBHOOK_DIGESTED_TOTAL, &[("destination", name)]);
    }
}

pub fn count_evaluated(events: usize) {
    metrics::counter!(EVALUATED_TOTAL).increment(events as u64);
}

pub fn count_deadlettered(n: usize) {
    metrics::counter!(DEADLETTERED_TOTAL).increment(n as u64);
}

pub fn count_raised(candidate: &Candidate, raised: &Raised) {
    let outcome = match raised {
        Raised::Created { .. } => "alerted",
        Raised::Exists | Raised::Seen => "redelivered",
        Raised::Suppressed => "suppressed",
    };
    metrics::counter!(
        CANDIDATES_TOTAL,
        "rule" => candidate.rule.clone(),
        "outcome" => outcome
    )
    .increment(1);
}

//! Scoring's metric names and the events that count them.

use cx_runtime::telemetry::{MetricHelp, MetricKind};

pub const SCORED_TOTAL: &str = "cx_scoring_scored_total";
pub const COUNTED_TOTAL: &str = "cx_scoring_counted_total";
pub const REDELIVERED_TOTAL: &str = "cx_scoring_redelivered_total";
pub const DEADLETTERED_TOTAL: &str = "cx_scoring_deadlettered_total";
pub const METRICS_QUERY_SECONDS: &str = "cx_scoring_metrics_query_seconds";
/// A batch's apply in two steps: `windows` (the window script and repeat
/// contacts in Redis) and `publish` (cx.scored.v1 until acknowledged).
pub const APPLY_STEP_SECONDS: &str = "cx_scoring_apply_step_seconds";

/// Scoring's metrics and their `# HELP` text.
pub const METRICS: &[MetricHelp] = &[
    MetricHelp {
        name: SCORED_TOTAL,
        kind: MetricKind::Counter,
        help: "Interactions scored (redeliveries included)",
    },
    MetricHelp {
        name: COUNTED_TOTAL,
        kind: MetricKind::Counter,
        help: "Interactions counted into the windows (each once)",
    },
    MetricHelp {
        name: REDELIVERED_TOTAL,
        kind: MetricKind::Counter,
        help: "Interactions delivered again and not counted a second time",
    },
    MetricHelp {
        name: DEADLETTERED_TOTAL,
        kind: MetricKind::Counter,
        help: "Records of cx.interactions.v1 refused and dead-lettered (undecodable, invalid, older than 7 days)",
    },
    MetricHelp {
        name: METRICS_QUERY_SECONDS,
        kind: MetricKind::Histogram,
        help: "Metrics query latency, by call (get: GetMetrics, rank: RankKeys)",
    },
    MetricHelp {
        name: APPLY_STEP_SECONDS,
        kind: MetricKind::Histogram,
        help: "Time of a batch's apply in a step: windows (window script and repeat contact in Redis), publish (cx.scored.v1 until acknowledged)",
    },
];

/// Scoring's counters at 0.
pub fn start_counters_at_zero() {
    for name in [
        SCORED_TOTAL,
        COUNTED_TOTAL,
        REDELIVERED_TOTAL,
        DEADLETTERED_TOTAL,
    ] {
        cx_runtime::telemetry::start_at_zero(name, &[]);
    }
}

pub fn count_batch(scored: usize, counted: usize) {
    metrics::counter!(SCORED_TOTAL).increment(scored as u64);
    metrics::counter!(COUNTED_TOTAL).increment(counted as u64);
    metrics::counter!(REDELIVERED_TOTAL).increment((scored - counted) as u64);
}

pub fn count_deadlettered(n: usize) {
    metrics::counter!(DEADLETTERED_TOTAL).increment(n as u64);
}

//! Follow-up's metric names and the events that count them. The loop
//! measures per team are also kept exactly in Redis (see `/v1/stats`);
//! these counters are per process, for Prometheus.

use cx_runtime::telemetry::{MetricHelp, MetricKind};

pub const ALERTS_TOTAL: &str = "cx_followup_alerts_total";
pub const TASKS_OPENED_TOTAL: &str = "cx_followup_tasks_opened_total";
pub const TASKS_CONTACTED_TOTAL: &str = "cx_followup_tasks_contacted_total";
pub const ESCALATIONS_TOTAL: &str = "cx_followup_escalations_total";
pub const OUTCOMES_TOTAL: &str = "cx_followup_outcomes_total";
pub const UPDATES_TOTAL: &str = "cx_followup_updates_total";
pub const CONFLICTS_TOTAL: &str = "cx_followup_cas_conflicts_total";
pub const DEADLETTERED_TOTAL: &str = "cx_followup_deadlettered_total";
pub const RELAYED_TOTAL: &str = "cx_followup_relayed_total";
/// Seconds from a task change (updated_at) to its ack on cx.followups.v1.
pub const RELAY_DELAY_SECONDS: &str = "cx_followup_relay_delay_seconds";
pub const WATCHERS: &str = "cx_followup_watchers";

/// Follow-up's metrics and their `# HELP` text.
pub const METRICS: &[MetricHelp] = &[
    MetricHelp {
        name: ALERTS_TOTAL,
        kind: MetricKind::Counter,
        help: "Alerts read from cx.alerts.v1, by outcome (opened, attached, ignored, redelivered)",
    },
    MetricHelp {
        name: TASKS_OPENED_TOTAL,
        kind: MetricKind::Counter,
        help: "Tasks opened, by team (the directory's teams; any other is other)",
    },
    MetricHelp {
        name: TASKS_CONTACTED_TOTAL,
        kind: MetricKind::Counter,
        help: "Tasks that reached contacted, by team",
    },
    MetricHelp {
        name: ESCALATIONS_TOTAL,
        kind: MetricKind::Counter,
        help: "Escalations of tasks past their due time, by team",
    },
    MetricHelp {
        name: OUTCOMES_TOTAL,
        kind: MetricKind::Counter,
        help: "Outcomes decided by the customer's next survey, by team and outcome",
    },
    MetricHelp {
        name: UPDATES_TOTAL,
        kind: MetricKind::Counter,
        help: "Task updates, by source (grpc, kafka) and outcome",
    },
    MetricHelp {
        name: CONFLICTS_TOTAL,
        kind: MetricKind::Counter,
        help: "Task writes that lost a compare-and-set race (another writer changed the task first), by operation",
    },
    MetricHelp {
        name: DEADLETTERED_TOTAL,
        kind: MetricKind::Counter,
        help: "Records refused and dead-lettered (bad alerts, bad or refused updates)",
    },
    MetricHelp {
        name: RELAYED_TOTAL,
        kind: MetricKind::Counter,
        help: "Task versions published to cx.followups.v1 by the outbox relay",
    },
    MetricHelp {
        name: RELAY_DELAY_SECONDS,
        kind: MetricKind::Histogram,
        help: "Seconds from a task change (updated_at) to its acknowledgement on cx.followups.v1",
    },
    MetricHelp {
        name: WATCHERS,
        kind: MetricKind::Gauge,
        help: "Open WatchTasks streams",
    },
];

/// Follow-up's counters at 0: the loop counters for each of `teams` (the
/// directory's, `other` and `_none`).
pub fn start_counters_at_zero<'a>(teams: impl IntoIterator<Item = &'a str>) {
    use cx_runtime::telemetry::start_at_zero;
    for name in [DEADLETTERED_TOTAL, RELAYED_TOTAL] {
        start_at_zero(name, &[]);
    }
    for outcome in ["ignored", "opened", "attached", "redelivered"] {
        start_at_zero(ALERTS_TOTAL, &[("outcome", outcome)]);
    }
    for source in ["kafka", "grpc"] {
        for outcome in ["applied", "not_found", "precondition", "invalid"] {
            start_at_zero(UPDATES_TOTAL, &[("source", source), ("outcome", outcome)]);
        }
    }
    for operation in ["open", "attach", "update", "survey", "escalate"] {
        start_at_zero(CONFLICTS_TOTAL, &[("operation", operation)]);
    }
    for team in teams {
        for name in [TASKS_OPENED_TOTAL, TASKS_CONTACTED_TOTAL, ESCALATIONS_TOTAL] {
            start_at_zero(name, &[("team", team)]);
        }
        for outcome in ["recovered", "not_recovered"] {
            start_at_zero(OUTCOMES_TOTAL, &[("team", team), ("outcome", outcome)]);
        }
    }
}

pub fn count_alert(outcome: &'static str) {
    metrics::counter!(ALERTS_TOTAL, "outcome" => outcome).increment(1);
}

pub fn count_update(source: &'static str, outcome: &'static str) {
    metrics::counter!(UPDATES_TOTAL, "source" => source, "outcome" => outcome).increment(1);
}

pub fn count_conflict(operation: &'static str) {
    metrics::counter!(CONFLICTS_TOTAL, "operation" => operation).increment(1);
}

pub fn count_deadlettered(n: usize) {
    metrics::counter!(DEADLETTERED_TOTAL).increment(n as u64);
}

/// The Prometheus side of the loop measures, from a change's stats delta.
pub fn count_change(team: &str, delta: &crate::store::StatsDelta) {
    let team = team.to_string();
    if delta.opened > 0 {
        metrics::counter!(TASKS_OPENED_TOTAL, "team" => team.clone()).increment(delta.opened);
    }
    if delta.contacted > 0 {
        metrics::counter!(TASKS_CONTACTED_TOTAL, "team" => team.clone()).increment(delta.contacted);
    }
    if delta.escalations > 0 {
        metrics::counter!(ESCALATIONS_TOTAL, "team" => team.clone()).increment(delta.escalations);
    }
    if delta.recovered > 0 {
        metrics::counter!(OUTCOMES_TOTAL, "team" => team.clone(), "outcome" => "recovered")
            .increment(delta.recovered);
    }
    if delta.not_recovered > 0 {
        metrics::counter!(OUTCOMES_TOTAL, "team" => team, "outcome" => "not_recovered")
            .increment(delta.not_recovered);
    }
}

//! Logs (tracing, pretty or JSON) and metrics (Prometheus text on /metrics).
//!
//! Metric names shared by several services live here, in one place.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::{fmt, EnvFilter};

use crate::config::LogFormat;

/// Records the seconds since `started` in histogram `metric` under label
/// `step` (a part of a batch's handling).
pub fn record_step_seconds(metric: &'static str, step: &'static str, started: std::time::Instant) {
    metrics::histogram!(metric, "step" => step).record(started.elapsed().as_secs_f64());
}

pub const AUTH_REFUSED_TOTAL: &str = "cx_auth_refused_total";
pub const KAFKA_PRODUCED_TOTAL: &str = "cx_kafka_produced_total";
pub const KAFKA_PRODUCE_ERRORS_TOTAL: &str = "cx_kafka_produce_errors_total";
pub const KAFKA_PRODUCER_RESETS_TOTAL: &str = "cx_kafka_producer_resets_total";
pub const KAFKA_CONSUMED_TOTAL: &str = "cx_kafka_consumed_total";
pub const KAFKA_CONSUMER_LAG: &str = "cx_kafka_consumer_lag";
pub const KAFKA_CONSUMER_ASSIGNED_PARTITIONS: &str = "cx_kafka_consumer_assigned_partitions";
pub const KAFKA_CONSUMER_GROUP_LAG: &str = "cx_kafka_consumer_group_lag";
/// Per consumer group and stage (`prepare`, `apply`): a batch's time in it.
pub const CONSUMER_STAGE_SECONDS: &str = "cx_consumer_stage_seconds";
/// Per consumer group: age of a batch's oldest record (its Kafka
/// timestamp) when the batch's effects became durable.
pub const CONSUMER_RECORD_AGE_SECONDS: &str = "cx_consumer_record_age_seconds";
pub const DEADLETTER_TOTAL: &str = "cx_deadletter_total";
pub const READY: &str = "cx_ready";

/// Bucket bounds (seconds) of every histogram: all of cxloop's are
/// latencies or ages, from sub-millisecond Redis steps to an hour of a
/// backlog. Histograms rather than the exporter's default summaries,
/// because bucket counts add across replicas and quantiles do not.
pub const SECONDS_BUCKETS: [f64; 19] = [
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0, 900.0, 3600.0,
];

/// What a metric is, for its `# TYPE` and `# HELP` lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

/// A metric's name, kind and `# HELP` text.
#[derive(Debug, Clone, Copy)]
pub struct MetricHelp {
    pub name: &'static str,
    pub kind: MetricKind,
    pub help: &'static str,
}

/// The metrics `cx_runtime` records for every service.
pub const SHARED_METRICS: &[MetricHelp] = &[
    MetricHelp {
        name: READY,
        kind: MetricKind::Gauge,
        help: "1 when /readyz answers ready, 0 when a dependency is down or the service is draining",
    },
    MetricHelp {
        name: AUTH_REFUSED_TOTAL,
        kind: MetricKind::Counter,
        help: "Calls refused by authentication or authorization, by reason",
    },
    MetricHelp {
        name: KAFKA_PRODUCED_TOTAL,
        kind: MetricKind::Counter,
        help: "Records the broker acknowledged, by topic (dead letters are counted in cx_deadletter_total)",
    },
    MetricHelp {
        name: KAFKA_PRODUCE_ERRORS_TOTAL,
        kind: MetricKind::Counter,
        help: "Records the broker did not acknowledge, by topic: ingest answered 503, a consumer retries its batch",
    },
    MetricHelp {
        name: KAFKA_PRODUCER_RESETS_TOTAL,
        kind: MetricKind::Counter,
        help: "Producers replaced after a fatal error or a timed-out message",
    },
    MetricHelp {
        name: KAFKA_CONSUMED_TOTAL,
        kind: MetricKind::Counter,
        help: "Records consumed and handled, by consumer group",
    },
    MetricHelp {
        name: KAFKA_CONSUMER_LAG,
        kind: MetricKind::Gauge,
        help: "Records on this consumer's partitions past its group's committed offsets (not yet durable in effect), by consumer group; measured every 10 s, also while a batch is retried",
    },
    MetricHelp {
        name: KAFKA_CONSUMER_GROUP_LAG,
        kind: MetricKind::Gauge,
        help: "Records past the group's committed offsets on every partition of its topics, whoever holds them, by consumer group: every replica reports the whole group (take max, not sum); it also rises while partitions are held by no one",
    },
    MetricHelp {
        name: KAFKA_CONSUMER_ASSIGNED_PARTITIONS,
        kind: MetricKind::Gauge,
        help: "Partitions assigned to this consumer, by consumer group: summed over replicas it should equal the topics' partitions",
    },
    MetricHelp {
        name: CONSUMER_STAGE_SECONDS,
        kind: MetricKind::Histogram,
        help: "Time of a batch in a stage (prepare: CPU; apply: Redis and the broker, retries included), by consumer group",
    },
    MetricHelp {
        name: CONSUMER_RECORD_AGE_SECONDS,
        kind: MetricKind::Histogram,
        help: "Age of a batch's oldest record (from its Kafka timestamp) when the batch's effects were durable, by consumer group",
    },
    MetricHelp {
        name: DEADLETTER_TOTAL,
        kind: MetricKind::Counter,
        help: "Records written to cx.deadletter.v1, by source topic",
    },
];

/// Puts a counter's series on /metrics at 0 before its first event. A
/// series that appears only when something first goes wrong is invisible
/// to `rate()` and `increase()` until then, and an alert on it would need
/// `or vector(0)`. For the label values known at start.
pub fn start_at_zero(name: &'static str, labels: &[(&'static str, &str)]) {
    let labels: Vec<metrics::Label> = labels
        .iter()
        .map(|(key, value)| metrics::Label::new(*key, (*value).to_owned()))
        .collect();
    metrics::counter!(name, labels).increment(0);
}

/// Installs the recorder if not yet done and gives `metrics` their
/// `# HELP` text on /metrics. A service calls it first thing at start with
/// its own table; [`SHARED_METRICS`] are described with the recorder.
pub fn describe(metrics: &[MetricHelp]) {
    // Descriptions go to the installed recorder: install it first.
    let _ = metrics_handle();
    describe_all(metrics);
}

fn describe_all(metrics: &[MetricHelp]) {
    for metric in metrics {
        match metric.kind {
            MetricKind::Counter => metrics::describe_counter!(metric.name, metric.help),
            MetricKind::Gauge => metrics::describe_gauge!(metric.name, metric.help),
            MetricKind::Histogram => metrics::describe_histogram!(metric.name, metric.help),
        }
    }
}

/// Installs the global tracing subscriber once; later calls are no-ops
/// (tests start several services in one process).
pub fn init_tracing(filter: &str, format: LogFormat) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt().with_env_filter(filter).with_target(true);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}

/// The process-wide Prometheus recorder, installed on first use.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&SECONDS_BUCKETS)
                .expect("the bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder is installed; then this handle
            // renders nothing, which tests tolerate.
            if metrics::set_global_recorder(recorder).is_ok() {
                describe_all(SHARED_METRICS);
            }
            handle
        })
        .clone()
}

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
/// Per consumer group and stage (`prepare`, `apply`): a batch's time in it.
pub const CONSUMER_STAGE_SECONDS: &str = "cx_consumer_stage_seconds";
/// Per consumer group: age of a batch's oldest record (its Kafka
/// timestamp) when the batch's effects became durable.
pub const CONSUMER_RECORD_AGE_SECONDS: &str = "cx_consumer_record_age_seconds";
pub const DEADLETTER_TOTAL: &str = "cx_deadletter_total";
pub const READY: &str = "cx_ready";

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
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder is installed; then this handle
            // renders nothing, which tests tolerate.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

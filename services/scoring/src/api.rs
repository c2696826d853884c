//! gRPC MetricsService: figures of a window, and rankings of a dimension.

use std::time::Instant;

use cx_domain::FieldViolation;
use cx_proto::v1;
use cx_runtime::error::redis_unavailable;
use cx_runtime::ServiceError;
use cx_windows::{Dimension, Metrics, Window};

use crate::store::WindowStore;
use crate::telemetry;

pub struct GrpcMetrics {
    pub store: WindowStore,
}

pub const MAX_RANK_LIMIT: u32 = 1000;

fn parse_dimension(name: &str) -> Result<Dimension, FieldViolation> {
    Dimension::parse(name).ok_or_else(|| {
        FieldViolation::new(
            "dimension",
            "must be one of agent, team, queue, channel, global",
        )
    })
}

fn parse_window(name: &str) -> Result<Window, FieldViolation> {
    Window::parse(name)
        .ok_or_else(|| FieldViolation::new("window", "must be one of 15m, 1h, 24h, 7d"))
}

/// Dimension and window of a request; what is wrong goes to `violations`.
fn parse_target(
    dimension: &str,
    window: &str,
    violations: &mut Vec<FieldViolation>,
) -> (Option<Dimension>, Option<Window>) {
    let dimension = parse_dimension(dimension)
        .map_err(|v| violations.push(v))
        .ok();
    let window = parse_window(window).map_err(|v| violations.push(v)).ok();
    (dimension, window)
}

pub fn to_proto(m: &Metrics) -> v1::WindowMetrics {
    v1::WindowMetrics {
        interactions: m.interactions,
        nps_responses: m.nps_responses,
        csat_responses: m.csat_responses,
        ces_responses: m.ces_responses,
        promoters: m.promoters,
        passives: m.passives,
        detractors: m.detractors,
        nps: m.nps,
        nps_margin_95: m.nps_margin_95,
        csat_pct: m.csat_pct,
        ces_avg: m.ces_avg,
        easy_pct: m.easy_pct,
        sentiment_avg: m.sentiment_avg,
        transfers_avg: m.transfers_avg,
        fcr_pct: m.fcr_pct,
    }
}

/// For ranking: is a larger value better, and how many responses back it.
fn ranking_basis(metric: &str, m: &Metrics) -> (bool, u64) {
    match metric {
        "nps" | "nps_margin_95" | "promoters" | "passives" | "nps_responses" => {
            (true, m.nps_responses)
        }
        "detractors" => (false, m.nps_responses),
        "csat_pct" | "csat_responses" => (true, m.csat_responses),
        "ces_avg" | "easy_pct" | "ces_responses" => (true, m.ces_responses),
        "transfers_avg" => (false, m.interactions),
        _ => (true, m.interactions),
    }
}

#[tonic::async_trait]
impl v1::metrics_service_server::MetricsService for GrpcMetrics {
    async fn get_metrics(
        &self,
        request: tonic::Request<v1::GetMetricsRequest>,
    ) -> Result<tonic::Response<v1::GetMetricsResponse>, tonic::Status> {
        let started = Instant::now();
        let request = request.into_inner();
        let mut violations = Vec::new();
        let (dimension, window) =
            parse_target(&request.dimension, &request.window, &mut violations);
        let key = match dimension.and_then(Dimension::fixed_key) {
            Some(fixed) if request.key.is_empty() || request.key == fixed => fixed.to_string(),
            Some(fixed) => {
                violations.push(FieldViolation::new(
                    "key",
                    format!("must be {fixed:?} for the global dimension"),
                ));
                String::new()
            }
            None if request.key.is_empty() => {
                violations.push(FieldViolation::new("key", "is required"));
                String::new()
            }
            None => request.key.clone(),
        };
        let (Some(dimension), Some(window), true) = (dimension, window, violations.is_empty())
        else {
            return Err(ServiceError::invalid(violations).into());
        };
        let now_s = time::OffsetDateTime::now_utc().unix_timestamp();
        let metrics = self
            .store
            .metrics(dimension, &key, window, now_s)
            .await
            .map_err(redis_unavailable)?;
        metrics::histogram!(telemetry::METRICS_QUERY_SECONDS, "call" => "get")
            .record(started.elapsed().as_secs_f64());
        Ok(tonic::Response::new(v1::GetMetricsResponse {
            dimension: dimension.as_str().to_string(),
            key,
            window: window.as_str().to_string(),
            metrics: Some(to_proto(&metrics)),
            as_of_unix: now_s,
        }))
    }

    async fn rank_keys(
        &self,
        request: tonic::Request<v1::RankKeysRequest>,
    ) -> Result<tonic::Response<v1::RankKeysResponse>, tonic::Status> {
        let started = Instant::now();
        let request = request.into_inner();
        let mut violations = Vec::new();
        let (dimension, window) =
            parse_target(&request.dimension, &request.window, &mut violations);
        if !Metrics::NAMES.contains(&request.metric.as_str()) {
            violations.push(FieldViolation::new(
                "metric",
                format!("must be one of {}", Metrics::NAMES.join(", ")),
            ));
        }
        if request.limit > MAX_RANK_LIMIT {
            violations.push(FieldViolation::new(
                "limit",
                format!("must be at most {MAX_RANK_LIMIT}"),
            ));
        }
        let (Some(dimension), Some(window), true) = (dimension, window, violations.is_empty())
        else {
            return Err(ServiceError::invalid(violations).into());
        };
        let limit = if request.limit == 0 {
            10
        } else {
            request.limit as usize
        };
        let now_s = time::OffsetDateTime::now_utc().unix_timestamp();
        let keys = self
            .store
            .active_keys(dimension, window, now_s)
            .await
            .map_err(redis_unavailable)?;
        let mut ranked = Vec::new();
        for key in keys {
            let metrics = self
                .store
                .metrics(dimension, &key, window, now_s)
                .await
                .map_err(redis_unavailable)?;
            let (higher_is_better, responses) = ranking_basis(&request.metric, &metrics);
            let Some(value) = metrics.get(&request.metric) else {
                continue;
            };
            if responses < request.min_responses.max(1) {
                continue;
            }
            // Sort key: ascending means worst first.
            let badness = if higher_is_better { value } else { -value };
            ranked.push((badness, key, value, metrics));
        }
        ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        if request.best {
            ranked.reverse();
        }
        ranked.truncate(limit);
        metrics::histogram!(telemetry::METRICS_QUERY_SECONDS, "call" => "rank")
            .record(started.elapsed().as_secs_f64());
        Ok(tonic::Response::new(v1::RankKeysResponse {
            keys: ranked
                .into_iter()
                .map(|(_, key, value, metrics)| v1::RankedKey {
                    key,
                    value,
                    metrics: Some(to_proto(&metrics)),
                })
                .collect(),
        }))
    }
}

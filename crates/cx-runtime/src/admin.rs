//! `/healthz`, `/readyz` and `/metrics` on a service's HTTP port, and the
//! readiness state they report.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::telemetry;

/// Named dependency checks (kafka, redis, topics…) plus a draining flag.
/// Ready means every check passed and the service is not draining.
#[derive(Clone, Default)]
pub struct Readiness {
    inner: Arc<Mutex<ReadinessState>>,
}

#[derive(Default)]
struct ReadinessState {
    checks: BTreeMap<&'static str, Result<(), String>>,
    draining: bool,
}

impl Readiness {
    /// Readiness that waits for `checks` (each failing until first
    /// reported). Checks reported later without registering (a service's
    /// `pipeline`) count from their first report.
    pub fn waiting_for(checks: &[&'static str]) -> Readiness {
        let readiness = Readiness::default();
        for check in checks {
            readiness.register(check);
        }
        readiness
    }

    /// Registers a check as failing until first reported.
    pub fn register(&self, name: &'static str) {
        self.lock()
            .checks
            .entry(name)
            .or_insert_with(|| Err("not checked yet".into()));
        self.publish();
    }

    pub fn report(&self, name: &'static str, result: Result<(), String>) {
        let changed = {
            let mut state = self.lock();
            let previous = state.checks.insert(name, result.clone());
            previous.as_ref().map(Result::is_ok) != Some(result.is_ok())
        };
        if changed {
            match &result {
                Ok(()) => tracing::info!(check = name, "dependency ready"),
                Err(reason) => tracing::warn!(check = name, %reason, "dependency not ready"),
            }
        }
        self.publish();
    }

    pub fn set_draining(&self) {
        self.lock().draining = true;
        self.publish();
    }

    pub fn is_ready(&self) -> bool {
        let state = self.lock();
        !state.draining && state.checks.values().all(Result::is_ok)
    }

    /// Failing checks by name (and `draining`), for /readyz.
    pub fn failures(&self) -> BTreeMap<String, String> {
        let state = self.lock();
        let mut out: BTreeMap<String, String> = state
            .checks
            .iter()
            .filter_map(|(name, r)| r.as_ref().err().map(|e| (name.to_string(), e.clone())))
            .collect();
        if state.draining {
            out.insert("draining".into(), "shutting down".into());
        }
        out
    }

    fn publish(&self) {
        metrics::gauge!(telemetry::READY).set(if self.is_ready() { 1.0 } else { 0.0 });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ReadinessState> {
        // A panic while holding this lock cannot leave it inconsistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The admin routes; services merge their own routes beside them.
pub fn router(readiness: Readiness) -> Router {
    let handle = telemetry::metrics_handle();
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route(
            "/metrics",
            get(move || {
                let handle = handle.clone();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4",
                        )],
                        handle.render(),
                    )
                }
            }),
        )
        .with_state(readiness)
}

async fn readyz(State(readiness): State<Readiness>) -> Response {
    if readiness.is_ready() {
        return (StatusCode::OK, "ready").into_response();
    }
    let body = serde_json::json!({"ready": false, "failing": readiness.failures()});
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_check_passes_and_not_draining() {
        let readiness = Readiness::default();
        assert!(readiness.is_ready());
        readiness.register("kafka");
        assert!(!readiness.is_ready());
        readiness.report("kafka", Ok(()));
        assert!(readiness.is_ready());
        readiness.report("kafka", Err("down".into()));
        assert_eq!(readiness.failures()["kafka"], "down");
        readiness.report("kafka", Ok(()));
        readiness.set_draining();
        assert!(!readiness.is_ready());
        assert!(readiness.failures().contains_key("draining"));
    }

    #[test]
    fn waiting_for_registers_each_check_and_later_reports_count_too() {
        let readiness = Readiness::waiting_for(&["kafka", "redis"]);
        readiness.report("kafka", Ok(()));
        assert_eq!(readiness.failures().keys().collect::<Vec<_>>(), ["redis"]);
        readiness.report("redis", Ok(()));
        assert!(readiness.is_ready());
        readiness.report("pipeline", Err("redis down".into()));
        assert!(!readiness.is_ready());
    }
}

//! gRPC AlertService: list, acknowledge and watch alerts.

use std::pin::Pin;

use cx_domain::FieldViolation;
use cx_proto::v1;
use cx_rules::Alert;
use cx_runtime::auth::Principal;
use cx_runtime::error::redis_unavailable;
use cx_runtime::grpc::timestamp;
use cx_runtime::outbox::{self, OutboxEntry, OutboxFeed, StreamId};
use cx_runtime::ServiceError;
use cx_windows::Dimension;
use futures::Stream;
use time::OffsetDateTime;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use cx_runtime::paging;

use crate::store::{AlertFilter, AlertStore};
use crate::telemetry;

pub const DEFAULT_PAGE_SIZE: u32 = 50;
pub const MAX_PAGE_SIZE: u32 = 500;
const SEVERITIES: [&str; 3] = ["info", "warning", "critical"];

pub struct GrpcAlerts {
    pub store: AlertStore,
    pub feed: OutboxFeed,
    /// Ends every WatchAlerts stream, so draining does not wait on them.
    pub stop: CancellationToken,
}

pub fn to_proto(alert: &Alert) -> v1::Alert {
    v1::Alert {
        alert_id: alert.alert_id.clone(),
        rule: alert.rule.clone(),
        kind: alert.kind.as_str().to_string(),
        severity: alert.severity.as_str().to_string(),
        dimension: alert.dimension.clone(),
        key: alert.key.clone(),
        customer_id: alert.customer_id.clone(),
        interaction_id: alert.interaction_id.clone(),
        window: alert.window.clone(),
        metric: alert.metric.clone(),
        value: alert.value,
        threshold: alert.threshold,
        message: alert.message.clone(),
        created_at: Some(timestamp(alert.created_at)),
        suppressed_count: alert.suppressed_count,
        acknowledged: alert.acknowledged,
        acknowledged_by: alert.acknowledged_by.clone(),
        acknowledged_at: alert.acknowledged_at.map(timestamp),
    }
}

fn check_severity(severity: &str, violations: &mut Vec<FieldViolation>) -> Option<String> {
    if severity.is_empty() {
        return None;
    }
    if !SEVERITIES.contains(&severity) {
        violations.push(FieldViolation::new(
            "severity",
            "must be one of info, warning, critical",
        ));
    }
    Some(severity.to_string())
}

type AlertStream = Pin<Box<dyn Stream<Item = Result<v1::Alert, tonic::Status>> + Send>>;

#[tonic::async_trait]
impl v1::alert_service_server::AlertService for GrpcAlerts {
    async fn list_alerts(
        &self,
        request: tonic::Request<v1::ListAlertsRequest>,
    ) -> Result<tonic::Response<v1::ListAlertsResponse>, tonic::Status> {
        let request = request.into_inner();
        let mut violations = Vec::new();
        let severity = check_severity(&request.severity, &mut violations);
        if !request.dimension.is_empty() && Dimension::parse(&request.dimension).is_none() {
            violations.push(FieldViolation::new(
                "dimension",
                "must be one of agent, team, queue, channel, global",
            ));
        }
        let (page_size, after) = paging::page_request(
            request.page_size,
            &request.page_token,
            DEFAULT_PAGE_SIZE,
            MAX_PAGE_SIZE,
            "ListAlerts",
            &mut violations,
        );
        if !violations.is_empty() {
            return Err(ServiceError::invalid(violations).into());
        }
        let filter = AlertFilter {
            since_ms: request.since.as_ref().map(cx_proto::timestamp_millis),
            severity,
            dimension: (!request.dimension.is_empty()).then_some(request.dimension),
            key: (!request.key.is_empty()).then_some(request.key),
            acknowledged: request.acknowledged,
        };
        let (alerts, next) = self
            .store
            .list(&filter, after.as_ref(), page_size)
            .await
            .map_err(redis_unavailable)?;
        Ok(tonic::Response::new(v1::ListAlertsResponse {
            alerts: alerts.iter().map(to_proto).collect(),
            next_page_token: next.map(|t| t.encode()).unwrap_or_default(),
        }))
    }

    async fn acknowledge_alert(
        &self,
        request: tonic::Request<v1::AcknowledgeAlertRequest>,
    ) -> Result<tonic::Response<v1::Alert>, tonic::Status> {
        let caller = request
            .extensions()
            .get::<Principal>()
            .map(|p| p.name.clone())
            .unwrap_or_default();
        let request = request.into_inner();
        let mut violations = Vec::new();
        if request.alert_id.is_empty() {
            violations.push(FieldViolation::new("alert_id", "is required"));
        }
        if request.acknowledged_by.len() > 128 {
            violations.push(FieldViolation::new(
                "acknowledged_by",
                "must be at most 128 bytes",
            ));
        }
        if !violations.is_empty() {
            return Err(ServiceError::invalid(violations).into());
        }
        let by = if request.acknowledged_by.is_empty() {
            caller
        } else {
            request.acknowledged_by
        };
        match self
            .store
            .acknowledge(&request.alert_id, &by, OffsetDateTime::now_utc())
            .await
            .map_err(redis_unavailable)?
        {
            Some(alert) => Ok(tonic::Response::new(to_proto(&alert))),
            None => Err(ServiceError::NotFound(format!("no alert {}", request.alert_id)).into()),
        }
    }

    type WatchAlertsStream = AlertStream;

    async fn watch_alerts(
        &self,
        request: tonic::Request<v1::WatchAlertsRequest>,
    ) -> Result<tonic::Response<Self::WatchAlertsStream>, tonic::Status> {
        let request = request.into_inner();
        let mut violations = Vec::new();
        let severity = check_severity(&request.severity, &mut violations);
        if !violations.is_empty() {
            return Err(ServiceError::invalid(violations).into());
        }
        // Subscribe before reading the resume point so nothing falls between.
        let live = self.feed.subscribe();
        let resume = if !request.after_alert_id.is_empty() {
            let found = self
                .store
                .get(&request.after_alert_id)
                .await
                .map_err(redis_unavailable)?;
            match found.and_then(|(_, sid)| StreamId::parse(&sid)) {
                Some(id) => Some(id),
                None => {
                    return Err(ServiceError::invalid(vec![FieldViolation::new(
                        "after_alert_id",
                        "no such alert (or it is past retention)",
                    )])
                    .into())
                }
            }
        } else {
            request
                .since
                .as_ref()
                .map(|since| StreamId::just_before_millis(cx_proto::timestamp_millis(since)))
        };
        let (sender, receiver) = mpsc::channel(256);
        let watcher = Watcher {
            store: self.store.clone(),
            severity,
            sender,
            stop: self.stop.clone(),
        };
        tokio::spawn(watcher.run(resume, live));
        Ok(tonic::Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(receiver),
        )))
    }
}

fn alert_ids(entries: &[OutboxEntry]) -> Vec<String> {
    entries
        .iter()
        .filter_map(|entry| entry.field("alert_id").map(str::to_string))
        .collect()
}

struct Watcher {
    store: AlertStore,
    severity: Option<String>,
    sender: mpsc::Sender<Result<v1::Alert, tonic::Status>>,
    stop: CancellationToken,
}

impl Watcher {
    async fn run(self, resume: Option<StreamId>, mut live: broadcast::Receiver<OutboxEntry>) {
        metrics::gauge!(telemetry::WATCHERS).increment(1.0);
        let outcome = self.follow(resume, &mut live).await;
        if let Err(status) = outcome {
            let _ = self.sender.send(Err(status)).await;
        }
        metrics::gauge!(telemetry::WATCHERS).decrement(1.0);
    }

    /// Sends alerts until the client goes away (Ok) or Redis fails (Err).
    async fn follow(
        &self,
        resume: Option<StreamId>,
        live: &mut broadcast::Receiver<OutboxEntry>,
    ) -> Result<(), tonic::Status> {
        outbox::follow(
            self.store.redis(),
            &self.store.outbox_key(),
            resume,
            live,
            &self.stop,
            self.sender.closed(),
            redis_unavailable,
            |entries| async move { self.send(&alert_ids(&entries)).await },
        )
        .await
    }

    /// False when the client is gone.
    async fn send(&self, alert_ids: &[String]) -> Result<bool, tonic::Status> {
        let alerts = self
            .store
            .get_many(alert_ids)
            .await
            .map_err(redis_unavailable)?;
        for (alert, _) in alerts {
            if self
                .severity
                .as_deref()
                .is_some_and(|s| alert.severity.as_str() != s)
            {
                continue;
            }
            if self.sender.send(Ok(to_proto(&alert))).await.is_err() {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

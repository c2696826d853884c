//! gRPC FollowUpService (list, get, update, watch tasks) and the HTTP
//! `GET /v1/stats` loop measures.

use std::pin::Pin;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use cx_domain::FieldViolation;
use cx_proto::v1;
use cx_runtime::error::redis_unavailable;
use cx_runtime::grpc::timestamp;
use cx_runtime::outbox::{self, OutboxEntry, OutboxFeed, StreamId};
use cx_runtime::ServiceError;
use cx_tasks::{Task, TaskState, TaskUpdate, UpdateError};
use futures::Stream;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::followups::{Followups, UpdateFailure};
use cx_runtime::paging;

use crate::store::{TaskFilter, TaskStore, TeamStats};
use crate::telemetry;

pub const DEFAULT_PAGE_SIZE: u32 = 50;
pub const MAX_PAGE_SIZE: u32 = 500;

pub struct GrpcFollowups {
    pub followups: Followups,
    pub feed: OutboxFeed,
    /// Ends every WatchTasks stream, so a drain does not wait for watchers.
    pub stop: CancellationToken,
}

pub fn to_proto(task: &Task) -> v1::Task {
    v1::Task {
        task_id: task.task_id.clone(),
        customer_id: task.customer_id.clone(),
        state: task.state.as_str().to_string(),
        priority: task.priority.as_str().to_string(),
        owner: task.owner.clone(),
        escalation_level: task.escalation_level,
        interaction_ids: task.interaction_ids.clone(),
        alert_ids: task.alert_ids.clone(),
        reason: task.reason.clone(),
        created_at: Some(timestamp(task.created_at)),
        updated_at: Some(timestamp(task.updated_at)),
        due_at: Some(timestamp(task.due_at)),
        resolved_at: task.resolved_at.map(timestamp),
        root_cause: task.root_cause.clone(),
        resolution_note: task.resolution_note.clone(),
        outcome: task.outcome.map(|o| o.as_str().to_string()),
        version: task.version,
    }
}

/// An update refused by the task rules, as a gRPC status.
pub fn refusal(error: &UpdateError) -> tonic::Status {
    if error.is_precondition() {
        return ServiceError::FailedPrecondition(error.to_string()).into();
    }
    let (field, description) = match error {
        UpdateError::Invalid { field, description } => (field.clone(), description.clone()),
        other => ("task".to_string(), other.to_string()),
    };
    ServiceError::invalid(vec![FieldViolation::new(field, description)]).into()
}

type TaskStream = Pin<Box<dyn Stream<Item = Result<v1::Task, tonic::Status>> + Send>>;

#[tonic::async_trait]
impl v1::follow_up_service_server::FollowUpService for GrpcFollowups {
    async fn list_tasks(
        &self,
        request: tonic::Request<v1::ListTasksRequest>,
    ) -> Result<tonic::Response<v1::ListTasksResponse>, tonic::Status> {
        let request = request.into_inner();
        let mut violations = Vec::new();
        let state = if request.state.is_empty() {
            None
        } else {
            match request.state.parse::<TaskState>() {
                Ok(state) => Some(state),
                Err(error) => {
                    violations.push(FieldViolation::new("state", error.to_string()));
                    None
                }
            }
        };
        let (page_size, after) = paging::page_request(
            request.page_size,
            &request.page_token,
            DEFAULT_PAGE_SIZE,
            MAX_PAGE_SIZE,
            "ListTasks",
            &mut violations,
        );
        if !violations.is_empty() {
            return Err(ServiceError::invalid(violations).into());
        }
        let filter = TaskFilter {
            state,
            owner: (!request.owner.is_empty()).then_some(request.owner),
            customer_id: (!request.customer_id.is_empty()).then_some(request.customer_id),
            overdue_at: request.overdue_only.then(|| self.followups.clock.now()),
        };
        let (tasks, next) = self
            .followups
            .store
            .list(&filter, after.as_ref(), page_size)
            .await
            .map_err(redis_unavailable)?;
        Ok(tonic::Response::new(v1::ListTasksResponse {
            tasks: tasks.iter().map(to_proto).collect(),
            next_page_token: next.map(|t| t.encode()).unwrap_or_default(),
        }))
    }

    async fn get_task(
        &self,
        request: tonic::Request<v1::GetTaskRequest>,
    ) -> Result<tonic::Response<v1::Task>, tonic::Status> {
        let request = request.into_inner();
        if request.task_id.is_empty() {
            return Err(
                ServiceError::invalid(vec![FieldViolation::new("task_id", "is required")]).into(),
            );
        }
        match self
            .followups
            .store
            .get(&request.task_id)
            .await
            .map_err(redis_unavailable)?
        {
            Some(task) => Ok(tonic::Response::new(to_proto(&task))),
            None => Err(ServiceError::NotFound(format!("no task {}", request.task_id)).into()),
        }
    }

    async fn update_task(
        &self,
        request: tonic::Request<v1::UpdateTaskRequest>,
    ) -> Result<tonic::Response<v1::Task>, tonic::Status> {
        let request = request.into_inner();
        let mut violations = Vec::new();
        if request.task_id.is_empty()
            || request.task_id.chars().count() > cx_tasks::MAX_TASK_ID_CHARS
        {
            violations.push(FieldViolation::new(
                "task_id",
                format!("must be 1 to {} characters", cx_tasks::MAX_TASK_ID_CHARS),
            ));
        }
        // proto3 sends an unset version as 0.
        if request.version == 0 {
            violations.push(FieldViolation::new("version", cx_tasks::VERSION_ZERO));
        }
        let state = match request.state.parse::<TaskState>() {
            Ok(state) => Some(state),
            Err(error) => {
                violations.push(FieldViolation::new("state", error.to_string()));
                None
            }
        };
        let (Some(state), true) = (state, violations.is_empty()) else {
            return Err(ServiceError::invalid(violations).into());
        };
        let update = TaskUpdate {
            task_id: request.task_id,
            version: request.version,
            state,
            owner: request.owner,
            root_cause: request.root_cause,
            resolution_note: request.resolution_note,
        };
        match self.followups.update(&update).await {
            Ok(task) => {
                telemetry::count_update("grpc", "applied");
                Ok(tonic::Response::new(to_proto(&task)))
            }
            Err(UpdateFailure::NotFound(id)) => {
                telemetry::count_update("grpc", "not_found");
                Err(ServiceError::NotFound(format!("no task {id}")).into())
            }
            Err(UpdateFailure::Refused(error)) => {
                telemetry::count_update(
                    "grpc",
                    if error.is_precondition() {
                        "precondition"
                    } else {
                        "invalid"
                    },
                );
                Err(refusal(&error))
            }
            Err(UpdateFailure::Redis(error)) => Err(redis_unavailable(error)),
        }
    }

    type WatchTasksStream = TaskStream;

    async fn watch_tasks(
        &self,
        request: tonic::Request<v1::WatchTasksRequest>,
    ) -> Result<tonic::Response<Self::WatchTasksStream>, tonic::Status> {
        let request = request.into_inner();
        // Subscribe before replaying so nothing falls between.
        let live = self.feed.subscribe();
        let resume = request
            .since
            .as_ref()
            .map(|since| StreamId::just_before_millis(cx_proto::timestamp_millis(since)));
        let (sender, receiver) = mpsc::channel(256);
        let watcher = Watcher {
            store: self.followups.store.clone(),
            owner: (!request.owner.is_empty()).then_some(request.owner),
            customer_id: (!request.customer_id.is_empty()).then_some(request.customer_id),
            sender,
            stop: self.stop.clone(),
        };
        tokio::spawn(watcher.run(resume, live));
        Ok(tonic::Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(receiver),
        )))
    }
}

struct Watcher {
    store: TaskStore,
    owner: Option<String>,
    customer_id: Option<String>,
    sender: mpsc::Sender<Result<v1::Task, tonic::Status>>,
    stop: CancellationToken,
}

impl Watcher {
    async fn run(self, resume: Option<StreamId>, mut live: broadcast::Receiver<OutboxEntry>) {
        metrics::gauge!(telemetry::WATCHERS).increment(1.0);
        if let Err(status) = self.follow(resume, &mut live).await {
            let _ = self.sender.send(Err(status)).await;
        }
        metrics::gauge!(telemetry::WATCHERS).decrement(1.0);
    }

    /// Sends changes until the client goes away (Ok) or Redis fails (Err).
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
            |entries| async move {
                for entry in &entries {
                    if !self.send(entry).await {
                        return Ok(false);
                    }
                }
                Ok(true)
            },
        )
        .await
    }

    /// False when the client is gone.
    async fn send(&self, entry: &OutboxEntry) -> bool {
        let Some(Ok(task)) = entry
            .field("json")
            .map(|json| Task::from_json(json.as_bytes()))
        else {
            return true;
        };
        if self.owner.as_deref().is_some_and(|o| task.owner != o)
            || self
                .customer_id
                .as_deref()
                .is_some_and(|c| task.customer_id != c)
        {
            return true;
        }
        self.sender.send(Ok(to_proto(&task))).await.is_ok()
    }
}

/// `GET /v1/stats` (followups:read): the loop measures per team and in
/// total, exact across replicas (kept in Redis by the change scripts).
pub fn http_routes(store: TaskStore) -> Router {
    Router::new()
        .route("/v1/stats", get(http_stats))
        .with_state(store)
}

async fn http_stats(
    State(store): State<TaskStore>,
) -> Result<Json<serde_json::Value>, ServiceError> {
    let teams = store
        .stats()
        .await
        .map_err(|e| ServiceError::Unavailable(format!("redis unavailable: {e}")))?;
    let mut total = TeamStats {
        team: "all".into(),
        ..TeamStats::default()
    };
    for team in &teams {
        total.add(team);
    }
    Ok(Json(serde_json::json!({
        "teams": teams.iter().map(TeamStats::to_json).collect::<Vec<_>>(),
        "total": total.to_json(),
    })))
}

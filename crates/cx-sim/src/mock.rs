//! In-process stand-ins for IngestService and FollowUpService, for tests of
//! the sending and CRM code without the real services.

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use cx_proto::v1;
use cx_proto::v1::follow_up_service_server::{FollowUpService, FollowUpServiceServer};
use cx_proto::v1::ingest_service_server::{IngestService, IngestServiceServer};
use cx_tasks::TaskState;
use tonic::{Request, Response, Status};

pub const TOKEN: &str = "test-token";

fn check_auth<T>(request: &Request<T>) -> Result<(), Status> {
    match request.metadata().get("authorization") {
        Some(v) if v == format!("Bearer {TOKEN}").as_str() => Ok(()),
        _ => Err(Status::unauthenticated("bad token")),
    }
}

/// Accepts ids once; `nps` above 10 is invalid; ids ending in `-flaky` are
/// UNAVAILABLE the first time; a batch holding an id ending in `-down` is
/// refused whole, UNAVAILABLE, every time.
#[derive(Default, Clone)]
pub struct Ingest {
    pub seen: Arc<Mutex<HashSet<String>>>,
    /// Items answered as duplicates.
    pub duplicates: Arc<std::sync::atomic::AtomicUsize>,
    flaked: Arc<Mutex<HashSet<String>>>,
}

impl Ingest {
    fn one(&self, i: &v1::Interaction) -> v1::SubmitStatus {
        if i.nps.is_some_and(|n| n > 10) {
            return v1::SubmitStatus::Invalid;
        }
        if i.interaction_id.ends_with("-flaky")
            && self.flaked.lock().unwrap().insert(i.interaction_id.clone())
        {
            return v1::SubmitStatus::Unavailable;
        }
        if self.seen.lock().unwrap().insert(i.interaction_id.clone()) {
            v1::SubmitStatus::Accepted
        } else {
            self.duplicates
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            v1::SubmitStatus::Duplicate
        }
    }
}

#[tonic::async_trait]
impl IngestService for Ingest {
    async fn submit_interaction(
        &self,
        request: Request<v1::SubmitInteractionRequest>,
    ) -> Result<Response<v1::SubmitInteractionResponse>, Status> {
        check_auth(&request)?;
        let i = request.into_inner().interaction.unwrap_or_default();
        match self.one(&i) {
            v1::SubmitStatus::Invalid => Err(Status::invalid_argument("nps: must be 0..10")),
            v1::SubmitStatus::Unavailable => Err(Status::unavailable("kafka")),
            status => Ok(Response::new(v1::SubmitInteractionResponse {
                interaction_id: i.interaction_id,
                duplicate: status == v1::SubmitStatus::Duplicate,
            })),
        }
    }

    async fn submit_interactions(
        &self,
        request: Request<v1::SubmitInteractionsRequest>,
    ) -> Result<Response<v1::SubmitInteractionsResponse>, Status> {
        check_auth(&request)?;
        let request = request.into_inner();
        if request
            .interactions
            .iter()
            .any(|i| i.interaction_id.ends_with("-down"))
        {
            return Err(Status::unavailable(
                "admission: bytes in progress at the limit",
            ));
        }
        let results = request
            .interactions
            .iter()
            .enumerate()
            .map(|(index, i)| v1::SubmitResult {
                index: index as u32,
                interaction_id: i.interaction_id.clone(),
                status: self.one(i) as i32,
                field_violations: Vec::new(),
            })
            .collect();
        Ok(Response::new(v1::SubmitInteractionsResponse { results }))
    }
}

/// Tasks by id, with the contract's versions and transitions.
#[derive(Default, Clone)]
pub struct Followups {
    pub tasks: Arc<Mutex<HashMap<String, v1::Task>>>,
}

type TaskStream = Pin<Box<dyn futures::Stream<Item = Result<v1::Task, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl FollowUpService for Followups {
    async fn list_tasks(
        &self,
        _: Request<v1::ListTasksRequest>,
    ) -> Result<Response<v1::ListTasksResponse>, Status> {
        Err(Status::unimplemented("list"))
    }

    async fn get_task(
        &self,
        request: Request<v1::GetTaskRequest>,
    ) -> Result<Response<v1::Task>, Status> {
        check_auth(&request)?;
        let id = request.into_inner().task_id;
        self.tasks
            .lock()
            .unwrap()
            .get(&id)
            .cloned()
            .map(Response::new)
            .ok_or_else(|| Status::not_found(id))
    }

    async fn update_task(
        &self,
        request: Request<v1::UpdateTaskRequest>,
    ) -> Result<Response<v1::Task>, Status> {
        check_auth(&request)?;
        let u = request.into_inner();
        if u.version == 0 {
            return Err(Status::invalid_argument("version: required"));
        }
        let mut tasks = self.tasks.lock().unwrap();
        let task = tasks
            .get_mut(&u.task_id)
            .ok_or_else(|| Status::not_found(u.task_id.clone()))?;
        if task.version != u.version {
            return Err(Status::failed_precondition(format!(
                "stale version {} (now {})",
                u.version, task.version
            )));
        }
        let from: TaskState = task.state.parse().map_err(|_| Status::internal("state"))?;
        let to: TaskState = u
            .state
            .parse()
            .map_err(|_| Status::invalid_argument("state"))?;
        if !from.can_become(to) {
            return Err(Status::failed_precondition(format!(
                "{} -> {}",
                from.as_str(),
                to.as_str()
            )));
        }
        task.state = u.state;
        task.version += 1;
        if u.root_cause.is_some() {
            task.root_cause = u.root_cause;
            task.resolution_note = u.resolution_note;
        }
        Ok(Response::new(task.clone()))
    }

    type WatchTasksStream = TaskStream;

    async fn watch_tasks(
        &self,
        _: Request<v1::WatchTasksRequest>,
    ) -> Result<Response<TaskStream>, Status> {
        Err(Status::unimplemented("watch"))
    }
}

/// Serves both on a free local port; returns a connected channel.
pub async fn serve(ingest: Ingest, followups: Followups) -> tonic::transport::Channel {
    let addr = serve_at(ingest, followups).await;
    crate::send::connect(&addr, std::time::Duration::from_secs(5))
        .await
        .unwrap()
}

/// Serves both on a free local port; returns its address.
pub async fn serve_at(ingest: Ingest, followups: Followups) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(IngestServiceServer::new(ingest))
            .add_service(FollowUpServiceServer::new(followups))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    addr.to_string()
}

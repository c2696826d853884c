//! The two front doors — gRPC `IngestService` and HTTP `/v1/interactions` —
//! sharing validation and [`Ingestor::submit`].

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use cx_domain::{FieldViolation, Interaction, RawInteraction};
use cx_proto::v1;
use cx_runtime::ServiceError;
use serde_json::{json, Value};
use tokio::sync::OwnedSemaphorePermit;

use crate::admission::{self, Admission};
use crate::convert;
use crate::submit::{Ingestor, Outcome};
use crate::telemetry;

/// Contract limits.
pub const MAX_BATCH_ITEMS: usize = 1000;
pub const MAX_SINGLE_BODY_BYTES: usize = 64 * 1024;
pub const MAX_BATCH_BODY_BYTES: usize = 4 * 1024 * 1024;
/// The largest gRPC message taken: a batch at the HTTP limit, plus room for
/// protobuf's framing.
pub const MAX_GRPC_MESSAGE_BYTES: usize = MAX_BATCH_BODY_BYTES + 64 * 1024;

/// One item of a request after validation.
type Checked = Result<Interaction, Vec<FieldViolation>>;

/// `mismatched`: fields of the wrong JSON type, already named (none from
/// protobuf).
fn check(raw: RawInteraction, mismatched: Vec<FieldViolation>) -> Checked {
    let checked = cx_domain::validate_read(raw, mismatched, time::OffsetDateTime::now_utc());
    match &checked {
        Ok(interaction) => telemetry::count_redactions(&interaction.redactions),
        Err(_) => telemetry::count_invalid(),
    }
    checked
}

/// Per-item status of a batch, as the contract names it.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemResult {
    pub interaction_id: String,
    pub status: ItemStatus,
    pub field_violations: Vec<FieldViolation>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ItemStatus {
    Accepted,
    Duplicate,
    Invalid,
    Unavailable(String),
}

/// Submits the valid items, answers per item in order.
async fn submit_checked(ingestor: &Ingestor, items: Vec<(String, Checked)>) -> Vec<ItemResult> {
    // The valid interactions move to the submit; an item keeps only its
    // violations. (A copy of each, kept until the produce was acknowledged,
    // was a fifth of cx-ingest's heap under load.) A loop, not `collect`:
    // collecting in place would keep `items`' buffer, sized for whole
    // interactions, for the smaller verdicts.
    let mut valid: Vec<Interaction> = Vec::with_capacity(items.len());
    let mut verdicts: Vec<(String, Result<(), Vec<FieldViolation>>)> =
        Vec::with_capacity(items.len());
    for (interaction_id, checked) in items {
        verdicts.push((interaction_id, checked.map(|i| valid.push(i))));
    }
    let mut outcomes = ingestor.submit(valid).await.into_iter();
    verdicts
        .into_iter()
        .map(|(interaction_id, checked)| match checked {
            Ok(()) => {
                let status = match outcomes.next() {
                    Some(Outcome::Accepted) => ItemStatus::Accepted,
                    Some(Outcome::Duplicate) => ItemStatus::Duplicate,
                    Some(Outcome::Unavailable(reason)) => ItemStatus::Unavailable(reason),
                    None => ItemStatus::Unavailable("not processed".into()),
                };
                ItemResult {
                    interaction_id,
                    status,
                    field_violations: Vec::new(),
                }
            }
            Err(violations) => ItemResult {
                interaction_id,
                status: ItemStatus::Invalid,
                field_violations: violations,
            },
        })
        .collect()
}

/// The first unavailability in a batch: the whole answer becomes 503 /
/// UNAVAILABLE (items already published answer `duplicate` on the retry).
fn first_unavailable(results: &[ItemResult]) -> Option<&str> {
    results.iter().find_map(|r| match &r.status {
        ItemStatus::Unavailable(reason) => Some(reason.as_str()),
        _ => None,
    })
}

// ---------------------------------------------------------------- gRPC

pub struct GrpcIngest {
    pub ingestor: Arc<Ingestor>,
}

#[tonic::async_trait]
impl v1::ingest_service_server::IngestService for GrpcIngest {
    async fn submit_interaction(
        &self,
        request: tonic::Request<v1::SubmitInteractionRequest>,
    ) -> Result<tonic::Response<v1::SubmitInteractionResponse>, tonic::Status> {
        let started = Instant::now();
        let Some(wire) = request.into_inner().interaction else {
            return Err(ServiceError::invalid(vec![FieldViolation::new(
                "interaction",
                "is required",
            )])
            .into());
        };
        let interaction_id = wire.interaction_id.clone();
        let checked = check(convert::raw_from_proto(wire), Vec::new());
        let result = submit_checked(&self.ingestor, vec![(interaction_id.clone(), checked)])
            .await
            .pop()
            .expect("one result per item");
        telemetry::observe_request("grpc", started);
        match result.status {
            ItemStatus::Accepted | ItemStatus::Duplicate => {
                Ok(tonic::Response::new(v1::SubmitInteractionResponse {
                    interaction_id,
                    duplicate: result.status == ItemStatus::Duplicate,
                }))
            }
            ItemStatus::Invalid => Err(ServiceError::invalid(result.field_violations).into()),
            ItemStatus::Unavailable(reason) => Err(ServiceError::Unavailable(reason).into()),
        }
    }

    async fn submit_interactions(
        &self,
        request: tonic::Request<v1::SubmitInteractionsRequest>,
    ) -> Result<tonic::Response<v1::SubmitInteractionsResponse>, tonic::Status> {
        let started = Instant::now();
        let wires = request.into_inner().interactions;
        if wires.len() > MAX_BATCH_ITEMS {
            return Err(ServiceError::invalid(vec![FieldViolation::new(
                "interactions",
                format!(
                    "must hold at most {MAX_BATCH_ITEMS} items, got {}",
                    wires.len()
                ),
            )])
            .into());
        }
        let items = wires
            .into_iter()
            .map(|wire| {
                (
                    wire.interaction_id.clone(),
                    check(convert::raw_from_proto(wire), Vec::new()),
                )
            })
            .collect();
        let results = submit_checked(&self.ingestor, items).await;
        telemetry::observe_request("grpc", started);
        if let Some(reason) = first_unavailable(&results) {
            return Err(ServiceError::Unavailable(reason.to_string()).into());
        }
        let results = results
            .into_iter()
            .enumerate()
            .map(|(index, r)| v1::SubmitResult {
                index: index as u32,
                interaction_id: r.interaction_id,
                status: match r.status {
                    ItemStatus::Accepted => v1::SubmitStatus::Accepted,
                    ItemStatus::Duplicate => v1::SubmitStatus::Duplicate,
                    ItemStatus::Invalid => v1::SubmitStatus::Invalid,
                    ItemStatus::Unavailable(_) => v1::SubmitStatus::Unavailable,
                } as i32,
                field_violations: r
                    .field_violations
                    .into_iter()
                    .map(|v| v1::FieldViolation {
                        field: v.field,
                        description: v.description,
                    })
                    .collect(),
            })
            .collect();
        Ok(tonic::Response::new(v1::SubmitInteractionsResponse {
            results,
        }))
    }
}

// ---------------------------------------------------------------- HTTP

/// What the HTTP handlers share.
#[derive(Clone)]
struct HttpIngest {
    ingestor: Arc<Ingestor>,
    admission: Admission,
}

impl HttpIngest {
    /// Admits `request` (bodies up to `limit`) before its body is read, or
    /// the error (503) that refuses it.
    fn admit(&self, request: &Request, limit: usize) -> Result<OwnedSemaphorePermit, ServiceError> {
        let weight = admission::http_body_bytes(request, limit);
        self.admission
            .try_admit(weight, "http")
            .ok_or_else(|| self.admission.refusal())
    }
}

pub fn http_routes(ingestor: Arc<Ingestor>, admission: Admission) -> Router {
    Router::new()
        .route("/v1/interactions", post(http_submit_one))
        .route("/v1/interactions:batch", post(http_submit_batch))
        .with_state(HttpIngest {
            ingestor,
            admission,
        })
}

/// Reads a JSON body of at most `limit` bytes: 415 for another content
/// type, 413 past the limit, 400 for malformed JSON.
async fn json_body(request: Request, limit: usize) -> Result<Value, ServiceError> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/json") {
        return Err(ServiceError::UnsupportedMediaType(format!(
            "content type must be application/json, got {:?}",
            content_type
        )));
    }
    if let Some(length) = admission::declared_length(&request) {
        if length > limit {
            return Err(too_large(limit));
        }
    }
    let bytes = axum::body::to_bytes(request.into_body(), limit)
        .await
        .map_err(|_| too_large(limit))?;
    serde_json::from_slice(&bytes).map_err(|error| {
        ServiceError::invalid(vec![FieldViolation::new(
            "body",
            format!("is not valid JSON: {error}"),
        )])
    })
}

fn too_large(limit: usize) -> ServiceError {
    ServiceError::PayloadTooLarge(format!("request body exceeds {limit} bytes"))
}

fn raw_id(value: &Value) -> String {
    value
        .get("interaction_id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn check_json(value: &Value) -> Checked {
    let (raw, mismatched) = RawInteraction::read_json(value);
    check(raw, mismatched)
}

async fn http_submit_one(State(state): State<HttpIngest>, request: Request) -> Response {
    let started = Instant::now();
    let _admitted = match state.admit(&request, MAX_SINGLE_BODY_BYTES) {
        Ok(permit) => permit,
        Err(refused) => return refused.into_response(),
    };
    let ingestor = state.ingestor;
    let response = match json_body(request, MAX_SINGLE_BODY_BYTES).await {
        Err(error) => error.into_response(),
        Ok(value) => {
            let item = (raw_id(&value), check_json(&value));
            let result = submit_checked(&ingestor, vec![item])
                .await
                .pop()
                .expect("one result per item");
            match result.status {
                ItemStatus::Accepted | ItemStatus::Duplicate => (
                    StatusCode::ACCEPTED,
                    Json(json!({
                        "interaction_id": result.interaction_id,
                        "duplicate": result.status == ItemStatus::Duplicate,
                    })),
                )
                    .into_response(),
                ItemStatus::Invalid => {
                    ServiceError::invalid(result.field_violations).into_response()
                }
                ItemStatus::Unavailable(reason) => {
                    ServiceError::Unavailable(reason).into_response()
                }
            }
        }
    };
    telemetry::observe_request("http", started);
    response
}

async fn http_submit_batch(State(state): State<HttpIngest>, request: Request) -> Response {
    let started = Instant::now();
    let _admitted = match state.admit(&request, MAX_BATCH_BODY_BYTES) {
        Ok(permit) => permit,
        Err(refused) => return refused.into_response(),
    };
    let ingestor = state.ingestor;
    let response = match batch_items(request).await {
        Err(error) => error.into_response(),
        Ok(values) => {
            let items = values.iter().map(|v| (raw_id(v), check_json(v))).collect();
            let results = submit_checked(&ingestor, items).await;
            let body = json!({"results": results.iter().enumerate().map(|(index, r)| {
                let status = match &r.status {
                    ItemStatus::Accepted => "accepted",
                    ItemStatus::Duplicate => "duplicate",
                    ItemStatus::Invalid => "invalid",
                    ItemStatus::Unavailable(_) => "unavailable",
                };
                json!({
                    "index": index,
                    "interaction_id": r.interaction_id,
                    "status": status,
                    "field_violations": r.field_violations,
                })
            }).collect::<Vec<_>>()});
            match first_unavailable(&results) {
                // Nothing half-done from the client's view: retry the batch;
                // what was published answers `duplicate`.
                Some(reason) => {
                    let mut response =
                        ServiceError::Unavailable(reason.to_string()).into_response();
                    let mut with_results =
                        json!({"error": {"code": "unavailable", "message": reason}});
                    with_results["results"] = body["results"].clone();
                    *response.body_mut() = Body::from(with_results.to_string());
                    response
                }
                None => (StatusCode::OK, Json(body)).into_response(),
            }
        }
    };
    telemetry::observe_request("http", started);
    response
}

async fn batch_items(request: Request) -> Result<Vec<Value>, ServiceError> {
    let mut value = json_body(request, MAX_BATCH_BODY_BYTES).await?;
    let Some(items) = value.get_mut("interactions") else {
        return Err(ServiceError::invalid(vec![FieldViolation::new(
            "interactions",
            "is required",
        )]));
    };
    let Value::Array(items) = items.take() else {
        return Err(ServiceError::invalid(vec![FieldViolation::new(
            "interactions",
            "must be an array of interactions",
        )]));
    };
    if items.len() > MAX_BATCH_ITEMS {
        return Err(ServiceError::invalid(vec![FieldViolation::new(
            "interactions",
            format!(
                "must hold at most {MAX_BATCH_ITEMS} items, got {}",
                items.len()
            ),
        )]));
    }
    Ok(items)
}

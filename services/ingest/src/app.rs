//! The ingest service as a library: build it from a [`Config`] (listeners
//! bound, nothing connected yet), then run it until the token is cancelled.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cx_proto::v1::ingest_service_server::IngestServiceServer;
use cx_runtime::auth::{AuthLayer, Scope};
use cx_runtime::server::{watch_dependencies, Listeners, Serving};
use cx_runtime::{admin, grpc, kafka, Config, Readiness, RedisPool};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::admission::{Admission, Admitted};
use crate::api::{self, GrpcIngest};
use crate::dedupe::DedupeStore;
use crate::submit::Ingestor;
use crate::telemetry;

/// Start-up and run errors, shared by every service.
pub type IngestError = cx_runtime::StartError;

/// `[ingest]` section of the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestSettings {
    pub grpc_addr: Option<String>,
    pub http_addr: Option<String>,
    /// Days an interaction_id is remembered (contract: at least 7).
    pub dedupe_days: u64,
    /// Seconds a claim is held while its record is produced.
    pub claim_lease_s: u64,
    /// Milliseconds a request waits for a concurrent one with the same id.
    pub in_flight_wait_ms: u64,
    /// Request-body bytes in progress (gRPC and HTTP together) past which
    /// new requests are answered UNAVAILABLE / 503: what bounds ingest's
    /// memory when Kafka or Redis slows down (see `admission`).
    pub max_request_bytes_in_progress: u32,
}

impl Default for IngestSettings {
    fn default() -> Self {
        IngestSettings {
            grpc_addr: None,
            http_addr: None,
            dedupe_days: 8,
            claim_lease_s: 30,
            in_flight_wait_ms: 2000,
            // Measured: ≈ 15 MB of memory per MiB in progress when
            // interactions are small (docs/BENCHMARKS.md), so 2 MiB keeps
            // cx-ingest under 64 MiB. Larger requests need an idle ingest.
            max_request_bytes_in_progress: 2 * 1024 * 1024,
        }
    }
}

pub struct IngestApp {
    config: Config,
    listeners: Listeners,
    ingestor: Arc<Ingestor>,
    admission: Admission,
    redis: RedisPool,
    readiness: Readiness,
}

impl IngestApp {
    /// The checks [`build`](Self::build) makes on the configuration before
    /// it binds or connects anything (`cx-ingest --check-config`).
    pub fn check_config(config: &Config) -> Result<(), IngestError> {
        Self::settings(config).map(drop)
    }

    fn settings(config: &Config) -> Result<IngestSettings, IngestError> {
        let settings: IngestSettings = config.section("ingest")?;
        if settings.dedupe_days < 7 {
            return Err(cx_runtime::ConfigError::Invalid {
                name: "ingest.dedupe_days".into(),
                reason: "must be at least 7 (contract)".into(),
            }
            .into());
        }
        if (settings.max_request_bytes_in_progress as usize) < api::MAX_SINGLE_BODY_BYTES {
            return Err(cx_runtime::ConfigError::Invalid {
                name: "ingest.max_request_bytes_in_progress".into(),
                reason: format!(
                    "must be at least {} (the largest single interaction)",
                    api::MAX_SINGLE_BODY_BYTES
                ),
            }
            .into());
        }
        Ok(settings)
    }

    pub async fn build(config: Config) -> Result<IngestApp, IngestError> {
        // Before anything records: a metric handle taken before the
        // recorder is installed records nowhere, for good.
        cx_runtime::telemetry::describe(telemetry::METRICS);
        telemetry::start_counters_at_zero();
        let settings = Self::settings(&config)?;
        let listeners = Listeners::bind(&config).await?;

        let producer = Arc::new(kafka::SharedProducer::new(
            &config.kafka,
            "cx-ingest",
            kafka::Sending::Requests,
            &[&config.kafka.topics.interactions],
        )?);
        let redis = RedisPool::new(&config.redis_url)?;
        let dedupe = DedupeStore::new(
            redis.clone(),
            &config.redis_key_prefix,
            Duration::from_secs(settings.claim_lease_s),
            Duration::from_secs(settings.dedupe_days * 86_400),
        );
        let ingestor = Arc::new(Ingestor::new(
            producer,
            config.kafka.topics.interactions.clone(),
            dedupe,
            Duration::from_millis(settings.in_flight_wait_ms),
        ));
        let readiness = Readiness::waiting_for(&["kafka", "redis"]);
        Ok(IngestApp {
            config,
            listeners,
            ingestor,
            admission: Admission::new(settings.max_request_bytes_in_progress),
            redis,
            readiness,
        })
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.listeners.grpc_addr()
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.listeners.http_addr()
    }

    pub fn readiness(&self) -> Readiness {
        self.readiness.clone()
    }

    /// The budget of request bytes in progress (a handle on the same one).
    pub fn admission(&self) -> Admission {
        self.admission.clone()
    }

    /// Serves until `shutdown` is cancelled, then drains: not-ready, stop
    /// taking requests, finish those in hand (within the grace period),
    /// flush the producer.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), IngestError> {
        let IngestApp {
            config,
            listeners,
            ingestor,
            admission,
            redis,
            readiness,
        } = self;
        tracing::info!(
            grpc = %listeners.grpc_addr(),
            http = %listeners.http_addr(),
            topic = %config.kafka.topics.interactions,
            "cx-ingest starting"
        );

        let background = CancellationToken::new();
        let topic = config.kafka.topics.interactions.clone();
        tokio::spawn(watch_dependencies(
            config.kafka.clone(),
            vec![topic.clone()],
            topic,
            ingestor.producer().clone(),
            redis,
            readiness.clone(),
            background.clone(),
        ));

        let policy = grpc::policy(&[
            ("/cx.v1.IngestService/", Scope::IngestWrite),
            ("/v1/interactions", Scope::IngestWrite),
        ]);
        let auth = AuthLayer::new(config.auth.clone(), policy);

        let service = Admitted::new(
            IngestServiceServer::new(GrpcIngest {
                ingestor: ingestor.clone(),
            })
            .max_decoding_message_size(api::MAX_GRPC_MESSAGE_BYTES),
            admission.clone(),
        );
        let http_router = api::http_routes(ingestor.clone(), admission)
            .layer(auth.clone())
            .merge(admin::router(readiness.clone()));
        let serving =
            Serving::start(&config, listeners, auth, service, http_router, &shutdown).await?;

        shutdown.cancelled().await;
        let producer = ingestor.producer();
        let grace = config.shutdown_grace;
        Ok(serving
            .shut_down(&readiness, &background, Vec::new(), producer, grace)
            .await?)
    }
}

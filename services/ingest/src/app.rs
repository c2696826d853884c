//! The ingest service as a library: build it from a [`Config`] (listeners
//! bound, nothing connected yet), then run it until the token is cancelled.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cx_proto::v1::ingest_service_server::IngestServiceServer;
use cx_runtime::auth::{AuthLayer, Scope};
use cx_runtime::{admin, grpc, kafka, Config, Readiness, RedisPool};
use rdkafka::producer::Producer;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::{self, GrpcIngest};
use crate::dedupe::DedupeStore;
use crate::submit::Ingestor;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("kafka client: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error(transparent)]
    Redis(#[from] cx_runtime::redis_pool::RedisPoolError),
    #[error(transparent)]
    Config(#[from] cx_runtime::ConfigError),
    #[error("grpc server: {0}")]
    Grpc(#[from] tonic::transport::Error),
    #[error("reflection: {0}")]
    Reflection(#[from] cx_runtime::grpc::ReflectionError),
    #[error("http server: {0}")]
    Http(std::io::Error),
}

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
}

impl Default for IngestSettings {
    fn default() -> Self {
        IngestSettings {
            grpc_addr: None,
            http_addr: None,
            dedupe_days: 8,
            claim_lease_s: 30,
            in_flight_wait_ms: 2000,
        }
    }
}

pub struct IngestApp {
    config: Config,
    grpc_listener: TcpListener,
    http_listener: TcpListener,
    ingestor: Arc<Ingestor>,
    redis: RedisPool,
    readiness: Readiness,
}

impl IngestApp {
    pub async fn build(config: Config) -> Result<IngestApp, IngestError> {
        let settings: IngestSettings = config.section("ingest")?;
        if settings.dedupe_days < 7 {
            return Err(cx_runtime::ConfigError::Invalid {
                name: "ingest.dedupe_days".into(),
                reason: "must be at least 7 (contract)".into(),
            }
            .into());
        }
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| IngestError::Bind { addr, source })
        };
        let grpc_listener = bind(config.grpc_addr).await?;
        let http_listener = bind(config.http_addr).await?;

        let producer = kafka::SharedProducer::new(&config.kafka, "cx-ingest")?;
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
        let readiness = Readiness::default();
        for check in ["kafka", "redis"] {
            readiness.register(check);
        }
        Ok(IngestApp {
            config,
            grpc_listener,
            http_listener,
            ingestor,
            redis,
            readiness,
        })
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_listener.local_addr().expect("bound listener")
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_listener.local_addr().expect("bound listener")
    }

    pub fn readiness(&self) -> Readiness {
        self.readiness.clone()
    }

    /// Serves until `shutdown` is cancelled, then drains: not-ready, stop
    /// taking requests, finish those in hand (within the grace period),
    /// flush the producer.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), IngestError> {
        let IngestApp {
            config,
            grpc_listener,
            http_listener,
            ingestor,
            redis,
            readiness,
        } = self;
        tracing::info!(
            grpc = %grpc_listener.local_addr().map_err(IngestError::Http)?,
            http = %http_listener.local_addr().map_err(IngestError::Http)?,
            topic = %config.kafka.topics.interactions,
            "cx-ingest starting"
        );

        let background = CancellationToken::new();
        tokio::spawn(watch_dependencies(
            config.clone(),
            ingestor.clone(),
            redis,
            readiness.clone(),
            background.clone(),
        ));

        let policy = grpc::policy(&[
            ("/cx.v1.IngestService/", Scope::IngestWrite),
            ("/v1/interactions", Scope::IngestWrite),
        ]);
        let auth = AuthLayer::new(config.auth.clone(), policy);

        let (health_reporter, health_service) = grpc::health();
        health_reporter
            .set_serving::<IngestServiceServer<GrpcIngest>>()
            .await;
        let ingest_service = IngestServiceServer::new(GrpcIngest {
            ingestor: ingestor.clone(),
        })
        .max_decoding_message_size(api::MAX_BATCH_BODY_BYTES + 64 * 1024);
        let grpc_server = tonic::transport::Server::builder()
            .layer(auth.clone())
            .add_service(health_service)
            .add_service(grpc::reflection()?)
            .add_service(ingest_service)
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(grpc_listener),
                shutdown.clone().cancelled_owned(),
            );

        let http_app = api::http_routes(ingestor.clone())
            .layer(auth)
            .merge(admin::router(readiness.clone()));
        let http_server = axum::serve(http_listener, http_app)
            .with_graceful_shutdown(shutdown.clone().cancelled_owned());

        let grpc_task = tokio::spawn(grpc_server);
        let http_task = tokio::spawn(async move { http_server.await });

        shutdown.cancelled().await;
        readiness.set_draining();
        let _ = health_reporter;
        tracing::info!(
            grace_s = config.shutdown_grace.as_secs(),
            "draining in-flight requests"
        );
        let drained = tokio::time::timeout(config.shutdown_grace, async {
            let grpc = grpc_task.await;
            let http = http_task.await;
            (grpc, http)
        })
        .await;
        background.cancel();
        let flush_producer = ingestor.producer().get();
        let flush_timeout = config.shutdown_grace;
        let flushed =
            tokio::task::spawn_blocking(move || flush_producer.flush(flush_timeout)).await;
        match drained {
            Ok((grpc, http)) => {
                if let Ok(Err(error)) = grpc {
                    return Err(IngestError::Grpc(error));
                }
                if let Ok(Err(error)) = http {
                    return Err(IngestError::Http(error));
                }
            }
            Err(_) => tracing::warn!("grace period over with requests still in flight"),
        }
        if let Ok(Err(error)) = flushed {
            tracing::warn!(%error, "producer flush incomplete");
        }
        Ok(())
    }
}

/// Keeps topics created and readiness current: Kafka answers for the topic,
/// Redis answers PING. Retries forever; never exits the service.
async fn watch_dependencies(
    config: Config,
    ingestor: Arc<Ingestor>,
    redis: RedisPool,
    readiness: Readiness,
    stop: CancellationToken,
) {
    let topic = config.kafka.topics.interactions.clone();
    let mut topics_ensured = false;
    let mut interval = tokio::time::interval(Duration::from_secs(2));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = interval.tick() => {}
        }
        if !topics_ensured {
            match kafka::ensure_topics(&config.kafka, &[&topic]).await {
                Ok(()) => topics_ensured = true,
                Err(error) => {
                    readiness.report(
                        "kafka",
                        Err(format!("cannot create topic {topic}: {error}")),
                    );
                    continue;
                }
            }
        }
        let producer = ingestor.producer().get();
        let (kafka_state, redis_state) =
            tokio::join!(kafka::probe_topic(&producer, &topic), redis.ping());
        readiness.report("kafka", kafka_state);
        readiness.report("redis", redis_state);
    }
}

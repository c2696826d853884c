//! The scoring service as a library: build from a [`Config`], run until
//! the token is cancelled.

use std::net::SocketAddr;
use std::sync::Arc;

use cx_analytics::tags::Taxonomy;
use cx_domain::DetractorThresholds;
use cx_proto::v1::metrics_service_server::MetricsServiceServer;
use cx_runtime::auth::{AuthLayer, Scope};
use cx_runtime::consumer::{self, ConsumerSettings};
use cx_runtime::kafka::{DeadLetters, Sending, SharedProducer};
use cx_runtime::server::{watch_dependencies, Listeners, Serving};
use cx_runtime::{admin, grpc, Config, Readiness, RedisPool};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::api::GrpcMetrics;
use crate::pipeline::ScoringHandler;
use crate::score::Scorer;
use crate::store::WindowStore;
use crate::telemetry;

/// Start-up and run errors, shared by every service.
pub type ScoringError = cx_runtime::StartError;

/// `[scoring]` section of the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScoringSettings {
    pub grpc_addr: Option<String>,
    pub http_addr: Option<String>,
    /// Consumer group: replicas sharing it split the partitions.
    pub group_id: String,
    /// Records per Redis script. Larger batches amortise more (buckets
    /// shared by more events): on the 2-core bench 2000 → 10 000 took
    /// throughput from ~20k/s to ~33k/s. The cost: Redis runs nothing else
    /// while a script runs (≈ 90 ms for 10 000 events there), which other
    /// Redis clients see as latency while scoring works through a backlog.
    pub max_batch: usize,
    pub detractor: DetractorThresholds,
    /// Replaces the built-in contact-centre taxonomy when given.
    pub taxonomy: Option<Taxonomy>,
}

impl Default for ScoringSettings {
    fn default() -> Self {
        ScoringSettings {
            grpc_addr: None,
            http_addr: None,
            group_id: "cx-scoring".into(),
            max_batch: 10_000,
            detractor: DetractorThresholds::default(),
            taxonomy: None,
        }
    }
}

pub struct ScoringApp {
    config: Config,
    settings: ScoringSettings,
    listeners: Listeners,
    scorer: Arc<Scorer>,
    store: WindowStore,
    producer: Arc<SharedProducer>,
    readiness: Readiness,
}

impl ScoringApp {
    /// The checks [`build`](Self::build) makes on the configuration before
    /// it binds or connects anything (`cx-scoring --check-config`).
    pub fn check_config(config: &Config) -> Result<(), ScoringError> {
        Self::settings(config).map(drop)
    }

    fn settings(config: &Config) -> Result<(ScoringSettings, Scorer), ScoringError> {
        let settings: ScoringSettings = config.section("scoring")?;
        let taxonomy = settings
            .taxonomy
            .clone()
            .unwrap_or_else(Taxonomy::contact_centre_default);
        let scorer = Scorer::new(&taxonomy, settings.detractor)
            .map_err(|e| ScoringError::settings("scoring.taxonomy", e))?;
        Ok((settings, scorer))
    }

    pub async fn build(config: Config) -> Result<ScoringApp, ScoringError> {
        // Before anything records: a metric handle taken before the
        // recorder is installed records nowhere, for good.
        cx_runtime::telemetry::describe(telemetry::METRICS);
        telemetry::start_counters_at_zero();
        let (settings, scorer) = Self::settings(&config)?;
        let scorer = Arc::new(scorer);
        let listeners = Listeners::bind(&config).await?;
        let redis = RedisPool::new(&config.redis_url)?;
        let store = WindowStore::new(redis, &config.redis_key_prefix);
        let producer = Arc::new(SharedProducer::new(
            &config.kafka,
            "cx-scoring",
            Sending::Batches,
            &[&config.kafka.topics.scored],
        )?);
        let readiness = Readiness::waiting_for(&["kafka", "redis"]);
        Ok(ScoringApp {
            config,
            settings,
            listeners,
            scorer,
            store,
            producer,
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

    /// Consumes and serves until `shutdown`; then stops polling, finishes
    /// and commits the batch in hand, drains the servers, flushes.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), ScoringError> {
        let ScoringApp {
            config,
            settings,
            listeners,
            scorer,
            store,
            producer,
            readiness,
        } = self;
        let topics = config.kafka.topics.clone();
        tracing::info!(
            grpc = %listeners.grpc_addr(),
            http = %listeners.http_addr(),
            source = %topics.interactions,
            group = %settings.group_id,
            "cx-scoring starting"
        );

        let background = CancellationToken::new();
        // The consumer task creates the topics; the watcher only probes.
        tokio::spawn(watch_dependencies(
            config.kafka.clone(),
            Vec::new(),
            topics.interactions.clone(),
            producer.clone(),
            store.redis().clone(),
            readiness.clone(),
            background.clone(),
        ));

        // The consumer starts once its topics exist; it stops on shutdown.
        let consumer_stop = shutdown.clone();
        let consumer_task = {
            let config = config.clone();
            let readiness = readiness.clone();
            let handler = ScoringHandler {
                scorer,
                store: store.clone(),
                producer: producer.clone(),
                scored_topic: topics.scored.clone(),
                dead_letters: DeadLetters {
                    topic: topics.deadletter.clone(),
                    consumer_group: settings.group_id.clone(),
                },
                readiness: readiness.clone(),
            };
            let consumer_settings = ConsumerSettings {
                max_batch: settings.max_batch,
                ..ConsumerSettings::new(
                    settings.group_id.clone(),
                    vec![topics.interactions.clone()],
                )
            };
            consumer::spawn_staged(
                config.kafka.clone(),
                vec![
                    topics.interactions.clone(),
                    topics.scored.clone(),
                    topics.deadletter.clone(),
                ],
                consumer_settings,
                handler,
                consumer_stop,
            )
        };

        let auth = AuthLayer::new(
            config.auth.clone(),
            grpc::policy(&[("/cx.v1.MetricsService/", Scope::MetricsRead)]),
        );
        let service = MetricsServiceServer::new(GrpcMetrics { store });
        let http_router = admin::router(readiness.clone());
        let serving =
            Serving::start(&config, listeners, auth, service, http_router, &shutdown).await?;

        shutdown.cancelled().await;
        readiness.set_draining();
        consumer::join(vec![consumer_task], config.shutdown_grace).await;
        let grace = config.shutdown_grace;
        Ok(serving
            .shut_down(&readiness, &background, Vec::new(), &producer, grace)
            .await?)
    }
}

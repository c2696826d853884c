//! The follow-up service as a library: build from a [`Config`] (and a
//! [`Clock`]), run until the token is cancelled.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cx_proto::v1::follow_up_service_server::FollowUpServiceServer;
use cx_runtime::auth::{AuthLayer, Scope};
use cx_runtime::consumer::{self, ConsumerSettings};
use cx_runtime::kafka::{DeadLetters, Sending, SharedProducer};
use cx_runtime::outbox::OutboxFeed;
use cx_runtime::server::{watch_dependencies, Listeners, Serving};
use cx_runtime::{admin, grpc, Config, Readiness, RedisPool};
use cx_tasks::{Directory, SlaConfig};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::api::{self, GrpcFollowups};
use crate::clock::{Clock, SystemClock};
use crate::followups::Followups;
use crate::pipeline::{AlertHandler, SurveyHandler, UpdateHandler};
use crate::relay::relay;
use crate::store::TaskStore;
use crate::telemetry;

/// Start-up and run errors, shared by every service.
pub type FollowupError = cx_runtime::StartError;

/// `[followup]` section of the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FollowupSettings {
    pub grpc_addr: Option<String>,
    pub http_addr: Option<String>,
    /// Consumer group of cx.alerts.v1; the updates and surveys groups are
    /// `{group_id}-updates` and `{group_id}-surveys`.
    pub group_id: String,
    pub max_batch: usize,
    /// How often the escalation timer looks for tasks past their due time.
    pub tick_ms: u64,
    /// Time to first contact per priority.
    pub sla: SlaConfig,
    /// Owners and escalation chains.
    pub directory: Directory,
    /// How long a closed task is kept (0: forever).
    pub retention_days: u32,
    /// How long relayed outbox entries stay in Redis.
    pub watch_retention_s: u64,
}

impl Default for FollowupSettings {
    fn default() -> Self {
        FollowupSettings {
            grpc_addr: None,
            http_addr: None,
            group_id: "cx-followup".into(),
            // The survey group reads every scored interaction: at 20k/s,
            // batches of 500 (about 20 ms each, mostly waiting on Redis)
            // fell further behind all through a 60 s run; 2000 kept up
            // (docs/BENCHMARKS.md).
            max_batch: 2000,
            tick_ms: 1000,
            sla: SlaConfig::default(),
            directory: Directory::default(),
            retention_days: 90,
            watch_retention_s: 3600,
        }
    }
}

pub struct FollowupApp {
    config: Config,
    settings: FollowupSettings,
    listeners: Listeners,
    followups: Followups,
    redis_url: String,
    producer: Arc<SharedProducer>,
    readiness: Readiness,
}

impl FollowupApp {
    /// The checks [`build`](Self::build) makes on the configuration before
    /// it binds or connects anything (`cx-followup --check-config`).
    pub fn check_config(config: &Config) -> Result<(), FollowupError> {
        Self::settings(config).map(drop)
    }

    fn settings(config: &Config) -> Result<FollowupSettings, FollowupError> {
        let settings: FollowupSettings = config.section("followup")?;
        if settings.tick_ms == 0 {
            return Err(FollowupError::settings(
                "followup.tick_ms",
                "must be at least 1",
            ));
        }
        if settings.max_batch == 0 {
            return Err(FollowupError::settings(
                "followup.max_batch",
                "must be at least 1",
            ));
        }
        // A zero SLA makes every task overdue the moment it opens.
        for (field, seconds) in [
            ("followup.sla.critical_s", settings.sla.critical_s),
            ("followup.sla.high_s", settings.sla.high_s),
            ("followup.sla.normal_s", settings.sla.normal_s),
        ] {
            if seconds == 0 {
                return Err(FollowupError::settings(field, "must be at least 1"));
            }
        }
        Ok(settings)
    }

    /// With the system clock.
    pub async fn build(config: Config) -> Result<FollowupApp, FollowupError> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// With the given clock for every task decision (tests pass a
    /// [`crate::ManualClock`]).
    pub async fn build_with_clock(
        config: Config,
        clock: Arc<dyn Clock>,
    ) -> Result<FollowupApp, FollowupError> {
        // Before anything records: a metric handle taken before the
        // recorder is installed records nowhere, for good.
        cx_runtime::telemetry::describe(telemetry::METRICS);
        let settings = Self::settings(&config)?;
        let listeners = Listeners::bind(&config).await?;
        let redis = RedisPool::new(&config.redis_url)?;
        let directory = &settings.directory;
        let store = TaskStore::new(redis, &config.redis_key_prefix, settings.retention_days)
            .with_metric_teams(
                directory
                    .teams
                    .keys()
                    .chain(directory.agents.values())
                    .cloned(),
            );
        telemetry::start_counters_at_zero(store.metric_team_labels());
        let producer = Arc::new(SharedProducer::new(
            &config.kafka,
            "cx-followup",
            Sending::Batches,
            &[&config.kafka.topics.followups],
        )?);
        let readiness = Readiness::waiting_for(&["kafka", "redis", "relay"]);
        let followups = Followups {
            store,
            clock,
            sla: settings.sla,
            directory: Arc::new(settings.directory.clone()),
        };
        Ok(FollowupApp {
            redis_url: config.redis_url.clone(),
            config,
            settings,
            listeners,
            followups,
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

    /// Consumes, escalates, relays and serves until `shutdown`; then stops
    /// polling, finishes and commits the batches in hand, drains the
    /// servers, flushes.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), FollowupError> {
        let FollowupApp {
            config,
            settings,
            listeners,
            followups,
            redis_url,
            producer,
            readiness,
        } = self;
        let topics = config.kafka.topics.clone();
        let store = followups.store.clone();
        tracing::info!(
            grpc = %listeners.grpc_addr(),
            http = %listeners.http_addr(),
            alerts = %topics.alerts,
            updates = %topics.followup_updates,
            surveys = %topics.scored,
            group = %settings.group_id,
            "cx-followup starting"
        );

        let background = CancellationToken::new();
        tokio::spawn(watch_dependencies(
            config.kafka.clone(),
            Vec::new(),
            topics.followups.clone(),
            producer.clone(),
            store.redis().clone(),
            readiness.clone(),
            background.clone(),
        ));

        // XREAD BLOCK would stall a shared connection: the relay and the
        // watch feed each tail the outbox on a connection of their own.
        let relay = relay(
            &store,
            RedisPool::new(&redis_url)?,
            producer.clone(),
            topics.followups.clone(),
            Duration::from_secs(settings.watch_retention_s),
            readiness.clone(),
        );
        let relay_task = tokio::spawn(relay.run(background.clone()));
        let feed = OutboxFeed::default();
        tokio::spawn(feed.clone().run(
            RedisPool::new(&redis_url)?,
            store.outbox_key(),
            "task",
            background.clone(),
        ));

        // The escalation timer stops with the consumers.
        let timer_task = tokio::spawn(crate::timer::run(
            followups.clone(),
            Duration::from_millis(settings.tick_ms),
            shutdown.clone(),
        ));

        // The consumers start once their topics exist; they stop on shutdown.
        let consumers = {
            let dead_letters = |consumer_group: String| DeadLetters {
                topic: topics.deadletter.clone(),
                consumer_group,
            };
            let alerts = AlertHandler {
                followups: followups.clone(),
                producer: producer.clone(),
                dead_letters: dead_letters(settings.group_id.clone()),
                readiness: readiness.clone(),
            };
            let updates = UpdateHandler {
                followups: followups.clone(),
                producer: producer.clone(),
                dead_letters: dead_letters(format!("{}-updates", settings.group_id)),
                readiness: readiness.clone(),
            };
            let surveys = SurveyHandler {
                followups: followups.clone(),
                readiness: readiness.clone(),
            };
            let settings_for = |group: String, topic: &str| ConsumerSettings {
                max_batch: settings.max_batch,
                ..ConsumerSettings::new(group, vec![topic.to_string()])
            };
            let alert_settings = settings_for(settings.group_id.clone(), &topics.alerts);
            let update_settings = settings_for(
                format!("{}-updates", settings.group_id),
                &topics.followup_updates,
            );
            let survey_settings =
                settings_for(format!("{}-surveys", settings.group_id), &topics.scored);
            // Every consumer creates all of follow-up's topics before it starts.
            let own_topics = vec![
                topics.alerts.clone(),
                topics.followups.clone(),
                topics.followup_updates.clone(),
                topics.scored.clone(),
                topics.deadletter.clone(),
            ];
            vec![
                consumer::spawn(
                    config.kafka.clone(),
                    own_topics.clone(),
                    alert_settings,
                    alerts,
                    shutdown.clone(),
                ),
                consumer::spawn(
                    config.kafka.clone(),
                    own_topics.clone(),
                    update_settings,
                    updates,
                    shutdown.clone(),
                ),
                consumer::spawn(
                    config.kafka.clone(),
                    own_topics,
                    survey_settings,
                    surveys,
                    shutdown.clone(),
                ),
            ]
        };

        let auth = AuthLayer::new(
            config.auth.clone(),
            grpc::policy(&[
                ("/cx.v1.FollowUpService/UpdateTask", Scope::FollowupsWrite),
                ("/cx.v1.FollowUpService/", Scope::FollowupsRead),
                ("/v1/", Scope::FollowupsRead),
            ]),
        );
        let service = FollowUpServiceServer::new(GrpcFollowups {
            followups: followups.clone(),
            feed,
            stop: shutdown.clone(),
        });
        let http_router = api::http_routes(store.clone())
            .layer(auth.clone())
            .merge(admin::router(readiness.clone()));
        let serving =
            Serving::start(&config, listeners, auth, service, http_router, &shutdown).await?;

        shutdown.cancelled().await;
        readiness.set_draining();
        consumer::join(consumers, config.shutdown_grace).await;
        let _ = timer_task.await;
        // The relay's last publishes are flushed with the rest.
        let awaited = vec![relay_task];
        let grace = config.shutdown_grace;
        Ok(serving
            .shut_down(&readiness, &background, awaited, &producer, grace)
            .await?)
    }
}

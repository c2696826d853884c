//! The alerting service as a library: build from a [`Config`], run until
//! the token is cancelled.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cx_proto::v1::alert_service_server::AlertServiceServer;
use cx_rules::{RuleConfig, RuleSet, RulesConfig};
use cx_runtime::auth::{AuthLayer, Scope};
use cx_runtime::consumer::{self, ConsumerSettings};
use cx_runtime::kafka::{DeadLetters, Sending, SharedProducer};
use cx_runtime::outbox::OutboxFeed;
use cx_runtime::server::{watch_dependencies, Listeners, Serving};
use cx_runtime::{admin, grpc, Config, Readiness, RedisPool};
use cx_scoring::store::WindowStore;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::api::GrpcAlerts;
use crate::pipeline::AlertingHandler;
use crate::relay::relay;
use crate::store::AlertStore;
use crate::telemetry;
use crate::webhook::{
    DeliveryHandler, DeliveryPolicy, Destination, DigestFlusher, Directory, Routes, Sender,
};

/// Start-up and run errors, shared by every service.
pub type AlertingError = cx_runtime::StartError;

/// `[alerting]` section of the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertingSettings {
    pub grpc_addr: Option<String>,
    pub http_addr: Option<String>,
    /// Consumer group of the rule evaluation on cx.scored.v1.
    pub group_id: String,
    /// Consumer group of webhook delivery on cx.alerts.v1.
    pub webhook_group_id: String,
    pub max_batch: usize,
    /// Interactions older than this (by occurred_at) raise no alert; they
    /// still count in the windows.
    pub max_event_age_s: i64,
    /// How long alerts stay listable.
    pub retention_days: u32,
    /// How far back WatchAlerts can resume.
    pub watch_retention_hours: u32,
    /// Replaces the built-in rules when given.
    pub rules: Option<Vec<RuleConfig>>,
    pub destinations: Vec<Destination>,
    pub routes: Routes,
    pub webhooks: DeliveryPolicy,
    /// The catch-all webhook; read by the shared config (CX_ALERT_WEBHOOK_URL wins).
    pub webhook_url: Option<String>,
    /// HMAC key for the catch-all webhook's deliveries.
    pub default_webhook_secret: Option<String>,
}

impl Default for AlertingSettings {
    fn default() -> Self {
        AlertingSettings {
            grpc_addr: None,
            http_addr: None,
            group_id: "cx-alerting".into(),
            webhook_group_id: "cx-alerting-webhooks".into(),
            // Window rules read every touched key's windows once per batch:
            // at 20k/s, 2000 instead of 500 cut those reads (MGET) by two
            // thirds and alerting's CPU by a fifth (docs/BENCHMARKS.md). A
            // slow trickle still makes small batches (a batch closes when
            // nothing more waits).
            max_batch: 2000,
            max_event_age_s: 86_400,
            retention_days: 30,
            watch_retention_hours: 24,
            rules: None,
            destinations: Vec::new(),
            routes: Routes::default(),
            webhooks: DeliveryPolicy::default(),
            webhook_url: None,
            default_webhook_secret: None,
        }
    }
}

pub struct AlertingApp {
    config: Config,
    settings: AlertingSettings,
    listeners: Listeners,
    rules: Arc<RuleSet>,
    directory: Arc<Directory>,
    redis: RedisPool,
    producer: Arc<SharedProducer>,
    readiness: Readiness,
}

impl AlertingApp {
    /// The checks [`build`](Self::build) makes on the configuration before
    /// it binds or connects anything (`cx-alerting --check-config`).
    pub fn check_config(config: &Config) -> Result<(), AlertingError> {
        Self::settings(config).map(drop)
    }

    fn settings(config: &Config) -> Result<(AlertingSettings, RuleSet, Directory), AlertingError> {
        let settings: AlertingSettings = config.section("alerting")?;
        if settings.max_event_age_s < 0 {
            return Err(AlertingError::settings(
                "alerting.max_event_age_s",
                "must not be negative",
            ));
        }
        if settings.max_batch == 0 {
            return Err(AlertingError::settings(
                "alerting.max_batch",
                "must be at least 1",
            ));
        }
        let rules_config = match &settings.rules {
            Some(rules) => RulesConfig {
                rules: rules.clone(),
            },
            None => RulesConfig::contact_centre_default(),
        };
        let rules = RuleSet::compile(&rules_config)
            .map_err(|e| AlertingError::settings("alerting.rules", e))?;
        let directory = Directory::new(
            &settings.destinations,
            &settings.routes,
            config.alert_webhook_url.as_deref(),
            settings.default_webhook_secret.as_deref(),
        )
        .map_err(|e| AlertingError::Settings(e.to_string()))?;
        Ok((settings, rules, directory))
    }

    pub async fn build(config: Config) -> Result<AlertingApp, AlertingError> {
        // Before anything records: a metric handle taken before the
        // recorder is installed records nowhere, for good.
        cx_runtime::telemetry::describe(telemetry::METRICS);
        let (settings, rules, directory) = Self::settings(&config)?;
        telemetry::start_counters_at_zero(&rules, &directory);
        let (rules, directory) = (Arc::new(rules), Arc::new(directory));
        let listeners = Listeners::bind(&config).await?;
        let redis = RedisPool::new(&config.redis_url)?;
        let producer = Arc::new(SharedProducer::new(
            &config.kafka,
            "cx-alerting",
            Sending::Batches,
            &[&config.kafka.topics.alerts],
        )?);
        let readiness = Readiness::waiting_for(&["kafka", "redis", "relay"]);
        Ok(AlertingApp {
            config,
            settings,
            listeners,
            rules,
            directory,
            redis,
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

    /// Consumes, relays, delivers and serves until `shutdown`; then stops
    /// polling, finishes and commits the batches in hand, drains, flushes.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), AlertingError> {
        let AlertingApp {
            config,
            settings,
            listeners,
            rules,
            directory,
            redis,
            producer,
            readiness,
        } = self;
        let topics = config.kafka.topics.clone();
        let prefix = config.redis_key_prefix.clone();
        tracing::info!(
            grpc = %listeners.grpc_addr(),
            http = %listeners.http_addr(),
            source = %topics.scored,
            rules = rules.event_rules_len() + rules.window_rules().len(),
            destinations = directory.destinations().count(),
            "cx-alerting starting"
        );
        let alerts = AlertStore::new(redis.clone(), &prefix, settings.retention_days);
        let background = CancellationToken::new();
        tokio::spawn(watch_dependencies(
            config.kafka.clone(),
            Vec::new(),
            topics.scored.clone(),
            producer.clone(),
            redis.clone(),
            readiness.clone(),
            background.clone(),
        ));
        tokio::spawn(
            relay(
                alerts.clone(),
                RedisPool::new(&config.redis_url)?,
                producer.clone(),
                topics.alerts.clone(),
                &prefix,
                Duration::from_secs(u64::from(settings.watch_retention_hours) * 3600),
                readiness.clone(),
            )
            .run(background.clone()),
        );
        let feed = OutboxFeed::default();
        tokio::spawn(feed.clone().run(
            RedisPool::new(&config.redis_url)?,
            alerts.outbox_key(),
            "alert",
            background.clone(),
        ));

        // Every consumer creates all of alerting's topics before it starts.
        let own_topics = vec![
            topics.scored.clone(),
            topics.alerts.clone(),
            topics.deadletter.clone(),
        ];
        let mut consumers = Vec::new();
        {
            let handler = AlertingHandler {
                rules,
                windows: WindowStore::new(redis.clone(), &prefix),
                alerts: alerts.clone(),
                producer: producer.clone(),
                dead_letters: DeadLetters {
                    topic: topics.deadletter.clone(),
                    consumer_group: settings.group_id.clone(),
                },
                readiness: readiness.clone(),
                max_event_age_s: settings.max_event_age_s,
            };
            let settings = ConsumerSettings {
                max_batch: settings.max_batch,
                ..ConsumerSettings::new(settings.group_id.clone(), vec![topics.scored.clone()])
            };
            consumers.push(consumer::spawn(
                config.kafka.clone(),
                own_topics.clone(),
                settings,
                handler,
                shutdown.clone(),
            ));
        }
        if !directory.is_empty() {
            let webhook_dead_letters = DeadLetters {
                topic: topics.deadletter.clone(),
                consumer_group: settings.webhook_group_id.clone(),
            };
            let sender = Arc::new(Sender::new(settings.webhooks.clone()));
            tokio::spawn(
                DigestFlusher {
                    directory: directory.clone(),
                    sender: sender.clone(),
                    redis: redis.clone(),
                    prefix: prefix.clone(),
                    interval: Duration::from_secs(settings.webhooks.digest_interval_s.max(1)),
                    producer: producer.clone(),
                    dead_letters: webhook_dead_letters.clone(),
                    alerts_topic: topics.alerts.clone(),
                }
                .run(background.clone()),
            );
            let handler = DeliveryHandler::new(
                directory.clone(),
                sender,
                redis.clone(),
                &prefix,
                producer.clone(),
                webhook_dead_letters,
                settings.webhooks.concurrency,
                shutdown.clone(),
            );
            let settings = ConsumerSettings::new(
                settings.webhook_group_id.clone(),
                vec![topics.alerts.clone()],
            );
            consumers.push(consumer::spawn(
                config.kafka.clone(),
                own_topics.clone(),
                settings,
                handler,
                shutdown.clone(),
            ));
        }

        let auth = AuthLayer::new(
            config.auth.clone(),
            grpc::policy(&[
                ("/cx.v1.AlertService/AcknowledgeAlert", Scope::AlertsWrite),
                ("/cx.v1.AlertService/", Scope::AlertsRead),
            ]),
        );
        let service = AlertServiceServer::new(GrpcAlerts {
            store: alerts,
            feed,
            stop: shutdown.clone(),
        });
        let http_router = admin::router(readiness.clone());
        let serving =
            Serving::start(&config, listeners, auth, service, http_router, &shutdown).await?;

        shutdown.cancelled().await;
        readiness.set_draining();
        consumer::join(consumers, config.shutdown_grace).await;
        // The relay is not waited for: alerts it has not published yet stay
        // in the outbox for the next lease holder.
        let grace = config.shutdown_grace;
        Ok(serving
            .shut_down(&readiness, &background, Vec::new(), &producer, grace)
            .await?)
    }
}

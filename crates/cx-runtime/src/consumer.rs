//! At-least-once consumption: offsets are stored and committed only after
//! the handler reports the batch's effect durable.
//!
//! Auto-commit and auto offset store are off. A batch is handed to the
//! handler until it succeeds (a failing dependency pauses consumption rather
//! than passing over records); then every offset in it is stored and committed.
//! A crash or a rebalance redelivers at most the uncommitted batches, so
//! handlers must be idempotent (every cxloop effect is keyed).

use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedMessage;
use rdkafka::Message;
use tokio_util::sync::CancellationToken;

use crate::config::KafkaConfig;
use crate::kafka::is_producer_only;

#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    pub group_id: String,
    pub topics: Vec<String>,
    /// Most records handed over at once.
    pub max_batch: usize,
    /// How long to wait to fill a batch once it has a first record.
    pub max_wait: Duration,
    /// First and largest pause between attempts of a failing batch.
    pub retry_backoff: (Duration, Duration),
}

impl ConsumerSettings {
    pub fn new(group_id: impl Into<String>, topics: Vec<String>) -> Self {
        ConsumerSettings {
            group_id: group_id.into(),
            topics,
            max_batch: 500,
            max_wait: Duration::from_millis(5),
            retry_backoff: (Duration::from_millis(100), Duration::from_secs(5)),
        }
    }
}

/// What a service does with a batch. `Err` means "not durable yet": the
/// same batch comes back after a pause, and nothing is committed.
pub trait BatchHandler {
    fn handle(
        &mut self,
        batch: &[OwnedMessage],
    ) -> impl std::future::Future<Output = Result<(), String>> + Send;

    /// Called while a batch keeps failing and when it succeeds again, so a
    /// service can report not-ready.
    fn healthy(&mut self, _healthy: bool) {}
}

pub fn consumer(
    kafka: &KafkaConfig,
    settings: &ConsumerSettings,
) -> Result<StreamConsumer, KafkaError> {
    let mut config = rdkafka::ClientConfig::new();
    config
        .set("bootstrap.servers", &kafka.brokers)
        .set("group.id", &settings.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest");
    for (name, value) in &kafka.properties {
        if !is_producer_only(name) {
            config.set(name, value);
        }
    }
    // The at-least-once promise rests on these two: a pass-through cannot undo them.
    config
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    let consumer: StreamConsumer = config.create()?;
    let topics: Vec<&str> = settings.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics)?;
    Ok(consumer)
}

/// A service's consumer as a task: creates `topics` (retrying until
/// `stop`), then consumes with `handler` until `stop`.
pub fn spawn<H>(
    kafka: KafkaConfig,
    topics: Vec<String>,
    settings: ConsumerSettings,
    mut handler: H,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<Result<(), KafkaError>>
where
    H: BatchHandler + Send + 'static,
{
    tokio::spawn(async move {
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        if !crate::kafka::ensure_topics_until(&kafka, &names, &stop).await {
            return Ok(());
        }
        let stream = consumer(&kafka, &settings)?;
        run(&stream, &settings, &mut handler, &stop).await
    })
}

/// After `stop`: waits up to `grace` for the consumer tasks to finish and
/// commit their batches, logging any that failed or ran out of time.
pub async fn join(tasks: Vec<tokio::task::JoinHandle<Result<(), KafkaError>>>, grace: Duration) {
    match tokio::time::timeout(grace, futures::future::join_all(tasks)).await {
        Ok(results) => {
            for result in results {
                match result {
                    Ok(Err(error)) => tracing::error!(%error, "consumer stopped with an error"),
                    Err(error) => tracing::error!(%error, "consumer task failed"),
                    Ok(Ok(())) => {}
                }
            }
        }
        Err(_) => tracing::warn!("consumers did not finish their batches within the grace period"),
    }
}

/// Runs until `shutdown`: the batch in hand is finished and committed
/// before returning.
pub async fn run<H: BatchHandler>(
    consumer: &StreamConsumer,
    settings: &ConsumerSettings,
    handler: &mut H,
    shutdown: &CancellationToken,
) -> Result<(), KafkaError> {
    loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => break,
            received = consumer.recv() => received,
        };
        let first = match first {
            Ok(message) => message.detach(),
            Err(error) => {
                tracing::warn!(%error, "kafka consume error");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let mut batch = vec![first];
        let fill_until = tokio::time::Instant::now() + settings.max_wait;
        while batch.len() < settings.max_batch {
            match tokio::time::timeout_at(fill_until, consumer.recv()).await {
                Ok(Ok(message)) => batch.push(message.detach()),
                Ok(Err(error)) => {
                    tracing::warn!(%error, "kafka consume error");
                    break;
                }
                Err(_elapsed) => break,
            }
        }
        metrics::counter!(crate::telemetry::KAFKA_CONSUMED_TOTAL).increment(batch.len() as u64);

        // Until the effect is durable, nothing moves; shutdown does not
        // interrupt a batch that is being retried (its records would come
        // back anyway), but it stops retrying.
        let mut backoff = settings.retry_backoff.0;
        let mut failing = false;
        loop {
            match handler.handle(&batch).await {
                Ok(()) => {
                    if failing {
                        handler.healthy(true);
                    }
                    break;
                }
                Err(reason) => {
                    if !failing {
                        tracing::warn!(%reason, records = batch.len(), "batch not durable; retrying, nothing committed");
                        handler.healthy(false);
                        failing = true;
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(settings.retry_backoff.1);
                }
            }
        }
        store_and_commit(consumer, &batch, CommitMode::Async);
    }
    // Make the last stored offsets durable before leaving.
    if let Err(error) = consumer.commit_consumer_state(CommitMode::Sync) {
        if !matches!(
            error,
            KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)
        ) {
            tracing::warn!(%error, "final commit failed; the last batch may be redelivered");
        }
    }
    Ok(())
}

fn store_and_commit(consumer: &StreamConsumer, batch: &[OwnedMessage], mode: CommitMode) {
    for message in batch {
        // A partition revoked meanwhile refuses the store; its new owner
        // redelivers from the last commit, which idempotent effects absorb.
        if let Err(error) =
            consumer.store_offset(message.topic(), message.partition(), message.offset())
        {
            tracing::debug!(%error, "offset store refused");
        }
    }
    if let Err(error) = consumer.commit_consumer_state(mode) {
        tracing::debug!(%error, "commit deferred");
    }
}

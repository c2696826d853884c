//! Kafka plumbing: client settings, an `acks=all` idempotent producer, topic
//! creation, readiness probes, and the dead-letter record format.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use crate::config::KafkaConfig;

/// How long one produce may take before it is reported failed. Short enough
/// that a caller gets a 503 while the broker is down, not a hang.
pub const DEFAULT_MESSAGE_TIMEOUT_MS: &str = "5000";

/// The base client config: bootstrap servers, then pass-through properties.
pub fn client_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &kafka.brokers);
    for (name, value) in &kafka.properties {
        config.set(name, value);
    }
    config
}

/// How a producer is fed, which decides how long librdkafka holds a record
/// for more to go in the same request (`linger.ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sending {
    /// Many callers with a record or a few each (ingest's requests): a
    /// wait gathers them into fewer, larger produce requests.
    Requests,
    /// A whole batch enqueued at once, then awaited (scoring's scored
    /// records, the outbox relays): nothing more comes while the caller
    /// waits, so lingering only delays the batch.
    Batches,
}

impl Sending {
    fn linger_ms(self) -> &'static str {
        match self {
            // librdkafka's default. At 2k/s, 2 ms made more, smaller
            // produce requests: ingest used a fifth more CPU and ack →
            // alert was slower, not faster (docs/BENCHMARKS.md).
            Sending::Requests => "5",
            // Enqueueing a batch takes microseconds; 1 ms still sends it
            // in one request rather than starting with its first record.
            Sending::Batches => "1",
        }
    }
}

/// A producer that acknowledges only what every in-sync replica has:
/// `acks=all` and idempotence (no duplicates from its own retries).
pub fn producer(kafka: &KafkaConfig, client_id: &str) -> Result<FutureProducer, KafkaError> {
    producer_for(kafka, client_id, Sending::Requests)
}

/// [`producer`] for a way of sending; a `linger.ms` among the pass-through
/// properties still wins.
pub fn producer_for(
    kafka: &KafkaConfig,
    client_id: &str,
    sending: Sending,
) -> Result<FutureProducer, KafkaError> {
    producer_config(kafka, client_id, sending).create()
}

fn producer_config(kafka: &KafkaConfig, client_id: &str, sending: Sending) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &kafka.brokers)
        .set("client.id", client_id)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", DEFAULT_MESSAGE_TIMEOUT_MS)
        .set("linger.ms", sending.linger_ms())
        .set("queue.buffering.max.messages", "200000");
    for (name, value) in &kafka.properties {
        // Consumer-only properties would make librdkafka warn on a producer.
        // One that weakens a guarantee is left out, not overridden: librdkafka
        // has several names for one setting, and of two spellings set, which
        // one wins is not fixed (config refuses them at load too).
        if !is_consumer_only(name) && crate::config::weakens_a_guarantee(name, value).is_none() {
            config.set(name, value);
        }
    }
    // acks=all is the contract's durability promise: a pass-through cannot weaken it.
    config.set("acks", "all");
    config
}

fn is_consumer_only(name: &str) -> bool {
    name.starts_with("fetch.")
        || name.starts_with("group.")
        || name.starts_with("auto.")
        || name.starts_with("enable.auto")
        || name.starts_with("session.")
        || name.starts_with("heartbeat.")
        || name.starts_with("max.poll")
        || name == "isolation.level"
        || name.starts_with("partition.assignment")
}

/// Producer-only properties stripped from consumer configs, for the same reason.
pub fn is_producer_only(name: &str) -> bool {
    name.starts_with("linger")
        || name.starts_with("queue.buffering")
        || name.starts_with("batch.")
        || name == "acks"
        || name == "enable.idempotence"
        || name.starts_with("message.timeout")
        || name.starts_with("compression")
        || name.starts_with("delivery.")
}

/// Creates the topics that are missing; existing ones are left as they are.
pub async fn ensure_topics(kafka: &KafkaConfig, topics: &[&str]) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> =
        client_config(kafka).set("client.id", "cx-admin").create()?;
    let new_topics: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|name| {
            NewTopic::new(
                name,
                kafka.topic_partitions,
                TopicReplication::Fixed(kafka.topic_replication),
            )
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics(&new_topics, &options).await? {
        match result {
            Ok(name) => tracing::info!(topic = %name, "topic created"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                tracing::warn!(topic = %name, error = %code, "topic creation failed");
                return Err(KafkaError::AdminOp(code));
            }
        }
    }
    Ok(())
}

/// Asks the cluster for a topic's metadata: succeeds only when a broker
/// answers and knows the topic with at least one partition.
pub async fn probe_topic(producer: &FutureProducer, topic: &str) -> Result<(), String> {
    let client = producer.clone();
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || {
        let metadata = client
            .client()
            .fetch_metadata(Some(&topic), Duration::from_secs(3))
            .map_err(|e| format!("metadata request failed: {e}"))?;
        let found = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .ok_or_else(|| format!("topic {topic} unknown"))?;
        if found.error().is_some() || found.partitions().is_empty() {
            return Err(format!("topic {topic} has no partitions yet"));
        }
        Ok(())
    })
    .await
    .map_err(|e| format!("probe task failed: {e}"))?
}

/// Creates `topics`, retrying with backoff until it works (true) or `stop`
/// is cancelled first (false). Consumers start only after this.
pub async fn ensure_topics_until(
    kafka: &KafkaConfig,
    topics: &[&str],
    stop: &tokio_util::sync::CancellationToken,
) -> bool {
    let mut backoff = Duration::from_millis(200);
    loop {
        match ensure_topics(kafka, topics).await {
            Ok(()) => return true,
            Err(error) => tracing::warn!(%error, "cannot create topics yet; retrying"),
        }
        tokio::select! {
            _ = stop.cancelled() => return false,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Where a consumer group's refused records go, and the group they name
/// (two groups of one topic may both refuse a record: `cx-consumer-group`
/// tells their dead letters apart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetters {
    pub topic: String,
    pub consumer_group: String,
}

/// Headers of a dead-letter record (contract: cx.deadletter.v1, plus
/// `cx-consumer-group`).
pub struct DeadLetter<'a> {
    pub error: &'a str,
    pub consumer_group: &'a str,
    pub source_topic: &'a str,
    pub source_partition: i32,
    pub source_offset: i64,
}

impl DeadLetter<'_> {
    pub fn headers(&self) -> OwnedHeaders {
        let partition = self.source_partition.to_string();
        let offset = self.source_offset.to_string();
        OwnedHeaders::new()
            .insert(Header {
                key: "cx-error",
                value: Some(self.error),
            })
            .insert(Header {
                key: "cx-source-topic",
                value: Some(self.source_topic),
            })
            .insert(Header {
                key: "cx-source-partition",
                value: Some(partition.as_str()),
            })
            .insert(Header {
                key: "cx-source-offset",
                value: Some(offset.as_str()),
            })
            .insert(Header {
                key: "cx-consumer-group",
                value: Some(self.consumer_group),
            })
    }

    /// Publishes the original key and bytes with the reason, waiting for the ack.
    pub async fn publish(
        &self,
        producer: &FutureProducer,
        deadletter_topic: &str,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
    ) -> Result<(), KafkaError> {
        let mut record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(deadletter_topic).headers(self.headers());
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(payload) = payload {
            record = record.payload(payload);
        }
        producer
            .send(record, Duration::from_secs(0))
            .await
            .map(|_| ())
            .map_err(|(e, _)| e)?;
        metrics::counter!(crate::telemetry::DEADLETTER_TOTAL, "source" => self.source_topic.to_string())
            .increment(1);
        Ok(())
    }
}

/// Records librdkafka holds for [`SharedProducer::enqueue_all`], not yet acknowledged.
#[must_use = "nothing is known to be durable until acknowledged"]
pub struct Enqueued<'p> {
    shared: &'p SharedProducer,
    producer: std::sync::Arc<FutureProducer>,
    sent: Vec<Result<rdkafka::producer::DeliveryFuture, KafkaError>>,
    /// The records' topics as runs (topic, records in a row), in order:
    /// for the per-topic counters, without a String per record.
    topic_runs: Vec<(String, usize)>,
}

impl Enqueued<'_> {
    /// Waits for each acknowledgement; results in order. A producer left
    /// broken by the errors is replaced.
    pub async fn acknowledged(self) -> Vec<Result<(), KafkaError>> {
        let results = futures::future::join_all(self.sent.into_iter().map(|sent| async move {
            match sent {
                Ok(delivery) => match delivery.await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err((error, _))) => Err(error),
                    Err(_canceled) => Err(KafkaError::Canceled),
                },
                Err(error) => Err(error),
            }
        }))
        .await;
        count_produced(&self.topic_runs, &results);
        if results.iter().any(Result::is_err) {
            self.shared.recover_if_broken(
                &self.producer,
                results.iter().filter_map(|r| r.as_ref().err()),
            );
        }
        results
    }
}

/// Counts acknowledged and refused records per topic.
fn count_produced(topic_runs: &[(String, usize)], results: &[Result<(), KafkaError>]) {
    let mut results = results.iter();
    for (topic, records) in topic_runs {
        let (mut acked, mut refused) = (0u64, 0u64);
        for result in results.by_ref().take(*records) {
            match result {
                Ok(()) => acked += 1,
                Err(_) => refused += 1,
            }
        }
        if acked > 0 {
            metrics::counter!(crate::telemetry::KAFKA_PRODUCED_TOTAL, "topic" => topic.clone())
                .increment(acked);
        }
        if refused > 0 {
            metrics::counter!(crate::telemetry::KAFKA_PRODUCE_ERRORS_TOTAL, "topic" => topic.clone())
                .increment(refused);
        }
    }
}

/// A producer that replaces itself after a fatal error.
///
/// An idempotent producer can hit an error librdkafka calls fatal (the
/// broker fenced its producer id after a timed-out batch, a sequence gap…);
/// from then on every send fails and the documented remedy is a new
/// instance. Sends made before the swap finish on the old instance.
pub struct SharedProducer {
    kafka: KafkaConfig,
    client_id: String,
    sending: Sending,
    current: std::sync::RwLock<std::sync::Arc<FutureProducer>>,
}

impl SharedProducer {
    /// A producer for `topics` (their produce counters start at 0; dead
    /// letters are counted by source topic when a consumer subscribes).
    pub fn new(
        kafka: &KafkaConfig,
        client_id: &str,
        sending: Sending,
        topics: &[&str],
    ) -> Result<SharedProducer, KafkaError> {
        use crate::telemetry::{
            start_at_zero, KAFKA_PRODUCED_TOTAL, KAFKA_PRODUCER_RESETS_TOTAL,
            KAFKA_PRODUCE_ERRORS_TOTAL,
        };
        for topic in topics {
            start_at_zero(KAFKA_PRODUCED_TOTAL, &[("topic", topic)]);
            start_at_zero(KAFKA_PRODUCE_ERRORS_TOTAL, &[("topic", topic)]);
        }
        start_at_zero(KAFKA_PRODUCER_RESETS_TOTAL, &[]);
        Ok(SharedProducer {
            kafka: kafka.clone(),
            client_id: client_id.to_string(),
            sending,
            current: std::sync::RwLock::new(std::sync::Arc::new(producer_for(
                kafka, client_id, sending,
            )?)),
        })
    }

    /// Sends every record at once and waits for each acknowledgement;
    /// results in order. A producer left broken by the errors is replaced.
    pub async fn send_all<'a, K>(
        &self,
        records: Vec<FutureRecord<'a, K, [u8]>>,
    ) -> Vec<Result<(), KafkaError>>
    where
        K: rdkafka::message::ToBytes + ?Sized + 'a,
    {
        self.enqueue_all(records).acknowledged().await
    }

    /// Hands every record to librdkafka, which copies keys and payloads: the
    /// caller may free its buffers before [`Enqueued::acknowledged`].
    pub fn enqueue_all<K>(&self, records: Vec<FutureRecord<'_, K, [u8]>>) -> Enqueued<'_>
    where
        K: rdkafka::message::ToBytes + ?Sized,
    {
        let producer = self.get();
        let mut topic_runs: Vec<(String, usize)> = Vec::new();
        let sent = records
            .into_iter()
            .map(|record| {
                match topic_runs.last_mut() {
                    Some((topic, records)) if topic == record.topic => *records += 1,
                    _ => topic_runs.push((record.topic.to_string(), 1)),
                }
                producer.send_result(record).map_err(|(error, _)| error)
            })
            .collect();
        Enqueued {
            shared: self,
            producer,
            sent,
            topic_runs,
        }
    }

    /// Dead-letters consumed records with their reasons, waiting for every
    /// ack; the first failure is returned (and a broken producer replaced).
    pub async fn dead_letter(
        &self,
        to: &DeadLetters,
        dead: &[(&rdkafka::message::OwnedMessage, String)],
    ) -> Result<(), String> {
        use rdkafka::Message as _;
        let producer = self.get();
        let sends = dead.iter().map(|(message, reason)| {
            let producer = producer.clone();
            async move {
                DeadLetter {
                    error: reason,
                    consumer_group: &to.consumer_group,
                    source_topic: message.topic(),
                    source_partition: message.partition(),
                    source_offset: message.offset(),
                }
                .publish(&producer, &to.topic, message.key(), message.payload())
                .await
            }
        });
        let errors: Vec<KafkaError> = futures::future::join_all(sends)
            .await
            .into_iter()
            .filter_map(Result::err)
            .collect();
        if let Some(error) = errors.first() {
            self.recover_if_broken(&producer, &errors);
            return Err(format!("dead-letter publish failed: {error}"));
        }
        for (message, reason) in dead {
            tracing::warn!(%reason, topic = message.topic(), offset = message.offset(), "record dead-lettered");
        }
        Ok(())
    }

    pub fn get(&self) -> std::sync::Arc<FutureProducer> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Call after sends failed on `used` with `errors`: when the producer is
    /// in a fatal state, the broker refused its producer id or epoch (a
    /// state it never leaves by itself), or a message timed out (its
    /// sequence may have reached the broker: the idempotent producer must
    /// then bump its epoch, which a broker may answer with a fence, and the
    /// next caller's send would fail on it), a fresh producer takes its
    /// place if `used` is still current.
    pub fn recover_if_broken<'e>(
        &self,
        used: &std::sync::Arc<FutureProducer>,
        errors: impl IntoIterator<Item = &'e KafkaError>,
    ) {
        let fatal = used
            .client()
            .fatal_error()
            .map(|(code, reason)| format!("{code:?}: {reason}"));
        let fenced = errors
            .into_iter()
            .find_map(|e| match e.rdkafka_error_code() {
                Some(
                    code @ (RDKafkaErrorCode::ProducerFenced
                    | RDKafkaErrorCode::InvalidProducerEpoch
                    | RDKafkaErrorCode::InvalidProducerIdMapping
                    | RDKafkaErrorCode::UnknownProducerId
                    | RDKafkaErrorCode::OutOfOrderSequenceNumber
                    | RDKafkaErrorCode::MessageTimedOut),
                ) => Some(format!("{code:?}")),
                _ => None,
            });
        let Some(reason) = fatal.or(fenced) else {
            return;
        };
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        if !std::sync::Arc::ptr_eq(&current, used) {
            return; // another caller already replaced it
        }
        match producer_for(&self.kafka, &self.client_id, self.sending) {
            Ok(fresh) => {
                tracing::warn!(%reason, "kafka producer can no longer produce; replaced it");
                metrics::counter!(crate::telemetry::KAFKA_PRODUCER_RESETS_TOTAL).increment(1);
                *current = std::sync::Arc::new(fresh);
            }
            Err(error) => tracing::error!(%error, "cannot create a replacement kafka producer"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kafka(properties: &[(&str, &str)]) -> KafkaConfig {
        KafkaConfig {
            brokers: "127.0.0.1:9092".into(),
            properties: properties
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            group_properties: Default::default(),
            topic_partitions: 1,
            topic_replication: 1,
            topics: Default::default(),
        }
    }

    #[test]
    fn batches_linger_less_than_requests_unless_told_and_acks_stay_all() {
        let plain = kafka(&[("fetch.wait.max.ms", "10")]);
        let requests = producer_config(&plain, "p", Sending::Requests);
        let batches = producer_config(&plain, "p", Sending::Batches);
        assert_eq!(requests.get("linger.ms"), Some("5"));
        assert_eq!(batches.get("linger.ms"), Some("1"));
        assert_eq!(
            batches.get("fetch.wait.max.ms"),
            None,
            "consumer-only, stripped"
        );
        let told = kafka(&[("linger.ms", "20"), ("acks", "1"), ("topic.acks", "0")]);
        let batches = producer_config(&told, "p", Sending::Batches);
        assert_eq!(batches.get("linger.ms"), Some("20"));
        assert_eq!(batches.get("acks"), Some("all"));
        assert_eq!(
            batches.get("topic.acks"),
            None,
            "another name of acks, left out"
        );
        assert_eq!(batches.get("enable.idempotence"), Some("true"));
    }
}

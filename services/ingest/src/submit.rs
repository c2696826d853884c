//! The heart of ingest: claim each interaction_id, publish what was claimed
//! (acks=all), then mark it done — or release it when Kafka refused.
//!
//! A batch costs two Redis round trips and one wave of concurrent produces,
//! whatever its size.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cx_domain::Interaction;
use cx_proto::prost::Message;
use cx_runtime::kafka::SharedProducer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;

use crate::convert;
use crate::dedupe::{Claim, DedupeStore};
use crate::telemetry;

/// What happened to one valid interaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    Duplicate,
    /// Kafka or Redis could not take it; nothing was marked, a retry is safe.
    Unavailable(String),
}

pub struct Ingestor {
    producer: Arc<SharedProducer>,
    topic: String,
    dedupe: DedupeStore,
    /// How long to wait for a concurrent request holding the same id.
    in_flight_wait: Duration,
}

impl Ingestor {
    pub fn new(
        producer: Arc<SharedProducer>,
        topic: String,
        dedupe: DedupeStore,
        in_flight_wait: Duration,
    ) -> Self {
        Ingestor {
            producer,
            topic,
            dedupe,
            in_flight_wait,
        }
    }

    pub fn producer(&self) -> &Arc<SharedProducer> {
        &self.producer
    }

    pub fn dedupe(&self) -> &DedupeStore {
        &self.dedupe
    }

    /// Submits valid interactions; one outcome per item, in order. Each
    /// interaction is dropped once encoded for Kafka: while the produce is
    /// acknowledged only its id is kept (the memory of the requests in
    /// progress is what ingest's budget bounds).
    pub async fn submit(&self, items: Vec<Interaction>) -> Vec<Outcome> {
        let mut outcomes: Vec<Option<Outcome>> = vec![None; items.len()];
        let ids: Vec<String> = items
            .iter()
            .map(|i| i.interaction_id.as_str().to_owned())
            .collect();
        let mut unpublished: Vec<Option<Interaction>> = items.into_iter().map(Some).collect();

        // The first occurrence of an id in the batch leads; repeats follow it.
        let mut leader_by_id: HashMap<&str, usize> = HashMap::new();
        let mut follower_of: Vec<Option<usize>> = vec![None; ids.len()];
        for (index, id) in ids.iter().enumerate() {
            match leader_by_id.entry(id.as_str()) {
                std::collections::hash_map::Entry::Occupied(e) => {
                    follower_of[index] = Some(*e.get())
                }
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(index);
                }
            }
        }
        let mut waiting: Vec<usize> = (0..ids.len())
            .filter(|i| follower_of[*i].is_none())
            .collect();

        let token = uuid::Uuid::new_v4().simple().to_string();
        let deadline = tokio::time::Instant::now() + self.in_flight_wait;
        let mut backoff = Duration::from_millis(10);
        while !waiting.is_empty() {
            let waiting_ids: Vec<&str> = waiting.iter().map(|i| ids[*i].as_str()).collect();
            let claims = match self.dedupe.claim(&waiting_ids, &token).await {
                Ok(claims) => claims,
                Err(error) => {
                    tracing::warn!(%error, items = waiting.len(), "redis unavailable, refusing the write");
                    for index in waiting.drain(..) {
                        outcomes[index] =
                            Some(Outcome::Unavailable(format!("redis unavailable: {error}")));
                    }
                    break;
                }
            };
            let mut claimed = Vec::new();
            let mut in_flight = Vec::new();
            for (index, claim) in waiting.iter().copied().zip(claims) {
                match claim {
                    Claim::Claimed => claimed.push(index),
                    Claim::Duplicate => outcomes[index] = Some(Outcome::Duplicate),
                    Claim::InFlight => in_flight.push(index),
                }
            }
            let publishing = self.publish_claimed(&mut unpublished, &ids, &claimed, &token);
            for (index, outcome) in publishing.await {
                outcomes[index] = Some(outcome);
            }
            waiting = in_flight;
            if waiting.is_empty() {
                break;
            }
            if tokio::time::Instant::now() + backoff > deadline {
                for index in waiting.drain(..) {
                    outcomes[index] = Some(Outcome::Unavailable(
                        "the same interaction_id is being submitted concurrently; retry".into(),
                    ));
                }
                break;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(200));
        }

        for (index, leader) in follower_of.iter().enumerate() {
            if let Some(leader) = leader {
                outcomes[index] = Some(match &outcomes[*leader] {
                    Some(Outcome::Accepted | Outcome::Duplicate) => Outcome::Duplicate,
                    Some(other) => other.clone(),
                    None => Outcome::Unavailable("not processed".into()),
                });
            }
        }
        let outcomes: Vec<Outcome> = outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Outcome::Unavailable("not processed".into())))
            .collect();
        for outcome in &outcomes {
            telemetry::count_outcome(outcome);
        }
        outcomes
    }

    /// Produces every claimed item concurrently (taking it out of
    /// `unpublished`), then completes or releases the claims in one Redis
    /// round trip each.
    async fn publish_claimed(
        &self,
        unpublished: &mut [Option<Interaction>],
        ids: &[String],
        claimed: &[usize],
        token: &str,
    ) -> Vec<(usize, Outcome)> {
        if claimed.is_empty() {
            return Vec::new();
        }
        let ingested_at = time::OffsetDateTime::now_utc();
        let enqueued = {
            // (key, payload) per claimed item; the interactions go here.
            let encoded: Vec<(String, Vec<u8>)> = claimed
                .iter()
                .map(|&index| unpublished[index].take().expect("an item is claimed once"))
                .map(|item| {
                    let payload = convert::to_proto(&item, ingested_at).encode_to_vec();
                    (item.customer_id.into_inner(), payload)
                })
                .collect();
            let records = claimed
                .iter()
                .zip(&encoded)
                .map(|(&index, (key, payload))| {
                    FutureRecord::to(&self.topic)
                        .key(key.as_str())
                        .payload(payload.as_slice())
                        .headers(OwnedHeaders::new().insert(Header {
                            key: "cx-interaction-id",
                            value: Some(ids[index].as_str()),
                        }))
                })
                .collect();
            // librdkafka copied them: keys and payloads need not wait for
            // the acks.
            self.producer.enqueue_all(records)
        };
        let results = enqueued.acknowledged().await;

        let mut published = Vec::new();
        let mut failed = Vec::new();
        let mut out = Vec::with_capacity(claimed.len());
        for (&index, result) in claimed.iter().zip(results) {
            let id = ids[index].as_str();
            match result {
                Ok(()) => {
                    published.push(id);
                    out.push((index, Outcome::Accepted));
                }
                Err(error) => {
                    failed.push(id);
                    out.push((index, Outcome::Unavailable(kafka_failure(&error))));
                }
            }
        }
        if !failed.is_empty() {
            tracing::warn!(
                failed = failed.len(),
                "kafka refused records; releasing their claims"
            );
        }
        if let Err(error) = self.dedupe.complete(&published).await {
            // The records are on Kafka, so they are accepted. Their pending
            // marks expire with the lease; a retry after that would publish a
            // second copy, which consumers deduplicate by interaction_id.
            tracing::error!(%error, count = published.len(), "published but could not mark done");
            metrics::counter!(telemetry::MARK_DONE_FAILED_TOTAL).increment(published.len() as u64);
        }
        if let Err(error) = self.dedupe.release(&failed, token).await {
            tracing::warn!(%error, count = failed.len(), "could not release claims; they expire with the lease");
        }
        out
    }
}

/// Why a record was not acknowledged, for the 503. A timed-out record may
/// still have been written (the broker took the request and its answer
/// came too late, or never); Kafka cannot tell, so the client is told the
/// truth: retrying is safe, at the price of a possible second copy on the
/// topic that consumers count once (they deduplicate by interaction_id).
fn kafka_failure(error: &KafkaError) -> String {
    match error.rdkafka_error_code() {
        Some(RDKafkaErrorCode::MessageTimedOut) => "kafka did not acknowledge in time; the record \
             may or may not have been written: retry, consumers count an interaction_id once"
            .to_string(),
        _ => format!("kafka unavailable: {error}"),
    }
}

//! The consumer side: a batch from cx.interactions.v1 becomes dead letters
//! (durable first), exact window counts (one Lua script), and records on
//! cx.scored.v1 — and only then are its offsets committed.

use std::sync::Arc;

use cx_proto::prost::Message as _;
use cx_proto::v1;
use cx_runtime::kafka::{DeadLetters, SharedProducer};
use cx_runtime::telemetry::record_step_seconds;
use cx_runtime::Readiness;
use rdkafka::message::OwnedMessage;
use rdkafka::producer::FutureRecord;
use rdkafka::Message;

use crate::score::{self, Scored, Scorer, WindowEvent};
use crate::store::{PreparedApply, WindowStore};
use crate::telemetry;

/// Events older than the largest window cannot be counted anywhere.
pub const MAX_LATENESS_S: i64 = 7 * 86_400;

pub struct ScoringHandler {
    pub scorer: Arc<Scorer>,
    pub store: WindowStore,
    pub producer: Arc<SharedProducer>,
    pub scored_topic: String,
    pub dead_letters: DeadLetters,
    pub readiness: Readiness,
}

/// A batch after the CPU work: what counting needs and the encoded records,
/// and the records to dead-letter with the reason (the only records kept
/// as received).
pub struct PreparedBatch {
    /// From [`Scored::into_event_and_head`]: `heads[i]` is `events[i]`'s
    /// record, encoded.
    events: Vec<WindowEvent>,
    heads: Vec<Vec<u8>>,
    dead: Vec<(OwnedMessage, String)>,
    store: PreparedApply,
}

impl ScoringHandler {
    /// The scored form of a record, or why it is dead-lettered.
    fn triage(&self, message: &OwnedMessage, now_s: i64) -> Result<Scored, String> {
        let interaction = v1::Interaction::decode(message.payload().unwrap_or_default())
            .map_err(|error| format!("not a protobuf cx.v1.Interaction: {error}"))?;
        let scored = self
            .scorer
            .score(interaction)
            .and_then(|scored| {
                score::check_not_ahead(scored.occurred_at_s, now_s)?;
                Ok(scored)
            })
            .map_err(|unscorable| format!("invalid interaction: {unscorable}"))?;
        if scored.occurred_at_s < now_s - MAX_LATENESS_S {
            return Err(format!(
                "occurred_at {} is older than the largest window (7d)",
                scored.occurred_at_s
            ));
        }
        Ok(scored)
    }

    async fn dead_letter(&self, dead: &[(&OwnedMessage, String)]) -> Result<(), String> {
        self.producer.dead_letter(&self.dead_letters, dead).await?;
        telemetry::count_deadlettered(dead.len());
        Ok(())
    }

    async fn publish_scored(
        &self,
        events: &[WindowEvent],
        payloads: &[Vec<u8>],
    ) -> Result<(), String> {
        let records = events
            .iter()
            .zip(payloads)
            .map(|(event, payload)| {
                FutureRecord::to(&self.scored_topic)
                    .key(event.customer_id.as_str())
                    .payload(payload.as_slice())
            })
            .collect();
        match self
            .producer
            .send_all(records)
            .await
            .into_iter()
            .find_map(Result::err)
        {
            Some(error) => Err(format!(
                "publishing to {} failed: {error}",
                self.scored_topic
            )),
            None => Ok(()),
        }
    }
}

/// Decoding and scoring (`prepare`) run while the previous batch is in
/// Redis and the broker (`apply`).
impl cx_runtime::consumer::StagedHandler for ScoringHandler {
    type Prepared = PreparedBatch;

    fn prepare(&self, batch: &[OwnedMessage]) -> PreparedBatch {
        let now_s = time::OffsetDateTime::now_utc().unix_timestamp();
        let mut events = Vec::with_capacity(batch.len());
        let mut heads = Vec::with_capacity(batch.len());
        let mut dead = Vec::new();
        for message in batch {
            match self.triage(message, now_s) {
                Ok(scored) => {
                    let (event, head) = scored.into_event_and_head();
                    events.push(event);
                    heads.push(head);
                }
                Err(reason) => dead.push((message.clone(), reason)),
            }
        }
        let store = self.store.prepare(&events, now_s);
        PreparedBatch {
            events,
            heads,
            dead,
            store,
        }
    }

    async fn apply(&self, prepared: &mut PreparedBatch) -> Result<(), String> {
        // Dead letters first: once the batch is committed they are the only
        // trace of those records.
        if !prepared.dead.is_empty() {
            let dead: Vec<(&OwnedMessage, String)> = prepared
                .dead
                .iter()
                .map(|(message, reason)| (message, reason.clone()))
                .collect();
            self.dead_letter(&dead).await?;
            // A retry after a later failure must not dead-letter them twice.
            prepared.dead.clear();
        }
        let now = time::OffsetDateTime::now_utc();
        let now_s = now.unix_timestamp();
        let events = &prepared.events;
        let started = std::time::Instant::now();
        let applied = self
            .store
            .apply_prepared(events, &mut prepared.store)
            .await
            .map_err(|e| format!("redis: {e}"))?;
        record_step_seconds(telemetry::APPLY_STEP_SECONDS, "windows", started);
        let scored_at = cx_proto::prost_types::Timestamp {
            seconds: now_s,
            nanos: now.nanosecond() as i32,
        };
        let payloads: Vec<Vec<u8>> = prepared
            .heads
            .iter()
            .zip(&applied)
            .map(|(head, applied)| {
                Scored::finish(
                    head,
                    applied.contacts_in_window > 1,
                    applied.contacts_in_window,
                    scored_at,
                )
            })
            .collect();
        let counted = applied.iter().filter(|applied| applied.counted).count();
        // Redelivered records are published again (the first attempt may
        // have died before publishing); consumers of cx.scored.v1 key their
        // effects by interaction_id.
        let started = std::time::Instant::now();
        self.publish_scored(events, &payloads).await?;
        record_step_seconds(telemetry::APPLY_STEP_SECONDS, "publish", started);
        telemetry::count_batch(events.len(), counted);
        Ok(())
    }

    fn healthy(&self, healthy: bool) {
        self.readiness.report(
            "pipeline",
            if healthy {
                Ok(())
            } else {
                Err("a batch cannot be made durable (Redis or Kafka unavailable)".into())
            },
        );
    }
}

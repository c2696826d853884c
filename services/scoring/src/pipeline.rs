//! The consumer side: a batch from cx.interactions.v1 becomes dead letters
//! (durable first), exact window counts (one Lua script), and records on
//! cx.scored.v1 — and only then are its offsets committed.

use std::sync::Arc;

use cx_proto::prost::Message as _;
use cx_proto::v1;
use cx_runtime::kafka::SharedProducer;
use cx_runtime::Readiness;
use rdkafka::message::OwnedMessage;
use rdkafka::producer::FutureRecord;
use rdkafka::Message;

use crate::score::{Scored, Scorer};
use crate::store::WindowStore;
use crate::telemetry;

/// Events older than the largest window cannot be counted anywhere.
pub const MAX_LATENESS_S: i64 = 7 * 86_400;

pub struct ScoringHandler {
    pub scorer: Arc<Scorer>,
    pub store: WindowStore,
    pub producer: Arc<SharedProducer>,
    pub scored_topic: String,
    pub deadletter_topic: String,
    pub readiness: Readiness,
}

/// Why a record is dead-lettered, or its scored form.
enum Triage<'a> {
    Scored(Box<Scored>),
    Dead {
        message: &'a OwnedMessage,
        reason: String,
    },
}

impl ScoringHandler {
    fn triage<'a>(&self, message: &'a OwnedMessage, now_s: i64) -> Triage<'a> {
        let dead = |reason: String| Triage::Dead { message, reason };
        let interaction = match v1::Interaction::decode(message.payload().unwrap_or_default()) {
            Ok(interaction) => interaction,
            Err(error) => return dead(format!("not a protobuf cx.v1.Interaction: {error}")),
        };
        match self.scorer.score(interaction) {
            Err(unscorable) => dead(format!("invalid interaction: {unscorable}")),
            Ok(scored) if scored.occurred_at_s < now_s - MAX_LATENESS_S => dead(format!(
                "occurred_at {} is older than the largest window (7d)",
                scored.occurred_at_s
            )),
            Ok(scored) => Triage::Scored(Box::new(scored)),
        }
    }

    async fn dead_letter(&self, dead: &[(&OwnedMessage, String)]) -> Result<(), String> {
        self.producer
            .dead_letter(&self.deadletter_topic, dead)
            .await?;
        telemetry::count_deadlettered(dead.len());
        Ok(())
    }

    async fn publish_scored(&self, scored: &[Scored]) -> Result<(), String> {
        let payloads: Vec<Vec<u8>> = scored.iter().map(|s| s.record.encode_to_vec()).collect();
        let records = scored
            .iter()
            .zip(&payloads)
            .map(|(s, payload)| {
                FutureRecord::to(&self.scored_topic)
                    .key(s.interaction().customer_id.as_str())
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

impl cx_runtime::consumer::BatchHandler for ScoringHandler {
    async fn handle(&mut self, batch: &[OwnedMessage]) -> Result<(), String> {
        let now = time::OffsetDateTime::now_utc();
        let now_s = now.unix_timestamp();
        let mut scored = Vec::with_capacity(batch.len());
        let mut dead = Vec::new();
        for message in batch {
            match self.triage(message, now_s) {
                Triage::Scored(s) => scored.push(*s),
                Triage::Dead { message, reason } => dead.push((message, reason)),
            }
        }
        // Dead letters first: once the batch is committed they are the only
        // trace of those records.
        if !dead.is_empty() {
            self.dead_letter(&dead).await?;
        }
        let applied = self
            .store
            .apply(&scored, now_s)
            .await
            .map_err(|e| format!("redis: {e}"))?;
        let scored_at = cx_proto::prost_types::Timestamp {
            seconds: now_s,
            nanos: now.nanosecond() as i32,
        };
        let mut counted = 0;
        for (scored, applied) in scored.iter_mut().zip(&applied) {
            scored.record.repeat_contact = applied.contacts_in_window > 1;
            scored.record.contacts_in_window = applied.contacts_in_window;
            scored.record.scored_at = Some(scored_at);
            counted += usize::from(applied.counted);
        }
        // Redelivered records are published again (the first attempt may
        // have died before publishing); consumers of cx.scored.v1 key their
        // effects by interaction_id.
        self.publish_scored(&scored).await?;
        telemetry::count_batch(scored.len(), counted);
        Ok(())
    }

    fn healthy(&mut self, healthy: bool) {
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

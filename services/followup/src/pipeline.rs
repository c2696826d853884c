//! The consumer side: three consumer groups, at-least-once, every effect
//! idempotent or refused with a reason.
//!
//! - cx.alerts.v1: response/keyword alerts with a customer open a task or
//!   are attached to the customer's open one; a redelivered alert finds its
//!   task (or its alert id on the open task) and changes nothing.
//!   Undecodable alerts are dead-lettered.
//! - cx.followup-updates.v1: CRM updates. Refused ones (bad JSON, unknown
//!   task, stale version, illegal transition, invalid field) are
//!   dead-lettered with the reason in `cx-error`. A redelivered update that
//!   was applied the first time names a version that is now stale, so it
//!   lands on the dead-letter topic too: harmless (the task is right) but
//!   visible to operators.
//! - cx.scored.v1: the customer's next survey after resolution decides the
//!   outcome of each of their resolved tasks still without one; a survey
//!   of a customer with a task is kept for a resolution read after it.
//!   Records that do not decode are skipped (alerting already dead-letters
//!   them from the same topic).

use std::collections::HashMap;
use std::sync::Arc;

use cx_proto::prost::Message as _;
use cx_proto::view;
use cx_runtime::kafka::{DeadLetters, SharedProducer};
use cx_runtime::Readiness;
use cx_tasks::{Survey, TaskUpdate};
use futures::{StreamExt as _, TryStreamExt as _};
use rdkafka::message::OwnedMessage;
use rdkafka::Message;
use time::OffsetDateTime;

use crate::followups::{AlertOutcome, Followups, UpdateFailure};
use crate::telemetry;

fn report(readiness: &Readiness, healthy: bool) {
    readiness.report(
        "pipeline",
        if healthy {
            Ok(())
        } else {
            Err("a batch cannot be made durable (Redis or Kafka unavailable)".into())
        },
    );
}

async fn dead_letter(
    producer: &SharedProducer,
    to: &DeadLetters,
    dead: &[(&OwnedMessage, String)],
) -> Result<(), String> {
    if dead.is_empty() {
        return Ok(());
    }
    producer.dead_letter(to, dead).await?;
    telemetry::count_deadlettered(dead.len());
    Ok(())
}

pub struct AlertHandler {
    pub followups: Followups,
    pub producer: Arc<SharedProducer>,
    pub dead_letters: DeadLetters,
    pub readiness: Readiness,
}

/// Customers whose alerts are handled at once. Each alert takes a few Redis
/// round trips (own task, open pointer, task, compare-and-set); one at a
/// time capped follow-up at ~800 alerts/s, while the multiplexed
/// connection pipelines the calls of many customers.
const CUSTOMERS_AT_ONCE: usize = 64;

impl cx_runtime::consumer::BatchHandler for AlertHandler {
    async fn handle(&mut self, batch: &[OwnedMessage]) -> Result<(), String> {
        let mut dead = Vec::new();
        // A customer's alerts stay in batch order (they share a partition,
        // and the second must see the task the first opened); customers are
        // independent, and the store's compare-and-set guards the rest.
        let mut by_customer: HashMap<Option<String>, Vec<(cx_rules::Alert, usize)>> =
            HashMap::new();
        for (position, message) in batch.iter().enumerate() {
            let payload = message.payload().unwrap_or_default();
            match cx_rules::Alert::from_json(payload) {
                Ok(alert) => by_customer
                    .entry(alert.customer_id.clone())
                    .or_default()
                    .push((alert, position)),
                Err(error) => dead.push((message, format!("not a JSON alert: {error}"))),
            }
        }
        let followups = &self.followups;
        futures::stream::iter(by_customer.into_values())
            .map(|alerts| async move {
                for (alert, position) in alerts {
                    let payload = batch[position].payload().unwrap_or_default();
                    let outcome = followups
                        .on_alert(&alert, payload)
                        .await
                        .map_err(|e| format!("redis: {e}"))?;
                    telemetry::count_alert(match outcome {
                        AlertOutcome::Ignored => "ignored",
                        AlertOutcome::Opened(_) => "opened",
                        AlertOutcome::Attached(_) => "attached",
                        AlertOutcome::AlreadyHandled(_) => "redelivered",
                    });
                }
                Ok::<(), String>(())
            })
            .buffer_unordered(CUSTOMERS_AT_ONCE)
            .try_collect::<()>()
            .await?;
        dead_letter(&self.producer, &self.dead_letters, &dead).await
    }

    fn healthy(&mut self, healthy: bool) {
        report(&self.readiness, healthy);
    }
}

pub struct UpdateHandler {
    pub followups: Followups,
    pub producer: Arc<SharedProducer>,
    pub dead_letters: DeadLetters,
    pub readiness: Readiness,
}

impl cx_runtime::consumer::BatchHandler for UpdateHandler {
    async fn handle(&mut self, batch: &[OwnedMessage]) -> Result<(), String> {
        let mut dead = Vec::new();
        for message in batch {
            let update = match TaskUpdate::from_json(message.payload().unwrap_or_default()) {
                Ok(update) => update,
                Err(error) => {
                    telemetry::count_update("kafka", "invalid");
                    dead.push((message, format!("refused update: {error}")));
                    continue;
                }
            };
            // The topic is keyed by task_id (compaction keeps a task's last
            // update): a key naming another task is a producer's bug, and
            // which of the two it meant is a guess. No key is fine.
            if let Some(key) = message.key().filter(|key| !key.is_empty()) {
                if key != update.task_id.as_bytes() {
                    telemetry::count_update("kafka", "invalid");
                    // The key is not echoed: it is not ours and could be anything.
                    dead.push((
                        message,
                        format!(
                            "refused update: the record's key is not its task_id {:?}",
                            update.task_id
                        ),
                    ));
                    continue;
                }
            }
            // When the CRM made the change: its record's timestamp.
            let made_at = message.timestamp().to_millis().and_then(|ms| {
                OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
            });
            match self.followups.update_made_at(&update, made_at).await {
                Ok(_) => telemetry::count_update("kafka", "applied"),
                Err(UpdateFailure::Redis(error)) => return Err(format!("redis: {error}")),
                Err(refused) => {
                    telemetry::count_update(
                        "kafka",
                        match &refused {
                            UpdateFailure::NotFound(_) => "not_found",
                            UpdateFailure::Refused(e) if e.is_precondition() => "precondition",
                            _ => "invalid",
                        },
                    );
                    dead.push((message, format!("refused update: {refused}")));
                }
            }
        }
        dead_letter(&self.producer, &self.dead_letters, &dead).await
    }

    fn healthy(&mut self, healthy: bool) {
        report(&self.readiness, healthy);
    }
}

pub struct SurveyHandler {
    pub followups: Followups,
    pub readiness: Readiness,
}

impl cx_runtime::consumer::BatchHandler for SurveyHandler {
    async fn handle(&mut self, batch: &[OwnedMessage]) -> Result<(), String> {
        // Only the survey fields: every scored record passes here, and the
        // full record's verbatim, tags and attributes were half of the decoding.
        let interactions: Vec<view::Survey> = batch
            .iter()
            .filter_map(|message| {
                let decoded = view::ScoredSurvey::decode(message.payload().unwrap_or_default());
                if decoded.is_err() {
                    tracing::debug!(
                        offset = message.offset(),
                        "skipping a scored record that does not decode"
                    );
                }
                decoded.ok()?.interaction
            })
            .collect();
        let surveys: Vec<(&str, Survey)> = interactions
            .iter()
            .filter(|interaction| !interaction.customer_id.is_empty())
            .filter_map(|interaction| {
                let occurred_at = interaction.occurred_at.as_ref().and_then(|t| {
                    OffsetDateTime::from_unix_timestamp_nanos(
                        i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos),
                    )
                    .ok()
                })?;
                let score = |s: Option<i32>| s.and_then(|n| u8::try_from(n).ok());
                let survey = Survey {
                    interaction_id: &interaction.interaction_id,
                    occurred_at,
                    nps: score(interaction.nps),
                    csat: score(interaction.csat),
                };
                Some((interaction.customer_id.as_str(), survey))
            })
            .collect();
        self.followups
            .on_surveys(&surveys)
            .await
            .map_err(|e| format!("redis: {e}"))?;
        Ok(())
    }

    fn healthy(&mut self, healthy: bool) {
        report(&self.readiness, healthy);
    }
}

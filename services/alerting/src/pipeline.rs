//! The consumer side: a batch of cx.scored.v1 becomes alert candidates
//! (per-interaction rules, then window rules for the keys the batch
//! touched), decided in one Redis script; the outbox relay publishes them.
//! Offsets are committed only after that script succeeded.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use cx_proto::prost::Message as _;
use cx_proto::v1;
use cx_rules::{Candidate, EventView, RuleSet};
use cx_runtime::kafka::{DeadLetters, SharedProducer};
use cx_runtime::telemetry::record_step_seconds;
use cx_runtime::Readiness;
use cx_scoring::store::WindowStore;
use cx_windows::{Aggregate, Dimension, Window};
use futures::future::try_join_all;
use rdkafka::message::OwnedMessage;
use rdkafka::Message;

use crate::store::{AlertStore, Raised};
use crate::telemetry;

pub struct AlertingHandler {
    pub rules: Arc<RuleSet>,
    pub windows: WindowStore,
    pub alerts: AlertStore,
    pub producer: Arc<SharedProducer>,
    pub dead_letters: DeadLetters,
    pub readiness: Readiness,
    /// Events older than this raise no alert (they still count in the
    /// windows): a replay or a backfill of old surveys must not page anyone.
    pub max_event_age_s: i64,
}

/// The interaction's key in a dimension, if it has one.
fn key_in(dimension: Dimension, interaction: &v1::Interaction) -> Option<&str> {
    match dimension {
        Dimension::Agent => interaction.agent_id.as_deref(),
        Dimension::Team => interaction.team_id.as_deref(),
        Dimension::Queue => interaction.queue_id.as_deref(),
        Dimension::Channel => interaction.channel().contract_name(),
        Dimension::Global => Some(Dimension::GLOBAL_KEY),
    }
    .filter(|key| !key.is_empty())
}

fn score(value: Option<i32>) -> Option<u8> {
    value.and_then(|v| u8::try_from(v).ok())
}

/// Why a decoded record is not one alerting can act on (its ids reach
/// alerts, Redis keys and tasks), if it is not.
fn checked(scored: &v1::ScoredInteraction, now_s: i64) -> Result<(), String> {
    let Some(interaction) = scored.interaction.as_ref() else {
        return Err("scored interaction without its interaction".into());
    };
    cx_scoring::score::check_record(interaction)
        .and_then(|occurred_at_s| cx_scoring::score::check_not_ahead(occurred_at_s, now_s))
        .map_err(|unscorable| format!("invalid interaction: {unscorable}"))
}

pub fn event_view(scored: &v1::ScoredInteraction) -> Option<EventView<'_>> {
    let interaction = scored.interaction.as_ref()?;
    Some(EventView {
        interaction_id: &interaction.interaction_id,
        customer_id: &interaction.customer_id,
        occurred_at_s: interaction.occurred_at.map_or(0, |t| t.seconds),
        channel: interaction
            .channel()
            .contract_name()
            .unwrap_or("unspecified"),
        agent_id: interaction.agent_id.as_deref(),
        team_id: interaction.team_id.as_deref(),
        queue_id: interaction.queue_id.as_deref(),
        nps: score(interaction.nps),
        csat: score(interaction.csat),
        ces: score(interaction.ces),
        verbatim: interaction.verbatim.as_deref(),
        tags: &scored.tags,
        sentiment: scored.sentiment,
    })
}

impl AlertingHandler {
    /// Window-rule candidates for every (rule, key) the batch touched, each
    /// evaluated once at the latest event time seen for that key. Rules
    /// sharing a (dimension, key, window, time) share one read.
    async fn window_candidates(
        &self,
        events: &[&v1::ScoredInteraction],
    ) -> Result<Vec<Candidate>, redis::RedisError> {
        let rules = self.rules.window_rules();
        let mut targets: BTreeMap<(usize, &str), i64> = BTreeMap::new();
        for (index, rule) in rules.iter().enumerate() {
            for interaction in events.iter().filter_map(|s| s.interaction.as_ref()) {
                if let Some(key) = key_in(rule.dimension, interaction) {
                    let at_s = interaction.occurred_at.map_or(0, |t| t.seconds);
                    let latest = targets.entry((index, key)).or_insert(at_s);
                    *latest = (*latest).max(at_s);
                }
            }
        }
        let mut reads: BTreeSet<(Dimension, &str, Window, i64)> = BTreeSet::new();
        for (&(index, key), &at_s) in &targets {
            let rule = &rules[index];
            reads.insert((rule.dimension, key, rule.window, at_s));
            if rule.needs_baseline {
                reads.insert((rule.dimension, key, Window::D7, at_s));
            }
        }
        let aggregates: BTreeMap<_, Aggregate> = try_join_all(reads.into_iter().map(
            |read @ (dimension, key, window, at_s)| async move {
                let aggregate = self.windows.aggregate(dimension, key, window, at_s).await?;
                Ok::<_, redis::RedisError>((read, aggregate))
            },
        ))
        .await?
        .into_iter()
        .collect();
        Ok(targets
            .into_iter()
            .filter_map(|((index, key), at_s)| {
                let rule = &rules[index];
                let short = &aggregates[&(rule.dimension, key, rule.window, at_s)];
                let baseline = rule
                    .needs_baseline
                    .then(|| &aggregates[&(rule.dimension, key, Window::D7, at_s)]);
                self.rules.evaluate_window(rule, key, short, baseline, at_s)
            })
            .collect())
    }
}

impl cx_runtime::consumer::BatchHandler for AlertingHandler {
    async fn handle(&mut self, batch: &[OwnedMessage]) -> Result<(), String> {
        let mut events = Vec::with_capacity(batch.len());
        let mut dead = Vec::new();
        let now_s = time::OffsetDateTime::now_utc().unix_timestamp();
        for message in batch {
            match v1::ScoredInteraction::decode(message.payload().unwrap_or_default()) {
                Ok(scored) => match checked(&scored, now_s) {
                    Ok(()) => events.push(scored),
                    Err(reason) => dead.push((message, reason)),
                },
                Err(error) => dead.push((
                    message,
                    format!("not a protobuf cx.v1.ScoredInteraction: {error}"),
                )),
            }
        }
        if !dead.is_empty() {
            self.producer.dead_letter(&self.dead_letters, &dead).await?;
            telemetry::count_deadlettered(dead.len());
        }

        let oldest_s = time::OffsetDateTime::now_utc().unix_timestamp() - self.max_event_age_s;
        let recent_enough = |scored: &&v1::ScoredInteraction| {
            scored
                .interaction
                .as_ref()
                .and_then(|i| i.occurred_at)
                .is_some_and(|t| t.seconds >= oldest_s)
        };
        let recent: Vec<&v1::ScoredInteraction> = events.iter().filter(recent_enough).collect();
        let mut candidates: Vec<Candidate> = recent
            .iter()
            .filter_map(|scored| event_view(scored))
            .flat_map(|view| self.rules.evaluate_event(&view))
            .collect();
        let started = std::time::Instant::now();
        candidates.extend(
            self.window_candidates(&recent)
                .await
                .map_err(|e| format!("redis (windows): {e}"))?,
        );
        record_step_seconds(telemetry::HANDLE_STEP_SECONDS, "windows", started);
        let started = std::time::Instant::now();
        let raised = self
            .alerts
            .raise(&candidates, time::OffsetDateTime::now_utc())
            .await
            .map_err(|e| format!("redis (alerts): {e}"))?;
        record_step_seconds(telemetry::HANDLE_STEP_SECONDS, "decide", started);
        for (candidate, raised) in candidates.iter().zip(&raised) {
            if let Raised::Created { suppressed } = raised {
                tracing::info!(
                    alert_id = %candidate.alert_id,
                    rule = %candidate.rule,
                    subject = %candidate.scope.subject,
                    suppressed,
                    "alert raised"
                );
            }
            telemetry::count_raised(candidate, raised);
        }
        telemetry::count_evaluated(events.len());
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

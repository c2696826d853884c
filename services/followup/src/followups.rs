//! The close-the-loop operations: each reads a task, applies a cx-tasks
//! function in Rust, and writes it back with compare-and-set
//! ([`TaskStore::put`]). Alerts, surveys and escalations retry on a
//! conflict (they re-read and decide again); client updates named the
//! version they read, so a conflict is their stale version.

use std::sync::Arc;

use cx_tasks::{Directory, Opening, SlaConfig, Survey, Task, TaskState, TaskUpdate, UpdateError};
use redis::RedisError;
use serde::Deserialize;
use time::OffsetDateTime;

use crate::clock::Clock;
use crate::store::{Pointer, Put, TaskStore};
use crate::telemetry;

/// Re-reads before giving up on a contended task (the batch is retried).
const MAX_ATTEMPTS: usize = 16;

/// The alert fields follow-up needs beyond `cx_rules::Alert`: the routing
/// ids alerting copies from the interaction. Read from the same JSON, so
/// alerts without them (or from an older alerting) still decode.
#[derive(Debug, Default, Deserialize)]
struct AlertRouting {
    #[serde(default)]
    agent_id: Option<String>,
    #[serde(default)]
    team_id: Option<String>,
    #[serde(default)]
    queue_id: Option<String>,
}

/// What an alert did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertOutcome {
    /// Not a per-customer detractor alert (window rules, no customer).
    Ignored,
    Opened(String),
    Attached(String),
    /// Already handled (a redelivery).
    AlreadyHandled(String),
}

/// Why an update was refused.
#[derive(Debug, thiserror::Error)]
pub enum UpdateFailure {
    #[error("no task {0}")]
    NotFound(String),
    #[error(transparent)]
    Refused(#[from] UpdateError),
    #[error("redis unavailable: {0}")]
    Redis(#[from] RedisError),
}

#[derive(Clone)]
pub struct Followups {
    pub store: TaskStore,
    pub clock: Arc<dyn Clock>,
    pub sla: SlaConfig,
    pub directory: Arc<Directory>,
}

/// The open-task pointer action for a change from `old` to `new`.
fn pointer_for(new: &Task) -> Pointer {
    if new.state.takes_alerts() {
        Pointer::Keep
    } else {
        Pointer::Release
    }
}

impl Followups {
    /// An alert from cx.alerts.v1 (already decoded); `json` is its record,
    /// for the routing extras.
    pub async fn on_alert(
        &self,
        alert: &cx_rules::Alert,
        json: &[u8],
    ) -> Result<AlertOutcome, RedisError> {
        let Some(customer_id) = alert.customer_id.as_deref().filter(|c| !c.is_empty()) else {
            return Ok(AlertOutcome::Ignored);
        };
        if !matches!(alert.kind.as_str(), "response" | "keyword") {
            return Ok(AlertOutcome::Ignored);
        }
        let routing: AlertRouting = serde_json::from_slice(json).unwrap_or_default();
        let opening = Opening {
            customer_id,
            alert_id: &alert.alert_id,
            interaction_id: alert.interaction_id.as_deref(),
            severity: alert.severity.as_str(),
            reason: &alert.message,
            agent_id: routing.agent_id.as_deref(),
            team_id: routing.team_id.as_deref(),
            queue_id: routing.queue_id.as_deref(),
        };
        let own_id = cx_tasks::task_id_for(customer_id, &alert.alert_id);
        for _ in 0..MAX_ATTEMPTS {
            // A redelivered alert: it opened a task or was attached to one,
            // which may be resolved by now.
            if let Some(task_id) = self.store.task_of_alert(&alert.alert_id, &own_id).await? {
                return Ok(AlertOutcome::AlreadyHandled(task_id));
            }
            let pointer = self.store.open_task_of(customer_id).await?;
            let current = match &pointer {
                Some(id) => self.store.get(id).await?,
                None => None,
            };
            let now = self.clock.now();
            if let Some(task) = current.filter(|t| t.state.takes_alerts()) {
                if task.alert_ids.iter().any(|a| a == &alert.alert_id) {
                    return Ok(AlertOutcome::AlreadyHandled(task.task_id));
                }
                let mut attached = task.clone();
                if !attached.attach(&opening, &self.sla, now) {
                    return Ok(AlertOutcome::AlreadyHandled(task.task_id));
                }
                match self
                    .store
                    .put(Some(&task), &attached, Pointer::Keep, Some(&alert.alert_id))
                    .await?
                    .0
                {
                    Put::Written => return Ok(AlertOutcome::Attached(task.task_id)),
                    _ => {
                        telemetry::count_conflict("attach");
                        continue;
                    }
                }
            }
            let task = Task::open(&opening, &self.directory, &self.sla, now);
            let claim = Pointer::Claim { expected: pointer };
            match self
                .store
                .put(None, &task, claim, Some(&alert.alert_id))
                .await?
                .0
            {
                Put::Written => return Ok(AlertOutcome::Opened(task.task_id)),
                _ => telemetry::count_conflict("open"),
            }
        }
        Err(contended(customer_id))
    }

    /// A CRM or gRPC update, made now. The caller named the version it
    /// read: a concurrent change makes it stale (FAILED_PRECONDITION), it
    /// is not retried.
    pub async fn update(&self, update: &TaskUpdate) -> Result<Task, UpdateFailure> {
        self.update_made_at(update, None).await
    }

    /// [`Self::update`] dated when the CRM made it (`made_at`, its
    /// record's timestamp) when known, kept between the task's last change
    /// and now: an update read late (follow-up down, a backlog) does not
    /// move `resolved_at` past a survey taken meanwhile. A resolution
    /// takes the customer's first kept survey after it as the outcome, in
    /// the same change.
    pub async fn update_made_at(
        &self,
        update: &TaskUpdate,
        made_at: Option<OffsetDateTime>,
    ) -> Result<Task, UpdateFailure> {
        let Some(task) = self.store.get(&update.task_id).await? else {
            return Err(UpdateFailure::NotFound(update.task_id.clone()));
        };
        let now = self.clock.now();
        let at = made_at.map_or(now, |made| made.min(now).max(task.updated_at));
        let mut next = task.clone();
        next.apply_update(update, at)?;
        let resolving = next.state == TaskState::Resolved && task.state != TaskState::Resolved;
        if let Some(resolved_at) = next.resolved_at.filter(|_| resolving) {
            let kept = self
                .store
                .kept_surveys_after(&next.customer_id, resolved_at)
                .await?;
            for survey in &kept {
                if next.decide_outcome(&survey.survey()) {
                    break;
                }
            }
        }
        match self
            .store
            .put(Some(&task), &next, pointer_for(&next), None)
            .await?
            .0
        {
            Put::Written if resolving && next.outcome.is_none() => {
                // The resolution is written: what follows is best effort
                // and never reported as the update failing.
                match self.decide_from_kept(&next).await {
                    Ok(Some(decided)) => Ok(decided),
                    Ok(None) => Ok(next),
                    Err(error) => {
                        tracing::warn!(task_id = %next.task_id, %error, "outcome from kept surveys not decided");
                        Ok(next)
                    }
                }
            }
            Put::Written => Ok(next),
            Put::StaleVersion { current } => {
                telemetry::count_conflict("update");
                Err(UpdateError::StaleVersion {
                    current,
                    given: update.version,
                }
                .into())
            }
            Put::PointerMoved => unreachable!("updates never claim the pointer"),
        }
    }

    /// After a resolution written without an outcome: a survey kept while
    /// it was being made found no awaiting task, so it is decided here, as
    /// a change of its own. The task as stored then, if it decided.
    async fn decide_from_kept(&self, resolved: &Task) -> Result<Option<Task>, RedisError> {
        let Some(resolved_at) = resolved.resolved_at else {
            return Ok(None);
        };
        for kept in self
            .store
            .kept_surveys_after(&resolved.customer_id, resolved_at)
            .await?
        {
            if self
                .decide_outcome(&resolved.customer_id, &resolved.task_id, &kept.survey())
                .await?
            {
                return self.store.get(&resolved.task_id).await;
            }
        }
        Ok(None)
    }

    /// A survey from cx.scored.v1: decides the outcome of each of the
    /// customer's resolved tasks that waits for one and was resolved before
    /// it. Returns how many it decided.
    pub async fn on_survey(
        &self,
        customer_id: &str,
        survey: &Survey<'_>,
    ) -> Result<usize, RedisError> {
        // Kept before the awaiting tasks are read, for a resolution read
        // after this survey: a resolution written after that read looks
        // for it once written (see `update_made_at`), so neither misses
        // the other. The old newest-task pointer is read too, so tasks
        // resolved before the awaiting set existed get their outcome.
        let candidates = self
            .store
            .keep_survey_then_awaiting(customer_id, survey)
            .await?;
        let mut decided = 0;
        for task_id in candidates {
            decided += usize::from(self.decide_outcome(customer_id, &task_id, survey).await?);
        }
        Ok(decided)
    }

    async fn decide_outcome(
        &self,
        customer_id: &str,
        task_id: &str,
        survey: &Survey<'_>,
    ) -> Result<bool, RedisError> {
        for _ in 0..MAX_ATTEMPTS {
            let Some(task) = self.store.get(task_id).await? else {
                // Closed and past its retention: nothing left to decide.
                self.store.forget_awaiting(customer_id, task_id).await?;
                return Ok(false);
            };
            let mut next = task.clone();
            if !next.record_survey(survey, self.clock.now()) {
                return Ok(false);
            }
            match self
                .store
                .put(Some(&task), &next, Pointer::Keep, None)
                .await?
                .0
            {
                Put::Written => return Ok(true),
                _ => telemetry::count_conflict("survey"),
            }
        }
        Err(contended(task_id))
    }

    /// [`Self::on_survey`] for a batch, in order; returns how many set an
    /// outcome. One round trip finds which customers have a task (awaiting
    /// its outcome, or open), and only their surveys are looked at further:
    /// a survey can only decide the outcome of a task resolved before it,
    /// so a customer without a task when the batch is read has nothing for
    /// it to decide now or later.
    pub async fn on_surveys(&self, surveys: &[(&str, Survey<'_>)]) -> Result<usize, RedisError> {
        let customers: Vec<&str> = surveys
            .iter()
            .map(|(customer_id, _)| *customer_id)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let with_task: std::collections::HashSet<&str> = customers
            .iter()
            .zip(self.store.have_tasks(&customers).await?)
            .filter_map(|(customer_id, has_task)| has_task.then_some(*customer_id))
            .collect();
        let mut recorded = 0;
        for (customer_id, survey) in surveys {
            if with_task.contains(customer_id) {
                recorded += self.on_survey(customer_id, survey).await?;
            }
        }
        Ok(recorded)
    }

    /// Escalates every task past its due time; returns how many escalated.
    /// Safe with several replicas: the compare-and-set lets exactly one
    /// escalate a task for one due time; the others re-read and find it no
    /// longer due.
    pub async fn escalate_due(&self, limit: usize) -> Result<usize, RedisError> {
        let now = self.clock.now();
        let due = self.store.due_tasks(now, limit).await?;
        let mut escalated = 0;
        for task_id in due {
            escalated += usize::from(self.escalate_one(&task_id).await?);
        }
        Ok(escalated)
    }

    async fn escalate_one(&self, task_id: &str) -> Result<bool, RedisError> {
        for _ in 0..MAX_ATTEMPTS {
            let Some(task) = self.store.get(task_id).await? else {
                return Ok(false);
            };
            let now = self.clock.now();
            let mut next = task.clone();
            if !next.escalate_if_due(&self.sla, now) {
                // At the top of the chain, or no longer awaiting contact:
                // nothing will change by waiting, so stop the timer (unless
                // the task changed meanwhile).
                if !task.state.awaits_contact() || task.is_overdue(now) {
                    self.store.unschedule(task_id, task.version).await?;
                }
                return Ok(false);
            }
            match self
                .store
                .put(Some(&task), &next, Pointer::Keep, None)
                .await?
                .0
            {
                Put::Written => {
                    tracing::info!(
                        task_id,
                        level = next.escalation_level,
                        owner = %next.owner,
                        "task escalated"
                    );
                    return Ok(true);
                }
                _ => telemetry::count_conflict("escalate"),
            }
        }
        Err(contended(task_id))
    }
}

fn contended(what: &str) -> RedisError {
    RedisError::from((
        redis::ErrorKind::Client,
        "task contended",
        format!("{what}: too many concurrent changes; retrying the batch"),
    ))
}

//! The close-the-loop task: the contract's "JSON task" and its rules.

use ring::digest;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{Directory, Outcome, Priority, SlaConfig, TaskState, TaskUpdate, UpdateError};

/// One task per detractor customer. Serialises every contract key (absent
/// optionals as `null`) plus the extras `escalation_chain`, `team`, `queue`,
/// `first_contact_at`, `last_survey_interaction_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub task_id: String,
    pub customer_id: String,
    pub state: TaskState,
    pub priority: Priority,
    pub owner: String,
    pub escalation_level: u32,
    pub interaction_ids: Vec<String>,
    pub alert_ids: Vec<String>,
    pub reason: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub due_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub resolved_at: Option<OffsetDateTime>,
    #[serde(default)]
    pub root_cause: Option<String>,
    #[serde(default)]
    pub resolution_note: Option<String>,
    #[serde(default)]
    pub outcome: Option<Outcome>,
    pub version: u64,
    /// Owner chain captured at opening, so escalation does not depend on
    /// later directory changes. `escalation_level` indexes it.
    #[serde(default)]
    pub escalation_chain: Vec<String>,
    /// The team resolved at opening (the agent's team, else the interaction's).
    #[serde(default)]
    pub team: Option<String>,
    #[serde(default)]
    pub queue: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub first_contact_at: Option<OffsetDateTime>,
    /// The survey that decided `outcome`.
    #[serde(default)]
    pub last_survey_interaction_id: Option<String>,
}

/// A detractor alert that opens a task or is attached to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opening<'a> {
    pub customer_id: &'a str,
    pub alert_id: &'a str,
    pub interaction_id: Option<&'a str>,
    /// The alert's severity: critical | warning | info.
    pub severity: &'a str,
    /// The alert's message.
    pub reason: &'a str,
    pub agent_id: Option<&'a str>,
    pub team_id: Option<&'a str>,
    pub queue_id: Option<&'a str>,
}

/// A later survey from the same customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Survey<'a> {
    pub interaction_id: &'a str,
    pub occurred_at: OffsetDateTime,
    /// 0–10; out of range is treated as absent.
    pub nps: Option<u8>,
    /// 1–5; out of range is treated as absent.
    pub csat: Option<u8>,
}

impl Survey<'_> {
    /// NPS decides when present: promoter or passive (≥ 7) recovered,
    /// detractor not. Otherwise CSAT: satisfied (4–5) recovered, 1–3 not —
    /// a neutral 3 is not a recovery. No usable score: `None`.
    pub fn outcome(&self) -> Option<Outcome> {
        let recovered = match (
            self.nps.filter(|n| *n <= 10),
            self.csat.filter(|c| (1..=5).contains(c)),
        ) {
            (Some(nps), _) => nps >= 7,
            (None, Some(csat)) => csat >= 4,
            (None, None) => return None,
        };
        Some(if recovered {
            Outcome::Recovered
        } else {
            Outcome::NotRecovered
        })
    }
}

/// `"task_" + hex(SHA-256(len‖customer_id‖len‖alert_id)[..16])`. Length
/// prefixes keep ("ab","c") and ("a","bc") apart; deterministic so a
/// redelivered alert maps to the task it already opened.
pub fn task_id_for(customer_id: &str, alert_id: &str) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for part in [customer_id, alert_id] {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part.as_bytes());
    }
    let hash = ctx.finish();
    let mut id = String::with_capacity(5 + 32);
    id.push_str("task_");
    for byte in &hash.as_ref()[..16] {
        id.push_str(&format!("{byte:02x}"));
    }
    id
}

fn non_empty(id: Option<&str>) -> Option<&str> {
    id.filter(|s| !s.is_empty())
}

impl Task {
    /// A new task for a detractor alert: version 1, state open, owner from
    /// the directory, `due_at = now + sla(priority)`.
    pub fn open(
        opening: &Opening,
        directory: &Directory,
        sla: &SlaConfig,
        now: OffsetDateTime,
    ) -> Task {
        let chain = directory.chain(opening.agent_id, opening.team_id, opening.queue_id);
        let priority = Priority::from_severity(opening.severity);
        let owner = chain.at(0).unwrap_or(crate::DEFAULT_OWNER).to_owned();
        Task {
            task_id: task_id_for(opening.customer_id, opening.alert_id),
            customer_id: opening.customer_id.to_owned(),
            state: TaskState::Open,
            priority,
            owner,
            escalation_level: 0,
            interaction_ids: non_empty(opening.interaction_id)
                .map(str::to_owned)
                .into_iter()
                .collect(),
            alert_ids: vec![opening.alert_id.to_owned()],
            reason: opening.reason.to_owned(),
            created_at: now,
            updated_at: now,
            due_at: sla.due_at(priority, now),
            resolved_at: None,
            root_cause: None,
            resolution_note: None,
            outcome: None,
            version: 1,
            team: directory
                .team_of(opening.agent_id, opening.team_id)
                .map(str::to_owned),
            queue: non_empty(opening.queue_id).map(str::to_owned),
            escalation_chain: chain.0,
            first_contact_at: None,
            last_survey_interaction_id: None,
        }
    }

    /// Another alert for the same customer while this task is their open
    /// task ([`TaskState::takes_alerts`]): attach the alert and interaction
    /// ids (no duplicates) and raise the priority if the alert's is higher,
    /// pulling `due_at` earlier if the new SLA from now ends sooner. The
    /// reason stays the first alert's. Returns false, changing nothing, if
    /// the alert is already attached or the task no longer takes alerts.
    pub fn attach(&mut self, opening: &Opening, sla: &SlaConfig, now: OffsetDateTime) -> bool {
        if !self.state.takes_alerts() || self.alert_ids.iter().any(|a| a == opening.alert_id) {
            return false;
        }
        self.alert_ids.push(opening.alert_id.to_owned());
        if let Some(interaction) = non_empty(opening.interaction_id) {
            if !self.interaction_ids.iter().any(|i| i == interaction) {
                self.interaction_ids.push(interaction.to_owned());
            }
        }
        let priority = Priority::from_severity(opening.severity);
        if priority > self.priority {
            self.priority = priority;
            // Only while the SLA clock runs; after contact due_at is history.
            if self.state.awaits_contact() {
                self.due_at = self.due_at.min(sla.due_at(priority, now));
            }
        }
        self.touch(now);
        true
    }

    /// Applies a CRM/gRPC update. Checks, in order, changing nothing on
    /// error: task_id matches (`Invalid`), version is current
    /// (`StaleVersion`), transition is legal (`IllegalTransition`), field
    /// limits (`Invalid`). Entering `contacted` stamps `first_contact_at`
    /// (once); entering `resolved` stamps `resolved_at`.
    pub fn apply_update(
        &mut self,
        update: &TaskUpdate,
        now: OffsetDateTime,
    ) -> Result<(), UpdateError> {
        if update.task_id != self.task_id {
            return Err(UpdateError::invalid("task_id", "does not name this task"));
        }
        if update.version != self.version {
            return Err(UpdateError::StaleVersion {
                current: self.version,
                given: update.version,
            });
        }
        if !self.state.can_become(update.state) {
            return Err(UpdateError::IllegalTransition {
                from: self.state,
                to: update.state,
            });
        }
        update.check_fields()?;

        self.state = update.state;
        if let Some(owner) = &update.owner {
            self.owner = owner.clone();
        }
        if let Some(root_cause) = &update.root_cause {
            self.root_cause = Some(root_cause.clone());
        }
        if let Some(note) = &update.resolution_note {
            self.resolution_note = Some(note.clone());
        }
        match update.state {
            TaskState::Contacted => {
                self.first_contact_at.get_or_insert(now);
            }
            TaskState::Resolved => self.resolved_at = Some(now),
            _ => {}
        }
        self.touch(now);
        Ok(())
    }

    /// Escalates one level when past `due_at`, still awaiting contact, and
    /// the chain has a next level: new owner, state `escalated` (also from
    /// `escalated` itself — this is the timer, not an update), new due time
    /// from now. Returns whether it escalated; at the top, nothing changes.
    pub fn escalate_if_due(&mut self, sla: &SlaConfig, now: OffsetDateTime) -> bool {
        if !self.is_overdue(now) {
            return false;
        }
        let next = self.escalation_level.saturating_add(1);
        let Some(owner) = self.escalation_chain.get(next as usize) else {
            return false;
        };
        self.owner = owner.clone();
        self.escalation_level = next;
        self.state = TaskState::Escalated;
        self.due_at = sla.due_at(self.priority, now);
        self.touch(now);
        true
    }

    /// Records the outcome from the customer's next survey after
    /// resolution. Only when the task is resolved (or closed after being
    /// resolved), has no outcome yet, the survey is not one of the task's
    /// own interactions and happened after `resolved_at`, and it carries a
    /// usable score ([`Survey::outcome`]). Returns whether it changed.
    pub fn record_survey(&mut self, survey: &Survey, now: OffsetDateTime) -> bool {
        let decided = self.decide_outcome(survey);
        if decided {
            self.touch(now);
        }
        decided
    }

    /// [`Self::record_survey`] as part of another change (the resolution
    /// that finds the next survey already there): the same rules, no
    /// version of its own.
    pub fn decide_outcome(&mut self, survey: &Survey) -> bool {
        let Some(resolved_at) = self.resolved_at else {
            return false;
        };
        if !matches!(self.state, TaskState::Resolved | TaskState::Closed)
            || self.outcome.is_some()
            || survey.occurred_at <= resolved_at
            || self
                .interaction_ids
                .iter()
                .any(|i| i == survey.interaction_id)
        {
            return false;
        }
        let Some(outcome) = survey.outcome() else {
            return false;
        };
        self.outcome = Some(outcome);
        self.last_survey_interaction_id = Some(survey.interaction_id.to_owned());
        true
    }

    /// Still awaiting contact and past its due time.
    pub fn is_overdue(&self, now: OffsetDateTime) -> bool {
        self.state.awaits_contact() && now > self.due_at
    }

    /// The JSON published on cx.followups.v1.
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    pub fn from_json(bytes: &[u8]) -> Result<Task, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// Every change raises the version by exactly one.
    fn touch(&mut self, now: OffsetDateTime) {
        self.version = self.version.saturating_add(1);
        self.updated_at = now;
    }
}

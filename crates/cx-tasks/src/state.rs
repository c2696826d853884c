//! Task states, priorities and outcomes: the contract's enum values.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A string that names no value of one of this crate's enums.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{value}`, expected one of: {expected}")]
pub struct ParseEnumError {
    /// What was being parsed, e.g. "task state".
    pub kind: &'static str,
    /// The value that was given.
    pub value: String,
    /// The accepted values, comma separated.
    pub expected: &'static str,
}

/// The state of a close-the-loop task (CONTRACT "JSON task").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    Open,
    InProgress,
    Contacted,
    Resolved,
    Escalated,
    Closed,
}

impl TaskState {
    /// Every state, in contract order.
    pub const ALL: [TaskState; 6] = [
        TaskState::Open,
        TaskState::InProgress,
        TaskState::Contacted,
        TaskState::Resolved,
        TaskState::Escalated,
        TaskState::Closed,
    ];

    const EXPECTED: &'static str = "open, in_progress, contacted, resolved, escalated, closed";

    pub const fn as_str(self) -> &'static str {
        match self {
            TaskState::Open => "open",
            TaskState::InProgress => "in_progress",
            TaskState::Contacted => "contacted",
            TaskState::Resolved => "resolved",
            TaskState::Escalated => "escalated",
            TaskState::Closed => "closed",
        }
    }

    /// Whether an update may move a task from `self` to `next` (CONTRACT
    /// "Close-the-loop rules"). Same-state moves are illegal.
    pub const fn can_become(self, next: TaskState) -> bool {
        use TaskState::*;
        matches!(
            (self, next),
            (Open, InProgress | Contacted | Escalated | Closed)
                | (InProgress, Contacted | Escalated | Closed)
                | (Escalated, InProgress | Contacted | Closed)
                | (Contacted, Resolved | Closed)
                | (Resolved, Closed)
        )
    }

    /// Not closed: the task can still change state.
    pub const fn is_open(self) -> bool {
        !matches!(self, TaskState::Closed)
    }

    /// Nobody has reached the customer yet, so the SLA clock runs and the
    /// task can escalate.
    pub const fn awaits_contact(self) -> bool {
        matches!(
            self,
            TaskState::Open | TaskState::InProgress | TaskState::Escalated
        )
    }

    /// Whether this task is *the customer's open task* for the
    /// one-open-task-per-customer rule: any state but `resolved` and `closed`.
    /// A resolved task only waits for the outcome of the next survey, so a new
    /// detractor alert opens a fresh task instead of being attached to it.
    pub const fn takes_alerts(self) -> bool {
        !matches!(self, TaskState::Resolved | TaskState::Closed)
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskState {
    type Err = ParseEnumError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaskState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| ParseEnumError {
                kind: "task state",
                value: s.to_owned(),
                expected: TaskState::EXPECTED,
            })
    }
}

/// Task priority; ordered `Normal < High < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Normal,
    High,
    Critical,
}

impl Priority {
    pub const ALL: [Priority; 3] = [Priority::Normal, Priority::High, Priority::Critical];

    pub const fn as_str(self) -> &'static str {
        match self {
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Critical => "critical",
        }
    }

    /// From an alert's severity: critical → critical, warning → high,
    /// anything else (info, or a severity this version does not know) → normal.
    pub fn from_severity(severity: &str) -> Priority {
        match severity {
            "critical" => Priority::Critical,
            "warning" => Priority::High,
            _ => Priority::Normal,
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Priority {
    type Err = ParseEnumError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Priority::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| ParseEnumError {
                kind: "priority",
                value: s.to_owned(),
                expected: "critical, high, normal",
            })
    }
}

/// What the customer's next survey after resolution said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Recovered,
    NotRecovered,
}

impl Outcome {
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Recovered => "recovered",
            Outcome::NotRecovered => "not_recovered",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Outcome {
    type Err = ParseEnumError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Outcome::Recovered, Outcome::NotRecovered]
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| ParseEnumError {
                kind: "outcome",
                value: s.to_owned(),
                expected: "recovered, not_recovered",
            })
    }
}

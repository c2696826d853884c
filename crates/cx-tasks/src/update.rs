//! The contract's "JSON update" from a CRM (same rules as gRPC UpdateTask).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::TaskState;

/// Longest owner, in characters (like the contract's ids).
pub const MAX_OWNER_CHARS: usize = 128;
/// Longest root cause or resolution note, in bytes of UTF-8.
pub const MAX_TEXT_BYTES: usize = 2048;
/// Longest task id accepted in an update, in characters.
pub const MAX_TASK_ID_CHARS: usize = 128;

/// Why an update was refused. Nothing is changed when one is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpdateError {
    #[error("stale version: the task is at version {current}, the update names version {given}")]
    StaleVersion { current: u64, given: u64 },
    #[error("illegal transition from {from} to {to}")]
    IllegalTransition { from: TaskState, to: TaskState },
    #[error("invalid {field}: {description}")]
    Invalid { field: String, description: String },
}

impl UpdateError {
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> UpdateError {
        UpdateError::Invalid {
            field: field.into(),
            description: description.into(),
        }
    }

    /// Stale version or illegal transition: gRPC FAILED_PRECONDITION.
    /// Otherwise (`Invalid`): INVALID_ARGUMENT with a field violation.
    pub fn is_precondition(&self) -> bool {
        matches!(
            self,
            UpdateError::StaleVersion { .. } | UpdateError::IllegalTransition { .. }
        )
    }

    /// The offending field of an `Invalid` error.
    pub fn field(&self) -> Option<&str> {
        match self {
            UpdateError::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }
}

/// A requested change: the target state, with the version the caller read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskUpdate {
    pub task_id: String,
    pub version: u64,
    pub state: TaskState,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub root_cause: Option<String>,
    #[serde(default)]
    pub resolution_note: Option<String>,
}

const FIELDS: [&str; 6] = [
    "task_id",
    "version",
    "state",
    "owner",
    "root_cause",
    "resolution_note",
];

impl TaskUpdate {
    /// Parses a JSON update. Errors are `Invalid` naming the field at fault
    /// (`body` when the bytes are not a JSON object). Walks a `Value` by hand
    /// rather than using serde's messages, so every error names its field.
    /// Length limits are checked by [`crate::Task::apply_update`], so that
    /// gRPC and Kafka updates share one rule and one check order.
    pub fn from_json(bytes: &[u8]) -> Result<TaskUpdate, UpdateError> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| UpdateError::invalid("body", format!("not valid JSON: {e}")))?;
        let Value::Object(mut map) = value else {
            return Err(UpdateError::invalid("body", "expected a JSON object"));
        };
        if let Some(unknown) = map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(UpdateError::invalid(unknown.clone(), "unknown field"));
        }

        let task_id = required(&mut map, "task_id").and_then(|v| string(v, "task_id"))?;
        if task_id.is_empty() || task_id.chars().count() > MAX_TASK_ID_CHARS {
            return Err(UpdateError::invalid(
                "task_id",
                format!("must be 1 to {MAX_TASK_ID_CHARS} characters"),
            ));
        }
        let version = required(&mut map, "version")?
            .as_u64()
            .ok_or_else(|| UpdateError::invalid("version", "expected an unsigned integer"))?;
        if version == 0 {
            return Err(UpdateError::invalid("version", VERSION_ZERO));
        }
        let state = required(&mut map, "state")
            .and_then(|v| string(v, "state"))?
            .parse::<TaskState>()
            .map_err(|e| UpdateError::invalid("state", e.to_string()))?;

        Ok(TaskUpdate {
            task_id,
            version,
            state,
            owner: optional(&mut map, "owner")?,
            root_cause: optional(&mut map, "root_cause")?,
            resolution_note: optional(&mut map, "resolution_note")?,
        })
    }

    /// Length and emptiness limits on the optional fields.
    pub fn check_fields(&self) -> Result<(), UpdateError> {
        if let Some(owner) = &self.owner {
            if owner.trim().is_empty() || owner.chars().count() > MAX_OWNER_CHARS {
                return Err(UpdateError::invalid(
                    "owner",
                    format!("must be 1 to {MAX_OWNER_CHARS} characters, not blank"),
                ));
            }
        }
        for (field, text) in [
            ("root_cause", &self.root_cause),
            ("resolution_note", &self.resolution_note),
        ] {
            if text.as_ref().is_some_and(|t| t.len() > MAX_TEXT_BYTES) {
                return Err(UpdateError::invalid(
                    field,
                    format!("must be at most {MAX_TEXT_BYTES} bytes"),
                ));
            }
        }
        Ok(())
    }
}

/// Why an update naming version 0 is refused: no task is ever at it (a
/// task starts at 1), so it is a missing version, not a stale one.
pub const VERSION_ZERO: &str = "required: the version you read (versions start at 1)";

fn required(map: &mut Map<String, Value>, field: &str) -> Result<Value, UpdateError> {
    match map.remove(field) {
        None | Some(Value::Null) => Err(UpdateError::invalid(field, "required")),
        Some(v) => Ok(v),
    }
}

fn string(value: Value, field: &str) -> Result<String, UpdateError> {
    match value {
        Value::String(s) => Ok(s),
        _ => Err(UpdateError::invalid(field, "expected a string")),
    }
}

fn optional(map: &mut Map<String, Value>, field: &str) -> Result<Option<String>, UpdateError> {
    match map.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => string(v, field).map(Some),
    }
}

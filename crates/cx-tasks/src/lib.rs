//! IO-free domain of the follow-up service: one close-the-loop task per
//! detractor customer, its state machine and versions, owner and escalation
//! chain from a routing directory, SLA due times, and the outcome read from
//! the customer's next survey. Nothing here reads a clock: every function
//! that needs the time takes `now`.

mod config;
mod state;
mod task;
mod update;

pub use config::{
    Directory, OwnerChain, QueueEntry, SlaConfig, TeamEntry, DEFAULT_HEAD_OF_CX, DEFAULT_OWNER,
};
pub use state::{Outcome, ParseEnumError, Priority, TaskState};
pub use task::{task_id_for, Opening, Survey, Task};
pub use update::{
    TaskUpdate, UpdateError, MAX_OWNER_CHARS, MAX_TASK_ID_CHARS, MAX_TEXT_BYTES, VERSION_ZERO,
};

#[cfg(test)]
mod tests;

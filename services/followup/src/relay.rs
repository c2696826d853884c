//! The outbox relay: publishes every task change from the Redis outbox
//! stream to cx.followups.v1 (key task_id, the whole task at that version;
//! see `cx_runtime::outbox`). A crash between the Kafka ack and the cursor
//! move republishes those versions (at-least-once; consumers keep the
//! highest `version` per task_id).

use std::sync::Arc;
use std::time::Duration;

use cx_runtime::kafka::SharedProducer;
use cx_runtime::outbox::{OutboxEntry, OutboxRecord, OutboxSource, Relay, RelayConfig};
use cx_runtime::{Readiness, RedisPool};

use crate::store::TaskStore;
use crate::telemetry;

/// Outbox entries carry the task JSON at that version: no read needed.
pub struct TaskRecords;

impl OutboxSource for TaskRecords {
    async fn records(&self, entries: &[OutboxEntry]) -> Result<Vec<OutboxRecord>, String> {
        Ok(entries
            .iter()
            .filter_map(|entry| {
                Some(OutboxRecord {
                    key: entry.field("task_id")?.to_string(),
                    payload: entry.field("json")?.as_bytes().to_vec(),
                    // The change happened when its entry was written.
                    created_at_ms: entry.id.millis() as i64,
                })
            })
            .collect())
    }
}

pub fn relay(
    tasks: &TaskStore,
    tail: RedisPool,
    producer: Arc<SharedProducer>,
    topic: String,
    watch_retention: Duration,
    readiness: Readiness,
) -> Relay<TaskRecords> {
    Relay {
        config: RelayConfig {
            outbox_key: tasks.outbox_key(),
            cursor_key: tasks.cursor_key(),
            lease_key: format!("{}:followup:relay:lease", tasks.prefix()),
            topic,
            watch_retention,
            relayed_total: telemetry::RELAYED_TOTAL,
            delay_seconds: telemetry::RELAY_DELAY_SECONDS,
            label: "task",
        },
        source: TaskRecords,
        tail,
        producer,
        readiness,
    }
}

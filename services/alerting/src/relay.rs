//! The outbox relay: publishes new alerts from the Redis outbox stream to
//! cx.alerts.v1 (see `cx_runtime::outbox`). A crash between the Kafka ack
//! and the cursor move republishes those alerts with the same alert_id
//! (at-least-once; consumers key by alert_id).

use std::sync::Arc;
use std::time::Duration;

use cx_runtime::kafka::SharedProducer;
use cx_runtime::outbox::{OutboxEntry, OutboxRecord, OutboxSource, Relay, RelayConfig};
use cx_runtime::{Readiness, RedisPool};

use crate::store::AlertStore;
use crate::telemetry;

/// Outbox entries name an alert; the record is the alert as stored.
pub struct AlertRecords(pub AlertStore);

impl OutboxSource for AlertRecords {
    async fn records(&self, entries: &[OutboxEntry]) -> Result<Vec<OutboxRecord>, String> {
        let ids: Vec<String> = entries
            .iter()
            .filter_map(|entry| entry.field("alert_id").map(str::to_string))
            .collect();
        // Expired alerts (past retention) are skipped: nothing to publish.
        let alerts = self.0.get_many(&ids).await.map_err(|e| e.to_string())?;
        Ok(alerts
            .iter()
            .map(|(alert, _)| OutboxRecord {
                key: alert.kafka_key().to_string(),
                payload: serde_json::to_vec(alert).expect("alerts serialize"),
                created_at_ms: (alert.created_at.unix_timestamp_nanos() / 1_000_000) as i64,
            })
            .collect())
    }
}

pub fn relay(
    alerts: AlertStore,
    tail: RedisPool,
    producer: Arc<SharedProducer>,
    topic: String,
    prefix: &str,
    watch_retention: Duration,
    readiness: Readiness,
) -> Relay<AlertRecords> {
    Relay {
        config: RelayConfig {
            outbox_key: alerts.outbox_key(),
            cursor_key: alerts.cursor_key(),
            lease_key: format!("{prefix}:alerting:relay:lease"),
            topic,
            watch_retention,
            relayed_total: telemetry::RELAYED_TOTAL,
            delay_seconds: telemetry::RELAY_DELAY_SECONDS,
            label: "alert",
        },
        source: AlertRecords(alerts),
        tail,
        producer,
        readiness,
    }
}

//! The outbox relay: publishes every task change from the Redis outbox
//! stream to cx.followups.v1 (key task_id, the whole task at that version),
//! in order, and only then moves its cursor. One replica at a time holds
//! the relay lease; a crash between the Kafka ack and the cursor move
//! republishes those versions (at-least-once; consumers keep the highest
//! `version` per task_id).

use std::sync::Arc;
use std::time::Duration;

use cx_runtime::kafka::SharedProducer;
use cx_runtime::{Readiness, RedisPool};
use rdkafka::producer::FutureRecord;
use redis::aio::ConnectionManager;
use tokio_util::sync::CancellationToken;

use crate::store::TaskStore;
use crate::telemetry;

const LEASE_MS: u64 = 10_000;
const BATCH: usize = 500;
/// Short enough that a lost lease or a stop is noticed quickly; below the
/// Redis client's 2 s response timeout.
const BLOCK_MS: u64 = 500;

const HOLD_LEASE: &str = r#"
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"#;

/// Moves the cursor only while holding the lease.
const ADVANCE: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
return 1
"#;

const RELEASE: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

pub struct Relay {
    pub tasks: TaskStore,
    /// A connection of its own: XREAD BLOCK would stall a shared one.
    pub tail: RedisPool,
    pub producer: Arc<SharedProducer>,
    pub topic: String,
    /// Outbox entries older than this are trimmed once relayed.
    pub watch_retention: Duration,
    pub readiness: Readiness,
}

impl Relay {
    pub async fn run(self, stop: CancellationToken) {
        let instance = format!("{:016x}", rand::random::<u64>());
        let lease_key = format!("{}:followup:relay:lease", self.tasks.prefix());
        let hold = redis::Script::new(HOLD_LEASE);
        let advance = redis::Script::new(ADVANCE);
        let mut backoff = Duration::from_millis(100);
        while !stop.is_cancelled() {
            let step = async {
                let mut conn = self.tail.get().await.map_err(|e| e.to_string())?;
                let held: i64 = hold
                    .key(&lease_key)
                    .arg(&instance)
                    .arg(LEASE_MS)
                    .invoke_async(&mut conn)
                    .await
                    .map_err(|e| e.to_string())?;
                if held == 0 {
                    return Ok(false);
                }
                self.relay_once(&mut conn, &lease_key, &instance, &advance)
                    .await
            };
            let outcome = tokio::select! {
                _ = stop.cancelled() => break,
                outcome = step => outcome,
            };
            match outcome {
                Ok(true) => {
                    self.readiness.report("relay", Ok(()));
                    backoff = Duration::from_millis(100);
                }
                // Another replica relays: check the lease again later.
                Ok(false) => {
                    self.readiness.report("relay", Ok(()));
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_millis(LEASE_MS / 4)) => {}
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "task relay cannot publish yet; retrying");
                    self.readiness
                        .report("relay", Err(format!("task relay: {error}")));
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        // Let another replica take over at once.
        if let Ok(mut conn) = self.tail.get().await {
            let _: Result<i64, _> = redis::Script::new(RELEASE)
                .key(&lease_key)
                .arg(&instance)
                .invoke_async(&mut conn)
                .await;
        }
    }

    /// Publishes what follows the cursor; true when it did its work.
    async fn relay_once(
        &self,
        conn: &mut ConnectionManager,
        lease_key: &str,
        instance: &str,
        advance: &redis::Script,
    ) -> Result<bool, String> {
        let cursor_key = self.tasks.cursor_key();
        let outbox_key = self.tasks.outbox_key();
        let cursor: Option<String> = redis::cmd("GET")
            .arg(&cursor_key)
            .query_async(conn)
            .await
            .map_err(|e| e.to_string())?;
        let cursor = cursor.unwrap_or_else(|| "0-0".to_string());
        let entries = TaskStore::outbox_after(conn, &outbox_key, &cursor, BATCH, Some(BLOCK_MS))
            .await
            .map_err(|e| e.to_string())?;
        let Some(last) = entries.last() else {
            return Ok(true);
        };
        let records = entries
            .iter()
            .map(|entry| {
                FutureRecord::to(&self.topic)
                    .key(entry.task_id.as_str())
                    .payload(entry.json.as_bytes())
            })
            .collect();
        if let Some(error) = self
            .producer
            .send_all(records)
            .await
            .into_iter()
            .find_map(Result::err)
        {
            return Err(format!("publishing to {}: {error}", self.topic));
        }
        let now_ms = crate::store::millis(time::OffsetDateTime::now_utc());
        for entry in &entries {
            let written_ms = stream_ms(&entry.sid);
            let delay = (now_ms - written_ms as i64).max(0) as f64 / 1000.0;
            metrics::histogram!(telemetry::RELAY_DELAY_SECONDS).record(delay);
        }
        metrics::counter!(telemetry::RELAYED_TOTAL).increment(entries.len() as u64);
        let moved: i64 = advance
            .key(lease_key)
            .key(&cursor_key)
            .arg(instance)
            .arg(&last.sid)
            .invoke_async(conn)
            .await
            .map_err(|e| e.to_string())?;
        if moved == 1 {
            self.trim(conn, &outbox_key, &last.sid, now_ms).await;
        }
        Ok(true)
    }

    /// Drops relayed entries older than the watch retention.
    async fn trim(
        &self,
        conn: &mut ConnectionManager,
        outbox_key: &str,
        relayed_to: &str,
        now_ms: i64,
    ) {
        let horizon_ms =
            (now_ms.max(0) as u64).saturating_sub(self.watch_retention.as_millis() as u64);
        let min_id = format!("{}-0", horizon_ms.min(stream_ms(relayed_to)));
        let trimmed: Result<i64, _> = redis::cmd("XTRIM")
            .arg(outbox_key)
            .arg("MINID")
            .arg("~")
            .arg(min_id)
            .query_async(conn)
            .await;
        if let Err(error) = trimmed {
            tracing::debug!(%error, "outbox trim failed; next round retries");
        }
    }
}

/// The millisecond part of a stream id (Redis server time of the write).
fn stream_ms(sid: &str) -> u64 {
    sid.split('-')
        .next()
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(0)
}

//! Idempotency marks in Redis, one key per interaction_id.
//!
//! A key moves `absent → pending:<token> (lease) → done (7+ days)`. It is
//! marked done only after Kafka acknowledged the record, so a crash can never
//! leave an interaction marked as seen but not published: a pending mark
//! expires with its lease and the client's retry publishes it. The residual
//! case — Kafka acknowledged, then the process died before marking done — is
//! a second copy on the topic after a retry; downstream consumers deduplicate
//! by interaction_id (CONTRACT: "each interaction counts exactly once").

use std::time::Duration;

use cx_runtime::RedisPool;
use redis::RedisError;

const DONE: &str = "d";
const PENDING_PREFIX: &str = "p:";

/// What a claim attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This caller holds the lease and must publish, then complete or release.
    Claimed,
    /// Already published: answer `duplicate: true`.
    Duplicate,
    /// Another request holds the lease right now.
    InFlight,
}

#[derive(Clone)]
pub struct DedupeStore {
    redis: RedisPool,
    key_prefix: String,
    /// Longer than a produce can take (message.timeout.ms), so two holders
    /// never publish concurrently.
    lease: Duration,
    /// How long a done mark lives: the contract asks for at least 7 days.
    retention: Duration,
}

impl DedupeStore {
    pub fn new(redis: RedisPool, key_prefix: &str, lease: Duration, retention: Duration) -> Self {
        DedupeStore {
            redis,
            key_prefix: format!("{key_prefix}:ingest:seen:"),
            lease,
            retention,
        }
    }

    fn key(&self, interaction_id: &str) -> String {
        format!("{}{}", self.key_prefix, interaction_id)
    }

    /// One round trip: `SET key pending NX GET PX lease` per id.
    pub async fn claim(&self, ids: &[&str], token: &str) -> Result<Vec<Claim>, RedisError> {
        let mut conn = self.redis.get().await?;
        let pending = format!("{PENDING_PREFIX}{token}");
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("SET")
                .arg(self.key(id))
                .arg(&pending)
                .arg("NX")
                .arg("GET")
                .arg("PX")
                .arg(self.lease.as_millis() as u64);
        }
        let previous: Vec<Option<String>> = pipe.query_async(&mut conn).await?;
        Ok(previous
            .into_iter()
            .map(|old| match old.as_deref() {
                None => Claim::Claimed,
                Some(DONE) => Claim::Duplicate,
                Some(_) => Claim::InFlight,
            })
            .collect())
    }

    /// Marks published ids done for the retention period.
    pub async fn complete(&self, ids: &[&str]) -> Result<(), RedisError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut conn = self.redis.get().await?;
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("SET")
                .arg(self.key(id))
                .arg(DONE)
                .arg("EX")
                .arg(self.retention.as_secs())
                .ignore();
        }
        pipe.query_async::<()>(&mut conn).await
    }

    /// Gives up leases this caller holds (the publish failed), so a retry can
    /// claim at once instead of waiting for the lease to expire.
    pub async fn release(&self, ids: &[&str], token: &str) -> Result<(), RedisError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut conn = self.redis.get().await?;
        let pending = format!("{PENDING_PREFIX}{token}");
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("EVAL")
                // EVAL in a pipeline: no NOSCRIPT dance.
                .arg(cx_runtime::redis_pool::RELEASE_IF_HOLDER)
                .arg(1)
                .arg(self.key(id))
                .arg(&pending)
                .ignore();
        }
        pipe.query_async::<()>(&mut conn).await
    }

    /// The raw mark, for tests and diagnostics: `None`, `Some("d")` or a pending lease.
    pub async fn mark(&self, interaction_id: &str) -> Result<Option<String>, RedisError> {
        let mut conn = self.redis.get().await?;
        redis::cmd("GET")
            .arg(self.key(interaction_id))
            .query_async(&mut conn)
            .await
    }

    pub fn is_done_mark(mark: Option<&str>) -> bool {
        mark == Some(DONE)
    }
}

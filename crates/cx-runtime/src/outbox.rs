//! The transactional outbox in a Redis stream: a service writes its change
//! and an outbox entry in one script; the [`Relay`] publishes the entries to
//! Kafka, in order, and only then moves its cursor, and the [`OutboxFeed`]
//! tails the stream once per process for the service's watchers.
//!
//! One replica at a time holds the relay lease; a crash between the Kafka ack
//! and the cursor move republishes those entries (at-least-once).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::producer::FutureRecord;
use redis::aio::ConnectionManager;
use redis::RedisError;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::kafka::SharedProducer;
use crate::{Readiness, RedisPool};

/// A stream entry id, ordered like Redis orders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct StreamId(pub u64, pub u64);

impl StreamId {
    /// Where a watcher resuming at `millis` (Unix ms) starts reading: XREAD
    /// is exclusive, so just before the first id of that millisecond.
    pub fn just_before_millis(millis: i64) -> StreamId {
        match u64::try_from(millis) {
            Ok(ms) if ms > 0 => StreamId(ms - 1, u64::MAX),
            _ => StreamId(0, 0),
        }
    }
}

impl StreamId {
    pub fn parse(id: &str) -> Option<StreamId> {
        let (ms, seq) = id.split_once('-')?;
        Some(StreamId(ms.parse().ok()?, seq.parse().ok()?))
    }

    pub fn encode(self) -> String {
        format!("{}-{}", self.0, self.1)
    }

    /// The Redis server time of the write, in Unix milliseconds.
    pub fn millis(self) -> u64 {
        self.0
    }
}

/// One outbox entry as read from the stream.
#[derive(Debug, Clone)]
pub struct OutboxEntry {
    pub id: StreamId,
    pub fields: Vec<(String, String)>,
}

impl OutboxEntry {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

type XReadReply = Vec<(String, Vec<(String, Vec<(String, String)>)>)>;

/// XREAD of up to `count` entries after `after`, waiting up to `block_ms`
/// when there are none.
pub async fn read_after(
    conn: &mut ConnectionManager,
    outbox_key: &str,
    after: StreamId,
    count: usize,
    block_ms: Option<u64>,
) -> Result<Vec<OutboxEntry>, RedisError> {
    let mut cmd = redis::cmd("XREAD");
    cmd.arg("COUNT").arg(count);
    if let Some(ms) = block_ms {
        cmd.arg("BLOCK").arg(ms);
    }
    cmd.arg("STREAMS").arg(outbox_key).arg(after.encode());
    let reply: Option<XReadReply> = cmd.query_async(conn).await?;
    Ok(reply
        .into_iter()
        .flatten()
        .flat_map(|(_, entries)| entries)
        .filter_map(|(sid, fields)| {
            Some(OutboxEntry {
                id: StreamId::parse(&sid)?,
                fields,
            })
        })
        .collect())
}

/// One Kafka record made from outbox entries.
#[derive(Debug, Clone)]
pub struct OutboxRecord {
    pub key: String,
    pub payload: Vec<u8>,
    /// When the change happened (Unix ms), for the relay delay histogram.
    pub created_at_ms: i64,
}

/// How a service turns its outbox entries into Kafka records. Entries that
/// yield no record (e.g. expired) are skipped; the cursor still moves past.
pub trait OutboxSource: Send + Sync {
    fn records(
        &self,
        entries: &[OutboxEntry],
    ) -> impl Future<Output = Result<Vec<OutboxRecord>, String>> + Send;
}

/// What differs between the services' relays.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub outbox_key: String,
    pub cursor_key: String,
    pub lease_key: String,
    pub topic: String,
    /// Outbox entries older than this are trimmed once relayed.
    pub watch_retention: Duration,
    /// Counter of records published.
    pub relayed_total: &'static str,
    /// Histogram of seconds from the change to its publication.
    pub delay_seconds: &'static str,
    /// What is relayed, for logs and readiness ("alert", "task").
    pub label: &'static str,
}

const LEASE_MS: u64 = 10_000;
/// The lease is renewed this often while held, not on every round: each
/// Redis call of a round can wait behind another service's script.
const RENEW_EVERY: Duration = Duration::from_millis(LEASE_MS / 4);
/// Relayed entries are trimmed at most this often.
const TRIM_EVERY: Duration = Duration::from_secs(1);
const BATCH: usize = 500;
/// Short enough that a lost lease or a stop is noticed quickly; below the
/// Redis client's 2 s response timeout.
const BLOCK_MS: u64 = 500;

/// 2: renewed (this relay held it), 1: taken (nobody held it), 0: held by another.
const HOLD_LEASE: &str = r#"
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 2
end
if holder == false then
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

/// What a relay knows while it holds the lease, so a round need not ask
/// Redis again: the cursor is only moved by the lease holder.
#[derive(Default)]
struct Holding {
    /// When the lease was last taken or renewed.
    renewed: Option<std::time::Instant>,
    /// The stored cursor, as this relay last read or moved it.
    cursor: Option<StreamId>,
    trimmed: Option<std::time::Instant>,
}

pub struct Relay<S> {
    pub config: RelayConfig,
    pub source: S,
    /// A connection of its own: XREAD BLOCK would stall a shared one.
    pub tail: RedisPool,
    pub producer: Arc<SharedProducer>,
    pub readiness: Readiness,
}

impl<S: OutboxSource> Relay<S> {
    pub async fn run(self, stop: CancellationToken) {
        let instance = format!("{:016x}", rand::random::<u64>());
        let lease_key = &self.config.lease_key;
        let label = self.config.label;
        let hold = redis::Script::new(HOLD_LEASE);
        let advance = redis::Script::new(ADVANCE);
        let mut backoff = Duration::from_millis(100);
        let mut state = Holding::default();
        while !stop.is_cancelled() {
            let step = async {
                let mut conn = self.tail.get().await.map_err(|e| e.to_string())?;
                if state.renewed.is_none_or(|at| at.elapsed() >= RENEW_EVERY) {
                    let renewing = std::time::Instant::now();
                    let held: i64 = hold
                        .key(lease_key)
                        .arg(&instance)
                        .arg(LEASE_MS)
                        .invoke_async(&mut conn)
                        .await
                        .map_err(|e| e.to_string())?;
                    if held == 0 {
                        return Ok(false);
                    }
                    if held == 1 {
                        // Taken afresh: another relay may have moved the
                        // cursor while this one did not hold the lease.
                        state.cursor = None;
                    }
                    state.renewed = Some(renewing);
                }
                self.relay_once(&mut conn, &instance, &advance, &mut state)
                    .await
            };
            let outcome = tokio::select! {
                _ = stop.cancelled() => break,
                outcome = step => outcome,
            };
            if !matches!(outcome, Ok(true)) {
                // Not holding, or not sure: read the lease and cursor again.
                state = Holding::default();
            }
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
                    tracing::warn!(%error, "{label} relay cannot publish yet; retrying");
                    self.readiness
                        .report("relay", Err(format!("{label} relay: {error}")));
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
            let _: Result<i64, _> = redis::Script::new(crate::redis_pool::RELEASE_IF_HOLDER)
                .key(lease_key)
                .arg(&instance)
                .invoke_async(&mut conn)
                .await;
        }
    }

    /// Publishes what follows the cursor; true when it did its work, false
    /// when the lease turned out to be lost.
    async fn relay_once(
        &self,
        conn: &mut ConnectionManager,
        instance: &str,
        advance: &redis::Script,
        state: &mut Holding,
    ) -> Result<bool, String> {
        let config = &self.config;
        let cursor = match state.cursor {
            Some(cursor) => cursor,
            None => {
                let stored: Option<String> = redis::cmd("GET")
                    .arg(&config.cursor_key)
                    .query_async(conn)
                    .await
                    .map_err(|e| e.to_string())?;
                let cursor = stored
                    .as_deref()
                    .and_then(StreamId::parse)
                    .unwrap_or_default();
                state.cursor = Some(cursor);
                cursor
            }
        };
        let entries = read_after(conn, &config.outbox_key, cursor, BATCH, Some(BLOCK_MS))
            .await
            .map_err(|e| e.to_string())?;
        let Some(last) = entries.last().map(|entry| entry.id) else {
            return Ok(true);
        };
        let records = self.source.records(&entries).await?;
        let sends = records
            .iter()
            .map(|record| {
                FutureRecord::to(&config.topic)
                    .key(record.key.as_str())
                    .payload(record.payload.as_slice())
            })
            .collect();
        if let Some(error) = self
            .producer
            .send_all(sends)
            .await
            .into_iter()
            .find_map(Result::err)
        {
            return Err(format!("publishing to {}: {error}", config.topic));
        }
        let now_ms = now_millis();
        for record in &records {
            let delay = (now_ms - record.created_at_ms).max(0) as f64 / 1000.0;
            metrics::histogram!(config.delay_seconds).record(delay);
        }
        metrics::counter!(config.relayed_total).increment(records.len() as u64);
        let moved: i64 = advance
            .key(&config.lease_key)
            .key(&config.cursor_key)
            .arg(instance)
            .arg(last.encode())
            .invoke_async(conn)
            .await
            .map_err(|e| e.to_string())?;
        if moved == 0 {
            // Another replica holds the lease now; it relays from its cursor.
            return Ok(false);
        }
        state.cursor = Some(last);
        if state.trimmed.is_none_or(|at| at.elapsed() >= TRIM_EVERY) {
            self.trim(conn, last, now_ms).await;
            state.trimmed = Some(std::time::Instant::now());
        }
        Ok(true)
    }

    /// Drops relayed entries older than the watch retention.
    async fn trim(&self, conn: &mut ConnectionManager, relayed_to: StreamId, now_ms: i64) {
        let horizon_ms =
            (now_ms.max(0) as u64).saturating_sub(self.config.watch_retention.as_millis() as u64);
        let min_id = format!("{}-0", horizon_ms.min(relayed_to.millis()));
        let trimmed: Result<i64, _> = redis::cmd("XTRIM")
            .arg(&self.config.outbox_key)
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

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// One tail of the outbox stream per process, fanned out to every watcher.
#[derive(Clone)]
pub struct OutboxFeed {
    sender: broadcast::Sender<OutboxEntry>,
}

impl Default for OutboxFeed {
    fn default() -> Self {
        OutboxFeed {
            sender: broadcast::channel(4096).0,
        }
    }
}

impl OutboxFeed {
    pub fn subscribe(&self) -> broadcast::Receiver<OutboxEntry> {
        self.sender.subscribe()
    }

    /// Tails the outbox from its current end until `stop`; `label` names
    /// what it carries in logs ("alert", "task").
    pub async fn run(
        self,
        tail: RedisPool,
        outbox_key: String,
        label: &'static str,
        stop: CancellationToken,
    ) {
        let mut last: Option<StreamId> = None;
        while !stop.is_cancelled() {
            let step = async {
                let mut conn = tail.get().await?;
                let after = match last {
                    Some(id) => id,
                    None => {
                        let newest: Vec<(String, Vec<(String, String)>)> = redis::cmd("XREVRANGE")
                            .arg(&outbox_key)
                            .arg("+")
                            .arg("-")
                            .arg("COUNT")
                            .arg(1)
                            .query_async(&mut conn)
                            .await?;
                        let newest = newest
                            .first()
                            .and_then(|(id, _)| StreamId::parse(id))
                            .unwrap_or_default();
                        last = Some(newest);
                        newest
                    }
                };
                read_after(&mut conn, &outbox_key, after, 500, Some(1000)).await
            };
            let entries = tokio::select! {
                _ = stop.cancelled() => return,
                entries = step => entries,
            };
            match entries {
                Ok(entries) => {
                    for entry in entries {
                        last = Some(entry.id);
                        // No receivers is fine: nobody is watching.
                        let _ = self.sender.send(entry);
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, "{label} feed cannot read the outbox; retrying");
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                }
            }
        }
    }
}

/// A watcher's catch-up: hands `send` every entry after `from`, a batch at
/// a time, until the end of the stream. The last id sent (or `from`), or
/// `None` when `send` says the client went away.
// A plain closure returning a future, not an async closure: the latter's
// future is not provably Send for tokio::spawn (rustc's higher-ranked limit).
pub async fn replay<E, F, Fut>(
    redis: &RedisPool,
    outbox_key: &str,
    from: StreamId,
    unavailable: impl Fn(RedisError) -> E,
    mut send: F,
) -> Result<Option<StreamId>, E>
where
    F: FnMut(Vec<OutboxEntry>) -> Fut,
    Fut: Future<Output = Result<bool, E>>,
{
    let mut last = from;
    loop {
        let mut conn = redis.get().await.map_err(&unavailable)?;
        let entries = read_after(&mut conn, outbox_key, last, 500, None)
            .await
            .map_err(&unavailable)?;
        let Some(newest) = entries.last().map(|entry| entry.id) else {
            return Ok(Some(last));
        };
        last = newest;
        if !send(entries).await? {
            return Ok(None);
        }
    }
}

/// A watcher's loop: replays after `resume` (when given), then follows
/// `live`, each entry once and in order, until `stop`, `client_gone`, or
/// `send` answering false (Ok), or Redis failing (Err). A watcher that
/// falls behind the fan-out catches up from the stream itself.
#[allow(clippy::too_many_arguments)]
pub async fn follow<E, F, Fut>(
    redis: &RedisPool,
    outbox_key: &str,
    resume: Option<StreamId>,
    live: &mut broadcast::Receiver<OutboxEntry>,
    stop: &CancellationToken,
    client_gone: impl Future<Output = ()>,
    unavailable: impl Fn(RedisError) -> E + Copy,
    mut send: F,
) -> Result<(), E>
where
    F: FnMut(Vec<OutboxEntry>) -> Fut,
    Fut: Future<Output = Result<bool, E>>,
{
    let mut last = match resume {
        Some(from) => match replay(redis, outbox_key, from, unavailable, &mut send).await? {
            // Nothing replayed: `from` may lie ahead of the stream (a
            // client's clock ahead of Redis's), so it must not hide the
            // live entries that follow.
            Some(last) if last == from => None,
            Some(last) => Some(last),
            None => return Ok(()),
        },
        None => None,
    };
    tokio::pin!(client_gone);
    loop {
        let received = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = &mut client_gone => return Ok(()),
            received = live.recv() => received,
        };
        match received {
            Ok(entry) if last.is_some_and(|last| entry.id <= last) => {}
            Ok(entry) => {
                last = Some(entry.id);
                if !send(vec![entry]).await? {
                    return Ok(());
                }
            }
            Err(broadcast::error::RecvError::Lagged(_)) => {
                // Live only and nothing seen yet: there is no point to resume from.
                let Some(from) = last else { continue };
                match replay(redis, outbox_key, from, unavailable, &mut send).await? {
                    Some(caught_up) => last = Some(caught_up),
                    None => return Ok(()),
                }
            }
            Err(broadcast::error::RecvError::Closed) => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_order_numerically_not_lexically() {
        let a = StreamId::parse("999-5").unwrap();
        let b = StreamId::parse("1000-0").unwrap();
        assert!(a < b);
        assert!(StreamId::parse("1000-2").unwrap() < StreamId::parse("1000-10").unwrap());
        assert_eq!(StreamId::parse("17-3").unwrap().encode(), "17-3");
        assert_eq!(StreamId::parse("17"), None);
        assert_eq!(StreamId::parse("a-b"), None);
    }

    #[test]
    fn entries_find_their_fields() {
        let entry = OutboxEntry {
            id: StreamId(1, 0),
            fields: vec![
                ("task_id".into(), "t-1".into()),
                ("json".into(), "{}".into()),
            ],
        };
        assert_eq!(entry.field("json"), Some("{}"));
        assert_eq!(entry.field("alert_id"), None);
    }
}

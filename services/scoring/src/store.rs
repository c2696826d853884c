//! Rolling windows in Redis, exact under redelivery, crashes and rebalances.
//!
//! One Lua script per batch, in two steps inside the same atomic call:
//! 1. it checks the mark (field interaction_id of `{p}:scoring:seen:{day}:{shard}`) of every
//!    interaction not known to be counted; if any is marked it writes
//!    nothing and names them, and the service retries without them;
//! 2. otherwise it marks them all and adds the batch's pre-aggregated
//!    deltas — computed here, in Rust, one per bucket — to the buckets.
//!
//! Marks and counters change in the same atomic script, so a crash at any
//! instruction of the service leaves either both or neither, and a
//! redelivered record adds nothing. A bucket is a string of 16
//! little-endian i64 counters (`cx_windows::Aggregate::counters`, in the
//! order of the table on `Aggregate`): read with MGET, one SET per touched bucket, and one
//! MGET of 60 keys per query.
//!
//! Key layout (`{p}` = the configured key prefix, default `cx`):
//! | key | type | content | expires |
//! |---|---|---|---|
//! | `{p}:win:{window}:{dimension}:{key}:{bucket}` | string | 16 × i64 LE counters (128 bytes) | bucket start + window + 2 buckets |
//! | `{p}:scoring:seen:{event day}:{shard 0..63}` | hash | interaction_id → `1` | end of the event day + 8 days (past the 7-day lateness limit) |
//! | `{p}:scoring:contacts:{customer_id}` | zset | interaction_id → occurred_at | 8 days after the last contact |
//! | `{p}:scoring:keys:{dimension}` | zset | key → latest event time (for ranking) | trimmed to 8 days |

use std::collections::HashMap;

use cx_runtime::RedisPool;
use cx_windows::{Aggregate, Dimension, Metrics, Window};
use redis::RedisError;

use crate::score::WindowEvent;

/// Repeat contact: the same customer again within this many seconds.
pub const REPEAT_CONTACT_S: i64 = 7 * 86_400;
/// Marks and indexes outlive the largest window plus the lateness limit.
pub const MARK_TTL_S: i64 = 8 * 86_400;

const COUNTERS: usize = 16;

/// Events per repeat-contact pipeline (see `record_contacts`).
const CONTACTS_PER_PIPELINE: usize = 1000;

/// Marks live in hashes, one per (event day, shard): one HMGET and one
/// HSET per hash and batch instead of a command per interaction, and no
/// hash grows past a 64th of a day's interactions.
pub const MARK_SHARDS: u64 = 64;

/// ARGV: index_horizon (ranking entries older than this are trimmed),
///   n_groups, per mark hash: key, expire_at, n, then n pairs (interaction_id, `1`);
///   n_buckets, per bucket: key, expire_at, packed delta;
///   n_index, per index entry: index key, member, latest time.
/// Only interactions not known to be counted are sent. The pairs are
/// `HSET`'s arguments as they are, so the script builds no per-event
/// table to write them.
/// Reply: {0, {positions among the ids sent, 1-based}} or {2, reason}
/// (nothing written either way), or {1, {}}.
const APPLY_BATCH: &str = r#"
local index_horizon = tonumber(ARGV[1])
local ngroups = tonumber(ARGV[2])
local i = 3
local groups = {}
local dups = {}
local sent = 0
for g = 1, ngroups do
  local key, n = ARGV[i], tonumber(ARGV[i + 2])
  local first = i + 3
  groups[g] = {key, ARGV[i + 1], first, n}
  for from = 0, n - 1, 1000 do
    local upto = math.min(from + 999, n - 1)
    local ids = {}
    for k = from, upto do
      ids[#ids + 1] = ARGV[first + 2 * k]
    end
    local seen = redis.call('HMGET', key, unpack(ids))
    for k = 1, #seen do
      if seen[k] then dups[#dups + 1] = sent + from + k end
    end
  end
  sent = sent + n
  i = first + 2 * n
end
if #dups > 0 then
  return {0, dups}
end
-- Read and check everything before the first write: Redis does not undo a
-- script that fails half-way, and marks without counts would lose data.
local fmt = '<' .. string.rep('i8', 16)
local nbuckets = tonumber(ARGV[i])
local bucket_at = i + 1
-- MGET answers nil for a key of another type; the SET below then replaces
-- it, so no write can fail half-way.
local current = {}
for from = 0, nbuckets - 1, 1000 do
  local keys = {}
  for b = from, math.min(from + 999, nbuckets - 1) do
    keys[#keys + 1] = ARGV[bucket_at + 3 * b]
  end
  local values = redis.call('MGET', unpack(keys))
  for k = 1, #values do
    local value = values[k]
    if value and #value ~= 128 then
      return {2, keys[k] .. ': not a 128-byte bucket'}
    end
    current[from + k] = value
  end
end
for _, group in ipairs(groups) do
  local key, expire_at, first, n = group[1], group[2], group[3], group[4]
  for from = 0, n - 1, 1000 do
    local upto = math.min(from + 999, n - 1)
    redis.call('HSET', key, unpack(ARGV, first + 2 * from, first + 2 * upto + 1))
  end
  redis.call('EXPIREAT', key, expire_at)
end
-- A new bucket is the delta as sent, with its expiry; an existing one is
-- added to in locals (no per-bucket tables: this loop is most of the
-- script's time) and keeps the expiry it was created with, which is the
-- same: KEEPTTL costs about a third less than EXAT here.
for b = 0, nbuckets - 1 do
  local at = bucket_at + 3 * b
  local value = ARGV[at + 2]
  local c = current[b + 1]
  if c then
    local d1, d2, d3, d4, d5, d6, d7, d8, d9, d10, d11, d12, d13, d14, d15, d16 =
      struct.unpack(fmt, value)
    local c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15, c16 =
      struct.unpack(fmt, c)
    value = struct.pack(fmt, d1 + c1, d2 + c2, d3 + c3, d4 + c4, d5 + c5, d6 + c6, d7 + c7,
      d8 + c8, d9 + c9, d10 + c10, d11 + c11, d12 + c12, d13 + c13, d14 + c14, d15 + c15,
      d16 + c16)
    redis.call('SET', ARGV[at], value, 'KEEPTTL')
  else
    redis.call('SET', ARGV[at], value, 'EXAT', ARGV[at + 1])
  end
end
i = bucket_at + 3 * nbuckets
local nindex = tonumber(ARGV[i])
i = i + 1
local indexes = {}
for x = 1, nindex do
  redis.call('ZADD', ARGV[i], 'GT', ARGV[i + 2], ARGV[i + 1])
  indexes[ARGV[i]] = true
  i = i + 3
end
for index in pairs(indexes) do
  redis.call('ZREMRANGEBYSCORE', index, '-inf', index_horizon)
end
return {1, {}}
"#;

/// The 16 counters in `Aggregate::counters` order, as stored.
pub fn pack(aggregate: &Aggregate) -> Vec<u8> {
    let mut out = Vec::with_capacity(COUNTERS * 8);
    for counter in aggregate.counters() {
        out.extend_from_slice(&counter.to_le_bytes());
    }
    out
}

/// Inverse of [`pack`]; anything but 128 bytes reads as empty.
pub fn unpack(bytes: &[u8]) -> Aggregate {
    if bytes.len() != COUNTERS * 8 {
        return Aggregate::default();
    }
    let mut counters = [0i64; COUNTERS];
    for (counter, chunk) in counters.iter_mut().zip(bytes.chunks_exact(8)) {
        *counter = i64::from_le_bytes(chunk.try_into().expect("8 bytes"));
    }
    Aggregate::from_counters(counters)
}

/// A batch's script call, built ahead by [`WindowStore::prepare`].
pub struct PreparedApply {
    counted_before: Vec<bool>,
    call: redis::Cmd,
    /// Batch position of each interaction id the call sends, in order.
    sent: Vec<usize>,
    now_s: i64,
}

/// What the script reports per interaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// False when the interaction had been counted before (a redelivery).
    pub counted: bool,
    /// The customer's contacts within the repeat window up to this one, itself included.
    pub contacts_in_window: u32,
}

/// One bucket of one window of one dimension key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BucketRef<'a> {
    pub dimension: Dimension,
    pub key: &'a str,
    pub window: Window,
    pub bucket: i64,
}

/// A batch's deltas per bucket (with the bucket's expiry) and the latest
/// event time per dimension key.
#[derive(Debug, Default)]
pub struct PreAggregated<'a> {
    pub buckets: FastMap<BucketRef<'a>, (i64, Aggregate)>,
    pub latest: FastMap<(Dimension, &'a str), i64>,
}

/// The hot path hashes ~20 bucket ids per event: a fast non-cryptographic
/// hasher (keys are our own, not attacker-chosen at this point).
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Sums the contributions of the events not counted before into their
/// buckets, leaving out buckets already past their expiry at `now_s`. Keys are
/// borrowed: strings are built once per distinct bucket, not per event.
pub fn pre_aggregate<'a>(
    batch: &'a [WindowEvent],
    counted_before: &[bool],
    now_s: i64,
) -> PreAggregated<'a> {
    let mut out = PreAggregated::default();
    for (event, before) in batch.iter().zip(counted_before) {
        let [agent, team, queue, channel] = event.dimension_keys();
        let keys = [agent, team, queue, channel, Dimension::GLOBAL_KEY];
        for (dimension, key) in DIMENSIONS.into_iter().zip(keys) {
            if key.is_empty() {
                continue;
            }
            let t = out
                .latest
                .entry((dimension, key))
                .or_insert(event.occurred_at_s);
            *t = (*t).max(event.occurred_at_s);
            if *before {
                continue;
            }
            for window in Window::ALL {
                let bucket = window.bucket_of(event.occurred_at_s);
                let expires = window.expires_at_s(bucket);
                if expires <= now_s {
                    continue;
                }
                out.buckets
                    .entry(BucketRef {
                        dimension,
                        key,
                        window,
                        bucket,
                    })
                    .or_insert_with(|| (expires, Aggregate::default()))
                    .1
                    .add(&event.contribution);
            }
        }
    }
    out
}

/// FNV-1a: a stable hash, the same in every process and replica.
fn fnv1a(text: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// An interaction's mark hash: its event day and a stable shard (FNV-1a,
/// the same in every process and replica).
fn mark_of(interaction_id: &str, occurred_at_s: i64) -> (i64, u64) {
    (
        occurred_at_s.div_euclid(86_400),
        fnv1a(interaction_id) % MARK_SHARDS,
    )
}

#[derive(Clone)]
pub struct WindowStore {
    redis: RedisPool,
    prefix: String,
    script: redis::Script,
}

const DIMENSIONS: [Dimension; 5] = [
    Dimension::Agent,
    Dimension::Team,
    Dimension::Queue,
    Dimension::Channel,
    Dimension::Global,
];

impl WindowStore {
    pub fn new(redis: RedisPool, prefix: &str) -> WindowStore {
        WindowStore {
            redis,
            prefix: prefix.to_string(),
            script: redis::Script::new(APPLY_BATCH),
        }
    }

    pub fn redis(&self) -> &RedisPool {
        &self.redis
    }

    /// Counts a batch once, atomically; `now_s` decides which buckets are
    /// already too old to keep.
    pub async fn apply(
        &self,
        batch: &[WindowEvent],
        now_s: i64,
    ) -> Result<Vec<Applied>, RedisError> {
        let mut prepared = self.prepare(batch, now_s);
        self.apply_prepared(batch, &mut prepared).await
    }

    /// The CPU half of [`apply`](Self::apply), which needs nothing from
    /// Redis: pre-aggregation and the script's arguments (an eighth of a
    /// 10 000-event batch's time), so it can run while the previous batch
    /// is applied.
    pub fn prepare(&self, batch: &[WindowEvent], now_s: i64) -> PreparedApply {
        // A repeat inside the batch counts as counted before: only its
        // first copy may add to the windows.
        let mut first_seen: std::collections::HashSet<&str, foldhash::fast::RandomState> =
            std::collections::HashSet::default();
        let counted_before: Vec<bool> = batch
            .iter()
            .map(|event| !first_seen.insert(event.interaction_id.as_str()))
            .collect();
        let (call, sent) = self.script_call(batch, &counted_before, now_s);
        PreparedApply {
            counted_before,
            call,
            sent,
            now_s,
        }
    }

    /// Applies what [`prepare`](Self::prepare) built for this `batch`. After
    /// an error it may be called again with the same `prepared`.
    pub async fn apply_prepared(
        &self,
        batch: &[WindowEvent],
        prepared: &mut PreparedApply,
    ) -> Result<Vec<Applied>, RedisError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        // Repeat contact goes out beside the first script call, on the
        // same multiplexed connection: one round trip less per batch. It is
        // advisory and idempotent, so it needs neither the script's outcome
        // nor a repeat when the script is called again.
        let mut conn = self.redis.get().await?;
        let mut contacts_conn = conn.clone();
        let (first_call, contacts) = tokio::join!(
            self.call_script::<(i64, redis::Value)>(&prepared.call, &mut conn),
            self.record_contacts(batch, &mut contacts_conn),
        );
        let contacts = contacts?;
        let mut reply = Some(first_call?);
        // Each round either writes, or learns which interactions another
        // attempt already counted; a concurrent replica can add to that set
        // at most once per record.
        loop {
            let (outcome, detail) = match reply.take() {
                Some(reply) => reply,
                None => self.call_script(&prepared.call, &mut conn).await?,
            };
            if outcome == 2 {
                // Nothing was written; an operator must look at that key.
                let reason: String = redis::from_redis_value(detail).unwrap_or_default();
                return Err(RedisError::from((
                    redis::ErrorKind::Client,
                    "window store refused the batch",
                    reason,
                )));
            }
            if outcome == 1 {
                return Ok(contacts
                    .into_iter()
                    .zip(&prepared.counted_before)
                    .map(|(contacts, before)| Applied {
                        counted: !before,
                        contacts_in_window: u32::try_from(contacts).unwrap_or(u32::MAX),
                    })
                    .collect());
            }
            let values: Vec<usize> = redis::from_redis_value(detail)?;
            for sent_index in values {
                prepared.counted_before[prepared.sent[sent_index - 1]] = true;
            }
            (prepared.call, prepared.sent) =
                self.script_call(batch, &prepared.counted_before, prepared.now_s);
        }
    }

    /// EVALSHA, loading the script first where Redis does not know it (a
    /// restart, SCRIPT FLUSH).
    async fn call_script<T: redis::FromRedisValue>(
        &self,
        call: &redis::Cmd,
        conn: &mut redis::aio::ConnectionManager,
    ) -> Result<T, RedisError> {
        match call.query_async(conn).await {
            Err(error)
                if error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
            {
                redis::cmd("SCRIPT")
                    .arg("LOAD")
                    .arg(APPLY_BATCH)
                    .exec_async(conn)
                    .await?;
                call.query_async(conn).await
            }
            answer => answer,
        }
    }

    /// Repeat contact, outside the script: it is advisory and idempotent (a
    /// customer's contacts are a zset of interaction ids), so plain
    /// pipelined commands do, at a fraction of the script's per-call cost.
    /// Answers each event's contacts within the repeat window up to it,
    /// itself included. A wrong-type key answers 1.
    async fn record_contacts(
        &self,
        batch: &[WindowEvent],
        conn: &mut redis::aio::ConnectionManager,
    ) -> Result<Vec<i64>, RedisError> {
        let mut contacts = Vec::with_capacity(batch.len());
        // A pipeline per 1000 events: the whole batch's (3–4 commands per
        // event, each its own `Cmd`) held 7 MB of a 10 000-event batch's
        // peak, for no fewer commands.
        for chunk in batch.chunks(CONTACTS_PER_PIPELINE) {
            contacts.extend(self.record_contacts_of(chunk, conn).await?);
        }
        Ok(contacts)
    }

    async fn record_contacts_of(
        &self,
        events: &[WindowEvent],
        conn: &mut redis::aio::ConnectionManager,
    ) -> Result<Vec<i64>, RedisError> {
        let mut pipe = redis::pipe();
        for event in events {
            let key = format!("{}:scoring:contacts:{}", self.prefix, event.customer_id);
            let t = event.occurred_at_s;
            pipe.cmd("ZADD")
                .arg(&key)
                .arg(t)
                .arg(&event.interaction_id)
                .ignore();
            pipe.cmd("ZCOUNT")
                .arg(&key)
                .arg(t - REPEAT_CONTACT_S)
                .arg(t);
            pipe.cmd("EXPIRE").arg(&key).arg(MARK_TTL_S).ignore();
            // Old contacts only cost memory (ZCOUNT looks at the window):
            // trimming one event in eight bounds a long-lived customer's zset.
            if fnv1a(&event.interaction_id).is_multiple_of(8) {
                pipe.cmd("ZREMRANGEBYSCORE")
                    .arg(&key)
                    .arg("-inf")
                    .arg(t - MARK_TTL_S)
                    .ignore();
            }
        }
        let replies: Vec<redis::Value> = pipe.query_async(conn).await.or_else(|error| {
            // A contacts key of another type fails the whole pipeline reply
            // decoding; the figure is advisory, the counts are already in.
            if error.code() == Some("WRONGTYPE") {
                Ok(vec![redis::Value::Int(1); events.len()])
            } else {
                Err(error)
            }
        })?;
        Ok(replies
            .into_iter()
            .map(|reply| redis::from_redis_value::<i64>(reply).unwrap_or(1))
            .collect())
    }

    /// Builds the script call (EVALSHA, no keys): the marks to check and set
    /// for the events not counted before, grouped by mark hash, their
    /// pre-aggregated bucket deltas, and the ranking index updates. Also
    /// answers the batch position of each interaction id sent.
    fn script_call(
        &self,
        batch: &[WindowEvent],
        counted_before: &[bool],
        now_s: i64,
    ) -> (redis::Cmd, Vec<usize>) {
        let PreAggregated { buckets, latest } = pre_aggregate(batch, counted_before, now_s);
        // Grouped by (event day, shard): the key string is built once per
        // mark hash, not per event.
        let mut groups: FastMap<(i64, u64), Vec<usize>> = FastMap::default();
        for (position, (event, before)) in batch.iter().zip(counted_before).enumerate() {
            if !*before {
                groups
                    .entry(mark_of(&event.interaction_id, event.occurred_at_s))
                    .or_default()
                    .push(position);
            }
        }
        let mut call = redis::cmd("EVALSHA");
        call.arg(self.script.get_hash())
            .arg(0)
            .arg(now_s - MARK_TTL_S)
            .arg(groups.len());
        let mut sent = Vec::with_capacity(batch.len());
        for (&(day, shard), positions) in &groups {
            // The hash's day ends, then marks outlive the 7-day lateness limit.
            let expire_at = (day + 1) * 86_400 + MARK_TTL_S;
            call.arg(self.mark_key(day, shard))
                .arg(expire_at)
                .arg(positions.len());
            for &position in positions {
                call.arg(&batch[position].interaction_id).arg("1");
            }
            sent.extend_from_slice(positions);
        }
        call.arg(buckets.len());
        for (bucket, (expires, aggregate)) in &buckets {
            call.arg(self.bucket_key(bucket.window, bucket.dimension, bucket.key, bucket.bucket))
                .arg(*expires)
                .arg(pack(aggregate));
        }
        call.arg(latest.len());
        for ((dimension, key), t) in &latest {
            call.arg(format!(
                "{}:scoring:keys:{}",
                self.prefix,
                dimension.as_str()
            ))
            .arg(*key)
            .arg(*t);
        }
        (call, sent)
    }

    /// The mark hash of an event day and shard (see [`mark_of`]).
    fn mark_key(&self, day: i64, shard: u64) -> String {
        format!("{}:scoring:seen:{day}:{shard}", self.prefix)
    }

    fn bucket_key(&self, window: Window, dimension: Dimension, key: &str, bucket: i64) -> String {
        format!(
            "{}:win:{}:{}:{}:{}",
            self.prefix,
            window.as_str(),
            dimension.as_str(),
            key,
            bucket
        )
    }

    /// The sum of the 60 buckets of `window` ending at `now_s`: one MGET.
    pub async fn aggregate(
        &self,
        dimension: Dimension,
        key: &str,
        window: Window,
        now_s: i64,
    ) -> Result<Aggregate, RedisError> {
        let keys: Vec<String> = window
            .query_buckets(now_s)
            .map(|bucket| self.bucket_key(window, dimension, key, bucket))
            .collect();
        let mut conn = self.redis.get().await?;
        let values: Vec<Option<Vec<u8>>> =
            redis::cmd("MGET").arg(&keys).query_async(&mut conn).await?;
        Ok(values.iter().flatten().map(|bytes| unpack(bytes)).sum())
    }

    pub async fn metrics(
        &self,
        dimension: Dimension,
        key: &str,
        window: Window,
        now_s: i64,
    ) -> Result<Metrics, RedisError> {
        Ok(Metrics::from_aggregate(
            &self.aggregate(dimension, key, window, now_s).await?,
        ))
    }

    /// Keys of a dimension with an event inside the window.
    pub async fn active_keys(
        &self,
        dimension: Dimension,
        window: Window,
        now_s: i64,
    ) -> Result<Vec<String>, RedisError> {
        let mut conn = self.redis.get().await?;
        redis::cmd("ZRANGEBYSCORE")
            .arg(format!(
                "{}:scoring:keys:{}",
                self.prefix,
                dimension.as_str()
            ))
            .arg(now_s - window.length_s())
            .arg("+inf")
            .query_async(&mut conn)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cx_windows::Contribution;

    #[test]
    fn packing_round_trips_every_counter() {
        let mut aggregate = Aggregate::default();
        for n in 0..10u8 {
            aggregate.add(&Contribution {
                nps: Some(n),
                csat: Some(n % 5 + 1),
                ces: Some(n % 7 + 1),
                sentiment: Some(-0.5 + f64::from(n) / 10.0),
                transfers: Some(u32::from(n)),
                resolved: Some(n % 2 == 0),
            });
        }
        let packed = pack(&aggregate);
        assert_eq!(packed.len(), 128);
        assert_eq!(unpack(&packed), aggregate);
        assert_eq!(unpack(b"short"), Aggregate::default());
    }
}

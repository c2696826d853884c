//! Rolling windows in Redis, exact under redelivery, crashes and rebalances.
//!
//! One Lua script per batch. For each interaction it sets a mark
//! `{p}:scoring:seen:{interaction_id}` with `SET NX`; only when the mark is
//! new are the interaction's counters added. Marks and counters change in
//! the same atomic script, so a crash at any instruction of the service
//! leaves either both or neither, and a redelivered record adds nothing.
//! Within the script the batch is pre-aggregated: one `HINCRBY` per
//! (bucket hash, field) and one `EXPIREAT` per bucket hash, whatever the
//! number of interactions.
//!
//! Key layout (`{p}` = the configured key prefix, default `cx`):
//! | key | type | content | expires |
//! |---|---|---|---|
//! | `{p}:w:{window}:{dimension}:{key}:{bucket}` | hash | `cx_windows::Aggregate` fields (n, nr, pr, …) | bucket start + window + 2 buckets |
//! | `{p}:scoring:seen:{interaction_id}` | string | `1` | 8 days (past the 7-day lateness limit) |
//! | `{p}:scoring:contacts:{customer_id}` | zset | interaction_id → occurred_at | 8 days after the last contact |
//! | `{p}:scoring:keys:{dimension}` | zset | key → latest event time (for ranking) | trimmed to 8 days |

use cx_runtime::RedisPool;
use cx_windows::{Aggregate, Dimension, Metrics, Window};
use redis::RedisError;

use crate::score::Scored;

/// Repeat contact: the same customer again within this many seconds.
pub const REPEAT_CONTACT_S: i64 = 7 * 86_400;
/// Marks and indexes outlive the largest window plus the lateness limit.
pub const MARK_TTL_S: i64 = 8 * 86_400;

const APPLY_BATCH: &str = r#"
local prefix = ARGV[1]
local mark_ttl = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local repeat_s = tonumber(ARGV[4])
local nwin = tonumber(ARGV[5])
local i = 6
local windows = {}
for w = 1, nwin do
  windows[w] = {ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])}
  i = i + 3
end
local nitems = tonumber(ARGV[i])
i = i + 1
local dim_names = {'agent', 'team', 'queue', 'channel', 'global'}
local incr, expire_at, order = {}, {}, {}
local result = {}
local latest = {}
local customers = {}
for n = 1, nitems do
  local id, customer, t = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local dim_keys = {ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6], 'all'}
  local nf = tonumber(ARGV[i + 7])
  local fstart = i + 8
  i = fstart + 2 * nf
  local fresh = redis.call('SET', prefix .. ':scoring:seen:' .. id, '1', 'NX', 'EX', mark_ttl)
  local contacts_key = prefix .. ':scoring:contacts:' .. customer
  if fresh then
    redis.call('ZADD', contacts_key, t, id)
    for d = 1, 5 do
      local key = dim_keys[d]
      if key ~= '' then
        local index = prefix .. ':scoring:keys:' .. dim_names[d]
        if not latest[index] then latest[index] = {} end
        if (latest[index][key] or -1) < t then latest[index][key] = t end
        for _, w in ipairs(windows) do
          local bucket = math.floor(t / w[2])
          local expires = bucket * w[2] + w[3]
          if expires > now then
            local hash = prefix .. ':w:' .. w[1] .. ':' .. dim_names[d] .. ':' .. key .. ':' .. bucket
            local fields = incr[hash]
            if not fields then
              fields = {}
              incr[hash] = fields
              expire_at[hash] = expires
              order[#order + 1] = hash
            end
            for f = 0, nf - 1 do
              local name = ARGV[fstart + 2 * f]
              fields[name] = (fields[name] or 0) + tonumber(ARGV[fstart + 2 * f + 1])
            end
          end
        end
      end
    end
  end
  customers[contacts_key] = true
  result[n] = {fresh and 1 or 0, redis.call('ZCOUNT', contacts_key, t - repeat_s, t)}
end
for contacts_key in pairs(customers) do
  redis.call('ZREMRANGEBYSCORE', contacts_key, '-inf', now - mark_ttl)
  redis.call('EXPIRE', contacts_key, mark_ttl)
end
for _, hash in ipairs(order) do
  for name, value in pairs(incr[hash]) do
    redis.call('HINCRBY', hash, name, value)
  end
  redis.call('EXPIREAT', hash, expire_at[hash])
end
for index, keys in pairs(latest) do
  for key, t in pairs(keys) do
    redis.call('ZADD', index, 'GT', t, key)
  end
  redis.call('ZREMRANGEBYSCORE', index, '-inf', now - mark_ttl)
end
return result
"#;

/// What the script reports per interaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// False when the interaction had been counted before (a redelivery).
    pub counted: bool,
    /// The customer's contacts within the repeat window up to this one, itself included.
    pub contacts_in_window: u32,
}

#[derive(Clone)]
pub struct WindowStore {
    redis: RedisPool,
    prefix: String,
    script: redis::Script,
}

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
    pub async fn apply(&self, batch: &[Scored], now_s: i64) -> Result<Vec<Applied>, RedisError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = self.script.prepare_invoke();
        invocation
            .arg(&self.prefix)
            .arg(MARK_TTL_S)
            .arg(now_s)
            .arg(REPEAT_CONTACT_S)
            .arg(Window::ALL.len());
        for window in Window::ALL {
            invocation
                .arg(window.as_str())
                .arg(window.bucket_s())
                .arg(window.retention_s());
        }
        invocation.arg(batch.len());
        for scored in batch {
            let interaction = scored.interaction();
            let aggregate = Aggregate::of(&scored.contribution);
            let fields: Vec<(&'static str, i64)> = aggregate.fields().collect();
            invocation
                .arg(&interaction.interaction_id)
                .arg(&interaction.customer_id)
                .arg(scored.occurred_at_s);
            for key in &scored.dimension_keys {
                invocation.arg(key);
            }
            invocation.arg(fields.len());
            for (name, value) in fields {
                invocation.arg(name).arg(value);
            }
        }
        let mut conn = self.redis.get().await?;
        let raw: Vec<(i64, i64)> = invocation.invoke_async(&mut conn).await?;
        Ok(raw
            .into_iter()
            .map(|(fresh, contacts)| Applied {
                counted: fresh == 1,
                contacts_in_window: u32::try_from(contacts).unwrap_or(u32::MAX),
            })
            .collect())
    }

    fn bucket_key(&self, window: Window, dimension: Dimension, key: &str, bucket: i64) -> String {
        format!(
            "{}:w:{}:{}:{}:{}",
            self.prefix,
            window.as_str(),
            dimension.as_str(),
            key,
            bucket
        )
    }

    /// The sum of the 60 buckets of `window` ending at `now_s`: one pipeline.
    pub async fn aggregate(
        &self,
        dimension: Dimension,
        key: &str,
        window: Window,
        now_s: i64,
    ) -> Result<Aggregate, RedisError> {
        let mut pipe = redis::pipe();
        for bucket in window.query_buckets(now_s) {
            pipe.cmd("HGETALL")
                .arg(self.bucket_key(window, dimension, key, bucket));
        }
        let mut conn = self.redis.get().await?;
        let hashes: Vec<Vec<(String, i64)>> = pipe.query_async(&mut conn).await?;
        Ok(hashes
            .iter()
            .map(|fields| Aggregate::from_fields(fields.iter().map(|(k, v)| (k.as_str(), *v))))
            .sum())
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

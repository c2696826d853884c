//! Alerts in Redis: the one place that decides whether a candidate becomes
//! an alert, is suppressed by a cooldown, or was already handled.
//!
//! Key layout (`{p}` is the configured key prefix):
//! - `{p}:alerting:alert:{alert_id}` hash: `json` (the alert as raised),
//!   `suppressed`, `sid` (its outbox stream id), `ack_by`, `ack_at`; expires
//!   after the retention.
//! - `{p}:alerting:index` zset: created_at (ms) → alert_id, for listing.
//! - `{p}:alerting:cooldown:{rule}:{subject}`: the last alert id, expiring
//!   with the cooldown; shared by every replica.
//! - `{p}:alerting:suppressed:{rule}:{subject}`: candidates suppressed since
//!   the last alert, reported on the next one.
//! - `{p}:alerting:seen:{alert_id}`: a suppressed candidate, so a redelivery
//!   does not count it twice.
//! - `{p}:alerting:outbox` stream: every new alert id, in order. The relay
//!   publishes it to Kafka from `{p}:alerting:outbox:cursor`; WatchAlerts
//!   reads it. Created in the same script as the alert, so an alert is never
//!   stored without being published eventually (transactional outbox).

use cx_rules::{Alert, Candidate};
use redis::aio::ConnectionManager;
use redis::RedisError;
use time::OffsetDateTime;

use cx_runtime::paging::{self, PageToken};
use cx_runtime::RedisPool;

/// How long a suppressed candidate's mark lives: longer than any redelivery.
const SEEN_TTL_S: u64 = 8 * 86_400;

const RAISE: &str = r#"
local p = ARGV[1]
local now_ms = tonumber(ARGV[2])
local seen_ttl = ARGV[3]
local retention_ms = tonumber(ARGV[4])
local out = {}
for i = 5, #ARGV, 5 do
  local id, rule, subject, cooldown_ms, json = ARGV[i], ARGV[i+1], ARGV[i+2], tonumber(ARGV[i+3]), ARGV[i+4]
  local akey = p .. ':alerting:alert:' .. id
  local seen = p .. ':alerting:seen:' .. id
  local cool = p .. ':alerting:cooldown:' .. rule .. ':' .. subject
  local supp = p .. ':alerting:suppressed:' .. rule .. ':' .. subject
  if redis.call('EXISTS', akey) == 1 then
    out[#out + 1] = 'exists'
  elseif redis.call('EXISTS', seen) == 1 then
    out[#out + 1] = 'seen'
  elseif redis.call('EXISTS', cool) == 1 then
    redis.call('INCR', supp)
    redis.call('PEXPIRE', supp, retention_ms)
    redis.call('SET', seen, '1', 'EX', seen_ttl)
    out[#out + 1] = 'suppressed'
  else
    local n = tonumber(redis.call('GET', supp) or '0')
    redis.call('DEL', supp)
    local sid = redis.call('XADD', p .. ':alerting:outbox', '*', 'alert_id', id)
    redis.call('HSET', akey, 'json', json, 'suppressed', n, 'sid', sid)
    redis.call('PEXPIRE', akey, retention_ms)
    redis.call('ZADD', p .. ':alerting:index', now_ms, id)
    if cooldown_ms > 0 then
      redis.call('SET', cool, id, 'PX', cooldown_ms)
    end
    out[#out + 1] = 'created:' .. n
  end
end
redis.call('ZREMRANGEBYSCORE', p .. ':alerting:index', '-inf', now_ms - retention_ms)
return out
"#;

const ACKNOWLEDGE: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HEXISTS', KEYS[1], 'ack_by') == 1 then return 1 end
redis.call('HSET', KEYS[1], 'ack_by', ARGV[1], 'ack_at', ARGV[2])
return 2
"#;

/// What happened to a candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Raised {
    /// A new alert, reporting what its cooldown suppressed before it.
    Created { suppressed: u64 },
    /// The same alert_id was raised before (a redelivery).
    Exists,
    /// Inside the cooldown of its (rule, subject): counted, not alerted.
    Suppressed,
    /// This suppressed candidate was counted before (a redelivery).
    Seen,
}

/// Filters of ListAlerts.
#[derive(Debug, Default, Clone)]
pub struct AlertFilter {
    pub since_ms: Option<i64>,
    pub severity: Option<String>,
    pub dimension: Option<String>,
    pub key: Option<String>,
    pub acknowledged: Option<bool>,
}

impl AlertFilter {
    pub fn matches(&self, alert: &Alert) -> bool {
        self.severity
            .as_deref()
            .is_none_or(|s| alert.severity.as_str() == s)
            && self
                .dimension
                .as_deref()
                .is_none_or(|d| alert.dimension == d)
            && self.key.as_deref().is_none_or(|k| alert.key == k)
            && self.acknowledged.is_none_or(|a| alert.acknowledged == a)
    }
}

#[derive(Clone)]
pub struct AlertStore {
    redis: RedisPool,
    prefix: String,
    retention_ms: i64,
    raise: redis::Script,
    acknowledge: redis::Script,
}

impl AlertStore {
    pub fn new(redis: RedisPool, prefix: &str, retention_days: u32) -> AlertStore {
        AlertStore {
            redis,
            prefix: prefix.to_string(),
            retention_ms: i64::from(retention_days) * 86_400_000,
            raise: redis::Script::new(RAISE),
            acknowledge: redis::Script::new(ACKNOWLEDGE),
        }
    }

    pub fn redis(&self) -> &RedisPool {
        &self.redis
    }

    pub fn outbox_key(&self) -> String {
        format!("{}:alerting:outbox", self.prefix)
    }

    pub fn cursor_key(&self) -> String {
        format!("{}:alerting:outbox:cursor", self.prefix)
    }

    fn alert_key(&self, alert_id: &str) -> String {
        format!("{}:alerting:alert:{alert_id}", self.prefix)
    }

    fn index_key(&self) -> String {
        format!("{}:alerting:index", self.prefix)
    }

    async fn conn(&self) -> Result<ConnectionManager, RedisError> {
        self.redis.get().await
    }

    /// Decides every candidate in one atomic script, in order: two
    /// candidates of the same (rule, subject) in one batch make one alert.
    pub async fn raise(
        &self,
        candidates: &[Candidate],
        now: OffsetDateTime,
    ) -> Result<Vec<Raised>, RedisError> {
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let now_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
        let mut invocation = self.raise.prepare_invoke();
        invocation
            .arg(&self.prefix)
            .arg(now_ms)
            .arg(SEEN_TTL_S)
            .arg(self.retention_ms);
        for candidate in candidates {
            let alert = Alert::from_candidate(candidate, now, 0);
            let json = serde_json::to_string(&alert).expect("alerts serialize");
            invocation
                .arg(&candidate.alert_id)
                .arg(&*candidate.rule)
                .arg(&candidate.scope.subject)
                .arg(candidate.cooldown_s.saturating_mul(1000))
                .arg(json);
        }
        let mut conn = self.conn().await?;
        let results: Vec<String> = invocation.invoke_async(&mut conn).await?;
        Ok(results
            .iter()
            .map(|r| match r.as_str() {
                "exists" => Raised::Exists,
                "seen" => Raised::Seen,
                "suppressed" => Raised::Suppressed,
                created => Raised::Created {
                    suppressed: created
                        .strip_prefix("created:")
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0),
                },
            })
            .collect())
    }

    /// The alert with its suppressed count and acknowledgement, and its
    /// outbox stream id.
    pub async fn get(&self, alert_id: &str) -> Result<Option<(Alert, String)>, RedisError> {
        let mut conn = self.conn().await?;
        let fields: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(self.alert_key(alert_id))
            .arg(&["json", "suppressed", "sid", "ack_by", "ack_at"])
            .query_async(&mut conn)
            .await?;
        Ok(assemble(&fields))
    }

    /// Many alerts in one round trip, in the order asked; missing ones
    /// (expired) are left out.
    pub async fn get_many(&self, alert_ids: &[String]) -> Result<Vec<(Alert, String)>, RedisError> {
        let rows = self.alert_fields(alert_ids).await?;
        Ok(rows.iter().filter_map(|fields| assemble(fields)).collect())
    }

    /// Acknowledges once: a second acknowledgement keeps the first.
    /// `None` when there is no such alert.
    pub async fn acknowledge(
        &self,
        alert_id: &str,
        by: &str,
        at: OffsetDateTime,
    ) -> Result<Option<Alert>, RedisError> {
        let at = at
            .format(&time::format_description::well_known::Rfc3339)
            .expect("timestamps format");
        let mut conn = self.conn().await?;
        let found: i64 = self
            .acknowledge
            .key(self.alert_key(alert_id))
            .arg(by)
            .arg(at)
            .invoke_async(&mut conn)
            .await?;
        if found == 0 {
            return Ok(None);
        }
        Ok(self.get(alert_id).await?.map(|(alert, _)| alert))
    }

    /// A page of alerts, newest first, matching `filter`.
    pub async fn list(
        &self,
        filter: &AlertFilter,
        after: Option<&PageToken>,
        page_size: usize,
    ) -> Result<(Vec<Alert>, Option<PageToken>), RedisError> {
        let mut conn = self.conn().await?;
        paging::newest_first(
            &mut conn,
            &self.index_key(),
            filter.since_ms,
            after,
            page_size,
            |ids| async move { self.get_each(&ids).await },
            |alert| filter.matches(alert),
        )
        .await
    }

    /// Alerts by id, in order; `None` for one past retention.
    async fn get_each(&self, alert_ids: &[String]) -> Result<Vec<Option<Alert>>, RedisError> {
        let rows = self.alert_fields(alert_ids).await?;
        Ok(rows
            .iter()
            .map(|fields| assemble(fields).map(|(alert, _)| alert))
            .collect())
    }

    /// The [`assemble`] fields of each alert, in one round trip.
    async fn alert_fields(
        &self,
        alert_ids: &[String],
    ) -> Result<Vec<Vec<Option<String>>>, RedisError> {
        if alert_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in alert_ids {
            pipe.cmd("HMGET").arg(self.alert_key(id)).arg(&[
                "json",
                "suppressed",
                "sid",
                "ack_by",
                "ack_at",
            ]);
        }
        let mut conn = self.conn().await?;
        pipe.query_async(&mut conn).await
    }
}

fn assemble(fields: &[Option<String>]) -> Option<(Alert, String)> {
    let [Some(json), suppressed, sid, ack_by, ack_at] = fields else {
        return None;
    };
    let mut alert: Alert = match serde_json::from_str(json) {
        Ok(alert) => alert,
        Err(error) => {
            tracing::error!(%error, "stored alert does not decode");
            return None;
        }
    };
    alert.suppressed_count = suppressed
        .as_deref()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    if let Some(by) = ack_by {
        alert.acknowledged = true;
        alert.acknowledged_by = Some(by.clone());
        alert.acknowledged_at = ack_at.as_deref().and_then(|at| {
            OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).ok()
        });
    }
    Some((alert, sid.clone().unwrap_or_default()))
}

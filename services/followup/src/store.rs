//! Tasks in Redis: every change is one compare-and-set script that writes
//! the task, its indexes, the loop counters and the outbox entry together.
//!
//! Key layout (`{p}` is the configured key prefix):
//! - `{p}:followup:task:{task_id}` string: the task JSON
//!   ([`cx_tasks::Task::to_json`]); closed tasks expire after the retention.
//! - `{p}:followup:open:{customer_id}`: task_id of the customer's task that
//!   takes alerts ([`cx_tasks::TaskState::takes_alerts`]); claimed when a
//!   task opens (only if it still names what the opener read), released
//!   when that task is resolved or closed. This is what makes "at most one
//!   open task per customer" hold across replicas.
//! - `{p}:followup:awaiting:{customer_id}` zset: resolved_at (ms) →
//!   task_id, for the customer's resolved tasks without an outcome: the
//!   next survey decides each of them (not only the newest task: a
//!   customer may have a new task open before that survey comes).
//!   Emptied as outcomes are set; a member whose task expired is dropped
//!   when a survey finds it gone.
//! - `{p}:followup:surveys:{customer_id}` zset: occurred_at (ms) → the
//!   last [`KEPT_SURVEYS`] surveys of a customer with a task, for
//!   [`KEPT_SURVEY_TTL_MS`]: a resolution read after them
//!   (an update that waited in a backlog, or read by its consumer group
//!   after the survey was by another) takes the first one after it.
//! - `{p}:followup:latest:{customer_id}`: written by versions before the
//!   awaiting set (the customer's newest task); no longer written, still
//!   read by the survey path so their resolved tasks get an outcome.
//! - `{p}:followup:alert:{alert_id}`: task_id the alert opened or was
//!   attached to, for [`ALERT_MARK_TTL_MS`]: a redelivered alert finds its
//!   task even after that task was resolved, so it cannot open another.
//! - `{p}:followup:due` zset: due_at (ms) → task_id, for tasks awaiting
//!   contact: the escalation timers. In Redis, so they survive restarts.
//! - `{p}:followup:index` zset: created_at (ms) → task_id, for ListTasks
//!   (newest first); filters are applied in Rust.
//! - `{p}:followup:stats:{team}` hash and `{p}:followup:teams` set: the loop
//!   counters per team, incremented by the same script as the change that
//!   causes them, so they are exact across replicas and redeliveries.
//! - `{p}:followup:outbox` stream: `task_id`, `version`, `json` of every
//!   change, in order, written by the same script as the task
//!   (transactional outbox). The relay publishes it to cx.followups.v1 from
//!   `{p}:followup:outbox:cursor`; WatchTasks tails it. Relayed entries are
//!   trimmed after the watch retention.
//!
//! Sizing: a task's JSON is about 1 KB (more with many attached alerts), so
//! a million open tasks hold about 1 GB of task strings, plus about 100 MB
//! for the two zsets and the customer pointers (~50 B per member/key plus
//! Redis overhead). Alert marks add ~100 B per alert of the last 8 days,
//! kept surveys up to 16 × ~60 B per customer with a task surveyed in the
//! last 8 days (not measured). ListTasks with filters scans the index newest first, so
//! a filter that matches few of many tasks reads many of them: a secondary
//! index (by owner, by state) is the next step if that becomes the norm.

use cx_tasks::{Survey, Task, TaskState};
use redis::aio::ConnectionManager;
use redis::RedisError;
use time::OffsetDateTime;

use cx_runtime::paging::{self, PageToken};
use cx_runtime::RedisPool;

/// Compare-and-set of one task, with everything that must change with it.
/// Returns `{1, new_version}` when written, `{0, stored_version}` when the
/// stored version is not the expected one, `{-1, stored_version}` when the
/// customer's open-task pointer no longer names what the caller read.
const PUT: &str = r#"
local p = ARGV[1]
local id = ARGV[2]
local expected = tonumber(ARGV[3])
local version = ARGV[4]
local json = ARGV[5]
local customer = ARGV[6]
local pointer = ARGV[7]
local pointer_expected = ARGV[8]
local due = ARGV[9]
local due_ms = ARGV[10]
local created_ms = ARGV[11]
local team = ARGV[12]
local expire_ms = tonumber(ARGV[13])
local alert_id = ARGV[14]
local alert_ttl_ms = ARGV[15]
local awaiting = ARGV[16]
local resolved_ms = ARGV[17]
local tkey = p .. ':followup:task:' .. id
local stored = redis.call('GET', tkey)
local current = 0
if stored then current = tonumber(cjson.decode(stored)['version']) end
if current ~= expected then return {0, current} end
local okey = p .. ':followup:open:' .. customer
if pointer == 'claim' then
  local holder = redis.call('GET', okey)
  if (holder or '') ~= pointer_expected then return {-1, current} end
  redis.call('SET', okey, id)
elseif pointer == 'release' then
  if redis.call('GET', okey) == id then redis.call('DEL', okey) end
end
if expire_ms > 0 then
  redis.call('SET', tkey, json, 'PX', expire_ms)
else
  redis.call('SET', tkey, json)
end
if due == 'add' then
  redis.call('ZADD', p .. ':followup:due', due_ms, id)
else
  redis.call('ZREM', p .. ':followup:due', id)
end
redis.call('ZADD', p .. ':followup:index', created_ms, id)
if alert_id ~= '' then
  redis.call('SET', p .. ':followup:alert:' .. alert_id, id, 'PX', alert_ttl_ms)
end
if awaiting == 'add' then
  redis.call('ZADD', p .. ':followup:awaiting:' .. customer, resolved_ms, id)
elseif awaiting == 'rem' then
  redis.call('ZREM', p .. ':followup:awaiting:' .. customer, id)
end
if #ARGV > 17 then
  local skey = p .. ':followup:stats:' .. team
  for i = 18, #ARGV, 2 do
    redis.call('HINCRBY', skey, ARGV[i], ARGV[i + 1])
  end
  redis.call('SADD', p .. ':followup:teams', team)
end
redis.call('XADD', p .. ':followup:outbox', '*', 'task_id', id, 'version', version, 'json', json)
return {1, tonumber(version)}
"#;

/// Drops a task from the timers if it is still at `version` (overdue at the
/// top of its escalation chain, or no longer awaiting contact).
const UNSCHEDULE: &str = r#"
local stored = redis.call('GET', KEYS[1])
if stored and tonumber(cjson.decode(stored)['version']) ~= tonumber(ARGV[2]) then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
"#;

/// How long an alert's mark (the task it went to) is kept: past Kafka's
/// default 7-day retention, so any redelivery of the alert finds it.
pub const ALERT_MARK_TTL_MS: u64 = 8 * 86_400_000;

/// Surveys kept per customer, newest by event time.
pub const KEPT_SURVEYS: isize = 16;
/// How long kept surveys stay after the last one: longer than any backlog
/// an update could wait in.
pub const KEPT_SURVEY_TTL_MS: u64 = 8 * 86_400_000;

/// A survey as kept in `{p}:followup:surveys:{customer_id}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeptSurvey {
    #[serde(rename = "i")]
    pub interaction_id: String,
    #[serde(rename = "n")]
    pub nps: Option<u8>,
    #[serde(rename = "c")]
    pub csat: Option<u8>,
    /// The zset score, not in the member.
    #[serde(skip)]
    pub occurred_at_ms: i64,
}

impl KeptSurvey {
    pub fn survey(&self) -> Survey<'_> {
        Survey {
            interaction_id: &self.interaction_id,
            occurred_at: OffsetDateTime::from_unix_timestamp_nanos(
                i128::from(self.occurred_at_ms) * 1_000_000,
            )
            .unwrap_or(OffsetDateTime::UNIX_EPOCH),
            nps: self.nps,
            csat: self.csat,
        }
    }
}

/// Whether the next survey decides this task's outcome: resolved (maybe
/// closed since) and no outcome yet.
fn awaits_outcome(task: &Task) -> bool {
    task.resolved_at.is_some()
        && task.outcome.is_none()
        && matches!(task.state, TaskState::Resolved | TaskState::Closed)
}

/// Team key of tasks without a team.
pub const NO_TEAM: &str = "_none";

/// What a change adds to its team's loop counters.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StatsDelta {
    pub opened: u64,
    pub contacted: u64,
    /// Milliseconds from created_at to first contact, for the mean.
    pub first_contact_ms: u64,
    /// Contacted before the first due time (no escalation yet).
    pub contacted_in_sla: u64,
    /// The first due time passed without contact: escalated from level 0,
    /// or contacted late before the timer got to it.
    pub sla_breached: u64,
    pub escalations: u64,
    pub recovered: u64,
    pub not_recovered: u64,
}

impl StatsDelta {
    /// The counters a change from `old` (None: the task is new) to `new`
    /// moves.
    pub fn between(old: Option<&Task>, new: &Task) -> StatsDelta {
        let mut delta = StatsDelta {
            opened: u64::from(old.is_none()),
            ..StatsDelta::default()
        };
        if let (None, Some(contact)) = (old.and_then(|t| t.first_contact_at), new.first_contact_at)
        {
            delta.contacted = 1;
            delta.first_contact_ms = (contact - new.created_at).whole_milliseconds().max(0) as u64;
            delta.contacted_in_sla = u64::from(new.escalation_level == 0 && contact <= new.due_at);
            delta.sla_breached = u64::from(new.escalation_level == 0 && contact > new.due_at);
        }
        let old_level = old.map_or(0, |t| t.escalation_level);
        delta.escalations = u64::from(new.escalation_level.saturating_sub(old_level));
        if old_level == 0 && new.escalation_level > 0 {
            delta.sla_breached = 1;
        }
        if old.and_then(|t| t.outcome).is_none() {
            match new.outcome {
                Some(cx_tasks::Outcome::Recovered) => delta.recovered = 1,
                Some(cx_tasks::Outcome::NotRecovered) => delta.not_recovered = 1,
                None => {}
            }
        }
        delta
    }

    fn fields(&self) -> Vec<(&'static str, u64)> {
        [
            ("opened", self.opened),
            ("contacted", self.contacted),
            ("first_contact_ms", self.first_contact_ms),
            ("contacted_in_sla", self.contacted_in_sla),
            ("sla_breached", self.sla_breached),
            ("escalations", self.escalations),
            ("recovered", self.recovered),
            ("not_recovered", self.not_recovered),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .collect()
    }
}

/// The loop counters of one team, as stored.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TeamStats {
    pub team: String,
    pub opened: u64,
    pub contacted: u64,
    pub first_contact_ms: u64,
    pub contacted_in_sla: u64,
    pub sla_breached: u64,
    pub escalations: u64,
    pub recovered: u64,
    pub not_recovered: u64,
}

impl TeamStats {
    pub fn add(&mut self, other: &TeamStats) {
        self.opened += other.opened;
        self.contacted += other.contacted;
        self.first_contact_ms += other.first_contact_ms;
        self.contacted_in_sla += other.contacted_in_sla;
        self.sla_breached += other.sla_breached;
        self.escalations += other.escalations;
        self.recovered += other.recovered;
        self.not_recovered += other.not_recovered;
    }

    /// The measures `/v1/stats` answers with.
    pub fn to_json(&self) -> serde_json::Value {
        let ratio =
            |part: u64, whole: u64| (whole > 0).then(|| (part as f64) * 100.0 / (whole as f64));
        let outcomes = self.recovered + self.not_recovered;
        serde_json::json!({
            "team": self.team,
            "tasks_opened": self.opened,
            "contacted": self.contacted,
            "mean_time_to_first_contact_s": (self.contacted > 0)
                .then(|| self.first_contact_ms as f64 / 1000.0 / self.contacted as f64),
            // Of the tasks whose first due time is decided: contacted in time,
            // or past it without contact (escalated, or contacted late).
            "sla_compliance_pct": ratio(
                self.contacted_in_sla,
                self.contacted_in_sla + self.sla_breached
            ),
            "escalations": self.escalations,
            "recovered": self.recovered,
            "not_recovered": self.not_recovered,
            "recovery_rate_pct": ratio(self.recovered, outcomes),
        })
    }
}

/// What happens to the customer's open-task pointer with a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pointer {
    Keep,
    /// A new task takes the pointer, which must still hold `expected`
    /// (None: no pointer).
    Claim {
        expected: Option<String>,
    },
    /// The task no longer takes alerts: drop the pointer if it names it.
    Release,
}

/// The outcome of [`TaskStore::put`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    Written,
    /// The stored version (0: no task) is not the expected one.
    StaleVersion {
        current: u64,
    },
    /// The customer's open-task pointer moved since it was read.
    PointerMoved,
}

/// Filters of ListTasks.
#[derive(Debug, Default, Clone)]
pub struct TaskFilter {
    pub state: Option<TaskState>,
    pub owner: Option<String>,
    pub customer_id: Option<String>,
    /// Overdue at this time.
    pub overdue_at: Option<OffsetDateTime>,
}

impl TaskFilter {
    pub fn matches(&self, task: &Task) -> bool {
        self.state.is_none_or(|s| task.state == s)
            && self.owner.as_deref().is_none_or(|o| task.owner == o)
            && self
                .customer_id
                .as_deref()
                .is_none_or(|c| task.customer_id == c)
            && self.overdue_at.is_none_or(|now| task.is_overdue(now))
    }
}

/// XREAD's answer: per stream, entries of (id, fields).
pub fn millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

#[derive(Clone)]
pub struct TaskStore {
    redis: RedisPool,
    prefix: String,
    /// How long a closed task stays; 0 keeps it.
    retention_ms: u64,
    put: redis::Script,
    unschedule: redis::Script,
    /// The teams the routing directory names: the only `team` label values
    /// of the Prometheus counters. Any other team (an interaction's own
    /// team_id, which any client with ingest:write chooses) is counted as
    /// `other`, so clients cannot add series without bound.
    metric_teams: std::sync::Arc<std::collections::BTreeSet<String>>,
}

/// The `team` label of a team the directory does not name.
pub const OTHER_TEAM: &str = "other";

impl TaskStore {
    pub fn new(redis: RedisPool, prefix: &str, retention_days: u32) -> TaskStore {
        TaskStore {
            redis,
            prefix: prefix.to_string(),
            retention_ms: u64::from(retention_days) * 86_400_000,
            put: redis::Script::new(PUT),
            unschedule: redis::Script::new(UNSCHEDULE),
            metric_teams: std::sync::Arc::default(),
        }
    }

    /// Labels the Prometheus counters with these teams (and `other`).
    pub fn with_metric_teams(mut self, teams: impl IntoIterator<Item = String>) -> TaskStore {
        self.metric_teams = std::sync::Arc::new(teams.into_iter().collect());
        self
    }

    /// Every `team` label value the counters take: the directory's teams,
    /// [`OTHER_TEAM`] and [`NO_TEAM`].
    pub fn metric_team_labels(&self) -> impl Iterator<Item = &str> {
        self.metric_teams
            .iter()
            .map(String::as_str)
            .chain([OTHER_TEAM, NO_TEAM])
    }

    /// The `team` label for `team`: itself when the directory names it (or
    /// no team), else [`OTHER_TEAM`].
    pub fn metric_team<'a>(&self, team: &'a str) -> &'a str {
        if team == NO_TEAM || self.metric_teams.contains(team) {
            team
        } else {
            OTHER_TEAM
        }
    }

    pub fn redis(&self) -> &RedisPool {
        &self.redis
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn outbox_key(&self) -> String {
        format!("{}:followup:outbox", self.prefix)
    }

    pub fn cursor_key(&self) -> String {
        format!("{}:followup:outbox:cursor", self.prefix)
    }

    fn task_key(&self, task_id: &str) -> String {
        format!("{}:followup:task:{task_id}", self.prefix)
    }

    fn open_key(&self, customer_id: &str) -> String {
        format!("{}:followup:open:{customer_id}", self.prefix)
    }

    /// The newest-task pointer versions before the awaiting set wrote (and
    /// never expired); read only, for their resolved tasks' outcomes.
    fn legacy_latest_key(&self, customer_id: &str) -> String {
        format!("{}:followup:latest:{customer_id}", self.prefix)
    }

    fn surveys_key(&self, customer_id: &str) -> String {
        format!("{}:followup:surveys:{customer_id}", self.prefix)
    }

    fn awaiting_key(&self, customer_id: &str) -> String {
        format!("{}:followup:awaiting:{customer_id}", self.prefix)
    }

    fn due_key(&self) -> String {
        format!("{}:followup:due", self.prefix)
    }

    fn index_key(&self) -> String {
        format!("{}:followup:index", self.prefix)
    }

    async fn conn(&self) -> Result<ConnectionManager, RedisError> {
        self.redis.get().await
    }

    /// Writes `new` if the stored version is `old`'s (or no task is stored
    /// when `old` is None), with its pointer, timer, index, counters, the
    /// customer's awaiting-outcome entry, the mark of `alert_id` (the alert
    /// that opened the task or was attached to it) and the outbox entry.
    pub async fn put(
        &self,
        old: Option<&Task>,
        new: &Task,
        pointer: Pointer,
        alert_id: Option<&str>,
    ) -> Result<(Put, StatsDelta), RedisError> {
        let json =
            String::from_utf8(new.to_json().map_err(json_error)?).expect("serde_json writes UTF-8");
        let expected = old.map_or(0, |t| t.version);
        let (pointer_action, pointer_expected) = match &pointer {
            Pointer::Keep => ("keep", String::new()),
            Pointer::Claim { expected } => ("claim", expected.clone().unwrap_or_default()),
            Pointer::Release => ("release", String::new()),
        };
        let due = if new.state.awaits_contact() {
            "add"
        } else {
            "rem"
        };
        let expire_ms = if new.state == TaskState::Closed {
            self.retention_ms
        } else {
            0
        };
        let awaiting = match (old.is_some_and(awaits_outcome), awaits_outcome(new)) {
            (false, true) => "add",
            (true, false) => "rem",
            _ => "keep",
        };
        let delta = StatsDelta::between(old, new);
        let team = new.team.as_deref().unwrap_or(NO_TEAM);
        let mut invocation = self.put.prepare_invoke();
        invocation
            .arg(&self.prefix)
            .arg(&new.task_id)
            .arg(expected)
            .arg(new.version)
            .arg(json)
            .arg(&new.customer_id)
            .arg(pointer_action)
            .arg(pointer_expected)
            .arg(due)
            .arg(millis(new.due_at))
            .arg(millis(new.created_at))
            .arg(team)
            .arg(expire_ms)
            .arg(alert_id.unwrap_or_default())
            .arg(ALERT_MARK_TTL_MS)
            .arg(awaiting)
            .arg(new.resolved_at.map_or(0, millis));
        for (field, n) in delta.fields() {
            invocation.arg(field).arg(n);
        }
        let mut conn = self.conn().await?;
        let (code, current): (i64, u64) = invocation.invoke_async(&mut conn).await?;
        let outcome = match code {
            1 => Put::Written,
            0 => Put::StaleVersion { current },
            _ => Put::PointerMoved,
        };
        if outcome == Put::Written {
            crate::telemetry::count_change(self.metric_team(team), &delta);
        }
        Ok((outcome, delta))
    }

    pub async fn get(&self, task_id: &str) -> Result<Option<Task>, RedisError> {
        let mut conn = self.conn().await?;
        let json: Option<Vec<u8>> = redis::cmd("GET")
            .arg(self.task_key(task_id))
            .query_async(&mut conn)
            .await?;
        Ok(json.and_then(|j| decode(&j)))
    }

    /// Many tasks in one round trip, in the order asked; `None` for missing
    /// (expired) ones.
    pub async fn get_many(&self, task_ids: &[String]) -> Result<Vec<Option<Task>>, RedisError> {
        if task_ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = task_ids.iter().map(|id| self.task_key(id)).collect();
        let mut conn = self.conn().await?;
        let values: Vec<Option<Vec<u8>>> =
            redis::cmd("MGET").arg(&keys).query_async(&mut conn).await?;
        Ok(values
            .into_iter()
            .map(|v| v.and_then(|j| decode(&j)))
            .collect())
    }

    /// The task id the customer's open-task pointer names.
    pub async fn open_task_of(&self, customer_id: &str) -> Result<Option<String>, RedisError> {
        let mut conn = self.conn().await?;
        redis::cmd("GET")
            .arg(self.open_key(customer_id))
            .query_async(&mut conn)
            .await
    }

    /// Drops `task_id` (expired) from the customer's awaiting-outcome set.
    pub async fn forget_awaiting(
        &self,
        customer_id: &str,
        task_id: &str,
    ) -> Result<(), RedisError> {
        let mut conn = self.conn().await?;
        redis::cmd("ZREM")
            .arg(self.awaiting_key(customer_id))
            .arg(task_id)
            .query_async(&mut conn)
            .await
    }

    /// Whether each of `customer_ids` has a task a survey matters to: one
    /// awaiting its outcome, or one still open (its resolution may be read
    /// after the survey). One pipelined round trip for a whole batch of
    /// surveys, most of whose customers have neither.
    pub async fn have_tasks(&self, customer_ids: &[&str]) -> Result<Vec<bool>, RedisError> {
        if customer_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for customer_id in customer_ids {
            pipe.cmd("EXISTS")
                .arg(self.awaiting_key(customer_id))
                .arg(self.open_key(customer_id))
                .arg(self.legacy_latest_key(customer_id));
        }
        let mut conn = self.conn().await?;
        let counts: Vec<u8> = pipe.query_async(&mut conn).await?;
        Ok(counts.into_iter().map(|n| n > 0).collect())
    }

    /// Keeps a survey of a customer with a task, for a resolution read
    /// later, then reads the customer's tasks it may decide: the resolved
    /// ones without an outcome (earliest resolved first) and the task the
    /// newest-task pointer of versions before the awaiting set names. One
    /// round trip; the survey is kept before the tasks are read.
    pub async fn keep_survey_then_awaiting(
        &self,
        customer_id: &str,
        survey: &Survey<'_>,
    ) -> Result<Vec<String>, RedisError> {
        let key = self.surveys_key(customer_id);
        let member = serde_json::to_string(&KeptSurvey {
            interaction_id: survey.interaction_id.to_string(),
            nps: survey.nps,
            csat: survey.csat,
            occurred_at_ms: 0,
        })
        .map_err(json_error)?;
        let mut conn = self.conn().await?;
        let (mut awaiting, legacy): (Vec<String>, Option<String>) = redis::pipe()
            .zadd(&key, member, millis(survey.occurred_at))
            .ignore()
            .zremrangebyrank(&key, 0, -(KEPT_SURVEYS + 1))
            .ignore()
            .pexpire(&key, KEPT_SURVEY_TTL_MS as i64)
            .ignore()
            .zrange(self.awaiting_key(customer_id), 0, -1)
            .get(self.legacy_latest_key(customer_id))
            .query_async(&mut conn)
            .await?;
        if let Some(task_id) = legacy.filter(|id| !awaiting.contains(id)) {
            awaiting.push(task_id);
        }
        Ok(awaiting)
    }

    /// The customer's kept surveys that happened after `after`, earliest
    /// first.
    pub async fn kept_surveys_after(
        &self,
        customer_id: &str,
        after: OffsetDateTime,
    ) -> Result<Vec<KeptSurvey>, RedisError> {
        let mut conn = self.conn().await?;
        let kept: Vec<(String, i64)> = redis::cmd("ZRANGEBYSCORE")
            .arg(self.surveys_key(customer_id))
            .arg(format!("({}", millis(after)))
            .arg("+inf")
            .arg("WITHSCORES")
            .query_async(&mut conn)
            .await?;
        Ok(kept
            .into_iter()
            .filter_map(|(member, occurred_at_ms)| {
                let mut survey: KeptSurvey = serde_json::from_str(&member).ok()?;
                survey.occurred_at_ms = occurred_at_ms;
                Some(survey)
            })
            .collect())
    }

    /// The task the alert opened or was attached to, if it was handled
    /// within [`ALERT_MARK_TTL_MS`]; or `own_id`, the task it would open,
    /// if that exists (alerts handled before alert marks were written).
    /// One round trip.
    pub async fn task_of_alert(
        &self,
        alert_id: &str,
        own_id: &str,
    ) -> Result<Option<String>, RedisError> {
        let mut conn = self.conn().await?;
        let (marked, own): (Option<String>, bool) = redis::pipe()
            .get(format!("{}:followup:alert:{alert_id}", self.prefix))
            .exists(self.task_key(own_id))
            .query_async(&mut conn)
            .await?;
        Ok(marked.or_else(|| own.then(|| own_id.to_string())))
    }

    /// Task ids whose due time is at or before `now`, earliest first.
    pub async fn due_tasks(
        &self,
        now: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<String>, RedisError> {
        let mut conn = self.conn().await?;
        redis::cmd("ZRANGEBYSCORE")
            .arg(self.due_key())
            .arg("-inf")
            .arg(millis(now))
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut conn)
            .await
    }

    /// Removes a task from the timers if it is still at `version`.
    pub async fn unschedule(&self, task_id: &str, version: u64) -> Result<bool, RedisError> {
        let mut conn = self.conn().await?;
        let removed: i64 = self
            .unschedule
            .key(self.task_key(task_id))
            .key(self.due_key())
            .arg(task_id)
            .arg(version)
            .invoke_async(&mut conn)
            .await?;
        Ok(removed == 1)
    }

    /// The loop counters of every team.
    pub async fn stats(&self) -> Result<Vec<TeamStats>, RedisError> {
        let mut conn = self.conn().await?;
        let mut teams: Vec<String> = redis::cmd("SMEMBERS")
            .arg(format!("{}:followup:teams", self.prefix))
            .query_async(&mut conn)
            .await?;
        teams.sort();
        if teams.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for team in &teams {
            pipe.cmd("HGETALL")
                .arg(format!("{}:followup:stats:{team}", self.prefix));
        }
        let rows: Vec<std::collections::HashMap<String, u64>> = pipe.query_async(&mut conn).await?;
        Ok(teams
            .into_iter()
            .zip(rows)
            .map(|(team, row)| {
                let get = |f: &str| row.get(f).copied().unwrap_or(0);
                TeamStats {
                    opened: get("opened"),
                    contacted: get("contacted"),
                    first_contact_ms: get("first_contact_ms"),
                    contacted_in_sla: get("contacted_in_sla"),
                    sla_breached: get("sla_breached"),
                    escalations: get("escalations"),
                    recovered: get("recovered"),
                    not_recovered: get("not_recovered"),
                    team,
                }
            })
            .collect())
    }

    /// A page of tasks, newest first, matching `filter`. Index entries of
    /// expired tasks are dropped on the way.
    pub async fn list(
        &self,
        filter: &TaskFilter,
        after: Option<&PageToken>,
        page_size: usize,
    ) -> Result<(Vec<Task>, Option<PageToken>), RedisError> {
        let mut conn = self.conn().await?;
        paging::newest_first(
            &mut conn,
            &self.index_key(),
            None,
            after,
            page_size,
            |ids| async move { self.get_many(&ids).await },
            |task| filter.matches(task),
        )
        .await
    }
}

fn json_error(error: serde_json::Error) -> RedisError {
    RedisError::from((
        redis::ErrorKind::Client,
        "task does not serialize",
        error.to_string(),
    ))
}

fn decode(json: &[u8]) -> Option<Task> {
    match Task::from_json(json) {
        Ok(task) => Some(task),
        Err(error) => {
            tracing::error!(%error, "stored task does not decode");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cx_tasks::{Directory, Opening, SlaConfig, TaskUpdate};

    #[test]
    fn only_the_directorys_teams_label_the_counters() {
        let redis = RedisPool::new("redis://127.0.0.1:1").unwrap();
        let store = TaskStore::new(redis, "t", 1)
            .with_metric_teams(["team-a".to_string(), "team-b".into()]);
        assert_eq!(store.metric_team("team-a"), "team-a");
        assert_eq!(store.metric_team(NO_TEAM), NO_TEAM);
        // A team_id a client made up is not a new series.
        assert_eq!(store.metric_team("made-up-by-a-client-42"), OTHER_TEAM);
    }

    fn opening() -> Opening<'static> {
        Opening {
            customer_id: "cust-1",
            alert_id: "al_1",
            interaction_id: Some("i-1"),
            severity: "critical",
            reason: "NPS 2",
            agent_id: None,
            team_id: Some("team-a"),
            queue_id: None,
        }
    }

    #[test]
    fn stats_delta_counts_each_transition_once() {
        let t0 = time::macros::datetime!(2024-05-01 12:00 UTC);
        let sla = SlaConfig::default();
        let task = Task::open(&opening(), &Directory::default(), &sla, t0);
        let opened = StatsDelta::between(None, &task);
        assert_eq!(opened.opened, 1);
        assert_eq!(opened.fields(), vec![("opened", 1)]);

        let mut contacted = task.clone();
        contacted
            .apply_update(
                &TaskUpdate {
                    task_id: task.task_id.clone(),
                    version: 1,
                    state: TaskState::Contacted,
                    owner: None,
                    root_cause: None,
                    resolution_note: None,
                },
                t0 + time::Duration::minutes(30),
            )
            .unwrap();
        let delta = StatsDelta::between(Some(&task), &contacted);
        assert_eq!(delta.contacted, 1);
        assert_eq!(delta.contacted_in_sla, 1);
        assert_eq!(delta.first_contact_ms, 30 * 60 * 1000);
        assert_eq!(delta.opened, 0);
        // The same task again changes nothing.
        assert_eq!(
            StatsDelta::between(Some(&contacted), &contacted),
            StatsDelta::default()
        );
    }

    #[test]
    fn filters_match_state_owner_customer_and_overdue() {
        let t0 = time::macros::datetime!(2024-05-01 12:00 UTC);
        let task = Task::open(&opening(), &Directory::default(), &SlaConfig::default(), t0);
        assert!(TaskFilter::default().matches(&task));
        let open = TaskFilter {
            state: Some(TaskState::Open),
            owner: Some(task.owner.clone()),
            customer_id: Some("cust-1".into()),
            overdue_at: None,
        };
        assert!(open.matches(&task));
        let closed = TaskFilter {
            state: Some(TaskState::Closed),
            ..TaskFilter::default()
        };
        assert!(!closed.matches(&task));
        let overdue_now = TaskFilter {
            overdue_at: Some(t0),
            ..TaskFilter::default()
        };
        assert!(!overdue_now.matches(&task));
        let overdue_later = TaskFilter {
            overdue_at: Some(t0 + time::Duration::hours(5)),
            ..TaskFilter::default()
        };
        assert!(overdue_later.matches(&task));
    }
}

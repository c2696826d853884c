//! Webhook delivery to operations: a consumer group of its own on
//! cx.alerts.v1, so slow or dead endpoints never hold back alerting.
//!
//! Per alert and destination: admitted once (a redelivery is skipped),
//! folded into the destination's digest past its rate limit, else POSTed
//! (JSON or a Slack-compatible payload, HMAC-SHA256 signed) with
//! exponential backoff and full jitter; after the last try the alert goes
//! to the dead-letter topic with the reason. Offsets move only when every
//! alert of a batch is delivered, digested or dead-lettered.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cx_rules::Alert;
use cx_runtime::kafka::{DeadLetters, SharedProducer};
use cx_runtime::RedisPool;
use rdkafka::message::OwnedMessage;
use rdkafka::Message;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::telemetry;

/// `[[alerting.destinations]]`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Destination {
    pub name: String,
    pub url: String,
    /// HMAC-SHA256 key for the signature header; unsigned without it.
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub format: PayloadFormat,
    /// Alerts per minute before the rest are folded into a digest.
    #[serde(default = "default_rate_limit")]
    pub rate_limit_per_minute: u32,
}

fn default_rate_limit() -> u32 {
    60
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PayloadFormat {
    #[default]
    Json,
    Slack,
}

/// `[alerting.routes]`: which destinations hear about a queue or a team.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Routes {
    pub queues: BTreeMap<String, Vec<String>>,
    pub teams: BTreeMap<String, Vec<String>>,
}

/// `[alerting.webhooks]`: delivery policy.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryPolicy {
    pub attempts: u32,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    pub timeout_ms: u64,
    /// Deliveries in flight at once: the bound of the delivery queue.
    pub concurrency: usize,
    pub digest_interval_s: u64,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        DeliveryPolicy {
            // Full jitter up to 0.5, 1, 2, 4 s between tries: a receiver down
            // for more than a few seconds loses alerts to the dead-letter
            // topic. More tries would outlast Kafka's poll interval for a
            // whole batch.
            attempts: 5,
            initial_backoff_ms: 500,
            max_backoff_ms: 30_000,
            timeout_ms: 5_000,
            concurrency: 32,
            digest_interval_s: 60,
        }
    }
}

/// The name of the destination built from CX_ALERT_WEBHOOK_URL.
pub const DEFAULT_DESTINATION: &str = "default";

/// Destinations and routes, checked at start.
#[derive(Debug, Clone)]
pub struct Directory {
    destinations: BTreeMap<String, Destination>,
    routes: Routes,
    catch_all: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DirectoryError {
    #[error("alerting.destinations[{index}].{field}: {problem}")]
    Destination {
        index: usize,
        field: &'static str,
        problem: String,
    },
    #[error("alerting.routes.{kind}.{key}: no destination named {name:?}")]
    UnknownRoute {
        kind: &'static str,
        key: String,
        name: String,
    },
}

impl Directory {
    pub fn new(
        destinations: &[Destination],
        routes: &Routes,
        catch_all_url: Option<&str>,
        catch_all_secret: Option<&str>,
    ) -> Result<Directory, DirectoryError> {
        let mut by_name = BTreeMap::new();
        for (index, destination) in destinations.iter().enumerate() {
            let bad = |field, problem: &str| DirectoryError::Destination {
                index,
                field,
                problem: problem.to_string(),
            };
            if destination.name.is_empty() || destination.name == DEFAULT_DESTINATION {
                return Err(bad("name", "must be non-empty and not \"default\""));
            }
            if !(destination.url.starts_with("http://") || destination.url.starts_with("https://"))
            {
                return Err(bad("url", "must be an http:// or https:// URL"));
            }
            if destination.rate_limit_per_minute == 0 {
                return Err(bad("rate_limit_per_minute", "must be at least 1"));
            }
            if by_name
                .insert(destination.name.clone(), destination.clone())
                .is_some()
            {
                return Err(bad("name", "is used twice"));
            }
        }
        for (kind, table) in [("queues", &routes.queues), ("teams", &routes.teams)] {
            for (key, names) in table {
                if let Some(name) = names.iter().find(|n| !by_name.contains_key(*n)) {
                    return Err(DirectoryError::UnknownRoute {
                        kind,
                        key: key.clone(),
                        name: name.clone(),
                    });
                }
            }
        }
        let catch_all = catch_all_url.map(|url| {
            by_name.insert(
                DEFAULT_DESTINATION.to_string(),
                Destination {
                    name: DEFAULT_DESTINATION.to_string(),
                    url: url.to_string(),
                    secret: catch_all_secret.map(str::to_string),
                    format: PayloadFormat::Json,
                    rate_limit_per_minute: u32::MAX,
                },
            );
            DEFAULT_DESTINATION.to_string()
        });
        Ok(Directory {
            destinations: by_name,
            routes: routes.clone(),
            catch_all,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.destinations.is_empty()
    }

    pub fn destinations(&self) -> impl Iterator<Item = &Destination> {
        self.destinations.values()
    }

    /// Every destination for an alert, each once.
    pub fn route(&self, alert: &Alert) -> Vec<&Destination> {
        let routed = match alert.dimension.as_str() {
            "queue" => self.routes.queues.get(&alert.key),
            "team" => self.routes.teams.get(&alert.key),
            _ => None,
        };
        let mut names: Vec<&String> = routed.into_iter().flatten().collect();
        names.extend(self.catch_all.as_ref());
        names.sort();
        names.dedup();
        names
            .into_iter()
            .filter_map(|name| self.destinations.get(name))
            .collect()
    }
}

/// `X-Cx-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
/// The timestamp inside the signed text lets receivers refuse replays.
pub fn signature(secret: &str, timestamp_s: i64, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let mut context = ring::hmac::Context::with_key(&key);
    context.update(timestamp_s.to_string().as_bytes());
    context.update(b".");
    context.update(body);
    let tag = context.sign();
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("t={timestamp_s},v1={hex}")
}

pub const SIGNATURE_HEADER: &str = "x-cx-signature";

/// The body a destination receives for one alert.
pub fn payload(alert: &Alert, format: PayloadFormat) -> Vec<u8> {
    match format {
        PayloadFormat::Json => serde_json::to_vec(alert).expect("alerts serialize"),
        PayloadFormat::Slack => serde_json::to_vec(&serde_json::json!({
            "text": format!(
                "[{}] {} ({} {}={})",
                alert.severity.as_str().to_uppercase(),
                alert.message,
                alert.rule,
                alert.dimension,
                alert.key
            ),
        }))
        .expect("json serializes"),
    }
}

/// The body of a digest: alerts folded past the rate limit.
pub fn digest_payload(destination: &Destination, alerts: &[Alert]) -> Vec<u8> {
    match destination.format {
        PayloadFormat::Json => serde_json::to_vec(&serde_json::json!({
            "digest": true,
            "destination": destination.name,
            "count": alerts.len(),
            "alerts": alerts,
        })),
        PayloadFormat::Slack => {
            let mut lines: Vec<String> = alerts
                .iter()
                .take(20)
                .map(|a| format!("• [{}] {}", a.severity.as_str(), a.message))
                .collect();
            if alerts.len() > 20 {
                lines.push(format!("… and {} more", alerts.len() - 20));
            }
            serde_json::to_vec(&serde_json::json!({
                "text": format!("{} alerts over the rate limit:\n{}", alerts.len(), lines.join("\n")),
            }))
        }
    }
    .expect("json serializes")
}

/// Why a delivery gave up.
#[derive(Debug, Clone)]
pub struct DeliveryFailure {
    pub attempts: u32,
    pub last_error: String,
}

pub struct Sender {
    client: reqwest::Client,
    policy: DeliveryPolicy,
}

impl Sender {
    pub fn new(policy: DeliveryPolicy) -> Sender {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(policy.timeout_ms))
            .build()
            .expect("a plain HTTP client builds");
        Sender { client, policy }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self
            .policy
            .initial_backoff_ms
            .saturating_mul(1 << attempt.min(20))
            .min(self.policy.max_backoff_ms);
        // Full jitter: spreads retries of many alerts to a recovering endpoint.
        Duration::from_millis(rand::random_range(0..=ceiling.max(1)))
    }

    /// POSTs with retries until a 2xx, a permanent refusal, or the last try.
    pub async fn deliver(
        &self,
        destination: &Destination,
        body: &[u8],
        stop: &CancellationToken,
    ) -> Result<u32, DeliveryFailure> {
        let mut last_error = String::new();
        let mut attempts = 0;
        for attempt in 1..=self.policy.attempts.max(1) {
            attempts = attempt;
            metrics::counter!(telemetry::WEBHOOK_ATTEMPTS_TOTAL, "destination" => destination.name.clone())
                .increment(1);
            let mut request = self
                .client
                .post(&destination.url)
                .header("content-type", "application/json")
                .body(body.to_vec());
            if let Some(secret) = &destination.secret {
                let now = time::OffsetDateTime::now_utc().unix_timestamp();
                request = request.header(SIGNATURE_HEADER, signature(secret, now, body));
            }
            match request.send().await {
                Ok(response) if response.status().is_success() => return Ok(attempt),
                Ok(response) => {
                    let status = response.status();
                    last_error = format!("HTTP {status}");
                    // The endpoint refuses this payload: retrying cannot help.
                    let permanent = status.is_client_error()
                        && status != reqwest::StatusCode::REQUEST_TIMEOUT
                        && status != reqwest::StatusCode::TOO_MANY_REQUESTS;
                    if permanent {
                        return Err(DeliveryFailure {
                            attempts: attempt,
                            last_error,
                        });
                    }
                }
                Err(error) => last_error = without_url(error),
            }
            if attempt < self.policy.attempts {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(self.backoff(attempt - 1)) => {}
                }
            }
        }
        // Fewer than the policy's attempts when stopping cut the retries.
        Err(DeliveryFailure {
            attempts,
            last_error,
        })
    }
}

/// Webhook URLs can carry tokens: errors name the failure, not the URL.
fn without_url(error: reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connection refused or unreachable"
    } else {
        "request failed"
    };
    format!("{kind}: {}", error.without_url())
}

/// Admits an (alert, destination) once; past the per-minute limit the alert
/// is appended to the destination's digest instead.
const ADMIT: &str = r#"
local done_key, rate_key, digest_key = KEYS[1], KEYS[2], KEYS[3]
if redis.call('EXISTS', done_key) == 1 then return 'done' end
local n = redis.call('INCR', rate_key)
if n == 1 then redis.call('EXPIRE', rate_key, 120) end
if n > tonumber(ARGV[1]) then
  redis.call('RPUSH', digest_key, ARGV[2])
  redis.call('SET', done_key, 'digest', 'EX', ARGV[3])
  return 'digest'
end
return 'send'
"#;

const DONE_TTL_S: u64 = 8 * 86_400;

pub struct DeliveryHandler {
    pub directory: Arc<Directory>,
    pub sender: Arc<Sender>,
    pub redis: RedisPool,
    pub prefix: String,
    pub producer: Arc<SharedProducer>,
    pub dead_letters: DeadLetters,
    pub concurrency: Arc<Semaphore>,
    pub stop: CancellationToken,
    admit: redis::Script,
}

impl DeliveryHandler {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        directory: Arc<Directory>,
        sender: Arc<Sender>,
        redis: RedisPool,
        prefix: &str,
        producer: Arc<SharedProducer>,
        dead_letters: DeadLetters,
        concurrency: usize,
        stop: CancellationToken,
    ) -> DeliveryHandler {
        DeliveryHandler {
            directory,
            sender,
            redis,
            prefix: prefix.to_string(),
            producer,
            dead_letters,
            concurrency: Arc::new(Semaphore::new(concurrency.max(1))),
            stop,
            admit: redis::Script::new(ADMIT),
        }
    }

    fn done_key(&self, destination: &str, alert_id: &str) -> String {
        format!(
            "{}:alerting:delivered:{destination}:{alert_id}",
            self.prefix
        )
    }

    fn digest_key(&self, destination: &str) -> String {
        format!("{}:alerting:digest:{destination}", self.prefix)
    }

    /// `position`: the alert's partition and offset on cx.alerts.v1, kept
    /// with it in the digest for its dead letter.
    async fn admit(
        &self,
        destination: &Destination,
        alert: &Alert,
        position: (i32, i64),
        json: &[u8],
    ) -> Result<String, redis::RedisError> {
        let minute = time::OffsetDateTime::now_utc().unix_timestamp() / 60;
        let mut conn = self.redis.get().await?;
        self.admit
            .key(self.done_key(&destination.name, &alert.alert_id))
            .key(format!(
                "{}:alerting:rate:{}:{minute}",
                self.prefix, destination.name
            ))
            .key(self.digest_key(&destination.name))
            .arg(destination.rate_limit_per_minute)
            .arg(DigestEntry::encode(position, json))
            .arg(DONE_TTL_S)
            .invoke_async(&mut conn)
            .await
    }

    async fn mark_done(&self, destination: &str, alert_id: &str, how: &str) -> Result<(), String> {
        let mut conn = self.redis.get().await.map_err(|e| e.to_string())?;
        redis::cmd("SET")
            .arg(self.done_key(destination, alert_id))
            .arg(how)
            .arg("EX")
            .arg(DONE_TTL_S)
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| e.to_string())
    }

    /// One alert to one destination, to the end: delivered, digested or
    /// dead-lettered. Err only when that end cannot be made durable.
    async fn settle(
        &self,
        message: &OwnedMessage,
        alert: &Alert,
        destination: &Destination,
    ) -> Result<(), String> {
        let json = message.payload().unwrap_or_default();
        let admitted = self
            .admit(
                destination,
                alert,
                (message.partition(), message.offset()),
                json,
            )
            .await
            .map_err(|e| format!("redis: {e}"))?;
        let name = destination.name.clone();
        match admitted.as_str() {
            "done" => return Ok(()),
            "digest" => {
                metrics::counter!(telemetry::WEBHOOK_DIGESTED_TOTAL, "destination" => name)
                    .increment(1);
                return Ok(());
            }
            _ => {}
        }
        let _permit = self.concurrency.acquire().await.expect("never closed");
        metrics::gauge!(telemetry::WEBHOOK_IN_FLIGHT).increment(1.0);
        let body = payload(alert, destination.format);
        let outcome = self.sender.deliver(destination, &body, &self.stop).await;
        metrics::gauge!(telemetry::WEBHOOK_IN_FLIGHT).decrement(1.0);
        match outcome {
            Ok(_) => {
                metrics::counter!(telemetry::WEBHOOK_DELIVERIES_TOTAL, "destination" => name, "result" => "delivered")
                    .increment(1);
                self.mark_done(&destination.name, &alert.alert_id, "delivered")
                    .await
            }
            // Stopping mid-retry: leave it to the next owner of the partition.
            Err(_) if self.stop.is_cancelled() => Err("stopping".into()),
            Err(failure) => {
                let reason = format!(
                    "webhook {} failed after {} attempts: {}",
                    destination.name, failure.attempts, failure.last_error
                );
                self.producer
                    .dead_letter(&self.dead_letters, &[(message, reason)])
                    .await?;
                metrics::counter!(telemetry::WEBHOOK_DELIVERIES_TOTAL, "destination" => name, "result" => "deadlettered")
                    .increment(1);
                self.mark_done(&destination.name, &alert.alert_id, "deadlettered")
                    .await
            }
        }
    }
}

impl cx_runtime::consumer::BatchHandler for DeliveryHandler {
    async fn handle(&mut self, batch: &[OwnedMessage]) -> Result<(), String> {
        let mut dead = Vec::new();
        let mut alerts = Vec::with_capacity(batch.len());
        for message in batch {
            match Alert::from_json(message.payload().unwrap_or_default()) {
                Ok(alert) => alerts.push((message, alert)),
                Err(error) => dead.push((message, format!("not a JSON alert: {error}"))),
            }
        }
        if !dead.is_empty() {
            self.producer.dead_letter(&self.dead_letters, &dead).await?;
        }
        let mut jobs = Vec::new();
        for (message, alert) in &alerts {
            for destination in self.directory.route(alert) {
                jobs.push(self.settle(message, alert, destination));
            }
        }
        let results = futures::future::join_all(jobs).await;
        match results.into_iter().find_map(Result::err) {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

/// Sends each destination's digest every interval. One replica at a time
/// takes a digest (RENAME is atomic); a digest taken but not sent (crash)
/// is sent by the next round.
pub struct DigestFlusher {
    pub directory: Arc<Directory>,
    pub sender: Arc<Sender>,
    pub redis: RedisPool,
    pub prefix: String,
    pub interval: Duration,
    pub producer: Arc<SharedProducer>,
    pub dead_letters: DeadLetters,
    pub alerts_topic: String,
}

/// An alert as a digest holds it: the record's JSON with its position on
/// cx.alerts.v1 as a first member, `{"cx_position":"<partition>:<offset>",…`.
/// Inside the object, not beside it, so that a replica of the version
/// before (during a rolling deploy) still reads the entry as an alert and
/// sends it; it ignores the member. Entries written before positions were
/// kept are the JSON alone.
struct DigestEntry {
    partition: i32,
    offset: i64,
    /// The record's JSON, byte for byte.
    json: Vec<u8>,
}

const POSITION_MEMBER: &[u8] = br#"{"cx_position":""#;

impl DigestEntry {
    fn encode((partition, offset): (i32, i64), json: &[u8]) -> Vec<u8> {
        match json.strip_prefix(b"{") {
            // Not an empty object: the member is followed by a comma.
            Some(rest) if rest.iter().any(|b| !b.is_ascii_whitespace() && *b != b'}') => {
                let mut entry = POSITION_MEMBER.to_vec();
                entry.extend_from_slice(format!("{partition}:{offset}\",").as_bytes());
                entry.extend_from_slice(rest);
                entry
            }
            _ => json.to_vec(),
        }
    }

    fn decode(entry: &[u8]) -> DigestEntry {
        let positioned = entry.strip_prefix(POSITION_MEMBER).and_then(|after| {
            let end = after.windows(2).position(|w| w == b"\",")?;
            let (partition, offset) = std::str::from_utf8(&after[..end]).ok()?.split_once(':')?;
            let mut json = b"{".to_vec();
            json.extend_from_slice(&after[end + 2..]);
            Some(DigestEntry {
                partition: partition.parse().ok()?,
                offset: offset.parse().ok()?,
                json,
            })
        });
        positioned.unwrap_or_else(|| DigestEntry {
            partition: -1,
            offset: -1,
            json: entry.to_vec(),
        })
    }
}

impl DigestFlusher {
    /// Digested alerts that could not be sent go to the dead-letter topic,
    /// each with its record's position on cx.alerts.v1 (-1 for entries
    /// kept before positions were).
    async fn dead_letter_digest(
        &self,
        entries: &[DigestEntry],
        alerts: &[Alert],
        reason: &str,
    ) -> Result<(), String> {
        let producer = self.producer.get();
        for (entry, alert) in entries.iter().zip(alerts) {
            cx_runtime::kafka::DeadLetter {
                error: reason,
                consumer_group: &self.dead_letters.consumer_group,
                source_topic: &self.alerts_topic,
                source_partition: entry.partition,
                source_offset: entry.offset,
            }
            .publish(
                &producer,
                &self.dead_letters.topic,
                Some(alert.kafka_key().as_bytes()),
                Some(&entry.json),
            )
            .await
            .map_err(|e| format!("dead-letter publish failed: {e}"))?;
        }
        Ok(())
    }
}

const TAKE_DIGEST: &str = r#"
if redis.call('SET', KEYS[3], ARGV[1], 'NX', 'PX', ARGV[2]) == false then return 0 end
if redis.call('EXISTS', KEYS[2]) == 1 then return 1 end
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('DEL', KEYS[3]) return 0 end
redis.call('RENAME', KEYS[1], KEYS[2])
return 1
"#;

impl DigestFlusher {
    pub async fn run(self, stop: CancellationToken) {
        let take = redis::Script::new(TAKE_DIGEST);
        let instance = format!("{:016x}", rand::random::<u64>());
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(self.interval) => {}
            }
            for destination in self.directory.destinations() {
                if let Err(error) = self.flush(destination, &take, &instance, &stop).await {
                    tracing::warn!(destination = %destination.name, %error, "digest not sent; next round retries");
                }
            }
        }
    }

    async fn flush(
        &self,
        destination: &Destination,
        take: &redis::Script,
        instance: &str,
        stop: &CancellationToken,
    ) -> Result<(), String> {
        let base = format!("{}:alerting:digest:{}", self.prefix, destination.name);
        let sending = format!("{base}:sending");
        let lock = format!("{base}:lock");
        let mut conn = self.redis.get().await.map_err(|e| e.to_string())?;
        let lock_ms = self.interval.as_millis() as u64 * 2;
        let taken: i64 = take
            .key(&base)
            .key(&sending)
            .key(&lock)
            .arg(instance)
            .arg(lock_ms)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        if taken == 0 {
            return Ok(());
        }
        let raw: Vec<Vec<u8>> = redis::cmd("LRANGE")
            .arg(&sending)
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        let (entries, alerts): (Vec<DigestEntry>, Vec<Alert>) = raw
            .iter()
            .map(|entry| DigestEntry::decode(entry))
            .filter_map(|entry| {
                serde_json::from_slice(&entry.json)
                    .ok()
                    .map(|alert| (entry, alert))
            })
            .unzip();
        if !alerts.is_empty() {
            let body = digest_payload(destination, &alerts);
            // Delivery and, when it fails, the dead letters: the lock is
            // held for both.
            let send = async {
                match self.sender.deliver(destination, &body, stop).await {
                    Ok(_) => {
                        metrics::counter!(telemetry::WEBHOOK_DELIVERIES_TOTAL, "destination" => destination.name.clone(), "result" => "digest")
                            .increment(1);
                        Ok(())
                    }
                    // Stopping cut the retries short: the digest stays taken
                    // (its `sending` list), and the next flush, here or in
                    // another replica, sends it again.
                    Err(_) if stop.is_cancelled() => Err(Unsent::Stopped),
                    Err(failure) => {
                        let reason = format!(
                            "webhook {} digest failed after {} attempts: {}",
                            destination.name, failure.attempts, failure.last_error
                        );
                        self.dead_letter_digest(&entries, &alerts, &reason)
                            .await
                            .map_err(Unsent::Failed)
                    }
                }
            };
            let sent = tokio::select! {
                sent = send => sent,
                never = self.hold_lock(&lock, instance, lock_ms) => match never {},
            };
            match sent {
                Ok(()) => {}
                Err(Unsent::Stopped) => {
                    // Another replica need not wait for the lock to lapse.
                    let _ = redis::Script::new(cx_runtime::redis_pool::RELEASE_IF_HOLDER)
                        .key(&lock)
                        .arg(instance)
                        .invoke_async::<i64>(&mut conn)
                        .await;
                    return Err("stopping".into());
                }
                Err(Unsent::Failed(error)) => return Err(error),
            }
        }
        // Only while the lock is still this instance's: a delivery that
        // outlasted it may find another instance's digest in `sending`.
        redis::Script::new(FINISH_DIGEST)
            .key(&sending)
            .key(&lock)
            .arg(instance)
            .invoke_async::<()>(&mut conn)
            .await
            .map_err(|e| e.to_string())
    }
}

impl DigestFlusher {
    /// Keeps this instance's lock while its delivery retries: a delivery
    /// that outlasted the lock let another replica take the same digest
    /// and send it again. Renews at a third of the lock's time, so one
    /// failed renewal is not yet a lapse. Never returns; once the lock is
    /// found another's (Redis was out for longer than the lock), it stops
    /// renewing and the delivery goes on: at least once.
    async fn hold_lock(
        &self,
        lock: &str,
        instance: &str,
        lock_ms: u64,
    ) -> std::convert::Infallible {
        let renew = redis::Script::new(RENEW_DIGEST_LOCK);
        let every = Duration::from_millis((lock_ms / 3).max(1));
        loop {
            tokio::time::sleep(every).await;
            let renewed = match self.redis.get().await {
                Ok(mut conn) => renew
                    .key(lock)
                    .arg(instance)
                    .arg(lock_ms)
                    .invoke_async::<i64>(&mut conn)
                    .await
                    .map_err(|e| e.to_string()),
                Err(error) => Err(error.to_string()),
            };
            match renewed {
                Ok(1) => {}
                Ok(_) => {
                    tracing::warn!(%lock, "digest lock lost during a delivery; the digest may be sent twice");
                    return std::future::pending().await;
                }
                Err(error) => tracing::warn!(%lock, %error, "digest lock not renewed; retrying"),
            }
        }
    }
}

/// Extends the lock (KEYS[1]) by ARGV[2] ms if it is still the caller's
/// (ARGV[1]).
const RENEW_DIGEST_LOCK: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"#;

/// Why a digest's sending ended without reaching the receiver or the
/// dead-letter topic.
enum Unsent {
    Stopped,
    Failed(String),
}

/// Ends a flush: drops the sent digest and the lock if the lock is still
/// the caller's (ARGV[1]); otherwise leaves both to their holder.
const FINISH_DIGEST: &str = r#"
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
return 1
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn destination(name: &str) -> Destination {
        Destination {
            name: name.into(),
            url: "http://127.0.0.1:1/hook".into(),
            secret: None,
            format: PayloadFormat::Json,
            rate_limit_per_minute: 10,
        }
    }

    #[test]
    fn a_digest_entry_keeps_its_records_position() {
        let json = br#"{"alert_id":"al-1","rule":"r"}"#;
        let entry = DigestEntry::encode((3, 1234), json);
        assert_eq!(
            entry,
            br#"{"cx_position":"3:1234","alert_id":"al-1","rule":"r"}"#
        );
        let decoded = DigestEntry::decode(&entry);
        assert_eq!((decoded.partition, decoded.offset), (3, 1234));
        assert_eq!(decoded.json, json, "the record, byte for byte");
        // What the version before reads: still an alert, the member ignored.
        let alert = serde_json::json!({
            "alert_id": "al-2", "rule": "detractor", "kind": "response",
            "severity": "warning", "dimension": "queue", "key": "billing",
            "customer_id": "c", "interaction_id": "i", "window": null,
            "metric": "nps", "value": 2.0, "threshold": 6.0, "message": "NPS 2",
            "created_at": "2026-01-01T00:00:00Z", "suppressed_count": 0,
        })
        .to_string();
        let entry_of_alert = DigestEntry::encode((0, 7), alert.as_bytes());
        let read: Alert = serde_json::from_slice(&entry_of_alert).unwrap();
        assert_eq!(read.alert_id, "al-2");
        // Entries kept before positions were: the JSON alone.
        let old = DigestEntry::decode(json);
        assert_eq!(
            (old.partition, old.offset, &old.json[..]),
            (-1, -1, &json[..])
        );
        let garbled = DigestEntry::decode(br#"{"cx_position":"x:y","a":1}"#);
        assert_eq!((garbled.partition, garbled.offset), (-1, -1));
        // Nothing to put a member before.
        assert_eq!(DigestEntry::encode((0, 1), b"{ }"), b"{ }");
    }

    #[test]
    fn signature_matches_an_independent_hmac() {
        // RFC 4231 test case 2 key and data, framed as "<t>.<body>".
        let sig = signature("Jefe", 0, b"what do ya want for nothing?");
        assert!(sig.starts_with("t=0,v1="));
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"Jefe");
        let expected = ring::hmac::sign(&key, b"0.what do ya want for nothing?");
        let hex: String = expected
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(sig, format!("t=0,v1={hex}"));
        assert_ne!(signature("other", 0, b"x"), signature("Jefe", 0, b"x"));
    }

    #[test]
    fn directory_refuses_unknown_routes_and_bad_urls() {
        let routes = Routes {
            queues: [("billing".to_string(), vec!["nope".to_string()])].into(),
            teams: BTreeMap::new(),
        };
        let error = Directory::new(&[destination("ops")], &routes, None, None).unwrap_err();
        assert_eq!(
            error.to_string(),
            "alerting.routes.queues.billing: no destination named \"nope\""
        );
        let mut bad = destination("ops");
        bad.url = "ftp://x".into();
        let error = Directory::new(&[bad], &Routes::default(), None, None).unwrap_err();
        assert!(error
            .to_string()
            .starts_with("alerting.destinations[0].url"));
    }
}

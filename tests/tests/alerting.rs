//! cx-alerting against the real broker and Redis: each rule kind, minimum
//! samples, redelivery, a cooldown shared by two replicas, signed webhooks
//! with retries and dead letters, AlertService, and poison records.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cx_proto::prost::Message as _;
use cx_proto::v1;
use cx_proto::v1::alert_service_client::AlertServiceClient;
use cx_runtime::{kafka, Config, ServiceName};
use cx_tests::*;
use rdkafka::producer::FutureRecord;

/// One response rule for detractors, alone (webhook tests).
const DETRACTOR_RULE: &str = r#"
[[alerting.rules]]
name = "detractor"
kind = "response"
severity = "warning"
"#;

const RULES: &str = r#"
[[alerting.rules]]
name = "detractor"
kind = "response"
severity = "warning"
cooldown_s = 3

[[alerting.rules]]
name = "churn"
kind = "keyword"
severity = "critical"
keywords = ["cancel"]

[[alerting.rules]]
name = "queue_nps_low"
kind = "threshold"
severity = "warning"
dimension = "queue"
window = "1h"
metric = "nps"
op = "below"
bound = 0.0
min_responses = 10

[[alerting.rules]]
name = "queue_spike"
kind = "spike"
severity = "critical"
dimension = "queue"
window = "1h"
p_value = 0.01
min_responses = 30
"#;

const CONTRACT_KEYS: [&str; 15] = [
    "alert_id",
    "rule",
    "kind",
    "severity",
    "dimension",
    "key",
    "customer_id",
    "interaction_id",
    "window",
    "metric",
    "value",
    "threshold",
    "message",
    "created_at",
    "suppressed_count",
];

fn config(iso: &Isolation, extra: &str, env: &[(&str, String)]) -> Config {
    let text = iso.config_toml(&brokers(), &redis_url()) + extra;
    let file: toml::Table = text.parse().expect("test config");
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    Config::from_parts(ServiceName::Alerting, file, &env).expect("valid test config")
}

fn timestamp(t: time::OffsetDateTime) -> cx_proto::prost_types::Timestamp {
    cx_proto::prost_types::Timestamp {
        seconds: t.unix_timestamp(),
        nanos: 0,
    }
}

fn interaction(id: &str, customer: &str, queue: &str, nps: i32, ago: Duration) -> v1::Interaction {
    v1::Interaction {
        interaction_id: id.to_string(),
        customer_id: customer.to_string(),
        occurred_at: Some(timestamp(time::OffsetDateTime::now_utc() - ago)),
        channel: v1::Channel::Voice as i32,
        queue_id: Some(queue.to_string()),
        team_id: Some("team-1".to_string()),
        nps: Some(nps),
        ..Default::default()
    }
}

fn scored(interaction: v1::Interaction, verbatim: Option<&str>) -> v1::ScoredInteraction {
    v1::ScoredInteraction {
        detractor: interaction.nps.is_some_and(|n| n <= 6),
        interaction: Some(v1::Interaction {
            verbatim: verbatim.map(str::to_string),
            ..interaction
        }),
        ..Default::default()
    }
}

/// Produces (partition, key, value) records to `topic`.
async fn produce(config: &Config, topic: &str, records: Vec<(Option<i32>, String, Vec<u8>)>) {
    kafka::ensure_topics(&config.kafka, &[topic]).await.unwrap();
    let producer = kafka::producer(&config.kafka, "cx-test").unwrap();
    for (partition, key, value) in records {
        let mut record = FutureRecord::to(topic).key(&key).payload(&value);
        if let Some(partition) = partition {
            record = record.partition(partition);
        }
        producer
            .send(record, Duration::from_secs(10))
            .await
            .expect("produce");
    }
}

async fn produce_scored(config: &Config, items: &[(Option<i32>, v1::ScoredInteraction)]) {
    let records = items
        .iter()
        .map(|(partition, s)| {
            let key = s.interaction.as_ref().unwrap().customer_id.clone();
            (*partition, key, s.encode_to_vec())
        })
        .collect();
    produce(config, &config.kafka.topics.scored.clone(), records).await;
}

async fn produce_interactions(config: &Config, items: &[v1::Interaction]) {
    let records = items
        .iter()
        .map(|i| (None, i.customer_id.clone(), i.encode_to_vec()))
        .collect();
    produce(config, &config.kafka.topics.interactions.clone(), records).await;
}

/// The dead letters on the topic so far, at least `at_least` of them.
async fn dead_letters_on_topic(config: &Config, at_least: usize) -> Vec<Record> {
    read_topic(
        &config.kafka.brokers,
        &config.kafka.topics.deadletter,
        at_least,
        Duration::from_secs(2),
        Duration::from_secs(30),
    )
    .await
}

/// Every alert on the topic so far, as JSON.
async fn alerts_on_topic(config: &Config, at_least: usize) -> Vec<serde_json::Value> {
    read_topic(
        &config.kafka.brokers,
        &config.kafka.topics.alerts,
        at_least,
        Duration::from_secs(2),
        Duration::from_secs(30),
    )
    .await
    .iter()
    .map(|r| serde_json::from_slice(r.payload.as_deref().unwrap()).expect("JSON alert"))
    .collect()
}

fn of_rule<'a>(alerts: &'a [serde_json::Value], rule: &str) -> Vec<&'a serde_json::Value> {
    alerts.iter().filter(|a| a["rule"] == rule).collect()
}

fn request<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", bearer(token).parse().unwrap());
    request
}

#[tokio::test]
async fn event_alerts_are_raised_once_with_the_contract_fields() {
    require_stack().await;
    let iso = Isolation::new();
    let config = config(&iso, RULES, &[]);
    let alerting = RunningAlerting::start(config.clone()).await;

    let first = scored(
        interaction("i-1", "cust-a", "billing", 3, Duration::from_secs(30)),
        Some("I will cancel my contract, email me at jo@example.com"),
    );
    produce_scored(&config, &[(Some(0), first.clone())]).await;
    let alerts = alerts_on_topic(&config, 2).await;
    assert_eq!(alerts.len(), 2, "{alerts:#?}");
    let response = of_rule(&alerts, "detractor")[0];
    let keyword = of_rule(&alerts, "churn")[0];
    for alert in [response, keyword] {
        let keys: BTreeSet<&str> = alert
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for key in CONTRACT_KEYS {
            assert!(keys.contains(key), "{key} missing from {alert}");
        }
        assert_eq!(alert["customer_id"], "cust-a");
        assert_eq!(alert["interaction_id"], "i-1");
        assert_eq!(alert["dimension"], "queue");
        assert_eq!(alert["key"], "billing");
        assert_eq!(alert["suppressed_count"], 0);
        let message = alert["message"].as_str().unwrap();
        assert!(
            !message.contains("jo@example.com"),
            "verbatim leaked: {message}"
        );
    }
    assert_eq!(response["kind"], "response");
    assert_eq!(response["severity"], "warning");
    assert_eq!(keyword["kind"], "keyword");
    assert_eq!(keyword["severity"], "critical");

    // A redelivery of the same record and a promoter make nothing new; a
    // later detractor on the same partition shows they were all consumed.
    let promoter = scored(
        interaction("i-2", "cust-b", "billing", 10, Duration::from_secs(20)),
        Some("lovely"),
    );
    let marker = scored(
        interaction("i-3", "cust-z", "billing", 0, Duration::from_secs(10)),
        None,
    );
    produce_scored(
        &config,
        &[(Some(0), first), (Some(0), promoter), (Some(0), marker)],
    )
    .await;
    let again = alerts_on_topic(&config, 3).await;
    let ids: BTreeSet<&str> = again
        .iter()
        .map(|a| a["alert_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        again.len(),
        3,
        "a redelivered event made a second alert: {again:#?}"
    );
    assert_eq!(ids.len(), 3);
    assert_eq!(of_rule(&again, "detractor").len(), 2);

    let mut client = AlertServiceClient::connect(format!("http://{}", alerting.grpc_addr))
        .await
        .unwrap();
    let listed = client
        .list_alerts(request(v1::ListAlertsRequest::default(), READER_TOKEN))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.alerts.len(), 3);
    alerting.stop().await;
}

#[tokio::test]
async fn cooldown_is_shared_by_two_replicas_and_reports_what_it_suppressed() {
    require_stack().await;
    let iso = Isolation::new();
    let config = config(&iso, RULES, &[]);
    let first = RunningAlerting::start(config.clone()).await;
    let second = RunningAlerting::start(config.clone()).await;
    // Same customer on every partition, so both replicas see some of them.
    let burst: Vec<_> = (0..3)
        .map(|p| {
            let i = interaction(
                &format!("c-{p}"),
                "cust-c",
                "retention",
                2,
                Duration::from_secs(30),
            );
            (Some(p), scored(i, None))
        })
        .collect();
    produce_scored(&config, &burst).await;
    // Internal keys, read only to know when the burst was decided and the
    // cooldown is over (no timing guesses).
    let redis = redis::Client::open(redis_url()).unwrap();
    let conn = redis.get_multiplexed_async_connection().await.unwrap();
    let suppressed_key = format!(
        "{}:alerting:suppressed:detractor:customer:cust-c",
        iso.redis_prefix
    );
    let cooldown_key = format!(
        "{}:alerting:cooldown:detractor:customer:cust-c",
        iso.redis_prefix
    );
    wait_until(Duration::from_secs(30), "the burst decided", || {
        let mut conn = conn.clone();
        let key = suppressed_key.clone();
        async move {
            let n: Option<u64> = redis::cmd("GET")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap();
            n == Some(2)
        }
    })
    .await;
    let alerts = alerts_on_topic(&config, 1).await;
    assert_eq!(of_rule(&alerts, "detractor").len(), 1, "{alerts:#?}");
    wait_until(Duration::from_secs(10), "the cooldown over", || {
        let mut conn = conn.clone();
        let key = cooldown_key.clone();
        async move {
            let exists: bool = redis::cmd("EXISTS")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap();
            !exists
        }
    })
    .await;

    // The next detractor alerts and reports the two suppressed ones.
    let later = interaction("c-3", "cust-c", "retention", 1, Duration::from_secs(5));
    produce_scored(&config, &[(None, scored(later, None))]).await;
    let alerts = alerts_on_topic(&config, 2).await;
    let detractor = of_rule(&alerts, "detractor");
    assert_eq!(detractor.len(), 2, "{alerts:#?}");
    let newest = detractor
        .iter()
        .find(|a| a["interaction_id"] == "c-3")
        .expect("alert for the later detractor");
    assert_eq!(newest["suppressed_count"], 2);
    first.stop().await;
    second.stop().await;
}

#[tokio::test]
async fn threshold_and_spike_alerts_need_their_minimum_samples() {
    require_stack().await;
    let iso = Isolation::new();
    let alerting_config = config(&iso, RULES, &[]);
    let scoring_config = iso.config(ServiceName::Scoring, &brokers(), &redis_url());
    let scoring = RunningScoring::start(scoring_config).await;
    let alerting = RunningAlerting::start(alerting_config.clone()).await;
    let minutes = |m: u64| Duration::from_secs(60 * m);

    // Threshold: 9 detractors are below min_responses = 10.
    let thr: Vec<_> = (0..9)
        .map(|n| {
            interaction(
                &format!("t-{n}"),
                &format!("t-cust-{n}"),
                "q-thr",
                2,
                minutes(5),
            )
        })
        .collect();
    produce_interactions(&alerting_config, &thr).await;
    // Spike baseline: 200 responses spread over days 2..5, 10% detractors.
    let baseline: Vec<_> = (0..200)
        .map(|n| {
            let nps = if n % 10 == 0 { 3 } else { 9 };
            interaction(
                &format!("b-{n}"),
                &format!("b-cust-{n}"),
                "q-spk",
                nps,
                minutes(2 * 1440 + 20 * n),
            )
        })
        .collect();
    produce_interactions(&alerting_config, &baseline).await;
    // 20 recent responses, 15 detractors: large rate, too small a sample.
    let recent = |from: u64| -> Vec<v1::Interaction> {
        (from..from + 20)
            .map(|n| {
                let nps = if n % 4 == 0 { 9 } else { 2 };
                interaction(
                    &format!("s-{n}"),
                    &format!("s-cust-{n}"),
                    "q-spk",
                    nps,
                    minutes(10),
                )
            })
            .collect()
    };
    produce_interactions(&alerting_config, &recent(0)).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let alerts = alerts_on_topic(&alerting_config, 1).await;
    // (q-spk's recent detractors may cross the NPS bound: only q-thr counts here.)
    let q_thr_low = |alerts: &[serde_json::Value]| -> usize {
        of_rule(alerts, "queue_nps_low")
            .iter()
            .filter(|a| a["key"] == "q-thr")
            .count()
    };
    assert_eq!(q_thr_low(&alerts), 0, "{alerts:#?}");
    assert!(of_rule(&alerts, "queue_spike").is_empty(), "{alerts:#?}");

    // The 10th detractor and 20 more recent responses cross both minimums.
    let tenth = interaction("t-9", "t-cust-9", "q-thr", 2, minutes(5));
    produce_interactions(&alerting_config, &[tenth]).await;
    produce_interactions(&alerting_config, &recent(20)).await;
    let found: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    wait_until(
        Duration::from_secs(30),
        "threshold and spike alerts",
        || {
            let config = alerting_config.clone();
            let found = found.clone();
            async move {
                let alerts = alerts_on_topic(&config, 1).await;
                let done = q_thr_low(&alerts) > 0 && !of_rule(&alerts, "queue_spike").is_empty();
                *found.lock().unwrap() = alerts;
                done
            }
        },
    )
    .await;
    let alerts = found.lock().unwrap().clone();
    // q-spk's recent detractors cross the NPS bound too; look at q-thr.
    let threshold: Vec<_> = of_rule(&alerts, "queue_nps_low")
        .into_iter()
        .filter(|a| a["key"] == "q-thr")
        .collect();
    assert_eq!(threshold.len(), 1, "{threshold:#?}");
    assert_eq!(threshold[0]["key"], "q-thr");
    assert_eq!(threshold[0]["window"], "1h");
    assert_eq!(threshold[0]["value"], -100.0);
    let spike = of_rule(&alerts, "queue_spike");
    assert_eq!(spike.len(), 1, "{spike:#?}");
    assert_eq!(spike[0]["key"], "q-spk");
    assert_eq!(spike[0]["kind"], "spike");
    // It fires at the first evaluation with ≥ 30 recent responses (75 % of
    // them detractors, give or take the batch split) against the 7-day
    // rest: 20 of 200.
    let value = spike[0]["value"].as_f64().unwrap();
    assert!((0.7..=0.8).contains(&value), "{}", spike[0]);
    assert!(
        (spike[0]["threshold"].as_f64().unwrap() - 0.1).abs() < 1e-9,
        "{}",
        spike[0]
    );
    alerting.stop().await;
    scoring.stop().await;
}

/// (signature header, body) of each request a receiver got.
type Received = Arc<Mutex<Vec<(Option<String>, Vec<u8>)>>>;

/// A webhook receiver that fails its first `failures` requests with 500.
struct Receiver {
    url: String,
    requests: Received,
}

async fn receiver(failures: usize) -> Receiver {
    let requests: Received = Arc::default();
    let seen = requests.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let seen = seen.clone();
                async move {
                    let signature = headers
                        .get("x-cx-signature")
                        .map(|v| v.to_str().unwrap().to_string());
                    let mut seen = seen.lock().unwrap();
                    seen.push((signature, body.to_vec()));
                    if seen.len() <= failures {
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        axum::http::StatusCode::OK
                    }
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Receiver { url, requests }
}

/// What a receiver does with `X-Cx-Signature: t=<ts>,v1=<hex>`.
fn verify(secret: &str, header: &str, body: &[u8]) -> bool {
    let Some((t, v1)) = header
        .split_once(',')
        .and_then(|(t, v)| Some((t.strip_prefix("t=")?, v.strip_prefix("v1=")?)))
    else {
        return false;
    };
    let Ok(tag) = (0..v1.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&v1[i..i + 2], 16))
        .collect::<Result<Vec<u8>, _>>()
    else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let signed = [t.as_bytes(), b".", body].concat();
    ring::hmac::verify(&key, &signed, &tag).is_ok()
}

#[tokio::test]
async fn webhooks_are_signed_retried_and_dead_lettered_after_the_last_try() {
    require_stack().await;
    let iso = Isolation::new();
    let ops = receiver(2).await;
    let dead_port = free_port();
    let extra = format!(
        r#"{DETRACTOR_RULE}
[[alerting.destinations]]
name = "ops"
url = "{ops}"
secret = "s3cret"

[[alerting.destinations]]
name = "down"
url = "http://127.0.0.1:{dead_port}/hook"
format = "slack"

[alerting.routes.queues]
q-web = ["ops", "down"]

[alerting.webhooks]
attempts = 3
initial_backoff_ms = 20
max_backoff_ms = 100
"#,
        ops = ops.url
    );
    let config = config(&iso, &extra, &[]);
    let alerting = RunningAlerting::start(config.clone()).await;
    let detractor = interaction("w-1", "cust-w", "q-web", 0, Duration::from_secs(10));
    produce_scored(&config, &[(None, scored(detractor, None))]).await;

    let dead = dead_letters_on_topic(&config, 1).await;
    assert_eq!(dead.len(), 1, "{dead:#?}");
    let reason = header_str(&dead[0], "cx-error").unwrap();
    assert!(
        reason.starts_with("webhook down failed after 3 attempts"),
        "{reason}"
    );
    // The webhook group's, not the alert group's, though both read alerts.
    assert_eq!(
        header_str(&dead[0], "cx-consumer-group").as_deref(),
        config.file["alerting"]["webhook_group_id"].as_str()
    );
    let dead_alert: serde_json::Value =
        serde_json::from_slice(dead[0].payload.as_deref().unwrap()).unwrap();
    assert_eq!(dead_alert["interaction_id"], "w-1");

    let requests = ops.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 3, "two failures, then the delivery");
    for (signature, body) in &requests {
        let signature = signature.as_deref().expect("signed");
        assert!(
            verify("s3cret", signature, body),
            "signature {signature} does not verify"
        );
        assert!(!verify("wrong", signature, body));
    }
    let delivered: serde_json::Value = serde_json::from_slice(&requests[2].1).unwrap();
    assert_eq!(delivered["rule"], "detractor");
    assert_eq!(delivered["customer_id"], "cust-w");
    alerting.stop().await;
}

/// Alerts past a destination's rate limit go to its digest; a digest that
/// cannot be delivered is dead-lettered alert by alert, each naming its
/// record's partition and offset on cx.alerts.v1 as any dead letter does.
#[tokio::test]
async fn an_undeliverable_digest_is_dead_lettered_with_each_alerts_position() {
    require_stack().await;
    let iso = Isolation::new();
    let dead_port = free_port();
    let extra = format!(
        r#"{DETRACTOR_RULE}
[[alerting.destinations]]
name = "down"
url = "http://127.0.0.1:{dead_port}/hook"
rate_limit_per_minute = 1

[alerting.routes.queues]
q-dig = ["down"]

[alerting.webhooks]
attempts = 2
initial_backoff_ms = 20
max_backoff_ms = 50
digest_interval_s = 1
"#
    );
    let config = config(&iso, &extra, &[]);
    let alerting = RunningAlerting::start(config.clone()).await;
    let detractors: Vec<_> = (1..=3)
        .map(|i| {
            let customer = format!("cust-dig-{i}");
            let one = interaction(
                &format!("dig-{i}"),
                &customer,
                "q-dig",
                0,
                Duration::from_secs(10),
            );
            (None, scored(one, None))
        })
        .collect();
    produce_scored(&config, &detractors).await;

    // One sent (and dead-lettered) alone, two through the digest.
    let dead = dead_letters_on_topic(&config, 3).await;
    alerting.stop().await;
    assert_eq!(dead.len(), 3, "{dead:#?}");
    let digested = dead
        .iter()
        .filter(|d| header_str(d, "cx-error").is_some_and(|e| e.contains("digest failed")))
        .count();
    assert_eq!(digested, 2, "{dead:#?}");
    let alerts = read_topic(
        &config.kafka.brokers,
        &config.kafka.topics.alerts,
        3,
        Duration::from_secs(1),
        Duration::from_secs(10),
    )
    .await;
    for letter in &dead {
        assert_eq!(
            header_str(letter, "cx-source-topic").as_deref(),
            Some(config.kafka.topics.alerts.as_str())
        );
        let position: (i32, i64) = (
            header_str(letter, "cx-source-partition")
                .unwrap()
                .parse()
                .unwrap(),
            header_str(letter, "cx-source-offset")
                .unwrap()
                .parse()
                .unwrap(),
        );
        let source = alerts
            .iter()
            .find(|a| (a.partition, a.offset) == position)
            .unwrap_or_else(|| panic!("no alert at {position:?}: {letter:#?}"));
        assert_eq!(source.payload, letter.payload, "the alert at {position:?}");
    }
}

/// A digest flusher for destination `ops` at `url`, on the test's Redis
/// prefix and topics; retries 2 s apart.
fn digest_flusher(
    iso: &Isolation,
    config: &Config,
    url: &str,
    interval: Duration,
) -> cx_alerting::webhook::DigestFlusher {
    use cx_alerting::webhook::{
        DeliveryPolicy, Destination, DigestFlusher, Directory, PayloadFormat, Routes, Sender,
    };
    let destination = Destination {
        name: "ops".into(),
        url: url.into(),
        secret: None,
        format: PayloadFormat::Json,
        rate_limit_per_minute: 1,
    };
    let directory = Directory::new(&[destination], &Routes::default(), None, None).unwrap();
    DigestFlusher {
        directory: Arc::new(directory),
        sender: Arc::new(Sender::new(DeliveryPolicy {
            attempts: 5,
            initial_backoff_ms: 2_000,
            max_backoff_ms: 2_000,
            timeout_ms: 5_000,
            concurrency: 1,
            digest_interval_s: 1,
        })),
        redis: cx_runtime::RedisPool::new(&redis_url()).unwrap(),
        prefix: iso.redis_prefix.clone(),
        interval,
        producer: Arc::new(
            kafka::SharedProducer::new(&config.kafka, "cx-test", kafka::Sending::Batches, &[])
                .unwrap(),
        ),
        dead_letters: kafka::DeadLetters {
            topic: config.kafka.topics.deadletter.clone(),
            consumer_group: "cx-test-webhooks".into(),
        },
        alerts_topic: config.kafka.topics.alerts.clone(),
    }
}

/// An alert as the digest list holds it.
fn digest_alert(alert_id: &str) -> String {
    serde_json::json!({
        "alert_id": alert_id, "rule": "detractor", "kind": "response",
        "severity": "warning", "dimension": "queue", "key": "billing",
        "customer_id": "cust-d", "interaction_id": "i-d", "window": null,
        "metric": "nps", "value": 2.0, "threshold": 6.0, "message": "NPS 2",
        "created_at": "2026-01-01T00:00:00Z", "suppressed_count": 0,
        "acknowledged": false, "acknowledged_by": null, "acknowledged_at": null,
        "agent_id": null, "team_id": null, "queue_id": "billing",
    })
    .to_string()
}

/// A webhook receiver that takes each request at once and answers 200
/// after 1.5 s, counting requests received and answered.
struct SlowReceiver {
    url: String,
    received: Arc<std::sync::atomic::AtomicUsize>,
    answered: Arc<std::sync::atomic::AtomicUsize>,
}

async fn slow_receiver() -> SlowReceiver {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (received, answered) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (got, done) = (received.clone(), answered.clone());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let (got, done) = (got.clone(), done.clone());
            async move {
                got.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(1500)).await;
                done.fetch_add(1, Ordering::SeqCst);
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    SlowReceiver {
        url,
        received,
        answered,
    }
}

/// A flush whose delivery outlasted its lock (2 × the digest interval)
/// leaves alone the digest another instance took meanwhile, instead of
/// deleting it unsent.
#[tokio::test]
async fn a_flush_that_outlasted_its_lock_leaves_the_next_digest_alone() {
    use std::sync::atomic::Ordering;
    require_stack().await;
    let iso = Isolation::new();
    let config = config(&iso, "", &[]);
    let SlowReceiver {
        url,
        received,
        answered,
    } = slow_receiver().await;
    let redis = redis::Client::open(redis_url()).unwrap();
    let mut conn = redis.get_multiplexed_async_connection().await.unwrap();
    let base = format!("{}:alerting:digest:ops", iso.redis_prefix);
    let (sending, lock) = (format!("{base}:sending"), format!("{base}:lock"));
    redis::cmd("RPUSH")
        .arg(&base)
        .arg(digest_alert("al_first"))
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(
        digest_flusher(&iso, &config, &url, Duration::from_millis(200)).run(stop.clone()),
    );
    wait_until(Duration::from_secs(10), "the first digest sent", || async {
        received.load(Ordering::SeqCst) >= 1
    })
    .await;
    // Say the lock lapsed (Redis out for longer than it, so it was not
    // renewed) and another instance took the next digest.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let next = digest_alert("al_next");
    redis::pipe()
        .del(&sending)
        .rpush(&sending, &next)
        .cmd("SET")
        .arg(&lock)
        .arg("another-instance")
        .arg("PX")
        .arg(10_000)
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    wait_until(
        Duration::from_secs(10),
        "the first delivery answered",
        || async { answered.load(Ordering::SeqCst) >= 1 },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.cancel();
    running.await.unwrap();

    let left: Vec<String> = redis::cmd("LRANGE")
        .arg(&sending)
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, [next], "the other instance's digest, still to send");
}

/// A digest delivery that lasts longer than the lock (2 × the digest
/// interval) keeps its lock: another instance flushing meanwhile finds it
/// held and does not send the same digest a second time.
#[tokio::test]
async fn a_slow_digest_delivery_keeps_its_lock_and_is_sent_once() {
    use std::sync::atomic::Ordering;
    require_stack().await;
    let iso = Isolation::new();
    let config = config(&iso, "", &[]);
    // Its answers take almost four 400 ms locks.
    let SlowReceiver { url, received, .. } = slow_receiver().await;
    let redis = redis::Client::open(redis_url()).unwrap();
    let mut conn = redis.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("RPUSH")
        .arg(format!("{}:alerting:digest:ops", iso.redis_prefix))
        .arg(digest_alert("al_once"))
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    // Two instances, each flushing every 200 ms.
    let flushers: Vec<_> = (0..2)
        .map(|_| {
            tokio::spawn(
                digest_flusher(&iso, &config, &url, Duration::from_millis(200)).run(stop.clone()),
            )
        })
        .collect();
    wait_until(Duration::from_secs(10), "the digest sent", || async {
        received.load(Ordering::SeqCst) >= 1
    })
    .await;
    // Past the first delivery's answer, with many flushes of both meanwhile.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    stop.cancel();
    for flusher in flushers {
        flusher.await.unwrap();
    }
    assert_eq!(
        received.load(Ordering::SeqCst),
        1,
        "one delivery of the digest"
    );
}

/// A digest whose retries a shutdown cuts short is not dead-lettered: it
/// stays taken in Redis, and the next flusher (after a restart) sends it.
#[tokio::test]
async fn a_digest_cut_short_by_shutdown_is_sent_after_restart_not_dead_lettered() {
    require_stack().await;
    let iso = Isolation::new();
    let config = config(&iso, "", &[]);
    kafka::ensure_topics(&config.kafka, &[&config.kafka.topics.deadletter])
        .await
        .unwrap();
    let flusher = |url: &str| digest_flusher(&iso, &config, url, Duration::from_millis(200));
    let redis = redis::Client::open(redis_url()).unwrap();
    let mut conn = redis.get_multiplexed_async_connection().await.unwrap();
    let digest_key = format!("{}:alerting:digest:ops", iso.redis_prefix);
    redis::cmd("RPUSH")
        .arg(&digest_key)
        .arg(digest_alert("al_digest"))
        .query_async::<()>(&mut conn)
        .await
        .unwrap();

    // The receiver refuses; the flusher stops between two tries.
    let failing = receiver(usize::MAX).await;
    let stop = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(flusher(&failing.url).run(stop.clone()));
    wait_until(Duration::from_secs(10), "a first digest try", || async {
        !failing.requests.lock().unwrap().is_empty()
    })
    .await;
    stop.cancel();
    running.await.unwrap();
    // Its lock is given back: another replica need not wait for it to lapse.
    let lock: Option<String> = redis::cmd("GET")
        .arg(format!("{digest_key}:lock"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(lock, None, "the stopped flusher's digest lock");
    let dead = read_topic(
        &config.kafka.brokers,
        &config.kafka.topics.deadletter,
        1,
        Duration::from_secs(1),
        Duration::from_secs(3),
    )
    .await;
    let reasons: Vec<Option<String>> = dead.iter().map(|d| header_str(d, "cx-error")).collect();
    assert!(
        reasons.is_empty(),
        "dead-lettered while stopping: {reasons:?}"
    );

    // After a restart the digest goes out, with the alert in it.
    let healthy = receiver(0).await;
    let stop = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(flusher(&healthy.url).run(stop.clone()));
    wait_until(Duration::from_secs(10), "the digest sent", || async {
        !healthy.requests.lock().unwrap().is_empty()
    })
    .await;
    stop.cancel();
    running.await.unwrap();
    let sent = healthy.requests.lock().unwrap()[0].1.clone();
    assert!(
        String::from_utf8_lossy(&sent).contains("al_digest"),
        "{}",
        String::from_utf8_lossy(&sent)
    );
}

#[tokio::test]
async fn alert_service_lists_acknowledges_and_watches_from_a_resume_point() {
    require_stack().await;
    let iso = Isolation::new();
    let config = config(&iso, RULES, &[]);
    let alerting = RunningAlerting::start(config.clone()).await;
    let mut client = AlertServiceClient::connect(format!("http://{}", alerting.grpc_addr))
        .await
        .unwrap();

    let one = interaction("k-1", "cust-k1", "tech", 4, Duration::from_secs(10));
    produce_scored(&config, &[(None, scored(one, None))]).await;
    let mut watch = client
        .watch_alerts(request(
            v1::WatchAlertsRequest {
                since: Some(timestamp(
                    time::OffsetDateTime::now_utc() - time::Duration::hours(1),
                )),
                ..Default::default()
            },
            READER_TOKEN,
        ))
        .await
        .unwrap()
        .into_inner();
    let first = tokio::time::timeout(Duration::from_secs(20), watch.message())
        .await
        .expect("an alert within 20 s")
        .unwrap()
        .expect("stream open");
    assert_eq!(first.interaction_id.as_deref(), Some("k-1"));

    // Acknowledge needs alerts:write.
    let refused = client
        .acknowledge_alert(request(
            v1::AcknowledgeAlertRequest {
                alert_id: first.alert_id.clone(),
                acknowledged_by: String::new(),
            },
            READER_TOKEN,
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    let acked = client
        .acknowledge_alert(request(
            v1::AcknowledgeAlertRequest {
                alert_id: first.alert_id.clone(),
                acknowledged_by: "maria".into(),
            },
            OPERATOR_TOKEN,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(acked.acknowledged);
    assert_eq!(acked.acknowledged_by.as_deref(), Some("maria"));
    let missing = client
        .acknowledge_alert(request(
            v1::AcknowledgeAlertRequest {
                alert_id: "al_nope".into(),
                acknowledged_by: String::new(),
            },
            OPERATOR_TOKEN,
        ))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    let bad = client
        .list_alerts(request(
            v1::ListAlertsRequest {
                severity: "loud".into(),
                ..Default::default()
            },
            READER_TOKEN,
        ))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert!(bad.message().contains("severity"), "{}", bad.message());

    // Resume after the first alert: only the next one arrives.
    let two = interaction("k-2", "cust-k2", "tech", 5, Duration::from_secs(5));
    produce_scored(&config, &[(None, scored(two, None))]).await;
    let mut resumed = client
        .watch_alerts(request(
            v1::WatchAlertsRequest {
                after_alert_id: first.alert_id.clone(),
                ..Default::default()
            },
            READER_TOKEN,
        ))
        .await
        .unwrap()
        .into_inner();
    let next = tokio::time::timeout(Duration::from_secs(20), resumed.message())
        .await
        .expect("the next alert within 20 s")
        .unwrap()
        .expect("stream open");
    assert_eq!(next.interaction_id.as_deref(), Some("k-2"));

    let acknowledged = client
        .list_alerts(request(
            v1::ListAlertsRequest {
                acknowledged: Some(true),
                ..Default::default()
            },
            READER_TOKEN,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(acknowledged.alerts.len(), 1);
    assert_eq!(acknowledged.alerts[0].alert_id, first.alert_id);
    // Pagination: one per page, newest first, then the end.
    let page = client
        .list_alerts(request(
            v1::ListAlertsRequest {
                page_size: 1,
                ..Default::default()
            },
            READER_TOKEN,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.alerts[0].interaction_id.as_deref(), Some("k-2"));
    let rest = client
        .list_alerts(request(
            v1::ListAlertsRequest {
                page_size: 1,
                page_token: page.next_page_token,
                ..Default::default()
            },
            READER_TOKEN,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.alerts[0].interaction_id.as_deref(), Some("k-1"));
    alerting.stop().await;
}

#[tokio::test]
async fn a_poison_record_is_dead_lettered_and_the_stream_goes_on() {
    require_stack().await;
    let iso = Isolation::new();
    let config = config(&iso, RULES, &[]);
    let alerting = RunningAlerting::start(config.clone()).await;
    let scored_topic = config.kafka.topics.scored.clone();
    produce(
        &config,
        &scored_topic,
        vec![(Some(0), "junk".into(), b"\xff\x00garbage".to_vec())],
    )
    .await;
    // Records that decode but break the contract's rules: a detractor each,
    // so acting on them would raise alerts.
    let recent = Duration::from_secs(5);
    let no_customer = interaction("p-2", "", "billing", 1, recent);
    let control_char = interaction("p-3", "cust\n\u{0}", "billing", 1, recent);
    let out_of_range = interaction("p-4", "cust-q", "billing", -5, recent);
    let far_ahead = v1::Interaction {
        occurred_at: Some(timestamp(
            time::OffsetDateTime::now_utc() + time::Duration::days(30),
        )),
        ..interaction("p-5", "cust-r", "billing", 1, recent)
    };
    let invalid = [no_customer, control_char, out_of_range, far_ahead];
    produce_scored(
        &config,
        &invalid
            .into_iter()
            .map(|i| (Some(0), scored(i, None)))
            .collect::<Vec<_>>(),
    )
    .await;
    let good = interaction("p-1", "cust-p", "billing", 1, recent);
    produce_scored(&config, &[(Some(0), scored(good, None))]).await;

    let alerts = alerts_on_topic(&config, 1).await;
    let detractor_alerts = of_rule(&alerts, "detractor");
    assert_eq!(detractor_alerts.len(), 1, "{alerts:?}");
    assert_eq!(detractor_alerts[0]["interaction_id"], "p-1");
    let dead = read_topic(
        &config.kafka.brokers,
        &config.kafka.topics.deadletter,
        5,
        Duration::from_secs(1),
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(dead.len(), 5);
    assert!(header_str(&dead[0], "cx-error")
        .unwrap()
        .contains("ScoredInteraction"));
    // One batch's dead letters are sent together: in any order.
    let mut fields: Vec<String> = dead[1..]
        .iter()
        .map(|d| {
            let reason = header_str(d, "cx-error").unwrap();
            let field = reason
                .strip_prefix("invalid interaction: ")
                .unwrap_or(&reason);
            field.split(':').next().unwrap_or_default().to_string()
        })
        .collect();
    fields.sort();
    assert_eq!(fields, ["customer_id", "customer_id", "nps", "occurred_at"]);
    assert_eq!(
        header_str(&dead[0], "cx-source-topic").unwrap(),
        scored_topic
    );
    assert_eq!(
        header_str(&dead[0], "cx-consumer-group").as_deref(),
        config.file["alerting"]["group_id"].as_str()
    );
    alerting.stop().await;
}

#[tokio::test]
async fn a_bad_rule_stops_the_binary_with_exit_64_naming_the_rule_and_field() {
    let path = std::env::temp_dir().join(format!("{}.toml", unique("bad-rules")));
    std::fs::write(
        &path,
        "[[alerting.rules]]\nname = \"t\"\nkind = \"threshold\"\nseverity = \"warning\"\n\
         dimension = \"queue\"\nwindow = \"1h\"\nmetric = \"happiness\"\nop = \"below\"\nbound = 0.0\n",
    )
    .unwrap();
    let output = tokio::process::Command::new(binary("cx-alerting"))
        .env("CX_CONFIG", &path)
        .env("CX_GRPC_ADDR", "127.0.0.1:0")
        .env("CX_HTTP_ADDR", "127.0.0.1:0")
        .output()
        .await
        .expect("run cx-alerting");
    assert_eq!(output.status.code(), Some(64), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("alerting.rules") && stderr.contains("metric"),
        "{stderr}"
    );
}

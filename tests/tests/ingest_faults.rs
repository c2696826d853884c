//! cx-ingest under real failures: the broker taken away mid-stream, and
//! SIGTERM to the real binary during load.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cx_runtime::ServiceName;
use cx_tests::*;
use serde_json::{json, Value};

async fn post(url: &str, body: &Value) -> Result<(u16, Value), reqwest::Error> {
    let response = reqwest::Client::new()
        .post(url)
        .header("authorization", bearer(WRITER_TOKEN))
        .json(body)
        .send()
        .await?;
    let status = response.status().as_u16();
    Ok((
        status,
        response.json::<Value>().await.unwrap_or(Value::Null),
    ))
}

#[tokio::test]
async fn broker_gone_answers_503_leaves_nothing_behind_and_recovers_without_restart() {
    require_stack().await;
    let mut broker = PrivateBroker::start().await;
    let iso = Isolation::new();
    let ingest =
        RunningIngest::start(iso.config(ServiceName::Ingest, &broker.brokers(), &redis_url()))
            .await;
    let url = ingest.http("/v1/interactions");

    assert_eq!(
        post(&url, &interaction_json("k-1", "c")).await.unwrap().0,
        202
    );

    broker.proxy.cut();
    let (status, body) = post(&url, &interaction_json("k-2", "c")).await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable");
    let metrics = metrics_text(&ingest.http("/metrics")).await;
    let refused = format!(
        "cx_kafka_produce_errors_total{{topic=\"{}\"}} 1",
        iso.topic("cx.interactions.v1")
    );
    assert!(
        metrics.lines().any(|line| line == refused),
        "{refused}:\n{metrics}"
    );
    // Nothing half-done: no idempotency mark, so the retry is not refused.
    let redis = redis::Client::open(redis_url()).unwrap();
    let mut conn = redis.get_multiplexed_async_connection().await.unwrap();
    let mark: Option<String> = redis::cmd("GET")
        .arg(format!("{}:ingest:seen:k-2", iso.redis_prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(mark, None, "a refused interaction is not marked seen");
    // Readiness follows the broker.
    wait_until(
        Duration::from_secs(20),
        "/readyz reports not ready",
        || async { http_status(&ingest.http("/readyz")).await == Some(503) },
    )
    .await;

    broker.proxy.restore().await;
    let mut answer = None;
    for _ in 0..60 {
        let (status, body) = post(&url, &interaction_json("k-2", "c")).await.unwrap();
        if status == 202 {
            answer = Some(body);
            break;
        }
        eprintln!("retry answered {status}: {body}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        answer.expect("accepted once the broker is back, same process"),
        json!({"interaction_id": "k-2", "duplicate": false})
    );
    wait_until(
        Duration::from_secs(20),
        "/readyz reports ready again",
        || async { http_status(&ingest.http("/readyz")).await == Some(200) },
    )
    .await;

    let ids =
        published_interaction_ids(&broker.brokers(), &iso.topic("cx.interactions.v1"), 2).await;
    assert_eq!(ids, ["k-1", "k-2"], "each exactly once");
    ingest.stop().await;
}

/// A stalled broker (it takes the produce request and answers too late) is
/// the one case ingest cannot settle: the record may be on the topic or
/// not, and Kafka cannot say which. Ingest answers 503 saying so and
/// releases the claim, so the client's retry publishes again; the first
/// retry is accepted (the producer whose sequence was in doubt was
/// replaced, so no retry meets its fence); the topic holds the interaction
/// once or twice, and consumers count it once (scoring.rs,
/// every_interaction_counts_once_even_when_the_topic_holds_it_twice).
#[tokio::test]
async fn a_stalled_broker_gets_a_503_that_says_the_write_is_in_doubt_and_the_retry_is_accepted() {
    require_stack().await;
    let broker = PrivateBroker::start().await;
    let iso = Isolation::new();
    let mut config = iso.config(ServiceName::Ingest, &broker.brokers(), &redis_url());
    config
        .kafka
        .properties
        .insert("message.timeout.ms".into(), "2000".into());
    let ingest = RunningIngest::start(config).await;
    let url = ingest.http("/v1/interactions");
    assert_eq!(
        post(&url, &interaction_json("s-1", "c")).await.unwrap().0,
        202
    );

    signal(broker.pid(), "STOP");
    let stalled = post(&url, &interaction_json("s-2", "c")).await;
    signal(broker.pid(), "CONT");
    let (status, body) = stalled.unwrap();
    assert_eq!(status, 503, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("may or may not have been written"),
        "{body}"
    );

    let (status, body) = post(&url, &interaction_json("s-2", "c")).await.unwrap();
    assert_eq!(status, 202, "the first retry after the stall: {body}");
    assert_eq!(body, json!({"interaction_id": "s-2", "duplicate": false}));

    let ids =
        published_interaction_ids(&broker.brokers(), &iso.topic("cx.interactions.v1"), 2).await;
    let copies = |id: &str| ids.iter().filter(|seen| *seen == id).count();
    assert_eq!(copies("s-1"), 1, "{ids:?}");
    assert!((1..=2).contains(&copies("s-2")), "{ids:?}");
    assert_eq!(ids.len(), 1 + copies("s-2"), "{ids:?}");
    ingest.stop().await;
}

/// Four clients sending batches of 50 until refused; what was attempted and
/// what was acknowledged.
struct Load {
    attempted: Arc<Mutex<Vec<Value>>>,
    acknowledged: Arc<Mutex<HashSet<String>>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(base: &str) -> Load {
        let attempted = Arc::new(Mutex::new(Vec::new()));
        let acknowledged = Arc::new(Mutex::new(HashSet::<String>::new()));
        let mut workers = Vec::new();
        for worker in 0..4 {
            let (attempted, acknowledged) = (attempted.clone(), acknowledged.clone());
            let url = format!("{base}/v1/interactions:batch");
            workers.push(tokio::spawn(async move {
                for round in 0.. {
                    let items: Vec<Value> = (0..50)
                        .map(|k| {
                            interaction_json(&format!("w{worker}-r{round}-{k}"), &format!("c{k}"))
                        })
                        .collect();
                    attempted.lock().unwrap().extend(items.iter().cloned());
                    match post(&url, &json!({ "interactions": items })).await {
                        Ok((200, body)) => {
                            let mut acked = acknowledged.lock().unwrap();
                            for result in body["results"].as_array().unwrap() {
                                if result["status"] == "accepted" {
                                    acked.insert(
                                        result["interaction_id"].as_str().unwrap().to_string(),
                                    );
                                }
                            }
                        }
                        // Refused while draining, or the server is gone: stop.
                        Ok(_) | Err(_) => return,
                    }
                }
            }));
        }
        Load {
            attempted,
            acknowledged,
            workers,
        }
    }

    async fn wait_acknowledged(&self, at_least: usize) {
        wait_until(Duration::from_secs(30), "interactions acknowledged", || {
            let n = self.acknowledged.lock().unwrap().len();
            async move { n >= at_least }
        })
        .await;
    }

    async fn finish(self) -> (Vec<Value>, HashSet<String>) {
        for worker in self.workers {
            worker.await.unwrap();
        }
        let attempted = self.attempted.lock().unwrap().clone();
        let acknowledged = self.acknowledged.lock().unwrap().clone();
        (attempted, acknowledged)
    }
}

#[tokio::test]
async fn sigterm_during_load_exits_zero_and_every_acknowledged_interaction_is_on_the_topic() {
    require_stack().await;
    let iso = Isolation::new();
    let mut ingest = ServiceProcess::start("cx-ingest", "ingest", &iso, "").await;
    let load = Load::start(&ingest.base);
    load.wait_acknowledged(500).await;

    signal(ingest.child.id().expect("pid"), "TERM");
    let status = tokio::time::timeout(Duration::from_secs(30), ingest.child.wait())
        .await
        .expect("cx-ingest exits within the grace period")
        .unwrap();
    assert_eq!(status.code(), Some(0), "SIGTERM drains and exits 0");
    let (_, acked) = load.finish().await;

    let records = read_topic(
        &brokers(),
        &iso.topic("cx.interactions.v1"),
        acked.len(),
        Duration::from_millis(2000),
        Duration::from_secs(60),
    )
    .await;
    let ids = interaction_ids(&records);
    let on_topic: HashSet<String> = ids.iter().cloned().collect();
    let missing: Vec<&String> = acked.difference(&on_topic).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged but not on the topic, e.g. {:?}",
        missing.len(),
        missing.first()
    );
    assert_eq!(ids.len(), on_topic.len(), "no interaction published twice");
}

#[tokio::test]
async fn kill_9_during_load_then_client_retries_publish_everything_and_acknowledged_ones_once() {
    require_stack().await;
    let iso = Isolation::new();
    // Short leases so the retries after the crash need not wait 30 s.
    let mut ingest = ServiceProcess::start("cx-ingest", "ingest", &iso, "claim_lease_s = 1").await;
    let load = Load::start(&ingest.base);
    load.wait_acknowledged(500).await;

    signal(ingest.child.id().expect("pid"), "KILL");
    let _ = ingest.child.wait().await;
    let (attempted, acked) = load.finish().await;

    // The clients retry everything they sent once the service is back.
    ingest.restart().await;
    let url = format!("{}/v1/interactions", ingest.base);
    let mut outcomes: Vec<(String, Value)> = Vec::new();
    for item in &attempted {
        let id = item["interaction_id"].as_str().unwrap().to_string();
        let mut answer = None;
        for _ in 0..50 {
            let (status, body) = post(&url, item).await.unwrap();
            if status == 202 {
                answer = Some(body);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        outcomes.push((id, answer.expect("every retry eventually answered 202")));
    }
    for (id, body) in &outcomes {
        if acked.contains(id) {
            assert_eq!(
                body["duplicate"], true,
                "{id} was acknowledged before the crash"
            );
        }
    }

    let records = read_topic(
        &brokers(),
        &iso.topic("cx.interactions.v1"),
        attempted.len(),
        Duration::from_millis(2000),
        Duration::from_secs(60),
    )
    .await;
    let ids = interaction_ids(&records);
    let mut copies: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for id in &ids {
        *copies.entry(id.as_str()).or_default() += 1;
    }
    for (id, _) in &outcomes {
        assert!(
            copies.contains_key(id.as_str()),
            "{id} never reached the topic"
        );
    }
    for id in &acked {
        assert_eq!(
            copies[id.as_str()],
            1,
            "{id} acknowledged once, published once"
        );
    }
    // Only what was in flight at the kill (at most 4 batches of 50) may have
    // a second copy; consumers count interaction_ids once.
    let twice = copies.values().filter(|n| **n > 1).count();
    assert!(twice <= 200, "{twice} interactions on the topic twice");
}

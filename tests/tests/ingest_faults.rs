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

    let records = read_topic(
        &broker.brokers(),
        &iso.topic("cx.interactions.v1"),
        2,
        Duration::from_millis(1500),
        Duration::from_secs(30),
    )
    .await;
    let mut ids: Vec<String> = records
        .iter()
        .map(|r| r.interaction().interaction_id)
        .collect();
    ids.sort();
    assert_eq!(ids, ["k-1", "k-2"], "each exactly once");
    ingest.stop().await;
}

#[tokio::test]
async fn sigterm_during_load_exits_zero_and_every_acknowledged_interaction_is_on_the_topic() {
    require_stack().await;
    let iso = Isolation::new();
    let (grpc_port, http_port) = (free_port(), free_port());
    let config_path = std::env::temp_dir().join(format!("{}.toml", unique("cx-ingest-sigterm")));
    let toml = iso
        .config_toml(&brokers(), &redis_url())
        .replace(
            "grpc_addr = \"127.0.0.1:0\"",
            &format!("grpc_addr = \"127.0.0.1:{grpc_port}\""),
        )
        .replace(
            "http_addr = \"127.0.0.1:0\"",
            &format!("http_addr = \"127.0.0.1:{http_port}\""),
        );
    std::fs::write(&config_path, toml).unwrap();
    let mut child = tokio::process::Command::new(binary("cx-ingest"))
        .env("CX_CONFIG", &config_path)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .expect("start cx-ingest");
    let base = format!("http://127.0.0.1:{http_port}");
    wait_until(Duration::from_secs(60), "cx-ingest ready", || {
        let url = format!("{base}/readyz");
        async move { http_status(&url).await == Some(200) }
    })
    .await;

    let acknowledged = Arc::new(Mutex::new(HashSet::<String>::new()));
    let mut workers = Vec::new();
    for worker in 0..4 {
        let acknowledged = acknowledged.clone();
        let url = format!("{base}/v1/interactions:batch");
        workers.push(tokio::spawn(async move {
            for round in 0.. {
                let items: Vec<Value> = (0..50)
                    .map(|k| interaction_json(&format!("w{worker}-r{round}-{k}"), &format!("c{k}")))
                    .collect();
                match post(&url, &json!({ "interactions": items })).await {
                    Ok((200, body)) => {
                        let mut acked = acknowledged.lock().unwrap();
                        for result in body["results"].as_array().unwrap() {
                            if result["status"] == "accepted" {
                                acked
                                    .insert(result["interaction_id"].as_str().unwrap().to_string());
                            }
                        }
                    }
                    // Refused while draining, or the server is gone: stop.
                    Ok(_) | Err(_) => return round,
                }
            }
            unreachable!()
        }));
    }
    wait_until(
        Duration::from_secs(30),
        "some interactions acknowledged",
        || {
            let n = acknowledged.lock().unwrap().len();
            async move { n >= 500 }
        },
    )
    .await;
    signal(child.id().expect("pid"), "TERM");
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("cx-ingest exits within the grace period")
        .unwrap();
    assert_eq!(status.code(), Some(0), "SIGTERM drains and exits 0");
    for worker in workers {
        worker.await.unwrap();
    }

    let acked = acknowledged.lock().unwrap().clone();
    let records = read_topic(
        &brokers(),
        &iso.topic("cx.interactions.v1"),
        acked.len(),
        Duration::from_millis(2000),
        Duration::from_secs(60),
    )
    .await;
    let on_topic: HashSet<String> = records
        .iter()
        .map(|r| r.interaction().interaction_id)
        .collect();
    let missing: Vec<&String> = acked.difference(&on_topic).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged but not on the topic, e.g. {:?}",
        missing.len(),
        missing.first()
    );
    assert_eq!(
        records.len(),
        on_topic.len(),
        "no interaction published twice"
    );
    let _ = std::fs::remove_file(config_path);
}

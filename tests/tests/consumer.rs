//! The shared at-least-once consumer loop against the real broker.

use std::time::Duration;

use cx_runtime::consumer::{self, BatchHandler, ConsumerSettings};
use cx_runtime::{kafka, ServiceName};
use cx_tests::*;
use rdkafka::message::OwnedMessage;
use rdkafka::producer::FutureRecord;
use rdkafka::Message;
use tokio_util::sync::CancellationToken;

/// Records what it saw; refuses the first `fail_first` attempts.
struct Recorder {
    seen: Vec<String>,
    attempts: usize,
    fail_first: usize,
    unhealthy_reported: bool,
    stop_after: usize,
    stop: CancellationToken,
}

impl BatchHandler for Recorder {
    async fn handle(&mut self, batch: &[OwnedMessage]) -> Result<(), String> {
        self.attempts += 1;
        if self.attempts <= self.fail_first {
            return Err("dependency down".into());
        }
        for m in batch {
            self.seen
                .push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap());
        }
        if self.seen.len() >= self.stop_after {
            self.stop.cancel();
        }
        Ok(())
    }

    fn healthy(&mut self, healthy: bool) {
        if !healthy {
            self.unhealthy_reported = true;
        }
    }
}

async fn produce(config: &cx_runtime::Config, topic: &str, values: impl Iterator<Item = String>) {
    let producer = kafka::producer(&config.kafka, "cx-test").unwrap();
    for value in values {
        producer
            .send(
                FutureRecord::to(topic).key("k").payload(&value),
                Duration::from_secs(5),
            )
            .await
            .expect("produce");
    }
}

#[tokio::test]
async fn offsets_move_only_after_the_batch_succeeds_and_survive_a_restart() {
    require_stack().await;
    let iso = Isolation::new();
    let config = iso.config(ServiceName::Scoring, &brokers(), &redis_url());
    let topic = iso.topic("cx.consumer-test");
    kafka::ensure_topics(&config.kafka, &[&topic])
        .await
        .unwrap();
    produce(&config, &topic, (0..20).map(|i| format!("first-{i}"))).await;

    let settings = ConsumerSettings {
        retry_backoff: (Duration::from_millis(10), Duration::from_millis(50)),
        ..ConsumerSettings::new(unique("cx-test-group"), vec![topic.clone()])
    };
    let stop = CancellationToken::new();
    let mut recorder = Recorder {
        seen: Vec::new(),
        attempts: 0,
        fail_first: 3,
        unhealthy_reported: false,
        stop_after: 20,
        stop: stop.clone(),
    };
    let stream = consumer::consumer(&config.kafka, &settings).unwrap();
    tokio::time::timeout(
        Duration::from_secs(60),
        consumer::run(&stream, &settings, &mut recorder, &stop),
    )
    .await
    .expect("all 20 consumed")
    .unwrap();
    drop(stream);
    let mut seen = recorder.seen.clone();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 20, "every record handled after the failures");
    assert!(recorder.attempts > 3, "the failing batch was retried");
    assert!(recorder.unhealthy_reported);

    // A restart of the group resumes after the committed offsets.
    produce(&config, &topic, (0..5).map(|i| format!("second-{i}"))).await;
    let stop = CancellationToken::new();
    let mut second = Recorder {
        seen: Vec::new(),
        attempts: 0,
        fail_first: 0,
        unhealthy_reported: false,
        stop_after: 5,
        stop: stop.clone(),
    };
    let stream = consumer::consumer(&config.kafka, &settings).unwrap();
    tokio::time::timeout(
        Duration::from_secs(60),
        consumer::run(&stream, &settings, &mut second, &stop),
    )
    .await
    .expect("the 5 new records consumed")
    .unwrap();
    assert!(
        second.seen.iter().all(|v| v.starts_with("second-")),
        "nothing committed was redelivered: {:?}",
        second.seen
    );
    assert_eq!(second.seen.len(), 5);
}

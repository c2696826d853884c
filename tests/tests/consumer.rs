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

/// A config and a topic of this test's own, created on the broker.
async fn isolated_topic(name: &str) -> (cx_runtime::Config, String) {
    let iso = Isolation::new();
    let config = iso.config(ServiceName::Scoring, &brokers(), &redis_url());
    let topic = iso.topic(name);
    kafka::ensure_topics(&config.kafka, &[&topic])
        .await
        .unwrap();
    (config, topic)
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
    let (config, topic) = isolated_topic("cx.consumer-test").await;
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

/// A staged handler: notes what it prepared and applied; the first batch's
/// apply fails `fail_first` times and then waits (up to 10 s) until the
/// next batch has been prepared, which only an overlapping runner allows.
struct Stages {
    state: std::sync::Mutex<StagesState>,
    next_prepared: tokio::sync::Notify,
    fail_first: usize,
    stop_after: usize,
    stop: CancellationToken,
}

#[derive(Default)]
struct StagesState {
    prepared_batches: usize,
    apply_attempts: usize,
    applied: Vec<String>,
    overlapped: bool,
    unhealthy_reported: bool,
}

fn payload(message: &OwnedMessage) -> String {
    String::from_utf8(message.payload().unwrap().to_vec()).unwrap()
}

impl consumer::StagedHandler for Stages {
    type Prepared = Vec<String>;

    fn prepare(&self, batch: &[OwnedMessage]) -> Vec<String> {
        let mut state = self.state.lock().unwrap();
        state.prepared_batches += 1;
        if state.prepared_batches == 2 {
            self.next_prepared.notify_one();
        }
        batch.iter().map(payload).collect()
    }

    async fn apply(&self, prepared: &mut Vec<String>) -> Result<(), String> {
        let first_batch = {
            let mut state = self.state.lock().unwrap();
            state.apply_attempts += 1;
            if state.apply_attempts <= self.fail_first {
                return Err("dependency down".into());
            }
            state.applied.is_empty()
        };
        if first_batch {
            let overlapped =
                tokio::time::timeout(Duration::from_secs(10), self.next_prepared.notified())
                    .await
                    .is_ok();
            self.state.lock().unwrap().overlapped = overlapped;
        }
        let mut state = self.state.lock().unwrap();
        state.applied.extend(prepared.iter().cloned());
        if state.applied.len() >= self.stop_after {
            self.stop.cancel();
        }
        Ok(())
    }

    fn healthy(&self, healthy: bool) {
        if !healthy {
            self.state.lock().unwrap().unhealthy_reported = true;
        }
    }
}

async fn run_stages(
    config: &cx_runtime::Config,
    settings: &ConsumerSettings,
    fail_first: usize,
    stop_after: usize,
) -> StagesState {
    let stop = CancellationToken::new();
    let stages = std::sync::Arc::new(Stages {
        state: Default::default(),
        next_prepared: tokio::sync::Notify::new(),
        fail_first,
        stop_after,
        stop: stop.clone(),
    });
    let stream = consumer::consumer(&config.kafka, settings).unwrap();
    tokio::time::timeout(
        Duration::from_secs(60),
        consumer::run_staged(&stream, settings, stages.clone(), &stop),
    )
    .await
    .unwrap_or_else(|_| panic!("{stop_after} records applied within 60 s"))
    .unwrap();
    let state = std::mem::take(&mut *stages.state.lock().unwrap());
    state
}

#[tokio::test]
async fn staged_batches_are_prepared_while_the_previous_one_applies_and_commit_in_order() {
    require_stack().await;
    let (config, topic) = isolated_topic("cx.consumer-staged-test").await;
    // One key: one partition, so the applied order is the produced order.
    let first: Vec<String> = (0..30).map(|i| format!("first-{i:02}")).collect();
    produce(&config, &topic, first.iter().cloned()).await;

    let settings = ConsumerSettings {
        max_batch: 5,
        retry_backoff: (Duration::from_millis(10), Duration::from_millis(50)),
        ..ConsumerSettings::new(unique("cx-test-group"), vec![topic.clone()])
    };
    let run = run_stages(&config, &settings, 2, 30).await;
    assert_eq!(run.applied, first, "each record applied once, in order");
    assert!(
        run.overlapped,
        "batch 2 was prepared while batch 1 was applied"
    );
    assert!(run.apply_attempts > 2, "the failing batch was retried");
    assert!(run.unhealthy_reported);

    // A restart resumes after the committed offsets.
    let second: Vec<String> = (0..5).map(|i| format!("second-{i}")).collect();
    produce(&config, &topic, second.iter().cloned()).await;
    let run = run_stages(&config, &settings, 0, 5).await;
    assert_eq!(run.applied, second, "nothing committed was redelivered");
}

/// Holds its first batch's apply until released, and records every
/// prepared batch.
struct HoldFirstApply {
    prepared: std::sync::Mutex<Vec<Vec<String>>>,
    applied: std::sync::Mutex<usize>,
    first_applying: tokio::sync::Notify,
    release: tokio::sync::Notify,
    stop_after: usize,
    stop: CancellationToken,
}

impl consumer::StagedHandler for HoldFirstApply {
    type Prepared = usize;

    fn prepare(&self, batch: &[OwnedMessage]) -> usize {
        self.prepared
            .lock()
            .unwrap()
            .push(batch.iter().map(payload).collect());
        batch.len()
    }

    async fn apply(&self, prepared: &mut usize) -> Result<(), String> {
        let first = *self.applied.lock().unwrap() == 0;
        if first {
            self.first_applying.notify_one();
            self.release.notified().await;
        }
        let mut applied = self.applied.lock().unwrap();
        *applied += *prepared;
        if *applied >= self.stop_after {
            self.stop.cancel();
        }
        Ok(())
    }
}

#[tokio::test]
async fn records_arriving_while_a_batch_applies_wait_for_it_in_one_next_batch() {
    records_arriving_during_an_apply_form_one_batch(Some(Duration::from_millis(5))).await;
}

/// The same without a fill wait (the default): the next batch still takes
/// everything that arrived while the previous one was applied.
#[tokio::test]
async fn without_a_fill_wait_the_records_arriving_during_an_apply_still_form_one_batch() {
    records_arriving_during_an_apply_form_one_batch(None).await;
}

async fn records_arriving_during_an_apply_form_one_batch(max_wait: Option<Duration>) {
    require_stack().await;
    let (config, topic) = isolated_topic("cx.consumer-fill-test").await;
    produce(&config, &topic, std::iter::once("first".to_string())).await;

    let defaults = ConsumerSettings::new(unique("cx-test-group"), vec![topic.clone()]);
    let settings = ConsumerSettings {
        max_batch: 100,
        max_wait: max_wait.unwrap_or(defaults.max_wait),
        ..defaults
    };
    let stop = CancellationToken::new();
    let handler = std::sync::Arc::new(HoldFirstApply {
        prepared: Default::default(),
        applied: Default::default(),
        first_applying: tokio::sync::Notify::new(),
        release: tokio::sync::Notify::new(),
        stop_after: 11,
        stop: stop.clone(),
    });
    let stream = consumer::consumer(&config.kafka, &settings).unwrap();
    let running = {
        let handler = handler.clone();
        let stop = stop.clone();
        tokio::spawn(async move { consumer::run_staged(&stream, &settings, handler, &stop).await })
    };
    tokio::time::timeout(Duration::from_secs(30), handler.first_applying.notified())
        .await
        .expect("the first batch is applied within 30 s");
    // Spread over far more than max_wait: a batch closed after max_wait, or
    // when nothing more waits, would hold only the first of them.
    let later: Vec<String> = (0..10).map(|i| format!("later-{i}")).collect();
    for value in &later {
        produce(&config, &topic, std::iter::once(value.clone())).await;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    // Until the consumer has fetched them all (a fetch may wait fetch.wait.max.ms).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    handler.release.notify_one();
    tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("all 11 records applied within 30 s")
        .unwrap()
        .unwrap();
    let prepared = handler.prepared.lock().unwrap().clone();
    assert_eq!(
        prepared,
        vec![vec!["first".to_string()], later],
        "the records that arrived during the first apply form the second batch, whole"
    );
}

/// Fails every batch until `durable` is set.
struct Blocked {
    durable: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl BatchHandler for Blocked {
    async fn handle(&mut self, _batch: &[OwnedMessage]) -> Result<(), String> {
        if self.durable.load(std::sync::atomic::Ordering::SeqCst) {
            Ok(())
        } else {
            Err("dependency down".into())
        }
    }
}

/// This process's value of a group's gauge on /metrics, if rendered yet.
fn group_gauge(metric: &str, group: &str) -> Option<f64> {
    let prefix = format!("{metric}{{group=\"{group}\"}} ");
    cx_runtime::telemetry::metrics_handle()
        .render()
        .lines()
        .find_map(|line| line.strip_prefix(&prefix)?.trim().parse().ok())
}

/// Polls until the group's lag and assigned partitions read `expected`;
/// the whole group's lag too, which is the same for a group of one.
async fn wait_for_lag(group: &str, expected: (f64, f64)) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let now = (
            group_gauge("cx_kafka_consumer_lag", group),
            group_gauge("cx_kafka_consumer_assigned_partitions", group),
            group_gauge("cx_kafka_consumer_group_lag", group),
        );
        if now == (Some(expected.0), Some(expected.1), Some(expected.0)) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "lag and assigned partitions of {group}: {now:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A group whose batches cannot be made durable shows its backlog as lag
/// (the batch metrics record nothing while it is stuck), and lag falls to
/// zero once its batches commit.
#[tokio::test]
async fn a_stuck_group_shows_its_backlog_as_lag_until_it_commits() {
    require_stack().await;
    // The gauges register with the recorder installed when they are made.
    let _ = cx_runtime::telemetry::metrics_handle();
    let (config, topic) = isolated_topic("cx.consumer-lag-test").await;
    produce(&config, &topic, (0..30).map(|i| format!("r-{i}"))).await;

    let group = unique("cx-test-group");
    let settings = ConsumerSettings {
        retry_backoff: (Duration::from_millis(10), Duration::from_millis(50)),
        lag_interval: Duration::from_millis(200),
        ..ConsumerSettings::new(group.clone(), vec![topic.clone()])
    };
    let durable = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = CancellationToken::new();
    let handler = Blocked {
        durable: durable.clone(),
    };
    // Each partition of the topic is this consumer's, the only one in its group.
    let partitions = f64::from(config.kafka.topic_partitions);
    let running = consumer::spawn(
        config.kafka.clone(),
        vec![topic.clone()],
        settings,
        handler,
        stop.clone(),
    );
    wait_for_lag(&group, (30.0, partitions)).await;
    // Still 30 a moment later: nothing was committed while it failed.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        group_gauge("cx_kafka_consumer_lag", &group),
        Some(30.0),
        "lag of a group that commits nothing"
    );

    durable.store(true, std::sync::atomic::Ordering::SeqCst);
    produce(&config, &topic, (0..5).map(|i| format!("s-{i}"))).await;
    wait_for_lag(&group, (0.0, partitions)).await;
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("the consumer stops within 30 s")
        .unwrap()
        .unwrap();
}

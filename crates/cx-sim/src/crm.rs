//! The CRM's part of the loop: take open follow-up tasks from
//! cx.followups.v1, work them through FollowUpService.UpdateTask
//! (in_progress → contacted → resolved with a root cause), then submit the
//! customer's next survey through ingest so cx-followup records the outcome.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cx_proto::v1;
use cx_proto::v1::follow_up_service_client::FollowUpServiceClient;
use cx_tasks::TaskState;
use rand::Rng;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{ClientConfig, Message};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;

use crate::model::{self, Bucket, Generator};
use crate::send::{authed, Outcome, Sender};

/// Where the CRM reads and writes.
#[derive(Debug, Clone)]
pub struct CrmConfig {
    pub brokers: String,
    pub topic: String,
    /// Percent of tasks the CRM never works, so their SLA runs out and
    /// they escalate (chosen by task id, so stable across runs).
    pub skip_pct: u8,
}

/// FNV-1a of a task id: which tasks the CRM leaves alone.
fn left_alone(task_id: &str, skip_pct: u8) -> bool {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in task_id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash % 100 < u64::from(skip_pct)
}

/// What the CRM did.
#[derive(Debug, Default)]
pub struct CrmStats {
    pub taken: AtomicU64,
    pub contacted: AtomicU64,
    pub resolved: AtomicU64,
    /// Stale versions or races answered FAILED_PRECONDITION and retried.
    pub conflicts: AtomicU64,
    pub failed: AtomicU64,
    pub resurveyed: AtomicU64,
    pub resurveyed_happy: AtomicU64,
    pub recovered: AtomicU64,
    pub not_recovered: AtomicU64,
}

impl CrmStats {
    pub fn summary(&self) -> String {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let surveyed = get(&self.resurveyed);
        let happy = get(&self.resurveyed_happy);
        format!(
            "crm: {} tasks taken, {} contacted, {} resolved, {} surveyed again ({} promoter/passive, {} detractor), outcomes seen: {} recovered, {} not recovered; {} conflicts retried, {} failed",
            get(&self.taken),
            get(&self.contacted),
            get(&self.resolved),
            surveyed,
            happy,
            surveyed - happy,
            get(&self.recovered),
            get(&self.not_recovered),
            get(&self.conflicts),
            get(&self.failed),
        )
    }
}

/// The fields of a JSON task the CRM uses.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskView {
    pub task_id: String,
    pub customer_id: String,
    pub state: String,
    pub owner: String,
    pub reason: String,
    pub version: u64,
    pub escalation_level: u64,
    pub outcome: Option<String>,
}

impl TaskView {
    /// Reads a JSON task (cx.followups.v1); None without an id, state or version.
    pub fn from_json(bytes: &[u8]) -> Option<TaskView> {
        let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
        let text = |field: &str| value.get(field).and_then(|v| v.as_str()).map(str::to_owned);
        Some(TaskView {
            task_id: text("task_id")?,
            customer_id: text("customer_id").unwrap_or_default(),
            state: text("state")?,
            owner: text("owner").unwrap_or_default(),
            reason: text("reason").unwrap_or_default(),
            version: value.get("version")?.as_u64()?,
            escalation_level: value
                .get("escalation_level")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or_default(),
            outcome: text("outcome"),
        })
    }
}

fn owner_name(owner: &str) -> &str {
    if owner.is_empty() {
        "unassigned"
    } else {
        owner
    }
}

/// `task_ab12…`: a task id short enough for one line.
pub fn short(id: &str) -> String {
    if id.chars().count() > 14 {
        format!("{}…", id.chars().take(13).collect::<String>())
    } else {
        id.to_owned()
    }
}

struct Worker {
    client: FollowUpServiceClient<Channel>,
    auth: MetadataValue<Ascii>,
    sender: Sender,
    generator: Arc<Mutex<Generator>>,
    stats: Arc<CrmStats>,
}

/// Runs until `shutdown` turns true.
pub async fn run(
    config: CrmConfig,
    followup: Channel,
    auth: MetadataValue<Ascii>,
    sender: Sender,
    generator: Arc<Mutex<Generator>>,
    stats: Arc<CrmStats>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), String> {
    let group = format!("cx-sim-crm-{}", uuid::Uuid::new_v4().simple());
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &config.brokers)
        .set("group.id", &group)
        .set("auto.offset.reset", "latest")
        .set("enable.auto.commit", "true")
        .set("fetch.wait.max.ms", "10")
        .create()
        .map_err(|e| format!("crm: kafka consumer: {e}"))?;
    consumer
        .subscribe(&[&config.topic])
        .map_err(|e| format!("crm: subscribe {}: {e}", config.topic))?;
    println!(
        "crm: consuming {} as group {group}; working open tasks through FollowUpService",
        config.topic
    );
    let worker = Arc::new(Worker {
        client: FollowUpServiceClient::new(followup),
        auth,
        sender,
        generator,
        stats,
    });
    let mut claimed: HashSet<String> = HashSet::new();
    let mut reported: HashSet<String> = HashSet::new();
    let mut jobs = JoinSet::new();
    let mut last_kafka_error: Option<String> = None;
    loop {
        while jobs.try_join_next().is_some() {}
        let message = tokio::select! {
            _ = shutdown.changed() => break,
            m = consumer.recv() => m,
        };
        let task = match message {
            Ok(m) => m.payload().and_then(TaskView::from_json),
            Err(e) => {
                let text = e.to_string();
                if last_kafka_error.as_deref() != Some(text.as_str()) {
                    eprintln!("crm: kafka: {text}");
                    last_kafka_error = Some(text);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let Some(task) = task else { continue };
        if let Some(outcome) = &task.outcome {
            if claimed.contains(&task.task_id) && reported.insert(task.task_id.clone()) {
                let counter = if outcome == "recovered" {
                    &worker.stats.recovered
                } else {
                    &worker.stats.not_recovered
                };
                counter.fetch_add(1, Ordering::Relaxed);
                println!(
                    "crm: {} outcome {outcome} (customer {})",
                    short(&task.task_id),
                    task.customer_id
                );
            }
            continue;
        }
        // Once per level: an escalated task gets new versions without a
        // new escalation (an alert attached to it).
        if task.state == "escalated"
            && reported.insert(format!("{}@L{}", task.task_id, task.escalation_level))
        {
            println!(
                "crm: {} escalated to {} (v{}, customer {})",
                short(&task.task_id),
                owner_name(&task.owner),
                task.version,
                task.customer_id
            );
            continue;
        }
        // Only the simulation's own customers (c-NNNN): a hand-submitted
        // interaction, like the demo's story, is always worked.
        if task.state == "open"
            && task.customer_id.starts_with("c-")
            && left_alone(&task.task_id, config.skip_pct)
        {
            if reported.insert(task.task_id.clone()) {
                println!(
                    "crm: {} left alone: its SLA will run out (customer {})",
                    short(&task.task_id),
                    task.customer_id
                );
            }
            continue;
        }
        if task.state == "open" && claimed.insert(task.task_id.clone()) {
            worker.stats.taken.fetch_add(1, Ordering::Relaxed);
            let worker = worker.clone();
            jobs.spawn(async move { worker.work(task).await });
        }
    }
    jobs.shutdown().await;
    Ok(())
}

fn pause(range_ms: std::ops::Range<u64>) -> Duration {
    Duration::from_millis(rand::rng().random_range(range_ms))
}

impl Worker {
    async fn work(&self, task: TaskView) {
        tokio::time::sleep(pause(2_000..5_000)).await;
        let cause = {
            let queue = self
                .generator
                .lock()
                .ok()
                .and_then(|g| model::last_queue_of(&g, &task.customer_id));
            model::root_cause(&task.reason, queue)
        };
        let mut version = task.version;
        let steps: [(TaskState, Option<&str>, Option<&str>); 3] = [
            (TaskState::InProgress, None, None),
            (TaskState::Contacted, None, None),
            (
                TaskState::Resolved,
                Some(cause),
                Some(model::resolution_note(cause)),
            ),
        ];
        for (n, (state, root_cause, note)) in steps.into_iter().enumerate() {
            if n > 0 {
                tokio::time::sleep(pause(1_000..3_000)).await;
            }
            match self
                .update(&task.task_id, version, state, root_cause, note)
                .await
            {
                Ok(updated) => {
                    version = updated.version;
                    match state {
                        TaskState::Contacted => {
                            self.stats.contacted.fetch_add(1, Ordering::Relaxed);
                            println!(
                                "crm: {} contacted (owner {}, customer {})",
                                short(&task.task_id),
                                owner_name(&updated.owner),
                                task.customer_id
                            );
                        }
                        TaskState::Resolved => {
                            self.stats.resolved.fetch_add(1, Ordering::Relaxed);
                            println!(
                                "crm: {} resolved: {} ({}; customer {})",
                                short(&task.task_id),
                                cause,
                                model::resolution_note(cause),
                                task.customer_id
                            );
                        }
                        _ => println!(
                            "crm: {} {} (owner {}, v{}): {}",
                            short(&task.task_id),
                            state.as_str(),
                            owner_name(&updated.owner),
                            updated.version,
                            task.reason
                        ),
                    }
                }
                Err(why) => {
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    println!(
                        "crm: {} could not move to {}: {why}",
                        short(&task.task_id),
                        state.as_str()
                    );
                    return;
                }
            }
        }

        // The customer's next survey.
        tokio::time::sleep(pause(5_000..10_000)).await;
        let (interaction, bucket) = match self.generator.lock() {
            Ok(mut g) => g.resurvey(
                &task.customer_id,
                &task.task_id,
                time::OffsetDateTime::now_utc(),
            ),
            Err(_) => return,
        };
        let nps = interaction.nps.unwrap_or_default();
        let outcome = self.sender.submit_one(interaction).await;
        if outcome == Outcome::Accepted {
            self.stats.resurveyed.fetch_add(1, Ordering::Relaxed);
            if bucket != Bucket::Detractor {
                self.stats.resurveyed_happy.fetch_add(1, Ordering::Relaxed);
            }
            println!(
                "crm: customer {} surveyed again: NPS {nps}",
                task.customer_id
            );
        } else {
            let why = self.sender.stats.take_last_error().unwrap_or_default();
            println!(
                "crm: customer {} survey not accepted ({outcome:?}) {why}",
                task.customer_id
            );
        }
    }

    /// UpdateTask; on FAILED_PRECONDITION re-read the task and retry once
    /// with its version, if the move is still legal (or already done).
    async fn update(
        &self,
        task_id: &str,
        version: u64,
        state: TaskState,
        root_cause: Option<&str>,
        note: Option<&str>,
    ) -> Result<v1::Task, String> {
        let request = |version| v1::UpdateTaskRequest {
            task_id: task_id.to_owned(),
            version,
            state: state.as_str().to_owned(),
            owner: None,
            root_cause: root_cause.map(str::to_owned),
            resolution_note: note.map(str::to_owned),
        };
        let mut client = self.client.clone();
        let status = match client
            .update_task(authed(request(version), &self.auth))
            .await
        {
            Ok(task) => return Ok(task.into_inner()),
            Err(status) if status.code() == tonic::Code::FailedPrecondition => status,
            Err(status) => return Err(format!("{:?}: {}", status.code(), status.message())),
        };
        self.stats.conflicts.fetch_add(1, Ordering::Relaxed);
        let fresh = client
            .get_task(authed(
                v1::GetTaskRequest {
                    task_id: task_id.to_owned(),
                },
                &self.auth,
            ))
            .await
            .map_err(|s| format!("GetTask {:?}: {}", s.code(), s.message()))?
            .into_inner();
        let current: Option<TaskState> = fresh.state.parse().ok();
        if current == Some(state) {
            return Ok(fresh);
        }
        if !current.is_some_and(|c| c.can_become(state)) {
            return Err(format!(
                "task is {} (v{}) now: {}",
                fresh.state,
                fresh.version,
                status.message()
            ));
        }
        println!(
            "crm: {} stale version v{version}, re-read v{} ({}), retrying",
            short(task_id),
            fresh.version,
            fresh.state
        );
        client
            .update_task(authed(request(fresh.version), &self.auth))
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock;

    async fn worker_with(tasks: Vec<v1::Task>) -> (Worker, mock::Followups, Channel) {
        let followups = mock::Followups::default();
        for t in tasks {
            followups.tasks.lock().unwrap().insert(t.task_id.clone(), t);
        }
        let channel = mock::serve(mock::Ingest::default(), followups.clone()).await;
        let auth = crate::send::bearer(mock::TOKEN).unwrap();
        let worker = Worker {
            client: FollowUpServiceClient::new(channel.clone()),
            auth: auth.clone(),
            sender: Sender::new(channel.clone(), auth),
            generator: Arc::new(Mutex::new(Generator::new(1, "t", None))),
            stats: Arc::new(CrmStats::default()),
        };
        (worker, followups, channel)
    }

    /// Needs the local broker (`deploy/local/stack.sh up`; `deploy/local/test.sh`
    /// starts it) and fails, never skips, without it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn crm_closes_the_loop_from_kafka() {
        use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
        use rdkafka::producer::{FutureProducer, FutureRecord};
        let brokers =
            std::env::var("CX_TEST_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".to_string());
        let brokers = brokers.as_str();
        let topic = format!("cx.sim.test.{}", uuid::Uuid::new_v4().simple());
        let admin: AdminClient<_> = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .create()
            .unwrap();
        admin
            .create_topics(
                &[NewTopic::new(&topic, 1, TopicReplication::Fixed(1))],
                &AdminOptions::new().request_timeout(Some(Duration::from_secs(10))),
            )
            .await
            .unwrap_or_else(|e| {
                panic!("Kafka at {brokers} is not reachable ({e}): deploy/local/stack.sh up")
            });
        let (worker, followups, channel) = worker_with(vec![task("t9", "open", 1)]).await;
        let ingest_seen = worker.sender.clone();
        let stats = worker.stats.clone();
        let (stop_tx, stop_rx) = watch::channel(false);
        let crm = tokio::spawn(run(
            CrmConfig {
                brokers: brokers.into(),
                topic: topic.clone(),
                skip_pct: 0,
            },
            channel,
            worker.auth.clone(),
            worker.sender.clone(),
            worker.generator.clone(),
            stats.clone(),
            stop_rx,
        ));
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .create()
            .unwrap();
        let json = serde_json::json!({"task_id": "t9", "customer_id": "c-0042", "state": "open",
            "owner": "lead-billing", "reason": "detractor: NPS 1, charged twice", "version": 1});
        let payload = json.to_string();
        // Latest offsets: send until the consumer has its partition and takes it.
        let started = std::time::Instant::now();
        while stats.taken.load(Ordering::Relaxed) == 0 {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "task never taken"
            );
            producer
                .send(
                    FutureRecord::to(&topic).key("t9").payload(&payload),
                    Duration::from_secs(5),
                )
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        while stats.resurveyed.load(Ordering::Relaxed) == 0 {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{}",
                stats.summary()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let t = followups.tasks.lock().unwrap()["t9"].clone();
        assert_eq!((t.state.as_str(), t.version), ("resolved", 4));
        assert_eq!(t.root_cause.as_deref(), Some("billing error"));
        assert_eq!(ingest_seen.stats.counts().accepted, 1);
        assert_eq!(stats.taken.load(Ordering::Relaxed), 1);
        stop_tx.send(true).unwrap();
        crm.await.unwrap().unwrap();
        admin
            .delete_topics(&[&topic], &AdminOptions::new())
            .await
            .unwrap();
    }

    fn task(id: &str, state: &str, version: u64) -> v1::Task {
        v1::Task {
            task_id: id.into(),
            customer_id: "c-0042".into(),
            state: state.into(),
            version,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn walks_a_task_and_retries_a_stale_version_once() {
        let (worker, followups, _) = worker_with(vec![
            task("t1", "open", 4),
            task("t2", "closed", 9),
            task("t3", "in_progress", 2),
        ])
        .await;
        // Current version: straight through.
        let t = worker
            .update("t1", 4, TaskState::InProgress, None, None)
            .await
            .unwrap();
        assert_eq!((t.state.as_str(), t.version), ("in_progress", 5));
        // Stale version: re-read, retried with v5.
        let t = worker
            .update("t1", 4, TaskState::Contacted, None, None)
            .await
            .unwrap();
        assert_eq!((t.state.as_str(), t.version), ("contacted", 6));
        assert_eq!(worker.stats.conflicts.load(Ordering::Relaxed), 1);
        let t = worker
            .update(
                "t1",
                6,
                TaskState::Resolved,
                Some("billing error"),
                Some("refunded"),
            )
            .await
            .unwrap();
        assert_eq!(t.root_cause.as_deref(), Some("billing error"));
        assert_eq!(followups.tasks.lock().unwrap()["t1"].state, "resolved");
        // A closed task cannot move: no retry, an error.
        let e = worker
            .update("t2", 1, TaskState::InProgress, None, None)
            .await
            .unwrap_err();
        assert!(e.contains("closed"), "{e}");
        // Someone else already moved it where we wanted: fine.
        let t = worker
            .update("t3", 1, TaskState::InProgress, None, None)
            .await
            .unwrap();
        assert_eq!(t.version, 2);
        // Unknown task: NOT_FOUND is an error, not retried.
        assert!(worker
            .update("nope", 1, TaskState::InProgress, None, None)
            .await
            .unwrap_err()
            .contains("NotFound"));
    }

    #[test]
    fn the_tasks_left_alone_are_stable_and_about_the_share_asked() {
        let ids: Vec<String> = (0..2000).map(|n| format!("task_{n:032x}")).collect();
        let skipped = ids.iter().filter(|id| left_alone(id, 20)).count();
        assert!((300..500).contains(&skipped), "{skipped} of 2000 at 20 %");
        assert!(ids.iter().all(|id| !left_alone(id, 0)));
        assert!(ids.iter().all(|id| left_alone(id, 100)));
        assert_eq!(left_alone(&ids[7], 20), left_alone(&ids[7], 20));
    }

    #[test]
    fn reads_a_contract_task() {
        let json = br#"{"task_id":"task_0123456789abcdef","customer_id":"c-0042","state":"open",
            "priority":"high","owner":"lead-billing","escalation_level":0,"interaction_ids":["i1"],
            "alert_ids":["a1"],"reason":"detractor: NPS 2","created_at":"2025-01-01T00:00:00Z",
            "updated_at":"2025-01-01T00:00:00Z","due_at":"2025-01-02T00:00:00Z","resolved_at":null,
            "root_cause":null,"resolution_note":null,"outcome":null,"version":3}"#;
        let t = TaskView::from_json(json).unwrap();
        assert_eq!(t.task_id, "task_0123456789abcdef");
        assert_eq!(t.state, "open");
        assert_eq!(t.version, 3);
        assert_eq!(t.outcome, None);
        assert_eq!(short(&t.task_id), "task_01234567…");
        assert_eq!(short("task_ab"), "task_ab");
        assert!(TaskView::from_json(b"not json").is_none());
        assert!(TaskView::from_json(br#"{"task_id":"x","state":"open"}"#).is_none());
    }
}

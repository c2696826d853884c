//! cx-followup against the real broker and Redis: tasks from alerts (one
//! per customer, redeliveries absorbed), the update lifecycle over gRPC and
//! Kafka, outcomes from the next survey, refusals, concurrent updates,
//! escalation on a manual clock with two replicas, and a restart.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cx_followup::followups::{AlertOutcome, Followups};
use cx_followup::store::TaskStore;
use cx_followup::{FollowupApp, ManualClock};
use cx_proto::prost::Message as _;
use cx_proto::v1;
use cx_proto::v1::follow_up_service_client::FollowUpServiceClient;
use cx_runtime::{kafka, Config, ServiceName};
use cx_tasks::{Outcome, Survey, TaskState, TaskUpdate};
use cx_tests::*;
use rdkafka::producer::FutureRecord;
use serde_json::{json, Value};
use tonic::Streaming;
use tonic_types::StatusExt;

/// The contract's JSON task keys.
const TASK_KEYS: [&str; 17] = [
    "task_id",
    "customer_id",
    "state",
    "priority",
    "owner",
    "escalation_level",
    "interaction_ids",
    "alert_ids",
    "reason",
    "created_at",
    "updated_at",
    "due_at",
    "resolved_at",
    "root_cause",
    "resolution_note",
    "outcome",
    "version",
];

/// A directory with one team (lead → manager → head of CX) and an SLA of
/// one hour for critical tasks.
const SETTINGS: &str = r#"
tick_ms = 50
[sla]
critical_s = 3600
high_s = 7200
normal_s = 14400
[directory]
head_of_cx = "head-of-cx"
[directory.agents]
agent-7 = "team-a"
[directory.teams.team-a]
lead = "lead-a"
manager = "manager-a"
"#;

fn config(iso: &Isolation) -> Config {
    let mut file: toml::Table = iso
        .config_toml(&brokers(), &redis_url())
        .parse()
        .expect("test config");
    let extra: toml::Table = SETTINGS.parse().expect("followup settings");
    file.get_mut("followup")
        .and_then(toml::Value::as_table_mut)
        .expect("[followup] section")
        .extend(extra);
    Config::from_parts(ServiceName::Followup, file, &HashMap::new()).expect("valid config")
}

/// Starts follow-up in process with `clock` (the harness's
/// `RunningFollowup::start` uses the system clock).
async fn start(config: Config, clock: Option<Arc<ManualClock>>) -> RunningFollowup {
    init_logs();
    let app = match clock {
        Some(clock) => FollowupApp::build_with_clock(config, clock).await,
        None => FollowupApp::build(config).await,
    }
    .expect("followup builds");
    let (grpc_addr, http_addr, readiness) = (app.grpc_addr(), app.http_addr(), app.readiness());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    wait_until(Duration::from_secs(60), "followup ready", || {
        let ready = readiness.is_ready();
        async move { ready }
    })
    .await;
    RunningFollowup {
        grpc_addr,
        http_addr,
        shutdown,
        task,
        service: std::marker::PhantomData,
    }
}

fn alert(alert_id: &str, customer: &str, severity: &str) -> Value {
    json!({
        "alert_id": alert_id,
        "rule": "detractor-response",
        "kind": "response",
        "severity": severity,
        "dimension": "agent",
        "key": "agent-7",
        "customer_id": customer,
        "interaction_id": format!("int-{alert_id}"),
        "window": null,
        "metric": null,
        "value": 2.0,
        "threshold": 6.0,
        "message": format!("NPS 2 from {customer}"),
        "created_at": "2024-05-01T12:00:00Z",
        "suppressed_count": 0,
        "agent_id": "agent-7",
        "team_id": null,
        "queue_id": "billing",
    })
}

/// One record per produce request (tansu skips the rest of a multi-record
/// batch when a consumer restarts inside it).
async fn produce(config: &Config, topic: &str, key: &str, payload: &[u8]) {
    kafka::ensure_topics(&config.kafka, &[topic]).await.unwrap();
    let producer = kafka::producer(&config.kafka, "cx-test").unwrap();
    producer
        .send(
            FutureRecord::to(topic).key(key).payload(payload),
            Duration::from_secs(10),
        )
        .await
        .expect("produce");
}

async fn produce_alert(config: &Config, alert: &Value) {
    let key = alert["customer_id"].as_str().unwrap_or("none").to_string();
    let topic = config.kafka.topics.alerts.clone();
    produce(config, &topic, &key, alert.to_string().as_bytes()).await;
}

async fn produce_survey(config: &Config, customer: &str, interaction_id: &str, nps: i32) {
    let occurred = time::OffsetDateTime::now_utc() + time::Duration::seconds(2);
    let scored = v1::ScoredInteraction {
        interaction: Some(v1::Interaction {
            interaction_id: interaction_id.into(),
            customer_id: customer.into(),
            occurred_at: Some(cx_proto::prost_types::Timestamp {
                seconds: occurred.unix_timestamp(),
                nanos: 0,
            }),
            channel: v1::Channel::Voice as i32,
            nps: Some(nps),
            ..Default::default()
        }),
        ..Default::default()
    };
    let topic = config.kafka.topics.scored.clone();
    produce(config, &topic, customer, &scored.encode_to_vec()).await;
}

struct Client(FollowUpServiceClient<tonic::transport::Channel>);

fn request<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", bearer(token).parse().unwrap());
    request
}

impl Client {
    /// WatchTasks for one customer, from `since_s` (Unix seconds) when given.
    async fn watch(&mut self, customer_id: &str, since_s: Option<i64>) -> Streaming<v1::Task> {
        self.0
            .watch_tasks(request(
                v1::WatchTasksRequest {
                    customer_id: customer_id.into(),
                    owner: String::new(),
                    since: since_s
                        .map(|seconds| cx_proto::prost_types::Timestamp { seconds, nanos: 0 }),
                },
                READER_TOKEN,
            ))
            .await
            .expect("WatchTasks")
            .into_inner()
    }

    async fn connect(addr: std::net::SocketAddr) -> Client {
        Client(
            FollowUpServiceClient::connect(format!("http://{addr}"))
                .await
                .expect("grpc connect"),
        )
    }

    async fn list(&mut self, customer: &str) -> Vec<v1::Task> {
        self.0
            .list_tasks(request(
                v1::ListTasksRequest {
                    customer_id: customer.into(),
                    ..Default::default()
                },
                READER_TOKEN,
            ))
            .await
            .expect("ListTasks")
            .into_inner()
            .tasks
    }

    async fn get(&mut self, task_id: &str) -> Result<v1::Task, tonic::Status> {
        self.0
            .get_task(request(
                v1::GetTaskRequest {
                    task_id: task_id.into(),
                },
                READER_TOKEN,
            ))
            .await
            .map(tonic::Response::into_inner)
    }

    async fn update(
        &mut self,
        task_id: &str,
        version: u64,
        state: &str,
        root_cause: Option<&str>,
    ) -> Result<v1::Task, tonic::Status> {
        self.0
            .update_task(request(
                v1::UpdateTaskRequest {
                    task_id: task_id.into(),
                    version,
                    state: state.into(),
                    root_cause: root_cause.map(str::to_string),
                    resolution_note: root_cause.map(|_| "called back, refunded".to_string()),
                    owner: None,
                },
                OPERATOR_TOKEN,
            ))
            .await
            .map(tonic::Response::into_inner)
    }

    /// Waits for the customer's tasks to satisfy `done`.
    async fn wait_for(
        &mut self,
        customer: &str,
        what: &str,
        done: impl Fn(&[v1::Task]) -> bool,
    ) -> Vec<v1::Task> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let tasks = self.list(customer).await;
            if done(&tasks) {
                return tasks;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; tasks: {tasks:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Records of cx.followups.v1 for `task_id`, as JSON.
async fn published(config: &Config, task_id: &str, at_least: usize) -> Vec<Value> {
    let records = read_topic(
        &brokers(),
        &config.kafka.topics.followups,
        at_least,
        Duration::from_secs(2),
        Duration::from_secs(60),
    )
    .await;
    records
        .iter()
        .filter(|r| r.key_str() == task_id)
        .map(|r| serde_json::from_slice(r.payload.as_deref().unwrap()).expect("JSON task"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_open_one_task_per_customer_and_redeliveries_change_nothing() {
    require_stack().await;
    let iso = Isolation::new();
    let config = config(&iso);
    let service = start(config.clone(), None).await;
    let mut client = Client::connect(service.grpc_addr).await;

    produce_alert(&config, &alert("al_1", "cust-1", "warning")).await;
    let tasks = client.wait_for("cust-1", "a task", |t| t.len() == 1).await;
    let task = &tasks[0];
    assert_eq!(task.state, "open");
    assert_eq!(task.priority, "high");
    assert_eq!(task.owner, "lead-a", "agent-7 is in team-a, led by lead-a");
    assert_eq!(task.version, 1);
    assert_eq!(task.alert_ids, ["al_1"]);
    assert_eq!(task.interaction_ids, ["int-al_1"]);
    let task_id = task.task_id.clone();

    // A second alert attaches (and raises the priority); a redelivered
    // first alert changes nothing.
    produce_alert(&config, &alert("al_2", "cust-1", "critical")).await;
    produce_alert(&config, &alert("al_1", "cust-1", "warning")).await;
    produce_alert(&config, &alert("al_3", "cust-1", "info")).await;
    let tasks = client
        .wait_for("cust-1", "three alerts on one task", |t| {
            t.len() == 1 && t[0].alert_ids.len() == 3
        })
        .await;
    assert_eq!(tasks[0].task_id, task_id);
    assert_eq!(tasks[0].alert_ids, ["al_1", "al_2", "al_3"]);
    assert_eq!(tasks[0].version, 3, "open + two attachments");
    assert_eq!(tasks[0].priority, "critical");

    // Window alerts and alerts without a customer open nothing; garbage
    // is dead-lettered.
    let mut window = alert("al_w", "cust-2", "critical");
    window["kind"] = json!("threshold");
    produce_alert(&config, &window).await;
    let topic = config.kafka.topics.alerts.clone();
    produce(&config, &topic, "junk", b"{not json").await;
    let dead = read_topic(
        &brokers(),
        &config.kafka.topics.deadletter,
        1,
        Duration::from_millis(500),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(dead.len(), 1);
    assert!(header_str(&dead[0], "cx-error")
        .unwrap()
        .contains("not a JSON alert"));
    assert_eq!(header_str(&dead[0], "cx-source-topic").unwrap(), topic);
    assert_eq!(
        header_str(&dead[0], "cx-consumer-group").as_deref(),
        config.file["followup"]["group_id"].as_str()
    );
    assert!(client.list("cust-2").await.is_empty());

    // Every change is published whole, keyed by task_id, in version order.
    let records = published(&config, &task_id, 3).await;
    let versions: Vec<u64> = records
        .iter()
        .map(|r| r["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [1, 2, 3]);
    for record in &records {
        for key in TASK_KEYS {
            assert!(record.get(key).is_some(), "{key} missing from {record}");
        }
    }
    assert_eq!(records[2]["alert_ids"], json!(["al_1", "al_2", "al_3"]));
    service.stop().await;
}

/// The versions of the next `n` changes on a watch (30 s each at most).
async fn versions(stream: &mut Streaming<v1::Task>, n: usize, what: &str) -> Vec<u64> {
    let mut seen = Vec::new();
    while seen.len() < n {
        let next = tokio::time::timeout(Duration::from_secs(30), stream.message())
            .await
            .expect(what)
            .expect("watch stream")
            .expect("a task");
        seen.push(next.version);
    }
    seen
}

async fn lifecycle_with_survey(nps: i32, outcome: &str) {
    require_stack().await;
    let iso = Isolation::new();
    let config = config(&iso);
    let service = start(config.clone(), None).await;
    let mut client = Client::connect(service.grpc_addr).await;

    produce_alert(&config, &alert("al_1", "cust-9", "critical")).await;
    let task = client.wait_for("cust-9", "a task", |t| t.len() == 1).await[0].clone();

    // A watcher of this customer sees every change that follows.
    let mut watch = client.watch("cust-9", None).await;

    let t = client
        .update(&task.task_id, 1, "in_progress", None)
        .await
        .unwrap();
    assert_eq!((t.state.as_str(), t.version), ("in_progress", 2));
    let t = client
        .update(&task.task_id, 2, "contacted", None)
        .await
        .unwrap();
    assert_eq!((t.state.as_str(), t.version), ("contacted", 3));
    let t = client
        .update(&task.task_id, 3, "resolved", Some("double charge"))
        .await
        .unwrap();
    assert_eq!(t.state, "resolved");
    assert_eq!(t.root_cause.as_deref(), Some("double charge"));
    assert!(t.resolved_at.is_some());
    assert_eq!(t.outcome, None);

    assert_eq!(versions(&mut watch, 3, "watch delivers").await, [2, 3, 4]);

    // A watcher resuming from before the task was opened gets every change
    // again, in order, then live ones.
    let opened = task.created_at.expect("created_at");
    let mut resumed = client.watch("cust-9", Some(opened.seconds - 1)).await;
    assert_eq!(
        versions(&mut resumed, 4, "the resumed watch delivers").await,
        [1, 2, 3, 4]
    );

    // A `since` ahead of the stream (a client's clock ahead of Redis's)
    // replays nothing and still gets the live changes.
    let mut ahead = client.watch("cust-9", Some(opened.seconds + 3600)).await;

    // The resolved task is not the customer's open task any more: a
    // redelivered alert opens nothing, a new alert opens a new task.
    produce_alert(&config, &alert("al_1", "cust-9", "critical")).await;

    // The customer's next survey decides the outcome: not one of a
    // customer without a task, nor the one after it (the opposite score).
    produce_survey(&config, "cust-without-task", "survey-other", nps).await;
    produce_survey(&config, "cust-9", "survey-after", nps).await;
    let opposite = if nps >= 9 { 3 } else { 9 };
    produce_survey(&config, "cust-9", "survey-later", opposite).await;
    let tasks = client
        .wait_for("cust-9", "an outcome", |t| {
            t.iter().any(|t| t.outcome.is_some())
        })
        .await;
    assert_eq!(tasks.len(), 1, "the redelivered alert opened no task");
    assert_eq!(tasks[0].outcome.as_deref(), Some(outcome));
    assert_eq!(tasks[0].version, 5);
    assert_eq!(
        versions(
            &mut ahead,
            1,
            "the watch from ahead delivers the live change"
        )
        .await,
        [5]
    );

    // The loop measures, exact in Redis.
    let http = reqwest::Client::new();
    let unauthorized = http.get(service.http("/v1/stats")).send().await.unwrap();
    assert_eq!(unauthorized.status().as_u16(), 401);
    let stats: Value = http
        .get(service.http("/v1/stats"))
        .header("authorization", bearer(READER_TOKEN))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let team = &stats["teams"][0];
    assert_eq!(team["team"], "team-a", "{stats}");
    assert_eq!(team["tasks_opened"], 1);
    assert_eq!(team["contacted"], 1);
    assert_eq!(team["sla_compliance_pct"], 100.0);
    assert_eq!(team["escalations"], 0);
    assert_eq!(team[outcome], 1);
    assert_eq!(
        team["recovery_rate_pct"],
        if outcome == "recovered" { 100.0 } else { 0.0 }
    );
    assert!(team["mean_time_to_first_contact_s"].as_f64().unwrap() >= 0.0);

    let records = published(&config, &task.task_id, 5).await;
    let last = records.last().unwrap();
    assert_eq!(last["version"], 5);
    assert_eq!(last["outcome"], outcome);
    assert_eq!(last["root_cause"], "double charge");
    service.stop().await;
}

/// Follow-up's operations straight against the store, at a manual clock.
fn store_followups(iso: &Isolation, now: time::OffsetDateTime) -> Followups {
    store_followups_on(iso, Arc::new(ManualClock::new(now)))
}

fn store_followups_on(iso: &Isolation, clock: Arc<ManualClock>) -> Followups {
    let redis = cx_runtime::RedisPool::new(&redis_url()).expect("redis url");
    Followups {
        store: TaskStore::new(redis, &iso.redis_prefix, 0),
        clock,
        sla: cx_tasks::SlaConfig::default(),
        directory: Arc::new(cx_tasks::Directory::default()),
    }
}

async fn on_alert(followups: &Followups, alert_id: &str, customer: &str) -> AlertOutcome {
    let json = alert(alert_id, customer, "critical");
    let parsed: cx_rules::Alert = serde_json::from_value(json.clone()).expect("an alert");
    followups
        .on_alert(&parsed, json.to_string().as_bytes())
        .await
        .expect("redis")
}

/// Takes an open task through in_progress and contacted to resolved.
async fn resolve(followups: &Followups, task_id: &str) {
    let task = followups.store.get(task_id).await.expect("redis").unwrap();
    for (step, state, root_cause) in [
        (0, TaskState::InProgress, None),
        (1, TaskState::Contacted, None),
        (2, TaskState::Resolved, Some("double charge")),
    ] {
        let update = TaskUpdate {
            task_id: task_id.to_string(),
            version: task.version + step,
            state,
            owner: None,
            root_cause: root_cause.map(String::from),
            resolution_note: None,
        };
        followups.update(&update).await.expect("update applies");
    }
}

/// A batch of surveys, straight against the store: the customer without a
/// task is passed over, and of two surveys of one customer in one batch the
/// first after the resolution decides the outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_surveys_decides_outcomes_in_batch_order() {
    require_stack().await;
    let iso = Isolation::new();
    let t0 = time::OffsetDateTime::now_utc();
    let followups = store_followups(&iso, t0);
    let AlertOutcome::Opened(task_id) = on_alert(&followups, "al_1", "cust-a").await else {
        panic!("the alert opens a task");
    };
    resolve(&followups, &task_id).await;

    let after = t0 + time::Duration::minutes(1);
    let survey = |interaction_id, nps| Survey {
        interaction_id,
        occurred_at: after,
        nps: Some(nps),
        csat: None,
    };
    let batch = [
        ("cust-without-task", survey("s-0", 10)),
        ("cust-a", survey("s-1", 3)),
        ("cust-a", survey("s-2", 10)),
    ];
    assert_eq!(followups.on_surveys(&batch).await.expect("redis"), 1);
    let task = followups
        .store
        .get(&task_id)
        .await
        .expect("redis")
        .expect("the task");
    assert_eq!(task.outcome, Some(Outcome::NotRecovered));
    assert_eq!(task.last_survey_interaction_id.as_deref(), Some("s-1"));
    assert_eq!(task.version, 5);
}

/// The customer's next survey decides a resolved task's outcome also when
/// a new task of theirs opened in between (a keyword alert before the
/// survey); and an alert attached to the resolved task, delivered again,
/// finds that task instead of opening another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_task_keeps_no_outcome_from_a_resolved_one_and_a_redelivered_alert_opens_nothing() {
    require_stack().await;
    let iso = Isolation::new();
    let t0 = time::OffsetDateTime::now_utc();
    let followups = store_followups(&iso, t0);
    let AlertOutcome::Opened(first) = on_alert(&followups, "al_1", "cust-b").await else {
        panic!("the alert opens a task");
    };
    assert_eq!(
        on_alert(&followups, "al_2", "cust-b").await,
        AlertOutcome::Attached(first.clone())
    );
    resolve(&followups, &first).await;

    assert_eq!(
        on_alert(&followups, "al_2", "cust-b").await,
        AlertOutcome::AlreadyHandled(first.clone()),
        "a redelivery of the attached alert"
    );
    let AlertOutcome::Opened(second) = on_alert(&followups, "al_3", "cust-b").await else {
        panic!("a new alert after the resolution opens a new task");
    };
    assert_ne!(second, first);

    let survey = Survey {
        interaction_id: "s-1",
        occurred_at: t0 + time::Duration::minutes(1),
        nps: Some(9),
        csat: None,
    };
    assert_eq!(
        followups
            .on_surveys(&[("cust-b", survey)])
            .await
            .expect("redis"),
        1
    );
    let resolved = followups.store.get(&first).await.expect("redis").unwrap();
    assert_eq!(resolved.outcome, Some(Outcome::Recovered));
    let open = followups.store.get(&second).await.expect("redis").unwrap();
    assert_eq!(open.outcome, None, "not resolved: nothing to decide");
    // Decided once: the same survey again decides nothing.
    assert_eq!(
        followups
            .on_surveys(&[("cust-b", survey)])
            .await
            .expect("redis"),
        0
    );
}

/// A task resolved by a version before the awaiting set (found through the
/// customer's newest-task pointer, which that version wrote) still gets
/// its outcome from the next survey after an upgrade.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_resolved_before_the_upgrade_still_gets_its_outcome() {
    require_stack().await;
    let iso = Isolation::new();
    let t0 = time::OffsetDateTime::now_utc();
    let followups = store_followups(&iso, t0);
    let AlertOutcome::Opened(task_id) = on_alert(&followups, "al_1", "cust-old").await else {
        panic!("the alert opens a task");
    };
    resolve(&followups, &task_id).await;
    // What the older version left in Redis: the pointer, no awaiting entry.
    let redis = redis::Client::open(redis_url()).unwrap();
    let mut conn = redis.get_multiplexed_async_connection().await.unwrap();
    let prefix = &iso.redis_prefix;
    redis::pipe()
        .del(format!("{prefix}:followup:awaiting:cust-old"))
        .set(format!("{prefix}:followup:latest:cust-old"), &task_id)
        .query_async::<()>(&mut conn)
        .await
        .unwrap();

    let survey = Survey {
        interaction_id: "s-1",
        occurred_at: t0 + time::Duration::minutes(1),
        nps: Some(3),
        csat: None,
    };
    assert_eq!(
        followups
            .on_surveys(&[("cust-old", survey)])
            .await
            .expect("redis"),
        1
    );
    let task = followups.store.get(&task_id).await.expect("redis").unwrap();
    assert_eq!(task.outcome, Some(Outcome::NotRecovered));
}

/// A resolution read after the customer's next survey (the update waited
/// in a backlog, or its consumer group ran behind the survey group) is
/// dated when the CRM made it and takes the first survey after that as the
/// outcome, in the same change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolution_read_after_the_next_survey_takes_it_as_the_outcome() {
    require_stack().await;
    let iso = Isolation::new();
    let t0 = time::OffsetDateTime::now_utc();
    let clock = Arc::new(ManualClock::new(t0));
    let followups = store_followups_on(&iso, clock.clone());
    let AlertOutcome::Opened(task_id) = on_alert(&followups, "al_1", "cust-c").await else {
        panic!("the alert opens a task");
    };
    let update = |version: u64, state: TaskState| TaskUpdate {
        task_id: task_id.clone(),
        version,
        state,
        owner: None,
        root_cause: (state == TaskState::Resolved).then(|| "double charge".to_string()),
        resolution_note: None,
    };
    followups
        .update(&update(1, TaskState::Contacted))
        .await
        .expect("contacted");

    // The surveys arrive while the resolution waits: one taken before the
    // CRM resolved the task, one after.
    let minutes = |m: i64| t0 + time::Duration::minutes(m);
    let survey = |interaction_id, occurred_at, nps| Survey {
        interaction_id,
        occurred_at,
        nps: Some(nps),
        csat: None,
    };
    let batch = [
        ("cust-c", survey("s-0", minutes(1), 2)),
        ("cust-c", survey("s-1", minutes(5), 9)),
    ];
    assert_eq!(followups.on_surveys(&batch).await.expect("redis"), 0);

    clock.set(minutes(10));
    let resolved = followups
        .update_made_at(&update(2, TaskState::Resolved), Some(minutes(3)))
        .await
        .expect("resolved");
    assert_eq!(
        resolved.resolved_at,
        Some(minutes(3)),
        "when the CRM resolved it"
    );
    assert_eq!(resolved.outcome, Some(Outcome::Recovered));
    assert_eq!(resolved.last_survey_interaction_id.as_deref(), Some("s-1"));
    assert_eq!(
        resolved.version, 3,
        "one change: resolved, with its outcome"
    );
    let stored = followups.store.get(&task_id).await.expect("redis").unwrap();
    assert_eq!(stored, resolved);

    // A CRM clock behind the task's last change dates the change then.
    let closed = followups
        .update_made_at(
            &update(3, TaskState::Closed),
            Some(t0 - time::Duration::days(1)),
        )
        .await
        .expect("closed");
    assert_eq!(closed.updated_at, resolved.updated_at);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_then_a_promoter_survey_is_recovered() {
    lifecycle_with_survey(9, "recovered").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_then_a_detractor_survey_is_not_recovered() {
    lifecycle_with_survey(3, "not_recovered").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_updates_leave_the_task_unchanged() {
    require_stack().await;
    let iso = Isolation::new();
    let config = config(&iso);
    let service = start(config.clone(), None).await;
    let mut client = Client::connect(service.grpc_addr).await;
    produce_alert(&config, &alert("al_1", "cust-3", "warning")).await;
    let task = client.wait_for("cust-3", "a task", |t| t.len() == 1).await[0].clone();

    let illegal = client
        .update(&task.task_id, 1, "resolved", None)
        .await
        .unwrap_err();
    assert_eq!(
        illegal.code(),
        tonic::Code::FailedPrecondition,
        "{illegal:?}"
    );
    let stale = client
        .update(&task.task_id, 7, "in_progress", None)
        .await
        .unwrap_err();
    assert_eq!(stale.code(), tonic::Code::FailedPrecondition, "{stale:?}");
    let unknown_state = client
        .update(&task.task_id, 1, "done", None)
        .await
        .unwrap_err();
    assert_eq!(unknown_state.code(), tonic::Code::InvalidArgument);
    let details = unknown_state.get_error_details();
    assert_eq!(
        details.bad_request().expect("BadRequest").field_violations[0].field,
        "state"
    );
    // No version (proto3's 0) is a missing field, not a stale version.
    let no_version = client
        .update(&task.task_id, 0, "in_progress", None)
        .await
        .unwrap_err();
    assert_eq!(
        no_version.code(),
        tonic::Code::InvalidArgument,
        "{no_version:?}"
    );
    assert_eq!(
        no_version
            .get_error_details()
            .bad_request()
            .expect("BadRequest")
            .field_violations[0]
            .field,
        "version"
    );
    let missing = client
        .update("task_nope", 1, "in_progress", None)
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    assert_eq!(
        client.get("task_nope").await.unwrap_err().code(),
        tonic::Code::NotFound
    );

    // Reading is not writing.
    let denied = client
        .0
        .update_task(request(
            v1::UpdateTaskRequest {
                task_id: task.task_id.clone(),
                version: 1,
                state: "in_progress".into(),
                ..Default::default()
            },
            READER_TOKEN,
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    let anonymous = client
        .0
        .get_task(v1::GetTaskRequest {
            task_id: task.task_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), tonic::Code::Unauthenticated);

    let unchanged = client.get(&task.task_id).await.unwrap();
    assert_eq!(unchanged, task);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_with_one_version_have_one_winner() {
    require_stack().await;
    let iso = Isolation::new();
    let config = config(&iso);
    let service = start(config.clone(), None).await;
    let mut client = Client::connect(service.grpc_addr).await;
    produce_alert(&config, &alert("al_1", "cust-4", "warning")).await;
    let task = client.wait_for("cust-4", "a task", |t| t.len() == 1).await[0].clone();

    for round in 0..5u64 {
        let version = 1 + round;
        let (a, b) = {
            let mut first = Client::connect(service.grpc_addr).await;
            let mut second = Client::connect(service.grpc_addr).await;
            let (id_a, id_b) = (task.task_id.clone(), task.task_id.clone());
            let state = if round % 2 == 0 {
                "escalated"
            } else {
                "in_progress"
            };
            tokio::join!(
                async move { first.update(&id_a, version, state, None).await },
                async move { second.update(&id_b, version, state, None).await },
            )
        };
        let wins = [&a, &b].iter().filter(|r| r.is_ok()).count();
        assert_eq!(wins, 1, "round {round}: {a:?} {b:?}");
        let loser = if a.is_ok() { b } else { a };
        assert_eq!(loser.unwrap_err().code(), tonic::Code::FailedPrecondition);
    }
    assert_eq!(client.get(&task.task_id).await.unwrap().version, 6);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_from_the_topic_are_applied_or_dead_lettered() {
    require_stack().await;
    let iso = Isolation::new();
    let config = config(&iso);
    let service = start(config.clone(), None).await;
    let mut client = Client::connect(service.grpc_addr).await;
    produce_alert(&config, &alert("al_1", "cust-5", "warning")).await;
    let task = client.wait_for("cust-5", "a task", |t| t.len() == 1).await[0].clone();
    let topic = config.kafka.topics.followup_updates.clone();

    let good = json!({"task_id": task.task_id, "version": 1, "state": "contacted", "owner": "crm-agent-12"});
    // The CRM made the change half a second after the task opened; it is
    // read a while later, and dated when it was made (its record's time).
    let created = task.created_at.expect("created_at");
    let made_ms = created.seconds * 1000 + i64::from(created.nanos / 1_000_000) + 500;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    kafka::ensure_topics(&config.kafka, &[&topic])
        .await
        .unwrap();
    kafka::producer(&config.kafka, "cx-test")
        .unwrap()
        .send(
            FutureRecord::to(&topic)
                .key(&task.task_id)
                .payload(&good.to_string())
                .timestamp(made_ms),
            Duration::from_secs(10),
        )
        .await
        .expect("produce");
    let tasks = client
        .wait_for("cust-5", "the update applied", |t| t[0].version == 2)
        .await;
    assert_eq!(tasks[0].state, "contacted");
    assert_eq!(tasks[0].owner, "crm-agent-12");
    let updated = tasks[0].updated_at.expect("updated_at");
    assert_eq!(
        updated.seconds * 1000 + i64::from(updated.nanos / 1_000_000),
        made_ms,
        "dated by the record, not by when follow-up read it"
    );

    // The same update again is stale now; an illegal one is refused.
    produce(&config, &topic, &task.task_id, good.to_string().as_bytes()).await;
    let illegal = json!({"task_id": task.task_id, "version": 2, "state": "escalated"});
    produce(
        &config,
        &topic,
        &task.task_id,
        illegal.to_string().as_bytes(),
    )
    .await;
    produce(&config, &topic, "x", b"[1, 2]").await;
    // Legal, but keyed by another task: refused, nothing applied.
    let miskeyed = json!({"task_id": task.task_id, "version": 2, "state": "resolved"});
    produce(
        &config,
        &topic,
        "another-task",
        miskeyed.to_string().as_bytes(),
    )
    .await;
    let dead = read_topic(
        &brokers(),
        &config.kafka.topics.deadletter,
        4,
        Duration::from_millis(500),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(dead.len(), 4, "{dead:?}");
    let errors: Vec<String> = dead
        .iter()
        .map(|d| header_str(d, "cx-error").unwrap())
        .collect();
    assert!(
        errors.iter().any(|e| e.contains("stale version")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("illegal transition")),
        "{errors:?}"
    );
    assert!(errors.iter().any(|e| e.contains("body")), "{errors:?}");
    assert!(
        errors.iter().any(|e| e.contains("key is not its task_id")),
        "{errors:?}"
    );
    let updates_group = format!(
        "{}-updates",
        config.file["followup"]["group_id"].as_str().unwrap()
    );
    for record in &dead {
        assert_eq!(header_str(record, "cx-source-topic").unwrap(), topic);
        assert_eq!(
            header_str(record, "cx-consumer-group").as_deref(),
            Some(updates_group.as_str())
        );
    }
    assert_eq!(client.get(&task.task_id).await.unwrap().version, 2);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overdue_tasks_escalate_once_per_due_time_with_two_replicas() {
    require_stack().await;
    let iso = Isolation::new();
    let config = config(&iso);
    let clock = Arc::new(ManualClock::starting_now());
    let first = start(config.clone(), Some(clock.clone())).await;
    let second = start(config.clone(), Some(clock.clone())).await;
    let mut client = Client::connect(first.grpc_addr).await;

    produce_alert(&config, &alert("al_1", "cust-6", "critical")).await;
    let task = client.wait_for("cust-6", "a task", |t| t.len() == 1).await[0].clone();
    assert_eq!((task.owner.as_str(), task.escalation_level), ("lead-a", 0));

    // Not yet due: nothing happens.
    clock.advance(time::Duration::seconds(3500));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(client.get(&task.task_id).await.unwrap().version, 1);

    clock.advance(time::Duration::seconds(101));
    let tasks = client
        .wait_for("cust-6", "the first escalation", |t| {
            t[0].escalation_level == 1
        })
        .await;
    assert_eq!(tasks[0].state, "escalated");
    assert_eq!(tasks[0].owner, "manager-a");
    assert_eq!(tasks[0].version, 2);
    // Both replicas keep ticking: still exactly one escalation.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(client.get(&task.task_id).await.unwrap().version, 2);

    clock.advance(time::Duration::seconds(3601));
    let tasks = client
        .wait_for("cust-6", "the second escalation", |t| {
            t[0].escalation_level == 2
        })
        .await;
    assert_eq!(tasks[0].owner, "head-of-cx");
    assert_eq!(tasks[0].version, 3);

    // At the top of the chain it stays.
    clock.advance(time::Duration::seconds(3601));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let top = client.get(&task.task_id).await.unwrap();
    assert_eq!((top.escalation_level, top.version), (2, 3));

    let overdue = client
        .0
        .list_tasks(request(
            v1::ListTasksRequest {
                overdue_only: true,
                ..Default::default()
            },
            READER_TOKEN,
        ))
        .await
        .unwrap()
        .into_inner()
        .tasks;
    assert_eq!(overdue.len(), 1, "past due at the top of the chain");

    let records = published(&config, &task.task_id, 3).await;
    let published: Vec<(u64, String)> = records
        .iter()
        .map(|r| {
            (
                r["version"].as_u64().unwrap(),
                r["owner"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        published,
        [
            (1, "lead-a".to_string()),
            (2, "manager-a".to_string()),
            (3, "head-of-cx".to_string())
        ]
    );
    // Two escalations, and the first due time missed: SLA compliance 0 %.
    let stats: Value = reqwest::Client::new()
        .get(first.http("/v1/stats"))
        .header("authorization", bearer(READER_TOKEN))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let total = &stats["total"];
    assert_eq!(total["escalations"], 2, "{stats}");
    assert_eq!(total["sla_compliance_pct"], 0.0, "{stats}");
    first.stop().await;
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_and_pending_escalations_survive_a_restart() {
    require_stack().await;
    let iso = Isolation::new();
    let config = config(&iso);
    let clock = Arc::new(ManualClock::starting_now());
    let service = start(config.clone(), Some(clock.clone())).await;
    let mut client = Client::connect(service.grpc_addr).await;
    produce_alert(&config, &alert("al_1", "cust-7", "critical")).await;
    let task = client.wait_for("cust-7", "a task", |t| t.len() == 1).await[0].clone();
    service.stop().await;

    // While it is down: another alert for the customer, and the SLA passes.
    produce_alert(&config, &alert("al_2", "cust-7", "warning")).await;
    clock.advance(time::Duration::seconds(3601));

    let service = start(config.clone(), Some(clock.clone())).await;
    let mut client = Client::connect(service.grpc_addr).await;
    let tasks = client
        .wait_for("cust-7", "the alert attached and the escalation", |t| {
            t.len() == 1 && t[0].alert_ids.len() == 2 && t[0].escalation_level == 1
        })
        .await;
    assert_eq!(tasks[0].task_id, task.task_id);
    assert_eq!(tasks[0].owner, "manager-a");
    assert_eq!(tasks[0].version, 3);
    let records = published(&config, &task.task_id, 3).await;
    let versions: Vec<u64> = records
        .iter()
        .map(|r| r["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [1, 2, 3]);
    service.stop().await;
}

//! The whole loop with the real binaries, broker and Redis: a detractor
//! becomes an alert and a task, the CRM closes it, the next survey decides
//! the outcome; and a stream survives kill -9 of every service in turn
//! with exact counts, no duplicate alert or task, nothing lost.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use cx_proto::v1;
use cx_proto::v1::alert_service_client::AlertServiceClient;
use cx_proto::v1::follow_up_service_client::FollowUpServiceClient;
use cx_proto::v1::metrics_service_client::MetricsServiceClient;
use cx_runtime::kafka;
use cx_tests::*;
use rdkafka::producer::FutureRecord;

const DIRECTORY: &str = r#"
[directory]
default_owner = "cx-desk"
head_of_cx = "head-of-cx"
[directory.teams.team-a]
lead = "lead-a"
manager = "manager-a"
"#;

struct Loop {
    ingest: ServiceProcess,
    scoring: ServiceProcess,
    alerting: ServiceProcess,
    followup: ServiceProcess,
}

impl Loop {
    async fn start(iso: &Isolation) -> Loop {
        Loop {
            ingest: ServiceProcess::start("cx-ingest", "ingest", iso, "").await,
            scoring: ServiceProcess::start("cx-scoring", "scoring", iso, "").await,
            alerting: ServiceProcess::start("cx-alerting", "alerting", iso, "").await,
            followup: ServiceProcess::start("cx-followup", "followup", iso, DIRECTORY).await,
        }
    }
}

fn interaction(id: &str, customer: &str, nps: u8, verbatim: &str) -> serde_json::Value {
    let mut json = interaction_json(id, customer);
    json["nps"] = nps.into();
    // CSAT agrees with NPS, so only NPS decides who is a detractor.
    json["csat"] = (if nps >= 7 { 5 } else { 1 }).into();
    json["occurred_at"] = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
        .into();
    json["team_id"] = "team-a".into();
    json["queue_id"] = "billing".into();
    json["verbatim"] = verbatim.into();
    json
}

/// Submits through ingest's HTTP API, retrying while ingest is down or
/// answers 503 (a client's duty; ingest answers duplicates as success).
async fn submit(base: &str, items: &[serde_json::Value]) {
    let client = reqwest::Client::new();
    let body = serde_json::json!({ "interactions": items });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let answer = client
            .post(format!("{base}/v1/interactions:batch"))
            .header("authorization", bearer(WRITER_TOKEN))
            .json(&body)
            .send()
            .await;
        if let Ok(answer) = answer {
            if answer.status() == 200 {
                let results: serde_json::Value = answer.json().await.unwrap();
                for result in results["results"].as_array().unwrap() {
                    assert_ne!(result["status"], "invalid", "{result}");
                }
                return;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "ingest never took the batch"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every cx_ metric a service exports has `# HELP` text and none is a
/// summary (quantiles do not add across replicas); each of `histograms` is
/// there as a histogram with its `+Inf` bucket; records it published to
/// `produced_to` are counted under that topic; each of `from_start` (a
/// counter series of something this test never causes) is there anyway,
/// started at 0, so alerts on it need no `or vector(0)`.
async fn assert_metrics_described(
    service: &ServiceProcess,
    produced_to: &str,
    histograms: &[&str],
    from_start: &[String],
) {
    let text = metrics_text(&format!("{}/metrics", service.base)).await;
    for series in from_start {
        assert!(
            text.lines().any(|line| line == format!("{series} 0")),
            "{series} is not on /metrics at 0:\n{text}"
        );
    }
    let produced = format!("cx_kafka_produced_total{{topic=\"{produced_to}\"}} ");
    let count: u64 = text
        .lines()
        .find_map(|line| line.strip_prefix(&produced))
        .unwrap_or_else(|| panic!("no {produced}:\n{text}"))
        .parse()
        .unwrap();
    assert!(count >= 1, "{produced}{count}");
    let described: BTreeSet<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# HELP "))
        .filter_map(|rest| rest.split_whitespace().next())
        .collect();
    let typed: BTreeMap<&str, &str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_once(' '))
        .filter(|(name, _)| name.starts_with("cx_"))
        .collect();
    for (name, kind) in &typed {
        assert!(described.contains(name), "{name} has no # HELP:\n{text}");
        assert_ne!(*kind, "summary", "{name}");
    }
    for name in histograms {
        assert_eq!(typed.get(name), Some(&"histogram"), "{name}:\n{text}");
        assert!(
            text.lines()
                .any(|line| line.starts_with(&format!("{name}_bucket{{"))
                    && line.contains("le=\"+Inf\"")),
            "{name} has no +Inf bucket:\n{text}"
        );
    }
}

fn request<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", bearer(token).parse().unwrap());
    request
}

async fn tasks_of(followup: &ServiceProcess, customer: &str) -> Vec<v1::Task> {
    let Ok(mut client) =
        FollowUpServiceClient::connect(format!("http://{}", followup.grpc_addr)).await
    else {
        return Vec::new();
    };
    client
        .list_tasks(request(
            v1::ListTasksRequest {
                customer_id: customer.to_string(),
                page_size: 500,
                ..Default::default()
            },
            READER_TOKEN,
        ))
        .await
        .map(|r| r.into_inner().tasks)
        .unwrap_or_default()
}

async fn wait_for_task(
    followup: &ServiceProcess,
    customer: &str,
    what: &str,
    check: impl Fn(&v1::Task) -> bool,
) -> v1::Task {
    let mut found = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while found.is_none() {
        found = tasks_of(followup, customer)
            .await
            .into_iter()
            .find(|t| check(t));
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        if found.is_none() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    found.unwrap()
}

#[tokio::test]
async fn a_detractor_becomes_an_alert_and_a_task_and_the_next_survey_recovers_the_customer() {
    require_stack().await;
    let iso = Isolation::new();
    let services = Loop::start(&iso).await;

    submit(
        &services.ingest.base,
        &[interaction(
            "loop-1",
            "cust-loop",
            2,
            "Charged twice, I want to cancel",
        )],
    )
    .await;
    let task = wait_for_task(&services.followup, "cust-loop", "a task", |_| true).await;
    assert_eq!(task.state, "open");
    assert_eq!(task.owner, "lead-a", "the team lead from the directory");
    assert_eq!(task.interaction_ids, vec!["loop-1".to_string()]);
    // The response and the keyword alert attach to the same task.
    let task = wait_for_task(
        &services.followup,
        "cust-loop",
        "both alerts attached",
        |t| t.alert_ids.len() == 2,
    )
    .await;
    let mut alerts = AlertServiceClient::connect(format!("http://{}", services.alerting.grpc_addr))
        .await
        .unwrap();
    let listed = alerts
        .list_alerts(request(v1::ListAlertsRequest::default(), READER_TOKEN))
        .await
        .unwrap()
        .into_inner()
        .alerts;
    let listed_ids: BTreeSet<String> = listed.iter().map(|a| a.alert_id.clone()).collect();
    let task_alerts: BTreeSet<String> = task.alert_ids.iter().cloned().collect();
    assert_eq!(listed_ids, task_alerts);

    // The CRM: in progress over gRPC, contacted over the updates topic,
    // resolved over gRPC.
    let mut followup =
        FollowUpServiceClient::connect(format!("http://{}", services.followup.grpc_addr))
            .await
            .unwrap();
    let update = |version: u64, state: &str| v1::UpdateTaskRequest {
        task_id: task.task_id.clone(),
        version,
        state: state.into(),
        root_cause: (state == "resolved").then(|| "double charge".into()),
        resolution_note: (state == "resolved").then(|| "refunded".into()),
        owner: None,
    };
    let in_progress = followup
        .update_task(request(update(task.version, "in_progress"), OPERATOR_TOKEN))
        .await
        .unwrap()
        .into_inner();
    let config = iso.config(cx_runtime::ServiceName::Followup, &brokers(), &redis_url());
    let updates_topic = config.kafka.topics.followup_updates.clone();
    kafka::ensure_topics(&config.kafka, &[&updates_topic])
        .await
        .unwrap();
    let producer = kafka::producer(&config.kafka, "cx-test-crm").unwrap();
    let contacted = serde_json::json!({
        "task_id": task.task_id, "version": in_progress.version, "state": "contacted",
    });
    producer
        .send(
            FutureRecord::to(&updates_topic)
                .key(&task.task_id)
                .payload(&serde_json::to_vec(&contacted).unwrap()),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    let contacted = wait_for_task(
        &services.followup,
        "cust-loop",
        "contacted via the CRM topic",
        |t| t.state == "contacted",
    )
    .await;
    let resolved = followup
        .update_task(request(
            update(contacted.version, "resolved"),
            OPERATOR_TOKEN,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resolved.root_cause.as_deref(), Some("double charge"));

    // The customer's next survey: a promoter.
    submit(
        &services.ingest.base,
        &[interaction("loop-2", "cust-loop", 9, "Thanks, sorted")],
    )
    .await;
    let done = wait_for_task(&services.followup, "cust-loop", "the outcome", |t| {
        t.outcome.is_some()
    })
    .await;
    assert_eq!(done.outcome.as_deref(), Some("recovered"));
    assert_eq!(
        tasks_of(&services.followup, "cust-loop").await.len(),
        1,
        "one task per customer"
    );

    let topics = &config.kafka.topics;
    assert_metrics_described(
        &services.ingest,
        &topics.interactions,
        &["cx_ingest_request_seconds"],
        &[
            r#"cx_ingest_shed_total{api="http"}"#.into(),
            "cx_ingest_mark_done_failed_total".into(),
            format!(
                r#"cx_kafka_produce_errors_total{{topic="{}"}}"#,
                topics.interactions
            ),
            "cx_kafka_producer_resets_total".into(),
            r#"cx_auth_refused_total{reason="permission_denied"}"#.into(),
        ],
    )
    .await;
    assert_metrics_described(
        &services.scoring,
        &topics.scored,
        &[
            "cx_consumer_stage_seconds",
            "cx_consumer_record_age_seconds",
            "cx_scoring_apply_step_seconds",
        ],
        &[
            format!(r#"cx_deadletter_total{{source="{}"}}"#, topics.interactions),
            "cx_scoring_deadlettered_total".into(),
        ],
    )
    .await;
    assert_metrics_described(
        &services.alerting,
        &topics.alerts,
        &[
            "cx_alerting_relay_delay_seconds",
            "cx_alerting_handle_step_seconds",
        ],
        &[
            format!(r#"cx_deadletter_total{{source="{}"}}"#, topics.scored),
            "cx_alerting_deadlettered_total".into(),
        ],
    )
    .await;
    assert_metrics_described(
        &services.followup,
        &topics.followups,
        &["cx_followup_relay_delay_seconds"],
        &[
            r#"cx_followup_updates_total{source="kafka",outcome="precondition"}"#.into(),
            r#"cx_followup_escalations_total{team="other"}"#.into(),
            format!(
                r#"cx_deadletter_total{{source="{}"}}"#,
                topics.followup_updates
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn kill_9_of_every_service_in_turn_loses_nothing_and_duplicates_nothing() {
    require_stack().await;
    let mut iso = Isolation::new();
    // tansu 0.6 answers a fetch from inside a multi-record batch with the
    // next batch (Apache Kafka returns the whole batch): one record per
    // batch keeps a restarted consumer from skipping records on tansu.
    iso.kafka_properties = "\"batch.num.messages\" = \"1\"\n".into();
    let mut services = Loop::start(&iso).await;

    const BATCHES: usize = 8;
    const PER_BATCH: usize = 25;
    let mut detractor_customers = BTreeSet::new();
    let mut all = Vec::new();
    for b in 0..BATCHES {
        // Kill -9 one service, then restart it, while the others go on.
        let victim = match b {
            1 => Some(&mut services.scoring),
            3 => Some(&mut services.alerting),
            5 => Some(&mut services.followup),
            7 => Some(&mut services.ingest),
            _ => None,
        };
        if let Some(victim) = victim {
            signal(victim.pid(), "KILL");
            let _ = victim.child.wait().await;
            victim.restart().await;
        }
        let items: Vec<_> = (0..PER_BATCH)
            .map(|i| {
                let n = b * PER_BATCH + i;
                let customer = format!("kc-{n}");
                let nps = if n.is_multiple_of(3) { 1 } else { 9 };
                if nps <= 6 {
                    detractor_customers.insert(customer.clone());
                }
                interaction(&format!("k-{n}"), &customer, nps, "fine")
            })
            .collect();
        submit(&services.ingest.base, &items).await;
        all.extend(items);
    }
    let total = all.len() as u64;

    // Every interaction counted exactly once.
    let mut metrics =
        MetricsServiceClient::connect(format!("http://{}", services.scoring.grpc_addr))
            .await
            .unwrap();
    let mut counted = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while counted < total && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(300)).await;
        counted = metrics
            .get_metrics(request(
                v1::GetMetricsRequest {
                    dimension: "global".into(),
                    key: "all".into(),
                    window: "1h".into(),
                },
                READER_TOKEN,
            ))
            .await
            .unwrap()
            .into_inner()
            .metrics
            .unwrap()
            .interactions;
    }
    assert_eq!(counted, total, "window count after kill -9 of each service");

    // Every detractor has exactly one task, holding exactly its one alert.
    let mut followup =
        FollowUpServiceClient::connect(format!("http://{}", services.followup.grpc_addr))
            .await
            .unwrap();
    let mut tasks: BTreeMap<String, Vec<v1::Task>> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        tasks.clear();
        let mut page_token = String::new();
        loop {
            let page = followup
                .list_tasks(request(
                    v1::ListTasksRequest {
                        page_size: 500,
                        page_token: page_token.clone(),
                        ..Default::default()
                    },
                    READER_TOKEN,
                ))
                .await
                .unwrap()
                .into_inner();
            for task in page.tasks {
                tasks
                    .entry(task.customer_id.clone())
                    .or_default()
                    .push(task);
            }
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        let with_task: BTreeSet<String> = tasks.keys().cloned().collect();
        if with_task == detractor_customers || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let with_task: BTreeSet<String> = tasks.keys().cloned().collect();
    assert_eq!(
        with_task, detractor_customers,
        "a detractor without a task, or a task without one"
    );
    for (customer, tasks) in &tasks {
        assert_eq!(tasks.len(), 1, "{customer} has {} tasks", tasks.len());
        assert_eq!(
            tasks[0].alert_ids.len(),
            1,
            "{customer}: {:?}",
            tasks[0].alert_ids
        );
    }

    // AlertService: one response alert per detractor, none twice.
    let mut alerts = AlertServiceClient::connect(format!("http://{}", services.alerting.grpc_addr))
        .await
        .unwrap();
    let mut per_interaction: BTreeMap<String, usize> = BTreeMap::new();
    let mut page_token = String::new();
    loop {
        let page = alerts
            .list_alerts(request(
                v1::ListAlertsRequest {
                    page_size: 500,
                    page_token: page_token.clone(),
                    ..Default::default()
                },
                READER_TOKEN,
            ))
            .await
            .unwrap()
            .into_inner();
        for alert in page.alerts.iter().filter(|a| a.kind == "response") {
            *per_interaction
                .entry(alert.interaction_id.clone().unwrap_or_default())
                .or_default() += 1;
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(per_interaction.len(), detractor_customers.len());
    assert!(
        per_interaction.values().all(|n| *n == 1),
        "{per_interaction:?}"
    );
}

//! `cx-bench task-updates`: FollowUpService.UpdateTask throughput.
//!
//! Opens `--tasks` tasks by publishing one response alert per new customer
//! to cx.alerts.v1, waits until cx-followup has every one, then walks each
//! task open → in_progress → contacted → resolved → closed with UpdateTask
//! (four compare-and-set updates per task), `--concurrency` tasks at a
//! time. The baseline, measured in the same run with the same concurrency,
//! is GetTask: the read-only round trip to the same service and Redis.

use std::time::{Duration, Instant};

use cx_proto::v1;
use cx_proto::v1::follow_up_service_client::FollowUpServiceClient;
use futures::stream::{self, StreamExt};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use tonic::transport::Channel;

type BoxError = Box<dyn std::error::Error>;

#[derive(clap::Args)]
pub(crate) struct TaskUpdatesArgs {
    #[arg(long, default_value = "127.0.0.1:50054")]
    followup: String,
    #[arg(long, default_value = "127.0.0.1:9092")]
    brokers: String,
    #[arg(long, default_value = "cx.alerts.v1")]
    alerts_topic: String,
    /// Needs followups:read and followups:write.
    #[arg(long, env = "CX_BENCH_TOKEN")]
    token: String,
    #[arg(long, default_value_t = 5000)]
    tasks: usize,
    /// Tasks updated at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
}

const WALK: [&str; 4] = ["in_progress", "contacted", "resolved", "closed"];

fn alert_json(run: &str, n: usize, now: &str) -> (String, String, Vec<u8>) {
    let customer = format!("tu-{run}-c{n}");
    let alert_id = format!("al_tu{run}{n:08}");
    let json = serde_json::json!({
        "alert_id": alert_id, "rule": "detractor", "kind": "response", "severity": "warning",
        "dimension": "queue", "key": "billing", "customer_id": customer,
        "interaction_id": format!("tu-{run}-i{n}"), "window": null, "metric": "nps",
        "value": 2.0, "threshold": 6.0, "message": "Detractor: NPS 2 (bench)",
        "created_at": now, "suppressed_count": 0,
    });
    let task_id = cx_tasks::task_id_for(&customer, &alert_id);
    (customer, task_id, serde_json::to_vec(&json).expect("json"))
}

fn authorized<T>(message: T, token: &str) -> Result<tonic::Request<T>, BoxError> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    Ok(request)
}

async fn get(
    client: &mut FollowUpServiceClient<Channel>,
    token: &str,
    task_id: &str,
) -> Option<v1::Task> {
    let request = authorized(
        v1::GetTaskRequest {
            task_id: task_id.to_string(),
        },
        token,
    )
    .ok()?;
    client.get_task(request).await.ok().map(|r| r.into_inner())
}

pub(crate) async fn run(args: TaskUpdatesArgs) -> Result<(), BoxError> {
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let now =
        time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339)?;
    let alerts: Vec<_> = (0..args.tasks).map(|n| alert_json(&run, n, &now)).collect();
    println!(
        "cx-bench task-updates: {} tasks × {} updates, {} at once, run {run}",
        args.tasks,
        WALK.len(),
        args.concurrency
    );

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .set("linger.ms", "5")
        .create()?;
    let sends = alerts.iter().map(|(customer, _, payload)| {
        producer.send(
            FutureRecord::to(&args.alerts_topic)
                .key(customer)
                .payload(payload),
            Duration::from_secs(10),
        )
    });
    for sent in futures::future::join_all(sends).await {
        sent.map_err(|(e, _)| e)?;
    }

    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", args.followup))?
        .tcp_nodelay(true)
        .connect()
        .await?;
    let opened = Instant::now();
    let mut client = FollowUpServiceClient::new(channel.clone());
    for (_, task_id, _) in alerts.iter().rev() {
        while get(&mut client, &args.token, task_id).await.is_none() {
            if opened.elapsed() > Duration::from_secs(120) {
                return Err(format!("task {task_id} not opened within 120 s").into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    println!(
        "  {} tasks opened in {:.2} s",
        args.tasks,
        opened.elapsed().as_secs_f64()
    );

    // Baseline: one GetTask per task, same concurrency.
    let started = Instant::now();
    let reads: usize = stream::iter(alerts.iter())
        .map(|(_, task_id, _)| {
            let mut client = FollowUpServiceClient::new(channel.clone());
            let token = args.token.clone();
            async move { usize::from(get(&mut client, &token, task_id).await.is_some()) }
        })
        .buffer_unordered(args.concurrency)
        .fold(0, |sum, ok| async move { sum + ok })
        .await;
    let read_elapsed = started.elapsed();

    let started = Instant::now();
    let results: Vec<(usize, usize)> = stream::iter(alerts.iter())
        .map(|(_, task_id, _)| {
            let mut client = FollowUpServiceClient::new(channel.clone());
            let token = args.token.clone();
            async move {
                let (mut ok, mut refused) = (0, 0);
                for (version, state) in (1u64..).zip(WALK) {
                    let update = v1::UpdateTaskRequest {
                        task_id: task_id.clone(),
                        version,
                        state: state.to_string(),
                        root_cause: (state == "resolved").then(|| "billing error".to_string()),
                        resolution_note: (state == "resolved").then(|| "refunded".to_string()),
                        owner: None,
                    };
                    let Ok(request) = authorized(update, &token) else {
                        refused += 1;
                        continue;
                    };
                    match client.update_task(request).await {
                        Ok(_) => ok += 1,
                        Err(_) => refused += 1,
                    }
                }
                (ok, refused)
            }
        })
        .buffer_unordered(args.concurrency)
        .collect()
        .await;
    let update_elapsed = started.elapsed();
    let applied: usize = results.iter().map(|(ok, _)| ok).sum();
    let refused: usize = results.iter().map(|(_, refused)| refused).sum();

    let read_rate = reads as f64 / read_elapsed.as_secs_f64();
    let update_rate = applied as f64 / update_elapsed.as_secs_f64();
    println!();
    println!("| call | done | refused | seconds | per second | vs GetTask |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| GetTask (baseline) | {reads} | {} | {:.2} | {read_rate:.0} | 1.00 |",
        args.tasks - reads,
        read_elapsed.as_secs_f64()
    );
    println!(
        "| UpdateTask | {applied} | {refused} | {:.2} | {update_rate:.0} | {:.2} |",
        update_elapsed.as_secs_f64(),
        update_rate / read_rate
    );
    println!();
    println!(
        "target ≥ 5000 updates/s: {}",
        if update_rate >= 5000.0 {
            "met"
        } else {
            "MISSED"
        }
    );
    Ok(())
}

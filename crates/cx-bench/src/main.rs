//! cx-bench: load generator and sample traffic for cxloop.
//!
//! `cx-bench ingest` measures ingest accepted/s through gRPC and HTTP
//! batches, and single-call latency at a fixed rate, beside a baseline
//! measured in the same run: the raw produce rate of the same messages with
//! the same producer settings. `cx-bench sample` submits realistic
//! interactions and prints the answers; `cx-bench tail` prints what lands on
//! a topic. `cx-bench loop-latency` measures ingest-accepted → alert (and
//! → follow-up task) latency through the running services.

mod loop_latency;
mod task_updates;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use cx_proto::prost::Message as _;
use cx_proto::v1;
use cx_proto::v1::ingest_service_client::IngestServiceClient;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureRecord;
use rdkafka::{ClientConfig, Message};

#[derive(Parser)]
#[command(
    name = "cx-bench",
    about = "Load generator and sample traffic for cxloop"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Ingest throughput and latency against a running cx-ingest.
    Ingest(IngestArgs),
    /// End-to-end latency: ingest accepted → response alert on cx.alerts.v1
    /// (and, with --tasks, → follow-up task on cx.followups.v1).
    LoopLatency(loop_latency::LoopLatencyArgs),
    /// FollowUpService.UpdateTask throughput against a running cx-followup.
    TaskUpdates(task_updates::TaskUpdatesArgs),
    /// Submit realistic interactions over HTTP and print each answer.
    Sample {
        #[arg(long, default_value = "127.0.0.1:8081")]
        http: String,
        #[arg(long, env = "CX_BENCH_TOKEN")]
        token: String,
        #[arg(long, default_value_t = 20)]
        count: usize,
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
    /// Scoring throughput against a running cx-scoring: produce interactions
    /// to its source topic and time until they are all counted.
    Scoring(ScoringArgs),
    /// Print a dimension's keys ranked by a metric (MetricsService.RankKeys).
    Metrics {
        #[arg(long, default_value = "127.0.0.1:50052")]
        grpc: String,
        #[arg(long, env = "CX_BENCH_TOKEN")]
        token: String,
        #[arg(long, default_value = "queue")]
        dimension: String,
        #[arg(long, default_value = "1h")]
        window: String,
        #[arg(long, default_value = "nps")]
        metric: String,
    },
    /// Print records of a topic as they arrive (protobuf interactions decoded).
    Tail {
        #[arg(long, default_value = "127.0.0.1:9092")]
        brokers: String,
        #[arg(long, default_value = "cx.interactions.v1")]
        topic: String,
        /// Stop after this many records (0: run until killed).
        #[arg(long, default_value_t = 0)]
        max: usize,
        /// Stop after this many seconds without a record (0: never).
        #[arg(long, default_value_t = 0)]
        idle_exit_s: u64,
    },
}

#[derive(clap::Args)]
struct ScoringArgs {
    #[arg(long, default_value = "127.0.0.1:50052")]
    grpc: String,
    #[arg(long, default_value = "127.0.0.1:9092")]
    brokers: String,
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis: String,
    #[arg(long, default_value = "cx.interactions.v1")]
    topic: String,
    #[arg(long, env = "CX_BENCH_TOKEN")]
    token: String,
    #[arg(long, default_value_t = 200_000)]
    count: usize,
    /// Redis key prefix of the scoring service (config `redis.key_prefix`).
    #[arg(long, default_value = "cx")]
    key_prefix: String,
    /// librdkafka properties for the producer (name=value;…).
    #[arg(long, default_value = "")]
    kafka_properties: String,
}

#[derive(clap::Args)]
struct IngestArgs {
    #[arg(long, default_value = "127.0.0.1:50051")]
    grpc: String,
    #[arg(long, default_value = "127.0.0.1:8081")]
    http: String,
    #[arg(long, default_value = "127.0.0.1:9092")]
    brokers: String,
    /// Topic for the raw-produce baseline (a scratch topic, not cx.interactions.v1).
    #[arg(long, default_value = "cx.bench.baseline")]
    baseline_topic: String,
    #[arg(long, env = "CX_BENCH_TOKEN")]
    token: String,
    /// Interactions per throughput phase.
    #[arg(long, default_value_t = 200_000)]
    count: usize,
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Batches in flight at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Single SubmitInteraction calls per second for the latency phase.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    #[arg(long, default_value_t = 10)]
    latency_seconds: u64,
    /// librdkafka properties for the baseline producer (name=value;…), as CX_KAFKA_PROPERTIES.
    #[arg(long, default_value = "")]
    kafka_properties: String,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Ingest(args) => bench_ingest(args).await,
            Command::Scoring(args) => bench_scoring(args).await,
            Command::LoopLatency(args) => loop_latency::run(args).await,
            Command::TaskUpdates(args) => task_updates::run(args).await,
            Command::Metrics {
                grpc,
                token,
                dimension,
                window,
                metric,
            } => show_metrics(&grpc, &token, dimension, window, metric).await,
            Command::Sample {
                http,
                token,
                count,
                seed,
            } => sample(&http, &token, count, seed).await,
            Command::Tail {
                brokers,
                topic,
                max,
                idle_exit_s,
            } => tail(brokers, topic, max, idle_exit_s).await,
        }
    })
}

// ------------------------------------------------------------ traffic

const QUEUES: [&str; 5] = ["billing", "tech_support", "retention", "sales", "delivery"];
const CHANNELS: [v1::Channel; 5] = [
    v1::Channel::Voice,
    v1::Channel::Chat,
    v1::Channel::Email,
    v1::Channel::Sms,
    v1::Channel::Web,
];
const VERBATIMS: [(&str, i32); 8] = [
    ("The agent was lovely and fixed my bill in minutes", 10),
    ("Quick and easy, thanks!", 9),
    ("Fine, but I had to explain twice", 7),
    (
        "Waited 40 minutes on hold and got transferred three times",
        3,
    ),
    (
        "I want to cancel, nobody ever calls back. Reach me on 07700 900123",
        1,
    ),
    (
        "Charged twice on card 4111 1111 1111 1111, still not refunded",
        2,
    ),
    (
        "Delivery was late again, email me at sam.jones@example.com",
        4,
    ),
    ("Helpful, though the app kept crashing", 8),
];

/// A realistic interaction: queue, agent, channel, scores tied to the verbatim.
fn interaction(rng: &mut StdRng, interaction_id: String) -> v1::Interaction {
    let (verbatim, nps) = VERBATIMS[rng.random_range(0..VERBATIMS.len())];
    let queue = QUEUES[rng.random_range(0..QUEUES.len())];
    // Survey delay: most customers answer within minutes (exponential,
    // mean 2 min, capped at 50 min).
    let delay_s = (-(1.0 - rng.random::<f64>()).ln() * 120.0).min(3000.0) as i64;
    let occurred = time::OffsetDateTime::now_utc() - time::Duration::seconds(delay_s);
    let csat = (1 + nps / 2).clamp(1, 5);
    v1::Interaction {
        interaction_id,
        customer_id: format!("cust-{:05}", rng.random_range(0..50_000)),
        occurred_at: Some(cx_proto::prost_types::Timestamp {
            seconds: occurred.unix_timestamp(),
            nanos: 0,
        }),
        channel: CHANNELS[rng.random_range(0..CHANNELS.len())] as i32,
        agent_id: Some(format!("agent-{:03}", rng.random_range(0..120))),
        team_id: Some(format!("team-{}", rng.random_range(0..12))),
        queue_id: Some(queue.to_string()),
        nps: Some(nps),
        csat: Some(csat),
        ces: Some((csat + 2).clamp(1, 7)),
        verbatim: Some(verbatim.to_string()),
        handle_time_s: Some(rng.random_range(60..1200)),
        hold_time_s: Some(rng.random_range(0..600)),
        transfers: Some(rng.random_range(0..3)),
        resolved: Some(nps >= 7),
        attributes: HashMap::from([("language".to_string(), "en".to_string())]),
        ingested_at: None,
        redactions: 0,
    }
}

fn to_json(i: &v1::Interaction) -> serde_json::Value {
    let occurred = i
        .occurred_at
        .as_ref()
        .map(|t| t.seconds)
        .unwrap_or_default();
    let occurred = time::OffsetDateTime::from_unix_timestamp(occurred)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let channel = v1::Channel::try_from(i.channel)
        .ok()
        .and_then(v1::Channel::contract_name)
        .unwrap_or("voice");
    serde_json::json!({
        "interaction_id": i.interaction_id,
        "customer_id": i.customer_id,
        "occurred_at": occurred.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        "channel": channel,
        "agent_id": i.agent_id,
        "team_id": i.team_id,
        "queue_id": i.queue_id,
        "nps": i.nps,
        "csat": i.csat,
        "ces": i.ces,
        "verbatim": i.verbatim,
        "handle_time_s": i.handle_time_s,
        "hold_time_s": i.hold_time_s,
        "transfers": i.transfers,
        "resolved": i.resolved,
        "attributes": i.attributes,
    })
}

fn run_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_string()
}

// ------------------------------------------------------------ ingest bench

struct Phase {
    name: &'static str,
    accepted: u64,
    elapsed: Duration,
}

impl Phase {
    fn rate(&self) -> f64 {
        self.accepted as f64 / self.elapsed.as_secs_f64()
    }
}

async fn bench_ingest(args: IngestArgs) -> Result<(), Box<dyn std::error::Error>> {
    let run = run_id();
    println!(
        "cx-bench ingest: {} interactions per phase, batches of {}, {} in flight",
        args.count, args.batch, args.concurrency
    );

    let baseline = baseline_produce(&args, &run).await?;
    println!("  baseline raw produce   {:>10.0} msg/s", baseline.rate());
    let grpc = grpc_batches(&args, &run).await?;
    println!("  gRPC batches accepted  {:>10.0} /s", grpc.rate());
    let http = http_batches(&args, &run).await?;
    println!("  HTTP batches accepted  {:>10.0} /s", http.rate());
    let (p50, p99, calls) = single_call_latency(&args, &run).await?;

    println!();
    println!("| phase | accepted | seconds | per second | vs baseline |");
    println!("|---|---|---|---|---|");
    for phase in [&baseline, &grpc, &http] {
        println!(
            "| {} | {} | {:.2} | {:.0} | {:.2} |",
            phase.name,
            phase.accepted,
            phase.elapsed.as_secs_f64(),
            phase.rate(),
            phase.rate() / baseline.rate()
        );
    }
    println!();
    println!(
        "single SubmitInteraction at {}/s for {} s ({} calls): p50 {:.2} ms, p99 {:.2} ms",
        args.rate,
        args.latency_seconds,
        calls,
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    );
    Ok(())
}

fn kafka_config(brokers: &str, properties: &str) -> cx_runtime::config::KafkaConfig {
    let mut kafka = cx_runtime::config::KafkaConfig {
        brokers: brokers.to_string(),
        properties: Default::default(),
        group_properties: Default::default(),
        topic_partitions: 6,
        topic_replication: 1,
        topics: Default::default(),
    };
    for item in properties.split(';').filter(|s| !s.is_empty()) {
        if let Some((k, v)) = item.split_once('=') {
            kafka.properties.insert(k.trim().into(), v.trim().into());
        }
    }
    kafka
}

/// The same encoded messages, same producer settings, straight to Kafka.
async fn baseline_produce(
    args: &IngestArgs,
    run: &str,
) -> Result<Phase, Box<dyn std::error::Error>> {
    let kafka = kafka_config(&args.brokers, &args.kafka_properties);
    cx_runtime::kafka::ensure_topics(&kafka, &[&args.baseline_topic]).await?;
    let producer = cx_runtime::kafka::producer(&kafka, "cx-bench-baseline")?;
    let mut rng = StdRng::seed_from_u64(1);
    let messages: Vec<(String, Vec<u8>)> = (0..args.count)
        .map(|n| {
            let i = interaction(&mut rng, format!("base-{run}-{n}"));
            (i.customer_id.clone(), i.encode_to_vec())
        })
        .collect();
    let started = Instant::now();
    let mut accepted = 0u64;
    // Same shape as ingest: a wave of `batch` sends, awaited together,
    // `concurrency` waves in flight.
    let waves = messages.chunks(args.batch).collect::<Vec<_>>();
    for group in waves.chunks(args.concurrency) {
        let mut all = Vec::new();
        for wave in group {
            for (key, payload) in wave.iter() {
                let record = FutureRecord::to(&args.baseline_topic)
                    .key(key.as_str())
                    .payload(payload.as_slice());
                match producer.send_result(record) {
                    Ok(delivery) => all.push(delivery),
                    Err((error, _)) => return Err(error.into()),
                }
            }
        }
        for delivery in futures::future::join_all(all).await {
            if matches!(delivery, Ok(Ok(_))) {
                accepted += 1;
            }
        }
    }
    Ok(Phase {
        name: "baseline: raw produce (acks=all, idempotent)",
        accepted,
        elapsed: started.elapsed(),
    })
}

async fn grpc_batches(args: &IngestArgs, run: &str) -> Result<Phase, Box<dyn std::error::Error>> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", args.grpc))?
        .connect()
        .await?;
    let accepted = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicU64::new(0));
    let batches = args.count.div_ceil(args.batch) as u64;
    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..args.concurrency {
        let mut client =
            IngestServiceClient::new(channel.clone()).max_decoding_message_size(64 << 20);
        let (accepted, next, token, run) = (
            accepted.clone(),
            next.clone(),
            args.token.clone(),
            run.to_string(),
        );
        let batch = args.batch;
        workers.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(100 + worker as u64);
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= batches {
                    return Ok::<(), tonic::Status>(());
                }
                let interactions = (0..batch)
                    .map(|k| interaction(&mut rng, format!("g-{run}-{n}-{k}")))
                    .collect();
                let mut request =
                    tonic::Request::new(v1::SubmitInteractionsRequest { interactions });
                request.metadata_mut().insert(
                    "authorization",
                    format!("Bearer {token}").parse().expect("ascii token"),
                );
                let response = client.submit_interactions(request).await?.into_inner();
                let ok = response
                    .results
                    .iter()
                    .filter(|r| r.status == v1::SubmitStatus::Accepted as i32)
                    .count();
                accepted.fetch_add(ok as u64, Ordering::Relaxed);
            }
        }));
    }
    for worker in workers {
        worker.await??;
    }
    Ok(Phase {
        name: "gRPC SubmitInteractions",
        accepted: accepted.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
    })
}

async fn http_batches(args: &IngestArgs, run: &str) -> Result<Phase, Box<dyn std::error::Error>> {
    let client = reqwest::Client::new();
    let accepted = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicU64::new(0));
    let batches = args.count.div_ceil(args.batch) as u64;
    // Bodies are built before the clock starts: the phase measures ingest.
    let mut rng = StdRng::seed_from_u64(200);
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..batches)
            .map(|n| {
                let items: Vec<_> = (0..args.batch)
                    .map(|k| to_json(&interaction(&mut rng, format!("h-{run}-{n}-{k}"))))
                    .collect();
                serde_json::to_vec(&serde_json::json!({ "interactions": items })).expect("json")
            })
            .collect(),
    );
    let url = format!("http://{}/v1/interactions:batch", args.http);
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let (client, accepted, next, bodies, url, token) = (
            client.clone(),
            accepted.clone(),
            next.clone(),
            bodies.clone(),
            url.clone(),
            args.token.clone(),
        );
        workers.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= batches {
                    return Ok::<(), reqwest::Error>(());
                }
                let response = client
                    .post(&url)
                    .header("authorization", format!("Bearer {token}"))
                    .header("content-type", "application/json")
                    .body(bodies[n as usize].clone())
                    .send()
                    .await?;
                let body: serde_json::Value = response.json().await?;
                let ok = body["results"]
                    .as_array()
                    .map(|rs| rs.iter().filter(|r| r["status"] == "accepted").count())
                    .unwrap_or(0);
                accepted.fetch_add(ok as u64, Ordering::Relaxed);
            }
        }));
    }
    for worker in workers {
        worker.await??;
    }
    Ok(Phase {
        name: "HTTP /v1/interactions:batch",
        accepted: accepted.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
    })
}

/// Open-loop: a call every 1/rate s, each on its own task, latencies kept.
async fn single_call_latency(
    args: &IngestArgs,
    run: &str,
) -> Result<(Duration, Duration, usize), Box<dyn std::error::Error>> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", args.grpc))?
        .connect()
        .await?;
    let total = (args.rate * args.latency_seconds) as usize;
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate as f64));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut rng = StdRng::seed_from_u64(300);
    let mut calls = Vec::with_capacity(total);
    for n in 0..total {
        ticker.tick().await;
        let mut client = IngestServiceClient::new(channel.clone());
        let mut request = tonic::Request::new(v1::SubmitInteractionRequest {
            interaction: Some(interaction(&mut rng, format!("s-{run}-{n}"))),
        });
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {}", args.token).parse()?);
        calls.push(tokio::spawn(async move {
            let started = Instant::now();
            client
                .submit_interaction(request)
                .await
                .map(|_| started.elapsed())
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    for call in calls {
        latencies.push(call.await??);
    }
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    Ok((at(0.50), at(0.99), latencies.len()))
}

// ------------------------------------------------------------ scoring bench

async fn global_count(
    client: &mut cx_proto::v1::metrics_service_client::MetricsServiceClient<
        tonic::transport::Channel,
    >,
    token: &str,
) -> Result<u64, Box<dyn std::error::Error>> {
    let mut request = tonic::Request::new(v1::GetMetricsRequest {
        dimension: "global".into(),
        key: "all".into(),
        window: "1h".into(),
    });
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    Ok(client
        .get_metrics(request)
        .await?
        .into_inner()
        .metrics
        .map(|m| m.interactions)
        .unwrap_or(0))
}

/// Total commands Redis executed so far (INFO commandstats), and EVALSHA/EVAL calls.
async fn redis_commands(
    conn: &mut redis::aio::MultiplexedConnection,
) -> Result<(u64, u64), Box<dyn std::error::Error>> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await?;
    let (mut total, mut scripts) = (0u64, 0u64);
    for line in info.lines().filter(|l| l.starts_with("cmdstat_")) {
        let name = line
            .trim_start_matches("cmdstat_")
            .split(':')
            .next()
            .unwrap_or("");
        let calls = line
            .split("calls=")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
        total += calls;
        if name == "evalsha" || name == "eval" {
            scripts += calls;
        }
    }
    Ok((total, scripts))
}

/// Mean `MEMORY USAGE` over up to 200 keys matching `pattern`; with
/// `per` (e.g. HLEN), bytes per element instead of per key.
async fn average_memory(
    conn: &mut redis::aio::MultiplexedConnection,
    pattern: &str,
    per: Option<&str>,
) -> Result<Option<f64>, Box<dyn std::error::Error>> {
    let mut cursor = 0u64;
    let mut keys: Vec<String> = Vec::new();
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await?;
        keys.extend(batch);
        cursor = next;
        if cursor == 0 || keys.len() >= 200 {
            break;
        }
    }
    keys.truncate(200);
    if keys.is_empty() {
        return Ok(None);
    }
    let (mut bytes_total, mut elements) = (0u64, 0u64);
    for key in &keys {
        let bytes: Option<u64> = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(key)
            .query_async(conn)
            .await?;
        bytes_total += bytes.unwrap_or(0);
        elements += match per {
            Some(command) => {
                redis::cmd(command)
                    .arg(key)
                    .query_async::<u64>(conn)
                    .await?
            }
            None => 1,
        };
    }
    Ok(Some(bytes_total as f64 / elements.max(1) as f64))
}

/// `redis-benchmark` pipelined SET throughput, measured now on the same machine.
fn redis_benchmark_baseline(redis_url: &str) -> Option<f64> {
    let port = redis_url.rsplit(':').next()?.trim_end_matches('/');
    let out = std::process::Command::new("redis-benchmark")
        .args(["-p", port, "-q", "-n", "2000000", "-P", "64", "-t", "set"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "SET: 1234567.00 requests per second, p50=…"
    text.split("SET:")
        .last()?
        .split_whitespace()
        .next()?
        .parse::<f64>()
        .ok()
}

async fn bench_scoring(args: ScoringArgs) -> Result<(), Box<dyn std::error::Error>> {
    let run = run_id();
    let kafka = kafka_config(&args.brokers, &args.kafka_properties);
    let producer = cx_runtime::kafka::producer(&kafka, "cx-bench-scoring")?;
    let mut metrics = cx_proto::v1::metrics_service_client::MetricsServiceClient::connect(format!(
        "http://{}",
        args.grpc
    ))
    .await?;
    let mut redis_conn = redis::Client::open(args.redis.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    let mut rng = StdRng::seed_from_u64(400);
    let records: Vec<(String, Vec<u8>)> = (0..args.count)
        .map(|n| {
            // Survey delays stay under 50 min: the global 1h count sees every one.
            let i = interaction(&mut rng, format!("sc-{run}-{n}"));
            (i.customer_id.clone(), i.encode_to_vec())
        })
        .collect();
    let before = global_count(&mut metrics, &args.token).await?;
    let (commands_before, scripts_before) = redis_commands(&mut redis_conn).await?;

    let started = Instant::now();
    let mut deliveries = Vec::with_capacity(records.len());
    for (key, payload) in &records {
        let mut record = FutureRecord::to(&args.topic)
            .key(key.as_str())
            .payload(payload.as_slice());
        loop {
            match producer.send_result(record) {
                Ok(delivery) => {
                    deliveries.push(delivery);
                    break;
                }
                // Local queue full: let deliveries drain, then retry it.
                Err((_, returned)) => {
                    record = returned;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
    }
    for delivery in futures::future::join_all(deliveries).await {
        if !matches!(delivery, Ok(Ok(_))) {
            return Err("produce failed".into());
        }
    }
    let produced_in = started.elapsed();
    let target = before + args.count as u64;
    loop {
        let now = global_count(&mut metrics, &args.token).await?;
        if now >= target {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let counted_in = started.elapsed();
    let (commands_after, scripts_after) = redis_commands(&mut redis_conn).await?;
    let commands = commands_after - commands_before;
    let rate = args.count as f64 / counted_in.as_secs_f64();
    let produce_rate = args.count as f64 / produced_in.as_secs_f64();
    let commands_per_s = commands as f64 / counted_in.as_secs_f64();
    println!("cx-bench scoring: {} interactions", args.count);
    println!(
        "  produced into {} at      {:>10.0} /s ({:.2} s)",
        args.topic,
        produce_rate,
        produced_in.as_secs_f64()
    );
    println!(
        "  consumed and counted at  {:>10.0} /s ({:.2} s from first produce)",
        rate,
        counted_in.as_secs_f64()
    );
    println!(
        "  redis commands: {} ({:.2} per event; {} scripts, {:.0} events per script); {:.0} commands/s",
        commands,
        commands as f64 / args.count as f64,
        scripts_after - scripts_before,
        args.count as f64 / (scripts_after - scripts_before).max(1) as f64,
        commands_per_s
    );
    if let Some(avg) =
        average_memory(&mut redis_conn, &format!("{}:win:*", args.key_prefix), None).await?
    {
        println!("  window bucket: {avg:.0} bytes each (MEMORY USAGE, sample of up to 200 keys)");
    }
    let marks = format!("{}:scoring:seen:*", args.key_prefix);
    if let Some(avg) = average_memory(&mut redis_conn, &marks, Some("HLEN")).await? {
        println!(
            "  interaction mark: {avg:.0} bytes each (MEMORY USAGE of mark hashes / their fields)"
        );
    }
    match redis_benchmark_baseline(&args.redis) {
        Some(baseline) => println!(
            "  redis-benchmark -P 64 SET: {:.0} ops/s; scoring drove {:.3} of it",
            baseline,
            commands_per_s / baseline
        ),
        None => println!("  redis-benchmark not available: no baseline"),
    }
    Ok(())
}

async fn show_metrics(
    grpc: &str,
    token: &str,
    dimension: String,
    window: String,
    metric: String,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut client = cx_proto::v1::metrics_service_client::MetricsServiceClient::connect(format!(
        "http://{grpc}"
    ))
    .await?;
    let mut request = tonic::Request::new(v1::RankKeysRequest {
        dimension: dimension.clone(),
        window: window.clone(),
        metric: metric.clone(),
        limit: 20,
        best: false,
        min_responses: 1,
    });
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let ranked = client.rank_keys(request).await?.into_inner();
    println!("{dimension} by {metric} over {window}, worst first");
    println!(
        "{:<16} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
        dimension, "n", "nps", "±95%", "csat%", "ces", "sent"
    );
    let show = |v: Option<f64>| v.map(|v| format!("{v:.1}")).unwrap_or_else(|| "-".into());
    for key in ranked.keys {
        let m = key.metrics.unwrap_or_default();
        println!(
            "{:<16} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
            key.key,
            m.interactions,
            show(m.nps),
            show(m.nps_margin_95),
            show(m.csat_pct),
            show(m.ces_avg),
            m.sentiment_avg
                .map(|v| format!("{v:.2}"))
                .unwrap_or_else(|| "-".into())
        );
    }
    Ok(())
}

// ------------------------------------------------------------ sample, tail

async fn sample(
    http: &str,
    token: &str,
    count: usize,
    seed: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    let client = reqwest::Client::new();
    let mut rng = StdRng::seed_from_u64(seed);
    let run = run_id();
    for n in 0..count {
        let item = to_json(&interaction(&mut rng, format!("demo-{run}-{n}")));
        let response = client
            .post(format!("http://{http}/v1/interactions"))
            .header("authorization", format!("Bearer {token}"))
            .json(&item)
            .send()
            .await?;
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        println!(
            "submit {:<22} queue={:<13} nps={:<2} -> {} {}",
            item["interaction_id"].as_str().unwrap_or_default(),
            item["queue_id"].as_str().unwrap_or_default(),
            item["nps"],
            status,
            body
        );
    }
    // One repeat, to show idempotency.
    let mut rng = StdRng::seed_from_u64(seed);
    let repeat = to_json(&interaction(&mut rng, format!("demo-{run}-0")));
    let response = client
        .post(format!("http://{http}/v1/interactions"))
        .header("authorization", format!("Bearer {token}"))
        .json(&repeat)
        .send()
        .await?;
    println!(
        "resubmit {} -> {} {}",
        repeat["interaction_id"],
        response.status().as_u16(),
        response.text().await?
    );
    Ok(())
}

async fn tail(
    brokers: String,
    topic: String,
    max: usize,
    idle_exit_s: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    tokio::task::spawn_blocking(move || -> Result<(), String> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", format!("cx-bench-tail-{}", run_id()))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "10")
            .create()
            .map_err(|e| e.to_string())?;
        consumer.subscribe(&[&topic]).map_err(|e| e.to_string())?;
        let mut seen = 0usize;
        let mut last = Instant::now();
        loop {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
                last = Instant::now();
                seen += 1;
                let key = m
                    .key()
                    .map(|k| String::from_utf8_lossy(k).into_owned())
                    .unwrap_or_default();
                match v1::Interaction::decode(m.payload().unwrap_or_default()) {
                    Ok(i) => println!(
                        "landed p{} @{} key={} id={} queue={} nps={:?} verbatim={:?}",
                        m.partition(),
                        m.offset(),
                        key,
                        i.interaction_id,
                        i.queue_id.unwrap_or_default(),
                        i.nps,
                        i.verbatim.unwrap_or_default()
                    ),
                    Err(_) => println!(
                        "landed p{} @{} key={} ({} bytes)",
                        m.partition(),
                        m.offset(),
                        key,
                        m.payload_len()
                    ),
                }
            }
            if max > 0 && seen >= max {
                return Ok(());
            }
            if idle_exit_s > 0 && last.elapsed() > Duration::from_secs(idle_exit_s) {
                return Ok(());
            }
        }
    })
    .await??;
    Ok(())
}

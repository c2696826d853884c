//! `cx-bench loop-latency`: end-to-end latency of the feedback loop.
//!
//! Unary `SubmitInteraction` calls go to cx-ingest at a fixed rate; a
//! `detractor-share` fraction are detractors (NPS 0–6, a verbatim without
//! keywords: exactly one `response` alert expected each), the rest promoters
//! (NPS 9–10, no alert expected). Consumers on `cx.alerts.v1` (and, with
//! `--tasks`, `cx.followups.v1`) note when each alert and task arrives. The
//! latencies come from this process's monotonic clock: no clock skew.
//!
//! Measured: ingest acknowledged → response alert on the alerts topic, and
//! with `--tasks` ingest acknowledged → first task naming the interaction,
//! and alert arrival → task arrival. Checked: the global 1h window of
//! cx-scoring counts every accepted interaction.
//!
//! Where ack → alert goes: each alert carries `created_at` (alerting raised
//! it) and its record timestamp (the relay produced it), so the time splits
//! into stages, printed with the median of each over the slowest 1 % (what
//! the tail is made of). `--scored-stages` also reads cx.scored.v1 for
//! `scored_at`, splitting scoring's part from alerting's. Stages are
//! wall-clock differences between processes of this machine, at ms
//! resolution.
//!
//! With `--batch N` the interactions go in `SubmitInteractions` calls of N:
//! the sustained end-to-end throughput run. Its figure is accepted
//! interactions over the time from the first call to the run's last effect
//! (last alert, last task, or the windows counting all of it).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cx_proto::v1;
use cx_proto::v1::ingest_service_client::IngestServiceClient;
use cx_proto::v1::metrics_service_client::MetricsServiceClient;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

type BoxError = Box<dyn std::error::Error>;

/// Issue targets, printed beside the results.
const ALERT_P50_TARGET_MS: f64 = 20.0;
const ALERT_P99_TARGET_MS: f64 = 100.0;
const TASK_FROM_ALERT_P99_TARGET_MS: f64 = 50.0;

/// Detractor verbatims free of every keyword of the default rules
/// (churn_risk, legal_threat): one `response` alert each, no keyword alert.
const DETRACTOR_VERBATIMS: [&str; 4] = [
    "Waited 40 minutes on hold and got transferred three times",
    "Delivery was late again and nobody told me why",
    "Had to explain the problem twice and it is still not fixed",
    "The app kept crashing and the agent could not help",
];
const PROMOTER_VERBATIMS: [&str; 3] = [
    "The agent was lovely and fixed my bill in minutes",
    "Quick and easy, thanks!",
    "Great service, sorted first time",
];

#[derive(clap::Args)]
pub(crate) struct LoopLatencyArgs {
    /// cx-ingest gRPC address.
    #[arg(long, default_value = "127.0.0.1:50051")]
    grpc: String,
    #[arg(long, default_value = "127.0.0.1:9092")]
    brokers: String,
    /// Bearer token with scope ingest:write.
    #[arg(long, env = "CX_BENCH_TOKEN", hide_env_values = true)]
    token: String,
    /// Interactions per second (unary SubmitInteraction calls).
    #[arg(long, default_value_t = 2000)]
    rate: u64,
    /// Seconds of sending.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Fraction of interactions that are detractors (NPS 0–6): alerts/s = rate × share.
    #[arg(long, default_value_t = 0.1)]
    detractor_share: f64,
    #[arg(long, default_value = "cx.alerts.v1")]
    alerts_topic: String,
    #[arg(long, default_value = "cx.followups.v1")]
    followups_topic: String,
    /// Also measure follow-up tasks on the followups topic.
    #[arg(long)]
    tasks: bool,
    #[arg(long, default_value = "cx.scored.v1")]
    scored_topic: String,
    /// Also read the scored topic, to split the time before an alert is
    /// raised into scoring's part and alerting's (one more consumer on the
    /// broker while measuring).
    #[arg(long)]
    scored_stages: bool,
    /// Seconds to wait after the last acknowledgement for late alerts/tasks.
    #[arg(long, default_value_t = 10)]
    wait_seconds: u64,
    #[arg(long, default_value_t = 11)]
    seed: u64,
    /// Interactions per call: 1 sends unary SubmitInteraction calls, more
    /// sends SubmitInteractions batches (for throughput runs).
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// cx-scoring gRPC address: the global 1h window must count every
    /// accepted interaction (the token needs metrics:read).
    #[arg(long, default_value = "127.0.0.1:50052")]
    metrics_grpc: String,
}

/// What ingest answered for one interaction.
enum Answer {
    Accepted,
    Duplicate,
    Failed(String),
}

/// One call's items: (interaction_id, detractor), when it was first made
/// and finally answered, each item's answer, and how many times the call
/// was answered UNAVAILABLE and made again.
type CallResult = (Vec<(String, bool)>, Instant, Instant, Vec<Answer>, u32);

/// How long a call answered UNAVAILABLE (ingest shedding load, or Kafka or
/// Redis not taking the write) is made again, as a client following the
/// contract would: longer than ingest's 30 s claim lease, which a call
/// that timed out on Redis may leave behind.
const RETRY_FOR: Duration = Duration::from_secs(60);

/// Sends `items` in one call (unary for one item, a batch otherwise),
/// again after a short pause while ingest answers UNAVAILABLE.
async fn submit(
    mut client: IngestServiceClient<tonic::transport::Channel>,
    authorization: tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
    items: Vec<(v1::Interaction, bool)>,
) -> CallResult {
    let ids: Vec<(String, bool)> = items
        .iter()
        .map(|(i, detractor)| (i.interaction_id.clone(), *detractor))
        .collect();
    let interactions: Vec<v1::Interaction> = items.into_iter().map(|(i, _)| i).collect();
    let started = Instant::now();
    let mut retries = 0;
    let mut pause = Duration::from_millis(10);
    let answers = loop {
        match call_once(&mut client, &authorization, &interactions).await {
            Err(status)
                if status.code() == tonic::Code::Unavailable && started.elapsed() < RETRY_FOR =>
            {
                retries += 1;
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(500));
            }
            Err(status) => {
                let error = format!("{:?}: {}", status.code(), status.message());
                break (0..ids.len())
                    .map(|_| Answer::Failed(error.clone()))
                    .collect();
            }
            // Every id of a run is new, so a duplicate after a retry was
            // published by an earlier attempt of this call.
            Ok(answers) if retries > 0 => {
                break answers
                    .into_iter()
                    .map(|answer| match answer {
                        Answer::Duplicate => Answer::Accepted,
                        other => other,
                    })
                    .collect()
            }
            Ok(answers) => break answers,
        }
    };
    (ids, started, Instant::now(), answers, retries)
}

/// One attempt of a call: an answer per item, or the call's error.
async fn call_once(
    client: &mut IngestServiceClient<tonic::transport::Channel>,
    authorization: &tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
    interactions: &[v1::Interaction],
) -> Result<Vec<Answer>, tonic::Status> {
    if let [interaction] = interactions {
        let mut request = tonic::Request::new(v1::SubmitInteractionRequest {
            interaction: Some(interaction.clone()),
        });
        request
            .metadata_mut()
            .insert("authorization", authorization.clone());
        let response = client.submit_interaction(request).await?;
        return Ok(vec![if response.get_ref().duplicate {
            Answer::Duplicate
        } else {
            Answer::Accepted
        }]);
    }
    let mut request = tonic::Request::new(v1::SubmitInteractionsRequest {
        interactions: interactions.to_vec(),
    });
    request
        .metadata_mut()
        .insert("authorization", authorization.clone());
    let response = client.submit_interactions(request).await?;
    Ok(response
        .into_inner()
        .results
        .into_iter()
        .map(|result| match v1::SubmitStatus::try_from(result.status) {
            Ok(v1::SubmitStatus::Accepted) => Answer::Accepted,
            Ok(v1::SubmitStatus::Duplicate) => Answer::Duplicate,
            other => Answer::Failed(format!("item status {other:?}")),
        })
        .collect())
}

/// Wall-clock stamps (ms since the epoch) a record carries besides its
/// arrival: where it was made and when its producer sent it.
#[derive(Clone, Copy, Default)]
struct Stamps {
    /// An alert's `created_at` (alerting raised it, before its decide
    /// script), or a scored interaction's `scored_at` (after the windows
    /// were written).
    made_ms: Option<i64>,
    /// The Kafka record's timestamp: its producer's send.
    produced_ms: Option<i64>,
}

/// First arrival per interaction_id, for one topic.
#[derive(Default)]
struct Arrivals {
    first: Mutex<HashMap<String, (Instant, Stamps)>>,
    /// Records of this run seen again for an id already noted.
    repeats: AtomicU64,
    /// Alerts of this run of another kind than `response` (keyword, …).
    other_kinds: AtomicU64,
    /// Records that were not JSON of the expected shape.
    unreadable: AtomicU64,
    /// Records this bench's consumer was handed again at a partition and
    /// offset it had already read: a re-read, not a second record on the
    /// topic, so not noted again.
    reread: AtomicU64,
}

impl Arrivals {
    fn note(&self, id: &str, at: Instant, stamps: Stamps) {
        let mut first = self.first.lock().expect("arrivals lock");
        if first.contains_key(id) {
            self.repeats.fetch_add(1, Ordering::Relaxed);
        } else {
            first.insert(id.to_owned(), (at, stamps));
        }
    }

    /// When the first record for `id` arrived, and the stamps it carried.
    fn arrival(&self, id: &str) -> Option<(Instant, Stamps)> {
        self.first.lock().expect("arrivals lock").get(id).copied()
    }

    fn get(&self, id: &str) -> Option<Instant> {
        self.arrival(id).map(|(at, _)| at)
    }

    fn len(&self) -> usize {
        self.first.lock().expect("arrivals lock").len()
    }

    fn last(&self) -> Option<Instant> {
        self.first
            .lock()
            .expect("arrivals lock")
            .values()
            .map(|(at, _)| *at)
            .max()
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Feed {
    Alerts,
    Tasks,
    Scored,
}

/// Notes a scored interaction of this run with its `scored_at`.
fn note_scored(
    payload: &[u8],
    prefix: &str,
    at: Instant,
    produced_ms: Option<i64>,
    arrivals: &Arrivals,
) {
    use cx_proto::prost::Message as _;
    let Ok(scored) = v1::ScoredInteraction::decode(payload) else {
        arrivals.unreadable.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let id = scored
        .interaction
        .as_ref()
        .map(|i| i.interaction_id.as_str())
        .unwrap_or_default();
    if id.starts_with(prefix) {
        let made_ms = scored.scored_at.as_ref().map(cx_proto::timestamp_millis);
        let stamps = Stamps {
            made_ms,
            produced_ms,
        };
        arrivals.note(id, at, stamps);
    }
}

/// Pulls the interaction ids of this run out of one record.
fn note_record(
    feed: Feed,
    payload: &[u8],
    prefix: &str,
    at: Instant,
    produced_ms: Option<i64>,
    arrivals: &Arrivals,
) {
    let json = || {
        let value = serde_json::from_slice::<serde_json::Value>(payload).ok();
        if value.is_none() {
            arrivals.unreadable.fetch_add(1, Ordering::Relaxed);
        }
        value
    };
    match feed {
        Feed::Scored => note_scored(payload, prefix, at, produced_ms, arrivals),
        Feed::Alerts => {
            let Some(value) = json() else { return };
            let Some(id) = value["interaction_id"].as_str() else {
                return; // window alerts (threshold, spike) name no interaction
            };
            if !id.starts_with(prefix) {
                return;
            }
            if value["kind"].as_str() == Some("response") {
                let made_ms = value["created_at"]
                    .as_str()
                    .and_then(|t| {
                        time::OffsetDateTime::parse(
                            t,
                            &time::format_description::well_known::Rfc3339,
                        )
                        .ok()
                    })
                    .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64);
                let stamps = Stamps {
                    made_ms,
                    produced_ms,
                };
                arrivals.note(id, at, stamps);
            } else {
                arrivals.other_kinds.fetch_add(1, Ordering::Relaxed);
            }
        }
        Feed::Tasks => {
            let Some(value) = json() else { return };
            let Some(ids) = value["interaction_ids"].as_array() else {
                arrivals.unreadable.fetch_add(1, Ordering::Relaxed);
                return;
            };
            for id in ids.iter().filter_map(|v| v.as_str()) {
                if id.starts_with(prefix) {
                    arrivals.note(id, at, Stamps::default());
                }
            }
        }
    }
}

/// A consumer on its own thread, positioned at the end of every partition
/// of `topic` before this returns: everything produced afterwards is seen.
///
/// Partitions are assigned explicitly at their high watermarks rather than
/// by a group subscription with `auto.offset.reset=latest`: no rebalance to
/// wait for and no window between assignment and the offset reset in which
/// a record could be skipped.
fn start_consumer(
    brokers: &str,
    topic: &str,
    feed: Feed,
    prefix: String,
    arrivals: Arc<Arrivals>,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<()>, BoxError> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("cx-bench-loop-{}", crate::run_id()))
        .set("auto.offset.reset", "latest")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "5")
        .set("fetch.error.backoff.ms", "5")
        .create()?;
    let deadline = Instant::now() + Duration::from_secs(15);
    let partitions = loop {
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(5))?;
        let found = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none())
            .map(|t| t.partitions().iter().map(|p| p.id()).collect::<Vec<_>>())
            .unwrap_or_default();
        if !found.is_empty() {
            break found;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "topic {topic} not found on {brokers} (is the service that creates it running?)"
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let mut assignment = TopicPartitionList::new();
    for partition in &partitions {
        let (_, high) = consumer.fetch_watermarks(topic, *partition, Duration::from_secs(5))?;
        assignment.add_partition_offset(topic, *partition, Offset::Offset(high))?;
    }
    consumer.assign(&assignment)?;
    let mut read = std::collections::HashSet::new();
    let mut take = move |m: &rdkafka::message::BorrowedMessage<'_>, at: Instant| {
        if read.insert((m.partition(), m.offset())) {
            note_record(
                feed,
                m.payload().unwrap_or_default(),
                &prefix,
                at,
                m.timestamp().to_millis(),
                &arrivals,
            );
        } else {
            arrivals.reread.fetch_add(1, Ordering::Relaxed);
        }
    };
    // Start the fetchers before the first interaction is sent.
    let settle = Instant::now() + Duration::from_millis(500);
    while Instant::now() < settle {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
            take(&m, Instant::now());
        }
    }
    let topic = topic.to_owned();
    Ok(std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match consumer.poll(Duration::from_millis(50)) {
                Some(Ok(m)) => take(&m, Instant::now()),
                Some(Err(error)) => eprintln!("consumer on {topic}: {error}"),
                None => {}
            }
        }
    }))
}

/// [`start_consumer`] off the async workers (it blocks until positioned).
async fn start_feed(
    brokers: &str,
    topic: &str,
    feed: Feed,
    prefix: &str,
    arrivals: &Arc<Arrivals>,
    stop: &Arc<AtomicBool>,
) -> Result<JoinHandle<()>, BoxError> {
    let (brokers, topic, prefix, arrivals, stop) = (
        brokers.to_owned(),
        topic.to_owned(),
        prefix.to_owned(),
        arrivals.clone(),
        stop.clone(),
    );
    Ok(tokio::task::spawn_blocking(move || {
        start_consumer(&brokers, &topic, feed, prefix, arrivals, stop).map_err(|e| e.to_string())
    })
    .await??)
}

/// One interaction of the run: unique customer and interaction ids.
fn loop_interaction(rng: &mut StdRng, run: &str, n: usize, detractor: bool) -> v1::Interaction {
    let mut i = crate::interaction(rng, format!("ll-{run}-{n}"));
    i.customer_id = format!("ll-{run}-c{n}");
    let (nps, verbatim) = if detractor {
        (
            rng.random_range(0..=6),
            DETRACTOR_VERBATIMS[rng.random_range(0..DETRACTOR_VERBATIMS.len())],
        )
    } else {
        (
            rng.random_range(9..=10),
            PROMOTER_VERBATIMS[rng.random_range(0..PROMOTER_VERBATIMS.len())],
        )
    };
    let csat = (1 + nps / 2).clamp(1, 5);
    i.nps = Some(nps);
    i.csat = Some(csat);
    i.ces = Some((csat + 2).clamp(1, 7));
    i.verbatim = Some(verbatim.to_owned());
    i.resolved = Some(!detractor);
    i
}

/// Interaction `n` is a detractor when the running count of `share` steps
/// over an integer: exactly round-down(total × share), evenly spread.
fn is_detractor(n: usize, share: f64) -> bool {
    ((n + 1) as f64 * share).floor() > (n as f64 * share).floor()
}

struct Sent {
    interaction_id: String,
    detractor: bool,
    /// When the call was made and when it was answered (accepted, not duplicate).
    call: Option<(Instant, Instant)>,
}

/// Latencies in ms (signed: an arrival before the acknowledgement is negative).
struct Series {
    name: String,
    ms: Vec<f64>,
}

impl Series {
    fn new(name: impl Into<String>, mut ms: Vec<f64>) -> Series {
        ms.sort_by(f64::total_cmp);
        Series {
            name: name.into(),
            ms,
        }
    }

    /// Nearest-rank percentile.
    fn at(&self, q: f64) -> Option<f64> {
        if self.ms.is_empty() {
            return None;
        }
        let rank = (q * self.ms.len() as f64).ceil() as usize;
        Some(self.ms[rank.clamp(1, self.ms.len()) - 1])
    }

    fn row(&self) -> String {
        let show = |v: Option<f64>| v.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into());
        format!(
            "| {} | {} | {} | {} | {} | {} |",
            self.name,
            self.ms.len(),
            show(self.at(0.50)),
            show(self.at(0.90)),
            show(self.at(0.99)),
            show(self.ms.last().copied()),
        )
    }
}

/// Maps this process's monotonic instants onto the wall clock the services
/// stamp records with (one reading; a clock step during the run skews it).
struct WallClock {
    instant: Instant,
    unix_ms: f64,
}

impl WallClock {
    fn now() -> WallClock {
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        WallClock {
            instant: Instant::now(),
            unix_ms: unix.as_secs_f64() * 1e3,
        }
    }

    fn unix_ms(&self, at: Instant) -> f64 {
        self.unix_ms + ms_between(self.instant, at)
    }
}

/// The stages of ack → alert, named, with one sample per alert for each:
/// over all alerts, and over those at or above `tail_from` ms (the slowest).
struct Stages {
    names: &'static [&'static str],
    all: Vec<Vec<f64>>,
    tail: Vec<Vec<f64>>,
}

/// Splits ack → alert by the stamps the records carry (an alert's
/// `created_at` and record timestamp; with `scored`, the interaction's
/// `scored_at`). Stages are wall-clock differences at ms resolution.
fn stages(
    detractors: &[&Sent],
    alerts: &Arrivals,
    scored: Option<&Arrivals>,
    clock: &WallClock,
    tail_from: f64,
) -> Stages {
    let names: &'static [&'static str] = if scored.is_some() {
        &[
            "ack → scored_at (cx.interactions.v1 fetch, scoring batch, window script)",
            "scored_at → alert raised (scored produce, cx.scored.v1 fetch, alerting batch)",
            "alert raised → produced to cx.alerts.v1 (decide script, outbox, relay)",
            "produced → arrival (produce, cx.alerts.v1 fetch by this bench)",
        ]
    } else {
        &[
            "ack → alert raised (scoring, cx.scored.v1, alerting batch)",
            "alert raised → produced to cx.alerts.v1 (decide script, outbox, relay)",
            "produced → arrival (produce, cx.alerts.v1 fetch by this bench)",
        ]
    };
    let mut all: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let mut tail: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    for s in detractors {
        let (Some((_, acked)), Some((arrived, alert))) =
            (s.call, alerts.arrival(&s.interaction_id))
        else {
            continue;
        };
        let (Some(raised), Some(produced)) = (alert.made_ms, alert.produced_ms) else {
            continue;
        };
        let mut marks = vec![clock.unix_ms(acked)];
        if let Some(scored) = scored {
            let scored_at = scored.arrival(&s.interaction_id);
            let Some(scored_at) = scored_at.and_then(|(_, stamps)| stamps.made_ms) else {
                continue;
            };
            marks.push(scored_at as f64);
        }
        marks.extend([raised as f64, produced as f64, clock.unix_ms(arrived)]);
        let slow = ms_between(acked, arrived) >= tail_from;
        for (stage, pair) in marks.windows(2).enumerate() {
            all[stage].push(pair[1] - pair[0]);
            if slow {
                tail[stage].push(pair[1] - pair[0]);
            }
        }
    }
    Stages { names, all, tail }
}

/// Where the time from ack to alert goes: per stage, its percentiles over
/// all alerts and its median over the slowest 1 % (what the tail is made of).
fn print_stages(stages: Stages) {
    let show = |v: Option<f64>| v.map(|v| format!("{v:.0}")).unwrap_or_else(|| "-".into());
    println!(
        "| stage of ack → alert (ms, wall clock) | n | p50 | p90 | p99 | median of the slowest 1 % |"
    );
    println!("|---|---|---|---|---|---|");
    for ((name, all), tail) in stages.names.iter().zip(stages.all).zip(stages.tail) {
        let all = Series::new(*name, all);
        let tail = Series::new(*name, tail);
        println!(
            "| {name} | {} | {} | {} | {} | {} |",
            all.ms.len(),
            show(all.at(0.50)),
            show(all.at(0.90)),
            show(all.at(0.99)),
            show(tail.at(0.50)),
        );
    }
}

fn ms_between(from: Instant, to: Instant) -> f64 {
    if to >= from {
        (to - from).as_secs_f64() * 1e3
    } else {
        -((from - to).as_secs_f64() * 1e3)
    }
}

/// The command line as typed, with a token given as an argument masked.
fn command_line() -> String {
    let mut out = Vec::new();
    let mut mask_next = false;
    for arg in std::env::args() {
        if mask_next {
            out.push("***".to_owned());
            mask_next = false;
        } else if arg == "--token" {
            out.push(arg);
            mask_next = true;
        } else if arg.starts_with("--token=") {
            out.push("--token=***".to_owned());
        } else if arg.is_empty() || arg.contains(|c: char| c.is_whitespace() || c == '\'') {
            out.push(format!("'{}'", arg.replace('\'', r"'\''")));
        } else {
            out.push(arg);
        }
    }
    out.join(" ")
}

fn verdict(value: Option<f64>, target: f64) -> &'static str {
    match value {
        Some(v) if v <= target => "met",
        Some(_) => "MISSED",
        None => "no data",
    }
}

pub(crate) async fn run(args: LoopLatencyArgs) -> Result<(), BoxError> {
    if args.rate == 0 || args.seconds == 0 {
        return Err("--rate and --seconds must be above 0".into());
    }
    if !(0.0..=1.0).contains(&args.detractor_share) {
        return Err("--detractor-share must be within 0..=1".into());
    }
    let run = crate::run_id();
    let prefix = format!("ll-{run}-");
    let total = (args.rate * args.seconds) as usize;

    // Interactions are built before the clock starts.
    let mut rng = StdRng::seed_from_u64(args.seed);
    let plan: Vec<(v1::Interaction, bool)> = (0..total)
        .map(|n| {
            let detractor = is_detractor(n, args.detractor_share);
            (loop_interaction(&mut rng, &run, n, detractor), detractor)
        })
        .collect();

    // Consumers first, positioned at the end of their topics.
    let stop = Arc::new(AtomicBool::new(false));
    let alerts = Arc::new(Arrivals::default());
    let tasks = Arc::new(Arrivals::default());
    let scored = Arc::new(Arrivals::default());
    let mut consumers = vec![
        start_feed(
            &args.brokers,
            &args.alerts_topic,
            Feed::Alerts,
            &prefix,
            &alerts,
            &stop,
        )
        .await?,
    ];
    if args.tasks {
        consumers.push(
            start_feed(
                &args.brokers,
                &args.followups_topic,
                Feed::Tasks,
                &prefix,
                &tasks,
                &stop,
            )
            .await?,
        );
    }
    if args.scored_stages {
        consumers.push(
            start_feed(
                &args.brokers,
                &args.scored_topic,
                Feed::Scored,
                &prefix,
                &scored,
                &stop,
            )
            .await?,
        );
    }
    // Acknowledgements are monotonic instants; the stamps records carry are
    // wall-clock ms from the services on this machine.
    let clock = WallClock::now();

    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", args.grpc))?
        .tcp_nodelay(true)
        .connect()
        .await?;
    let authorization: tonic::metadata::MetadataValue<_> =
        format!("Bearer {}", args.token).parse()?;
    let detractors_planned = plan.iter().filter(|(_, d)| *d).count();
    println!(
        "cx-bench loop-latency: {} interactions at {}/s for {} s, {} detractors ({:.0} alerts/s expected), run {run}",
        total,
        args.rate,
        args.seconds,
        detractors_planned,
        args.rate as f64 * args.detractor_share
    );

    let mut metrics =
        MetricsServiceClient::connect(format!("http://{}", args.metrics_grpc)).await?;
    let counted_before = crate::global_count(&mut metrics, &args.token).await?;

    // Open loop: a call every batch/rate s, each on its own task.
    let batch = args.batch.max(1);
    let mut ticker =
        tokio::time::interval(Duration::from_secs_f64(batch as f64 / args.rate as f64));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut calls = Vec::with_capacity(total / batch + 1);
    let mut send_started = None;
    let mut plan = plan.into_iter().peekable();
    while plan.peek().is_some() {
        let items: Vec<(v1::Interaction, bool)> = plan.by_ref().take(batch).collect();
        ticker.tick().await;
        send_started.get_or_insert_with(Instant::now);
        calls.push(tokio::spawn(submit(
            IngestServiceClient::new(channel.clone()),
            authorization.clone(),
            items,
        )));
    }
    let send_started = send_started.unwrap_or_else(Instant::now);
    let sending = send_started.elapsed();

    let mut sent = Vec::with_capacity(total);
    let (mut duplicates, mut errors) = (0usize, HashMap::<String, usize>::new());
    let mut last_ack = send_started;
    let (mut calls_retried, mut retries) = (0usize, 0u64);
    for call in calls {
        let (ids, started, acked, answers, call_retries) = call.await?;
        calls_retried += usize::from(call_retries > 0);
        retries += u64::from(call_retries);
        for ((interaction_id, detractor), answer) in ids.into_iter().zip(answers) {
            let call = match answer {
                Answer::Duplicate => {
                    duplicates += 1;
                    None
                }
                Answer::Accepted => {
                    last_ack = last_ack.max(acked);
                    Some((started, acked))
                }
                Answer::Failed(error) => {
                    *errors.entry(error).or_default() += 1;
                    None
                }
            };
            sent.push(Sent {
                interaction_id,
                detractor,
                call,
            });
        }
    }
    let accepted = sent.iter().filter(|s| s.call.is_some()).count();
    let acked_detractors: Vec<&Sent> = sent
        .iter()
        .filter(|s| s.detractor && s.call.is_some())
        .collect();

    // Stragglers: wait until every accepted detractor has its alert (and
    // task) and the windows count every accepted interaction, or
    // `wait_seconds` passed.
    let waited_from = Instant::now();
    let wait = Duration::from_secs(args.wait_seconds);
    let mut counted = 0u64;
    let mut all_counted_at = None;
    loop {
        let alerts_done = acked_detractors
            .iter()
            .all(|s| alerts.get(&s.interaction_id).is_some());
        let tasks_done = !args.tasks
            || acked_detractors
                .iter()
                .all(|s| tasks.get(&s.interaction_id).is_some());
        if all_counted_at.is_none() {
            counted = crate::global_count(&mut metrics, &args.token)
                .await?
                .saturating_sub(counted_before);
            if counted >= accepted as u64 {
                all_counted_at = Some(Instant::now());
            }
        }
        let done = alerts_done && tasks_done && all_counted_at.is_some();
        if done || waited_from.elapsed() >= wait {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let waited = waited_from.elapsed();
    stop.store(true, Ordering::Relaxed);
    for consumer in consumers {
        let _ = tokio::task::spawn_blocking(move || consumer.join()).await;
    }

    // ------------------------------------------------------------ results
    let call_ms: Vec<f64> = sent
        .iter()
        .filter_map(|s| s.call.map(|(from, to)| ms_between(from, to)))
        .collect();
    let (mut to_alert, mut to_task, mut alert_to_task) = (Vec::new(), Vec::new(), Vec::new());
    let mut no_alert = 0usize;
    let mut no_task = 0usize;
    for s in &acked_detractors {
        let (_, acked) = s.call.expect("accepted");
        let alert = alerts.get(&s.interaction_id);
        match alert {
            Some(at) => to_alert.push(ms_between(acked, at)),
            None => no_alert += 1,
        }
        if args.tasks {
            match tasks.get(&s.interaction_id) {
                Some(at) => {
                    to_task.push(ms_between(acked, at));
                    if let Some(alert) = alert {
                        alert_to_task.push(ms_between(alert, at));
                    }
                }
                None => no_task += 1,
            }
        }
    }
    let promoter_alerts = sent
        .iter()
        .filter(|s| !s.detractor && alerts.get(&s.interaction_id).is_some())
        .count();
    let detractors_sent = sent.iter().filter(|s| s.detractor).count();
    let alerted = to_alert.len();

    // End to end: from the first call until the last effect of the run
    // (its last alert, task, or the windows counting all of it).
    let last_effect = [alerts.last(), tasks.last(), all_counted_at]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(last_ack)
        .max(last_ack);
    let end_to_end_s = (last_effect - send_started).as_secs_f64();
    let send_rate = total as f64 / sending.as_secs_f64();
    let accept_rate = accepted as f64 / (last_ack - send_started).as_secs_f64().max(1e-9);
    let call = Series::new("ingest call (send → ack)", call_ms);
    let to_alert = Series::new("ingest ack → alert on cx.alerts.v1", to_alert);
    let to_task = Series::new("ingest ack → task on cx.followups.v1", to_task);
    let alert_to_task = Series::new("alert arrival → task arrival", alert_to_task);

    println!();
    println!("command: {}", command_line());
    println!(
        "sent {total} in {:.2} s: achieved {send_rate:.0} /s (target {} /s); accepted {accepted} at {accept_rate:.0} /s; waited {:.2} s for stragglers",
        sending.as_secs_f64(),
        args.rate,
        waited.as_secs_f64()
    );
    println!(
        "end to end: all effects of the {accepted} accepted interactions {} {:.2} s after the first call: {:.0} interactions/s (drained {:.2} s after the last acknowledgement)",
        if all_counted_at.is_some() { "within" } else { "NOT all within" },
        end_to_end_s,
        accepted as f64 / end_to_end_s.max(1e-9),
        (last_effect - last_ack).as_secs_f64(),
    );
    if let Some(at) = all_counted_at {
        println!(
            "the windows counted every accepted interaction {:.2} s after the last acknowledgement (checked every 50 ms)",
            ms_between(last_ack, at) / 1e3
        );
    }
    println!();
    println!("| count | value |");
    println!("|---|---|");
    println!("| sent | {total} |");
    println!("| accepted | {accepted} |");
    println!("| duplicate answers | {duplicates} |");
    println!("| failed calls | {} |", errors.values().sum::<usize>());
    println!("| calls answered UNAVAILABLE and made again (times) | {calls_retried} ({retries}) |");
    println!("| counted by the global 1h window (delta) | {counted} |");
    println!("| detractors sent | {detractors_sent} |");
    println!("| detractors accepted | {} |", acked_detractors.len());
    println!("| response alerts matched | {alerted} |");
    println!("| detractors without alert (lost or late) | {no_alert} |");
    println!("| response alerts for promoters (unexpected) | {promoter_alerts} |");
    println!(
        "| repeated response alerts for one interaction | {} |",
        alerts.repeats.load(Ordering::Relaxed)
    );
    println!(
        "| other-kind alerts naming an interaction of this run | {} |",
        alerts.other_kinds.load(Ordering::Relaxed)
    );
    println!(
        "| alert records this bench's consumer was handed twice (same partition and offset; not counted again) | {} |",
        alerts.reread.load(Ordering::Relaxed)
    );
    if args.tasks {
        println!("| detractors with a task | {} |", to_task.ms.len());
        println!("| detractors without task (lost or late) | {no_task} |");
        println!(
            "| interactions of this run named by tasks | {} |",
            tasks.len()
        );
    }
    let unreadable =
        alerts.unreadable.load(Ordering::Relaxed) + tasks.unreadable.load(Ordering::Relaxed);
    if unreadable > 0 {
        println!("| unreadable records (not JSON as expected) | {unreadable} |");
    }
    println!();
    println!("| latency (ms) | n | p50 | p90 | p99 | max |");
    println!("|---|---|---|---|---|---|");
    println!("{}", call.row());
    println!("{}", to_alert.row());
    if args.tasks {
        println!("{}", to_task.row());
        println!("{}", alert_to_task.row());
    }
    println!();
    if let Some(tail_from) = to_alert.at(0.99) {
        let scored = args.scored_stages.then_some(scored.as_ref());
        print_stages(stages(
            &acked_detractors,
            &alerts,
            scored,
            &clock,
            tail_from,
        ));
        println!();
    }
    println!(
        "targets at 2k interactions/s: ack → alert p50 ≤ {ALERT_P50_TARGET_MS} ms: {}; p99 ≤ {ALERT_P99_TARGET_MS} ms: {}",
        verdict(to_alert.at(0.50), ALERT_P50_TARGET_MS),
        verdict(to_alert.at(0.99), ALERT_P99_TARGET_MS),
    );
    if args.tasks {
        println!(
            "target at 500 alerts/s: alert → task p99 ≤ {TASK_FROM_ALERT_P99_TARGET_MS} ms: {} (this run: {:.0} alerts/s)",
            verdict(alert_to_task.at(0.99), TASK_FROM_ALERT_P99_TARGET_MS),
            alerted as f64 / sending.as_secs_f64()
        );
    }
    if no_alert > 0 {
        println!(
            "note: {no_alert} detractors got no response alert within {} s of the last acknowledgement; they are left out of the latencies",
            args.wait_seconds
        );
    }
    for (error, count) in &errors {
        println!("failed calls: {count} × {error}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detractor_share_is_exact_and_spread() {
        let count = (0..2000).filter(|n| is_detractor(*n, 0.1)).count();
        assert_eq!(count, 200);
        assert_eq!((0..100).filter(|n| is_detractor(*n, 0.0)).count(), 0);
        assert_eq!((0..100).filter(|n| is_detractor(*n, 1.0)).count(), 100);
        assert_eq!((0..100).filter(|n| is_detractor(*n, 0.25)).count(), 25);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let s = Series::new("x", (1..=100).rev().map(f64::from).collect());
        assert_eq!(s.at(0.5), Some(50.0));
        assert_eq!(s.at(0.99), Some(99.0));
        assert_eq!(s.at(1.0), Some(100.0));
        assert_eq!(Series::new("y", vec![]).at(0.5), None);
    }

    #[test]
    fn records_of_this_run_are_noted_once() {
        let arrivals = Arrivals::default();
        let at = Instant::now();
        let alert = |kind: &str, id: &str| {
            serde_json::to_vec(&serde_json::json!({
                "kind": kind,
                "interaction_id": id,
                "created_at": "2026-11-23T10:00:00.250Z",
            }))
            .unwrap()
        };
        note_record(
            Feed::Alerts,
            &alert("response", "ll-r-1"),
            "ll-r-",
            at,
            Some(1_795_428_000_300),
            &arrivals,
        );
        note_record(
            Feed::Alerts,
            &alert("response", "ll-r-1"),
            "ll-r-",
            at + Duration::from_millis(5),
            None,
            &arrivals,
        );
        note_record(
            Feed::Alerts,
            &alert("keyword", "ll-r-2"),
            "ll-r-",
            at,
            None,
            &arrivals,
        );
        note_record(
            Feed::Alerts,
            &alert("response", "other-3"),
            "ll-r-",
            at,
            None,
            &arrivals,
        );
        note_record(Feed::Alerts, b"not json", "ll-r-", at, None, &arrivals);
        assert_eq!(arrivals.get("ll-r-1"), Some(at));
        let (_, stamps) = arrivals.arrival("ll-r-1").expect("noted");
        assert_eq!(stamps.made_ms, Some(1_795_428_000_250));
        assert_eq!(stamps.produced_ms, Some(1_795_428_000_300));
        assert_eq!(arrivals.len(), 1);
        assert_eq!(arrivals.repeats.load(Ordering::Relaxed), 1);
        assert_eq!(arrivals.other_kinds.load(Ordering::Relaxed), 1);
        assert_eq!(arrivals.unreadable.load(Ordering::Relaxed), 1);

        let tasks = Arrivals::default();
        let task = serde_json::to_vec(
            &serde_json::json!({"task_id": "t", "interaction_ids": ["ll-r-1", "ll-r-4", "x"]}),
        )
        .unwrap();
        note_record(Feed::Tasks, &task, "ll-r-", at, None, &tasks);
        assert_eq!(tasks.len(), 2);

        use cx_proto::prost::Message as _;
        let scored_record = |id: &str| {
            v1::ScoredInteraction {
                interaction: Some(v1::Interaction {
                    interaction_id: id.into(),
                    ..Default::default()
                }),
                scored_at: Some(cx_proto::prost_types::Timestamp {
                    seconds: 1_795_428_000,
                    nanos: 125_000_000,
                }),
                ..Default::default()
            }
            .encode_to_vec()
        };
        let scored = Arrivals::default();
        note_record(
            Feed::Scored,
            &scored_record("ll-r-1"),
            "ll-r-",
            at,
            Some(7),
            &scored,
        );
        note_record(
            Feed::Scored,
            &scored_record("other-1"),
            "ll-r-",
            at,
            None,
            &scored,
        );
        note_record(Feed::Scored, &[0xff, 0xff], "ll-r-", at, None, &scored);
        assert_eq!(scored.len(), 1);
        let (_, stamps) = scored.arrival("ll-r-1").expect("noted");
        assert_eq!(stamps.made_ms, Some(1_795_428_000_125));
        assert_eq!(stamps.produced_ms, Some(7));
        assert_eq!(scored.unreadable.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn stages_split_ack_to_alert_by_the_records_stamps() {
        let clock = WallClock::now();
        let acked = clock.instant + Duration::from_millis(1000);
        let ack_ms = clock.unix_ms(acked).round() as i64;
        let sent: Vec<Sent> = ["ll-r-1", "ll-r-2", "ll-r-3"]
            .iter()
            .map(|id| Sent {
                interaction_id: (*id).into(),
                detractor: true,
                call: Some((acked, acked)),
            })
            .collect();
        let sent: Vec<&Sent> = sent.iter().collect();
        let (alerts, scored) = (Arrivals::default(), Arrivals::default());
        // ll-r-1: scored after 20 ms, raised after 50, produced after 60,
        // arrived after 70. ll-r-2: 40 / 100 / 110 / 150 (the slow one).
        for (id, s, r, p, a) in [("ll-r-1", 20, 50, 60, 70), ("ll-r-2", 40, 100, 110, 150)] {
            let stamps = |made: i64, produced: Option<i64>| Stamps {
                made_ms: Some(ack_ms + made),
                produced_ms: produced.map(|p| ack_ms + p),
            };
            scored.note(id, acked, stamps(s, None));
            alerts.note(id, acked + Duration::from_millis(a), stamps(r, Some(p)));
        }
        // ll-r-3 has no alert: left out.
        let split = stages(&sent, &alerts, Some(&scored), &clock, 150.0);
        assert_eq!(split.names.len(), 4);
        let rounded = |v: &Vec<Vec<f64>>| -> Vec<Vec<i64>> {
            v.iter()
                .map(|s| s.iter().map(|ms| ms.round() as i64).collect())
                .collect()
        };
        assert_eq!(
            rounded(&split.all),
            vec![vec![20, 40], vec![30, 60], vec![10, 10], vec![10, 40]]
        );
        assert_eq!(
            rounded(&split.tail),
            vec![vec![40], vec![60], vec![10], vec![40]]
        );

        let without_scored = stages(&sent, &alerts, None, &clock, 150.0);
        assert_eq!(
            rounded(&without_scored.all),
            vec![vec![50, 100], vec![10, 10], vec![10, 40]]
        );
    }

    #[test]
    fn detractor_verbatims_avoid_default_keywords() {
        let keywords = [
            "cancel",
            "close my account",
            "switch provider",
            "leave",
            "terminate",
            "lawyer",
            "solicitor",
            "legal",
            "sue",
            "ombudsman",
            "regulator",
            "court",
        ];
        for v in DETRACTOR_VERBATIMS.iter().chain(PROMOTER_VERBATIMS.iter()) {
            let lower = v.to_lowercase();
            for k in keywords {
                assert!(!lower.contains(k), "{v:?} contains {k:?}");
            }
        }
    }
}

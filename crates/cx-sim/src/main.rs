//! cx-sim: realistic contact-centre traffic for the demo and for load.
//!
//! Sends interactions from a seeded contact-centre model (queues, teams,
//! agents, repeat customers, verbatims) to cx-ingest at a steady rate,
//! degrades one queue for a while (an incident, so threshold and spike
//! alerts fire), optionally backfills a 7-day baseline first, and with
//! `--crm` plays the CRM: works follow-up tasks through FollowUpService and
//! submits the customer's next survey so the loop closes.

mod crm;
#[cfg(test)]
mod mock;
mod model;
mod send;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::model::{Generator, Incident, Phase};
use crate::send::{Counts, Sender};

#[derive(Parser, Debug)]
#[command(
    name = "cx-sim",
    about = "Realistic contact-centre traffic for cxloop (and, with --crm, the CRM's part of the loop)"
)]
struct Args {
    /// cx-ingest gRPC address (host:port, or a URI as for cxctl).
    #[arg(long, default_value = "127.0.0.1:50051")]
    ingest: String,
    /// cx-followup gRPC address (for --crm; host:port, or a URI).
    #[arg(long, default_value = "127.0.0.1:50054")]
    followup: String,
    /// Kafka bootstrap servers (for --crm).
    #[arg(long, default_value = "127.0.0.1:9092")]
    brokers: String,
    /// Bearer token: ingest:write, plus followups:read and followups:write
    /// for --crm. Without it and CX_SIM_TOKEN, cxctl's CX_TOKEN.
    #[arg(long, env = "CX_SIM_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Interactions per second.
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// Stop after this many seconds of live traffic (0: run until Ctrl-C).
    #[arg(long, default_value_t = 0)]
    duration_s: u64,
    /// Seed of the contact-centre model and the traffic.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// The run's id, part of every interaction_id (`sim-{run}-{n}`;
    /// default: random). The same seed and run id send the same
    /// interactions again: ingest answers them as duplicates.
    #[arg(long, value_parser = parse_run_id)]
    run_id: Option<String>,
    /// The queue the incident degrades (billing, tech_support, retention,
    /// sales, delivery, general).
    #[arg(long, default_value = "billing")]
    incident_queue: String,
    /// Seconds of live traffic before the incident starts.
    #[arg(long, default_value_t = 20)]
    incident_after_s: u64,
    /// How long the incident lasts, seconds.
    #[arg(long, default_value_t = 60)]
    incident_for_s: u64,
    /// No incident at all.
    #[arg(long)]
    no_incident: bool,
    /// First send this many interactions spread over the past 7 days (not the
    /// last hour), as fast as ingest takes them: a baseline for spike rules.
    #[arg(long, default_value_t = 0)]
    backfill: u64,
    /// Play the CRM: work follow-up tasks and re-survey their customers.
    #[arg(long)]
    crm: bool,
    /// With --crm: percent of the simulated customers' tasks never worked,
    /// so they escalate (tasks of other customers are always worked).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100))]
    crm_skip_pct: u8,
    /// Topic of follow-up tasks (for --crm).
    #[arg(long, default_value = "cx.followups.v1")]
    followups_topic: String,
    /// No progress lines (the summary and CRM lines still print).
    #[arg(long)]
    quiet: bool,
    /// Print this many live interactions as JSON lines (the incident active
    /// from the half-way mark) and exit without sending anything.
    #[arg(long, value_name = "N")]
    print: Option<u64>,
}

fn main() {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cx-sim: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(run(args)) {
        eprintln!("cx-sim: {e}");
        std::process::exit(1);
    }
}

/// Interactions to send on one tick, carrying the fraction over.
#[derive(Debug)]
struct Pacer {
    per_tick: f64,
    owed: f64,
}

impl Pacer {
    /// At most 20 ticks a second; fewer at low rates.
    fn new(rate: f64) -> (Pacer, Duration) {
        let ticks_per_s = rate.clamp(0.01, 20.0);
        (
            Pacer {
                per_tick: rate / ticks_per_s,
                owed: 0.0,
            },
            Duration::from_secs_f64(1.0 / ticks_per_s),
        )
    }

    fn tick(&mut self) -> usize {
        self.owed += self.per_tick;
        let n = self.owed.floor();
        self.owed -= n;
        n as usize
    }
}

async fn run(args: Args) -> Result<(), String> {
    if !(args.rate > 0.0 && args.rate.is_finite()) {
        return Err("--rate must be above 0".into());
    }
    let incident = if args.no_incident {
        None
    } else {
        if model::queue_index(&args.incident_queue).is_none() {
            return Err(format!(
                "unknown --incident-queue {:?}; queues: {}",
                args.incident_queue,
                model::QUEUES.map(|q| q.name).join(", ")
            ));
        }
        Some(Incident {
            queue: args.incident_queue.clone(),
            after: Duration::from_secs(args.incident_after_s),
            length: Duration::from_secs(args.incident_for_s),
        })
    };
    let run_id = args
        .run_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()[..8].to_string());
    if let Some(n) = args.print {
        let mut g = Generator::new(
            args.seed,
            &run_id,
            incident.as_ref().map(|i| i.queue.as_str()),
        );
        let now = time::OffsetDateTime::now_utc();
        for k in 0..n {
            let incident = incident.is_some() && k >= n / 2;
            println!("{}", model::to_json(&g.next(now, Phase::Live { incident })));
        }
        return Ok(());
    }
    let token = args
        .token
        .clone()
        .or_else(|| std::env::var("CX_TOKEN").ok().filter(|t| !t.is_empty()));
    let Some(token) = token.as_deref() else {
        return Err("--token (or CX_SIM_TOKEN, or CX_TOKEN) is required".into());
    };
    let generator = Arc::new(Mutex::new(Generator::new(
        args.seed,
        &run_id,
        incident.as_ref().map(|i| i.queue.as_str()),
    )));

    let (stop_tx, stop_rx) = watch::channel(false);
    let ctrl_c_stop = stop_tx.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("cx-sim: Ctrl-C, stopping");
            let _ = ctrl_c_stop.send(true);
        }
    });

    let auth = send::bearer(token)?;
    let ingest = tokio::select! {
        c = send::connect(&args.ingest, Duration::from_secs(30)) => c?,
        _ = stopped(stop_rx.clone()) => return Ok(()),
    };
    let sender = Sender::new(ingest, auth.clone());
    eprintln!(
        "cx-sim: run {run_id}, seed {}, {} interactions/s to {}{}{}",
        args.seed,
        args.rate,
        args.ingest,
        match &incident {
            Some(i) => format!(
                "; incident on {} from {} s for {} s",
                i.queue, args.incident_after_s, args.incident_for_s
            ),
            None => String::new(),
        },
        if args.duration_s > 0 {
            format!("; stopping after {} s", args.duration_s)
        } else {
            String::new()
        }
    );

    // The CRM, if asked: it starts consuming before traffic flows so it
    // sees the first tasks.
    let crm_stats = Arc::new(crm::CrmStats::default());
    let mut crm_task = None;
    let mut crm_sender = None;
    if args.crm {
        let followup =
            tonic::transport::Endpoint::from_shared(cx_proto::endpoint_uri(&args.followup))
                .map_err(|e| format!("bad --followup address: {e}"))?
                .connect_lazy();
        let own_sender = sender.with_own_stats();
        crm_sender = Some(own_sender.clone());
        crm_task = Some(tokio::spawn(crm::run(
            crm::CrmConfig {
                brokers: args.brokers.clone(),
                topic: args.followups_topic.clone(),
                skip_pct: args.crm_skip_pct,
            },
            followup,
            auth.clone(),
            own_sender,
            generator.clone(),
            crm_stats.clone(),
            stop_rx.clone(),
        )));
    }

    let started = Instant::now();
    if args.backfill > 0 && !*stop_rx.borrow() {
        backfill(&args, &sender, &generator, stop_rx.clone()).await;
    }
    let backfilled = sender.stats.counts();

    // Live traffic.
    let live_started = Instant::now();
    let (mut pacer, period) = Pacer::new(args.rate);
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut progress = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(5),
        Duration::from_secs(5),
    );
    let in_flight = Arc::new(Semaphore::new(requests_in_flight(args.rate)));
    let mut sends = JoinSet::new();
    let mut last = (Instant::now(), sender.stats.counts());
    let mut incident_on = false;
    let mut stop = stop_rx.clone();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = progress.tick() => {
                if !args.quiet {
                    let now = sender.stats.counts();
                    let rate = (now.sent - last.1.sent) as f64 / last.0.elapsed().as_secs_f64();
                    let status = incident_status(incident.as_ref(), live_started.elapsed());
                    let mut line = progress_line(live_started.elapsed(), &now, rate, &status);
                    if behind(args.rate, now.sent - last.1.sent, last.0.elapsed().as_secs_f64()) {
                        line.push_str(&format!(" (behind: {} asked)", args.rate));
                    }
                    eprintln!("{line}");
                    if let Some(e) = sender.stats.take_last_error() {
                        eprintln!("sim:   last error: {e}");
                    }
                    last = (Instant::now(), now);
                }
                continue;
            }
            _ = ticker.tick() => {}
        }
        let elapsed = live_started.elapsed();
        if args.duration_s > 0 && elapsed >= Duration::from_secs(args.duration_s) {
            break;
        }
        let active = incident.as_ref().is_some_and(|i| i.active(elapsed));
        if active != incident_on {
            incident_on = active;
            if let Some(i) = &incident {
                if active {
                    eprintln!(
                        "sim: incident: queue {} degraded for {} s (detractors ~70%, long holds, transfers)",
                        i.queue,
                        i.length.as_secs()
                    );
                } else {
                    eprintln!("sim: incident over: queue {} back to normal", i.queue);
                }
            }
        }
        let n = pacer.tick();
        if n == 0 {
            continue;
        }
        let now = time::OffsetDateTime::now_utc();
        let items: Vec<_> = match generator.lock() {
            Ok(mut g) => (0..n)
                .map(|_| g.next(now, Phase::Live { incident: active }))
                .collect(),
            Err(_) => return Err("generator poisoned".into()),
        };
        while sends.try_join_next().is_some() {}
        for chunk in chunks(items, 100) {
            let permit = tokio::select! {
                p = in_flight.clone().acquire_owned() => p.map_err(|e| e.to_string())?,
                _ = stop.changed() => break,
            };
            let sender = sender.clone();
            sends.spawn(async move {
                sender.submit(chunk).await;
                drop(permit);
            });
        }
    }
    // The pacing ends here; the drain below is not part of the rate.
    let live_s = live_started.elapsed().as_secs_f64();
    // Let what is in flight finish (a few seconds at most), then stop the CRM.
    let drain = async { while sends.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(10), drain)
        .await
        .is_err()
    {
        eprintln!("cx-sim: sends still in flight after 10 s, leaving them");
    }
    let _ = stop_tx.send(true);
    // A CRM that could not run (its consumer failed) is a failure too.
    let mut crm_failures = 0;
    if let Some(task) = crm_task {
        match task.await {
            Ok(Err(e)) => {
                eprintln!("cx-sim: {e}");
                crm_failures += 1;
            }
            Err(e) => {
                eprintln!("cx-sim: crm task: {e}");
                crm_failures += 1;
            }
            Ok(Ok(())) => {}
        }
    }

    let total = sender.stats.counts();
    let live = total.sent - backfilled.sent;
    let live_rate = live as f64 / live_s.max(0.001);
    println!(
        "cx-sim summary: run {run_id}, seed {}, {:.1} s; sent {} ({} backfill, {} live at {:.1}/s), accepted {}, duplicates {}, rejected {}, unavailable {}, errors {}",
        args.seed,
        started.elapsed().as_secs_f64(),
        total.sent,
        backfilled.sent,
        live,
        live_rate,
        total.accepted,
        total.duplicates,
        total.rejected,
        total.unavailable,
        total.errors
    );
    if live_s >= 5.0 && behind(args.rate, live, live_s) {
        println!(
            "  below the {}/s asked: ingest answered more slowly than the sends were paced (up to {} requests in flight)",
            args.rate,
            requests_in_flight(args.rate)
        );
    }
    if let Some(i) = &incident {
        let reached = live_started.elapsed() > i.after;
        println!(
            "  incident: queue {} from {} s for {} s{}",
            i.queue,
            i.after.as_secs(),
            i.length.as_secs(),
            if reached { "" } else { " (not reached)" }
        );
    }
    if args.crm {
        println!("  {}", crm_stats.summary());
        crm_failures += crm_stats.failed.load(std::sync::atomic::Ordering::Relaxed);
        if let Some(s) = crm_sender {
            let c = s.stats.counts();
            if c.not_accepted() > 0 {
                println!(
                    "  crm surveys: {} sent, {} accepted, {} rejected, {} unavailable, {} errors",
                    c.sent, c.accepted, c.rejected, c.unavailable, c.errors
                );
            }
            crm_failures += c.not_accepted();
        }
    }
    // Scripts (and the demo's reader) learn from the status that something
    // the simulator meant to happen did not.
    match (total.not_accepted(), crm_failures) {
        (0, 0) => Ok(()),
        (lost, crm) => Err(format!(
            "{lost} interactions not accepted (rejected, unavailable or failed) and {crm} CRM steps failed; see above"
        )),
    }
}

/// A run id keeps interaction ids within the contract's 128 characters
/// and readable: 1–32 ASCII letters, digits, '-' or '_'.
fn parse_run_id(s: &str) -> Result<String, String> {
    if (1..=32).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        Ok(s.to_owned())
    } else {
        Err("1 to 32 ASCII letters, digits, '-' or '_'".into())
    }
}

/// Whether `sent` over `seconds` is more than 5 % short of `rate`, and by
/// more than one or two interactions (at low rates a 5 s window holds a
/// send more or less by chance).
fn behind(rate: f64, sent: u64, seconds: f64) -> bool {
    let expected = rate * seconds;
    expected - sent as f64 > (expected * 0.05).max(1.5)
}

/// Requests (of up to 100 interactions) sent at once: enough for the
/// asked rate at ~100 ms an answer, and never fewer than 8.
fn requests_in_flight(rate: f64) -> usize {
    ((rate / 1000.0).ceil() as usize).clamp(8, 64)
}

/// Resolves once `stop` is (or becomes) true.
async fn stopped(mut stop: watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

fn chunks<T>(items: Vec<T>, size: usize) -> Vec<Vec<T>> {
    let mut out = Vec::with_capacity(items.len().div_ceil(size));
    let mut current = Vec::with_capacity(size.min(items.len()));
    for item in items {
        current.push(item);
        if current.len() == size {
            out.push(std::mem::replace(&mut current, Vec::with_capacity(size)));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn incident_status(incident: Option<&Incident>, elapsed: Duration) -> String {
    let Some(i) = incident else {
        return String::new();
    };
    if i.active(elapsed) {
        let left = (i.after + i.length).saturating_sub(elapsed).as_secs();
        format!(" | incident {} ({left} s left)", i.queue)
    } else if elapsed < i.after {
        format!(
            " | incident {} in {} s",
            i.queue,
            (i.after - elapsed).as_secs()
        )
    } else {
        String::new()
    }
}

fn progress_line(elapsed: Duration, c: &Counts, rate: f64, status: &str) -> String {
    format!(
        "sim: {:>4} s  sent {} accepted {} duplicates {} rejected {} unavailable {} errors {}  {:.1}/s{status}",
        elapsed.as_secs(),
        c.sent,
        c.accepted,
        c.duplicates,
        c.rejected,
        c.unavailable,
        c.errors,
        rate
    )
}

/// `--backfill N`: history over the past 7 days, batches of 500, two in flight.
async fn backfill(
    args: &Args,
    sender: &Sender,
    generator: &Arc<Mutex<Generator>>,
    mut stop: watch::Receiver<bool>,
) {
    let started = Instant::now();
    eprintln!(
        "sim: backfilling {} interactions over the past 7 days",
        args.backfill
    );
    let mut sends = JoinSet::new();
    let mut left = args.backfill;
    let mut reported = Instant::now();
    while left > 0 && !*stop.borrow() {
        let n = left.min(500);
        left -= n;
        let now = time::OffsetDateTime::now_utc();
        let items: Vec<_> = match generator.lock() {
            Ok(mut g) => (0..n).map(|_| g.next(now, Phase::Backfill)).collect(),
            Err(_) => return,
        };
        while sends.len() >= 2 {
            tokio::select! {
                _ = sends.join_next() => {}
                _ = stop.changed() => break,
            }
        }
        let batch_sender = sender.clone();
        sends.spawn(async move { batch_sender.submit_batch(items).await });
        if !args.quiet && reported.elapsed() >= Duration::from_secs(5) {
            reported = Instant::now();
            let c = sender.stats.counts();
            eprintln!(
                "sim: backfill {} of {}: accepted {} duplicates {} rejected {} errors {}",
                c.sent,
                args.backfill,
                c.accepted,
                c.duplicates,
                c.rejected,
                c.errors + c.unavailable
            );
        }
    }
    while sends.join_next().await.is_some() {}
    let c = sender.stats.counts();
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "sim: backfill done: {} sent, {} accepted, {} duplicates, {} rejected, {} errors in {:.1} s ({:.0}/s)",
        c.sent,
        c.accepted,
        c.duplicates,
        c.rejected,
        c.errors + c.unavailable,
        secs,
        c.sent as f64 / secs.max(0.001)
    );
    if let Some(e) = sender.stats.take_last_error() {
        eprintln!("sim:   last error: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacer_keeps_the_rate() {
        for rate in [0.5, 1.0, 3.0, 20.0, 37.5, 1000.0] {
            let (mut pacer, period) = Pacer::new(rate);
            let ticks = (10.0 / period.as_secs_f64()).round() as usize;
            let sent: usize = (0..ticks).map(|_| pacer.tick()).sum();
            assert!(
                (sent as f64 - rate * 10.0).abs() <= 1.0,
                "rate {rate}: {sent} in 10 s"
            );
            assert!(period >= Duration::from_millis(50));
        }
    }

    #[test]
    fn chunks_of_at_most_100() {
        let c = chunks((0..250).collect(), 100);
        assert_eq!(c.iter().map(Vec::len).collect::<Vec<_>>(), [100, 100, 50]);
        assert!(chunks(Vec::<u8>::new(), 100).is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn backfills_then_sends_at_the_rate_and_stops() {
        let ingest = mock::Ingest::default();
        let addr = mock::serve_at(ingest.clone(), mock::Followups::default()).await;
        let args = Args::try_parse_from([
            "cx-sim",
            "--ingest",
            &addr,
            "--token",
            mock::TOKEN,
            "--rate",
            "40",
            "--duration-s",
            "2",
            "--backfill",
            "1200",
            "--incident-after-s",
            "1",
            "--quiet",
        ])
        .unwrap();
        run(args).await.unwrap();
        let seen = ingest.seen.lock().unwrap().len();
        // 1200 backfilled, then 40/s for 2 s.
        assert!((1270..=1290).contains(&seen), "{seen} accepted");
    }

    /// One quiet second of live traffic at 20/s without an incident.
    fn one_second_at_20(addr: &str, token: &str, more: &[&str]) -> Args {
        let mut argv = vec![
            "cx-sim",
            "--ingest",
            addr,
            "--token",
            token,
            "--rate",
            "20",
            "--duration-s",
            "1",
            "--no-incident",
            "--quiet",
        ];
        argv.extend_from_slice(more);
        Args::try_parse_from(argv).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn takes_a_uri_as_cxctl_does_and_fails_when_sends_are_not_accepted() {
        let ingest = mock::Ingest::default();
        let addr = format!(
            "http://{}",
            mock::serve_at(ingest.clone(), mock::Followups::default()).await
        );
        let args = |token: &str| one_second_at_20(&addr, token, &[]);
        run(args(mock::TOKEN)).await.unwrap();
        let accepted = ingest.seen.lock().unwrap().len();
        assert!((15..=25).contains(&accepted), "{accepted} accepted");

        let refused = run(args("not-the-token")).await.unwrap_err();
        assert!(refused.contains("interactions not accepted"), "{refused}");
        assert_eq!(ingest.seen.lock().unwrap().len(), accepted);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_run_id_resends_the_same_interactions() {
        use std::sync::atomic::Ordering;
        let ingest = mock::Ingest::default();
        let addr = mock::serve_at(ingest.clone(), mock::Followups::default()).await;
        let args = || one_second_at_20(&addr, mock::TOKEN, &["--run-id", "again-1"]);
        run(args()).await.unwrap();
        let first = ingest.seen.lock().unwrap().len();
        assert!(first > 0);
        assert!(ingest
            .seen
            .lock()
            .unwrap()
            .iter()
            .all(|id| id.starts_with("sim-again-1-")));
        assert_eq!(ingest.duplicates.load(Ordering::Relaxed), 0);
        run(args()).await.unwrap();
        // The second run sends the same ids in the same order (how many in
        // the second depends on timing): the ones the first run sent are
        // all duplicates, only those past its count are new.
        let duplicates = ingest.duplicates.load(Ordering::Relaxed);
        let new = ingest.seen.lock().unwrap().len() - first;
        let second = duplicates + new;
        assert_eq!(duplicates, first.min(second), "{first} then {second}");
        assert!(Args::try_parse_from(["cx-sim", "--run-id", "a b"]).is_err());
        assert!(Args::try_parse_from(["cx-sim", "--run-id", &"x".repeat(33)]).is_err());
    }

    #[test]
    fn behind_only_by_more_than_chance() {
        assert!(!behind(20.0, 100, 5.0));
        assert!(!behind(20.0, 96, 5.0));
        assert!(behind(20.0, 90, 5.0));
        // At 0.5/s a 5 s window holds 2 or 3 sends.
        assert!(!behind(0.5, 2, 5.0));
        assert!(behind(20_000.0, 8_454, 1.0));
    }

    #[test]
    fn sends_more_requests_at_once_for_higher_rates() {
        assert_eq!(requests_in_flight(25.0), 8);
        assert_eq!(requests_in_flight(20_000.0), 20);
        assert_eq!(requests_in_flight(1e9), 64);
    }

    #[tokio::test]
    async fn refuses_an_unknown_incident_queue() {
        let args =
            Args::try_parse_from(["cx-sim", "--token", "t", "--incident-queue", "nope"]).unwrap();
        assert!(run(args)
            .await
            .unwrap_err()
            .contains("unknown --incident-queue"));
    }

    #[test]
    fn cli_defaults() {
        let a = Args::try_parse_from(["cx-sim", "--token", "t"]).unwrap();
        assert_eq!(a.token.as_deref(), Some("t"));
        assert_eq!(a.ingest, "127.0.0.1:50051");
        assert_eq!(a.rate, 20.0);
        assert_eq!(a.incident_queue, "billing");
        assert_eq!((a.incident_after_s, a.incident_for_s), (20, 60));
        assert_eq!(a.followups_topic, "cx.followups.v1");
        assert!(!a.crm && !a.quiet);
    }
}

//! At-least-once consumption: offsets are stored and committed only after
//! the handler reports the batch's effect durable.
//!
//! Auto-commit and auto offset store are off. A batch is handed to the
//! handler until it succeeds (a failing dependency pauses consumption rather
//! than passing over records); then every offset in it is stored and committed.
//! A crash or a rebalance redelivers at most the uncommitted batches, so
//! handlers must be idempotent (every cxloop effect is keyed).

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedMessage;
use rdkafka::{Message, Offset};
use tokio_util::sync::CancellationToken;

use crate::config::KafkaConfig;
use crate::kafka::is_producer_only;

#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    pub group_id: String,
    pub topics: Vec<String>,
    /// Most records handed over at once.
    pub max_batch: usize,
    /// How long to wait for more records once a batch has a first one and
    /// the records already received are taken. Zero (the default) closes a
    /// batch as soon as nothing more is waiting: under load, records pile up
    /// while the previous batch is handled, so batches grow with the rate
    /// without a timer adding to every record's latency.
    pub max_wait: Duration,
    /// First and largest pause between attempts of a failing batch.
    pub retry_backoff: (Duration, Duration),
    /// How often the lag gauges are measured (by [`spawn`] and
    /// [`spawn_staged`]).
    pub lag_interval: Duration,
}

impl ConsumerSettings {
    pub fn new(group_id: impl Into<String>, topics: Vec<String>) -> Self {
        ConsumerSettings {
            group_id: group_id.into(),
            topics,
            max_batch: 500,
            // 5 ms here added a fill wait to each hop of ack → alert; with
            // zero, p50 and p99 fell in three of five alternated 2k/s runs
            // and were level in two (docs/BENCHMARKS.md).
            max_wait: Duration::ZERO,
            retry_backoff: (Duration::from_millis(100), Duration::from_secs(5)),
            lag_interval: Duration::from_secs(10),
        }
    }
}

/// What a service does with a batch. `Err` means "not durable yet": the
/// same batch comes back after a pause, and nothing is committed.
pub trait BatchHandler {
    fn handle(
        &mut self,
        batch: &[OwnedMessage],
    ) -> impl std::future::Future<Output = Result<(), String>> + Send;

    /// Called while a batch keeps failing and when it succeeds again, so a
    /// service can report not-ready.
    fn healthy(&mut self, _healthy: bool) {}
}

/// A handler whose work splits in two: `prepare` is CPU work on the batch
/// that touches no dependency, `apply` makes the batch's effect durable.
/// The records themselves are dropped after `prepare` (only their
/// positions are kept, to commit): what `apply` needs, `prepare` keeps.
/// [`run_staged`] prepares batch N+1 while batch N is applied, so the
/// service's CPU and its dependencies (Redis, the broker) work at the same
/// time instead of taking turns. `apply` may be called again with the same
/// prepared batch after an error, so it must be idempotent like `handle`.
pub trait StagedHandler: Send + Sync + 'static {
    type Prepared: Send + 'static;

    fn prepare(&self, batch: &[OwnedMessage]) -> Self::Prepared;

    fn apply(
        &self,
        prepared: &mut Self::Prepared,
    ) -> impl std::future::Future<Output = Result<(), String>> + Send;

    /// As [`BatchHandler::healthy`].
    fn healthy(&self, _healthy: bool) {}
}

pub fn consumer(
    kafka: &KafkaConfig,
    settings: &ConsumerSettings,
) -> Result<StreamConsumer, KafkaError> {
    let consumer: StreamConsumer = consumer_config(kafka, settings).create()?;
    let topics: Vec<&str> = settings.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics)?;
    for topic in &topics {
        crate::telemetry::start_at_zero(crate::telemetry::DEADLETTER_TOTAL, &[("source", topic)]);
    }
    Ok(consumer)
}

/// The group's client settings: ours, then the shared pass-through
/// properties, then the group's own, then the two the at-least-once
/// promise rests on.
fn consumer_config(kafka: &KafkaConfig, settings: &ConsumerSettings) -> rdkafka::ClientConfig {
    let mut config = rdkafka::ClientConfig::new();
    config
        .set("bootstrap.servers", &kafka.brokers)
        .set("group.id", &settings.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // librdkafka prefetches up to 100 000 records per partition by
        // default, each with ~200 bytes of bookkeeping besides its payload:
        // a service working through a backlog held all of it (63 MB of
        // cx-scoring's 96 MB heap peak under a 200 000-record backlog).
        // Half a batch per partition still has the next batch waiting, as
        // long as a partition that reached it is fetched again soon: the
        // default 1 s pause cut cx-scoring's backlog rate by a third.
        .set(
            "queued.min.messages",
            (settings.max_batch / 2).clamp(1000, 100_000).to_string(),
        )
        .set("fetch.queue.backoff.ms", "20")
        // One fetch response, all partitions together, at most 1 MiB (the
        // librdkafka default is 50 MiB). A broker that answers with all it
        // has up to this limit (tansu does; Apache Kafka stops at 1 MiB per
        // partition) otherwise fills the prefetch queue in one go: cx-scoring
        // peaked 7–13 MB higher under a backlog, at the same rate. Must stay
        // at least `message.max.bytes` (librdkafka checks).
        .set("fetch.max.bytes", "1048576");
    // The group's own properties come after the shared ones, so they win.
    let own = kafka.group_properties.get(&settings.group_id);
    for (name, value) in kafka.properties.iter().chain(own.into_iter().flatten()) {
        // One that weakens a guarantee is left out, not overridden below:
        // librdkafka has several names for one setting (config refuses
        // them at load too).
        if !is_producer_only(name) && crate::config::weakens_a_guarantee(name, value).is_none() {
            config.set(name, value);
        }
    }
    // The at-least-once promise rests on these: a pass-through cannot undo
    // them (config refuses them at load too).
    config
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest");
    config
}

/// A service's consumer as a task: creates `topics` (retrying until
/// `stop`), then consumes with `handler` until `stop`.
pub fn spawn<H>(
    kafka: KafkaConfig,
    topics: Vec<String>,
    settings: ConsumerSettings,
    mut handler: H,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<Result<(), KafkaError>>
where
    H: BatchHandler + Send + 'static,
{
    tokio::spawn(async move {
        match subscribe_when_ready(&kafka, &topics, &settings, &stop).await? {
            Some(stream) => {
                let _lag = LagReport::start(&stream, &settings);
                run(&stream, &settings, &mut handler, &stop).await
            }
            None => Ok(()),
        }
    })
}

/// [`spawn`] for a [`StagedHandler`], consumed with [`run_staged`].
pub fn spawn_staged<H: StagedHandler>(
    kafka: KafkaConfig,
    topics: Vec<String>,
    settings: ConsumerSettings,
    handler: H,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<Result<(), KafkaError>> {
    tokio::spawn(async move {
        match subscribe_when_ready(&kafka, &topics, &settings, &stop).await? {
            Some(stream) => {
                let _lag = LagReport::start(&stream, &settings);
                run_staged(&stream, &settings, Arc::new(handler), &stop).await
            }
            None => Ok(()),
        }
    })
}

/// Creates `topics` (retrying until `stop`: `None`), then subscribes.
async fn subscribe_when_ready(
    kafka: &KafkaConfig,
    topics: &[String],
    settings: &ConsumerSettings,
    stop: &CancellationToken,
) -> Result<Option<Arc<StreamConsumer>>, KafkaError> {
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    if !crate::kafka::ensure_topics_until(kafka, &names, stop).await {
        return Ok(None);
    }
    consumer(kafka, settings).map(|consumer| Some(Arc::new(consumer)))
}

/// The task measuring a consumer's lag for its gauges, beside the loop
/// that consumes. Apart from it because the loop does not poll the
/// consumer while a batch is retried, and a stuck group is when lag
/// matters most. Lag counts from the committed offsets, so it is the
/// records whose effects are not yet durable. Dropping it (the consumer
/// task ended or unwound) stops it.
struct LagReport {
    task: tokio::task::JoinHandle<()>,
    /// Cut short a measurement in progress.
    stopped: CancellationToken,
}

/// Longest time one measurement may take, all its broker queries
/// together: while one runs it keeps the consumer open, which delays the
/// consumer's LeaveGroup at shutdown by as much.
const LAG_MEASURE_BUDGET: Duration = Duration::from_secs(2);

impl LagReport {
    fn start(consumer: &Arc<StreamConsumer>, settings: &ConsumerSettings) -> LagReport {
        use crate::telemetry::{
            KAFKA_CONSUMER_ASSIGNED_PARTITIONS, KAFKA_CONSUMER_GROUP_LAG, KAFKA_CONSUMER_LAG,
        };
        let group = settings.group_id.clone();
        let lag = metrics::gauge!(KAFKA_CONSUMER_LAG, "group" => group.clone());
        let group_lag = metrics::gauge!(KAFKA_CONSUMER_GROUP_LAG, "group" => group.clone());
        let assigned = metrics::gauge!(KAFKA_CONSUMER_ASSIGNED_PARTITIONS, "group" => group);
        let topics = settings.topics.clone();
        // Weak: the consumer closes (and leaves its group) when the loop
        // that owns it is done, not when this task next looks.
        let (consumer, interval) = (Arc::downgrade(consumer), settings.lag_interval);
        // Until the loop is done (drop), not until `stop`: the loop still
        // commits its last batches after that.
        let stopped = CancellationToken::new();
        let stopping = stopped.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stopping.cancelled() => return,
                    _ = tokio::time::sleep(interval) => {}
                }
                // Blocking broker queries: off the async workers.
                let (measuring, stopping) = (consumer.clone(), stopping.clone());
                let topics = topics.clone();
                let measured = tokio::task::spawn_blocking(move || {
                    measuring
                        .upgrade()
                        .map(|consumer| measure_lag(&consumer, &topics, &stopping))
                })
                .await;
                match measured {
                    Ok(Some(Ok(measured))) => {
                        lag.set(measured.records as f64);
                        group_lag.set(measured.group_records as f64);
                        assigned.set(measured.partitions as f64);
                    }
                    Ok(None) => return,
                    // The broker's health is /readyz's: the gauges keep
                    // their last value.
                    Ok(Some(Err(error))) => tracing::debug!(%error, "consumer lag not measured"),
                    Err(error) => std::panic::resume_unwind(error.into_panic()),
                }
            }
        });
        LagReport { task, stopped }
    }
}

impl Drop for LagReport {
    fn drop(&mut self) {
        self.stopped.cancel();
        self.task.abort();
    }
}

/// A consumer's partitions and the records on them past its group's
/// committed offsets; and the same over every partition of its topics.
#[derive(Debug, PartialEq, Eq)]
struct GroupLag {
    partitions: usize,
    records: i64,
    group_records: i64,
}

/// One measurement, within [`LAG_MEASURE_BUDGET`]; given up once `stop` is
/// cancelled. Every partition of `topics` is measured, not only this
/// consumer's: a partition the group holds nowhere (a coordinator that
/// has not reassigned it) shows only there.
fn measure_lag(
    consumer: &StreamConsumer,
    topics: &[String],
    stop: &CancellationToken,
) -> Result<GroupLag, String> {
    let deadline = std::time::Instant::now() + LAG_MEASURE_BUDGET;
    let left = || deadline.saturating_duration_since(std::time::Instant::now());
    let mut every = rdkafka::TopicPartitionList::new();
    for topic in topics {
        let metadata = consumer
            .fetch_metadata(Some(topic), left())
            .map_err(|e| e.to_string())?;
        for found in metadata.topics() {
            for partition in found.partitions() {
                every.add_partition(found.name(), partition.id());
            }
        }
    }
    let held = consumer.assignment().map_err(|e| e.to_string())?;
    let committed = consumer
        .committed_offsets(every, left())
        .map_err(|e| e.to_string())?;
    let mut lag = GroupLag {
        partitions: held.count(),
        records: 0,
        group_records: 0,
    };
    for partition in committed.elements() {
        if stop.is_cancelled() || left().is_zero() {
            return Err("measurement cut short".into());
        }
        // A partition whose commit could not be read would count as all
        // still to do.
        partition.error().map_err(|e| e.to_string())?;
        let (low, high) = consumer
            .fetch_watermarks(partition.topic(), partition.partition(), left())
            .map_err(|e| e.to_string())?;
        let records = partition_lag(partition.offset(), low, high);
        lag.group_records += records;
        if held
            .find_partition(partition.topic(), partition.partition())
            .is_some()
        {
            lag.records += records;
        }
    }
    Ok(lag)
}

/// Offsets of one partition past its commit (records, but for
/// transaction markers and compacted gaps, which cxloop's topics do not
/// have).
fn partition_lag(committed: Offset, low: i64, high: i64) -> i64 {
    match committed {
        Offset::Offset(committed) => (high - committed.max(low)).max(0),
        // Nothing committed yet: with `auto.offset.reset=earliest`
        // (cxloop's) everything the partition holds is still to do.
        _ => (high - low).max(0),
    }
}

/// After `stop`: waits up to `grace` for the consumer tasks to finish and
/// commit their batches, logging any that failed or ran out of time.
pub async fn join(tasks: Vec<tokio::task::JoinHandle<Result<(), KafkaError>>>, grace: Duration) {
    match tokio::time::timeout(grace, futures::future::join_all(tasks)).await {
        Ok(results) => {
            for result in results {
                match result {
                    Ok(Err(error)) => tracing::error!(%error, "consumer stopped with an error"),
                    Err(error) => tracing::error!(%error, "consumer task failed"),
                    Ok(Ok(())) => {}
                }
            }
        }
        Err(_) => tracing::warn!("consumers did not finish their batches within the grace period"),
    }
}

/// Runs until `shutdown`: the batch in hand is finished and committed
/// before returning.
pub async fn run<H: BatchHandler>(
    consumer: &StreamConsumer,
    settings: &ConsumerSettings,
    handler: &mut H,
    shutdown: &CancellationToken,
) -> Result<(), KafkaError> {
    let metrics = BatchMetrics::new(&settings.group_id);
    while let Some(batch) = next_batch(consumer, settings, &metrics, shutdown, &mut None).await {
        // Until the effect is durable, nothing moves; shutdown does not
        // interrupt a batch that is being retried (its records would come
        // back anyway), but it stops retrying.
        let mut retry = Retry::new(settings.retry_backoff);
        let started = std::time::Instant::now();
        loop {
            match handler.handle(&batch).await {
                Ok(()) => {
                    if retry.recovered() {
                        handler.healthy(true);
                    }
                    break;
                }
                Err(reason) => {
                    if retry.first_failure(&reason, batch.len()) {
                        handler.healthy(false);
                    }
                    if !retry.pause(shutdown).await {
                        return Ok(());
                    }
                }
            }
        }
        metrics.apply.record(started.elapsed().as_secs_f64());
        store_and_commit(
            consumer,
            &metrics,
            &BatchPosition::of(&batch),
            CommitMode::Async,
        );
    }
    commit_before_leaving(consumer);
    Ok(())
}

/// [`run`] for a [`StagedHandler`]: batch N is applied in a task of its own
/// while batch N+1 is received and prepared. Batches are applied and
/// committed one at a time and in order, so offsets still move only past
/// durable effects; at most two batches are in memory.
pub async fn run_staged<H: StagedHandler>(
    consumer: &StreamConsumer,
    settings: &ConsumerSettings,
    handler: Arc<H>,
    shutdown: &CancellationToken,
) -> Result<(), KafkaError> {
    let metrics = BatchMetrics::new(&settings.group_id);
    // Only staged consumers have this stage.
    let prepare_seconds = metrics::histogram!(
        crate::telemetry::CONSUMER_STAGE_SECONDS,
        "group" => settings.group_id.clone(),
        "stage" => "prepare"
    );
    let mut applying: Option<Applying> = None;
    while let Some(batch) = next_batch(consumer, settings, &metrics, shutdown, &mut applying).await
    {
        // CPU-bound: off the async workers, which keep the applying batch
        // (and the service's gRPC) moving meanwhile.
        let preparer = handler.clone();
        let prepare_seconds = prepare_seconds.clone();
        let (position, prepared) = tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let prepared = preparer.prepare(&batch);
            prepare_seconds.record(started.elapsed().as_secs_f64());
            (BatchPosition::of(&batch), prepared)
        })
        .await
        .unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()));
        if let Some(task) = applying.take() {
            if !commit_applied(consumer, &metrics, task.await) {
                // Shut down while that batch was still failing: this one, not
                // applied, comes back to the group like it.
                return Ok(());
            }
        }
        applying = Some(tokio::spawn(apply_until_durable(
            handler.clone(),
            metrics.apply.clone(),
            position,
            prepared,
            settings.retry_backoff,
            shutdown.clone(),
        )));
    }
    if let Some(task) = applying {
        commit_applied(consumer, &metrics, task.await);
    }
    commit_before_leaving(consumer);
    Ok(())
}

/// The task applying a staged batch: its position back once durable,
/// `None` when shutdown stopped its retries.
type Applying = tokio::task::JoinHandle<Option<BatchPosition>>;

/// A consumer group's batch metrics, resolved once per consumer.
struct BatchMetrics {
    /// Time in `apply`/`handle`, retries included.
    apply: metrics::Histogram,
    /// Age of a batch's oldest record when its effects are durable.
    record_age: metrics::Histogram,
    /// Records taken, per group: one service may run several groups.
    consumed: metrics::Counter,
}

impl BatchMetrics {
    fn new(group: &str) -> BatchMetrics {
        use crate::telemetry::{
            CONSUMER_RECORD_AGE_SECONDS, CONSUMER_STAGE_SECONDS, KAFKA_CONSUMED_TOTAL,
        };
        let group = group.to_string();
        BatchMetrics {
            apply: metrics::histogram!(CONSUMER_STAGE_SECONDS, "group" => group.clone(), "stage" => "apply"),
            record_age: metrics::histogram!(CONSUMER_RECORD_AGE_SECONDS, "group" => group.clone()),
            consumed: metrics::counter!(KAFKA_CONSUMED_TOTAL, "group" => group),
        }
    }
}

/// What committing a batch needs: the last offset per topic partition and
/// the oldest record's timestamp (for the age metric).
struct BatchPosition {
    last: Vec<(String, i32, i64)>,
    oldest_ms: Option<i64>,
    records: usize,
}

impl BatchPosition {
    fn of(batch: &[OwnedMessage]) -> BatchPosition {
        let mut last: Vec<(String, i32, i64)> = Vec::new();
        for message in batch {
            match last.iter_mut().find(|(topic, partition, _)| {
                *partition == message.partition() && topic == message.topic()
            }) {
                Some(entry) => entry.2 = entry.2.max(message.offset()),
                None => last.push((
                    message.topic().to_string(),
                    message.partition(),
                    message.offset(),
                )),
            }
        }
        BatchPosition {
            last,
            oldest_ms: batch.iter().filter_map(|m| m.timestamp().to_millis()).min(),
            records: batch.len(),
        }
    }
}

/// Batches from this size on hand their free heap back to the OS once
/// committed (see `main_support::release_free_heap`).
const TRIM_AFTER_RECORDS: usize = 1000;

/// Commits a batch its task applied; false when it was given up on shutdown.
fn commit_applied(
    consumer: &StreamConsumer,
    metrics: &BatchMetrics,
    applied: Result<Option<BatchPosition>, tokio::task::JoinError>,
) -> bool {
    match applied {
        Ok(Some(position)) => {
            store_and_commit(consumer, metrics, &position, CommitMode::Async);
            // Staged batches can be large (cx-scoring's hold up to 10 000
            // records); after small ones there is little to give back, and
            // trimming costs page faults on the next batch.
            if position.records >= TRIM_AFTER_RECORDS {
                crate::main_support::release_free_heap();
            }
            true
        }
        Ok(None) => false,
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    }
}

/// Applies until durable (the batch back, to commit) or until shutdown
/// stops the retries (`None`).
async fn apply_until_durable<H: StagedHandler>(
    handler: Arc<H>,
    apply_seconds: metrics::Histogram,
    position: BatchPosition,
    mut prepared: H::Prepared,
    retry_backoff: (Duration, Duration),
    shutdown: CancellationToken,
) -> Option<BatchPosition> {
    let mut retry = Retry::new(retry_backoff);
    let started = std::time::Instant::now();
    loop {
        match handler.apply(&mut prepared).await {
            Ok(()) => {
                apply_seconds.record(started.elapsed().as_secs_f64());
                if retry.recovered() {
                    handler.healthy(true);
                }
                return Some(position);
            }
            Err(reason) => {
                if retry.first_failure(&reason, position.records) {
                    handler.healthy(false);
                }
                if !retry.pause(&shutdown).await {
                    return None;
                }
            }
        }
    }
}

/// What [`next_batch`] waits for.
enum Wake<'a> {
    Shutdown,
    Applied(Result<Option<BatchPosition>, tokio::task::JoinError>),
    Received(rdkafka::error::KafkaResult<rdkafka::message::BorrowedMessage<'a>>),
    FillTimeUp,
}

/// The next batch: waits for a first record, then fills up to `max_batch`
/// with what is already received, and with what arrives for at most
/// `max_wait` more (a record waiting is always taken before the fill wait
/// is looked at) — and, while a previous batch is still being
/// applied (`applying`), until that is done: this batch could not start
/// before, and closing it early would leave the records that arrive
/// meanwhile waiting a whole extra apply. A previous batch that finishes
/// is committed at once. `None` on shutdown, or when the previous batch was
/// given up on shutdown.
async fn next_batch(
    consumer: &StreamConsumer,
    settings: &ConsumerSettings,
    metrics: &BatchMetrics,
    shutdown: &CancellationToken,
    applying: &mut Option<Applying>,
) -> Option<Vec<OwnedMessage>> {
    let mut batch: Vec<OwnedMessage> = Vec::new();
    let mut fill_until = None;
    while batch.len() < settings.max_batch {
        let apply_done = applying.is_none();
        let wake = tokio::select! {
            biased;
            _ = shutdown.cancelled(), if batch.is_empty() => Wake::Shutdown,
            applied = async { applying.as_mut().expect("guarded by the condition").await }, if !apply_done => {
                Wake::Applied(applied)
            }
            received = consumer.recv() => Wake::Received(received),
            _ = sleep_until_some(fill_until), if apply_done && fill_until.is_some() => Wake::FillTimeUp,
        };
        match wake {
            Wake::Shutdown => return None,
            Wake::Applied(applied) => {
                *applying = None;
                if !commit_applied(consumer, metrics, applied) {
                    return None;
                }
            }
            Wake::FillTimeUp => break,
            Wake::Received(Ok(message)) => {
                batch.push(message.detach());
                fill_until.get_or_insert_with(|| tokio::time::Instant::now() + settings.max_wait);
            }
            Wake::Received(Err(error)) => {
                tracing::warn!(%error, "kafka consume error");
                if !batch.is_empty() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    metrics.consumed.increment(batch.len() as u64);
    Some(batch)
}

async fn sleep_until_some(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Backoff between attempts of a failing batch, and whether it is failing
/// (so the handler hears of it once each way).
struct Retry {
    backoff: Duration,
    max_backoff: Duration,
    failing: bool,
}

impl Retry {
    fn new((first, max): (Duration, Duration)) -> Retry {
        Retry {
            backoff: first,
            max_backoff: max,
            failing: false,
        }
    }

    /// True on the first failure of this batch (logged once).
    fn first_failure(&mut self, reason: &str, records: usize) -> bool {
        if self.failing {
            return false;
        }
        tracing::warn!(%reason, records, "batch not durable; retrying, nothing committed");
        self.failing = true;
        true
    }

    /// True when the batch succeeded after failing.
    fn recovered(&self) -> bool {
        self.failing
    }

    /// Sleeps before the next attempt; false when shutdown came first.
    async fn pause(&mut self, shutdown: &CancellationToken) -> bool {
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            _ = tokio::time::sleep(self.backoff) => {}
        }
        self.backoff = (self.backoff * 2).min(self.max_backoff);
        true
    }
}

/// Makes the last stored offsets durable.
fn commit_before_leaving(consumer: &StreamConsumer) {
    if let Err(error) = consumer.commit_consumer_state(CommitMode::Sync) {
        if !matches!(
            error,
            KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)
        ) {
            tracing::warn!(%error, "final commit failed; the last batch may be redelivered");
        }
    }
}

fn store_and_commit(
    consumer: &StreamConsumer,
    metrics: &BatchMetrics,
    position: &BatchPosition,
    mode: CommitMode,
) {
    // The oldest record's age now that its effects are durable: the delay
    // this service and everything upstream of it add, as operators see it.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    if let Some(oldest_ms) = position.oldest_ms {
        metrics
            .record_age
            .record((now_ms - oldest_ms).max(0) as f64 / 1000.0);
    }
    for (topic, partition, offset) in &position.last {
        // A partition revoked meanwhile refuses the store; its new owner
        // redelivers from the last commit, which idempotent effects absorb.
        if let Err(error) = consumer.store_offset(topic, *partition, *offset) {
            tracing::debug!(%error, "offset store refused");
        }
    }
    if let Err(error) = consumer.commit_consumer_state(mode) {
        tracing::debug!(%error, "commit deferred");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_groups_own_properties_win_but_cannot_turn_on_auto_commit() {
        let mut kafka = KafkaConfig {
            brokers: "127.0.0.1:9092".into(),
            properties: [("fetch.wait.max.ms", "10"), ("linger.ms", "5")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .into(),
            group_properties: Default::default(),
            topic_partitions: 1,
            topic_replication: 1,
            topics: Default::default(),
        };
        kafka.group_properties.insert(
            "slow".into(),
            [
                ("fetch.wait.max.ms", "100"),
                ("enable.auto.commit", "true"),
                ("auto.offset.reset", "latest"),
                ("topic.auto.offset.reset", "latest"),
                ("linger.ms", "50"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into(),
        );
        let slow = consumer_config(&kafka, &ConsumerSettings::new("slow", vec!["t".into()]));
        assert_eq!(slow.get("fetch.wait.max.ms"), Some("100"));
        assert_eq!(slow.get("enable.auto.commit"), Some("false"));
        assert_eq!(slow.get("auto.offset.reset"), Some("earliest"));
        assert_eq!(slow.get("topic.auto.offset.reset"), None);
        assert_eq!(slow.get("linger.ms"), None, "producer-only, stripped");
        assert_eq!(slow.get("group.id"), Some("slow"));
        let other = consumer_config(&kafka, &ConsumerSettings::new("other", vec!["t".into()]));
        assert_eq!(other.get("fetch.wait.max.ms"), Some("10"));
    }

    #[test]
    fn lag_counts_from_the_committed_offset_or_the_log_start() {
        assert_eq!(partition_lag(Offset::Offset(90), 0, 100), 10);
        assert_eq!(partition_lag(Offset::Offset(100), 0, 100), 0);
        // Nothing committed: everything retained is still to do.
        assert_eq!(partition_lag(Offset::Invalid, 20, 100), 80);
        // A commit older than the retained log counts what is left.
        assert_eq!(partition_lag(Offset::Offset(5), 20, 100), 80);
        // Empty partition.
        assert_eq!(partition_lag(Offset::Invalid, 0, 0), 0);
    }
}

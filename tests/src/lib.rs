//! Test harness for cxloop: real broker, real Redis, services started in
//! process on port 0 (or as real binaries), a fresh topic set and Redis key
//! prefix per test. A test that cannot reach the broker or Redis fails; it
//! never skips.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use cx_runtime::{Config, ServiceName};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::ClientConfig;
use tokio_util::sync::CancellationToken;

pub const WRITER_TOKEN: &str = "test-writer";
pub const READER_TOKEN: &str = "test-reader";
/// alerts:write and followups:write (acknowledge alerts, update tasks).
pub const OPERATOR_TOKEN: &str = "test-operator";

/// Where the shared test broker and Redis are (the README's test command
/// starts them).
pub fn brokers() -> String {
    std::env::var("CX_TEST_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

pub fn redis_url() -> String {
    std::env::var("CX_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Fails the test (never skips) when the broker or Redis does not answer.
pub async fn require_stack() {
    require_redis(&redis_url()).await;
    require_kafka(&brokers()).await;
}

pub async fn require_redis(url: &str) {
    let client = redis::Client::open(url).expect("redis url");
    let mut conn = tokio::time::timeout(
        Duration::from_secs(5),
        client.get_multiplexed_async_connection(),
    )
    .await
    .unwrap_or_else(|_| {
        panic!("Redis at {url} did not answer within 5 s: start it (deploy/local/stack.sh up)")
    })
    .unwrap_or_else(|e| {
        panic!("Redis at {url} is not reachable ({e}): start it (deploy/local/stack.sh up)")
    });
    let pong: String = redis::cmd("PING")
        .query_async(&mut conn)
        .await
        .expect("PING");
    assert_eq!(pong, "PONG");
}

pub async fn require_kafka(brokers: &str) {
    let brokers = brokers.to_string();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .create()
            .expect("kafka client");
        consumer
            .fetch_metadata(None, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("Kafka at {brokers} is not reachable ({e}): start it (deploy/local/stack.sh up)"));
    })
    .await
    .expect("probe task");
}

/// Per-test names: topics, Redis key prefix.
#[derive(Debug, Clone)]
pub struct Isolation {
    pub topic_suffix: String,
    pub redis_prefix: String,
    /// More `[kafka.properties]` lines for every service of the test.
    pub kafka_properties: String,
}

impl Isolation {
    pub fn new() -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        Isolation {
            topic_suffix: id[..12].to_string(),
            redis_prefix: format!("cxtest:{}", &id[..12]),
            kafka_properties: String::new(),
        }
    }

    pub fn topic(&self, base: &str) -> String {
        format!("{base}.{}", self.topic_suffix)
    }

    /// A TOML config for `service` on port 0 with this test's names.
    pub fn config_toml(&self, brokers: &str, redis_url: &str) -> String {
        format!(
            r#"
shutdown_grace_s = 10
[kafka]
brokers = "{brokers}"
topic_partitions = 3
[kafka.properties]
"fetch.wait.max.ms" = "10"
"session.timeout.ms" = "6000"
"heartbeat.interval.ms" = "1000"
{kafka_properties}
[kafka.topics]
interactions = "{interactions}"
scored = "{scored}"
alerts = "{alerts}"
followups = "{followups}"
followup_updates = "{updates}"
deadletter = "{deadletter}"
[redis]
url = "{redis_url}"
key_prefix = "{prefix}"
[auth]
tokens = "{WRITER_TOKEN}=ingest:write;{READER_TOKEN}=metrics:read,alerts:read,followups:read;{OPERATOR_TOKEN}=alerts:read,alerts:write,followups:read,followups:write"
[ingest]
grpc_addr = "127.0.0.1:0"
http_addr = "127.0.0.1:0"
[scoring]
grpc_addr = "127.0.0.1:0"
http_addr = "127.0.0.1:0"
group_id = "cx-scoring-{suffix}"
[alerting]
grpc_addr = "127.0.0.1:0"
http_addr = "127.0.0.1:0"
group_id = "cx-alerting-{suffix}"
webhook_group_id = "cx-alerting-webhooks-{suffix}"
[followup]
grpc_addr = "127.0.0.1:0"
http_addr = "127.0.0.1:0"
group_id = "cx-followup-{suffix}"
"#,
            suffix = self.topic_suffix,
            kafka_properties = self.kafka_properties,
            interactions = self.topic("cx.interactions.v1"),
            scored = self.topic("cx.scored.v1"),
            alerts = self.topic("cx.alerts.v1"),
            followups = self.topic("cx.followups.v1"),
            updates = self.topic("cx.followup-updates.v1"),
            deadletter = self.topic("cx.deadletter.v1"),
            prefix = self.redis_prefix,
        )
    }

    pub fn config(&self, service: ServiceName, brokers: &str, redis_url: &str) -> Config {
        let file: toml::Table = self
            .config_toml(brokers, redis_url)
            .parse()
            .expect("test config");
        Config::from_parts(service, file, &HashMap::new()).expect("valid test config")
    }
}

impl Default for Isolation {
    fn default() -> Self {
        Self::new()
    }
}

/// A service started in process on port 0, stopped through its token.
pub struct RunningService<S> {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<Result<(), cx_runtime::StartError>>,
    /// Which service (every service has the same error type).
    pub service: std::marker::PhantomData<S>,
}

/// Markers telling the in-process services apart.
pub mod service {
    pub struct Ingest;
    pub struct Scoring;
    pub struct Alerting;
    pub struct Followup;
}

pub type RunningIngest = RunningService<service::Ingest>;
pub type RunningScoring = RunningService<service::Scoring>;
pub type RunningAlerting = RunningService<service::Alerting>;
pub type RunningFollowup = RunningService<service::Followup>;

impl<S> RunningService<S> {
    async fn spawn<F, Fut>(
        grpc_addr: SocketAddr,
        http_addr: SocketAddr,
        readiness: cx_runtime::Readiness,
        run: F,
    ) -> Self
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: std::future::Future<Output = Result<(), cx_runtime::StartError>> + Send + 'static,
    {
        init_logs();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(shutdown.clone()));
        wait_until(Duration::from_secs(60), "service ready", || {
            let ready = readiness.is_ready();
            async move { ready }
        })
        .await;
        RunningService {
            grpc_addr,
            http_addr,
            shutdown,
            task,
            service: std::marker::PhantomData,
        }
    }

    pub fn http(&self, path: &str) -> String {
        format!("http://{}{}", self.http_addr, path)
    }

    /// Cancels and waits for a clean stop (drain included).
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task
            .await
            .expect("service task")
            .expect("service stops cleanly");
    }
}

impl RunningIngest {
    pub async fn start(config: Config) -> RunningIngest {
        let app = cx_ingest::IngestApp::build(config)
            .await
            .expect("ingest builds");
        Self::start_app(app).await
    }

    /// Runs an app the test built (and kept handles of).
    pub async fn start_app(app: cx_ingest::IngestApp) -> RunningIngest {
        let (grpc, http, readiness) = (app.grpc_addr(), app.http_addr(), app.readiness());
        Self::spawn(grpc, http, readiness, |stop| app.run_until_stopped(stop)).await
    }
}

impl RunningScoring {
    pub async fn start(config: Config) -> RunningScoring {
        let app = cx_scoring::ScoringApp::build(config)
            .await
            .expect("scoring builds");
        let (grpc, http, readiness) = (app.grpc_addr(), app.http_addr(), app.readiness());
        Self::spawn(grpc, http, readiness, |stop| app.run_until_stopped(stop)).await
    }
}

impl RunningAlerting {
    pub async fn start(config: Config) -> RunningAlerting {
        let app = cx_alerting::AlertingApp::build(config)
            .await
            .expect("alerting builds");
        let (grpc, http, readiness) = (app.grpc_addr(), app.http_addr(), app.readiness());
        Self::spawn(grpc, http, readiness, |stop| app.run_until_stopped(stop)).await
    }
}

impl RunningFollowup {
    pub async fn start(config: Config) -> RunningFollowup {
        let app = cx_followup::FollowupApp::build(config)
            .await
            .expect("followup builds");
        let (grpc, http, readiness) = (app.grpc_addr(), app.http_addr(), app.readiness());
        Self::spawn(grpc, http, readiness, |stop| app.run_until_stopped(stop)).await
    }
}

/// Service logs in test output (RUST_LOG, default warn).
pub fn init_logs() {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
    cx_runtime::telemetry::init_tracing(&filter, cx_runtime::config::LogFormat::Pretty);
}

/// Polls `condition` until it holds; panics with `what` after `timeout`.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if condition().await {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A record read back from a topic.
#[derive(Debug, Clone)]
pub struct Record {
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub partition: i32,
    pub offset: i64,
}

impl Record {
    pub fn key_str(&self) -> &str {
        std::str::from_utf8(self.key.as_deref().unwrap_or_default()).expect("utf-8 key")
    }

    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
    }

    pub fn interaction(&self) -> cx_proto::v1::Interaction {
        use cx_proto::prost::Message as _;
        cx_proto::v1::Interaction::decode(self.payload.as_deref().unwrap_or_default())
            .expect("protobuf Interaction")
    }
}

/// The interaction_ids of the records on an interactions topic (read as
/// [`read_topic`] does, 1.5 s quiet, 30 s at most), sorted.
pub async fn published_interaction_ids(
    brokers: &str,
    topic: &str,
    expect_at_least: usize,
) -> Vec<String> {
    let records = read_topic(
        brokers,
        topic,
        expect_at_least,
        Duration::from_millis(1500),
        Duration::from_secs(30),
    )
    .await;
    let mut ids = interaction_ids(&records);
    ids.sort();
    ids
}

/// The interaction_id of each record of an interactions topic, in order.
pub fn interaction_ids(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| r.interaction().interaction_id)
        .collect()
}

/// Reads a whole topic from the beginning: keeps polling until no record
/// arrived for `quiet` (after `expect_at_least` records were seen) or
/// `timeout` passed.
pub async fn read_topic(
    brokers: &str,
    topic: &str,
    expect_at_least: usize,
    quiet: Duration,
    timeout: Duration,
) -> Vec<Record> {
    let brokers = brokers.to_string();
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", unique("cx-test-reader"))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "10")
            .set("topic.metadata.refresh.interval.ms", "1000")
            .create()
            .expect("consumer");
        consumer.subscribe(&[&topic]).expect("subscribe");
        let started = std::time::Instant::now();
        let mut last_record = std::time::Instant::now();
        let mut out = Vec::new();
        loop {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                {
                    last_record = std::time::Instant::now();
                    let headers = m
                        .headers()
                        .map(|hs| {
                            hs.iter()
                                .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                                .collect()
                        })
                        .unwrap_or_default();
                    out.push(Record {
                        key: m.key().map(<[u8]>::to_vec),
                        payload: m.payload().map(<[u8]>::to_vec),
                        headers,
                        partition: m.partition(),
                        offset: m.offset(),
                    });
                }
            }
            let elapsed = started.elapsed();
            if out.len() >= expect_at_least && last_record.elapsed() >= quiet {
                break;
            }
            if elapsed >= timeout {
                break;
            }
        }
        out
    })
    .await
    .expect("reader task")
}

/// Path of a workspace binary (built by `cargo build` before the tests).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (cargo build --bins)",
        path.display()
    );
    path
}

/// A free TCP port on 127.0.0.1 for a test's listener, below the ephemeral
/// range (Linux: 32768–60999). A port the kernel picked (bind to port 0) is
/// in that range, where any outgoing connection may take it as its source
/// port between this choice and the service's bind, or while a killed
/// service restarts: "Address already in use" failed an end-to-end run.
/// Each call answers a port no earlier call of this process answered; test
/// processes start at different points of the range.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const PORTS: u32 = 12_000;
    static NEXT: std::sync::OnceLock<AtomicU32> = std::sync::OnceLock::new();
    let next = NEXT.get_or_init(|| AtomicU32::new(std::process::id() % PORTS));
    for _ in 0..PORTS {
        let port = (FIRST + next.fetch_add(1, Ordering::Relaxed) % PORTS) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {FIRST}..{}", FIRST + PORTS);
}

/// A private Redis server for a test that stops and starts it.
pub struct PrivateRedis {
    pub port: u16,
    dir: PathBuf,
    child: Option<tokio::process::Child>,
}

impl PrivateRedis {
    pub async fn start() -> PrivateRedis {
        let dir = std::env::temp_dir().join(unique("cx-redis"));
        std::fs::create_dir_all(&dir).expect("redis dir");
        let mut redis = PrivateRedis {
            port: free_port(),
            dir,
            child: None,
        };
        redis.restart().await;
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub async fn restart(&mut self) {
        let child = tokio::process::Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server on PATH (deploy/local/stack.sh installs it)");
        self.child = Some(child);
        let url = self.url();
        wait_until(Duration::from_secs(10), "private redis up", || {
            let url = url.clone();
            async move {
                let Ok(client) = redis::Client::open(url.as_str()) else {
                    return false;
                };
                client.get_multiplexed_async_connection().await.is_ok()
            }
        })
        .await;
    }

    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("kill redis");
        }
    }

    /// SIGTERM: Redis writes its append-only file and exits, as in a
    /// planned restart.
    pub async fn stop_gracefully(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id().expect("redis pid"), "TERM");
            child.wait().await.expect("redis exits");
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sends SIGTERM or SIGSTOP/SIGCONT to a child process.
pub fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{signal} {pid}");
}

/// A valid interaction as JSON, occurred a minute ago.
pub fn interaction_json(interaction_id: &str, customer_id: &str) -> serde_json::Value {
    let occurred = time::OffsetDateTime::now_utc() - time::Duration::minutes(1);
    serde_json::json!({
        "interaction_id": interaction_id,
        "customer_id": customer_id,
        "occurred_at": occurred.format(&time::format_description::well_known::Rfc3339).unwrap(),
        "channel": "voice",
        "queue_id": "billing",
        "agent_id": "agent-7",
        "nps": 4,
        "csat": 2,
        "verbatim": "I was on hold forever, email me at jane.doe@example.com",
        "handle_time_s": 420,
        "transfers": 1,
        "resolved": false,
        "attributes": {"language": "en"}
    })
}

/// A valid interaction as protobuf, occurred a minute ago.
pub fn interaction_proto(interaction_id: &str, customer_id: &str) -> cx_proto::v1::Interaction {
    let occurred = time::OffsetDateTime::now_utc() - time::Duration::minutes(1);
    cx_proto::v1::Interaction {
        interaction_id: interaction_id.into(),
        customer_id: customer_id.into(),
        occurred_at: Some(cx_proto::prost_types::Timestamp {
            seconds: occurred.unix_timestamp(),
            nanos: 0,
        }),
        channel: cx_proto::v1::Channel::Chat as i32,
        queue_id: Some("retention".into()),
        nps: Some(9),
        verbatim: Some("Great help, thanks".into()),
        ..Default::default()
    }
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

pub fn header_str(record: &Record, name: &str) -> Option<String> {
    record
        .header(name)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// A TCP proxy a test can cut: every connection is dropped at once and new
/// ones are refused, as when a broker's host goes away; `restore` reopens it.
pub struct CuttableProxy {
    pub port: u16,
    upstream: u16,
    cut: Option<CancellationToken>,
}

impl CuttableProxy {
    pub async fn start(port: u16, upstream: u16) -> CuttableProxy {
        let mut proxy = CuttableProxy {
            port,
            upstream,
            cut: None,
        };
        proxy.restore().await;
        proxy
    }

    pub async fn restore(&mut self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("proxy bind");
        let cut = CancellationToken::new();
        let upstream = self.upstream;
        let stop = cut.clone();
        tokio::spawn(async move {
            loop {
                let (mut inbound, _) = tokio::select! {
                    _ = stop.cancelled() => return,
                    accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => continue },
                };
                let stop = stop.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = stop.cancelled() => {}
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    }
                });
            }
        });
        self.cut = Some(cut);
    }

    pub fn cut(&mut self) {
        if let Some(cut) = self.cut.take() {
            cut.cancel();
        }
    }
}

/// A broker of this test's own, reachable only through a [`CuttableProxy`]
/// (it advertises the proxy's address), so a test can take Kafka away
/// without touching the shared broker. Started with the same command as
/// deploy/local/stack.sh.
pub struct PrivateBroker {
    pub proxy: CuttableProxy,
    child: tokio::process::Child,
}

impl PrivateBroker {
    pub async fn start() -> PrivateBroker {
        let broker_port = free_port();
        let proxy_port = free_port();
        let child = tokio::process::Command::new("tansu")
            .arg("broker")
            .arg("--listener-url")
            .arg(format!("tcp://127.0.0.1:{broker_port}"))
            .arg("--advertised-listener-url")
            .arg(format!("tcp://127.0.0.1:{proxy_port}"))
            .arg("--storage-engine")
            .arg("memory://tansu/")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("tansu on PATH (deploy/local/stack.sh installs it)");
        wait_until(
            Duration::from_secs(30),
            "private broker listening",
            || async move {
                tokio::net::TcpStream::connect(("127.0.0.1", broker_port))
                    .await
                    .is_ok()
            },
        )
        .await;
        let proxy = CuttableProxy::start(proxy_port, broker_port).await;
        PrivateBroker { proxy, child }
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.proxy.port)
    }

    /// The broker process, for `kill -STOP` (a stalled broker).
    pub fn pid(&self) -> u32 {
        self.child.id().expect("the private broker runs")
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// The HTTP status of a GET, or `None` when nothing answers.
pub async fn http_status(url: &str) -> Option<u16> {
    reqwest::get(url).await.ok().map(|r| r.status().as_u16())
}

/// The Prometheus text a service's /metrics answers (no token needed).
pub async fn metrics_text(url: &str) -> String {
    reqwest::get(url).await.unwrap().text().await.unwrap()
}

/// A service as a real process (the built binary) on fixed free ports,
/// with a test's names, for kill -9 and SIGTERM tests.
pub struct ServiceProcess {
    pub child: tokio::process::Child,
    /// `http://127.0.0.1:<http port>`
    pub base: String,
    pub grpc_addr: SocketAddr,
    binary: &'static str,
    config_path: PathBuf,
}

impl ServiceProcess {
    /// `section` is the service's config section (`ingest`, `scoring`…);
    /// `extra_settings` are more lines for it.
    pub async fn start(
        binary: &'static str,
        section: &str,
        iso: &Isolation,
        extra_settings: &str,
    ) -> ServiceProcess {
        let (grpc_port, http_port) = (free_port(), free_port());
        let config_path = std::env::temp_dir().join(format!("{}.toml", unique(binary)));
        let mut file: toml::Table = iso
            .config_toml(&brokers(), &redis_url())
            .parse()
            .expect("test config");
        let mut own: toml::Table = extra_settings.parse().expect("extra settings");
        own.insert("grpc_addr".into(), format!("127.0.0.1:{grpc_port}").into());
        own.insert("http_addr".into(), format!("127.0.0.1:{http_port}").into());
        let table = file
            .entry(section.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .expect("section is a table");
        table.extend(own);
        std::fs::write(&config_path, file.to_string()).expect("write config");
        let mut process = ServiceProcess {
            child: Self::spawn(binary, &config_path),
            base: format!("http://127.0.0.1:{http_port}"),
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], grpc_port)),
            binary,
            config_path,
        };
        process.wait_ready().await;
        process
    }

    fn spawn(binary_name: &str, config_path: &std::path::Path) -> tokio::process::Child {
        tokio::process::Command::new(binary(binary_name))
            .env("CX_CONFIG", config_path)
            .env("RUST_LOG", "warn")
            .kill_on_drop(true)
            .spawn()
            .expect("start the service binary")
    }

    pub async fn restart(&mut self) {
        self.child = Self::spawn(self.binary, &self.config_path);
        self.wait_ready().await;
    }

    pub async fn wait_ready(&mut self) {
        let url = format!("{}/readyz", self.base);
        wait_until(Duration::from_secs(60), "service process ready", || {
            let url = url.clone();
            async move { http_status(&url).await == Some(200) }
        })
        .await;
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("running process")
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.config_path);
    }
}

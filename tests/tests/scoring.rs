//! cx-scoring against the real broker and Redis: exact windows under
//! redelivery, replays, poison records, Redis outages, kill -9 and a
//! rebalance between two replicas.

use std::collections::HashMap;
use std::time::Duration;

use cx_proto::prost::Message as _;
use cx_proto::v1;
use cx_proto::v1::metrics_service_client::MetricsServiceClient;
use cx_runtime::{kafka, Config, ServiceName};
use cx_tests::*;
use rdkafka::producer::FutureRecord;

const QUEUES: [&str; 3] = ["billing", "retention", "tech"];

/// A deterministic interaction: scores cycle so every bucket is hit.
fn interaction(n: usize, run: &str) -> v1::Interaction {
    let occurred =
        time::OffsetDateTime::now_utc() - time::Duration::seconds(60 + (n % 1200) as i64);
    v1::Interaction {
        interaction_id: format!("{run}-{n}"),
        customer_id: format!("cust-{}", n % 97),
        occurred_at: Some(cx_proto::prost_types::Timestamp {
            seconds: occurred.unix_timestamp(),
            nanos: 0,
        }),
        channel: [v1::Channel::Voice, v1::Channel::Chat, v1::Channel::Email][n % 3] as i32,
        agent_id: Some(format!("agent-{}", n % 7)),
        team_id: Some(format!("team-{}", n % 2)),
        queue_id: Some(QUEUES[n % 3].to_string()),
        nps: (!n.is_multiple_of(5)).then_some((n % 11) as i32),
        csat: Some((n % 5 + 1) as i32),
        ces: (!n.is_multiple_of(4)).then_some((n % 7 + 1) as i32),
        verbatim: Some(
            [
                "Great help, thank you!",
                "I was charged twice, terrible",
                "ok I guess",
            ][n % 3]
                .to_string(),
        ),
        transfers: Some((n % 3) as u64),
        resolved: Some(n.is_multiple_of(2)),
        ..Default::default()
    }
}

/// The naive expectation for a set of interactions, computed by hand.
#[derive(Debug, Default, PartialEq)]
struct Expected {
    interactions: u64,
    nps_responses: u64,
    promoters: u64,
    passives: u64,
    detractors: u64,
    csat_responses: u64,
    ces_responses: u64,
}

fn expected<'a>(items: impl Iterator<Item = &'a v1::Interaction>) -> Expected {
    let mut e = Expected::default();
    for i in items {
        e.interactions += 1;
        if let Some(nps) = i.nps {
            e.nps_responses += 1;
            match nps {
                9..=10 => e.promoters += 1,
                7..=8 => e.passives += 1,
                _ => e.detractors += 1,
            }
        }
        e.csat_responses += u64::from(i.csat.is_some());
        e.ces_responses += u64::from(i.ces.is_some());
    }
    e
}

fn observed(m: &v1::WindowMetrics) -> Expected {
    Expected {
        interactions: m.interactions,
        nps_responses: m.nps_responses,
        promoters: m.promoters,
        passives: m.passives,
        detractors: m.detractors,
        csat_responses: m.csat_responses,
        ces_responses: m.ces_responses,
    }
}

async fn produce(config: &Config, items: &[v1::Interaction]) {
    produce_raw(
        config,
        items
            .iter()
            .map(|i| (i.customer_id.clone().into_bytes(), i.encode_to_vec()))
            .collect(),
    )
    .await;
}

/// One record per produce request. tansu 0.6 (the local test broker)
/// serves a fetch from an offset inside a multi-record batch by jumping to
/// the next batch; Apache Kafka returns the whole batch. Tests that restart
/// a consumer mid-stream therefore write one record per batch, so the
/// broker's shortcut cannot hide or cause a loss.
async fn produce_one_by_one(config: &Config, items: &[v1::Interaction]) {
    let topic = &config.kafka.topics.interactions;
    kafka::ensure_topics(&config.kafka, &[topic]).await.unwrap();
    let producer = kafka::producer(&config.kafka, "cx-test").unwrap();
    for i in items {
        producer
            .send(
                FutureRecord::to(topic)
                    .key(&i.customer_id)
                    .payload(&i.encode_to_vec()),
                Duration::from_secs(10),
            )
            .await
            .expect("produce");
    }
}

async fn produce_raw(config: &Config, records: Vec<(Vec<u8>, Vec<u8>)>) {
    let topic = &config.kafka.topics.interactions;
    kafka::ensure_topics(&config.kafka, &[topic]).await.unwrap();
    let producer = kafka::producer(&config.kafka, "cx-test").unwrap();
    let sends: Vec<_> = records
        .iter()
        .map(|(key, value)| {
            producer.send(
                FutureRecord::to(topic).key(key).payload(value),
                Duration::from_secs(10),
            )
        })
        .collect();
    for sent in futures::future::join_all(sends).await {
        sent.expect("produce");
    }
}

struct MetricsClient {
    client: MetricsServiceClient<tonic::transport::Channel>,
}

impl MetricsClient {
    async fn connect(addr: std::net::SocketAddr) -> MetricsClient {
        MetricsClient {
            client: MetricsServiceClient::connect(format!("http://{addr}"))
                .await
                .unwrap(),
        }
    }

    async fn get(
        &mut self,
        dimension: &str,
        key: &str,
        window: &str,
    ) -> Result<v1::WindowMetrics, tonic::Status> {
        let mut request = tonic::Request::new(v1::GetMetricsRequest {
            dimension: dimension.into(),
            key: key.into(),
            window: window.into(),
        });
        request
            .metadata_mut()
            .insert("authorization", bearer(READER_TOKEN).parse().unwrap());
        Ok(self
            .client
            .get_metrics(request)
            .await?
            .into_inner()
            .metrics
            .unwrap())
    }

    async fn rank(
        &mut self,
        dimension: &str,
        metric: &str,
        best: bool,
        min_responses: u64,
    ) -> Vec<v1::RankedKey> {
        let mut request = tonic::Request::new(v1::RankKeysRequest {
            dimension: dimension.into(),
            window: "1h".into(),
            metric: metric.into(),
            limit: 10,
            best,
            min_responses,
        });
        request
            .metadata_mut()
            .insert("authorization", bearer(READER_TOKEN).parse().unwrap());
        self.client
            .rank_keys(request)
            .await
            .unwrap()
            .into_inner()
            .keys
    }

    async fn global_count(&mut self) -> u64 {
        self.get("global", "all", "1h")
            .await
            .map(|m| m.interactions)
            .unwrap_or(0)
    }

    /// Waits until the global 1h count reaches `n`, then checks it stays there.
    async fn wait_for_count(&mut self, n: u64) {
        self.wait_for_count_within(n, Duration::from_secs(90)).await
    }

    async fn wait_for_count_within(&mut self, n: u64, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;

        loop {
            let count = self.global_count().await;
            assert!(
                count <= n,
                "counted {count} > {n}: something was counted twice"
            );
            if count == n {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out at {count} of {n}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn run_id() -> String {
    unique("run")[4..14].to_string()
}

#[tokio::test]
async fn every_interaction_counts_once_even_when_the_topic_holds_it_twice() {
    require_stack().await;
    let iso = Isolation::new();
    let config = iso.config(ServiceName::Scoring, &brokers(), &redis_url());
    let scoring = RunningScoring::start(config.clone()).await;
    let run = run_id();
    let items: Vec<v1::Interaction> = (0..300).map(|n| interaction(n, &run)).collect();
    produce(&config, &items).await;
    // The same 100 again, as after an ingest crash between publish and mark.
    produce(&config, &items[..100]).await;

    // Every copy is scored and published (400), but counted once (300).
    let scored = read_topic(
        &brokers(),
        &config.kafka.topics.scored,
        400,
        Duration::from_millis(1500),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(scored.len(), 400, "a scored record per consumed record");
    let mut client = MetricsClient::connect(scoring.grpc_addr).await;
    client.wait_for_count(300).await;

    let global = client.get("global", "all", "1h").await.unwrap();
    assert_eq!(observed(&global), expected(items.iter()));
    let e = expected(items.iter());
    let nps = (e.promoters as f64 - e.detractors as f64) / e.nps_responses as f64 * 100.0;
    assert!((global.nps.unwrap() - nps).abs() < 1e-9);
    assert!(global.nps_margin_95.unwrap() > 0.0);
    for queue in QUEUES {
        let m = client.get("queue", queue, "1h").await.unwrap();
        let want = expected(
            items
                .iter()
                .filter(|i| i.queue_id.as_deref() == Some(queue)),
        );
        assert_eq!(observed(&m), want, "queue {queue}");
    }
    let agent = client.get("agent", "agent-3", "24h").await.unwrap();
    assert_eq!(
        observed(&agent),
        expected(
            items
                .iter()
                .filter(|i| i.agent_id.as_deref() == Some("agent-3"))
        )
    );
    // Ranking: queues by NPS, worst first, against the hand-computed NPS.
    let mut want: Vec<(f64, &str)> = QUEUES
        .iter()
        .map(|q| {
            let e = expected(items.iter().filter(|i| i.queue_id.as_deref() == Some(*q)));
            (
                (e.promoters as f64 - e.detractors as f64) / e.nps_responses as f64 * 100.0,
                *q,
            )
        })
        .collect();
    want.sort_by(|a, b| a.0.total_cmp(&b.0));
    let worst = client.rank("queue", "nps", false, 1).await;
    let got: Vec<(f64, &str)> = worst.iter().map(|k| (k.value, k.key.as_str())).collect();
    assert_eq!(got.len(), 3);
    for ((gv, gk), (wv, wk)) in got.iter().zip(&want) {
        assert_eq!(gk, wk);
        assert!((gv - wv).abs() < 1e-9);
    }
    let best = client.rank("queue", "nps", true, 1).await;
    assert_eq!(best[0].key, want[2].1, "best first reverses the order");
    assert!(
        client
            .rank("queue", "nps", false, 1_000_000)
            .await
            .is_empty(),
        "min_responses filters"
    );

    let chat = client.get("channel", "chat", "7d").await.unwrap();
    assert_eq!(
        chat.interactions,
        items
            .iter()
            .filter(|i| i.channel == v1::Channel::Chat as i32)
            .count() as u64
    );

    // Scored records: classification, tags, sentiment, repeat contact.
    let by_id: HashMap<String, v1::ScoredInteraction> = scored
        .iter()
        .map(|r| {
            let s = v1::ScoredInteraction::decode(r.payload.as_deref().unwrap()).unwrap();
            (s.interaction.as_ref().unwrap().interaction_id.clone(), s)
        })
        .collect();
    let s1 = &by_id[&format!("{run}-1")]; // nps 1, csat 2 → detractor; "charged twice"
    assert!(s1.detractor);
    assert_eq!(s1.nps_category, v1::NpsCategory::Detractor as i32);
    assert!(s1.tags.contains(&"billing".to_string()), "{:?}", s1.tags);
    assert!(s1.sentiment.unwrap() < -0.05);
    let s9 = &by_id[&format!("{run}-9")]; // nps 9, csat 5
    assert!(!s9.detractor);
    assert!(s9.sentiment.unwrap() > 0.05);
    // cust-3 appears as n = 3 and n = 100: the second is a repeat contact.
    assert!(
        by_id[&format!("{run}-100")].repeat_contact || by_id[&format!("{run}-3")].repeat_contact
    );
    for record in &scored {
        let s = v1::ScoredInteraction::decode(record.payload.as_deref().unwrap()).unwrap();
        assert_eq!(
            record.key_str(),
            s.interaction.unwrap().customer_id,
            "keyed by customer"
        );
    }

    scoring.stop().await;
}

#[tokio::test]
async fn a_full_replay_by_another_group_changes_no_count() {
    require_stack().await;
    let iso = Isolation::new();
    let config = iso.config(ServiceName::Scoring, &brokers(), &redis_url());
    let first = RunningScoring::start(config.clone()).await;
    let run = run_id();
    let items: Vec<v1::Interaction> = (0..200).map(|n| interaction(n, &run)).collect();
    produce(&config, &items).await;
    let mut client = MetricsClient::connect(first.grpc_addr).await;
    client.wait_for_count(200).await;

    // A second group reads the topic from the start (as after an offset
    // reset): it republishes, but counts nothing again.
    let mut replay_config = config.clone();
    let section = replay_config
        .file
        .get_mut("scoring")
        .unwrap()
        .as_table_mut()
        .unwrap();
    section.insert(
        "group_id".into(),
        toml::Value::String(unique("cx-scoring-replay")),
    );
    let replay = RunningScoring::start(replay_config).await;
    let scored = read_topic(
        &brokers(),
        &config.kafka.topics.scored,
        400,
        Duration::from_millis(1500),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(scored.len(), 400, "both groups scored everything");
    assert_eq!(client.global_count().await, 200);
    assert_eq!(
        observed(&client.get("global", "all", "7d").await.unwrap()),
        expected(items.iter())
    );
    replay.stop().await;
    first.stop().await;
}

#[tokio::test]
async fn poison_records_go_to_the_dead_letter_topic_and_the_stream_goes_on() {
    require_stack().await;
    let iso = Isolation::new();
    let config = iso.config(ServiceName::Scoring, &brokers(), &redis_url());
    let scoring = RunningScoring::start(config.clone()).await;
    let run = run_id();
    let mut out_of_range = interaction(1, &run);
    out_of_range.interaction_id = format!("{run}-bad-nps");
    out_of_range.nps = Some(42);
    let mut too_old = interaction(2, &run);
    too_old.interaction_id = format!("{run}-old");
    too_old.occurred_at = Some(cx_proto::prost_types::Timestamp {
        seconds: (time::OffsetDateTime::now_utc() - time::Duration::days(8)).unix_timestamp(),
        nanos: 0,
    });
    produce_raw(
        &config,
        vec![
            (b"garbage-key".to_vec(), vec![0xff, 0x00, 0x13, 0x37]),
            (b"c".to_vec(), out_of_range.encode_to_vec()),
            (b"c".to_vec(), too_old.encode_to_vec()),
        ],
    )
    .await;
    produce(&config, &[interaction(3, &run)]).await;

    let mut client = MetricsClient::connect(scoring.grpc_addr).await;
    client.wait_for_count(1).await;
    let dead = read_topic(
        &brokers(),
        &config.kafka.topics.deadletter,
        3,
        Duration::from_millis(1500),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(dead.len(), 3);
    let reasons: Vec<String> = dead
        .iter()
        .map(|r| header_str(r, "cx-error").unwrap())
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("not a protobuf")),
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|r| r.contains("nps")), "{reasons:?}");
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("older than the largest window")),
        "{reasons:?}"
    );
    for record in &dead {
        assert_eq!(
            header_str(record, "cx-source-topic").as_deref(),
            Some(config.kafka.topics.interactions.as_str())
        );
        assert_eq!(
            header_str(record, "cx-consumer-group").as_deref(),
            config.file["scoring"]["group_id"].as_str()
        );
        assert!(header_str(record, "cx-source-partition")
            .unwrap()
            .parse::<i32>()
            .is_ok());
        assert!(header_str(record, "cx-source-offset")
            .unwrap()
            .parse::<i64>()
            .is_ok());
    }
    let garbage = dead
        .iter()
        .find(|r| r.key_str() == "garbage-key")
        .expect("original key kept");
    assert_eq!(
        garbage.payload.as_deref(),
        Some(&[0xff, 0x00, 0x13, 0x37][..]),
        "original bytes kept"
    );
    scoring.stop().await;
}

#[tokio::test]
async fn redis_stopped_and_started_loses_nothing_and_counts_nothing_twice() {
    require_stack().await;
    let mut redis = PrivateRedis::start().await;
    let iso = Isolation::new();
    let config = iso.config(ServiceName::Scoring, &brokers(), &redis.url());
    let scoring = RunningScoring::start(config.clone()).await;
    let run = run_id();
    let items: Vec<v1::Interaction> = (0..200).map(|n| interaction(n, &run)).collect();
    produce(&config, &items[..100]).await;
    let mut client = MetricsClient::connect(scoring.grpc_addr).await;
    client.wait_for_count(100).await;

    redis.stop_gracefully().await;
    produce(&config, &items[100..]).await;
    wait_until(
        Duration::from_secs(30),
        "scoring reports not ready",
        || async { http_status(&scoring.http("/readyz")).await == Some(503) },
    )
    .await;
    redis.restart().await;
    client.wait_for_count(200).await;
    assert_eq!(
        observed(&client.get("global", "all", "1h").await.unwrap()),
        expected(items.iter())
    );
    wait_until(Duration::from_secs(30), "scoring ready again", || async {
        http_status(&scoring.http("/readyz")).await == Some(200)
    })
    .await;
    scoring.stop().await;
}

#[tokio::test]
async fn two_replicas_and_a_rebalance_count_exactly() {
    require_stack().await;
    let iso = Isolation::new();
    let config = iso.config(ServiceName::Scoring, &brokers(), &redis_url());
    let a = RunningScoring::start(config.clone()).await;
    let b = RunningScoring::start(config.clone()).await;
    let run = run_id();
    let items: Vec<v1::Interaction> = (0..1200).map(|n| interaction(n, &run)).collect();
    produce(&config, &items[..600]).await;
    let mut client = MetricsClient::connect(b.grpc_addr).await;
    client.wait_for_count(600).await;
    // A leaves the group mid-stream; B takes its partitions over.
    let producing = {
        let config = config.clone();
        let rest = items[600..].to_vec();
        tokio::spawn(async move {
            for chunk in rest.chunks(100) {
                produce(&config, chunk).await;
            }
        })
    };
    a.stop().await;
    producing.await.unwrap();
    client.wait_for_count(1200).await;
    assert_eq!(
        observed(&client.get("global", "all", "1h").await.unwrap()),
        expected(items.iter())
    );
    b.stop().await;
}

#[tokio::test]
async fn metrics_service_checks_arguments_and_scope() {
    require_stack().await;
    let iso = Isolation::new();
    let scoring =
        RunningScoring::start(iso.config(ServiceName::Scoring, &brokers(), &redis_url())).await;
    let mut client = MetricsClient::connect(scoring.grpc_addr).await;
    let status = client.get("planet", "", "2h").await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    let empty = client.get("queue", "nobody", "15m").await.unwrap();
    assert_eq!(empty.interactions, 0);
    assert_eq!(empty.nps, None, "no responses, no NPS");

    let mut raw = MetricsServiceClient::connect(format!("http://{}", scoring.grpc_addr))
        .await
        .unwrap();
    let mut request = tonic::Request::new(v1::GetMetricsRequest {
        dimension: "global".into(),
        key: "all".into(),
        window: "1h".into(),
    });
    request
        .metadata_mut()
        .insert("authorization", bearer(WRITER_TOKEN).parse().unwrap());
    assert_eq!(
        raw.get_metrics(request).await.unwrap_err().code(),
        tonic::Code::PermissionDenied
    );
    scoring.stop().await;
}

#[tokio::test]
async fn kill_9_mid_stream_then_restart_counts_exactly() {
    require_stack().await;
    let iso = Isolation::new();
    let config = iso.config(ServiceName::Scoring, &brokers(), &redis_url());
    let run = run_id();
    let items: Vec<v1::Interaction> = (0..3000).map(|n| interaction(n, &run)).collect();
    produce_one_by_one(&config, &items).await;

    // Small batches so the kill lands between many commits.
    let mut scoring = ServiceProcess::start("cx-scoring", "scoring", &iso, "max_batch = 50").await;
    let mut client = MetricsClient::connect(scoring.grpc_addr).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while client.global_count().await < 300 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "scoring never got going"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    signal(scoring.pid(), "KILL");
    let _ = scoring.child.wait().await;
    let at_kill = client.global_count().await;
    assert!(at_kill < 3000, "the kill landed mid-stream ({at_kill})");

    scoring.restart().await;
    let mut client = MetricsClient::connect(scoring.grpc_addr).await;
    // The killed member holds its partitions until its session times out.
    client
        .wait_for_count_within(3000, Duration::from_secs(120))
        .await;
    assert_eq!(
        observed(&client.get("global", "all", "1h").await.unwrap()),
        expected(items.iter())
    );
    for queue in QUEUES {
        let want = expected(
            items
                .iter()
                .filter(|i| i.queue_id.as_deref() == Some(queue)),
        );
        assert_eq!(
            observed(&client.get("queue", queue, "1h").await.unwrap()),
            want,
            "queue {queue}"
        );
    }
}

/// The window event of `interaction(n, run)` for a fresh run, as scoring
/// hands it to the store.
fn window_events() -> impl Fn(usize) -> cx_scoring::score::WindowEvent {
    let scorer = cx_scoring::score::Scorer::new(
        &cx_analytics::tags::Taxonomy::contact_centre_default(),
        cx_domain::DetractorThresholds::default(),
    )
    .unwrap();
    let run = run_id();
    move |n| {
        let scored = scorer.score(interaction(n, &run)).unwrap();
        scored.into_event_and_head().0
    }
}

#[tokio::test]
async fn the_window_store_counts_a_batch_once_even_with_copies_inside_it() {
    require_stack().await;
    let iso = Isolation::new();
    let redis = cx_runtime::RedisPool::new(&redis_url()).unwrap();
    let store = cx_scoring::store::WindowStore::new(redis, &iso.redis_prefix);
    let scored = window_events();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    // Same interaction three times in one batch, and a second batch that
    // repeats one of them beside a new one.
    let first = store
        .apply(&[scored(1), scored(1), scored(2), scored(1)], now)
        .await
        .unwrap();
    let counted: Vec<bool> = first.iter().map(|a| a.counted).collect();
    assert_eq!(counted, [true, false, true, false]);
    let second = store.apply(&[scored(2), scored(3)], now).await.unwrap();
    assert_eq!(
        second.iter().map(|a| a.counted).collect::<Vec<_>>(),
        [false, true]
    );
    let global = store
        .metrics(
            cx_windows::Dimension::Global,
            "all",
            cx_windows::Window::H1,
            now,
        )
        .await
        .unwrap();
    assert_eq!(global.interactions, 3);
}

/// A bucket expires one retention after its start: set when a batch
/// creates it, kept when later batches add to it.
#[tokio::test]
async fn window_buckets_expire_one_retention_after_their_start() {
    require_stack().await;
    let iso = Isolation::new();
    let redis = cx_runtime::RedisPool::new(&redis_url()).unwrap();
    let store = cx_scoring::store::WindowStore::new(redis.clone(), &iso.redis_prefix);
    let scored = window_events();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let first = scored(1);
    let occurred = first.occurred_at_s;
    let mut second = scored(2);
    second.occurred_at_s = occurred;

    let mut conn = redis.get().await.unwrap();
    for (batch, interactions) in [(first, 1), (second, 2)] {
        store.apply(&[batch], now).await.unwrap();
        for window in cx_windows::Window::ALL {
            let bucket = window.bucket_of(occurred);
            let key = format!(
                "{}:win:{}:global:all:{bucket}",
                iso.redis_prefix,
                window.as_str()
            );
            let expires: i64 = redis::cmd("EXPIRETIME")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap();
            assert_eq!(expires, window.expires_at_s(bucket), "{key}");
            let value: Vec<u8> = redis::cmd("GET")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap();
            let counted = cx_windows::Metrics::from_aggregate(&cx_scoring::store::unpack(&value));
            assert_eq!(counted.interactions, interactions, "{key}");
        }
    }
}

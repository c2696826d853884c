//! Decoding a batch of cx.v1.ScoredInteraction records in full against the
//! survey view cx-followup reads of every record (`cx_proto::view`).
//!
//! cargo bench -p cx-proto --bench decode

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use cx_proto::prost::Message as _;
use cx_proto::prost_types::Timestamp;
use cx_proto::v1;
use cx_proto::view::ScoredSurvey;

const VERBATIMS: [&str; 6] = [
    "The agent was lovely and fixed my bill in minutes",
    "Fine, but I had to explain twice",
    "Waited 40 minutes on hold and got transferred three times, then the line dropped and nobody called back",
    "I want to cancel, nobody ever calls back. Reach me on [phone]",
    "Charged twice on my card, still not refunded. Absolutely TERRIBLE!!! Third time I write about this.",
    "Helpful, though the app kept crashing when I tried to log in",
];

/// A batch as cx-scoring publishes it: every field the contract has.
fn records(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let at = |seconds| Some(Timestamp { seconds, nanos: 0 });
            v1::ScoredInteraction {
                interaction: Some(v1::Interaction {
                    interaction_id: format!("bench-{i:08}"),
                    customer_id: format!("cust-{:06}", i * 7919 % 100_000),
                    occurred_at: at(1_800_000_000 + i as i64),
                    channel: (i % 7 + 1) as i32,
                    agent_id: Some(format!("agent-{}", i % 120)),
                    team_id: Some(format!("team-{}", i % 12)),
                    queue_id: Some(["billing", "tech", "sales", "retention"][i % 4].into()),
                    nps: Some((i % 11) as i32),
                    csat: Some((i % 5 + 1) as i32),
                    ces: Some((i % 7 + 1) as i32),
                    verbatim: Some(VERBATIMS[i % VERBATIMS.len()].into()),
                    handle_time_s: Some(300 + i as u64 % 600),
                    hold_time_s: Some(i as u64 % 120),
                    transfers: Some(i as u64 % 3),
                    resolved: Some(i % 3 != 0),
                    attributes: [
                        ("region".to_string(), "emea".to_string()),
                        ("tier".to_string(), "gold".to_string()),
                    ]
                    .into(),
                    ingested_at: at(1_800_000_001 + i as i64),
                    redactions: (i % 5 == 0) as u32,
                }),
                nps_category: (i % 3 + 1) as i32,
                csat_satisfied: Some(i % 5 > 1),
                ces_category: (i % 3 + 1) as i32,
                detractor: i % 11 <= 6,
                sentiment: Some(-0.4),
                tags: vec!["billing".into(), "wait_time".into()],
                repeat_contact: i % 4 == 0,
                contacts_in_window: (i % 4) as u32 + 1,
                scored_at: at(1_800_000_002 + i as i64),
            }
            .encode_to_vec()
        })
        .collect()
}

fn decode(c: &mut Criterion) {
    let batch = records(2000);
    let mut group = c.benchmark_group("decode 2000 scored records");
    group.throughput(Throughput::Elements(batch.len() as u64));
    group.bench_function("full ScoredInteraction", |b| {
        b.iter(|| {
            batch
                .iter()
                .filter_map(|r| {
                    v1::ScoredInteraction::decode(r.as_slice())
                        .ok()?
                        .interaction
                })
                .collect::<Vec<_>>()
        })
    });
    group.bench_function("survey view", |b| {
        b.iter(|| {
            batch
                .iter()
                .filter_map(|r| ScoredSurvey::decode(r.as_slice()).ok()?.interaction)
                .collect::<Vec<_>>()
        })
    });
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);

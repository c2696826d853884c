//! Scoring's CPU cost per event on one core: classification, sentiment,
//! topic tags, and the in-memory pre-aggregation into window buckets that
//! precedes the one Redis script per batch.
//!
//! cargo bench -p cx-scoring --bench per_event

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use cx_analytics::tags::Taxonomy;
use cx_domain::DetractorThresholds;
use cx_proto::v1;
use cx_scoring::score::Scorer;
use cx_scoring::store::{pack, pre_aggregate, unpack};

const VERBATIMS: [&str; 8] = [
    "The agent was lovely and fixed my bill in minutes",
    "Quick and easy, thanks!",
    "Fine, but I had to explain twice",
    "Waited 40 minutes on hold and got transferred three times",
    "I want to cancel, nobody ever calls back. Reach me on [phone]",
    "Charged twice on my card, still not refunded. Absolutely TERRIBLE!!!",
    "Delivery was late again, the parcel arrived damaged",
    "Helpful, though the app kept crashing when I tried to log in",
];

fn events(n: usize) -> Vec<v1::Interaction> {
    (0..n)
        .map(|i| v1::Interaction {
            interaction_id: format!("i-{i}"),
            customer_id: format!("c-{}", i % 5000),
            occurred_at: Some(cx_proto::prost_types::Timestamp {
                seconds: 1_800_000_000 + (i as i64 % 3600),
                nanos: 0,
            }),
            channel: (i % 7 + 1) as i32,
            agent_id: Some(format!("agent-{}", i % 120)),
            team_id: Some(format!("team-{}", i % 12)),
            queue_id: Some(["billing", "tech", "sales", "retention", "delivery"][i % 5].into()),
            nps: Some((i % 11) as i32),
            csat: Some((i % 5 + 1) as i32),
            ces: Some((i % 7 + 1) as i32),
            verbatim: Some(VERBATIMS[i % VERBATIMS.len()].into()),
            transfers: Some((i % 3) as u64),
            resolved: Some(i % 2 == 0),
            ..Default::default()
        })
        .collect()
}

fn per_event(c: &mut Criterion) {
    let scorer = Scorer::new(
        &Taxonomy::contact_centre_default(),
        DetractorThresholds::default(),
    )
    .unwrap();
    let batch = events(1000);
    let mut group = c.benchmark_group("scoring");
    group.throughput(Throughput::Elements(batch.len() as u64));
    group.bench_function("score+sentiment+tags+aggregate", |b| {
        b.iter(|| {
            // Scoring and encoding, then the pre-aggregation the Redis step sends.
            let events: Vec<_> = batch
                .iter()
                .map(|i| scorer.score(i.clone()).unwrap().into_event_and_head().0)
                .collect();
            let counted_before = vec![false; events.len()];
            let now = 1_800_000_000 + 3600;
            pre_aggregate(&events, &counted_before, now).buckets.len()
        })
    });
    group.bench_function("baseline: clone only", |b| {
        b.iter(|| {
            batch
                .iter()
                .map(|i| i.clone().interaction_id.len())
                .sum::<usize>()
        })
    });
    group.finish();

    // Every bucket the script writes is packed; alerting unpacks the 60
    // buckets of each window it reads.
    let events: Vec<_> = batch
        .iter()
        .map(|i| scorer.score(i.clone()).unwrap().into_event_and_head().0)
        .collect();
    let counted_before = vec![false; events.len()];
    let aggregates: Vec<_> = pre_aggregate(&events, &counted_before, 1_800_000_000 + 3600)
        .buckets
        .into_values()
        .map(|(_, aggregate)| aggregate)
        .collect();
    let packed: Vec<Vec<u8>> = aggregates.iter().map(pack).collect();
    let mut group = c.benchmark_group("buckets");
    group.throughput(Throughput::Elements(aggregates.len() as u64));
    group.bench_function("pack", |b| {
        b.iter(|| aggregates.iter().map(|a| pack(a).len()).sum::<usize>())
    });
    group.bench_function("unpack", |b| {
        b.iter(|| packed.iter().map(|p| unpack(p).interactions).sum::<u64>())
    });
    group.finish();
}

criterion_group!(benches, per_event);
criterion_main!(benches);

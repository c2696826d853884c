//! evaluate_event throughput over 50 rules and ~1000 realistic events.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use cx_rules::{
    EventView, KeywordRuleConfig, ResponseRuleConfig, RuleConfig, RuleSet, RulesConfig, Severity,
    SpikeRuleConfig, ThresholdRuleConfig,
};

/// Fixed-seed xorshift so runs compare.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const KEYWORDS: &[&str] = &[
    "cancel",
    "refund",
    "manager",
    "supervisor",
    "lawyer",
    "complaint",
    "broken",
    "rude",
    "waiting",
    "on hold",
    "transfer",
    "bill",
    "overcharged",
    "charged twice",
    "outage",
    "password",
    "login",
    "delivery",
    "late",
    "damaged",
    "wrong item",
    "ombudsman",
    "regulator",
    "switch provider",
    "close my account",
    "terminate contract",
    "unacceptable",
    "disgusting",
    "never again",
    "escalate",
    "money back",
    "discount",
    "upgrade",
    "contract",
    "fee",
    "hidden charges",
    "slow",
    "disconnected",
    "no signal",
    "engineer",
    "appointment",
    "missed",
    "rescheduled",
    "apology",
    "compensation",
    "faulty",
    "replacement",
    "warranty",
    "leave",
];

const FILLER: &[&str] = &[
    "the", "agent", "was", "very", "helpful", "and", "i", "called", "about", "my", "account",
    "they", "said", "it", "would", "be", "fixed", "by", "tomorrow", "but", "nothing", "happened",
    "again", "service", "today", "phone", "call", "took", "long", "time", "to", "get", "through",
    "thanks", "for", "sorting", "this", "out", "quickly", "really", "friendly", "staff", "still",
    "not", "working", "properly", "need", "someone", "who", "knows", "what", "they", "are",
    "doing",
];

fn rules(rng: &mut Rng) -> RulesConfig {
    let mut rules = Vec::new();
    for i in 0..10u8 {
        rules.push(RuleConfig::Response(ResponseRuleConfig {
            name: format!("response_{i}"),
            severity: Severity::Warning,
            cooldown_s: 3600,
            enabled: true,
            nps_max: i % 7,
            csat_max: 1 + i % 2,
            ces_max: 1 + i % 3,
        }));
    }
    for i in 0..30 {
        let n = 3 + rng.below(4);
        rules.push(RuleConfig::Keyword(KeywordRuleConfig {
            name: format!("keyword_{i}"),
            severity: Severity::Warning,
            cooldown_s: 3600,
            enabled: true,
            keywords: (0..n).map(|_| rng.pick(KEYWORDS).to_owned()).collect(),
            tags: if i % 5 == 0 {
                vec!["cancellation".into()]
            } else {
                Vec::new()
            },
        }));
    }
    for i in 0..5 {
        rules.push(RuleConfig::Threshold(ThresholdRuleConfig {
            name: format!("threshold_{i}"),
            severity: Severity::Warning,
            cooldown_s: 1800,
            enabled: true,
            dimension: "queue".into(),
            window: "1h".into(),
            metric: "nps".into(),
            op: "below".into(),
            bound: 0.0,
            min_responses: 30,
        }));
        rules.push(RuleConfig::Spike(SpikeRuleConfig {
            name: format!("spike_{i}"),
            severity: Severity::Critical,
            cooldown_s: 1800,
            enabled: true,
            dimension: "team".into(),
            window: "1h".into(),
            p_value: 0.01,
            min_responses: 30,
            min_rate_increase: 0.0,
        }));
    }
    RulesConfig { rules }
}

const NPS: &[u8] = &[10, 10, 10, 9, 9, 9, 8, 8, 7, 7, 6, 5, 4, 3, 1, 0];
const CSAT: &[u8] = &[5, 5, 5, 4, 4, 4, 3, 2, 1];

struct Owned {
    interaction_id: String,
    customer_id: String,
    queue_id: String,
    nps: Option<u8>,
    csat: Option<u8>,
    verbatim: String,
    tags: Vec<String>,
}

fn events(rng: &mut Rng) -> Vec<Owned> {
    (0..1000)
        .map(|i| {
            let words = 10 + rng.below(31);
            let mut text = Vec::with_capacity(words);
            for _ in 0..words {
                // About one word in 50 is a keyword: roughly two verbatims in five mention one.
                text.push(if rng.below(50) == 0 {
                    rng.pick(KEYWORDS)
                } else {
                    rng.pick(FILLER)
                });
            }
            Owned {
                interaction_id: format!("int-{i:06}"),
                customer_id: format!("cust-{}", rng.below(400)),
                queue_id: format!("queue-{}", rng.below(12)),
                // Typical contact-centre mix: about a third of NPS answers are detractors.
                nps: (rng.below(10) < 7).then(|| NPS[rng.below(NPS.len())]),
                csat: (rng.below(10) < 5).then(|| CSAT[rng.below(CSAT.len())]),
                verbatim: text.join(" ") + ".",
                tags: if rng.below(20) == 0 {
                    vec!["cancellation".into()]
                } else {
                    Vec::new()
                },
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut rng = Rng(0x5eed_cafe_f00d_d00d);
    let set = RuleSet::compile(&rules(&mut rng)).expect("bench rules compile");
    let owned = events(&mut rng);
    let views: Vec<EventView<'_>> = owned
        .iter()
        .map(|o| EventView {
            interaction_id: &o.interaction_id,
            customer_id: &o.customer_id,
            occurred_at_s: 1_700_000_000,
            channel: "chat",
            agent_id: Some("agent-1"),
            team_id: Some("team-1"),
            queue_id: Some(&o.queue_id),
            nps: o.nps,
            csat: o.csat,
            ces: None,
            verbatim: Some(&o.verbatim),
            tags: &o.tags,
            sentiment: None,
        })
        .collect();
    let fired: usize = views.iter().map(|v| set.evaluate_event(v).len()).sum();
    eprintln!("{} events, {} candidates", views.len(), fired);

    let mut group = c.benchmark_group("rules");
    group.throughput(Throughput::Elements(views.len() as u64));
    group.bench_function("evaluate_event_50_rules", |b| {
        b.iter(|| {
            let mut n = 0;
            for v in &views {
                n += black_box(set.evaluate_event(black_box(v))).len();
            }
            n
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

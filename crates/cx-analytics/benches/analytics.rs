//! Throughput of the per-event analytics over 64 realistic verbatims.
//!
//! `cargo bench -p cx-analytics -- --warm-up-time 1 --measurement-time 3`
//! Criterion reports elements/s; one element is one verbatim.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use cx_analytics::{label, SentimentScorer, Taxonomy};

const VERBATIMS: [&str; 64] = [
    "I waited on hold for 45 minutes and then the call got cut off, absolutely ridiculous.",
    "Sarah was fantastic, she sorted out my billing issue in five minutes. Thank you!",
    "I was charged twice for the same order and nobody can explain why this happened.",
    "The agent was rude, kept interrupting me and then hung up on me.",
    "Great service as always, the engineer turned up on time and fixed the boiler.",
    "My parcel never arrived and the tracking number says it was delivered to the wrong address.",
    "I have asked for a refund three times now and I am still waiting for my money back.",
    "The app keeps crashing when I try to log in, very frustrating.",
    "I was transferred to five different people and had to repeat myself every single time.",
    "Not happy at all. I want to cancel my contract and switch provider.",
    "The chat bot was useless but the human agent was really helpful and patient.",
    "Quick and easy, no complaints.",
    "Your website is down again and I cannot pay my bill.",
    "The product arrived damaged and the replacement is also faulty.",
    "Someone made an unauthorised payment from my account, this is fraud.",
    "If this is not resolved by Friday I will be contacting my solicitor.",
    "Lovely friendly agent, went above and beyond to help me with my account.",
    "It was okay, nothing special, took a while to get through.",
    "The new tariff is a joke, my bill has doubled since last month.",
    "Fast delivery and the packaging was great, very pleased.",
    "I am extremely disappointed with how my complaint was handled.",
    "Nobody called me back even though I was promised a callback within 24 hours.",
    "Brilliant support, the best experience I have had with any company in years!",
    "The internet connection drops every evening and nobody can tell me why.",
    "Why does it take so long to get a simple answer??",
    "Thank you for sorting this out so quickly!!!",
    "WORST SERVICE EVER. I will never use this company again.",
    "The agent was friendly but the wait was terrible.",
    "I had to explain my problem again to another department, what a waste of time.",
    "Kind of helpful, but I still don't know when my order will be dispatched.",
    "The engineer was professional, polite and cleaned up after himself.",
    "My direct debit was taken on the wrong date and I was charged a late fee.",
    "The courier left my package outside in the rain and it was ruined.",
    "I got my money back without any fuss, thanks.",
    "Login page shows an error message every time I enter my password.",
    "I've been a loyal customer for ten years and this is how you treat me?",
    "Absolutely no help whatsoever, the agent did not listen to a word I said.",
    "Resolved on the first call, impressive.",
    "The item stopped working after two days and the return label never came.",
    "I'm going to report you to the ombudsman and trading standards.",
    "Please close my account and unsubscribe me from all emails.",
    "The queue was long but the agent made up for it, very knowledgeable.",
    "Your security team blocked my card for no reason while I was abroad.",
    "Good price, decent product, delivery a bit slow.",
    "Really angry right now, third time calling about the same issue.",
    "The staff were incredibly patient with my elderly mother, thank you so much.",
    "No issues, the installation was quick and the technician was great.",
    "Billing error corrected and I got compensation, happy with the outcome.",
    "Customer service is a nightmare, I was on hold forever.",
    "The agent was condescending and dismissive about my complaint.",
    "Everything works fine now, cheers for the help.",
    "The phone line kept disconnecting and I had to start over twice.",
    "I received the wrong item and the missing parts were never sent.",
    "Well done to the team, excellent communication throughout.",
    "The app update broke everything, please fix this bug.",
    "I can't fault the service, couldn't be happier.",
    "Why is my bill so high this month? Nobody explained the price increase.",
    "Still waiting for my delivery after two weeks, nobody knows where it is.",
    "They hacked my account and the fraud team did nothing for days.",
    "The survey is too long, but the call itself was fine.",
    "Polite agent, but he couldn't change the policy so the problem remains.",
    "Superb, the agent resolved everything and even gave me a discount!",
    "I will be taking legal action if my refund is not processed this week.",
    "It's not that I'm angry, I'm just disappointed with the whole experience.",
];

fn analytics(c: &mut Criterion) {
    let scorer = SentimentScorer::new();
    let matcher = Taxonomy::contact_centre_default().compile().unwrap();
    let n = VERBATIMS.len() as u64;

    let mut group = c.benchmark_group("sentiment");
    group.throughput(Throughput::Elements(n));
    group.bench_function("compound", |b| {
        b.iter(|| {
            let mut sum = 0.0;
            for v in VERBATIMS {
                sum += scorer.compound(black_box(v));
            }
            sum
        })
    });
    group.finish();

    let mut group = c.benchmark_group("tags");
    group.throughput(Throughput::Elements(n));
    group.bench_function("contact_centre_default", |b| {
        let mut out = Vec::with_capacity(16);
        b.iter(|| {
            let mut count = 0;
            for v in VERBATIMS {
                out.clear();
                matcher.tags_into(black_box(v), &mut out);
                count += out.len();
            }
            count
        })
    });
    group.finish();

    // Both together, as the scoring service runs them per event.
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(n));
    group.bench_function("sentiment_and_tags", |b| {
        let mut out = Vec::with_capacity(16);
        b.iter(|| {
            let mut count = 0;
            for v in VERBATIMS {
                let l = label(scorer.compound(black_box(v)));
                out.clear();
                matcher.tags_into(v, &mut out);
                count += out.len() + l as usize;
            }
            count
        })
    });
    group.finish();
}

criterion_group!(benches, analytics);
criterion_main!(benches);

//! Property tests of the window math against naive references that work on
//! the raw event list, the way one would compute a window by hand.

use std::collections::BTreeMap;

use cx_windows::{Aggregate, Contribution, Metrics, Window};
use proptest::prelude::*;

const DAY: i64 = 86_400;

#[derive(Debug, Clone)]
struct Event {
    t: i64,
    c: Contribution,
}

fn window() -> impl Strategy<Value = Window> {
    prop::sample::select(Window::ALL.to_vec())
}

fn contribution() -> impl Strategy<Value = Contribution> {
    (
        prop::option::of(0u8..=10),
        prop::option::of(1u8..=5),
        prop::option::of(1u8..=7),
        prop::option::of(-1.0f64..=1.0),
        prop::option::of(0u32..=20),
        prop::option::of(any::<bool>()),
    )
        .prop_map(
            |(nps, csat, ces, sentiment, transfers, resolved)| Contribution {
                nps,
                csat,
                ces,
                sentiment,
                transfers,
                resolved,
            },
        )
}

/// A base time: recent, the epoch, or anywhere within ±30 years of it
/// (negative times included).
fn base() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(1_700_000_000i64),
        Just(0i64),
        -1_000_000_000i64..=1_000_000_000,
    ]
}

/// Offsets from the base: spread over ±10 days (for the long windows) or
/// packed within ±1 h (so short windows see events and bucket edges).
fn offset() -> impl Strategy<Value = i64> {
    prop_oneof![-10 * DAY..=10 * DAY, -3_600i64..=3_600]
}

/// Base, events around it, and query times around it.
fn scenario() -> impl Strategy<Value = (i64, Vec<Event>, Vec<i64>)> {
    (
        base(),
        prop::collection::vec((offset(), contribution()), 0..120),
        prop::collection::vec(offset(), 1..8),
    )
        .prop_map(|(base, events, nows)| {
            let events = events
                .into_iter()
                .map(|(o, c)| Event { t: base + o, c })
                .collect();
            let nows = nows.into_iter().map(|o| base + o).collect();
            (base, events, nows)
        })
}

fn naive_sum<'a>(events: impl IntoIterator<Item = &'a Event>) -> Aggregate {
    let mut a = Aggregate::default();
    for e in events {
        a.add(&e.c);
    }
    a
}

/// Reference metrics straight from the raw contributions, in floats.
fn naive_metrics(cs: &[Contribution]) -> Metrics {
    let mean = |xs: &[f64]| (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64);
    let pct = |hits: usize, of: usize| (of > 0).then(|| 100.0 * hits as f64 / of as f64);

    let nps: Vec<u8> = cs.iter().filter_map(|c| c.nps).collect();
    let promoters = nps.iter().filter(|s| **s >= 9).count();
    let passives = nps.iter().filter(|s| **s == 7 || **s == 8).count();
    let detractors = nps.iter().filter(|s| **s <= 6).count();
    // Per-response score +1 / 0 / −1; NPS is its mean × 100 and the margin
    // uses its population variance, computed the two-pass way.
    let x: Vec<f64> = nps
        .iter()
        .map(|s| match s {
            9.. => 1.0,
            7 | 8 => 0.0,
            _ => -1.0,
        })
        .collect();
    let nps_mean = mean(&x);
    let nps_margin = nps_mean.filter(|_| x.len() >= 2).map(|m| {
        let var = x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / x.len() as f64;
        1.96 * (var / x.len() as f64).sqrt() * 100.0
    });

    let csat: Vec<u8> = cs.iter().filter_map(|c| c.csat).collect();
    let ces: Vec<f64> = cs.iter().filter_map(|c| c.ces).map(f64::from).collect();
    // The crate's definition sums sentiment rounded to 1e-6; the reference
    // rounds each raw value the same way (and the raw mean is checked to be
    // within the rounding error separately).
    let sentiment: Vec<f64> = cs
        .iter()
        .filter_map(|c| c.sentiment)
        .map(|s| (s * 1e6).round() / 1e6)
        .collect();
    let transfers: Vec<f64> = cs
        .iter()
        .filter_map(|c| c.transfers)
        .map(f64::from)
        .collect();
    let fcr: Vec<bool> = cs.iter().filter_map(|c| c.resolved).collect();

    Metrics {
        interactions: cs.len() as u64,
        nps_responses: nps.len() as u64,
        csat_responses: csat.len() as u64,
        ces_responses: ces.len() as u64,
        promoters: promoters as u64,
        passives: passives as u64,
        detractors: detractors as u64,
        nps: nps_mean.map(|m| m * 100.0),
        nps_margin_95: nps_margin,
        csat_pct: pct(csat.iter().filter(|s| **s >= 4).count(), csat.len()),
        ces_avg: mean(&ces),
        easy_pct: pct(ces.iter().filter(|s| **s >= 5.0).count(), ces.len()),
        sentiment_avg: mean(&sentiment),
        transfers_avg: mean(&transfers),
        fcr_pct: pct(fcr.iter().filter(|r| **r).count(), fcr.len()),
    }
}

fn assert_close(name: &str, actual: Option<f64>, expected: Option<f64>, tol: f64) {
    match (actual, expected) {
        (None, None) => {}
        (Some(a), Some(e)) => assert!((a - e).abs() <= tol, "{name}: {a} vs {e}"),
        _ => panic!("{name}: {actual:?} vs {expected:?}"),
    }
}

fn arbitrary_aggregate() -> impl Strategy<Value = Aggregate> {
    let count = || prop_oneof![0u64..=3, 0u64..=i64::MAX as u64];
    (
        (
            count(),
            count(),
            count(),
            count(),
            count(),
            count(),
            count(),
            count(),
        ),
        (
            count(),
            count(),
            count(),
            any::<i64>(),
            count(),
            count(),
            count(),
            count(),
        ),
    )
        .prop_map(
            |((n, nr, pr, pa, de, cr, cs, er), (es, ee, sr, ss, tr, ts, fr, fx))| Aggregate {
                interactions: n,
                nps_responses: nr,
                promoters: pr,
                passives: pa,
                detractors: de,
                csat_responses: cr,
                csat_satisfied: cs,
                ces_responses: er,
                ces_sum: es,
                ces_easy: ee,
                sentiment_responses: sr,
                sentiment_micros_sum: ss,
                transfers_responses: tr,
                transfers_sum: ts,
                fcr_responses: fr,
                fcr_resolved: fx,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// (1) Summing per-bucket aggregates over `query_buckets(now)` counts
    /// exactly the events a naive filter on the raw list keeps, and that
    /// filter's span is the documented one.
    #[test]
    fn bucket_sums_equal_naive_window((_, events, nows) in scenario(), w in window()) {
        let mut buckets: BTreeMap<i64, Aggregate> = BTreeMap::new();
        for e in &events {
            buckets.entry(w.bucket_of(e.t)).or_default().add(&e.c);
        }

        for now in nows {
            let q = w.query_buckets(now);
            prop_assert_eq!(q.clone().count(), 60);
            let from_buckets: Aggregate = q.clone().filter_map(|b| buckets.get(&b)).sum();

            let start = w.start_of(*q.start());
            let end = w.end_of(*q.end());
            // The span, characterised without the crate's bucket functions:
            // exactly one window long, aligned to bucket edges, and holding
            // `now` in its last bucket.
            prop_assert_eq!(end - start, w.length_s());
            prop_assert_eq!(start.rem_euclid(w.bucket_s()), 0);
            prop_assert!(end - w.bucket_s() <= now && now < end);
            prop_assert_eq!(w.query_span(now), start..end);

            let naive = naive_sum(events.iter().filter(|e| start <= e.t && e.t < end));
            prop_assert_eq!(from_buckets, naive);
        }
    }

    /// Every event lands in a bucket whose bounds hold it, and the query at
    /// the event's own time includes it.
    #[test]
    fn buckets_hold_their_events(t in any::<i64>(), w in window()) {
        let b = w.bucket_of(t);
        let (start, end) = (w.start_of(b), w.end_of(b));
        if t.checked_add(w.bucket_s()).is_some() && t.checked_sub(w.bucket_s()).is_some() {
            prop_assert!(start <= t && t < end);
            prop_assert_eq!(end - start, w.bucket_s());
        }
        prop_assert!(w.query_buckets(t).contains(&b));
    }

    /// (2) merge is associative and commutative, and adding a list one by one
    /// equals merging the adds of any split of it.
    #[test]
    fn merge_is_a_commutative_monoid(
        xs in prop::collection::vec(contribution(), 0..40),
        ys in prop::collection::vec(contribution(), 0..40),
        zs in prop::collection::vec(contribution(), 0..40),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..5),
    ) {
        let agg = |cs: &[Contribution]| {
            let mut a = Aggregate::default();
            for c in cs {
                a.add(c);
            }
            a
        };
        let (a, b, c) = (agg(&xs), agg(&ys), agg(&zs));
        let merged = |l: &Aggregate, r: &Aggregate| {
            let mut m = *l;
            m.merge(r);
            m
        };
        prop_assert_eq!(merged(&merged(&a, &b), &c), merged(&a, &merged(&b, &c)));
        prop_assert_eq!(merged(&a, &b), merged(&b, &a));
        prop_assert_eq!(merged(&a, &Aggregate::default()), a);

        // Split xs ++ ys ++ zs at arbitrary points; the parts' merge is the whole.
        let all: Vec<Contribution> = xs.iter().chain(&ys).chain(&zs).copied().collect();
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(all.len() + 1)).collect();
        points.push(0);
        points.push(all.len());
        points.sort_unstable();
        let parts: Aggregate = points.windows(2).map(|p| agg(&all[p[0]..p[1]])).sum();
        prop_assert_eq!(parts, agg(&all));
        prop_assert_eq!(agg(&all), merged(&merged(&a, &b), &c));
    }

    /// (3) The metrics of summed counters equal a naive float computation
    /// over the raw events.
    #[test]
    fn metrics_equal_naive_floats(cs in prop::collection::vec(contribution(), 0..200)) {
        let mut a = Aggregate::default();
        for c in &cs {
            a.add(c);
        }
        let m = Metrics::from_aggregate(&a);
        let naive = naive_metrics(&cs);

        prop_assert_eq!(
            (m.interactions, m.nps_responses, m.csat_responses, m.ces_responses),
            (naive.interactions, naive.nps_responses, naive.csat_responses, naive.ces_responses)
        );
        prop_assert_eq!(
            (m.promoters, m.passives, m.detractors),
            (naive.promoters, naive.passives, naive.detractors)
        );
        for name in &Metrics::NAMES[7..] {
            assert_close(name, m.get(name), naive.get(name), 1e-9);
        }

        // Fixed point costs at most half a micro-unit per value on the mean.
        let raw: Vec<f64> = cs.iter().filter_map(|c| c.sentiment).collect();
        let raw_mean = (!raw.is_empty()).then(|| raw.iter().sum::<f64>() / raw.len() as f64);
        assert_close("sentiment_avg (raw)", m.sentiment_avg, raw_mean, 5e-7 + 1e-12);

        if let Some(nps) = m.nps {
            prop_assert!((-100.0..=100.0).contains(&nps));
        }
    }

    /// (4) counters/from_counters round trip: the packed bucket layout.
    #[test]
    fn counters_round_trip(a in arbitrary_aggregate()) {
        prop_assert_eq!(Aggregate::from_counters(a.counters()), a);
    }

    /// Round trip through the per-event path too: each event's counters,
    /// added position by position as scoring's window script adds packed
    /// buckets, read back as the sum.
    #[test]
    fn adding_packed_counters_equals_the_sum(cs in prop::collection::vec(contribution(), 0..60)) {
        let mut bucket = [0i64; 16];
        for c in &cs {
            for (stored, v) in bucket.iter_mut().zip(Aggregate::of(c).counters()) {
                *stored += v;
            }
        }
        let mut expected = Aggregate::default();
        for c in &cs {
            expected.add(c);
        }
        prop_assert_eq!(Aggregate::from_counters(bucket), expected);
    }
}

#[test]
fn each_window_is_sixty_buckets() {
    for w in Window::ALL {
        assert_eq!(w.bucket_s() * 60, w.length_s(), "{w}");
        assert!(w.bucket_s() <= w.length_s() / 60, "{w}");
    }
}

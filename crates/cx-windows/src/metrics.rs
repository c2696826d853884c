//! The GetMetrics figures, computed from summed counters.

use serde::Serialize;

use crate::aggregate::{Aggregate, SENTIMENT_MICROS_PER_UNIT};

/// z for a two-sided 95 % confidence interval.
const Z_95: f64 = 1.96;

/// The GetMetrics figures, under their contract names. Ratios are `None`
/// when there is no response to compute them from (serialized as `null`), so
/// "no data" is never shown as 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Metrics {
    pub interactions: u64,
    pub nps_responses: u64,
    pub csat_responses: u64,
    pub ces_responses: u64,
    pub promoters: u64,
    pub passives: u64,
    pub detractors: u64,
    /// %promoters − %detractors, −100..100.
    pub nps: Option<f64>,
    /// Half-width of the 95 % confidence interval of `nps`, in NPS points;
    /// `None` when fewer than 2 NPS responses. See [`Metrics::from_aggregate`].
    pub nps_margin_95: Option<f64>,
    /// Satisfied (CSAT 4–5) / CSAT responses × 100.
    pub csat_pct: Option<f64>,
    /// Mean of the raw CES scores (1–7).
    pub ces_avg: Option<f64>,
    /// Easy (CES 5–7) / CES responses × 100.
    pub easy_pct: Option<f64>,
    /// Mean sentiment, −1..1 (of values rounded to 1e-6).
    pub sentiment_avg: Option<f64>,
    /// Mean transfers per interaction that reported them.
    pub transfers_avg: Option<f64>,
    /// Resolved at first contact / interactions that reported it × 100.
    pub fcr_pct: Option<f64>,
}

impl Metrics {
    /// The metrics that count something (whole numbers): the first seven of
    /// [`Metrics::NAMES`].
    pub const COUNTS: &'static [&'static str] = Self::NAMES.split_at(7).0;

    /// Every metric name GetMetrics answers with, in contract order; the names
    /// [`Metrics::get`] knows.
    pub const NAMES: [&'static str; 15] = [
        "interactions",
        "nps_responses",
        "csat_responses",
        "ces_responses",
        "promoters",
        "passives",
        "detractors",
        "nps",
        "nps_margin_95",
        "csat_pct",
        "ces_avg",
        "easy_pct",
        "sentiment_avg",
        "transfers_avg",
        "fcr_pct",
    ];

    /// Computes every figure from summed bucket counters.
    ///
    /// NPS margin of error (normal approximation): each of the `n` NPS
    /// responses scores +1 (promoter), 0 (passive) or −1 (detractor). With
    /// `p = promoters / n` and `d = detractors / n`, the mean score is the NPS
    /// fraction `p − d`, and the score's variance is
    /// `E[x²] − E[x]² = p + d − (p − d)²`. The margin is
    /// `1.96 × sqrt(variance / n) × 100` NPS points; `None` when `n < 2`,
    /// where no spread can be estimated. It is 0 when every response is in
    /// the same category — the normal approximation's known blind spot, so
    /// small samples deserve a look at `nps_responses` too.
    pub fn from_aggregate(a: &Aggregate) -> Metrics {
        let n = a.nps_responses;
        let nps_fraction = ratio(a.promoters, n).zip(ratio(a.detractors, n));
        let nps_margin_95 = nps_fraction.filter(|_| n >= 2).map(|(p, d)| {
            // Clamped because rounding can push an exact 0 a hair below it.
            let variance = (p + d - (p - d).powi(2)).max(0.0);
            Z_95 * (variance / n as f64).sqrt() * 100.0
        });
        Metrics {
            interactions: a.interactions,
            nps_responses: a.nps_responses,
            csat_responses: a.csat_responses,
            ces_responses: a.ces_responses,
            promoters: a.promoters,
            passives: a.passives,
            detractors: a.detractors,
            nps: nps_fraction.map(|(p, d)| (p - d) * 100.0),
            nps_margin_95,
            csat_pct: percent(a.csat_satisfied, a.csat_responses),
            ces_avg: ratio(a.ces_sum, a.ces_responses),
            easy_pct: percent(a.ces_easy, a.ces_responses),
            sentiment_avg: (a.sentiment_responses > 0).then(|| {
                a.sentiment_micros_sum as f64
                    / SENTIMENT_MICROS_PER_UNIT
                    / a.sentiment_responses as f64
            }),
            transfers_avg: ratio(a.transfers_sum, a.transfers_responses),
            fcr_pct: percent(a.fcr_resolved, a.fcr_responses),
        }
    }

    /// A figure by its contract name, for ranking and thresholds: counts as
    /// floats, ratios as computed. `None` both for a ratio without responses
    /// and for a name not in [`Metrics::NAMES`] — check names against
    /// `NAMES` up front when the difference matters.
    pub fn get(&self, name: &str) -> Option<f64> {
        let count = |v: u64| Some(v as f64);
        match name {
            "interactions" => count(self.interactions),
            "nps_responses" => count(self.nps_responses),
            "csat_responses" => count(self.csat_responses),
            "ces_responses" => count(self.ces_responses),
            "promoters" => count(self.promoters),
            "passives" => count(self.passives),
            "detractors" => count(self.detractors),
            "nps" => self.nps,
            "nps_margin_95" => self.nps_margin_95,
            "csat_pct" => self.csat_pct,
            "ces_avg" => self.ces_avg,
            "easy_pct" => self.easy_pct,
            "sentiment_avg" => self.sentiment_avg,
            "transfers_avg" => self.transfers_avg,
            "fcr_pct" => self.fcr_pct,
            _ => None,
        }
    }
}

impl From<&Aggregate> for Metrics {
    fn from(a: &Aggregate) -> Metrics {
        Metrics::from_aggregate(a)
    }
}

/// `part / whole`, `None` without a whole.
fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// `part / whole × 100`, `None` without a whole.
fn percent(part: u64, whole: u64) -> Option<f64> {
    ratio(part, whole).map(|r| r * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::Contribution;

    fn close(actual: Option<f64>, expected: f64) {
        let actual = actual.expect("a value");
        assert!((actual - expected).abs() < 1e-9, "{actual} != {expected}");
    }

    fn aggregate_of(contributions: &[Contribution]) -> Aggregate {
        let mut a = Aggregate::default();
        for c in contributions {
            a.add(c);
        }
        a
    }

    #[test]
    fn empty_aggregate_has_no_ratios() {
        let m = Metrics::from_aggregate(&Aggregate::default());
        assert_eq!(m, Metrics::default());
        // The first names are the counts, the rest ratios.
        let (counts, ratios) = Metrics::NAMES.split_at(Metrics::COUNTS.len());
        assert_eq!(counts, Metrics::COUNTS);
        for name in counts {
            assert_eq!(m.get(name), Some(0.0), "{name}");
        }
        for name in ratios {
            assert_eq!(m.get(name), None, "{name}");
        }
        assert_eq!(m.get("interactions"), Some(0.0));
        assert_eq!(m.get("nps"), None);
    }

    #[test]
    fn nps_and_margin_by_hand() {
        // 5 promoters, 3 passives, 2 detractors.
        let scores = [10, 9, 9, 10, 9, 7, 8, 7, 6, 0];
        let cs: Vec<_> = scores
            .iter()
            .map(|s| Contribution {
                nps: Some(*s),
                ..Contribution::default()
            })
            .collect();
        let m = Metrics::from_aggregate(&aggregate_of(&cs));
        assert_eq!((m.promoters, m.passives, m.detractors), (5, 3, 2));
        assert_eq!(m.nps_responses, 10);
        close(m.nps, 30.0);
        // p = 0.5, d = 0.2: variance = 0.7 − 0.09 = 0.61;
        // margin = 1.96 × sqrt(0.061) × 100 = 1.96 × 0.24698178... × 100 = 48.408429...
        close(m.nps_margin_95, 48.408_429_018_095_6);
        close(m.get("nps"), 30.0);
    }

    #[test]
    fn nps_extremes_and_small_samples() {
        let one = |s: u8| Contribution {
            nps: Some(s),
            ..Contribution::default()
        };
        let m = Metrics::from_aggregate(&aggregate_of(&[one(10)]));
        close(m.nps, 100.0);
        assert_eq!(m.nps_margin_95, None, "one response has no spread");

        let m = Metrics::from_aggregate(&aggregate_of(&[one(3), one(5)]));
        close(m.nps, -100.0);
        close(m.nps_margin_95, 0.0);

        // One promoter, one detractor: p = d = 0.5, variance 1,
        // margin = 1.96 × sqrt(1/2) × 100.
        let m = Metrics::from_aggregate(&aggregate_of(&[one(9), one(6)]));
        close(m.nps, 0.0);
        close(m.nps_margin_95, 1.96 * 0.5f64.sqrt() * 100.0);
    }

    #[test]
    fn other_formulas_by_hand() {
        let cs = [
            Contribution {
                csat: Some(5),
                ces: Some(7),
                sentiment: Some(0.5),
                transfers: Some(0),
                resolved: Some(true),
                ..Contribution::default()
            },
            Contribution {
                csat: Some(4),
                ces: Some(4),
                sentiment: Some(-0.25),
                transfers: Some(3),
                resolved: Some(false),
                ..Contribution::default()
            },
            Contribution {
                csat: Some(2),
                ces: Some(1),
                sentiment: Some(0.1),
                transfers: Some(1),
                resolved: Some(true),
                ..Contribution::default()
            },
            Contribution {
                csat: Some(3),
                ..Contribution::default()
            },
        ];
        let m = Metrics::from_aggregate(&aggregate_of(&cs));
        assert_eq!(m.interactions, 4);
        assert_eq!(
            (m.nps_responses, m.csat_responses, m.ces_responses),
            (0, 4, 3)
        );
        assert_eq!(m.nps, None);
        assert_eq!(m.nps_margin_95, None);
        close(m.csat_pct, 50.0); // 5 and 4 of 5, 4, 2, 3
        close(m.ces_avg, 4.0); // (7 + 4 + 1) / 3
        close(m.easy_pct, 100.0 / 3.0); // only the 7
        close(m.sentiment_avg, 0.35 / 3.0);
        close(m.transfers_avg, 4.0 / 3.0);
        close(m.fcr_pct, 200.0 / 3.0);
        let (counts, ratios) = Metrics::NAMES.split_at(Metrics::COUNTS.len());
        for name in counts.iter().chain(&ratios[2..]) {
            assert!(m.get(name).is_some(), "{name}");
        }
        assert_eq!(m.get("bogus"), None);
    }

    #[test]
    fn every_name_is_answered() {
        // NAMES are distinct and get() answers each of them once every
        // counter is populated.
        let a = Aggregate {
            interactions: 3,
            nps_responses: 3,
            promoters: 1,
            passives: 1,
            detractors: 1,
            csat_responses: 1,
            csat_satisfied: 1,
            ces_responses: 1,
            ces_sum: 5,
            ces_easy: 1,
            sentiment_responses: 1,
            sentiment_micros_sum: 1,
            transfers_responses: 1,
            transfers_sum: 1,
            fcr_responses: 1,
            fcr_resolved: 1,
        };
        let m = Metrics::from_aggregate(&a);
        let mut names = Metrics::NAMES.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Metrics::NAMES.len());
        for name in Metrics::NAMES {
            assert!(m.get(name).is_some(), "{name}");
        }
    }
}

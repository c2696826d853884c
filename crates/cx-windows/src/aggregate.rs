//! What one interaction adds to a bucket, and the counters buckets hold.

use std::iter::Sum;

/// Fixed-point scale of summed sentiment: micro-units.
///
/// Sentiment is a float, but bucket sums must be exact and order-independent
/// (and addable as integers inside Redis), so each value is rounded to 1e-6 before summing; a
/// mean is then off the float mean by at most 5e-7.
pub const SENTIMENT_MICROS_PER_UNIT: f64 = 1_000_000.0;

/// A sentiment score as summed: `round(clamp(s, -1, 1) × 1e6)`, or `None`
/// for a non-finite value (not counted as a response).
///
/// Clamping absorbs a model's float noise just past ±1 rather than dropping
/// the response.
pub fn sentiment_to_micros(s: f64) -> Option<i64> {
    if !s.is_finite() {
        return None;
    }
    // In range after the clamp, so the cast cannot saturate.
    Some((s.clamp(-1.0, 1.0) * SENTIMENT_MICROS_PER_UNIT).round() as i64)
}

/// What one interaction adds to every bucket it falls in. Built by scoring
/// from a scored interaction.
///
/// Scores are expected in their contract ranges (validated at ingest). A
/// value outside its range is not counted as a response rather than guessed
/// into a bucket; the interaction itself still counts.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Contribution {
    /// NPS, 0–10.
    pub nps: Option<u8>,
    /// CSAT, 1–5.
    pub csat: Option<u8>,
    /// CES 2.0, 1–7.
    pub ces: Option<u8>,
    /// Sentiment of the verbatim, −1..1.
    pub sentiment: Option<f64>,
    pub transfers: Option<u32>,
    /// First-contact resolution.
    pub resolved: Option<bool>,
}

/// Additive counters of a bucket (and of a sum of buckets).
///
/// All integers so sums are exact and can be added inside Redis.
/// Sentiment is summed in fixed point: micro-units (see
/// [`sentiment_to_micros`]). Sums saturate instead of overflowing, which no
/// real traffic reaches but which keeps corrupt stored values from panicking.
///
/// Stored in this order (see [`Aggregate::counters`]):
///
/// | # | counter |
/// |---|---|
/// | 0 | `interactions` |
/// | 1 | `nps_responses` |
/// | 2 | `promoters` (NPS 9–10) |
/// | 3 | `passives` (NPS 7–8) |
/// | 4 | `detractors` (NPS 0–6) |
/// | 5 | `csat_responses` |
/// | 6 | `csat_satisfied` (CSAT 4–5) |
/// | 7 | `ces_responses` |
/// | 8 | `ces_sum` (sum of raw CES 1–7) |
/// | 9 | `ces_easy` (CES 5–7) |
/// | 10 | `sentiment_responses` |
/// | 11 | `sentiment_micros_sum` (may be negative) |
/// | 12 | `transfers_responses` |
/// | 13 | `transfers_sum` |
/// | 14 | `fcr_responses` |
/// | 15 | `fcr_resolved` |
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Aggregate {
    pub interactions: u64,
    pub nps_responses: u64,
    pub promoters: u64,
    pub passives: u64,
    pub detractors: u64,
    pub csat_responses: u64,
    pub csat_satisfied: u64,
    pub ces_responses: u64,
    pub ces_sum: u64,
    pub ces_easy: u64,
    pub sentiment_responses: u64,
    pub sentiment_micros_sum: i64,
    pub transfers_responses: u64,
    pub transfers_sum: u64,
    pub fcr_responses: u64,
    pub fcr_resolved: u64,
}

impl Aggregate {
    /// The counters of a single interaction.
    pub fn of(c: &Contribution) -> Aggregate {
        Aggregate::single(c)
    }

    /// True when nothing was counted.
    pub fn is_empty(&self) -> bool {
        *self == Aggregate::default()
    }

    /// Counts one interaction.
    pub fn add(&mut self, c: &Contribution) {
        self.merge(&Aggregate::single(c));
    }

    /// Adds `other`'s counters to these (a sum of buckets).
    pub fn merge(&mut self, other: &Aggregate) {
        self.interactions = self.interactions.saturating_add(other.interactions);
        self.nps_responses = self.nps_responses.saturating_add(other.nps_responses);
        self.promoters = self.promoters.saturating_add(other.promoters);
        self.passives = self.passives.saturating_add(other.passives);
        self.detractors = self.detractors.saturating_add(other.detractors);
        self.csat_responses = self.csat_responses.saturating_add(other.csat_responses);
        self.csat_satisfied = self.csat_satisfied.saturating_add(other.csat_satisfied);
        self.ces_responses = self.ces_responses.saturating_add(other.ces_responses);
        self.ces_sum = self.ces_sum.saturating_add(other.ces_sum);
        self.ces_easy = self.ces_easy.saturating_add(other.ces_easy);
        self.sentiment_responses = self
            .sentiment_responses
            .saturating_add(other.sentiment_responses);
        self.sentiment_micros_sum = self
            .sentiment_micros_sum
            .saturating_add(other.sentiment_micros_sum);
        self.transfers_responses = self
            .transfers_responses
            .saturating_add(other.transfers_responses);
        self.transfers_sum = self.transfers_sum.saturating_add(other.transfers_sum);
        self.fcr_responses = self.fcr_responses.saturating_add(other.fcr_responses);
        self.fcr_resolved = self.fcr_resolved.saturating_add(other.fcr_resolved);
    }

    /// The inverse of [`Aggregate::counters`]. A negative value for an
    /// unsigned counter (only a corrupt or hand-edited bucket has one) reads
    /// as zero.
    pub fn from_counters(counters: [i64; 16]) -> Aggregate {
        let u = |v: i64| u64::try_from(v).unwrap_or(0);
        let [n, nr, pr, pa, de, cr, cs, er, es, ee, sr, ss, tr, ts, fr, fx] = counters;
        Aggregate {
            interactions: u(n),
            nps_responses: u(nr),
            promoters: u(pr),
            passives: u(pa),
            detractors: u(de),
            csat_responses: u(cr),
            csat_satisfied: u(cs),
            ces_responses: u(er),
            ces_sum: u(es),
            ces_easy: u(ee),
            sentiment_responses: u(sr),
            sentiment_micros_sum: ss,
            transfers_responses: u(tr),
            transfers_sum: u(ts),
            fcr_responses: u(fr),
            fcr_resolved: u(fx),
        }
    }

    /// Every counter as stored, in the order of the table on [`Aggregate`]:
    /// the packed bucket layout. Counters above `i64::MAX` (unreachable in
    /// practice) are stored as `i64::MAX`.
    pub fn counters(&self) -> [i64; 16] {
        let s = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        [
            s(self.interactions),
            s(self.nps_responses),
            s(self.promoters),
            s(self.passives),
            s(self.detractors),
            s(self.csat_responses),
            s(self.csat_satisfied),
            s(self.ces_responses),
            s(self.ces_sum),
            s(self.ces_easy),
            s(self.sentiment_responses),
            self.sentiment_micros_sum,
            s(self.transfers_responses),
            s(self.transfers_sum),
            s(self.fcr_responses),
            s(self.fcr_resolved),
        ]
    }

    /// The counters of one interaction; [`Aggregate::add`] merges these so
    /// that adding and merging cannot disagree.
    fn single(c: &Contribution) -> Aggregate {
        let mut a = Aggregate {
            interactions: 1,
            ..Aggregate::default()
        };
        if let Some(nps) = c.nps.filter(|v| *v <= 10) {
            a.nps_responses = 1;
            match nps {
                9..=10 => a.promoters = 1,
                7..=8 => a.passives = 1,
                _ => a.detractors = 1,
            }
        }
        if let Some(csat) = c.csat.filter(|v| (1..=5).contains(v)) {
            a.csat_responses = 1;
            a.csat_satisfied = u64::from(csat >= 4);
        }
        if let Some(ces) = c.ces.filter(|v| (1..=7).contains(v)) {
            a.ces_responses = 1;
            a.ces_sum = u64::from(ces);
            a.ces_easy = u64::from(ces >= 5);
        }
        if let Some(micros) = c.sentiment.and_then(sentiment_to_micros) {
            a.sentiment_responses = 1;
            a.sentiment_micros_sum = micros;
        }
        if let Some(transfers) = c.transfers {
            a.transfers_responses = 1;
            a.transfers_sum = u64::from(transfers);
        }
        if let Some(resolved) = c.resolved {
            a.fcr_responses = 1;
            a.fcr_resolved = u64::from(resolved);
        }
        a
    }
}

impl From<&Contribution> for Aggregate {
    fn from(c: &Contribution) -> Aggregate {
        Aggregate::of(c)
    }
}

impl Sum for Aggregate {
    fn sum<I: Iterator<Item = Aggregate>>(iter: I) -> Aggregate {
        iter.fold(Aggregate::default(), |mut acc, a| {
            acc.merge(&a);
            acc
        })
    }
}

impl<'a> Sum<&'a Aggregate> for Aggregate {
    fn sum<I: Iterator<Item = &'a Aggregate>>(iter: I) -> Aggregate {
        iter.fold(Aggregate::default(), |mut acc, a| {
            acc.merge(a);
            acc
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nps(v: u8) -> Contribution {
        Contribution {
            nps: Some(v),
            ..Contribution::default()
        }
    }

    #[test]
    fn nps_buckets_follow_the_contract() {
        for v in 0..=10u8 {
            let a = Aggregate::of(&nps(v));
            assert_eq!(a.nps_responses, 1);
            let expect = match v {
                0..=6 => (0, 0, 1),
                7 | 8 => (0, 1, 0),
                _ => (1, 0, 0),
            };
            assert_eq!((a.promoters, a.passives, a.detractors), expect, "nps {v}");
        }
    }

    #[test]
    fn csat_and_ces_buckets_follow_the_contract() {
        for v in 1..=5u8 {
            let a = Aggregate::of(&Contribution {
                csat: Some(v),
                ..Contribution::default()
            });
            assert_eq!(a.csat_responses, 1);
            assert_eq!(a.csat_satisfied, u64::from(v >= 4), "csat {v}");
        }
        for v in 1..=7u8 {
            let a = Aggregate::of(&Contribution {
                ces: Some(v),
                ..Contribution::default()
            });
            assert_eq!(a.ces_responses, 1);
            assert_eq!(a.ces_sum, u64::from(v));
            assert_eq!(a.ces_easy, u64::from(v >= 5), "ces {v}");
        }
    }

    #[test]
    fn out_of_range_scores_are_not_responses() {
        let c = Contribution {
            nps: Some(11),
            csat: Some(0),
            ces: Some(8),
            sentiment: Some(f64::NAN),
            ..Contribution::default()
        };
        let a = Aggregate::of(&c);
        assert_eq!(
            a,
            Aggregate {
                interactions: 1,
                ..Aggregate::default()
            }
        );
        assert_eq!(
            Aggregate::of(&Contribution { csat: Some(6), ..c }).csat_responses,
            0
        );
        assert_eq!(
            Aggregate::of(&Contribution { ces: Some(0), ..c }).ces_responses,
            0
        );
    }

    #[test]
    fn sentiment_is_fixed_point_and_clamped() {
        assert_eq!(sentiment_to_micros(0.25), Some(250_000));
        assert_eq!(sentiment_to_micros(-0.123_456_7), Some(-123_457));
        assert_eq!(sentiment_to_micros(1.000_001), Some(1_000_000));
        assert_eq!(sentiment_to_micros(-7.0), Some(-1_000_000));
        assert_eq!(sentiment_to_micros(f64::INFINITY), None);
        assert_eq!(sentiment_to_micros(f64::NAN), None);
    }

    #[test]
    fn every_counter_has_its_own_position() {
        for i in 0..16 {
            let unit: [i64; 16] = std::array::from_fn(|j| i64::from(i == j));
            assert_eq!(
                Aggregate::from_counters(unit).counters(),
                unit,
                "position {i}"
            );
        }
    }

    #[test]
    fn counters_round_trip() {
        let a = Aggregate {
            interactions: 10,
            nps_responses: 9,
            promoters: 2,
            passives: 3,
            detractors: 4,
            csat_responses: 5,
            csat_satisfied: 6,
            ces_responses: 7,
            ces_sum: 8,
            ces_easy: 0,
            sentiment_responses: 11,
            sentiment_micros_sum: -12,
            transfers_responses: 13,
            transfers_sum: 14,
            fcr_responses: 15,
            fcr_resolved: 16,
        };
        let counters = a.counters();
        assert_eq!(counters[11], -12, "sentiment_micros_sum");
        assert_eq!(counters[15], 16, "fcr_resolved");
        assert_eq!(Aggregate::from_counters(counters), a);
        assert_eq!(Aggregate::default().counters(), [0; 16]);

        let counters: [i64; 16] = std::array::from_fn(|i| i as i64 * 3 - 5);
        // Negative unsigned counters read as zero; the sentiment sum is signed.
        let expected: [i64; 16] = std::array::from_fn(|i| {
            if i == 11 {
                counters[i]
            } else {
                counters[i].max(0)
            }
        });
        assert_eq!(Aggregate::from_counters(counters).counters(), expected);
    }

    #[test]
    fn from_counters_reads_negative_unsigned_counts_as_zero() {
        let mut counters = [0i64; 16];
        counters[0] = 4;
        counters[2] = -2;
        counters[11] = -5;
        assert_eq!(
            Aggregate::from_counters(counters),
            Aggregate {
                interactions: 4,
                sentiment_micros_sum: -5,
                ..Aggregate::default()
            }
        );
    }

    #[test]
    fn huge_counters_saturate() {
        let mut a = Aggregate {
            interactions: u64::MAX,
            sentiment_micros_sum: i64::MIN,
            ..Aggregate::default()
        };
        a.add(&Contribution {
            sentiment: Some(-1.0),
            ..Contribution::default()
        });
        assert_eq!(a.interactions, u64::MAX);
        assert_eq!(a.sentiment_micros_sum, i64::MIN);
        assert_eq!(a.counters()[0], i64::MAX);
    }

    #[test]
    fn sums_of_buckets() {
        let buckets = [Aggregate::of(&nps(10)), Aggregate::of(&nps(0))];
        let by_ref: Aggregate = buckets.iter().sum();
        let by_value: Aggregate = buckets.into_iter().sum();
        assert_eq!(by_ref, by_value);
        assert_eq!(
            (by_ref.interactions, by_ref.promoters, by_ref.detractors),
            (2, 1, 1)
        );
        assert!(Aggregate::default().is_empty());
        assert!(!by_ref.is_empty());
    }
}

//! The standard survey scores (contract, "Scores"): NPS 0–10, CSAT 1–5,
//! CES 2.0 1–7, their buckets, and what makes an interaction a detractor.

use serde::{Deserialize, Serialize};

/// A score outside its scale. Displays as the field-violation description.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be between {min} and {max}")]
pub struct ScoreError {
    pub value: i64,
    pub min: u8,
    pub max: u8,
}

/// Defines a validated `u8` score newtype; the three scores differ only in range.
macro_rules! score_type {
    ($(#[$doc:meta])* $name:ident, $min:literal, $max:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "i64", into = "u8")]
        pub struct $name(u8);

        impl $name {
            pub const MIN: u8 = $min;
            pub const MAX: u8 = $max;

            pub fn new(value: i64) -> Result<Self, ScoreError> {
                match u8::try_from(value) {
                    Ok(v) if (Self::MIN..=Self::MAX).contains(&v) => Ok(Self(v)),
                    _ => Err(ScoreError {
                        value,
                        min: Self::MIN,
                        max: Self::MAX,
                    }),
                }
            }

            pub fn get(self) -> u8 {
                self.0
            }
        }

        impl TryFrom<i64> for $name {
            type Error = ScoreError;

            fn try_from(value: i64) -> Result<Self, ScoreError> {
                Self::new(value)
            }
        }

        impl From<$name> for u8 {
            fn from(score: $name) -> u8 {
                score.0
            }
        }
    };
}

score_type!(
    /// Net Promoter Score answer ("how likely to recommend"), 0–10.
    Nps, 0, 10
);
score_type!(
    /// Customer satisfaction answer, 1–5.
    Csat, 1, 5
);
score_type!(
    /// Customer Effort Score 2.0 answer ("made it easy"), 1–7.
    Ces, 1, 7
);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NpsBucket {
    Promoter,
    Passive,
    Detractor,
}

impl NpsBucket {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Promoter => "promoter",
            Self::Passive => "passive",
            Self::Detractor => "detractor",
        }
    }
}

impl Nps {
    /// 9–10 promoter, 7–8 passive, 0–6 detractor.
    pub fn bucket(self) -> NpsBucket {
        match self.0 {
            9..=10 => NpsBucket::Promoter,
            7..=8 => NpsBucket::Passive,
            _ => NpsBucket::Detractor,
        }
    }
}

impl Csat {
    /// 4–5 counts as satisfied for CSAT%.
    pub fn is_satisfied(self) -> bool {
        self.0 >= 4
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CesBucket {
    Easy,
    Neutral,
    Hard,
}

impl CesBucket {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Easy => "easy",
            Self::Neutral => "neutral",
            Self::Hard => "hard",
        }
    }
}

impl Ces {
    /// 5–7 easy, 4 neutral, 1–3 hard.
    pub fn bucket(self) -> CesBucket {
        match self.0 {
            5..=7 => CesBucket::Easy,
            4 => CesBucket::Neutral,
            _ => CesBucket::Hard,
        }
    }
}

/// When an interaction counts as a detractor: any given score at or below its
/// maximum. Defaults follow the contract (NPS ≤ 6, CSAT ≤ 2, CES ≤ 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetractorThresholds {
    pub nps_max: u8,
    pub csat_max: u8,
    pub ces_max: u8,
}

impl Default for DetractorThresholds {
    fn default() -> Self {
        Self {
            nps_max: 6,
            csat_max: 2,
            ces_max: 2,
        }
    }
}

impl DetractorThresholds {
    /// True when any score that is present is at or below its threshold; an
    /// interaction without scores is never a detractor.
    pub fn is_detractor(&self, nps: Option<Nps>, csat: Option<Csat>, ces: Option<Ces>) -> bool {
        nps.is_some_and(|s| s.get() <= self.nps_max)
            || csat.is_some_and(|s| s.get() <= self.csat_max)
            || ces.is_some_and(|s| s.get() <= self.ces_max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_enforced_at_both_ends() {
        assert_eq!(Nps::new(0).unwrap().get(), 0);
        assert_eq!(Nps::new(10).unwrap().get(), 10);
        assert!(Nps::new(-1).is_err());
        assert!(Nps::new(11).is_err());
        assert_eq!(Csat::new(1).unwrap().get(), 1);
        assert_eq!(Csat::new(5).unwrap().get(), 5);
        assert!(Csat::new(0).is_err());
        assert!(Csat::new(6).is_err());
        assert_eq!(Ces::new(1).unwrap().get(), 1);
        assert_eq!(Ces::new(7).unwrap().get(), 7);
        assert!(Ces::new(0).is_err());
        assert!(Ces::new(8).is_err());
        // Values that would wrap when narrowed must not sneak through.
        assert!(Nps::new(256).is_err());
        assert!(Nps::new(i64::MIN).is_err());
    }

    #[test]
    fn score_error_reads_as_a_description() {
        assert_eq!(
            Nps::new(11).unwrap_err().to_string(),
            "must be between 0 and 10"
        );
        assert_eq!(
            Csat::new(0).unwrap_err().to_string(),
            "must be between 1 and 5"
        );
        assert_eq!(
            Ces::new(8).unwrap_err().to_string(),
            "must be between 1 and 7"
        );
    }

    #[test]
    fn nps_buckets_at_every_boundary() {
        let bucket = |v| Nps::new(v).unwrap().bucket();
        for v in 0..=6 {
            assert_eq!(bucket(v), NpsBucket::Detractor, "nps {v}");
        }
        for v in 7..=8 {
            assert_eq!(bucket(v), NpsBucket::Passive, "nps {v}");
        }
        for v in 9..=10 {
            assert_eq!(bucket(v), NpsBucket::Promoter, "nps {v}");
        }
    }

    #[test]
    fn csat_satisfied_at_every_value() {
        let satisfied: Vec<bool> = (1..=5)
            .map(|v| Csat::new(v).unwrap().is_satisfied())
            .collect();
        assert_eq!(satisfied, [false, false, false, true, true]);
    }

    #[test]
    fn ces_buckets_at_every_boundary() {
        let buckets: Vec<CesBucket> = (1..=7).map(|v| Ces::new(v).unwrap().bucket()).collect();
        use CesBucket::*;
        assert_eq!(buckets, [Hard, Hard, Hard, Neutral, Easy, Easy, Easy]);
    }

    #[test]
    fn default_detractor_thresholds_follow_the_contract() {
        let t = DetractorThresholds::default();
        assert_eq!((t.nps_max, t.csat_max, t.ces_max), (6, 2, 2));
        let nps = |v| Some(Nps::new(v).unwrap());
        let csat = |v| Some(Csat::new(v).unwrap());
        let ces = |v| Some(Ces::new(v).unwrap());
        assert!(t.is_detractor(nps(6), None, None));
        assert!(!t.is_detractor(nps(7), None, None));
        assert!(t.is_detractor(None, csat(2), None));
        assert!(!t.is_detractor(None, csat(3), None));
        assert!(t.is_detractor(None, None, ces(2)));
        assert!(!t.is_detractor(None, None, ces(3)));
        assert!(!t.is_detractor(None, None, None));
        // One low score is enough even when the others are good.
        assert!(t.is_detractor(nps(10), csat(5), ces(1)));
        assert!(!t.is_detractor(nps(9), csat(4), ces(5)));
    }

    #[test]
    fn custom_detractor_thresholds() {
        let t = DetractorThresholds {
            nps_max: 4,
            csat_max: 3,
            ces_max: 0,
        };
        assert!(t.is_detractor(Some(Nps::new(4).unwrap()), None, None));
        assert!(!t.is_detractor(Some(Nps::new(5).unwrap()), None, None));
        assert!(t.is_detractor(None, Some(Csat::new(3).unwrap()), None));
        // A zero maximum disables the CES rule: no CES answer is that low.
        assert!(!t.is_detractor(None, None, Some(Ces::new(1).unwrap())));
    }

    #[test]
    fn thresholds_deserialize_with_defaults_for_missing_fields() {
        let t: DetractorThresholds = serde_json::from_str(r#"{"nps_max": 5}"#).unwrap();
        assert_eq!(
            t,
            DetractorThresholds {
                nps_max: 5,
                ..DetractorThresholds::default()
            }
        );
        // A misspelt key is a configuration mistake, not something to ignore.
        assert!(serde_json::from_str::<DetractorThresholds>(r#"{"nps_mx": 5}"#).is_err());
    }

    #[test]
    fn scores_serialize_as_plain_numbers_and_validate_on_the_way_in() {
        assert_eq!(serde_json::to_string(&Nps::new(9).unwrap()).unwrap(), "9");
        assert_eq!(serde_json::from_str::<Csat>("4").unwrap().get(), 4);
        assert!(serde_json::from_str::<Csat>("9").is_err());
        assert_eq!(
            serde_json::to_string(&NpsBucket::Promoter).unwrap(),
            "\"promoter\""
        );
    }
}

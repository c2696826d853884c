//! Windows and their buckets.
//!
//! Time is unix seconds of *event* time (`occurred_at`), as `i64` so times
//! before 1970 work too. Bucket `b` of a window holds the event times
//! `[b × bucket_s, (b + 1) × bucket_s)`; bucket indices are global (bucket 0
//! starts at the epoch), so every service agrees on them without
//! coordination.

use std::fmt;
use std::ops::{Range, RangeInclusive};

use serde::{Deserialize, Serialize};

/// How many buckets make up one window. The contract asks for a resolution of
/// at most 1/60 of the window; exactly 1/60 keeps the number of buckets a
/// query reads (and so its cost) the same for every window.
pub const BUCKETS_PER_WINDOW: i64 = 60;

/// The contract's windows: 15m, 1h, 24h, 7d, sliding, by event time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Window {
    #[serde(rename = "15m")]
    M15,
    #[serde(rename = "1h")]
    H1,
    #[serde(rename = "24h")]
    H24,
    #[serde(rename = "7d")]
    D7,
}

impl Window {
    /// Every window, shortest first.
    pub const ALL: [Window; 4] = [Window::M15, Window::H1, Window::H24, Window::D7];

    /// The contract name: `15m`, `1h`, `24h` or `7d`.
    pub fn as_str(self) -> &'static str {
        match self {
            Window::M15 => "15m",
            Window::H1 => "1h",
            Window::H24 => "24h",
            Window::D7 => "7d",
        }
    }

    /// The window named `s` (exact contract name), if any.
    pub fn parse(s: &str) -> Option<Window> {
        Window::ALL.into_iter().find(|w| w.as_str() == s)
    }

    /// The window's length in seconds.
    pub fn length_s(self) -> i64 {
        match self {
            Window::M15 => 15 * 60,
            Window::H1 => 60 * 60,
            Window::H24 => 24 * 60 * 60,
            Window::D7 => 7 * 24 * 60 * 60,
        }
    }

    /// Bucket width: exactly length/60 (15 s, 60 s, 24 min, 168 min) — the
    /// contract's "resolution at most 1/60 of the window".
    pub fn bucket_s(self) -> i64 {
        // Every length is a multiple of 60, so this division is exact.
        self.length_s() / BUCKETS_PER_WINDOW
    }

    /// The bucket index holding event time `t` (unix seconds, may be
    /// negative): `floor(t / bucket_s)`.
    ///
    /// Flooring (not truncating toward zero) keeps every bucket the same
    /// width on both sides of the epoch.
    pub fn bucket_of(self, t_unix_s: i64) -> i64 {
        t_unix_s.div_euclid(self.bucket_s())
    }

    /// First event time (inclusive) of `bucket`.
    ///
    /// Saturates instead of overflowing for indices no real time maps to.
    pub fn start_of(self, bucket: i64) -> i64 {
        bucket.saturating_mul(self.bucket_s())
    }

    /// End (exclusive) of `bucket`: the start of the next one.
    pub fn end_of(self, bucket: i64) -> i64 {
        self.start_of(bucket).saturating_add(self.bucket_s())
    }

    /// Bucket indices a query "window ending at `now`" sums: the 60 full
    /// buckets ending with the bucket containing `now`, i.e.
    /// `bucket_of(now) - 59 ..= bucket_of(now)`.
    ///
    /// Exactly the events with time in
    /// `[start_of(bucket_of(now) - 59), end_of(bucket_of(now)))` are counted
    /// (see [`Window::query_span`]): a span of exactly `length_s`, aligned to
    /// buckets. The window therefore slides one bucket at a time: it reaches
    /// back between `length_s - bucket_s` (when `now` is at the start of its
    /// bucket) and just under `length_s` (when `now` is at the end of its
    /// bucket) before `now`, and it also holds the rest of the current bucket
    /// after `now` (events up to a bucket ahead of `now`, which only happens
    /// for event times in the future).
    pub fn query_buckets(self, now_unix_s: i64) -> RangeInclusive<i64> {
        let last = self.bucket_of(now_unix_s);
        // Cannot overflow: |bucket_of(t)| <= |t| / 15, far from i64::MIN.
        (last - (BUCKETS_PER_WINDOW - 1))..=last
    }

    /// The event times a query at `now` counts:
    /// `[start_of(first query bucket), end_of(last query bucket))`.
    pub fn query_span(self, now_unix_s: i64) -> Range<i64> {
        let buckets = self.query_buckets(now_unix_s);
        self.start_of(*buckets.start())..self.end_of(*buckets.end())
    }

    /// How long a bucket must be kept (TTL), counted from the bucket's start:
    /// `length + 2 buckets`.
    ///
    /// A bucket `b` is last summed by a query whose `now` lies in bucket
    /// `b + 59`, i.e. before `start_of(b) + length_s`; the two extra buckets
    /// are a margin for clock skew between the services and Redis and for a
    /// query in flight while the bucket expires.
    pub fn retention_s(self) -> i64 {
        self.length_s() + 2 * self.bucket_s()
    }

    /// Absolute expiry (unix seconds, for Redis `EXPIREAT`) of `bucket`:
    /// `start_of(bucket) + retention_s()`.
    ///
    /// Anchored on the bucket rather than on the time of the write, so a
    /// bucket written early (an event up to 5 minutes in the future) or late
    /// (an event delivered long after it happened) lives exactly as long as
    /// queries can need it. A result at or before the current time means the
    /// event is already outside every window and the write can be skipped.
    pub fn expires_at_s(self, bucket: i64) -> i64 {
        self.start_of(bucket).saturating_add(self.retention_s())
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for w in Window::ALL {
            assert_eq!(Window::parse(w.as_str()), Some(w));
            assert_eq!(w.to_string(), w.as_str());
        }
        assert_eq!(Window::parse("15M"), None);
        assert_eq!(Window::parse("30m"), None);
        assert_eq!(Window::parse(""), None);
    }

    #[test]
    fn lengths_and_bucket_widths() {
        let expect = [
            (Window::M15, 900, 15),
            (Window::H1, 3_600, 60),
            (Window::H24, 86_400, 24 * 60),
            (Window::D7, 604_800, 168 * 60),
        ];
        for (w, length, bucket) in expect {
            assert_eq!(w.length_s(), length, "{w}");
            assert_eq!(w.bucket_s(), bucket, "{w}");
        }
    }

    #[test]
    fn resolution_is_one_sixtieth_of_the_window() {
        for w in Window::ALL {
            assert_eq!(w.bucket_s() * 60, w.length_s(), "{w}");
            assert!(w.bucket_s() <= w.length_s() / 60, "{w}");
        }
    }

    #[test]
    fn bucket_of_floors_for_negative_times_and_boundaries() {
        let w = Window::M15; // 15 s buckets
        assert_eq!(w.bucket_of(0), 0);
        assert_eq!(w.bucket_of(14), 0);
        assert_eq!(w.bucket_of(15), 1);
        assert_eq!(w.bucket_of(29), 1);
        assert_eq!(w.bucket_of(30), 2);
        assert_eq!(w.bucket_of(-1), -1);
        assert_eq!(w.bucket_of(-15), -1);
        assert_eq!(w.bucket_of(-16), -2);
        assert_eq!(w.bucket_of(-30), -2);
        assert_eq!(w.bucket_of(-31), -3);

        let d = Window::D7; // 10 080 s buckets
        assert_eq!(d.bucket_of(10_079), 0);
        assert_eq!(d.bucket_of(10_080), 1);
        assert_eq!(d.bucket_of(-10_080), -1);
        assert_eq!(d.bucket_of(-10_081), -2);
    }

    #[test]
    fn bucket_bounds_contain_their_times() {
        for w in Window::ALL {
            for t in [
                -1_000_001,
                -w.bucket_s(),
                -1,
                0,
                1,
                w.bucket_s() - 1,
                1_700_000_000,
            ] {
                let b = w.bucket_of(t);
                assert!(w.start_of(b) <= t && t < w.end_of(b), "{w} t={t}");
                assert_eq!(w.end_of(b) - w.start_of(b), w.bucket_s());
            }
        }
    }

    #[test]
    fn query_buckets_are_the_sixty_ending_at_now() {
        let w = Window::H1; // 60 s buckets
        let now = 1_700_000_030; // bucket 28_333_333, 30 s into it
        assert_eq!(w.bucket_of(now), 28_333_333);
        let q = w.query_buckets(now);
        assert_eq!(q, 28_333_274..=28_333_333);
        assert_eq!(q.clone().count(), 60);
        assert_eq!(w.query_span(now), 1_699_996_440..1_700_000_040);

        // At the very start of a bucket, the window reaches back length - bucket.
        let at_start = 1_700_000_040;
        let span = w.query_span(at_start);
        assert_eq!(at_start - span.start, w.length_s() - w.bucket_s());
        // At its last second, it reaches back length - 1.
        let at_end = 1_700_000_099;
        let span = w.query_span(at_end);
        assert_eq!(at_end - span.start, w.length_s() - 1);

        // Negative times: bucket -1 holds [-60, 0).
        assert_eq!(w.query_buckets(-1), -60..=-1);
        assert_eq!(w.query_span(-1), -3_600..0);
        assert_eq!(w.query_buckets(0), -59..=0);
    }

    #[test]
    fn query_slides_one_bucket_at_a_time() {
        for w in Window::ALL {
            let now = 1_700_000_000;
            let a = w.query_buckets(now);
            let b = w.query_buckets(now + w.bucket_s());
            assert_eq!(*b.start(), a.start() + 1);
            assert_eq!(*b.end(), a.end() + 1);
        }
    }

    #[test]
    fn retention_covers_the_last_query_of_a_bucket() {
        for w in Window::ALL {
            assert_eq!(w.retention_s(), w.length_s() + 2 * w.bucket_s());
            let b = 12_345;
            // The latest `now` whose query still sums bucket b.
            let last_now = w.start_of(b) + w.length_s() - 1;
            assert!(w.query_buckets(last_now).contains(&b));
            assert!(!w.query_buckets(last_now + 1).contains(&b));
            assert!(w.expires_at_s(b) > last_now);
            assert_eq!(w.expires_at_s(b), w.start_of(b) + w.retention_s());
        }
    }

    #[test]
    fn extreme_times_do_not_panic() {
        for w in Window::ALL {
            for t in [i64::MIN, i64::MAX] {
                let q = w.query_buckets(t);
                assert_eq!(q.clone().count(), 60);
                let _ = w.query_span(t);
                let _ = w.expires_at_s(*q.end());
            }
        }
    }

    #[test]
    fn deserializes_from_contract_names() {
        use serde::de::value::{Error, StrDeserializer};
        for w in Window::ALL {
            let de = StrDeserializer::<Error>::new(w.as_str());
            assert_eq!(Window::deserialize(de).unwrap(), w);
        }
        assert!(Window::deserialize(StrDeserializer::<Error>::new("M15")).is_err());
    }
}

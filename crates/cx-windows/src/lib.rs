//! The IO-free math of cxloop's rolling windows.
//!
//! Scoring keeps one counter set per (dimension, key, window, bucket) — a
//! packed 128-byte Redis string, added to by one script per batch — and answers GetMetrics by
//! summing the 60 buckets that cover the window. This crate is the pure part
//! of that scheme, so it can be tested exhaustively without a Redis:
//!
//! - [`Window`]: the contract's windows (`15m`, `1h`, `24h`, `7d`), each cut
//!   into buckets of exactly 1/60 of its length (the contract's "resolution
//!   of at most 1/60 of the window"), which bucket an event time falls in,
//!   which buckets a query sums, and how long a bucket must be kept.
//! - [`Dimension`]: `agent`, `team`, `queue`, `channel`, `global` (key `all`).
//! - [`Contribution`] and [`Aggregate`]: what one interaction adds, and the
//!   integer counters that add up exactly, in any order and grouping.
//! - [`Metrics`]: the GetMetrics figures computed from an [`Aggregate`].
//!
//! ```
//! use cx_windows::{Aggregate, Contribution, Metrics, Window};
//! use std::collections::BTreeMap;
//!
//! // Scoring side: add each interaction to the bucket of its event time.
//! let mut buckets: BTreeMap<i64, Aggregate> = BTreeMap::new();
//! let events = [(1_700_000_000, 10), (1_700_000_100, 3), (1_699_990_000, 10)];
//! for (t, nps) in events {
//!     let c = Contribution { nps: Some(nps), ..Contribution::default() };
//!     buckets.entry(Window::H1.bucket_of(t)).or_default().add(&c);
//! }
//!
//! // Query side: sum the buckets of the window ending now.
//! let now = 1_700_000_200;
//! let sum: Aggregate = Window::H1
//!     .query_buckets(now)
//!     .filter_map(|b| buckets.get(&b))
//!     .sum();
//! let m = Metrics::from_aggregate(&sum);
//! assert_eq!(m.nps_responses, 2); // the event 10 000 s earlier is out of the hour
//! assert_eq!(m.nps, Some(0.0)); // one promoter, one detractor
//! ```
//!
//! Nothing here reads a clock: every function takes the time it needs.

#![forbid(unsafe_code)]

mod aggregate;
mod dimension;
mod metrics;
mod window;

pub use aggregate::{sentiment_to_micros, Aggregate, Contribution, SENTIMENT_MICROS_PER_UNIT};
pub use dimension::Dimension;
pub use metrics::Metrics;
pub use window::{Window, BUCKETS_PER_WINDOW};

//! IO-free analytics on interaction verbatims: VADER sentiment
//! ([`sentiment`]) and topic tags from a keyword taxonomy ([`tags`]).
//!
//! Both are pure functions of the text, safe to call from any thread, and
//! built for the per-event hot path: the lexicon and the compiled taxonomy
//! are shared read-only, and scratch buffers are per thread and reused.
#![forbid(unsafe_code)]

pub mod sentiment;
mod stem;
pub mod tags;

pub use sentiment::{label, SentimentLabel, SentimentScorer};
pub use tags::{TagMatcher, Taxonomy, TaxonomyError, Topic};

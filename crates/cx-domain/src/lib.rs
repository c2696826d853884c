//! The IO-free core of cxloop: validated interaction types, the standard score
//! definitions (NPS, CSAT, CES), input validation that reports every violated
//! field at once, and PII redaction of free text.
//!
//! Nothing here reads a clock, the environment, the network or the disk, so
//! every service can share these rules and tests stay deterministic.

#![forbid(unsafe_code)]

pub mod interaction;
pub mod redact;
pub mod score;
pub mod violation;

pub use interaction::{
    validate, validate_read, Channel, CustomerId, DimensionKey, IdError, Interaction,
    InteractionId, ParseChannelError, RawInteraction, RawTimestamp,
};
pub use redact::{luhn_valid, redact, RedactionCounts};
pub use score::{Ces, CesBucket, Csat, DetractorThresholds, Nps, NpsBucket, ScoreError};
pub use violation::FieldViolation;

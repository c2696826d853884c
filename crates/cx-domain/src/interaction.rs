//! Interactions: the raw input as received, the rules it must meet, and the
//! validated, redacted [`Interaction`].
//!
//! Rules (contract, "Interaction (the input)"); every violation is reported,
//! named by the field below:
//!
//! | field | rule | reported as |
//! |---|---|---|
//! | `interaction_id`, `customer_id` | required; 1–128 characters; no control characters; not only whitespace | the field |
//! | `occurred_at` | required; RFC 3339 (or protobuf seconds + nanos, nanos 0–999 999 999); years 0001–9999; normalised to UTC; at most 5 minutes after `now` | `occurred_at` |
//! | `channel` | required; one of `voice, chat, email, sms, web, social, in_person` (exact, lowercase) | `channel` |
//! | `agent_id`, `team_id`, `queue_id` | optional, `""` = absent; at most 128 characters; no control characters | the field |
//! | `nps` / `csat` / `ces` | optional; 0–10 / 1–5 / 1–7 | the field |
//! | `verbatim` | optional, `""` = absent; at most 8192 bytes of UTF-8, measured before redaction | `verbatim` |
//! | `handle_time_s`, `hold_time_s`, `transfers` | optional; 0–4 294 967 295 | the field |
//! | `resolved` | optional bool | `resolved` |
//! | `attributes` | at most 32 entries; keys and values at most 65 536 bytes together, measured before redaction | `attributes` |
//! | attribute key | not repeated (protobuf maps cannot repeat one; a JSON object can) | `attributes.<key>` (`attributes` for an empty key) |
//!
//! The contract bounds attributes by their number only; the total size
//! bound keeps one interaction within what a single HTTP request may carry
//! (64 KiB) whichever door it came through, and so within a Kafka record.
//!
//! Characters are counted as Unicode scalar values (`chars()`), sizes as UTF-8
//! bytes. A valid interaction has its verbatim and attribute values redacted
//! (see [`crate::redact`]) before anyone else sees it.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime, UtcOffset};

use crate::redact::{redact, RedactionCounts};
use crate::score::{Ces, Csat, DetractorThresholds, Nps};
use crate::violation::FieldViolation;

/// Longest `interaction_id` / `customer_id`, in characters.
pub const MAX_ID_CHARS: usize = 128;
/// Longest `agent_id` / `team_id` / `queue_id`, in characters.
pub const MAX_DIMENSION_KEY_CHARS: usize = 128;
/// Largest verbatim, in UTF-8 bytes (8 KiB).
pub const MAX_VERBATIM_BYTES: usize = 8192;
/// Most attribute entries.
pub const MAX_ATTRIBUTES: usize = 32;
/// Most bytes of attribute keys and values together (UTF-8): the largest
/// single HTTP request body, so gRPC and batches cannot carry more.
pub const MAX_ATTRIBUTES_BYTES: usize = 64 * 1024;
/// How far `occurred_at` may lie ahead of the receiver's clock (clock skew).
pub const MAX_FUTURE_SKEW: Duration = Duration::minutes(5);
/// 0001-01-01T00:00:00Z: the first instant a protobuf `Timestamp` can hold.
pub const MIN_UNIX_SECONDS: i64 = -62_135_596_800;
/// 9999-12-31T23:59:59Z: the last whole second a protobuf `Timestamp` can hold.
pub const MAX_UNIX_SECONDS: i64 = 253_402_300_799;

const RFC3339_HINT: &str = "must be an RFC 3339 timestamp, e.g. 2026-11-22T10:00:00Z";

/// The contact channel of an interaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Voice,
    Chat,
    Email,
    Sms,
    Web,
    Social,
    InPerson,
}

impl Channel {
    pub const ALL: [Channel; 7] = [
        Self::Voice,
        Self::Chat,
        Self::Email,
        Self::Sms,
        Self::Web,
        Self::Social,
        Self::InPerson,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Voice => "voice",
            Self::Chat => "chat",
            Self::Email => "email",
            Self::Sms => "sms",
            Self::Web => "web",
            Self::Social => "social",
            Self::InPerson => "in_person",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A channel name other than the seven exact lowercase names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be one of voice, chat, email, sms, web, social, in_person")]
pub struct ParseChannelError;

impl FromStr for Channel {
    type Err = ParseChannelError;

    /// Exact names only: "Voice" is refused so that one channel never ends up
    /// under two keys in the rolling windows.
    fn from_str(s: &str) -> Result<Self, ParseChannelError> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or(ParseChannelError)
    }
}

/// Why a string is not a valid identifier. Displays as the violation description.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {max} characters")]
    TooLong { max: usize },
    #[error("must not contain control characters")]
    ControlCharacter,
    #[error("must not be only whitespace")]
    Blank,
}

fn check_id(value: &str, max_chars: usize, reject_blank: bool) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty);
    }
    // nth() stops early instead of counting a huge string to the end.
    if value.chars().nth(max_chars).is_some() {
        return Err(IdError::TooLong { max: max_chars });
    }
    if value.chars().any(char::is_control) {
        return Err(IdError::ControlCharacter);
    }
    if reject_blank && value.chars().all(char::is_whitespace) {
        return Err(IdError::Blank);
    }
    Ok(())
}

/// A validated string identifier; the rules differ only in whether an
/// all-whitespace value is allowed.
macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, max = $max:expr, reject_blank = $reject_blank:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                check_id(&value, $max, $reject_blank)?;
                Ok(Self(value))
            }

            /// [`Self::parse`]'s rules on a borrowed value, without copying it.
            pub fn check(value: &str) -> Result<(), IdError> {
                check_id(value, $max, $reject_blank)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_inner(self) -> String {
                self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;

            fn try_from(value: String) -> Result<Self, IdError> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
    };
}

string_id!(
    /// The idempotency key of an interaction.
    InteractionId, max = MAX_ID_CHARS, reject_blank = true
);
string_id!(
    /// The customer an interaction belongs to (also the Kafka key).
    CustomerId, max = MAX_ID_CHARS, reject_blank = true
);
string_id!(
    /// A rolling-window key: an agent, team or queue id (or `all`, a channel name).
    DimensionKey, max = MAX_DIMENSION_KEY_CHARS, reject_blank = false
);

/// A timestamp as received: RFC 3339 text (JSON) or seconds + nanos (protobuf).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawTimestamp {
    Rfc3339(String),
    Unix { seconds: i64, nanos: i32 },
}

/// An interaction as received (from JSON or protobuf), nothing checked yet.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawInteraction {
    pub interaction_id: Option<String>,
    pub customer_id: Option<String>,
    pub occurred_at: Option<RawTimestamp>,
    /// "voice", "chat", …; the protobuf side maps its enum to these names.
    pub channel: Option<String>,
    pub agent_id: Option<String>,
    pub team_id: Option<String>,
    pub queue_id: Option<String>,
    pub nps: Option<i64>,
    pub csat: Option<i64>,
    pub ces: Option<i64>,
    pub verbatim: Option<String>,
    pub handle_time_s: Option<i64>,
    pub hold_time_s: Option<i64>,
    pub transfers: Option<i64>,
    pub resolved: Option<bool>,
    /// In the order received.
    pub attributes: Vec<(String, String)>,
}

impl RawInteraction {
    /// Reads a JSON object field by field, collecting every type error with its
    /// field name. Unknown fields are ignored and `null` means absent; the
    /// rules of the contract are checked later by [`validate`].
    pub fn from_json(value: &Value) -> Result<RawInteraction, Vec<FieldViolation>> {
        let (raw, mismatched) = RawInteraction::read_json(value);
        if mismatched.is_empty() {
            Ok(raw)
        } else {
            Err(mismatched)
        }
    }

    /// [`Self::from_json`] that keeps going: a field of the wrong JSON type is
    /// left out of the raw interaction and named in the violations, so
    /// [`validate_read`] can still check every other field.
    pub fn read_json(value: &Value) -> (RawInteraction, Vec<FieldViolation>) {
        let Some(object) = value.as_object() else {
            return (
                RawInteraction::default(),
                // The item as a whole: a request's body, a batch's item, a line.
                vec![FieldViolation::new(WHOLE_ITEM, NOT_AN_OBJECT)],
            );
        };
        let mut json = JsonReader {
            object,
            violations: Vec::new(),
        };
        let raw = RawInteraction {
            interaction_id: json.string("interaction_id"),
            customer_id: json.string("customer_id"),
            occurred_at: json.timestamp("occurred_at"),
            channel: json.string("channel"),
            agent_id: json.string("agent_id"),
            team_id: json.string("team_id"),
            queue_id: json.string("queue_id"),
            nps: json.integer("nps"),
            csat: json.integer("csat"),
            ces: json.integer("ces"),
            verbatim: json.string("verbatim"),
            handle_time_s: json.integer("handle_time_s"),
            hold_time_s: json.integer("hold_time_s"),
            transfers: json.integer("transfers"),
            resolved: json.boolean("resolved"),
            attributes: json.attributes("attributes"),
        };
        (raw, json.violations)
    }
}

const NOT_AN_OBJECT: &str = "must be a JSON object";
/// The field a violation of the whole item names.
const WHOLE_ITEM: &str = "interaction";

/// [`validate`] after [`RawInteraction::read_json`]: every violation of the
/// item at once. A field of the wrong type is named once, as such, not
/// also as missing.
pub fn validate_read(
    raw: RawInteraction,
    mut mismatched: Vec<FieldViolation>,
    now: OffsetDateTime,
) -> Result<Interaction, Vec<FieldViolation>> {
    if mismatched.iter().any(|v| v.description == NOT_AN_OBJECT) {
        return Err(mismatched);
    }
    match validate(raw, now) {
        Ok(interaction) if mismatched.is_empty() => Ok(interaction),
        Ok(_) => Err(mismatched),
        Err(more) => {
            let named: Vec<String> = mismatched.iter().map(|v| v.field.clone()).collect();
            mismatched.extend(more.into_iter().filter(|v| !named.contains(&v.field)));
            Err(mismatched)
        }
    }
}

/// Typed access to the fields of one JSON object, remembering every mismatch.
struct JsonReader<'a> {
    object: &'a Map<String, Value>,
    violations: Vec<FieldViolation>,
}

impl<'a> JsonReader<'a> {
    fn get(&self, field: &str) -> Option<&'a Value> {
        self.object.get(field).filter(|v| !v.is_null())
    }

    fn mismatch<T>(&mut self, field: &str, description: &str) -> Option<T> {
        self.violations
            .push(FieldViolation::new(field, description));
        None
    }

    fn string(&mut self, field: &str) -> Option<String> {
        match self.get(field)? {
            Value::String(s) => Some(s.clone()),
            _ => self.mismatch(field, "must be a string"),
        }
    }

    fn timestamp(&mut self, field: &str) -> Option<RawTimestamp> {
        match self.get(field)? {
            Value::String(s) => Some(RawTimestamp::Rfc3339(s.clone())),
            _ => self.mismatch(field, RFC3339_HINT),
        }
    }

    /// JSON integers only: `3.0` is refused too, since serde_json cannot tell
    /// it from a fraction once parsed and a client sending it has a bug.
    fn integer(&mut self, field: &str) -> Option<i64> {
        match self.get(field)? {
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Some(i)
                } else if n.is_u64() {
                    self.mismatch(field, "must be an integer that fits in 64 bits")
                } else {
                    self.mismatch(field, "must be an integer")
                }
            }
            _ => self.mismatch(field, "must be an integer"),
        }
    }

    fn boolean(&mut self, field: &str) -> Option<bool> {
        match self.get(field)? {
            Value::Bool(b) => Some(*b),
            _ => self.mismatch(field, "must be true or false"),
        }
    }

    fn attributes(&mut self, field: &str) -> Vec<(String, String)> {
        let Some(value) = self.get(field) else {
            return Vec::new();
        };
        let Value::Object(map) = value else {
            self.violations.push(FieldViolation::new(
                field,
                "must be an object of string values",
            ));
            return Vec::new();
        };
        let mut out = Vec::with_capacity(map.len());
        for (key, value) in map {
            match value {
                Value::String(s) => out.push((key.clone(), s.clone())),
                _ => self.violations.push(FieldViolation::new(
                    attribute_field(key),
                    "must be a string",
                )),
            }
        }
        out
    }
}

/// `attributes.<key>`, or `attributes` when the key itself is empty.
fn attribute_field(key: &str) -> String {
    if key.is_empty() {
        "attributes".to_owned()
    } else {
        format!("attributes.{key}")
    }
}

/// A validated, redacted interaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Interaction {
    pub interaction_id: InteractionId,
    pub customer_id: CustomerId,
    /// In UTC.
    pub occurred_at: OffsetDateTime,
    pub channel: Channel,
    pub agent_id: Option<DimensionKey>,
    pub team_id: Option<DimensionKey>,
    pub queue_id: Option<DimensionKey>,
    pub nps: Option<Nps>,
    pub csat: Option<Csat>,
    pub ces: Option<Ces>,
    /// Already redacted.
    pub verbatim: Option<String>,
    pub handle_time_s: Option<u32>,
    pub hold_time_s: Option<u32>,
    pub transfers: Option<u32>,
    pub resolved: Option<bool>,
    /// Values already redacted.
    pub attributes: BTreeMap<String, String>,
    /// How many of each kind were replaced, over verbatim and attribute values.
    pub redactions: RedactionCounts,
}

impl Interaction {
    /// Whether this interaction's scores make it a detractor interaction.
    pub fn is_detractor(&self, thresholds: &DetractorThresholds) -> bool {
        thresholds.is_detractor(self.nps, self.csat, self.ces)
    }
}

/// Validates every rule of the contract's Interaction table (see the module
/// docs), collecting all violations, each naming its field as the contract
/// does. `now` is the receiver's clock, passed in so tests are deterministic.
/// On success the verbatim and attribute values are redacted.
pub fn validate(
    raw: RawInteraction,
    now: OffsetDateTime,
) -> Result<Interaction, Vec<FieldViolation>> {
    let mut v = Vec::new();
    let interaction_id = required(
        &mut v,
        "interaction_id",
        raw.interaction_id,
        InteractionId::parse,
    );
    let customer_id = required(&mut v, "customer_id", raw.customer_id, CustomerId::parse);
    let occurred_at = required(&mut v, "occurred_at", raw.occurred_at, |ts| {
        occurred_at(ts, now)
    });
    let channel = required(&mut v, "channel", raw.channel, |s| s.parse::<Channel>());
    let agent_id = dimension_key(&mut v, "agent_id", raw.agent_id);
    let team_id = dimension_key(&mut v, "team_id", raw.team_id);
    let queue_id = dimension_key(&mut v, "queue_id", raw.queue_id);
    let nps = optional(&mut v, "nps", raw.nps, Nps::new);
    let csat = optional(&mut v, "csat", raw.csat, Csat::new);
    let ces = optional(&mut v, "ces", raw.ces, Ces::new);
    let verbatim = verbatim(&mut v, raw.verbatim);
    let handle_time_s = optional(&mut v, "handle_time_s", raw.handle_time_s, count);
    let hold_time_s = optional(&mut v, "hold_time_s", raw.hold_time_s, count);
    let transfers = optional(&mut v, "transfers", raw.transfers, count);
    let attributes = attributes(&mut v, raw.attributes);

    let (Some(interaction_id), Some(customer_id), Some(occurred_at), Some(channel)) =
        (interaction_id, customer_id, occurred_at, channel)
    else {
        return Err(v);
    };
    if !v.is_empty() {
        return Err(v);
    }

    let mut redactions = RedactionCounts::default();
    let verbatim = verbatim.map(|text| redacted(text, &mut redactions));
    let attributes = attributes
        .into_iter()
        .map(|(key, value)| (key, redacted(value, &mut redactions)))
        .collect();

    Ok(Interaction {
        interaction_id,
        customer_id,
        occurred_at,
        channel,
        agent_id,
        team_id,
        queue_id,
        nps,
        csat,
        ces,
        verbatim,
        handle_time_s,
        hold_time_s,
        transfers,
        resolved: raw.resolved,
        attributes,
        redactions,
    })
}

/// Parses a present value; records "is required" when it is missing.
fn required<R, T, E: fmt::Display>(
    v: &mut Vec<FieldViolation>,
    field: &str,
    value: Option<R>,
    parse: impl FnOnce(R) -> Result<T, E>,
) -> Option<T> {
    match value {
        None => {
            v.push(FieldViolation::new(field, "is required"));
            None
        }
        Some(raw) => optional(v, field, Some(raw), parse),
    }
}

/// Parses a present value; records the parse error under `field`.
fn optional<R, T, E: fmt::Display>(
    v: &mut Vec<FieldViolation>,
    field: &str,
    value: Option<R>,
    parse: impl FnOnce(R) -> Result<T, E>,
) -> Option<T> {
    match parse(value?) {
        Ok(parsed) => Some(parsed),
        Err(e) => {
            v.push(FieldViolation::new(field, e.to_string()));
            None
        }
    }
}

/// Optional dimension key; an empty string means absent (proto3 default).
fn dimension_key(
    v: &mut Vec<FieldViolation>,
    field: &str,
    value: Option<String>,
) -> Option<DimensionKey> {
    optional(
        v,
        field,
        value.filter(|s| !s.is_empty()),
        DimensionKey::parse,
    )
}

fn occurred_at(ts: RawTimestamp, now: OffsetDateTime) -> Result<OffsetDateTime, Cow<'static, str>> {
    let at = match ts {
        RawTimestamp::Rfc3339(text) => {
            OffsetDateTime::parse(&text, &Rfc3339).map_err(|_| Cow::Borrowed(RFC3339_HINT))?
        }
        RawTimestamp::Unix { seconds, nanos } => {
            if !(0..=999_999_999).contains(&nanos) {
                return Err(Cow::Borrowed("nanos must be between 0 and 999999999"));
            }
            OffsetDateTime::from_unix_timestamp(seconds).map_err(|_| Cow::Borrowed(OUT_OF_RANGE))?
                + Duration::nanoseconds(i64::from(nanos))
        }
    }
    .to_offset(UtcOffset::UTC);
    // Years a protobuf Timestamp can carry downstream.
    if !(MIN_UNIX_SECONDS..=MAX_UNIX_SECONDS).contains(&at.unix_timestamp()) {
        return Err(Cow::Borrowed(OUT_OF_RANGE));
    }
    if at - now > MAX_FUTURE_SKEW {
        return Err(Cow::Owned(format!(
            "must not be more than {} minutes in the future",
            MAX_FUTURE_SKEW.whole_minutes()
        )));
    }
    Ok(at)
}

const OUT_OF_RANGE: &str = "must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z";

/// Unsigned counters (seconds, transfers).
fn count(value: i64) -> Result<u32, String> {
    if value < 0 {
        return Err("must not be negative".to_owned());
    }
    u32::try_from(value).map_err(|_| format!("must be at most {}", u32::MAX))
}

/// Optional verbatim; empty means absent; the limit applies before redaction
/// so the same input is accepted or refused whatever it contains.
fn verbatim(v: &mut Vec<FieldViolation>, value: Option<String>) -> Option<String> {
    let text = value.filter(|s| !s.is_empty())?;
    if text.len() > MAX_VERBATIM_BYTES {
        v.push(FieldViolation::new(
            "verbatim",
            format!(
                "must be at most {MAX_VERBATIM_BYTES} bytes of UTF-8 (got {})",
                text.len()
            ),
        ));
        return None;
    }
    Some(text)
}

fn attributes(
    v: &mut Vec<FieldViolation>,
    entries: Vec<(String, String)>,
) -> BTreeMap<String, String> {
    if entries.len() > MAX_ATTRIBUTES {
        v.push(FieldViolation::new(
            "attributes",
            format!(
                "must have at most {MAX_ATTRIBUTES} entries (got {})",
                entries.len()
            ),
        ));
    }
    let bytes: usize = entries
        .iter()
        .map(|(key, value)| key.len() + value.len())
        .sum();
    if bytes > MAX_ATTRIBUTES_BYTES {
        v.push(FieldViolation::new(
            "attributes",
            format!("keys and values must be at most {MAX_ATTRIBUTES_BYTES} bytes together (got {bytes})"),
        ));
    }
    let mut map = BTreeMap::new();
    for (key, value) in entries {
        let field = attribute_field(&key);
        // Only possible from protobuf or hand-built input; which value wins
        // would be a guess, so refuse.
        if map.insert(key, value).is_some() {
            v.push(FieldViolation::new(&field, "is given more than once"));
        }
    }
    map
}

/// Redacts `text`, adding to `counts`; keeps the original allocation when
/// nothing was replaced.
fn redacted(text: String, counts: &mut RedactionCounts) -> String {
    let replaced = match redact(&text) {
        (Cow::Owned(out), found) => Some((out, found)),
        (Cow::Borrowed(_), _) => None,
    };
    match replaced {
        Some((out, found)) => {
            *counts += found;
            out
        }
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    /// What `RawInteraction::from_json` returns, or a hand-built raw input.
    type Parsed = Result<RawInteraction, Vec<FieldViolation>>;

    fn now() -> OffsetDateTime {
        datetime!(2026-11-22 12:00 UTC)
    }

    fn valid_json() -> Value {
        json!({
            "interaction_id": "int-0001",
            "customer_id": "cust-42",
            "occurred_at": "2026-11-22T11:00:00Z",
            "channel": "voice",
            "agent_id": "agent-7",
            "team_id": "team-a",
            "queue_id": "billing",
            "nps": 9,
            "csat": 4,
            "ces": 6,
            "verbatim": "Quick and friendly, thanks!",
            "handle_time_s": 320,
            "hold_time_s": 15,
            "transfers": 0,
            "resolved": true,
            "attributes": {"region": "emea", "language": "en"}
        })
    }

    fn with(field: &str, value: Value) -> Value {
        let mut json = valid_json();
        json[field] = value;
        json
    }

    fn without(field: &str) -> Value {
        let mut json = valid_json();
        json.as_object_mut().unwrap().remove(field);
        json
    }

    fn raw_with(edit: impl FnOnce(&mut RawInteraction)) -> RawInteraction {
        let mut raw = RawInteraction::from_json(&valid_json()).unwrap();
        edit(&mut raw);
        raw
    }

    fn attrs(n: usize) -> Value {
        Value::Object(
            (0..n)
                .map(|i| (format!("k{i}"), Value::String(format!("v{i}"))))
                .collect(),
        )
    }

    fn check_json(json: &Value) -> Result<Interaction, Vec<FieldViolation>> {
        validate(RawInteraction::from_json(json)?, now())
    }

    fn ok(json: &Value) -> Interaction {
        check_json(json).unwrap_or_else(|v| panic!("expected valid, got {v:?}"))
    }

    /// Both JSON type errors and rule violations, as one list of field names.
    fn violated_fields(input: Parsed) -> Vec<String> {
        match input.and_then(|raw| validate(raw, now())) {
            Ok(_) => Vec::new(),
            Err(v) => {
                let mut fields: Vec<String> = v.into_iter().map(|f| f.field).collect();
                fields.sort();
                fields
            }
        }
    }

    #[test]
    fn a_field_of_the_wrong_type_hides_no_other_violation() {
        let read = |json: Value| {
            let (raw, mismatched) = RawInteraction::read_json(&json);
            validate_read(raw, mismatched, now()).unwrap_err()
        };
        let fields = |violations: Vec<FieldViolation>| {
            let mut fields: Vec<String> = violations.into_iter().map(|v| v.field).collect();
            fields.sort();
            fields
        };
        // A wrong type, a missing field, a bad timestamp and a range error.
        let mut json = without("customer_id");
        json["csat"] = json!("4");
        json["occurred_at"] = json!("yesterday");
        json["ces"] = json!(0);
        assert_eq!(
            fields(read(json)),
            ["ces", "csat", "customer_id", "occurred_at"]
        );
        // A required field of the wrong type is named once, as such.
        let violations = read(with("customer_id", json!(5)));
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert_eq!(violations[0].description, "must be a string");
        // Not an object: that alone.
        assert_eq!(fields(read(json!([1, 2]))), ["interaction"]);
        // Nothing wrong: the same interaction as validate's.
        let (raw, mismatched) = RawInteraction::read_json(&valid_json());
        assert_eq!(validate_read(raw, mismatched, now()), Ok(ok(&valid_json())));
    }

    #[test]
    fn every_rule_reports_its_field() {
        let json = |v: Value| RawInteraction::from_json(&v);
        let cases: Vec<(&str, Parsed, Vec<&str>)> = vec![
            // Identifiers.
            (
                "interaction_id missing",
                json(without("interaction_id")),
                vec!["interaction_id"],
            ),
            (
                "interaction_id empty",
                json(with("interaction_id", json!(""))),
                vec!["interaction_id"],
            ),
            (
                "interaction_id 129 chars",
                json(with("interaction_id", json!("x".repeat(129)))),
                vec!["interaction_id"],
            ),
            (
                "interaction_id control char",
                json(with("interaction_id", json!("a\u{7}b"))),
                vec!["interaction_id"],
            ),
            (
                "interaction_id newline",
                json(with("interaction_id", json!("a\nb"))),
                vec!["interaction_id"],
            ),
            (
                "interaction_id whitespace",
                json(with("interaction_id", json!("   "))),
                vec!["interaction_id"],
            ),
            (
                "interaction_id number",
                json(with("interaction_id", json!(17))),
                vec!["interaction_id"],
            ),
            (
                "customer_id missing",
                json(without("customer_id")),
                vec!["customer_id"],
            ),
            (
                "customer_id empty",
                json(with("customer_id", json!(""))),
                vec!["customer_id"],
            ),
            (
                "customer_id 129 multibyte chars",
                json(with("customer_id", json!("é".repeat(129)))),
                vec!["customer_id"],
            ),
            (
                "customer_id DEL",
                json(with("customer_id", json!("c\u{7f}"))),
                vec!["customer_id"],
            ),
            (
                "customer_id tab only",
                json(with("customer_id", json!("\t"))),
                vec!["customer_id"],
            ),
            // occurred_at.
            (
                "occurred_at missing",
                json(without("occurred_at")),
                vec!["occurred_at"],
            ),
            (
                "occurred_at null",
                json(with("occurred_at", Value::Null)),
                vec!["occurred_at"],
            ),
            (
                "occurred_at garbage",
                json(with("occurred_at", json!("yesterday"))),
                vec!["occurred_at"],
            ),
            (
                "occurred_at no timezone",
                json(with("occurred_at", json!("2026-11-22T10:00:00"))),
                vec!["occurred_at"],
            ),
            (
                "occurred_at date only",
                json(with("occurred_at", json!("2026-11-22"))),
                vec!["occurred_at"],
            ),
            (
                "occurred_at 6 min ahead",
                json(with("occurred_at", json!("2026-11-22T12:06:00Z"))),
                vec!["occurred_at"],
            ),
            (
                "occurred_at 5 min + 1 ns ahead",
                json(with("occurred_at", json!("2026-11-22T12:05:00.000000001Z"))),
                vec!["occurred_at"],
            ),
            (
                "occurred_at ahead via offset",
                json(with("occurred_at", json!("2026-11-22T13:06:00+01:00"))),
                vec!["occurred_at"],
            ),
            (
                "occurred_at year 0",
                json(with("occurred_at", json!("0000-06-01T00:00:00Z"))),
                vec!["occurred_at"],
            ),
            (
                "occurred_at number",
                json(with("occurred_at", json!(1_790_000_000))),
                vec!["occurred_at"],
            ),
            (
                "unix nanos negative",
                Ok(raw_with(|r| {
                    r.occurred_at = Some(RawTimestamp::Unix {
                        seconds: 1_700_000_000,
                        nanos: -1,
                    })
                })),
                vec!["occurred_at"],
            ),
            (
                "unix nanos 1e9",
                Ok(raw_with(|r| {
                    r.occurred_at = Some(RawTimestamp::Unix {
                        seconds: 1_700_000_000,
                        nanos: 1_000_000_000,
                    })
                })),
                vec!["occurred_at"],
            ),
            (
                "unix seconds i64::MAX",
                Ok(raw_with(|r| {
                    r.occurred_at = Some(RawTimestamp::Unix {
                        seconds: i64::MAX,
                        nanos: 0,
                    })
                })),
                vec!["occurred_at"],
            ),
            (
                "unix seconds before year 1",
                Ok(raw_with(|r| {
                    r.occurred_at = Some(RawTimestamp::Unix {
                        seconds: MIN_UNIX_SECONDS - 1,
                        nanos: 0,
                    })
                })),
                vec!["occurred_at"],
            ),
            (
                "unix 6 min ahead",
                Ok(raw_with(|r| {
                    r.occurred_at = Some(RawTimestamp::Unix {
                        seconds: now().unix_timestamp() + 360,
                        nanos: 0,
                    })
                })),
                vec!["occurred_at"],
            ),
            // channel.
            ("channel missing", json(without("channel")), vec!["channel"]),
            (
                "channel unknown",
                json(with("channel", json!("fax"))),
                vec!["channel"],
            ),
            (
                "channel uppercase",
                json(with("channel", json!("Voice"))),
                vec!["channel"],
            ),
            (
                "channel empty",
                json(with("channel", json!(""))),
                vec!["channel"],
            ),
            (
                "channel number",
                json(with("channel", json!(1))),
                vec!["channel"],
            ),
            // Dimension keys.
            (
                "agent_id 129 chars",
                json(with("agent_id", json!("a".repeat(129)))),
                vec!["agent_id"],
            ),
            (
                "team_id control char",
                json(with("team_id", json!("t\u{0}"))),
                vec!["team_id"],
            ),
            (
                "queue_id control char",
                json(with("queue_id", json!("q\r"))),
                vec!["queue_id"],
            ),
            // Scores.
            ("nps -1", json(with("nps", json!(-1))), vec!["nps"]),
            ("nps 11", json(with("nps", json!(11))), vec!["nps"]),
            ("csat 0", json(with("csat", json!(0))), vec!["csat"]),
            ("csat 6", json(with("csat", json!(6))), vec!["csat"]),
            ("ces 0", json(with("ces", json!(0))), vec!["ces"]),
            ("ces 8", json(with("ces", json!(8))), vec!["ces"]),
            // verbatim.
            (
                "verbatim 8193 bytes",
                json(with("verbatim", json!("a".repeat(8193)))),
                vec!["verbatim"],
            ),
            (
                "verbatim 2731 euro signs",
                json(with("verbatim", json!("€".repeat(2731)))),
                vec!["verbatim"],
            ),
            (
                "verbatim number",
                json(with("verbatim", json!(5))),
                vec!["verbatim"],
            ),
            // Counters.
            (
                "handle_time_s negative",
                json(with("handle_time_s", json!(-1))),
                vec!["handle_time_s"],
            ),
            (
                "hold_time_s negative",
                json(with("hold_time_s", json!(-30))),
                vec!["hold_time_s"],
            ),
            (
                "transfers negative",
                json(with("transfers", json!(-1))),
                vec!["transfers"],
            ),
            (
                "transfers > u32::MAX",
                json(with("transfers", json!(u64::from(u32::MAX) + 1))),
                vec!["transfers"],
            ),
            (
                "handle_time_s i64::MAX",
                json(with("handle_time_s", json!(i64::MAX))),
                vec!["handle_time_s"],
            ),
            // Attributes.
            (
                "33 attributes",
                json(with("attributes", attrs(33))),
                vec!["attributes"],
            ),
            (
                "attributes 65 537 bytes",
                json(with(
                    "attributes",
                    json!({"note": "n".repeat(MAX_ATTRIBUTES_BYTES - 3)}),
                )),
                vec!["attributes"],
            ),
            (
                "attribute key repeated",
                Ok(raw_with(|r| {
                    r.attributes = vec![("k".into(), "1".into()), ("k".into(), "2".into())]
                })),
                vec!["attributes.k"],
            ),
            // JSON types.
            ("nps as text", json(with("nps", json!("ten"))), vec!["nps"]),
            ("nps fractional", json(with("nps", json!(3.5))), vec!["nps"]),
            ("nps float 3.0", json(with("nps", json!(3.0))), vec!["nps"]),
            (
                "nps beyond i64",
                json(with("nps", json!(u64::MAX))),
                vec!["nps"],
            ),
            ("csat bool", json(with("csat", json!(true))), vec!["csat"]),
            (
                "resolved as text",
                json(with("resolved", json!("yes"))),
                vec!["resolved"],
            ),
            (
                "attributes not an object",
                json(with("attributes", json!(["region", "emea"]))),
                vec!["attributes"],
            ),
            (
                "attribute value number",
                json(with("attributes", json!({"region": 7}))),
                vec!["attributes.region"],
            ),
            (
                "attribute value null",
                json(with("attributes", json!({"region": null}))),
                vec!["attributes.region"],
            ),
            (
                "body an array",
                json(json!([valid_json()])),
                vec!["interaction"],
            ),
            ("body a string", json(json!("hello")), vec!["interaction"]),
            ("body null", json(Value::Null), vec!["interaction"]),
        ];
        assert!(cases.len() >= 35);
        for (name, input, expected) in cases {
            assert_eq!(violated_fields(input), expected, "case: {name}");
        }
    }

    #[test]
    fn messages_are_clear() {
        let description = |json: Value| {
            let v = check_json(&json).unwrap_err();
            assert_eq!(v.len(), 1, "{v:?}");
            v[0].description.clone()
        };
        assert_eq!(description(without("interaction_id")), "is required");
        assert_eq!(
            description(with("interaction_id", json!(""))),
            "must not be empty"
        );
        assert_eq!(
            description(with("customer_id", json!("x".repeat(129)))),
            "must be at most 128 characters"
        );
        assert_eq!(
            description(with("occurred_at", json!("2026-11-22 10:00"))),
            "must be an RFC 3339 timestamp, e.g. 2026-11-22T10:00:00Z"
        );
        assert_eq!(
            description(with("occurred_at", json!("2026-11-22T12:06:00Z"))),
            "must not be more than 5 minutes in the future"
        );
        assert_eq!(
            description(with("channel", json!("Voice"))),
            "must be one of voice, chat, email, sms, web, social, in_person"
        );
        assert_eq!(
            description(with("nps", json!(11))),
            "must be between 0 and 10"
        );
        assert_eq!(
            description(with("csat", json!(0))),
            "must be between 1 and 5"
        );
        assert_eq!(
            description(with("ces", json!(8))),
            "must be between 1 and 7"
        );
        assert_eq!(
            description(with("transfers", json!(-2))),
            "must not be negative"
        );
        assert_eq!(description(with("nps", json!("ten"))), "must be an integer");
        assert_eq!(description(with("nps", json!(3.5))), "must be an integer");
        assert_eq!(
            description(with("resolved", json!("yes"))),
            "must be true or false"
        );
        assert_eq!(
            description(with("verbatim", json!("a".repeat(8193)))),
            "must be at most 8192 bytes of UTF-8 (got 8193)"
        );
        assert_eq!(
            check_json(&json!(42)).unwrap_err(),
            vec![FieldViolation::new("interaction", "must be a JSON object")]
        );
    }

    #[test]
    fn all_violations_are_reported_together() {
        let mut json = valid_json();
        json["interaction_id"] = json!("");
        json.as_object_mut().unwrap().remove("channel");
        json["occurred_at"] = json!("2030-01-01T00:00:00Z");
        json["nps"] = json!(12);
        json["transfers"] = json!(-1);
        json["attributes"] = json!({"note": "n".repeat(MAX_ATTRIBUTES_BYTES)});
        assert_eq!(
            violated_fields(RawInteraction::from_json(&json)),
            [
                "attributes",
                "channel",
                "interaction_id",
                "nps",
                "occurred_at",
                "transfers"
            ]
        );

        // JSON type errors are collected the same way.
        let mut json = valid_json();
        json["nps"] = json!("ten");
        json["resolved"] = json!("yes");
        json["customer_id"] = json!(42);
        json["attributes"] = json!({"a": 1, "b": "fine", "c": []});
        assert_eq!(
            violated_fields(RawInteraction::from_json(&json)),
            [
                "attributes.a",
                "attributes.c",
                "customer_id",
                "nps",
                "resolved"
            ]
        );
    }

    #[test]
    fn a_full_valid_interaction() {
        let i = ok(&valid_json());
        assert_eq!(i.interaction_id.as_str(), "int-0001");
        assert_eq!(i.customer_id.as_ref(), "cust-42");
        assert_eq!(i.occurred_at, datetime!(2026-11-22 11:00 UTC));
        assert_eq!(i.channel, Channel::Voice);
        assert_eq!(
            i.agent_id.as_ref().map(DimensionKey::as_str),
            Some("agent-7")
        );
        assert_eq!(i.team_id.as_ref().map(DimensionKey::as_str), Some("team-a"));
        assert_eq!(
            i.queue_id.as_ref().map(DimensionKey::as_str),
            Some("billing")
        );
        assert_eq!(i.nps.map(Nps::get), Some(9));
        assert_eq!(i.csat.map(Csat::get), Some(4));
        assert_eq!(i.ces.map(Ces::get), Some(6));
        assert_eq!(i.verbatim.as_deref(), Some("Quick and friendly, thanks!"));
        assert_eq!(i.handle_time_s, Some(320));
        assert_eq!(i.hold_time_s, Some(15));
        assert_eq!(i.transfers, Some(0));
        assert_eq!(i.resolved, Some(true));
        assert_eq!(i.attributes.len(), 2);
        assert_eq!(i.attributes["region"], "emea");
        assert_eq!(i.redactions, RedactionCounts::default());
        assert!(!i.is_detractor(&DetractorThresholds::default()));
    }

    #[test]
    fn only_required_fields() {
        let i = ok(&json!({
            "interaction_id": "i",
            "customer_id": "c",
            "occurred_at": "2026-11-22T11:00:00Z",
            "channel": "in_person",
            "nps": null,
            "agent_id": "",
            "verbatim": "",
            "some_future_field": {"ignored": true}
        }));
        assert_eq!(i.channel, Channel::InPerson);
        assert_eq!(i.agent_id, None);
        assert_eq!(i.verbatim, None);
        assert_eq!(i.nps, None);
        assert_eq!(i.resolved, None);
        assert!(i.attributes.is_empty());
    }

    #[test]
    fn boundary_values_are_accepted() {
        for (field, value) in [
            ("nps", 0),
            ("nps", 10),
            ("csat", 1),
            ("csat", 5),
            ("ces", 1),
            ("ces", 7),
            ("transfers", 0),
            ("handle_time_s", i64::from(u32::MAX)),
        ] {
            ok(&with(field, json!(value)));
        }
        // 128 characters but 256 bytes: characters are what count.
        let i = ok(&with("interaction_id", json!("é".repeat(128))));
        assert_eq!(i.interaction_id.as_str().len(), 256);
        ok(&with("customer_id", json!("x".repeat(128))));
        ok(&with("queue_id", json!("q".repeat(128))));
        // Exactly five minutes ahead is still within the allowed skew.
        ok(&with("occurred_at", json!("2026-11-22T12:05:00Z")));
        ok(&with("attributes", attrs(32)));
        // The contract bounds attributes by their number only: long keys
        // and values, an empty key and control characters in a key are
        // accepted, up to 64 KiB together.
        ok(&with(
            "attributes",
            json!({"k".repeat(200): "v".repeat(MAX_ATTRIBUTES_BYTES - 200)}),
        ));
        ok(&with("attributes", json!({"": "x", "a\u{1b}b": "y"})));
        ok(&with("verbatim", json!("a".repeat(8192))));
        // 2730 × 3 bytes + 2 = 8192 bytes.
        ok(&with("verbatim", json!(format!("{}ab", "€".repeat(2730)))));
    }

    #[test]
    fn offsets_are_normalised_to_utc() {
        let i = ok(&with("occurred_at", json!("2026-11-22T13:30:00.25+02:00")));
        assert_eq!(i.occurred_at, datetime!(2026-11-22 11:30:00.25 UTC));
        assert_eq!(i.occurred_at.offset(), UtcOffset::UTC);
        let i = ok(&with("occurred_at", json!("2026-11-21T23:00:00-05:00")));
        assert_eq!(i.occurred_at, datetime!(2026-11-22 04:00 UTC));
        assert_eq!(i.occurred_at.offset(), UtcOffset::UTC);
    }

    #[test]
    fn unix_timestamps_are_accepted() {
        let raw = raw_with(|r| {
            r.occurred_at = Some(RawTimestamp::Unix {
                seconds: datetime!(2026-11-22 11:00 UTC).unix_timestamp(),
                nanos: 500_000_000,
            });
        });
        let i = validate(raw, now()).unwrap();
        assert_eq!(i.occurred_at, datetime!(2026-11-22 11:00:00.5 UTC));
        // The very first instant protobuf can carry.
        let raw = raw_with(|r| {
            r.occurred_at = Some(RawTimestamp::Unix {
                seconds: MIN_UNIX_SECONDS,
                nanos: 0,
            });
        });
        assert_eq!(
            validate(raw, now()).unwrap().occurred_at,
            datetime!(0001-01-01 0:00 UTC)
        );
    }

    #[test]
    fn verbatim_and_attributes_are_redacted_with_counts() {
        let mut json = valid_json();
        json["verbatim"] = json!("Mail me at jane.roe@example.com or call 555-123-4567 please");
        json["attributes"] = json!({
            "callback": "+44 20 7946 0958",
            "card": "4111 1111 1111 1111",
            "region": "emea"
        });
        let i = ok(&json);
        assert_eq!(
            i.verbatim.as_deref(),
            Some("Mail me at [email] or call [phone] please")
        );
        assert_eq!(i.attributes["callback"], "[phone]");
        assert_eq!(i.attributes["card"], "[card]");
        assert_eq!(i.attributes["region"], "emea");
        assert_eq!(
            i.redactions,
            RedactionCounts {
                emails: 1,
                phones: 2,
                cards: 1
            }
        );
    }

    #[test]
    fn size_limits_apply_before_redaction() {
        // Redaction would shrink this below the limit; it is refused anyway.
        let text = format!("{} a@b.co", "x".repeat(8190));
        assert_eq!(
            violated_fields(RawInteraction::from_json(&with("verbatim", json!(text)))),
            ["verbatim"]
        );
        // Exactly at the limit with PII inside: accepted, then redacted.
        let text = format!("{} a@b.co", "x".repeat(8185));
        assert_eq!(text.len(), 8192);
        let i = ok(&with("verbatim", json!(text)));
        assert!(i.verbatim.unwrap().ends_with(" [email]"));
        assert_eq!(i.redactions.emails, 1);
    }

    #[test]
    fn detractor_interactions() {
        let i = ok(&with("csat", json!(2)));
        assert!(i.is_detractor(&DetractorThresholds::default()));
        let strict = DetractorThresholds {
            csat_max: 1,
            ..DetractorThresholds::default()
        };
        assert!(!i.is_detractor(&strict));
    }

    #[test]
    fn channels_parse_by_exact_name_only() {
        for channel in Channel::ALL {
            assert_eq!(channel.as_str().parse::<Channel>(), Ok(channel));
            assert_eq!(channel.to_string(), channel.as_str());
            assert_eq!(
                serde_json::to_value(channel).unwrap(),
                json!(channel.as_str())
            );
        }
        for bad in ["Voice", "VOICE", " voice", "in-person", "inperson", ""] {
            assert_eq!(bad.parse::<Channel>(), Err(ParseChannelError), "{bad:?}");
        }
    }

    #[test]
    fn identifier_rules() {
        assert_eq!(InteractionId::parse(""), Err(IdError::Empty));
        assert_eq!(InteractionId::parse("  "), Err(IdError::Blank));
        assert_eq!(InteractionId::parse("\u{3000}"), Err(IdError::Blank));
        assert_eq!(CustomerId::parse("a\u{85}"), Err(IdError::ControlCharacter));
        assert_eq!(
            CustomerId::parse("x".repeat(129)),
            Err(IdError::TooLong { max: 128 })
        );
        // Surrounding whitespace is kept: the id is an exact idempotency key.
        assert_eq!(InteractionId::parse(" a ").unwrap().as_str(), " a ");
        assert_eq!(DimensionKey::parse("all").unwrap().to_string(), "all");
        assert_eq!(DimensionKey::parse(""), Err(IdError::Empty));
        let id: InteractionId = serde_json::from_value(json!("abc")).unwrap();
        assert_eq!(String::from(id), "abc");
        assert!(serde_json::from_value::<CustomerId>(json!("")).is_err());
    }
}

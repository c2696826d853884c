//! Interactions from a file: JSON lines or CSV, each record checked with the
//! same rules ingest applies (`cx_domain`), so bad lines are reported locally,
//! by line number and field, and never sent.
//!
//! IO-free: the caller reads the file and passes its text and the clock.

use cx_domain::{FieldViolation, RawInteraction};
use cx_proto::prost_types::Timestamp;
use cx_proto::v1;
use serde_json::{Map, Value};
use time::OffsetDateTime;

/// How the input is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per line (contract field names).
    Jsonl,
    /// A header row of contract field names, then one interaction per record.
    Csv,
}

impl Format {
    /// An explicit choice wins; otherwise `.csv` (any case) means CSV.
    pub fn detect(path: &str, explicit: Option<Format>) -> Format {
        explicit.unwrap_or_else(|| {
            if path.to_ascii_lowercase().ends_with(".csv") {
                Format::Csv
            } else {
                Format::Jsonl
            }
        })
    }
}

/// One input record: where it starts, its id when one could be read, and
/// either the interaction to send or every violated field.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// 1-based line number of the record's first line.
    pub line: usize,
    pub interaction_id: Option<String>,
    pub result: Result<v1::Interaction, Vec<FieldViolation>>,
}

/// A parsed input: the records and anything worth a warning (unknown CSV columns).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    pub records: Vec<Record>,
    pub warnings: Vec<String>,
}

/// A problem with the file as a whole (nothing can be read from it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("the CSV input has no header row")]
    NoHeader,
    #[error("line 1: column {0:?} appears more than once in the CSV header")]
    DuplicateColumn(String),
}

/// The contract's interaction fields, as CSV columns.
pub const FIELDS: [&str; 16] = [
    "interaction_id",
    "customer_id",
    "occurred_at",
    "channel",
    "agent_id",
    "team_id",
    "queue_id",
    "nps",
    "csat",
    "ces",
    "verbatim",
    "handle_time_s",
    "hold_time_s",
    "transfers",
    "resolved",
    "attributes",
];

const INTEGER_FIELDS: [&str; 6] = [
    "nps",
    "csat",
    "ces",
    "handle_time_s",
    "hold_time_s",
    "transfers",
];

/// Parses and checks every record of `text`.
pub fn parse(text: &str, format: Format, now: OffsetDateTime) -> Result<Parsed, InputError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    match format {
        Format::Jsonl => Ok(parse_jsonl(text, now)),
        Format::Csv => parse_csv(text, now),
    }
}

fn parse_jsonl(text: &str, now: OffsetDateTime) -> Parsed {
    let mut warnings = Vec::new();
    let records = text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            let line_no = index + 1;
            match serde_json::from_str::<Value>(line) {
                Ok(value) => {
                    // As for CSV columns: a misspelt field would be lost
                    // without a word (the contract lets ingest ignore it).
                    let unknown = value.as_object().into_iter().flat_map(|object| {
                        object.keys().filter(|key| !FIELDS.contains(&key.as_str()))
                    });
                    for key in unknown {
                        warnings.push(format!("line {line_no}: ignoring unknown field {key:?}"));
                    }
                    Record {
                        line: line_no,
                        interaction_id: id_of(&value),
                        result: check_json(&value, now),
                    }
                }
                Err(e) => {
                    // CSV piped in on stdin has no .csv name to go by.
                    if !line.trim_start().starts_with('{')
                        && line.split(',').any(|field| field.trim() == "interaction_id")
                    {
                        warnings.push(format!(
                            "line {line_no}: looks like a CSV header; this input is read as JSON lines (pass --format csv)"
                        ));
                    }
                    Record {
                        line: line_no,
                        interaction_id: None,
                        result: Err(vec![FieldViolation::new("", format!("invalid JSON: {e}"))]),
                    }
                }
            }
        })
        .collect();
    Parsed { records, warnings }
}

fn id_of(value: &Value) -> Option<String> {
    value
        .get("interaction_id")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// The contract's checks on one JSON interaction; the wire form when it passes.
pub fn check_json(
    value: &Value,
    now: OffsetDateTime,
) -> Result<v1::Interaction, Vec<FieldViolation>> {
    let (raw, mismatched) = RawInteraction::read_json(value);
    check_raw(raw, mismatched, now)
}

fn check_raw(
    raw: RawInteraction,
    mismatched: Vec<FieldViolation>,
    now: OffsetDateTime,
) -> Result<v1::Interaction, Vec<FieldViolation>> {
    let valid = cx_domain::validate_read(raw.clone(), mismatched, now)?;
    Ok(to_proto(&valid, raw))
}

/// The wire interaction. Typed fields come from the validated interaction;
/// verbatim and attributes are sent as written, since ingest redacts them and
/// counts what it replaced.
fn to_proto(i: &cx_domain::Interaction, raw: RawInteraction) -> v1::Interaction {
    let key = |k: &Option<cx_domain::DimensionKey>| k.as_ref().map(|k| k.as_str().to_owned());
    v1::Interaction {
        interaction_id: i.interaction_id.as_str().to_owned(),
        customer_id: i.customer_id.as_str().to_owned(),
        occurred_at: Some(Timestamp {
            seconds: i.occurred_at.unix_timestamp(),
            nanos: i32::try_from(i.occurred_at.nanosecond()).unwrap_or(0),
        }),
        channel: v1::Channel::from_contract_name(i.channel.as_str())
            .unwrap_or(v1::Channel::Unspecified) as i32,
        agent_id: key(&i.agent_id),
        team_id: key(&i.team_id),
        queue_id: key(&i.queue_id),
        nps: i.nps.map(|s| i32::from(s.get())),
        csat: i.csat.map(|s| i32::from(s.get())),
        ces: i.ces.map(|s| i32::from(s.get())),
        verbatim: raw.verbatim.filter(|v| !v.is_empty()),
        handle_time_s: i.handle_time_s.map(u64::from),
        hold_time_s: i.hold_time_s.map(u64::from),
        transfers: i.transfers.map(u64::from),
        resolved: i.resolved,
        attributes: raw.attributes.into_iter().collect(),
        ingested_at: None,
        redactions: 0,
    }
}

fn parse_csv(text: &str, now: OffsetDateTime) -> Result<Parsed, InputError> {
    let mut rows = read_csv(text).into_iter();
    let header = rows.next().ok_or(InputError::NoHeader)?;
    let header: Vec<String> = match header.fields {
        Ok(fields) => fields.into_iter().map(|f| f.trim().to_owned()).collect(),
        Err(_) => return Err(InputError::NoHeader),
    };
    let mut warnings = Vec::new();
    for (i, name) in header.iter().enumerate() {
        if header[..i].contains(name) {
            return Err(InputError::DuplicateColumn(name.clone()));
        }
        if !FIELDS.contains(&name.as_str()) {
            warnings.push(format!("line 1: ignoring unknown column {name:?}"));
        }
    }
    let records = rows
        .map(|row| {
            let line = row.line;
            let fields = match row.fields {
                Ok(fields) => fields,
                Err(description) => {
                    return Record {
                        line,
                        interaction_id: None,
                        result: Err(vec![FieldViolation::new("", description)]),
                    }
                }
            };
            let id = header
                .iter()
                .position(|h| h == "interaction_id")
                .and_then(|i| fields.get(i))
                .filter(|v| !v.is_empty())
                .cloned();
            let result = if fields.len() != header.len() {
                Err(vec![FieldViolation::new(
                    "",
                    format!(
                        "has {} fields but the header has {}",
                        fields.len(),
                        header.len()
                    ),
                )])
            } else {
                check_csv_row(&header, fields, now)
            };
            Record {
                line,
                interaction_id: id,
                result,
            }
        })
        .collect();
    Ok(Parsed { records, warnings })
}

/// One CSV row as a JSON object (so type errors read as they do for JSON),
/// with `attributes` parsed from `k=v;k=v`. An empty cell means absent.
fn check_csv_row(
    header: &[String],
    fields: Vec<String>,
    now: OffsetDateTime,
) -> Result<v1::Interaction, Vec<FieldViolation>> {
    let mut object = Map::new();
    let mut attributes = Vec::new();
    let mut violations = Vec::new();
    for (name, cell) in header.iter().zip(fields) {
        if cell.is_empty() || !FIELDS.contains(&name.as_str()) {
            continue;
        }
        let value = if INTEGER_FIELDS.contains(&name.as_str()) {
            match cell.trim().parse::<i64>() {
                Ok(n) => Value::from(n),
                Err(_) => Value::String(cell),
            }
        } else if name == "resolved" {
            match cell.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "1" => Value::Bool(true),
                "false" | "no" | "0" => Value::Bool(false),
                _ => Value::String(cell),
            }
        } else if name == "attributes" {
            match parse_attributes(&cell) {
                Ok(pairs) => attributes = pairs,
                Err(v) => violations.push(v),
            }
            continue;
        } else {
            Value::String(cell)
        };
        object.insert(name.clone(), value);
    }
    let (mut raw, mismatched) = RawInteraction::read_json(&Value::Object(object));
    raw.attributes = attributes;
    let result = check_raw(raw, mismatched, now);
    match (result, violations.is_empty()) {
        (result, true) => result,
        (Ok(_), false) => Err(violations),
        (Err(more), false) => {
            violations.extend(more);
            Err(violations)
        }
    }
}

/// `k=v;k=v` (a trailing `;` and spaces around keys are fine). Repeated keys
/// are kept so that validation reports them.
pub fn parse_attributes(cell: &str) -> Result<Vec<(String, String)>, FieldViolation> {
    cell.split(';')
        .filter(|pair| !pair.trim().is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => Ok((k.trim().to_owned(), v.to_owned())),
            None => Err(FieldViolation::new(
                "attributes",
                format!("must be key=value pairs separated by ';' (got {pair:?})"),
            )),
        })
        .collect()
}

/// A CSV record: the line it starts on and its fields, or why it is malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvRow {
    pub line: usize,
    pub fields: Result<Vec<String>, String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a field.
    FieldStart,
    Unquoted,
    Quoted,
    /// Just after a quote inside a quoted field: `""` or the closing quote.
    QuoteInQuoted,
    /// After a malformed record: skip to its end.
    Skip,
}

/// An RFC 4180 reader: `,` between fields; records end at CRLF, LF or CR;
/// fields may be quoted with `"`, `""` inside a quoted field is one quote,
/// and a quoted field may hold separators and line breaks. Blank lines are
/// skipped. A character after a closing quote, or a quote that never
/// closes, makes that record malformed (reported by line).
pub fn read_csv(text: &str) -> Vec<CsvRow> {
    let mut rows = Vec::new();
    let mut fields: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut state = State::FieldStart;
    let mut error: Option<String> = None;
    let mut line = 1;
    let mut start = 1;
    let mut chars = text.chars().peekable();

    let mut finish =
        |fields: &mut Vec<String>, field: &mut String, error: &mut Option<String>, start: usize| {
            fields.push(std::mem::take(field));
            let fields = std::mem::take(fields);
            match error.take() {
                Some(e) => rows.push(CsvRow {
                    line: start,
                    fields: Err(e),
                }),
                None if fields.len() == 1 && fields[0].is_empty() => {}
                None => rows.push(CsvRow {
                    line: start,
                    fields: Ok(fields),
                }),
            }
        };

    while let Some(c) = chars.next() {
        let newline = c == '\n' || c == '\r';
        if c == '\r' && chars.peek() == Some(&'\n') {
            // CRLF: handled as the LF that follows.
            if state == State::Quoted {
                field.push(c);
            }
            continue;
        }
        match state {
            State::Quoted => {
                if c == '"' {
                    state = State::QuoteInQuoted;
                } else {
                    field.push(c);
                }
            }
            State::Skip => {
                if newline {
                    finish(&mut fields, &mut field, &mut error, start);
                    state = State::FieldStart;
                    start = line + 1;
                }
            }
            State::FieldStart | State::Unquoted | State::QuoteInQuoted => {
                if c == '"' && state == State::FieldStart {
                    state = State::Quoted;
                } else if c == '"' && state == State::QuoteInQuoted {
                    field.push('"');
                    state = State::Quoted;
                } else if c == ',' {
                    fields.push(std::mem::take(&mut field));
                    state = State::FieldStart;
                } else if newline {
                    finish(&mut fields, &mut field, &mut error, start);
                    state = State::FieldStart;
                    start = line + 1;
                } else if state == State::QuoteInQuoted {
                    error = Some(format!(
                        "malformed CSV: {c:?} after the closing quote of field {}",
                        fields.len() + 1
                    ));
                    state = State::Skip;
                } else {
                    // A quote inside an unquoted field is kept as written.
                    field.push(c);
                    state = State::Unquoted;
                }
            }
        }
        if newline {
            line += 1;
        }
    }
    if state == State::Quoted {
        error = Some(format!(
            "malformed CSV: quoted field {} is never closed",
            fields.len() + 1
        ));
    }
    if state != State::FieldStart || !fields.is_empty() || error.is_some() {
        finish(&mut fields, &mut field, &mut error, start);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-22 12:00 UTC);

    fn fields(rows: &[CsvRow]) -> Vec<(usize, Vec<&str>)> {
        rows.iter()
            .map(|r| {
                let f = r.fields.as_ref().expect("well-formed row");
                (r.line, f.iter().map(String::as_str).collect())
            })
            .collect()
    }

    fn violated(record: &Record) -> Vec<String> {
        record
            .result
            .as_ref()
            .unwrap_err()
            .iter()
            .map(|v| v.to_string())
            .collect()
    }

    #[test]
    fn format_detection() {
        assert_eq!(Format::detect("in.csv", None), Format::Csv);
        assert_eq!(Format::detect("IN.CSV", None), Format::Csv);
        assert_eq!(Format::detect("in.jsonl", None), Format::Jsonl);
        assert_eq!(Format::detect("-", None), Format::Jsonl);
        assert_eq!(Format::detect("-", Some(Format::Csv)), Format::Csv);
    }

    #[test]
    fn csv_read_as_json_lines_is_pointed_out() {
        let now = OffsetDateTime::now_utc();
        let csv =
            "customer_id,occurred_at,channel,interaction_id\nc-1,2026-11-22T10:00:00Z,voice,i-1\n";
        let parsed = parse(csv, Format::Jsonl, now).unwrap();
        assert_eq!(
            parsed.warnings,
            ["line 1: looks like a CSV header; this input is read as JSON lines (pass --format csv)"]
        );
        assert!(parsed.records.iter().all(|r| r.result.is_err()));
        // Plain bad JSON gets no such hint.
        assert!(parse("{nope\n", Format::Jsonl, now)
            .unwrap()
            .warnings
            .is_empty());
    }

    #[test]
    fn csv_plain_and_quoted_fields() {
        let rows = read_csv("a,b,c\n1,\"two, too\",3\r\n\"say \"\"hi\"\"\",,\"\"\n");
        assert_eq!(
            fields(&rows),
            vec![
                (1, vec!["a", "b", "c"]),
                (2, vec!["1", "two, too", "3"]),
                (3, vec!["say \"hi\"", "", ""]),
            ]
        );
    }

    #[test]
    fn csv_quoted_line_breaks_keep_line_numbers() {
        let rows = read_csv("a,b\n\"multi\nline\",x\n\nlast,\"crlf\r\ninside\"");
        assert_eq!(
            fields(&rows),
            vec![
                (1, vec!["a", "b"]),
                (2, vec!["multi\nline", "x"]),
                (5, vec!["last", "crlf\r\ninside"]),
            ]
        );
    }

    #[test]
    fn csv_malformed_records_are_reported_by_line() {
        let rows = read_csv("a,b\n\"x\"y,z\nok,1\n\"open,2\n");
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[1].line, 2);
        assert!(rows[1]
            .fields
            .as_ref()
            .unwrap_err()
            .contains("closing quote"));
        assert_eq!(rows[2].fields, Ok(vec!["ok".into(), "1".into()]));
        assert_eq!(rows[3].line, 4);
        assert!(rows[3]
            .fields
            .as_ref()
            .unwrap_err()
            .contains("never closed"));
    }

    #[test]
    fn csv_edge_cases() {
        assert!(read_csv("").is_empty());
        assert!(read_csv("\n\r\n").is_empty());
        assert_eq!(fields(&read_csv("a")), vec![(1, vec!["a"])]);
        assert_eq!(fields(&read_csv(",\n")), vec![(1, vec!["", ""])]);
        assert_eq!(
            fields(&read_csv("a\rb\r")),
            vec![(1, vec!["a"]), (2, vec!["b"])]
        );
        // A stray quote in the middle of an unquoted field is kept.
        assert_eq!(fields(&read_csv("5\"3,x")), vec![(1, vec!["5\"3", "x"])]);
    }

    const GOOD: &str = r#"{"interaction_id":"i-1","customer_id":"c-1","occurred_at":"2026-11-22T11:00:00Z","channel":"voice","nps":3,"verbatim":"call me on 555-123-4567","attributes":{"region":"emea"}}"#;

    #[test]
    fn jsonl_unknown_fields_are_named_in_warnings_as_csv_columns_are() {
        let text = GOOD.replace(r#""nps":3"#, r#""NPS":3,"csat_score":1"#);
        let parsed = parse(&text, Format::Jsonl, NOW).unwrap();
        assert_eq!(
            parsed.warnings,
            [
                "line 1: ignoring unknown field \"NPS\"",
                "line 1: ignoring unknown field \"csat_score\"",
            ]
        );
        assert!(
            parsed.records[0].result.is_ok(),
            "still sent, as ingest would take it"
        );
        assert!(parse(GOOD, Format::Jsonl, NOW).unwrap().warnings.is_empty());
    }

    #[test]
    fn jsonl_good_lines_become_wire_interactions() {
        let text = format!("{GOOD}\n\n   \n{}\n", GOOD.replace("i-1", "i-2"));
        let parsed = parse(&text, Format::Jsonl, NOW).unwrap();
        assert_eq!(parsed.records.len(), 2);
        assert_eq!(parsed.records[0].line, 1);
        assert_eq!(parsed.records[1].line, 4);
        let wire = parsed.records[0].result.as_ref().unwrap();
        assert_eq!(wire.interaction_id, "i-1");
        assert_eq!(wire.channel, v1::Channel::Voice as i32);
        assert_eq!(wire.nps, Some(3));
        assert_eq!(
            wire.occurred_at,
            Some(Timestamp {
                seconds: datetime!(2026-11-22 11:00 UTC).unix_timestamp(),
                nanos: 0
            })
        );
        // Sent as written: ingest redacts and counts.
        assert_eq!(wire.verbatim.as_deref(), Some("call me on 555-123-4567"));
        assert_eq!(wire.attributes["region"], "emea");
        assert_eq!(parsed.records[1].interaction_id.as_deref(), Some("i-2"));
    }

    #[test]
    fn jsonl_bad_lines_name_their_fields() {
        let text = [
            r#"{"interaction_id":"i-3","customer_id":"c","occurred_at":"yesterday","channel":"Voice","nps":11}"#,
            "{not json",
            r#"{"interaction_id":"i-4","customer_id":"c","occurred_at":"2026-11-22T11:00:00Z","channel":"chat","csat":"five"}"#,
            "[1,2]",
            GOOD,
        ]
        .join("\n");
        let parsed = parse(&text, Format::Jsonl, NOW).unwrap();
        let r = &parsed.records;
        assert_eq!(r.len(), 5);
        assert_eq!(
            violated(&r[0]),
            [
                "occurred_at: must be an RFC 3339 timestamp, e.g. 2026-11-22T10:00:00Z",
                "channel: must be one of voice, chat, email, sms, web, social, in_person",
                "nps: must be between 0 and 10"
            ]
        );
        assert_eq!(r[0].interaction_id.as_deref(), Some("i-3"));
        assert_eq!(r[1].line, 2);
        assert!(violated(&r[1])[0].starts_with("invalid JSON: "));
        assert_eq!(violated(&r[2]), ["csat: must be an integer"]);
        assert_eq!(violated(&r[3]), ["interaction: must be a JSON object"]);
        assert!(r[4].result.is_ok());
    }

    #[test]
    fn jsonl_future_timestamps_use_the_given_clock() {
        let late = GOOD.replace("11:00:00Z", "12:06:00Z");
        let parsed = parse(&late, Format::Jsonl, NOW).unwrap();
        assert_eq!(
            violated(&parsed.records[0]),
            ["occurred_at: must not be more than 5 minutes in the future"]
        );
    }

    const HEADER: &str =
        "interaction_id,customer_id,occurred_at,channel,nps,resolved,verbatim,attributes";

    #[test]
    fn csv_good_rows() {
        let text = format!(
            "\u{feff}{HEADER}\r\n\
             i-1,c-1,2026-11-22T11:00:00Z,chat,9,true,\"Fine, \"\"really\"\"\",region=emea;tier=gold;\r\n\
             i-2,c-2,2026-11-22T11:00:00Z,email,,no,,\r\n"
        );
        let parsed = parse(&text, Format::Csv, NOW).unwrap();
        assert!(parsed.warnings.is_empty());
        assert_eq!(parsed.records.len(), 2);
        let one = parsed.records[0].result.as_ref().unwrap();
        assert_eq!(one.channel, v1::Channel::Chat as i32);
        assert_eq!(one.nps, Some(9));
        assert_eq!(one.resolved, Some(true));
        assert_eq!(one.verbatim.as_deref(), Some("Fine, \"really\""));
        assert_eq!(one.attributes.len(), 2);
        assert_eq!(one.attributes["tier"], "gold");
        let two = parsed.records[1].result.as_ref().unwrap();
        assert_eq!(parsed.records[1].line, 3);
        assert_eq!(two.nps, None);
        assert_eq!(two.resolved, Some(false));
        assert_eq!(two.verbatim, None);
        assert!(two.attributes.is_empty());
    }

    #[test]
    fn csv_bad_rows_name_their_fields() {
        let text = format!(
            "{HEADER},extra\n\
             ,c-1,2026-11-22T11:00:00Z,fax,ten,maybe,,region,x\n\
             i-2,c-2\n\
             i-3,c-3,2026-11-22T11:00:00Z,web,5,,,a=1;a=2,x\n"
        );
        let parsed = parse(&text, Format::Csv, NOW).unwrap();
        assert_eq!(
            parsed.warnings,
            ["line 1: ignoring unknown column \"extra\""]
        );
        let r = &parsed.records;
        // Type errors and the contract's rules, all at once.
        assert_eq!(
            violated(&r[0]),
            [
                "attributes: must be key=value pairs separated by ';' (got \"region\")",
                "nps: must be an integer",
                "resolved: must be true or false",
                "interaction_id: is required",
                "channel: must be one of voice, chat, email, sms, web, social, in_person",
            ]
        );
        assert_eq!(violated(&r[1]), ["has 2 fields but the header has 9"]);
        assert_eq!(r[1].interaction_id.as_deref(), Some("i-2"));
        assert_eq!(r[2].line, 4);
        assert_eq!(violated(&r[2]).len(), 1);
        assert!(violated(&r[2])[0].starts_with("attributes.a: "));

        // Without type errors, the contract's rules alone.
        let text = format!("{HEADER}\n,c-1,2026-11-22T11:00:00Z,fax,12,,,\n");
        let parsed = parse(&text, Format::Csv, NOW).unwrap();
        assert_eq!(
            violated(&parsed.records[0]),
            [
                "interaction_id: is required",
                "channel: must be one of voice, chat, email, sms, web, social, in_person",
                "nps: must be between 0 and 10"
            ]
        );
    }

    #[test]
    fn csv_header_problems() {
        assert_eq!(parse("", Format::Csv, NOW), Err(InputError::NoHeader));
        assert_eq!(
            parse("nps,nps\n1,2\n", Format::Csv, NOW),
            Err(InputError::DuplicateColumn("nps".into()))
        );
    }

    #[test]
    fn attribute_cells() {
        assert_eq!(parse_attributes(""), Ok(vec![]));
        assert_eq!(
            parse_attributes(" a=1; b = x=y ;"),
            Ok(vec![("a".into(), "1".into()), ("b".into(), " x=y ".into())])
        );
        assert_eq!(
            parse_attributes("a=1;oops").unwrap_err().field,
            "attributes"
        );
    }
}

//! `cxctl submit`: check every line locally, send the good ones in batches,
//! report a result per line and a summary.

use std::io::Read;
use std::process::ExitCode;
use std::time::Duration;

use cx_domain::FieldViolation;
use cx_proto::prost::Message;
use cx_proto::v1;
use cx_proto::v1::ingest_service_client::IngestServiceClient;
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::{emit, emit_json, explain, report, unary, CliError, CmdResult, Ctx, Exit, Svc, INGEST};
use crate::input::{self, Format};
use crate::SubmitArgs;

/// Request bytes per batch: well under ingest's default budget of request
/// bytes in progress (2 MiB), so a batch fits beside other clients' calls.
const MAX_BATCH_BYTES: usize = 1024 * 1024;

/// What happened to one input record.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    /// Valid, not sent (`--dry-run`).
    Valid,
    Accepted,
    Duplicate,
    /// Refused locally (`local`) or by ingest.
    Invalid {
        violations: Vec<FieldViolation>,
        local: bool,
    },
    /// Ingest could not take it (Kafka or Redis); safe to retry.
    Unavailable,
    /// Never sent: the connection failed first.
    NotSent,
}

impl Outcome {
    fn name(&self) -> &'static str {
        match self {
            Outcome::Valid => "valid",
            Outcome::Accepted => "accepted",
            Outcome::Duplicate => "duplicate",
            Outcome::Invalid { .. } => "invalid",
            Outcome::Unavailable => "unavailable",
            Outcome::NotSent => "not_sent",
        }
    }
}

fn read_input(path: &str) -> Result<String, CliError> {
    let mut text = String::new();
    let result = if path == "-" {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(path).map(|t| text = t)
    };
    result.map(|()| text).map_err(|source| CliError::Read {
        path: if path == "-" {
            "standard input".to_owned()
        } else {
            path.to_owned()
        },
        source,
    })
}

pub async fn run(ctx: &Ctx, args: SubmitArgs) -> CmdResult {
    let text = read_input(&args.file)?;
    let format = Format::detect(&args.file, args.format);
    let parsed = input::parse(&text, format, OffsetDateTime::now_utc())
        .map_err(|e| CliError::Usage(e.to_string()))?;
    for warning in &parsed.warnings {
        eprintln!("warning: {warning}");
    }

    let mut outcomes = Vec::with_capacity(parsed.records.len());
    let mut to_send = Vec::new();
    for (index, record) in parsed.records.iter().enumerate() {
        match &record.result {
            Ok(interaction) => {
                outcomes.push(if args.dry_run {
                    Outcome::Valid
                } else {
                    Outcome::NotSent
                });
                to_send.push((index, interaction.clone()));
            }
            Err(violations) => outcomes.push(Outcome::Invalid {
                violations: violations.clone(),
                local: true,
            }),
        }
    }

    let mut failure = None;
    if !args.dry_run && !to_send.is_empty() {
        if let Err(e) = send(ctx, to_send, args.batch_size as usize, &mut outcomes).await {
            failure = Some(explain(e, &INGEST, &ctx.global.ingest).await);
        }
    }

    for (record, outcome) in parsed.records.iter().zip(&outcomes) {
        print_line(ctx.json, args.quiet, record, outcome);
    }
    let summary = Summary::of(&outcomes);
    if ctx.json {
        emit_json(&json!({ "summary": summary.to_json() }));
    } else {
        emit(&summary.to_string());
    }
    if let Some(e) = &failure {
        report(e, ctx.json, ctx.global.token.is_some());
    }
    Err(Exit::Code(ExitCode::from(exit_code(
        failure.as_ref(),
        &summary,
    ))))
}

/// Sends `items` (record index, interaction) in batches of at most
/// `batch_size` and [`MAX_BATCH_BYTES`], recording each result; stops at the
/// first failed call.
async fn send(
    ctx: &Ctx,
    items: Vec<(usize, v1::Interaction)>,
    batch_size: usize,
    outcomes: &mut [Outcome],
) -> Result<(), CliError> {
    let mut client = ctx.ingest().await?;
    for batch in batches(items, batch_size, MAX_BATCH_BYTES) {
        let (indices, interactions): (Vec<usize>, Vec<v1::Interaction>) = batch.into_iter().unzip();
        let response = submit_retrying(&mut client, interactions).await?;
        for (position, result) in response.results.into_iter().enumerate() {
            let slot = usize::try_from(result.index)
                .ok()
                .filter(|&i| i < indices.len())
                .unwrap_or(position);
            let Some(&record) = indices.get(slot) else {
                continue;
            };
            outcomes[record] = match v1::SubmitStatus::try_from(result.status) {
                Ok(v1::SubmitStatus::Accepted) => Outcome::Accepted,
                Ok(v1::SubmitStatus::Duplicate) => Outcome::Duplicate,
                Ok(v1::SubmitStatus::Invalid) => Outcome::Invalid {
                    violations: result
                        .field_violations
                        .into_iter()
                        .map(|v| FieldViolation::new(v.field, v.description))
                        .collect(),
                    local: false,
                },
                _ => Outcome::Unavailable,
            };
        }
    }
    Ok(())
}

/// Calls of one batch while ingest answers UNAVAILABLE: it was shedding
/// load, or Kafka or Redis could not take the write; either way nothing was
/// half-done, and what an earlier call published answers `duplicate`.
const ATTEMPTS: u32 = 5;

async fn submit_retrying(
    client: &mut IngestServiceClient<Svc>,
    interactions: Vec<v1::Interaction>,
) -> Result<v1::SubmitInteractionsResponse, tonic::Status> {
    let mut pause = Duration::from_millis(100);
    let mut attempt = 1;
    loop {
        let request = unary(v1::SubmitInteractionsRequest {
            interactions: interactions.clone(),
        });
        match client.submit_interactions(request).await {
            Err(status) if status.code() == tonic::Code::Unavailable && attempt < ATTEMPTS => {
                tokio::time::sleep(pause).await;
                pause *= 2;
                attempt += 1;
            }
            answer => return answer.map(tonic::Response::into_inner),
        }
    }
}

/// Consecutive groups of at most `max_items` and (unless one item alone is
/// bigger) `max_bytes` of encoded interactions.
fn batches<T: Message>(
    items: Vec<(usize, T)>,
    max_items: usize,
    max_bytes: usize,
) -> Vec<Vec<(usize, T)>> {
    let mut out: Vec<Vec<(usize, T)>> = Vec::new();
    let mut current = Vec::new();
    let mut bytes = 0;
    for item in items {
        // Field tag and length prefix: a few bytes more than the message.
        let size = item.1.encoded_len() + 8;
        if !current.is_empty() && (current.len() >= max_items || bytes + size > max_bytes) {
            out.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += size;
        current.push(item);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn print_line(json: bool, quiet: bool, record: &input::Record, outcome: &Outcome) {
    let ok = matches!(
        outcome,
        Outcome::Valid | Outcome::Accepted | Outcome::Duplicate
    );
    if quiet && ok {
        return;
    }
    if json {
        let mut line = json!({
            "line": record.line,
            "interaction_id": record.interaction_id,
            "status": outcome.name(),
        });
        if let Outcome::Invalid { violations, local } = outcome {
            line["field_violations"] = serde_json::to_value(violations).unwrap_or(Value::Null);
            line["checked"] = json!(if *local { "local" } else { "ingest" });
        }
        emit_json(&line);
        return;
    }
    let id = record.interaction_id.as_deref().unwrap_or("-");
    let n = record.line;
    match outcome {
        Outcome::Invalid { violations, local } => {
            let by = if *local { "" } else { " (refused by ingest)" };
            for v in violations {
                emit(&format!("line {n}: {v}{by}"));
            }
        }
        Outcome::Unavailable => emit(&format!(
            "line {n}: unavailable {id} (ingest could not take it; safe to retry)"
        )),
        Outcome::NotSent => emit(&format!("line {n}: not sent {id}")),
        other => emit(&format!("line {n}: {} {id}", other.name())),
    }
}

/// A refused call (auth, bad request) is the caller's to fix: 1, as in
/// every command; a service that failed or is away: 2; invalid lines: 1.
fn exit_code(failure: Option<&CliError>, summary: &Summary) -> u8 {
    match failure {
        Some(e) => e.exit_code(),
        None if summary.unavailable + summary.not_sent > 0 => 2,
        None if summary.invalid > 0 => 1,
        None => 0,
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Summary {
    lines: usize,
    valid: usize,
    accepted: usize,
    duplicate: usize,
    invalid: usize,
    invalid_locally: usize,
    unavailable: usize,
    not_sent: usize,
}

impl Summary {
    fn of(outcomes: &[Outcome]) -> Summary {
        let mut s = Summary {
            lines: outcomes.len(),
            ..Summary::default()
        };
        for outcome in outcomes {
            match outcome {
                Outcome::Valid => s.valid += 1,
                Outcome::Accepted => s.accepted += 1,
                Outcome::Duplicate => s.duplicate += 1,
                Outcome::Invalid { local, .. } => {
                    s.invalid += 1;
                    s.invalid_locally += usize::from(*local);
                }
                Outcome::Unavailable => s.unavailable += 1,
                Outcome::NotSent => s.not_sent += 1,
            }
        }
        s
    }

    fn to_json(&self) -> Value {
        json!({
            "lines": self.lines,
            "valid": self.valid,
            "accepted": self.accepted,
            "duplicate": self.duplicate,
            "invalid": self.invalid,
            "invalid_locally": self.invalid_locally,
            "unavailable": self.unavailable,
            "not_sent": self.not_sent,
        })
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} lines:", self.lines)?;
        let mut parts = Vec::new();
        if self.valid > 0 {
            parts.push(format!("{} valid (dry run, not sent)", self.valid));
        }
        parts.push(format!("{} accepted", self.accepted));
        parts.push(format!("{} duplicate", self.duplicate));
        parts.push(if self.invalid_locally > 0 {
            format!(
                "{} invalid ({} found locally)",
                self.invalid, self.invalid_locally
            )
        } else {
            format!("{} invalid", self.invalid)
        });
        if self.unavailable > 0 {
            parts.push(format!("{} unavailable", self.unavailable));
        }
        if self.not_sent > 0 {
            parts.push(format!("{} not sent", self.not_sent));
        }
        write!(f, " {}", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_call_exits_1_and_an_unreachable_service_2() {
        let none = Summary::default();
        let denied = CliError::Status(tonic::Status::permission_denied("token lacks scope"));
        let unauthenticated = CliError::Status(tonic::Status::unauthenticated("unknown token"));
        let away = CliError::Connect {
            addr: "http://127.0.0.1:1".into(),
            source: "refused".into(),
        };
        let failed = CliError::Status(tonic::Status::unavailable("kafka unavailable"));
        assert_eq!(exit_code(Some(&denied), &none), 1);
        assert_eq!(exit_code(Some(&unauthenticated), &none), 1);
        assert_eq!(exit_code(Some(&away), &none), 2);
        assert_eq!(exit_code(Some(&failed), &none), 2);
        let answered = |unavailable, invalid| Summary {
            unavailable,
            invalid,
            ..Summary::default()
        };
        assert_eq!(exit_code(None, &answered(1, 0)), 2);
        assert_eq!(exit_code(None, &answered(0, 3)), 1);
        assert_eq!(exit_code(None, &none), 0);
    }

    fn item(i: usize, verbatim_len: usize) -> (usize, v1::Interaction) {
        (
            i,
            v1::Interaction {
                interaction_id: format!("i-{i}"),
                verbatim: Some("x".repeat(verbatim_len)),
                ..Default::default()
            },
        )
    }

    #[test]
    fn batches_split_by_count_and_size() {
        let items: Vec<_> = (0..2500).map(|i| item(i, 10)).collect();
        let sizes: Vec<usize> = batches(items, 1000, MAX_BATCH_BYTES)
            .iter()
            .map(Vec::len)
            .collect();
        assert_eq!(sizes, [1000, 1000, 500]);

        let items: Vec<_> = (0..5).map(|i| item(i, 400)).collect();
        let groups = batches(items, 1000, 1000);
        assert_eq!(groups.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
        assert_eq!(groups[2][0].0, 4);
        // One item bigger than the limit still goes, alone.
        assert_eq!(batches(vec![item(0, 5000)], 1000, 1000).len(), 1);
    }

    #[test]
    fn summary_counts_and_reads() {
        let outcomes = [
            Outcome::Accepted,
            Outcome::Accepted,
            Outcome::Duplicate,
            Outcome::Invalid {
                violations: vec![],
                local: true,
            },
            Outcome::Invalid {
                violations: vec![],
                local: false,
            },
        ];
        let s = Summary::of(&outcomes);
        assert_eq!(
            s.to_string(),
            "5 lines: 2 accepted, 1 duplicate, 2 invalid (1 found locally)"
        );
        assert_eq!(s.to_json()["invalid_locally"], 1);
        let s = Summary::of(&[Outcome::Accepted, Outcome::NotSent, Outcome::Unavailable]);
        assert_eq!(
            s.to_string(),
            "3 lines: 1 accepted, 0 duplicate, 0 invalid, 1 unavailable, 1 not sent"
        );
    }
}

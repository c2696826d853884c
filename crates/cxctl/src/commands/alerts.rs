//! `cxctl alerts tail | list | ack` (AlertService).

use cx_proto::v1;
use time::OffsetDateTime;
use tonic::Request;

use super::{
    emit, emit_json, fetch_matching, unary, watch_once, Backoff, CliError, CmdResult, Ctx, Page,
};
use crate::output;
use crate::{AlertsAckArgs, AlertsListArgs, AlertsTailArgs};

/// The contract's alert kinds.
const KINDS: [&str; 4] = ["response", "keyword", "threshold", "spike"];

fn since(text: Option<&str>, now: OffsetDateTime) -> Result<Option<OffsetDateTime>, CliError> {
    text.map(|t| output::parse_since(t, now))
        .transpose()
        .map_err(|e| CliError::Usage(format!("--since: {e}")))
}

/// `--kind` (tail and list): each name must be one of [`KINDS`].
fn check_kinds(kinds: &[String]) -> Result<(), CliError> {
    match kinds.iter().find(|kind| !KINDS.contains(&kind.as_str())) {
        Some(kind) => Err(CliError::Usage(format!(
            "--kind: {kind:?} is not one of {}",
            KINDS.join(", ")
        ))),
        None => Ok(()),
    }
}

/// Whether `alert` is of one of `kinds` (none given: every kind).
fn wanted(kinds: &[String], alert: &v1::Alert) -> bool {
    kinds.is_empty() || kinds.contains(&alert.kind)
}

fn print_alert(ctx: &Ctx, alert: &v1::Alert) {
    if ctx.json {
        emit_json(&output::alert_json(alert));
    } else {
        emit(&output::alert_line(alert, ctx.color));
    }
}

/// Follows WatchAlerts. When an established stream drops, it resumes after
/// the last alert printed (or from when the tail started), so nothing is
/// missed or printed twice.
pub async fn tail(ctx: &Ctx, args: AlertsTailArgs) -> CmdResult {
    let started = OffsetDateTime::now_utc();
    let mut since = since(args.since.as_deref(), started)?;
    check_kinds(&args.kind)?;
    let mut after = args.after.unwrap_or_default();
    let severity = args.severity.unwrap_or_default();
    let mut client = ctx.alerts().await?;
    let mut established = false;
    let mut backoff = Backoff::new();
    loop {
        let request = v1::WatchAlertsRequest {
            since: since.map(output::to_timestamp),
            after_alert_id: after.clone(),
            severity: severity.clone(),
        };
        let opened = client.watch_alerts(Request::new(request)).await;
        let dropped = watch_once(opened, &mut established, &mut backoff, |alert| {
            if wanted(&args.kind, &alert) {
                print_alert(ctx, &alert);
            }
            after.clone_from(&alert.alert_id);
            since = None;
        })
        .await?;
        if after.is_empty() && since.is_none() {
            since = Some(started);
        }
        backoff.pause("alert", &dropped).await;
    }
}

pub async fn list(ctx: &Ctx, args: AlertsListArgs) -> CmdResult {
    let now = OffsetDateTime::now_utc();
    let since = since(args.since.as_deref(), now)?;
    check_kinds(&args.kind)?;
    // ListAlerts has no kind filter: other kinds are dropped here, and
    // pages fetched until --limit alerts of the wanted kinds.
    let keep = |alert: &v1::Alert| wanted(&args.kind, alert);
    let keep: Option<&dyn Fn(&v1::Alert) -> bool> = (!args.kind.is_empty()).then_some(&keep);
    let mut client = ctx.alerts().await?;
    let (alerts, more) = fetch_matching(args.limit, keep, async |page_size, page_token| {
        let request = v1::ListAlertsRequest {
            since: since.map(output::to_timestamp),
            severity: args.severity.clone().unwrap_or_default(),
            dimension: args.dimension.clone().unwrap_or_default(),
            key: args.key.clone().unwrap_or_default(),
            acknowledged: args.unacked.then_some(false),
            page_size,
            page_token,
        };
        let page = client.list_alerts(unary(request)).await?.into_inner();
        Ok(Page {
            items: page.alerts,
            next_page_token: page.next_page_token,
        })
    })
    .await?;

    if ctx.json {
        alerts
            .iter()
            .for_each(|a| emit_json(&output::alert_json(a)));
        return Ok(());
    }
    if alerts.is_empty() {
        eprintln!("no alerts");
        return Ok(());
    }
    let mut table = output::alert_table();
    for a in &alerts {
        table.push(output::alert_row(a));
    }
    emit(table.render().trim_end());
    if more {
        eprintln!("(more alerts may match; raise --limit, 0 for all)");
    }
    Ok(())
}

pub async fn ack(ctx: &Ctx, args: AlertsAckArgs) -> CmdResult {
    let mut client = ctx.alerts().await?;
    let alert = client
        .acknowledge_alert(unary(v1::AcknowledgeAlertRequest {
            alert_id: args.alert_id,
            acknowledged_by: args.by.unwrap_or_default(),
        }))
        .await?
        .into_inner();
    if ctx.json {
        emit_json(&output::alert_json(&alert));
    } else {
        emit(&format!(
            "acknowledged {} by {} at {}",
            alert.alert_id,
            output::or_dash(alert.acknowledged_by.as_deref()),
            output::time_short(output::from_timestamp(alert.acknowledged_at.as_ref()))
        ));
        emit(&output::alert_line(&alert, ctx.color));
    }
    Ok(())
}

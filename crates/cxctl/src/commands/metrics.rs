//! `cxctl metrics` (RankKeys) and `cxctl metrics get` (GetMetrics).

use cx_proto::v1;
use serde_json::json;
use time::OffsetDateTime;

use super::{emit, emit_json, unary, CliError, CmdResult, Ctx};
use crate::output;
use crate::{MetricsGetArgs, RankArgs};

pub async fn rank(ctx: &Ctx, args: RankArgs) -> CmdResult {
    let mut client = ctx.metrics().await?;
    let ranked = client
        .rank_keys(unary(v1::RankKeysRequest {
            dimension: args.dimension.clone(),
            window: args.window.clone(),
            metric: args.metric.clone(),
            limit: args.limit,
            best: args.best,
            min_responses: args.min_responses.unwrap_or(0),
        }))
        .await?
        .into_inner();
    if ctx.json {
        for (i, key) in ranked.keys.iter().enumerate() {
            emit_json(&json!({
                "rank": i + 1,
                "dimension": args.dimension,
                "key": key.key,
                "window": args.window,
                "metric": args.metric,
                "value": key.value,
                "metrics": key.metrics.as_ref().map(output::metrics_json),
            }));
        }
        return Ok(());
    }
    let order = if args.best { "best" } else { "worst" };
    emit(&format!(
        "{} by {} over {}, {order} first",
        args.dimension, args.metric, args.window
    ));
    if ranked.keys.is_empty() {
        emit("(no keys with enough responses)");
        return Ok(());
    }
    let mut table = output::rank_table(&args.metric);
    for (i, key) in ranked.keys.iter().enumerate() {
        table.push(output::rank_row(i + 1, key, &args.metric));
    }
    emit(table.render().trim_end());
    Ok(())
}

pub async fn get(ctx: &Ctx, args: MetricsGetArgs) -> CmdResult {
    let key = match (args.key, args.dimension.as_str()) {
        (Some(key), _) => key,
        (None, "global") => "all".to_owned(),
        (None, dimension) => {
            return Err(CliError::Usage(format!(
                "--key is required for dimension {dimension:?} (only global defaults to \"all\")"
            ))
            .into())
        }
    };
    let mut client = ctx.metrics().await?;
    let response = client
        .get_metrics(unary(v1::GetMetricsRequest {
            dimension: args.dimension,
            key,
            window: args.window,
        }))
        .await?
        .into_inner();
    let metrics = response.metrics.unwrap_or_default();
    let as_of = OffsetDateTime::from_unix_timestamp(response.as_of_unix).ok();
    if ctx.json {
        emit_json(&json!({
            "dimension": response.dimension,
            "key": response.key,
            "window": response.window,
            "as_of": as_of.and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok()),
            "metrics": output::metrics_json(&metrics),
        }));
        return Ok(());
    }
    emit(&format!(
        "{}={} over {} (as of {})",
        response.dimension,
        response.key,
        response.window,
        output::time_short(as_of.filter(|_| response.as_of_unix != 0))
    ));
    emit(output::metrics_details(&metrics).trim_end());
    Ok(())
}

//! `cxctl stats`: the close-the-loop measures of cx-followup (`GET /v1/stats`).

use serde_json::Value;
use tonic::Status;

use super::{emit, emit_json, CliError, CmdResult, Ctx};
use crate::output;
use crate::StatsArgs;

/// The scope `GET /v1/stats` needs.
const SCOPE: &str = "followups:read";

pub async fn run(ctx: &Ctx, args: StatsArgs) -> CmdResult {
    let body = ctx
        .http_get_json(&ctx.global.followup_http, "/v1/stats", SCOPE)
        .await?;
    let (teams, total) = split(&body)?;
    if let Some(wanted) = args.team.as_deref() {
        let team = teams
            .iter()
            .find(|t| t["team"].as_str() == Some(wanted))
            .ok_or_else(|| {
                CliError::Status(Status::not_found(format!(
                    "no follow-up stats for team {wanted:?} (known: {})",
                    known(teams)
                )))
            })?;
        if ctx.json {
            emit_json(team);
        } else {
            emit(output::stats_render(std::slice::from_ref(team), None).trim_end());
        }
        return Ok(());
    }
    if ctx.json {
        emit_json(&body);
    } else {
        emit(output::stats_render(teams, Some(total)).trim_end());
    }
    Ok(())
}

/// The `teams` array and the `total` object; anything else is a broken answer.
fn split(body: &Value) -> Result<(&[Value], &Value), CliError> {
    match (body["teams"].as_array(), body.get("total")) {
        (Some(teams), Some(total)) if total.is_object() => Ok((teams, total)),
        _ => Err(CliError::Status(Status::internal(
            "GET /v1/stats: the answer has no `teams` array and `total` object",
        ))),
    }
}

fn known(teams: &[Value]) -> String {
    let names: Vec<&str> = teams.iter().filter_map(|t| t["team"].as_str()).collect();
    if names.is_empty() {
        "none yet".to_owned()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_must_have_teams_and_total() {
        let good = json!({"teams": [{"team": "care"}], "total": {"team": "all"}});
        let (teams, total) = split(&good).unwrap();
        assert_eq!(teams.len(), 1);
        assert_eq!(total["team"], "all");
        assert_eq!(known(teams), "care");
        assert_eq!(known(&[]), "none yet");
        for bad in [json!({}), json!({"teams": [], "total": null}), json!([])] {
            let error = split(&bad).unwrap_err();
            assert_eq!(error.exit_code(), 2, "{bad}");
        }
    }
}

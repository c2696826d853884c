//! cxctl: the operator CLI of cxloop (see `cxctl --help`).

mod commands;
mod input;
mod output;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::input::Format;

const EXIT_CODES: &str = "\
Exit codes:
  0  success (submit: every line accepted or a duplicate)
  1  a request was refused (bad input, not found, stale version, auth),
     submit found invalid lines, or the command line is wrong
  2  a service could not be reached or failed (transport error, UNAVAILABLE)";

/// Operator CLI for cxloop: submit interactions, tail and acknowledge alerts,
/// work follow-up tasks, rank rolling-window metrics.
#[derive(Debug, Parser)]
#[command(name = "cxctl", version, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// Bearer token (needs the scopes of the service called).
    #[arg(long, env = "CX_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// Machine output: one JSON object per line.
    #[arg(long, global = true)]
    pub json: bool,
    /// IngestService address.
    #[arg(
        long,
        env = commands::INGEST.env,
        global = true,
        default_value = commands::INGEST.default
    )]
    pub ingest: String,
    /// MetricsService address (cx-scoring).
    #[arg(
        long,
        env = commands::METRICS.env,
        global = true,
        default_value = commands::METRICS.default
    )]
    pub metrics: String,
    /// AlertService address (cx-alerting).
    #[arg(
        long,
        env = commands::ALERTS.env,
        global = true,
        default_value = commands::ALERTS.default
    )]
    pub alerts: String,
    /// FollowUpService address (cx-followup).
    #[arg(
        long,
        env = commands::FOLLOWUP.env,
        global = true,
        default_value = commands::FOLLOWUP.default
    )]
    pub followup: String,
    /// HTTP address of cx-followup (`GET /v1/stats`).
    #[arg(
        long,
        env = commands::FOLLOWUP_HTTP.env,
        global = true,
        default_value = commands::FOLLOWUP_HTTP.default
    )]
    pub followup_http: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate interactions from a JSON-lines or CSV file and submit the good ones.
    Submit(SubmitArgs),
    /// Detractor and threshold alerts.
    #[command(subcommand)]
    Alerts(AlertsCommand),
    /// Close-the-loop follow-up tasks.
    #[command(subcommand)]
    Tasks(TasksCommand),
    /// Rolling-window metrics: rank the keys of a dimension, or `get` one key.
    Metrics(MetricsArgs),
    /// Close-the-loop measures per team from cx-followup (`GET /v1/stats`).
    Stats(StatsArgs),
}

#[derive(Debug, Args)]
#[command(after_help = "\
Per team: tasks opened, customers contacted, mean time to first contact, share
contacted within the SLA, escalations, and recovered / not recovered outcomes.
The `all` row (last) totals every team. Needs a token with scope followups:read.
`-` marks a figure with nothing to measure yet.")]
pub struct StatsArgs {
    /// Only this team (no total row; with --json the team's object alone).
    #[arg(long, value_name = "T")]
    pub team: Option<String>,
}

#[derive(Debug, Args)]
#[command(after_help = "\
Every line is checked locally with the contract's rules; bad lines are reported
as `line N: field: description` and not sent. Good lines go in SubmitInteractions
batches of at most 1000. CSV: a header row of contract field names; empty cells
are absent; `resolved` is true/false; `attributes` is `key=value;key=value`.")]
pub struct SubmitArgs {
    /// JSON-lines or CSV file; `-` reads standard input.
    pub file: String,
    /// Input format (default: csv for a `.csv` file, otherwise jsonl).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Interactions per SubmitInteractions call (at most 1000).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub batch_size: u32,
    /// Only check the input; send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print only invalid lines and the summary.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Follow new alerts as they are raised (WatchAlerts); resumes after a dropped stream.
    Tail(AlertsTailArgs),
    /// List alerts, newest first as the service returns them.
    List(AlertsListArgs),
    /// Acknowledge an alert.
    Ack(AlertsAckArgs),
}

#[derive(Debug, Args)]
pub struct AlertsTailArgs {
    /// Only this severity: info, warning or critical.
    #[arg(long)]
    pub severity: Option<String>,
    /// Replay from this point first: a duration back (1h, 30m) or an RFC 3339 time.
    #[arg(long)]
    pub since: Option<String>,
    /// Replay everything after this alert first.
    #[arg(long, value_name = "ALERT_ID")]
    pub after: Option<String>,
    /// Only these kinds, comma-separated: response, keyword, threshold, spike.
    #[arg(long, value_delimiter = ',')]
    pub kind: Vec<String>,
}

#[derive(Debug, Args)]
pub struct AlertsListArgs {
    /// Only this severity: info, warning or critical.
    #[arg(long)]
    pub severity: Option<String>,
    /// Only these kinds, comma-separated: response, keyword, threshold, spike.
    #[arg(long, value_delimiter = ',')]
    pub kind: Vec<String>,
    /// Only this dimension: agent, team, queue, channel, global.
    #[arg(long)]
    pub dimension: Option<String>,
    /// Only this key of the dimension.
    #[arg(long, requires = "dimension")]
    pub key: Option<String>,
    /// Only alerts nobody has acknowledged.
    #[arg(long)]
    pub unacked: bool,
    /// Only alerts since: a duration back (1h) or an RFC 3339 time.
    #[arg(long)]
    pub since: Option<String>,
    /// At most this many alerts (fetched page by page); 0 for all.
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
}

#[derive(Debug, Args)]
pub struct AlertsAckArgs {
    /// The alert to acknowledge (al_…, as `alerts list` shows it).
    pub alert_id: String,
    /// Who acknowledges (default: the name of the caller's token).
    #[arg(long, value_name = "NAME")]
    pub by: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum TasksCommand {
    /// List tasks as a table.
    List(TasksListArgs),
    /// Every field of one task.
    Show {
        /// The task (task_…, as `tasks list` shows it).
        task_id: String,
    },
    /// Move a task to a new state (needs the version you read).
    Update(TasksUpdateArgs),
    /// Follow task changes as they happen (WatchTasks).
    Watch(TasksWatchArgs),
}

#[derive(Debug, Args)]
pub struct TasksListArgs {
    /// open, in_progress, contacted, resolved, escalated or closed.
    #[arg(long)]
    pub state: Option<String>,
    /// Only tasks this owner holds.
    #[arg(long)]
    pub owner: Option<String>,
    /// Only this customer's tasks.
    #[arg(long)]
    pub customer: Option<String>,
    /// Only tasks past their due time.
    #[arg(long)]
    pub overdue: bool,
    /// At most this many tasks (fetched page by page); 0 for all.
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
}

#[derive(Debug, Args)]
#[command(after_help = "\
Transitions: open -> in_progress, contacted, escalated, closed; in_progress ->
contacted, escalated, closed; escalated -> in_progress, contacted, closed;
contacted -> resolved, closed; resolved -> closed. Anything else, or a version
that is no longer current, is refused with FAILED_PRECONDITION.")]
pub struct TasksUpdateArgs {
    /// The task to update.
    pub task_id: String,
    /// The version you read (`tasks show`; versions start at 1); a stale
    /// one is refused.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub version: u64,
    /// The new state.
    #[arg(long)]
    pub state: String,
    /// Hand the task to another owner.
    #[arg(long)]
    pub owner: Option<String>,
    /// Root cause (recorded on resolve).
    #[arg(long, value_name = "TEXT")]
    pub root_cause: Option<String>,
    /// Resolution note.
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
}

#[derive(Debug, Args)]
pub struct TasksWatchArgs {
    /// Only changes of tasks this owner holds.
    #[arg(long)]
    pub owner: Option<String>,
    /// Only changes of this customer's tasks.
    #[arg(long)]
    pub customer: Option<String>,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct MetricsArgs {
    #[command(subcommand)]
    pub command: Option<MetricsCommand>,
    #[command(flatten)]
    pub rank: RankArgs,
}

/// Without a subcommand: the worst (or best) keys of a dimension (RankKeys).
#[derive(Debug, Args)]
pub struct RankArgs {
    /// agent, team, queue or channel.
    #[arg(long, default_value = "queue")]
    pub dimension: String,
    /// 15m, 1h, 24h or 7d.
    #[arg(long, default_value = "1h")]
    pub window: String,
    /// A metric name as in GetMetrics: nps, csat_pct, ces_avg, easy_pct, fcr_pct, …
    #[arg(long, default_value = "nps")]
    pub metric: String,
    /// How many keys.
    #[arg(long, default_value_t = 10)]
    pub limit: u32,
    /// Best first (default: worst first).
    #[arg(long)]
    pub best: bool,
    /// Leave out keys with fewer responses.
    #[arg(long, value_name = "N")]
    pub min_responses: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum MetricsCommand {
    /// Every figure of one key over one window (GetMetrics).
    Get(MetricsGetArgs),
}

#[derive(Debug, Args)]
pub struct MetricsGetArgs {
    /// agent, team, queue, channel or global.
    #[arg(long)]
    pub dimension: String,
    /// The key (default `all` for the global dimension).
    #[arg(long)]
    pub key: Option<String>,
    /// 15m, 1h, 24h or 7d.
    #[arg(long, default_value = "1h")]
    pub window: String,
}

fn main() -> ExitCode {
    // clap exits 2 on a bad command line, the code kept for a service that
    // cannot be reached: a script must tell a typo from an outage.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() { 1 } else { 0 });
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(commands::run(cli))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn metrics_ranks_without_a_subcommand() {
        let cli = Cli::try_parse_from(["cxctl", "metrics", "--best", "--limit", "3"]).unwrap();
        let Command::Metrics(m) = cli.command else {
            panic!("metrics")
        };
        assert!(m.command.is_none());
        assert!(m.rank.best);
        assert_eq!(m.rank.dimension, "queue");
        let cli = Cli::try_parse_from([
            "cxctl",
            "metrics",
            "get",
            "--dimension",
            "queue",
            "--key",
            "billing",
            "--window",
            "24h",
            "--json",
        ])
        .unwrap();
        assert!(cli.global.json);
        let Command::Metrics(MetricsArgs {
            command: Some(MetricsCommand::Get(get)),
            ..
        }) = cli.command
        else {
            panic!("metrics get")
        };
        assert_eq!(get.key.as_deref(), Some("billing"));
    }

    #[test]
    fn stats_takes_a_team_and_an_http_address() {
        let cli = Cli::try_parse_from([
            "cxctl",
            "stats",
            "--team",
            "care",
            "--followup-http",
            "127.0.0.1:9999",
        ])
        .unwrap();
        assert_eq!(cli.global.followup_http, "127.0.0.1:9999");
        let Command::Stats(stats) = cli.command else {
            panic!("stats")
        };
        assert_eq!(stats.team.as_deref(), Some("care"));
    }

    #[test]
    fn alerts_list_takes_kinds() {
        let cli =
            Cli::try_parse_from(["cxctl", "alerts", "list", "--kind", "response,keyword"]).unwrap();
        let Command::Alerts(AlertsCommand::List(list)) = cli.command else {
            panic!("alerts list")
        };
        assert_eq!(list.kind, ["response", "keyword"]);
    }

    #[test]
    fn batch_size_is_bounded() {
        assert!(Cli::try_parse_from(["cxctl", "submit", "-", "--batch-size", "1001"]).is_err());
        assert!(Cli::try_parse_from(["cxctl", "alerts", "list", "--key", "billing"]).is_err());
    }
}

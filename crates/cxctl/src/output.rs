//! Everything printed: aligned tables, times and durations, one-line alerts and
//! tasks, and the `--json` form of each message (one object per line).

use cx_proto::prost_types::Timestamp;
use cx_proto::v1;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

/// How a table column is aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A plain-text table; widths count characters.
#[derive(Debug, Clone)]
pub struct Table {
    header: Vec<String>,
    align: Vec<Align>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(columns: &[(&str, Align)]) -> Self {
        Self {
            header: columns.iter().map(|(h, _)| (*h).to_owned()).collect(),
            align: columns.iter().map(|(_, a)| *a).collect(),
            rows: Vec::new(),
        }
    }

    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    /// Columns two spaces apart; no trailing spaces.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                if let Some(w) = widths.get_mut(i) {
                    *w = (*w).max(cell.chars().count());
                }
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                let pad = widths[i].saturating_sub(cell.chars().count());
                let align = self.align.get(i).copied().unwrap_or(Align::Left);
                if align == Align::Right {
                    line.extend(std::iter::repeat_n(' ', pad));
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// A compact duration, truncated: `45s`, `5m`, `3h12m`, `3h`, `2d4h`, `2d`.
pub fn compact_duration(d: Duration) -> String {
    let s = d.whole_seconds().unsigned_abs();
    let (days, hours, minutes) = (s / 86_400, s % 86_400 / 3_600, s % 3_600 / 60);
    match s {
        0..60 => format!("{s}s"),
        60..3_600 => format!("{minutes}m"),
        3_600..86_400 if minutes == 0 => format!("{hours}h"),
        3_600..86_400 => format!("{hours}h{minutes}m"),
        _ if hours == 0 => format!("{days}d"),
        _ => format!("{days}d{hours}h"),
    }
}

/// Seconds as a compact duration: `5.5s` under a minute (tenths), then whole
/// seconds rounded: `3m12s`, `3m`, `1h5m`, `1h`, `2d4h`; `-` when absent.
pub fn compact_seconds(seconds: Option<f64>) -> String {
    let Some(seconds) = seconds.filter(|s| s.is_finite()) else {
        return "-".to_owned();
    };
    let seconds = seconds.abs();
    let tenths = (seconds * 10.0).round();
    if tenths < 600.0 {
        return format!("{:.1}s", tenths / 10.0);
    }
    // Saturating cast: float-to-int `as` clamps, and the value is finite.
    let s = seconds.round() as u64;
    let (days, hours, minutes, secs) = (s / 86_400, s % 86_400 / 3_600, s % 3_600 / 60, s % 60);
    let pair = |a: u64, ua: &str, b: u64, ub: &str| {
        if b == 0 {
            format!("{a}{ua}")
        } else {
            format!("{a}{ua}{b}{ub}")
        }
    };
    match s {
        ..3_600 => pair(minutes, "m", secs, "s"),
        3_600..86_400 => pair(hours, "h", minutes, "m"),
        _ => pair(days, "d", hours, "h"),
    }
}

/// `in 3h12m` before the due time, `overdue 5m` after it.
pub fn due_label(due: OffsetDateTime, now: OffsetDateTime) -> String {
    if due >= now {
        format!("in {}", compact_duration(due - now))
    } else {
        format!("overdue {}", compact_duration(now - due))
    }
}

/// A duration as operators type it: `90s`, `15m`, `1h30m`, `7d`, `2w`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration like 15m, 1h, 1h30m or 7d");
    let mut total = Duration::ZERO;
    let mut digits = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let n: i64 = digits.parse().map_err(|_| bad())?;
        digits.clear();
        total += match c {
            's' => Duration::seconds(n),
            'm' => Duration::minutes(n),
            'h' => Duration::hours(n),
            'd' => Duration::days(n),
            'w' => Duration::weeks(n),
            _ => return Err(bad()),
        };
    }
    if !digits.is_empty() || text.trim().is_empty() {
        return Err(bad());
    }
    Ok(total)
}

/// `--since`: a duration back from `now` (`1h`) or an RFC 3339 time.
pub fn parse_since(text: &str, now: OffsetDateTime) -> Result<OffsetDateTime, String> {
    if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(at);
    }
    parse_duration(text)
        .map(|d| now - d)
        .map_err(|_| format!("{text:?} is neither a duration like 1h nor an RFC 3339 time"))
}

pub fn to_timestamp(t: OffsetDateTime) -> Timestamp {
    Timestamp {
        seconds: t.unix_timestamp(),
        nanos: i32::try_from(t.nanosecond()).unwrap_or(0),
    }
}

/// A protobuf timestamp; an unset one (or the epoch default) is `None`.
pub fn from_timestamp(t: Option<&Timestamp>) -> Option<OffsetDateTime> {
    let t = t.filter(|t| t.seconds != 0 || t.nanos != 0)?;
    let at = OffsetDateTime::from_unix_timestamp(t.seconds).ok()?;
    Some(at + Duration::nanoseconds(i64::from(t.nanos.clamp(0, 999_999_999))))
}

/// RFC 3339 in UTC to the second (human output), `-` when absent.
pub fn time_short(t: Option<OffsetDateTime>) -> String {
    match t {
        Some(t) => t
            .replace_nanosecond(0)
            .unwrap_or(t)
            .format(&Rfc3339)
            .unwrap_or_else(|_| t.to_string()),
        None => "-".to_owned(),
    }
}

/// RFC 3339 (JSON output), `null` when absent.
pub fn time_json(t: Option<&Timestamp>) -> Value {
    from_timestamp(t)
        .and_then(|t| t.format(&Rfc3339).ok())
        .map_or(Value::Null, Value::String)
}

/// A figure with `digits` decimals, `-` when absent.
pub fn figure(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.digits$}"))
}

/// `-` for an empty or absent string.
pub fn or_dash(s: Option<&str>) -> String {
    match s {
        Some(s) if !s.is_empty() => s.to_owned(),
        _ => "-".to_owned(),
    }
}

/// ANSI colour for a severity; `None` leaves it plain.
fn severity_color(severity: &str) -> Option<&'static str> {
    match severity {
        "critical" => Some("\x1b[1;31m"),
        "warning" => Some("\x1b[33m"),
        "info" => Some("\x1b[36m"),
        _ => None,
    }
}

/// The severity upper-cased and padded to 8, coloured when `color`.
pub fn severity_label(severity: &str, color: bool) -> String {
    let text = format!("{:<8}", severity.to_uppercase());
    match severity_color(severity) {
        Some(code) if color => {
            format!("{code}{}\x1b[0m", text.trim_end())
                + &" ".repeat(8usize.saturating_sub(severity.len()))
        }
        _ => text,
    }
}

/// What an alert is about: `queue=billing`, led by `customer=c-42` when it
/// is about one customer (response and keyword alerts carry customer_id),
/// as operators act on those by customer.
pub fn alert_subject(a: &v1::Alert) -> String {
    match a.customer_id.as_deref() {
        Some(customer) if !customer.is_empty() => {
            format!("customer={customer} {}={}", a.dimension, a.key)
        }
        _ => format!("{}={}", a.dimension, a.key),
    }
}

/// One alert on one line: time, severity, rule, subject, message,
/// `(+N suppressed)`, and the id (for `--after`).
pub fn alert_line(a: &v1::Alert, color: bool) -> String {
    let mut line = format!(
        "{}  {} {}  {}  {}",
        time_short(from_timestamp(a.created_at.as_ref())),
        severity_label(&a.severity, color),
        a.rule,
        alert_subject(a),
        a.message
    );
    if a.suppressed_count > 0 {
        line.push_str(&format!(" (+{} suppressed)", a.suppressed_count));
    }
    if a.acknowledged {
        line.push_str(&format!(
            " [acked by {}]",
            or_dash(a.acknowledged_by.as_deref())
        ));
    }
    line.push_str(&format!("  [{}]", a.alert_id));
    line
}

pub fn alert_table() -> Table {
    use Align::*;
    Table::new(&[
        ("CREATED", Left),
        ("SEVERITY", Left),
        ("RULE", Left),
        ("SUBJECT", Left),
        ("+SUPP", Right),
        ("ACK", Left),
        ("ALERT", Left),
        ("MESSAGE", Left),
    ])
}

pub fn alert_row(a: &v1::Alert) -> Vec<String> {
    vec![
        time_short(from_timestamp(a.created_at.as_ref())),
        a.severity.clone(),
        a.rule.clone(),
        alert_subject(a),
        a.suppressed_count.to_string(),
        if a.acknowledged {
            or_dash(a.acknowledged_by.as_deref())
        } else {
            "no".to_owned()
        },
        a.alert_id.clone(),
        a.message.clone(),
    ]
}

pub fn alert_json(a: &v1::Alert) -> Value {
    json!({
        "alert_id": a.alert_id,
        "rule": a.rule,
        "kind": a.kind,
        "severity": a.severity,
        "dimension": a.dimension,
        "key": a.key,
        "customer_id": a.customer_id,
        "interaction_id": a.interaction_id,
        "window": a.window,
        "metric": a.metric,
        "value": a.value,
        "threshold": a.threshold,
        "message": a.message,
        "created_at": time_json(a.created_at.as_ref()),
        "suppressed_count": a.suppressed_count,
        "acknowledged": a.acknowledged,
        "acknowledged_by": a.acknowledged_by,
        "acknowledged_at": time_json(a.acknowledged_at.as_ref()),
    })
}

pub fn task_json(t: &v1::Task) -> Value {
    json!({
        "task_id": t.task_id,
        "customer_id": t.customer_id,
        "state": t.state,
        "priority": t.priority,
        "owner": t.owner,
        "escalation_level": t.escalation_level,
        "interaction_ids": t.interaction_ids,
        "alert_ids": t.alert_ids,
        "reason": t.reason,
        "created_at": time_json(t.created_at.as_ref()),
        "updated_at": time_json(t.updated_at.as_ref()),
        "due_at": time_json(t.due_at.as_ref()),
        "resolved_at": time_json(t.resolved_at.as_ref()),
        "root_cause": t.root_cause,
        "resolution_note": t.resolution_note,
        "outcome": t.outcome,
        "version": t.version,
    })
}

/// Whether the task's SLA still runs (nobody has reached the customer yet).
fn sla_running(state: &str) -> bool {
    matches!(state, "open" | "in_progress" | "escalated")
}

/// `in 3h12m` / `overdue 5m` while the SLA runs, `-` once contacted or done.
pub fn task_due(t: &v1::Task, now: OffsetDateTime) -> String {
    match from_timestamp(t.due_at.as_ref()) {
        Some(due) if sla_running(&t.state) => due_label(due, now),
        _ => "-".to_owned(),
    }
}

pub fn task_table() -> Table {
    use Align::*;
    Table::new(&[
        ("TASK", Left),
        ("STATE", Left),
        ("PRIORITY", Left),
        ("OWNER", Left),
        ("LEVEL", Right),
        ("CUSTOMER", Left),
        ("DUE", Left),
        ("OUTCOME", Left),
    ])
}

pub fn task_row(t: &v1::Task, now: OffsetDateTime) -> Vec<String> {
    vec![
        t.task_id.clone(),
        t.state.clone(),
        t.priority.clone(),
        or_dash(Some(&t.owner)),
        t.escalation_level.to_string(),
        t.customer_id.clone(),
        task_due(t, now),
        or_dash(t.outcome.as_deref()),
    ]
}

/// One task change on one line (for `tasks watch`).
pub fn task_line(t: &v1::Task, now: OffsetDateTime) -> String {
    format!(
        "{}  {}  v{}  {}  {}  owner={} level={} alerts={}  customer={}  due {}{}",
        time_short(from_timestamp(t.updated_at.as_ref())),
        t.task_id,
        t.version,
        t.state,
        t.priority,
        or_dash(Some(&t.owner)),
        t.escalation_level,
        t.alert_ids.len(),
        t.customer_id,
        task_due(t, now),
        t.outcome
            .as_deref()
            .map(|o| format!("  outcome={o}"))
            .unwrap_or_default()
    )
}

/// Every field of a task, one `name: value` per line.
pub fn task_details(t: &v1::Task, now: OffsetDateTime) -> String {
    let time = |ts: Option<&Timestamp>| time_short(from_timestamp(ts));
    let list = |v: &[String]| {
        if v.is_empty() {
            "-".to_owned()
        } else {
            v.join(", ")
        }
    };
    let fields = [
        ("task_id", t.task_id.clone()),
        ("customer_id", t.customer_id.clone()),
        ("state", t.state.clone()),
        ("priority", t.priority.clone()),
        ("owner", or_dash(Some(&t.owner))),
        ("escalation_level", t.escalation_level.to_string()),
        ("version", t.version.to_string()),
        ("reason", or_dash(Some(&t.reason))),
        ("created_at", time(t.created_at.as_ref())),
        ("updated_at", time(t.updated_at.as_ref())),
        (
            "due_at",
            match task_due(t, now).as_str() {
                "-" => time(t.due_at.as_ref()),
                due => format!("{} ({due})", time(t.due_at.as_ref())),
            },
        ),
        ("resolved_at", time(t.resolved_at.as_ref())),
        ("root_cause", or_dash(t.root_cause.as_deref())),
        ("resolution_note", or_dash(t.resolution_note.as_deref())),
        ("outcome", or_dash(t.outcome.as_deref())),
        ("interaction_ids", list(&t.interaction_ids)),
        ("alert_ids", list(&t.alert_ids)),
    ];
    fields
        .iter()
        .map(|(name, value)| format!("{:<18}{value}\n", format!("{name}:")))
        .collect()
}

/// The columns beside a ranked metric, as (header, value): the response
/// count behind it (what its margin depends on), named for which count it
/// is, then NPS, CSAT%, CES, FCR% and the margin; a column that shows the
/// ranked metric itself is left out.
fn beside_ranked(metric: &str, m: &v1::WindowMetrics) -> Vec<(&'static str, String)> {
    let (count, shows, n) = match metric {
        "nps" | "nps_margin_95" | "promoters" | "passives" | "detractors" => {
            ("NPS_N", "nps_responses", m.nps_responses)
        }
        "csat_pct" => ("CSAT_N", "csat_responses", m.csat_responses),
        "ces_avg" | "easy_pct" => ("CES_N", "ces_responses", m.ces_responses),
        _ => ("INTERACTIONS", "interactions", m.interactions),
    };
    [
        (count, shows, n.to_string()),
        ("NPS", "nps", figure(m.nps, 1)),
        ("CSAT%", "csat_pct", figure(m.csat_pct, 1)),
        ("CES", "ces_avg", figure(m.ces_avg, 2)),
        ("FCR%", "fcr_pct", figure(m.fcr_pct, 1)),
        ("±MARGIN", "nps_margin_95", figure(m.nps_margin_95, 1)),
    ]
    .into_iter()
    .filter(|(_, shows, _)| *shows != metric)
    .map(|(header, _, value)| (header, value))
    .collect()
}

pub fn rank_table(metric: &str) -> Table {
    use Align::*;
    let mut columns = vec![("#", Right), ("KEY", Left), (metric, Right)];
    columns.extend(
        beside_ranked(metric, &v1::WindowMetrics::default())
            .into_iter()
            .map(|(header, _)| (header, Right)),
    );
    Table::new(&columns)
}

pub fn rank_row(rank: usize, key: &v1::RankedKey, metric: &str) -> Vec<String> {
    let m = key.metrics.unwrap_or_default();
    // Counts are whole numbers: no decimals.
    let value = if cx_windows::Metrics::COUNTS.contains(&metric) {
        format!("{:.0}", key.value)
    } else {
        format!("{:.1}", key.value)
    };
    let mut row = vec![rank.to_string(), key.key.clone(), value];
    row.extend(
        beside_ranked(metric, &m)
            .into_iter()
            .map(|(_, value)| value),
    );
    row
}

pub fn metrics_json(m: &v1::WindowMetrics) -> Value {
    json!({
        "interactions": m.interactions,
        "nps_responses": m.nps_responses,
        "csat_responses": m.csat_responses,
        "ces_responses": m.ces_responses,
        "promoters": m.promoters,
        "passives": m.passives,
        "detractors": m.detractors,
        "nps": m.nps,
        "nps_margin_95": m.nps_margin_95,
        "csat_pct": m.csat_pct,
        "ces_avg": m.ces_avg,
        "easy_pct": m.easy_pct,
        "sentiment_avg": m.sentiment_avg,
        "transfers_avg": m.transfers_avg,
        "fcr_pct": m.fcr_pct,
    })
}

/// Every GetMetrics figure, one `name: value` per line, in the contract's order.
pub fn metrics_details(m: &v1::WindowMetrics) -> String {
    let counts = [
        ("interactions", m.interactions),
        ("nps_responses", m.nps_responses),
        ("csat_responses", m.csat_responses),
        ("ces_responses", m.ces_responses),
        ("promoters", m.promoters),
        ("passives", m.passives),
        ("detractors", m.detractors),
    ];
    let figures = [
        ("nps", figure(m.nps, 1)),
        ("nps_margin_95", figure(m.nps_margin_95, 1)),
        ("csat_pct", figure(m.csat_pct, 1)),
        ("ces_avg", figure(m.ces_avg, 2)),
        ("easy_pct", figure(m.easy_pct, 1)),
        ("sentiment_avg", figure(m.sentiment_avg, 3)),
        ("transfers_avg", figure(m.transfers_avg, 2)),
        ("fcr_pct", figure(m.fcr_pct, 1)),
    ];
    counts
        .iter()
        .map(|(n, v)| (*n, v.to_string()))
        .chain(figures)
        .map(|(name, value)| format!("{:<15}{value:>10}\n", format!("{name}:")))
        .collect()
}

pub fn stats_table() -> Table {
    use Align::*;
    Table::new(&[
        ("TEAM", Left),
        ("OPENED", Right),
        ("CONTACTED", Right),
        ("FIRST CONTACT", Right),
        ("SLA %", Right),
        ("ESCALATIONS", Right),
        ("RECOVERED", Right),
        ("NOT RECOVERED", Right),
        ("RECOVERY %", Right),
    ])
}

/// One team object of `GET /v1/stats` (null or missing figures print `-`).
pub fn stats_row(team: &Value) -> Vec<String> {
    let count = |field: &str| {
        team[field]
            .as_u64()
            .map_or_else(|| "-".to_owned(), |n| n.to_string())
    };
    vec![
        or_dash(team["team"].as_str()),
        count("tasks_opened"),
        count("contacted"),
        compact_seconds(team["mean_time_to_first_contact_s"].as_f64()),
        figure(team["sla_compliance_pct"].as_f64(), 1),
        count("escalations"),
        count("recovered"),
        count("not_recovered"),
        figure(team["recovery_rate_pct"].as_f64(), 1),
    ]
}

/// The `/v1/stats` table: the teams in the order given, then `total` (if any).
pub fn stats_render(teams: &[Value], total: Option<&Value>) -> String {
    let mut table = stats_table();
    for team in teams.iter().chain(total) {
        table.push(stats_row(team));
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn compact_durations() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::seconds(59), "59s"),
            (Duration::seconds(60), "1m"),
            (Duration::seconds(5 * 60 + 59), "5m"),
            (
                Duration::hours(3) + Duration::minutes(12) + Duration::seconds(9),
                "3h12m",
            ),
            (Duration::hours(3), "3h"),
            (
                Duration::days(2) + Duration::hours(4) + Duration::minutes(1),
                "2d4h",
            ),
            (Duration::days(2) + Duration::minutes(30), "2d"),
            (-Duration::minutes(5), "5m"),
        ];
        for (d, expected) in cases {
            assert_eq!(compact_duration(d), expected, "{d:?}");
        }
    }

    #[test]
    fn compact_seconds_for_stats() {
        let cases = [
            (None, "-"),
            (Some(f64::NAN), "-"),
            (Some(0.0), "0.0s"),
            (Some(5.5), "5.5s"),
            (Some(5.54), "5.5s"),
            (Some(59.94), "59.9s"),
            (Some(59.96), "1m"),
            (Some(192.4), "3m12s"),
            (Some(180.0), "3m"),
            (Some(3_599.6), "1h"),
            (Some(3_900.0), "1h5m"),
            (Some(2.0 * 86_400.0 + 4.0 * 3_600.0 + 59.0), "2d4h"),
            (Some(2.0 * 86_400.0 + 30.0), "2d"),
        ];
        for (seconds, expected) in cases {
            assert_eq!(compact_seconds(seconds), expected, "{seconds:?}");
        }
    }

    #[test]
    fn stats_table_from_sample_json() {
        let body = json!({
            "teams": [
                {"team": "billing", "tasks_opened": 12, "contacted": 10,
                 "mean_time_to_first_contact_s": 192.4, "sla_compliance_pct": 90.0,
                 "escalations": 3, "recovered": 6, "not_recovered": 2,
                 "recovery_rate_pct": 75.0},
                {"team": "care", "tasks_opened": 2, "contacted": 0,
                 "mean_time_to_first_contact_s": null, "sla_compliance_pct": null,
                 "escalations": 0, "recovered": 0, "not_recovered": 0,
                 "recovery_rate_pct": null}
            ],
            "total": {"team": "all", "tasks_opened": 14, "contacted": 10,
                      "mean_time_to_first_contact_s": 5.5, "sla_compliance_pct": 90.0,
                      "escalations": 3, "recovered": 6, "not_recovered": 2,
                      "recovery_rate_pct": 75.0}
        });
        let teams = body["teams"].as_array().unwrap();
        assert_eq!(
            stats_render(teams, Some(&body["total"])),
            "TEAM     OPENED  CONTACTED  FIRST CONTACT  SLA %  ESCALATIONS  RECOVERED  NOT RECOVERED  RECOVERY %\n\
             billing      12         10          3m12s   90.0            3          6              2        75.0\n\
             care          2          0              -      -            0          0              0           -\n\
             all          14         10           5.5s   90.0            3          6              2        75.0\n"
        );
        assert_eq!(
            stats_row(&json!({})),
            ["-", "-", "-", "-", "-", "-", "-", "-", "-"]
        );
    }

    #[test]
    fn due_labels() {
        let now = datetime!(2026-11-22 12:00 UTC);
        assert_eq!(
            due_label(datetime!(2026-11-22 15:12:30 UTC), now),
            "in 3h12m"
        );
        assert_eq!(
            due_label(datetime!(2026-11-22 11:55 UTC), now),
            "overdue 5m"
        );
        assert_eq!(due_label(now, now), "in 0s");
    }

    #[test]
    fn durations_and_since() {
        assert_eq!(parse_duration("15m"), Ok(Duration::minutes(15)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::minutes(90)));
        assert_eq!(parse_duration("7d"), Ok(Duration::days(7)));
        assert_eq!(parse_duration("2w"), Ok(Duration::weeks(2)));
        for bad in ["", "15", "h", "1x", "1.5h", "-1h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        let now = datetime!(2026-11-22 12:00 UTC);
        assert_eq!(parse_since("1h", now), Ok(datetime!(2026-11-22 11:00 UTC)));
        assert_eq!(
            parse_since("2026-11-22T10:00:00+01:00", now),
            Ok(datetime!(2026-11-22 09:00 UTC))
        );
        assert!(parse_since("yesterday", now).is_err());
    }

    #[test]
    fn timestamps_round_trip_and_print() {
        let t = datetime!(2026-11-22 10:00:03.5 UTC);
        assert_eq!(from_timestamp(Some(&to_timestamp(t))), Some(t));
        assert_eq!(from_timestamp(None), None);
        assert_eq!(from_timestamp(Some(&Timestamp::default())), None);
        assert_eq!(time_short(Some(t)), "2026-11-22T10:00:03Z");
        assert_eq!(time_short(None), "-");
        assert_eq!(
            time_json(Some(&to_timestamp(t))),
            json!("2026-11-22T10:00:03.5Z")
        );
        assert_eq!(time_json(None), Value::Null);
    }

    #[test]
    fn tables_align_and_trim() {
        let mut t = Table::new(&[
            ("KEY", Align::Left),
            ("N", Align::Right),
            ("NOTE", Align::Left),
        ]);
        t.push(vec!["billing".into(), "7".into(), "".into()]);
        t.push(vec!["é".into(), "1234".into(), "x".into()]);
        assert_eq!(
            t.render(),
            "KEY         N  NOTE\n\
             billing     7\n\
             é        1234  x\n"
        );
    }

    #[test]
    fn alert_lines() {
        let alert = v1::Alert {
            alert_id: "al-1".into(),
            rule: "nps-drop".into(),
            kind: "threshold".into(),
            severity: "critical".into(),
            dimension: "queue".into(),
            key: "billing".into(),
            message: "NPS -20 below -10".into(),
            created_at: Some(to_timestamp(datetime!(2026-11-22 10:00 UTC))),
            suppressed_count: 3,
            ..Default::default()
        };
        assert_eq!(
            alert_line(&alert, false),
            "2026-11-22T10:00:00Z  CRITICAL nps-drop  queue=billing  NPS -20 below -10 (+3 suppressed)  [al-1]"
        );
        let colored = alert_line(&alert, true);
        assert!(colored.contains("\x1b[1;31mCRITICAL\x1b[0m"));
        assert_eq!(
            colored.replace("\x1b[1;31m", "").replace("\x1b[0m", ""),
            alert_line(&alert, false)
        );
        let json = alert_json(&alert);
        assert_eq!(json["created_at"], "2026-11-22T10:00:00Z");
        assert_eq!(json["customer_id"], Value::Null);
        assert_eq!(json["suppressed_count"], 3);
        assert_eq!(alert_row(&alert)[3], "queue=billing");
    }

    #[test]
    fn per_customer_alerts_name_the_customer() {
        let alert = v1::Alert {
            alert_id: "al-2".into(),
            rule: "detractor".into(),
            kind: "response".into(),
            severity: "warning".into(),
            dimension: "queue".into(),
            key: "billing".into(),
            customer_id: Some("c-42".into()),
            interaction_id: Some("i-7".into()),
            message: "NPS 2 from c-42 on queue billing".into(),
            created_at: Some(to_timestamp(datetime!(2026-11-22 10:00 UTC))),
            ..Default::default()
        };
        assert_eq!(
            alert_line(&alert, false),
            "2026-11-22T10:00:00Z  WARNING  detractor  customer=c-42 queue=billing  \
             NPS 2 from c-42 on queue billing  [al-2]"
        );
        assert_eq!(alert_row(&alert)[3], "customer=c-42 queue=billing");
        // --json is unchanged: the customer is its own field.
        assert_eq!(
            alert_json(&alert),
            json!({
                "alert_id": "al-2", "rule": "detractor", "kind": "response",
                "severity": "warning", "dimension": "queue", "key": "billing",
                "customer_id": "c-42", "interaction_id": "i-7", "window": null,
                "metric": null, "value": null, "threshold": null,
                "message": "NPS 2 from c-42 on queue billing",
                "created_at": "2026-11-22T10:00:00Z", "suppressed_count": 0,
                "acknowledged": false, "acknowledged_by": null, "acknowledged_at": null,
            })
        );
    }

    #[test]
    fn task_rows_and_details() {
        let now = datetime!(2026-11-22 12:00 UTC);
        let mut task = v1::Task {
            task_id: "t-1".into(),
            customer_id: "c-1".into(),
            state: "open".into(),
            priority: "high".into(),
            owner: "lead-a".into(),
            escalation_level: 1,
            due_at: Some(to_timestamp(datetime!(2026-11-22 11:55 UTC))),
            version: 4,
            ..Default::default()
        };
        assert_eq!(
            task_row(&task, now),
            [
                "t-1",
                "open",
                "high",
                "lead-a",
                "1",
                "c-1",
                "overdue 5m",
                "-"
            ]
        );
        let details = task_details(&task, now);
        assert!(details.contains("due_at:           2026-11-22T11:55:00Z (overdue 5m)\n"));
        assert!(details.contains("version:          4\n"));
        task.state = "resolved".into();
        task.outcome = Some("recovered".into());
        assert_eq!(task_row(&task, now)[6..], ["-", "recovered"]);
        assert_eq!(task_json(&task)["outcome"], "recovered");
    }

    #[test]
    fn ranked_rows() {
        let key = v1::RankedKey {
            key: "billing".into(),
            value: -12.345,
            metrics: Some(v1::WindowMetrics {
                interactions: 40,
                nps_responses: 30,
                nps: Some(-12.345),
                nps_margin_95: Some(18.04),
                csat_pct: Some(75.0),
                ..Default::default()
            }),
        };
        // The ranked metric's own column is not repeated beside it.
        assert_eq!(
            rank_row(1, &key, "nps"),
            ["1", "billing", "-12.3", "30", "75.0", "-", "-", "18.0"]
        );
        assert_eq!(
            rank_row(1, &key, "sentiment_avg"),
            ["1", "billing", "-12.3", "40", "-12.3", "75.0", "-", "-", "18.0"]
        );
        assert_eq!(rank_row(1, &key, "fcr_pct")[3], "40");
        let header = |metric| rank_table(metric).render();
        assert_eq!(
            header("nps").split_whitespace().collect::<Vec<_>>(),
            ["#", "KEY", "nps", "NPS_N", "CSAT%", "CES", "FCR%", "±MARGIN"]
        );
        assert!(header("csat_pct").contains("CSAT_N") && !header("csat_pct").contains("CSAT%"));
        assert!(header("sentiment_avg").contains("INTERACTIONS"));
        assert!(!header("interactions").contains("INTERACTIONS"));
        let counted = v1::RankedKey {
            value: 55.0,
            ..key.clone()
        };
        assert_eq!(rank_row(1, &counted, "interactions").len(), 8);
        assert_eq!(rank_row(1, &counted, "detractors")[2], "55");
        assert_eq!(rank_row(1, &counted, "interactions")[2], "55");
        assert_eq!(rank_row(1, &counted, "csat_pct")[2], "55.0");
        let details = metrics_details(key.metrics.as_ref().unwrap());
        let lines: Vec<&str> = details.lines().collect();
        assert_eq!(lines.len(), 15);
        assert_eq!(lines[0], format!("{:<15}{:>10}", "interactions:", 40));
        assert_eq!(lines[10], format!("{:<15}{:>10}", "ces_avg:", "-"));
        assert_eq!(lines[7], format!("{:<15}{:>10}", "nps:", "-12.3"));
    }
}

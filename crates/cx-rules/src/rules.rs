//! Compiled rules and their evaluation.

use std::collections::HashMap;
use std::sync::Arc;

use cx_analytics::{TagMatcher, Taxonomy, TaxonomyError, Topic};
use cx_windows::{Aggregate, Dimension, Metrics, Window};

use crate::alert::{
    alert_id, AlertIdPrefix, AlertIdSuffix, Candidate, Comparison, Kind, Scope, Severity,
};
use crate::config::{
    KeywordRuleConfig, ResponseRuleConfig, RuleConfig, RulesConfig, SpikeRuleConfig,
    ThresholdRuleConfig,
};
use crate::stats::two_proportion_z;

/// Longest rule name accepted.
pub const MAX_NAME_LEN: usize = 64;

/// Why a rule configuration cannot be compiled; names the rule (index in
/// `rules` and name) and the offending field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("rule #{index} ({name:?}): {field}: {reason}")]
pub struct RulesError {
    pub index: usize,
    pub name: String,
    pub field: String,
    pub reason: String,
}

/// The count a metric's value rests on, for `min_responses`.
pub fn responses_for_metric(metrics: &Metrics, metric: &str) -> u64 {
    match metric {
        "nps" | "nps_margin_95" | "nps_responses" | "promoters" | "passives" | "detractors" => {
            metrics.nps_responses
        }
        "csat_pct" | "csat_responses" => metrics.csat_responses,
        "ces_avg" | "easy_pct" | "ces_responses" => metrics.ces_responses,
        _ => metrics.interactions,
    }
}

/// One scored interaction as the rules see it.
#[derive(Debug, Clone, Copy)]
pub struct EventView<'a> {
    pub interaction_id: &'a str,
    pub customer_id: &'a str,
    pub occurred_at_s: i64,
    pub channel: &'a str,
    pub agent_id: Option<&'a str>,
    pub team_id: Option<&'a str>,
    pub queue_id: Option<&'a str>,
    pub nps: Option<u8>,
    pub csat: Option<u8>,
    pub ces: Option<u8>,
    pub verbatim: Option<&'a str>,
    pub tags: &'a [String],
    pub sentiment: Option<f64>,
}

impl<'a> EventView<'a> {
    /// Where an event alert is filed: its queue, else its team, else global.
    fn placement(&self) -> (Dimension, &'a str) {
        fn present(v: Option<&str>) -> Option<&str> {
            v.filter(|s| !s.is_empty())
        }
        if let Some(q) = present(self.queue_id) {
            (Dimension::Queue, q)
        } else if let Some(t) = present(self.team_id) {
            (Dimension::Team, t)
        } else {
            (Dimension::Global, Dimension::GLOBAL_KEY)
        }
    }
}

/// What a threshold or spike rule tests.
#[derive(Debug, Clone, PartialEq)]
pub enum WindowTest {
    Threshold {
        metric: String,
        op: Comparison,
        bound: f64,
        min_responses: u64,
    },
    Spike {
        p_value: f64,
        min_responses: u64,
        min_rate_increase: f64,
    },
}

/// A compiled threshold or spike rule; the service evaluates it per key of
/// `dimension` over `window` (plus the 7d baseline when `needs_baseline`).
#[derive(Debug, Clone, PartialEq)]
pub struct WindowRule {
    pub name: String,
    pub kind: Kind,
    pub severity: Severity,
    pub dimension: Dimension,
    pub window: Window,
    pub needs_baseline: bool,
    pub cooldown_s: u64,
    pub test: WindowTest,
}

#[derive(Debug, Clone)]
enum EventTest {
    Response {
        nps_max: u8,
        csat_max: u8,
        ces_max: u8,
    },
    Keyword {
        /// Per keyword, its message up to the customer id:
        /// `Keyword "{keyword:?}" in verbatim from customer `.
        keyword_messages: Vec<Box<str>>,
        /// Lowercased.
        tags: Vec<String>,
        /// Per tag, `Tag "{tag:?}" on interaction from customer `.
        tag_messages: Vec<Box<str>>,
        /// This rule's keywords are topics `first_topic..first_topic + keywords.len()`.
        first_topic: usize,
    },
}

#[derive(Debug, Clone)]
struct EventRule {
    /// Shared by every candidate of the rule.
    name: Arc<str>,
    kind: Kind,
    severity: Severity,
    cooldown_s: u64,
    id_suffix: AlertIdSuffix,
    test: EventTest,
}

impl EventRule {
    fn new(name: &str, kind: Kind, severity: Severity, cooldown_s: u64, test: EventTest) -> Self {
        EventRule {
            name: name.into(),
            kind,
            severity,
            cooldown_s,
            id_suffix: AlertIdSuffix::new(name, kind),
            test,
        }
    }
}

/// Compiled rules; immutable, `Send + Sync`, share via `Arc`.
#[derive(Debug, Clone)]
pub struct RuleSet {
    event_rules: Vec<EventRule>,
    window_rules: Vec<WindowRule>,
    /// One topic per keyword of every keyword rule, named by its zero-padded
    /// global index so the matcher's sorted output is in index order.
    keywords: Option<TagMatcher>,
}

/// Width of keyword topic names; fixed so string order is numeric order.
const TOPIC_DIGITS: usize = 10;

fn err(
    index: usize,
    name: &str,
    field: impl Into<String>,
    reason: impl Into<String>,
) -> RulesError {
    RulesError {
        index,
        name: name.to_owned(),
        field: field.into(),
        reason: reason.into(),
    }
}

fn check_name(index: usize, name: &str) -> Result<(), RulesError> {
    if name.is_empty() {
        return Err(err(index, name, "name", "must not be empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(err(
            index,
            name,
            "name",
            format!("longer than {MAX_NAME_LEN} characters"),
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return Err(err(
            index,
            name,
            "name",
            "only a-z, 0-9, '_' and '-' are allowed",
        ));
    }
    Ok(())
}

fn parse_dimension(index: usize, name: &str, s: &str) -> Result<Dimension, RulesError> {
    Dimension::parse(s).ok_or_else(|| {
        err(
            index,
            name,
            "dimension",
            format!("unknown dimension {s:?} (agent, team, queue, channel or global)"),
        )
    })
}

fn parse_window(index: usize, name: &str, s: &str) -> Result<Window, RulesError> {
    Window::parse(s).ok_or_else(|| {
        err(
            index,
            name,
            "window",
            format!("unknown window {s:?} (15m, 1h, 24h or 7d)"),
        )
    })
}

impl RuleSet {
    /// Validates every rule (disabled ones too) and compiles the enabled ones.
    pub fn compile(config: &RulesConfig) -> Result<RuleSet, RulesError> {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut event_rules = Vec::new();
        let mut window_rules = Vec::new();
        let mut topics: Vec<Topic> = Vec::new();
        for (index, rule) in config.rules.iter().enumerate() {
            let name = rule.name();
            check_name(index, name)?;
            if let Some(first) = seen.insert(name, index) {
                return Err(err(
                    index,
                    name,
                    "name",
                    format!("duplicate of rule #{first}"),
                ));
            }
            let enabled = rule.enabled();
            match rule {
                RuleConfig::Response(r) => {
                    let test = compile_response(index, r)?;
                    if enabled {
                        event_rules.push(EventRule::new(
                            &r.name,
                            Kind::Response,
                            r.severity,
                            r.cooldown_s,
                            test,
                        ));
                    }
                }
                RuleConfig::Keyword(r) => {
                    let (test, rule_topics) = compile_keyword(index, r, topics.len())?;
                    if enabled {
                        topics.extend(rule_topics);
                        event_rules.push(EventRule::new(
                            &r.name,
                            Kind::Keyword,
                            r.severity,
                            r.cooldown_s,
                            test,
                        ));
                    }
                }
                RuleConfig::Threshold(r) => {
                    let w = compile_threshold(index, r)?;
                    if enabled {
                        window_rules.push(w);
                    }
                }
                RuleConfig::Spike(r) => {
                    let w = compile_spike(index, r)?;
                    if enabled {
                        window_rules.push(w);
                    }
                }
            }
        }
        let keywords = if topics.is_empty() {
            None
        } else {
            // Every keyword was checked on its own already; a failure here
            // would be a bug, still reported rather than panicking.
            Some(Taxonomy { topics }.compile().map_err(|e| RulesError {
                index: 0,
                name: String::new(),
                field: "keywords".into(),
                reason: e.to_string(),
            })?)
        };
        Ok(RuleSet {
            event_rules,
            window_rules,
            keywords,
        })
    }

    /// Enabled response and keyword rules.
    pub fn event_rules_len(&self) -> usize {
        self.event_rules.len()
    }

    /// Names of the enabled rules, event rules first.
    pub fn rule_names(&self) -> impl Iterator<Item = &str> {
        self.event_rules
            .iter()
            .map(|rule| &*rule.name)
            .chain(self.window_rules.iter().map(|rule| rule.name.as_str()))
    }

    /// Enabled threshold and spike rules, in config order.
    pub fn window_rules(&self) -> &[WindowRule] {
        &self.window_rules
    }

    /// Response and keyword rules for one scored interaction; candidates in rule order.
    pub fn evaluate_event(&self, event: &EventView<'_>) -> Vec<Candidate> {
        if self.event_rules.is_empty() {
            return Vec::new();
        }
        // Matched keyword topics; the matcher sorts them by name, which is
        // ascending global keyword index.
        let mut names: Vec<&str> = Vec::new();
        if let (Some(matcher), Some(text)) = (&self.keywords, event.verbatim) {
            matcher.tags_into(text, &mut names);
        }
        let mut matched = names
            .iter()
            .filter_map(|n| n.parse::<usize>().ok())
            .peekable();
        let mut out = Vec::new();
        // Built on the first hit only: most events fire nothing.
        let mut shared: Option<EventShared> = None;
        for rule in &self.event_rules {
            let hit = match &rule.test {
                EventTest::Response {
                    nps_max,
                    csat_max,
                    ces_max,
                } => response_hit(event, *nps_max, *csat_max, *ces_max),
                EventTest::Keyword {
                    keyword_messages,
                    tags,
                    tag_messages,
                    first_topic,
                } => {
                    let end = first_topic + keyword_messages.len();
                    while matched.next_if(|&t| t < *first_topic).is_some() {}
                    match matched.peek() {
                        Some(&t) if t < end => Some(Hit::Text(&keyword_messages[t - first_topic])),
                        _ => tag_hit(event.tags, tags).map(|i| Hit::Text(&tag_messages[i])),
                    }
                }
            };
            if let Some(hit) = hit {
                let shared = shared.get_or_insert_with(|| EventShared::new(event));
                out.push(event_candidate(rule, shared, hit));
            }
        }
        out
    }

    /// A threshold or spike rule for one key. `short` is the aggregate of
    /// `rule.window` ending at `at_s`; `baseline_7d` is the 7d aggregate
    /// ending at `at_s` (only needed by spike rules; pass None for threshold).
    pub fn evaluate_window(
        &self,
        rule: &WindowRule,
        key: &str,
        short: &Aggregate,
        baseline_7d: Option<&Aggregate>,
        at_s: i64,
    ) -> Option<Candidate> {
        let (metric, value, threshold, message) = match &rule.test {
            WindowTest::Threshold {
                metric,
                op,
                bound,
                min_responses,
            } => {
                let m = Metrics::from_aggregate(short);
                let n = responses_for_metric(&m, metric);
                let value = m.get(metric)?;
                if n < *min_responses || !op.crosses(value, *bound) {
                    return None;
                }
                // Every name `get` knows is one of NAMES; this gives it a static lifetime.
                let metric = Metrics::NAMES.into_iter().find(|m| m == metric)?;
                let message = format!(
                    "{} {} over {} is {} ({} {}), n={}",
                    subject_label(rule.dimension, key),
                    metric_label(metric),
                    rule.window.as_str(),
                    fmt_num(value),
                    op.as_str(),
                    fmt_num(*bound),
                    n
                );
                (metric, value, *bound, message)
            }
            WindowTest::Spike {
                p_value,
                min_responses,
                min_rate_increase,
            } => {
                let seven = baseline_7d?;
                let n1 = short.nps_responses;
                let d1 = short.detractors;
                let n0 = seven.nps_responses.saturating_sub(n1);
                let d0 = seven.detractors.saturating_sub(d1);
                if n1 < *min_responses || n0 < *min_responses {
                    return None;
                }
                let t = two_proportion_z(d1, n1, d0, n0)?;
                if !(t.rate1 > t.rate0
                    && t.rate1 - t.rate0 >= *min_rate_increase
                    && t.p_value < *p_value)
                {
                    return None;
                }
                let p = if t.p_value < 0.000_01 {
                    "<0.00001".to_owned()
                } else {
                    format!("={:.5}", t.p_value)
                };
                let message = format!(
                    "{} detractor rate over {} is {:.1}% vs {:.1}% over the 7d baseline (z={:.2}, p{}, n={} vs {})",
                    subject_label(rule.dimension, key),
                    rule.window.as_str(),
                    t.rate1 * 100.0,
                    t.rate0 * 100.0,
                    t.z,
                    p,
                    n1,
                    n0
                );
                ("detractor_rate", t.rate1, t.rate0, message)
            }
        };
        let subject = format!("{}:{}", rule.dimension.as_str(), key);
        let bucket = format!("bucket:{}", rule.window.bucket_of(at_s));
        Some(Candidate {
            alert_id: alert_id(&rule.name, rule.kind, &subject, &bucket),
            rule: rule.name.as_str().into(),
            kind: rule.kind,
            severity: rule.severity,
            window: Some(rule.window.as_str()),
            metric: Some(metric),
            value: Some(value),
            threshold: Some(threshold),
            message,
            cooldown_s: rule.cooldown_s,
            scope: Arc::new(Scope {
                subject,
                dimension: rule.dimension.as_str(),
                key: key.to_owned(),
                customer_id: None,
                interaction_id: None,
                agent_id: None,
                team_id: None,
                queue_id: None,
            }),
        })
    }
}

fn compile_response(index: usize, r: &ResponseRuleConfig) -> Result<EventTest, RulesError> {
    for (field, value, max) in [
        ("nps_max", r.nps_max, 10),
        ("csat_max", r.csat_max, 5),
        ("ces_max", r.ces_max, 7),
    ] {
        if value > max {
            return Err(err(
                index,
                &r.name,
                field,
                format!("{value} is above the scale maximum {max}"),
            ));
        }
    }
    Ok(EventTest::Response {
        nps_max: r.nps_max,
        csat_max: r.csat_max,
        ces_max: r.ces_max,
    })
}

fn compile_keyword(
    index: usize,
    r: &KeywordRuleConfig,
    first_topic: usize,
) -> Result<(EventTest, Vec<Topic>), RulesError> {
    if r.keywords.is_empty() && r.tags.is_empty() {
        return Err(err(
            index,
            &r.name,
            "keywords",
            "keywords and tags are both empty",
        ));
    }
    let mut topics = Vec::with_capacity(r.keywords.len());
    for (k, keyword) in r.keywords.iter().enumerate() {
        let topic = Topic {
            name: format!("{:0width$}", first_topic + k, width = TOPIC_DIGITS),
            keywords: vec![keyword.clone()],
        };
        // Compile alone so the error names this keyword.
        match (Taxonomy {
            topics: vec![topic.clone()],
        })
        .compile()
        {
            Ok(_) => {}
            Err(TaxonomyError::EmptyKeyword { .. }) => {
                return Err(err(
                    index,
                    &r.name,
                    format!("keywords[{k}]"),
                    format!("{keyword:?} has no letters or digits"),
                ));
            }
            Err(e) => return Err(err(index, &r.name, format!("keywords[{k}]"), e.to_string())),
        }
        topics.push(topic);
    }
    let mut tags = Vec::with_capacity(r.tags.len());
    for (k, tag) in r.tags.iter().enumerate() {
        if tag.trim().is_empty() {
            return Err(err(
                index,
                &r.name,
                format!("tags[{k}]"),
                "must not be empty",
            ));
        }
        tags.push(tag.to_lowercase());
    }
    // Only the matched keyword or tag goes in a message: the verbatim itself may hold PII.
    let keyword_messages = r
        .keywords
        .iter()
        .map(|k| format!("Keyword {k:?} in verbatim from customer ").into())
        .collect();
    let tag_messages = tags
        .iter()
        .map(|t| format!("Tag {t:?} on interaction from customer ").into())
        .collect();
    Ok((
        EventTest::Keyword {
            keyword_messages,
            tags,
            tag_messages,
            first_topic,
        },
        topics,
    ))
}

fn compile_threshold(index: usize, r: &ThresholdRuleConfig) -> Result<WindowRule, RulesError> {
    let dimension = parse_dimension(index, &r.name, &r.dimension)?;
    let window = parse_window(index, &r.name, &r.window)?;
    if !Metrics::NAMES.contains(&r.metric.as_str()) {
        return Err(err(
            index,
            &r.name,
            "metric",
            format!(
                "unknown metric {:?} (one of {})",
                r.metric,
                Metrics::NAMES.join(", ")
            ),
        ));
    }
    let op = Comparison::parse(&r.op).ok_or_else(|| {
        err(
            index,
            &r.name,
            "op",
            format!("unknown op {:?} (below or above)", r.op),
        )
    })?;
    if !r.bound.is_finite() {
        return Err(err(index, &r.name, "bound", "must be a finite number"));
    }
    Ok(WindowRule {
        name: r.name.clone(),
        kind: Kind::Threshold,
        severity: r.severity,
        dimension,
        window,
        needs_baseline: false,
        cooldown_s: r.cooldown_s,
        test: WindowTest::Threshold {
            metric: r.metric.clone(),
            op,
            bound: r.bound,
            min_responses: r.min_responses,
        },
    })
}

fn compile_spike(index: usize, r: &SpikeRuleConfig) -> Result<WindowRule, RulesError> {
    let dimension = parse_dimension(index, &r.name, &r.dimension)?;
    let window = parse_window(index, &r.name, &r.window)?;
    if window == Window::D7 {
        return Err(err(
            index,
            &r.name,
            "window",
            "must be shorter than the 7d baseline",
        ));
    }
    if !(r.p_value > 0.0 && r.p_value < 1.0) {
        return Err(err(
            index,
            &r.name,
            "p_value",
            format!("{} is not in (0, 1)", r.p_value),
        ));
    }
    if !(0.0..1.0).contains(&r.min_rate_increase) {
        return Err(err(
            index,
            &r.name,
            "min_rate_increase",
            format!("{} is not in [0, 1)", r.min_rate_increase),
        ));
    }
    Ok(WindowRule {
        name: r.name.clone(),
        kind: Kind::Spike,
        severity: r.severity,
        dimension,
        window,
        needs_baseline: true,
        cooldown_s: r.cooldown_s,
        test: WindowTest::Spike {
            p_value: r.p_value,
            min_responses: r.min_responses,
            min_rate_increase: r.min_rate_increase,
        },
    })
}

/// Why an event rule fired.
enum Hit<'r> {
    /// (label, metric name, score, max), first one is the headline.
    Scores([Option<(&'static str, &'static str, u8, u8)>; 3]),
    /// A keyword or tag: the rule's message up to the customer id.
    Text(&'r str),
}

fn response_hit(e: &EventView<'_>, nps_max: u8, csat_max: u8, ces_max: u8) -> Option<Hit<'static>> {
    // Out-of-scale scores are not responses (as in cx-windows).
    let check = |label, metric, score: Option<u8>, lo, hi, max| {
        score
            .filter(|s| (lo..=hi).contains(s) && *s <= max)
            .map(|s| (label, metric, s, max))
    };
    let scores = [
        check("NPS", "nps", e.nps, 0, 10, nps_max),
        check("CSAT", "csat", e.csat, 1, 5, csat_max),
        check("CES", "ces", e.ces, 1, 7, ces_max),
    ];
    scores
        .iter()
        .any(Option::is_some)
        .then_some(Hit::Scores(scores))
}

/// Index of the first rule tag the event carries, case-insensitively.
fn tag_hit(event_tags: &[String], rule_tags: &[String]) -> Option<usize> {
    rule_tags.iter().position(|rt| {
        event_tags.iter().any(|et| {
            if et.is_ascii() {
                et.eq_ignore_ascii_case(rt)
            } else {
                et.to_lowercase() == **rt
            }
        })
    })
}

/// What every candidate of one event shares.
struct EventShared<'e> {
    customer: &'e str,
    dimension: Dimension,
    key: &'e str,
    ids: AlertIdPrefix,
    scope: Arc<Scope>,
}

impl<'e> EventShared<'e> {
    fn new(e: &EventView<'e>) -> EventShared<'e> {
        let (dimension, key) = e.placement();
        let subject = ["customer:", e.customer_id].concat();
        EventShared {
            customer: e.customer_id,
            dimension,
            key,
            ids: AlertIdPrefix::new(&subject, e.interaction_id),
            scope: Arc::new(Scope {
                subject,
                dimension: dimension.as_str(),
                key: key.to_owned(),
                customer_id: Some(e.customer_id.to_owned()),
                interaction_id: Some(e.interaction_id.to_owned()),
                agent_id: e.agent_id.map(str::to_owned),
                team_id: e.team_id.map(str::to_owned),
                queue_id: e.queue_id.map(str::to_owned),
            }),
        }
    }

    /// Length of `{customer id}` plus ` on {dimension} {key}` (nothing for global).
    fn tail_len(&self) -> usize {
        self.customer.len()
            + match self.dimension {
                Dimension::Global => 0,
                d => 5 + d.as_str().len() + self.key.len(),
            }
    }

    fn push_tail(&self, msg: &mut String) {
        msg.push_str(self.customer);
        if self.dimension != Dimension::Global {
            msg.push_str(" on ");
            msg.push_str(self.dimension.as_str());
            msg.push(' ');
            msg.push_str(self.key);
        }
    }
}

/// Decimal digits of `n` (no `fmt` machinery on the hot path).
fn push_u8(msg: &mut String, n: u8) {
    if n >= 100 {
        msg.push(char::from(b'0' + n / 100));
    }
    if n >= 10 {
        msg.push(char::from(b'0' + n / 10 % 10));
    }
    msg.push(char::from(b'0' + n % 10));
}

fn event_candidate(rule: &EventRule, s: &EventShared<'_>, hit: Hit<'_>) -> Candidate {
    let (mut metric, mut value, mut threshold) = (None, None, None);
    let message = match hit {
        Hit::Scores(scores) => {
            // "Detractor: " + up to three "CSAT 255 (≤ 255), " + " from customer ".
            let mut msg = String::with_capacity(11 + 3 * 22 + 15 + s.tail_len());
            msg.push_str("Detractor: ");
            for (i, (name, metric_name, score, max)) in scores.iter().flatten().enumerate() {
                if i == 0 {
                    metric = Some(*metric_name);
                    value = Some(f64::from(*score));
                    threshold = Some(f64::from(*max));
                } else {
                    msg.push_str(", ");
                }
                msg.push_str(name);
                msg.push(' ');
                push_u8(&mut msg, *score);
                msg.push_str(" (≤ ");
                push_u8(&mut msg, *max);
                msg.push(')');
            }
            msg.push_str(" from customer ");
            s.push_tail(&mut msg);
            msg
        }
        Hit::Text(head) => {
            let mut msg = String::with_capacity(head.len() + s.tail_len());
            msg.push_str(head);
            s.push_tail(&mut msg);
            msg
        }
    };
    Candidate {
        alert_id: s.ids.finish(&rule.id_suffix),
        rule: rule.name.clone(),
        kind: rule.kind,
        severity: rule.severity,
        window: None,
        metric,
        value,
        threshold,
        message,
        cooldown_s: rule.cooldown_s,
        scope: s.scope.clone(),
    }
}

/// "Queue billing", "Agent a-7", "Global".
fn subject_label(dimension: Dimension, key: &str) -> String {
    match dimension {
        Dimension::Agent => format!("Agent {key}"),
        Dimension::Team => format!("Team {key}"),
        Dimension::Queue => format!("Queue {key}"),
        Dimension::Channel => format!("Channel {key}"),
        Dimension::Global => "Global".to_owned(),
    }
}

fn metric_label(metric: &str) -> &str {
    match metric {
        "nps" => "NPS",
        "nps_margin_95" => "NPS margin",
        "csat_pct" => "CSAT%",
        "ces_avg" => "CES",
        "easy_pct" => "CES easy%",
        "sentiment_avg" => "sentiment",
        "transfers_avg" => "transfers per interaction",
        "fcr_pct" => "FCR%",
        other => other,
    }
}

/// At most two decimals, trailing zeros dropped: -12.5, 0, 61.33.
fn fmt_num(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}

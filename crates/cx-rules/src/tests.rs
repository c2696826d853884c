//! Rule behaviour end to end: config → RuleSet → candidates → JSON.

use std::collections::BTreeSet;
use std::sync::Arc;

use cx_windows::{Aggregate, Contribution, Window};
use proptest::prelude::*;
use time::macros::datetime;

use crate::*;

const AT: i64 = 1_700_000_000;

fn event<'a>(verbatim: Option<&'a str>, tags: &'a [String]) -> EventView<'a> {
    EventView {
        interaction_id: "i-1",
        customer_id: "c-1",
        occurred_at_s: AT,
        channel: "voice",
        agent_id: Some("a-1"),
        team_id: Some("t-1"),
        queue_id: Some("billing"),
        nps: None,
        csat: None,
        ces: None,
        verbatim,
        tags,
        sentiment: None,
    }
}

fn default_set() -> RuleSet {
    RuleSet::compile(&RulesConfig::contact_centre_default()).expect("default compiles")
}

fn from_toml(s: &str) -> Result<RuleSet, RulesError> {
    let config: RulesConfig = toml::from_str(s).expect("toml parses");
    RuleSet::compile(&config)
}

fn rules_fired(set: &RuleSet, e: &EventView<'_>) -> Vec<String> {
    set.evaluate_event(e)
        .into_iter()
        .map(|c| c.rule.to_string())
        .collect()
}

fn nps_aggregate(responses: u64, detractors: u64, promoters: u64) -> Aggregate {
    Aggregate {
        interactions: responses,
        nps_responses: responses,
        detractors,
        promoters,
        passives: responses - detractors - promoters,
        ..Aggregate::default()
    }
}

fn window_rule<'a>(set: &'a RuleSet, name: &str) -> &'a WindowRule {
    set.window_rules()
        .iter()
        .find(|r| r.name == name)
        .expect("rule exists")
}

#[test]
fn default_config_compiles_and_is_shareable() {
    let set = default_set();
    assert_eq!(set.event_rules_len(), 3);
    let names: Vec<_> = set.window_rules().iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        ["queue_nps_low", "queue_csat_low", "queue_detractor_spike"]
    );
    assert!(window_rule(&set, "queue_detractor_spike").needs_baseline);
    assert!(!window_rule(&set, "queue_nps_low").needs_baseline);
    let shared = Arc::new(set);
    std::thread::spawn(move || shared.event_rules_len())
        .join()
        .unwrap();
}

#[test]
fn default_config_round_trips_through_toml() {
    let config = RulesConfig::contact_centre_default();
    let text = toml::to_string(&config).expect("serializes");
    let back: RulesConfig = toml::from_str(&text).expect("parses");
    assert_eq!(back, config);
}

#[test]
fn toml_shape_from_the_docs_parses_with_defaults() {
    let config: RulesConfig = toml::from_str(
        r#"
        [[rules]]
        name = "queue_nps_low"
        kind = "threshold"
        severity = "warning"
        dimension = "queue"
        window = "1h"
        metric = "nps"
        op = "below"
        bound = 0
        min_responses = 30

        [[rules]]
        name = "detractor"
        kind = "response"
        severity = "info"
        "#,
    )
    .unwrap();
    match &config.rules[0] {
        RuleConfig::Threshold(t) => {
            assert_eq!(t.cooldown_s, 1800);
            assert!(t.enabled);
            assert_eq!(t.bound, 0.0);
        }
        other => panic!("{other:?}"),
    }
    match &config.rules[1] {
        RuleConfig::Response(r) => {
            assert_eq!(
                (r.nps_max, r.csat_max, r.ces_max, r.cooldown_s),
                (6, 2, 2, 3600)
            );
        }
        other => panic!("{other:?}"),
    }
    RuleSet::compile(&config).unwrap();
}

#[test]
fn unknown_fields_are_refused_by_the_parser() {
    let r: Result<RulesConfig, _> = toml::from_str(
        r#"
        [[rules]]
        name = "detractor"
        kind = "response"
        severity = "info"
        bound = 3
        "#,
    );
    assert!(r.unwrap_err().to_string().contains("bound"));
}

#[test]
fn config_errors_name_rule_and_field() {
    let head = |kind: &str| {
        format!("[[rules]]\nname = \"ok\"\nkind = \"response\"\nseverity = \"info\"\n[[rules]]\nkind = \"{kind}\"\nseverity = \"info\"\n")
    };
    let cases = [
        (format!("{}name = \"ok\"", head("response")), "ok", "name", "duplicate"),
        (format!("{}name = \"Bad Name\"", head("response")), "Bad Name", "name", "a-z"),
        (format!("{}name = \"\"", head("response")), "", "name", "empty"),
        (format!("{}name = \"r\"\nnps_max = 11", head("response")), "r", "nps_max", "11"),
        (format!("{}name = \"kw\"", head("keyword")), "kw", "keywords", "both empty"),
        (format!("{}name = \"kw\"\nkeywords = [\"ok\", \"!!\"]", head("keyword")), "kw", "keywords[1]", "no letters"),
        (
            format!("{}name = \"t\"\ndimension = \"queue\"\nwindow = \"1h\"\nmetric = \"happiness\"\nop = \"below\"\nbound = 1", head("threshold")),
            "t", "metric", "happiness",
        ),
        (
            format!("{}name = \"t\"\ndimension = \"floor\"\nwindow = \"1h\"\nmetric = \"nps\"\nop = \"below\"\nbound = 1", head("threshold")),
            "t", "dimension", "floor",
        ),
        (
            format!("{}name = \"t\"\ndimension = \"queue\"\nwindow = \"2h\"\nmetric = \"nps\"\nop = \"below\"\nbound = 1", head("threshold")),
            "t", "window", "2h",
        ),
        (
            format!("{}name = \"t\"\ndimension = \"queue\"\nwindow = \"1h\"\nmetric = \"nps\"\nop = \"under\"\nbound = 1", head("threshold")),
            "t", "op", "under",
        ),
        (format!("{}name = \"s\"\ndimension = \"queue\"\nwindow = \"1h\"\np_value = 1.0", head("spike")), "s", "p_value", "(0, 1)"),
        (format!("{}name = \"s\"\ndimension = \"queue\"\nwindow = \"1h\"\np_value = 0.0", head("spike")), "s", "p_value", "(0, 1)"),
        (format!("{}name = \"s\"\ndimension = \"queue\"\nwindow = \"7d\"", head("spike")), "s", "window", "7d"),
    ];
    for (text, name, field, reason) in cases {
        let e = from_toml(&text).expect_err(&text);
        assert_eq!(
            (e.index, e.name.as_str(), e.field.as_str()),
            (1, name, field),
            "{text}"
        );
        let shown = e.to_string();
        assert!(
            shown.contains("rule #1") && shown.contains(field) && shown.contains(reason),
            "{shown}"
        );
    }
}

#[test]
fn disabled_rules_are_validated_but_not_run() {
    let set = from_toml(
        r#"
        [[rules]]
        name = "d"
        kind = "response"
        severity = "info"
        enabled = false
        [[rules]]
        name = "k"
        kind = "keyword"
        severity = "info"
        enabled = false
        keywords = ["refund"]
        [[rules]]
        name = "k2"
        kind = "keyword"
        severity = "info"
        keywords = ["manager"]
        "#,
    )
    .unwrap();
    assert_eq!(set.event_rules_len(), 1);
    let mut e = event(Some("refund please, get me a manager"), &[]);
    e.nps = Some(0);
    assert_eq!(rules_fired(&set, &e), ["k2"]);
    assert!(from_toml(
        "[[rules]]\nname = \"x\"\nkind = \"keyword\"\nseverity = \"info\"\nenabled = false"
    )
    .is_err());
}

#[test]
fn response_rule_fires_on_any_detractor_score() {
    let set = default_set();
    let mut e = event(None, &[]);
    assert!(set.evaluate_event(&e).is_empty());
    e.nps = Some(7);
    e.csat = Some(3);
    e.ces = Some(3);
    assert!(
        set.evaluate_event(&e).is_empty(),
        "no score at or below its max"
    );
    e.nps = Some(3);
    let c = set.evaluate_event(&e);
    assert_eq!(c.len(), 1);
    let c = &c[0];
    assert_eq!(
        (&*c.rule, c.kind, c.severity),
        ("detractor", Kind::Response, Severity::Warning)
    );
    assert_eq!(
        c.message,
        "Detractor: NPS 3 (≤ 6) from customer c-1 on queue billing"
    );
    assert_eq!(
        (c.scope.dimension, c.scope.key.as_str()),
        ("queue", "billing")
    );
    assert_eq!(c.scope.subject.as_str(), "customer:c-1");
    assert_eq!(c.cooldown_s, 3600);
    assert_eq!(
        (c.metric, c.value, c.threshold),
        (Some("nps"), Some(3.0), Some(6.0))
    );
    assert_eq!(c.scope.customer_id.as_deref(), Some("c-1"));
    assert_eq!(c.scope.interaction_id.as_deref(), Some("i-1"));
    assert_eq!(c.window, None);

    e.nps = Some(8);
    e.csat = Some(2);
    e.ces = Some(1);
    e.queue_id = None;
    let c = &set.evaluate_event(&e)[0];
    assert_eq!(
        c.message,
        "Detractor: CSAT 2 (≤ 2), CES 1 (≤ 2) from customer c-1 on team t-1"
    );
    assert_eq!((c.scope.dimension, c.scope.key.as_str()), ("team", "t-1"));

    e.team_id = None;
    let c = &set.evaluate_event(&e)[0];
    assert_eq!((c.scope.dimension, c.scope.key.as_str()), ("global", "all"));

    // Out-of-scale scores are not responses.
    e.csat = Some(0);
    e.ces = Some(0);
    e.nps = Some(11);
    assert!(set.evaluate_event(&e).is_empty());
}

#[test]
fn keyword_rule_matches_word_forms_not_substrings() {
    let set = default_set();
    for text in [
        "I want to cancel",
        "I have CANCELLED twice",
        "Cancelling now.",
        "please process my cancellation",
        "I will close my account today",
        "going to switch providers",
    ] {
        assert_eq!(
            rules_fired(&set, &event(Some(text), &[])),
            ["churn_risk"],
            "{text}"
        );
    }
    for text in [
        "the scancel tool failed",
        "I had an issue with the invoice", // "sue" inside "issue"
        "the agent showed great courtesy", // "court" inside "courtesy"
        "close the ticket, my account is fine",
        "",
    ] {
        assert!(
            rules_fired(&set, &event(Some(text), &[])).is_empty(),
            "{text}"
        );
    }
    let both = set.evaluate_event(&event(Some("I'll cancel and call my lawyer"), &[]));
    let names: Vec<_> = both.iter().map(|c| &*c.rule).collect();
    assert_eq!(names, ["churn_risk", "legal_threat"]);
    assert_eq!(
        both[0].message,
        "Keyword \"cancel\" in verbatim from customer c-1 on queue billing"
    );
    assert_eq!(both[1].severity, Severity::Critical);
    assert!(
        !both[1].message.contains("call my"),
        "no verbatim text in messages"
    );
}

#[test]
fn keyword_rule_matches_tags_case_insensitively() {
    let set = default_set();
    let tags = vec!["billing".to_owned(), "Cancellation".to_owned()];
    let c = set.evaluate_event(&event(None, &tags));
    assert_eq!(c.len(), 1);
    assert_eq!(&*c[0].rule, "churn_risk");
    assert_eq!(
        c[0].message,
        "Tag \"cancellation\" on interaction from customer c-1 on queue billing"
    );
    let other = vec!["billing".to_owned()];
    assert!(set.evaluate_event(&event(Some("fine"), &other)).is_empty());
}

#[test]
fn keyword_rules_report_their_own_first_keyword() {
    let set = from_toml(
        r#"
        [[rules]]
        name = "a"
        kind = "keyword"
        severity = "info"
        keywords = ["refund", "money back"]
        [[rules]]
        name = "b"
        kind = "keyword"
        severity = "info"
        keywords = ["manager", "refund"]
        [[rules]]
        name = "c"
        kind = "keyword"
        severity = "info"
        keywords = ["supervisor"]
        "#,
    )
    .unwrap();
    let c = set.evaluate_event(&event(
        Some("Get me my money back, and a refund, and a MANAGER"),
        &[],
    ));
    let got: Vec<_> = c.iter().map(|c| (&*c.rule, c.message.as_str())).collect();
    assert_eq!(
        got,
        [
            (
                "a",
                "Keyword \"refund\" in verbatim from customer c-1 on queue billing"
            ),
            (
                "b",
                "Keyword \"manager\" in verbatim from customer c-1 on queue billing"
            ),
        ]
    );
}

#[test]
fn threshold_fires_past_the_bound_only_with_enough_responses() {
    let set = default_set();
    let rule = window_rule(&set, "queue_nps_low");
    // 40 responses: 10 promoters, 15 detractors → NPS = 25% − 37.5% = −12.5.
    let agg = nps_aggregate(40, 15, 10);
    let c = set
        .evaluate_window(rule, "billing", &agg, None, AT)
        .expect("fires");
    assert_eq!(
        c.message,
        "Queue billing NPS over 1h is -12.5 (below 0), n=40"
    );
    assert_eq!((c.kind, c.severity), (Kind::Threshold, Severity::Warning));
    assert_eq!(
        (
            c.scope.dimension,
            c.scope.key.as_str(),
            c.scope.subject.as_str()
        ),
        ("queue", "billing", "queue:billing")
    );
    assert_eq!((c.window, c.metric), (Some("1h"), Some("nps")));
    assert_eq!((c.value, c.threshold), (Some(-12.5), Some(0.0)));
    assert_eq!(
        (c.scope.customer_id.clone(), c.scope.interaction_id.clone()),
        (None, None)
    );
    assert_eq!(c.cooldown_s, 1800);

    // Below min_responses (30): silent.
    assert!(set
        .evaluate_window(rule, "billing", &nps_aggregate(29, 20, 0), None, AT)
        .is_none());
    // NPS 0 is not below 0.
    assert!(set
        .evaluate_window(rule, "billing", &nps_aggregate(40, 10, 10), None, AT)
        .is_none());
    // No NPS responses at all: no value, no alert.
    let no_nps = Aggregate {
        interactions: 500,
        ..Aggregate::default()
    };
    assert!(set
        .evaluate_window(rule, "billing", &no_nps, None, AT)
        .is_none());

    // CSAT counts csat_responses, not interactions.
    let csat = window_rule(&set, "queue_csat_low");
    let mut agg = Aggregate {
        interactions: 100,
        csat_responses: 49,
        csat_satisfied: 10,
        ..Aggregate::default()
    };
    assert!(set
        .evaluate_window(csat, "billing", &agg, None, AT)
        .is_none());
    agg.csat_responses = 50;
    let c = set
        .evaluate_window(csat, "billing", &agg, None, AT)
        .expect("fires");
    assert_eq!(
        c.message,
        "Queue billing CSAT% over 24h is 20 (below 60), n=50"
    );
}

#[test]
fn threshold_above_and_metric_count_mapping() {
    let set = from_toml(
        r#"
        [[rules]]
        name = "transfers_high"
        kind = "threshold"
        severity = "info"
        dimension = "agent"
        window = "15m"
        metric = "transfers_avg"
        op = "above"
        bound = 1.5
        min_responses = 2
        "#,
    )
    .unwrap();
    let rule = &set.window_rules()[0];
    let agg = Aggregate {
        interactions: 2,
        transfers_responses: 2,
        transfers_sum: 4,
        ..Aggregate::default()
    };
    let c = set
        .evaluate_window(rule, "a-7", &agg, None, AT)
        .expect("fires");
    assert_eq!(
        c.message,
        "Agent a-7 transfers per interaction over 15m is 2 (above 1.5), n=2"
    );
    let agg = Aggregate {
        interactions: 2,
        transfers_responses: 2,
        transfers_sum: 3,
        ..Aggregate::default()
    };
    assert!(set.evaluate_window(rule, "a-7", &agg, None, AT).is_none());

    let m = cx_windows::Metrics::from_aggregate(&Aggregate {
        interactions: 9,
        nps_responses: 5,
        csat_responses: 6,
        ces_responses: 7,
        ..Aggregate::default()
    });
    for (metric, n) in [
        ("nps", 5),
        ("detractors", 5),
        ("csat_pct", 6),
        ("ces_avg", 7),
        ("easy_pct", 7),
        ("fcr_pct", 9),
        ("sentiment_avg", 9),
    ] {
        assert_eq!(responses_for_metric(&m, metric), n, "{metric}");
    }
}

#[test]
fn spike_fires_on_a_significant_rise() {
    let set = default_set();
    let rule = window_rule(&set, "queue_detractor_spike");
    // Short window 10/40 detractors; 7d = 118/940, so the baseline without
    // the short window is 108/900 = 12 %.
    // pooled p = 118/940 = 0.1255319; se = sqrt(p(1−p)(1/40 + 1/900))
    // = sqrt(0.1097737 × 0.0261111) = 0.0535379; z = 0.13 / 0.0535379 = 2.428,
    // p = 0.0076 < 0.01 → alert.
    let short = nps_aggregate(40, 10, 10);
    let seven = nps_aggregate(940, 118, 400);
    let c = set
        .evaluate_window(rule, "billing", &short, Some(&seven), AT)
        .expect("fires");
    assert_eq!(
        c.message,
        "Queue billing detractor rate over 1h is 25.0% vs 12.0% over the 7d baseline (z=2.43, p=0.00759, n=40 vs 900)"
    );
    assert_eq!((c.kind, c.severity), (Kind::Spike, Severity::Critical));
    assert_eq!(c.metric, Some("detractor_rate"));
    assert_eq!((c.value, c.window), (Some(0.25), Some("1h")));
    assert!((c.threshold.unwrap() - 0.12).abs() < 1e-12);

    // 9/40 vs 108/900: pooled 117/940 = 0.1244681; se = sqrt(0.1089758 ×
    // 0.0261111) = 0.0533430; z = 0.105 / 0.0533430 = 1.968, p = 0.0245 → silent.
    let short = nps_aggregate(40, 9, 10);
    let seven = nps_aggregate(940, 117, 400);
    assert!(set
        .evaluate_window(rule, "billing", &short, Some(&seven), AT)
        .is_none());

    // Without the exclusion the baseline would be 18/940... here the short
    // window is most of the 7d data: 18/40 vs 0/29 baseline → under min_responses.
    let short = nps_aggregate(40, 18, 10);
    let seven = nps_aggregate(69, 18, 30);
    assert!(set
        .evaluate_window(rule, "billing", &short, Some(&seven), AT)
        .is_none());

    // Huge rise but a short sample under 30: silent.
    let short = nps_aggregate(29, 29, 0);
    let seven = nps_aggregate(929, 29, 400);
    assert!(set
        .evaluate_window(rule, "billing", &short, Some(&seven), AT)
        .is_none());

    // A fall is never a spike; no baseline, no alert.
    let short = nps_aggregate(40, 0, 10);
    let seven = nps_aggregate(940, 108, 400);
    assert!(set
        .evaluate_window(rule, "billing", &short, Some(&seven), AT)
        .is_none());
    assert!(set
        .evaluate_window(rule, "billing", &nps_aggregate(40, 10, 10), None, AT)
        .is_none());

    // Inconsistent inputs (7d smaller than the short window) saturate, not panic.
    let short = nps_aggregate(400, 300, 10);
    let seven = nps_aggregate(40, 10, 10);
    assert!(set
        .evaluate_window(rule, "billing", &short, Some(&seven), AT)
        .is_none());
}

#[test]
fn spike_min_rate_increase_gates_small_but_significant_rises() {
    let text = |inc: f64| {
        format!("[[rules]]\nname = \"s\"\nkind = \"spike\"\nseverity = \"info\"\ndimension = \"global\"\nwindow = \"24h\"\nmin_rate_increase = {inc}\n")
    };
    // 1200/10000 vs 1000/10000: significant (z ≈ 4.5) but only +2 points.
    let short = nps_aggregate(10_000, 1_200, 0);
    let seven = nps_aggregate(20_000, 2_200, 0);
    let set = from_toml(&text(0.0)).unwrap();
    let c = set
        .evaluate_window(&set.window_rules()[0], "all", &short, Some(&seven), AT)
        .expect("fires");
    assert!(
        c.message
            .starts_with("Global detractor rate over 24h is 12.0% vs 10.0%"),
        "{}",
        c.message
    );
    assert!(c.message.contains("p<0.00001"), "{}", c.message);
    let set = from_toml(&text(0.05)).unwrap();
    assert!(set
        .evaluate_window(&set.window_rules()[0], "all", &short, Some(&seven), AT)
        .is_none());
}

#[test]
fn alert_ids_are_deterministic_and_distinct() {
    let set = default_set();
    let mut e = event(Some("cancel"), &[]);
    e.nps = Some(0);
    let a = set.evaluate_event(&e);
    let b = set.evaluate_event(&e);
    assert_eq!(a.len(), 2);
    assert_eq!(
        a[0].alert_id, b[0].alert_id,
        "a redelivered event yields the same id"
    );
    assert_ne!(a[0].alert_id, a[1].alert_id, "different rules");
    assert!(a[0].alert_id.starts_with("al_") && a[0].alert_id.len() == 35);
    assert!(a[0].alert_id[3..]
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    let mut e2 = e;
    e2.interaction_id = "i-2";
    assert_ne!(
        set.evaluate_event(&e2)[0].alert_id,
        a[0].alert_id,
        "different interaction"
    );

    let rule = window_rule(&set, "queue_nps_low");
    let agg = nps_aggregate(40, 15, 10);
    let id = |key: &str, at: i64| {
        set.evaluate_window(rule, key, &agg, None, at)
            .unwrap()
            .alert_id
    };
    let bucket_start = Window::H1.bucket_s() * Window::H1.bucket_of(AT);
    assert_eq!(
        id("billing", bucket_start),
        id("billing", bucket_start + Window::H1.bucket_s() - 1),
        "same bucket"
    );
    assert_ne!(
        id("billing", bucket_start),
        id("billing", bucket_start + Window::H1.bucket_s()),
        "next bucket"
    );
    assert_ne!(id("billing", AT), id("sales", AT), "different key");

    // Length prefixes keep field boundaries apart.
    assert_ne!(
        alert_id("a:b", Kind::Spike, "c", "d"),
        alert_id("a", Kind::Spike, "b:c", "d")
    );
    assert_eq!(
        alert_id("r", Kind::Keyword, "s", "d"),
        alert_id("r", Kind::Keyword, "s", "d")
    );
}

const CONTRACT_KEYS: [&str; 15] = [
    "alert_id",
    "rule",
    "kind",
    "severity",
    "dimension",
    "key",
    "customer_id",
    "interaction_id",
    "window",
    "metric",
    "value",
    "threshold",
    "message",
    "created_at",
    "suppressed_count",
];
const ACK_KEYS: [&str; 3] = ["acknowledged", "acknowledged_by", "acknowledged_at"];
/// Where the interaction was handled, for follow-up owners.
const PLACE_KEYS: [&str; 3] = ["agent_id", "team_id", "queue_id"];

#[test]
fn a_bad_json_alert_names_its_field() {
    let set = default_set();
    let mut e = event(None, &[]);
    e.nps = Some(2);
    let alert = Alert::from_candidate(
        &set.evaluate_event(&e)[0],
        datetime!(2024-03-01 12:00:00 UTC),
        0,
    );
    let good = serde_json::to_value(&alert).unwrap();
    assert_eq!(
        Alert::from_json(good.to_string().as_bytes()).unwrap(),
        alert
    );
    let with = |field: &str, value: serde_json::Value| {
        let mut json = good.clone();
        json[field] = value;
        Alert::from_json(json.to_string().as_bytes()).unwrap_err()
    };
    let error = with("suppressed_count", "many".into());
    assert!(
        error.starts_with("suppressed_count: invalid type: string"),
        "{error}"
    );
    let error = with("kind", "bogus".into());
    assert!(
        error.starts_with("kind: unknown variant `bogus`"),
        "{error}"
    );
    let error = with("created_at", "yesterday".into());
    assert!(error.starts_with("created_at: "), "{error}");
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("alert_id");
    let error = Alert::from_json(missing.to_string().as_bytes()).unwrap_err();
    assert!(error.contains("missing field `alert_id`"), "{error}");
    assert!(Alert::from_json(b"not json").is_err());
    let trailing = format!("{good} x");
    assert!(Alert::from_json(trailing.as_bytes()).is_err());
}

#[test]
fn alert_json_has_the_contract_keys() {
    let set = default_set();
    let mut e = event(None, &[]);
    e.nps = Some(2);
    let c = &set.evaluate_event(&e)[0];
    let created = datetime!(2024-03-01 12:00:00 UTC);
    let alert = Alert::from_candidate(c, created, 3);
    assert_eq!(alert.kafka_key(), "c-1");
    let json = serde_json::to_value(&alert).unwrap();
    let obj = json.as_object().unwrap();
    let keys: BTreeSet<&str> = obj.keys().map(String::as_str).collect();
    let expected: BTreeSet<&str> = CONTRACT_KEYS
        .iter()
        .chain(&ACK_KEYS)
        .chain(&PLACE_KEYS)
        .copied()
        .collect();
    assert_eq!(keys, expected);
    assert_eq!(obj["kind"], "response");
    assert_eq!(obj["severity"], "warning");
    assert_eq!(obj["window"], serde_json::Value::Null);
    assert_eq!(obj["created_at"], "2024-03-01T12:00:00Z");
    assert_eq!(obj["suppressed_count"], 3);
    assert_eq!(obj["acknowledged"], false);

    let back: Alert = serde_json::from_value(json).unwrap();
    assert_eq!(back, alert);
    assert_eq!(back.kafka_key(), "c-1");

    // A contract-only alert (no ack fields) reads too; window alerts key by subject.
    let rule = window_rule(&set, "queue_nps_low");
    let w = set
        .evaluate_window(rule, "billing", &nps_aggregate(40, 15, 10), None, AT)
        .unwrap();
    let alert = Alert::from_candidate(&w, created, 0);
    assert_eq!(alert.kafka_key(), "queue:billing");
    let mut json = serde_json::to_value(&alert).unwrap();
    for k in ACK_KEYS {
        json.as_object_mut().unwrap().remove(k);
    }
    let back: Alert = serde_json::from_value(json).unwrap();
    assert_eq!(back.kafka_key(), "queue:billing");
    assert!(!back.acknowledged);
    assert_eq!(back.customer_id, None);
}

/// The alert JSON and ids are a public contract and stored data: these are
/// the bytes the code produced before candidates shared their strings.
#[test]
fn alert_json_and_ids_are_pinned() {
    let set = default_set();
    let created = datetime!(2024-03-01 12:00:00 UTC);
    let json =
        |c: &Candidate| serde_json::to_string(&Alert::from_candidate(c, created, 0)).unwrap();
    let tags = vec!["Cancellation".to_owned()];
    let mut e = event(Some("I'll cancel and call my lawyer"), &tags);
    e.nps = Some(2);
    e.csat = Some(1);
    let c = set.evaluate_event(&e);
    assert_eq!(c.len(), 3);
    assert_eq!(
        json(&c[0]),
        r#"{"alert_id":"al_4d14d82fb180c50a9492af4915e31bf0","rule":"detractor","kind":"response","severity":"warning","dimension":"queue","key":"billing","customer_id":"c-1","interaction_id":"i-1","window":null,"metric":"nps","value":2.0,"threshold":6.0,"message":"Detractor: NPS 2 (≤ 6), CSAT 1 (≤ 2) from customer c-1 on queue billing","created_at":"2024-03-01T12:00:00Z","suppressed_count":0,"acknowledged":false,"acknowledged_by":null,"acknowledged_at":null,"agent_id":"a-1","team_id":"t-1","queue_id":"billing"}"#
    );
    assert_eq!(
        json(&c[1]),
        r#"{"alert_id":"al_1a33eb71bf20197c2900d85c9bd06899","rule":"churn_risk","kind":"keyword","severity":"warning","dimension":"queue","key":"billing","customer_id":"c-1","interaction_id":"i-1","window":null,"metric":null,"value":null,"threshold":null,"message":"Keyword \"cancel\" in verbatim from customer c-1 on queue billing","created_at":"2024-03-01T12:00:00Z","suppressed_count":0,"acknowledged":false,"acknowledged_by":null,"acknowledged_at":null,"agent_id":"a-1","team_id":"t-1","queue_id":"billing"}"#
    );
    e.queue_id = None;
    e.team_id = None;
    e.verbatim = None;
    let c = set.evaluate_event(&e);
    assert_eq!(
        json(&c[1]),
        r#"{"alert_id":"al_1a33eb71bf20197c2900d85c9bd06899","rule":"churn_risk","kind":"keyword","severity":"warning","dimension":"global","key":"all","customer_id":"c-1","interaction_id":"i-1","window":null,"metric":null,"value":null,"threshold":null,"message":"Tag \"cancellation\" on interaction from customer c-1","created_at":"2024-03-01T12:00:00Z","suppressed_count":0,"acknowledged":false,"acknowledged_by":null,"acknowledged_at":null,"agent_id":"a-1","team_id":null,"queue_id":null}"#
    );
    let short = nps_aggregate(40, 15, 10);
    let rule = window_rule(&set, "queue_nps_low");
    let w = set
        .evaluate_window(rule, "billing", &short, None, AT)
        .unwrap();
    assert_eq!(
        json(&w),
        r#"{"alert_id":"al_e86580b2e411921dd1d35a28b2080a27","rule":"queue_nps_low","kind":"threshold","severity":"warning","dimension":"queue","key":"billing","customer_id":null,"interaction_id":null,"window":"1h","metric":"nps","value":-12.5,"threshold":0.0,"message":"Queue billing NPS over 1h is -12.5 (below 0), n=40","created_at":"2024-03-01T12:00:00Z","suppressed_count":0,"acknowledged":false,"acknowledged_by":null,"acknowledged_at":null,"agent_id":null,"team_id":null,"queue_id":null}"#
    );
    assert_eq!(
        alert_id("detractor", Kind::Response, "customer:c-1", "i-1"),
        "al_4d14d82fb180c50a9492af4915e31bf0"
    );
    assert_eq!(
        alert_id(
            "queue_nps_low",
            Kind::Threshold,
            "queue:billing",
            "bucket:472222"
        ),
        "al_ced7b45b7cfc4bc1f2c86af81c17e6c1"
    );
}

#[test]
fn enums_have_contract_names() {
    assert!(Severity::Info < Severity::Warning && Severity::Warning < Severity::Critical);
    for (k, s) in [
        (Kind::Response, "response"),
        (Kind::Keyword, "keyword"),
        (Kind::Threshold, "threshold"),
        (Kind::Spike, "spike"),
    ] {
        assert_eq!(k.as_str(), s);
        assert_eq!(serde_json::to_value(k).unwrap(), s);
    }
    assert_eq!(
        serde_json::to_value(Severity::Critical).unwrap(),
        "critical"
    );
    assert_eq!(Comparison::parse("above"), Some(Comparison::Above));
    assert!(!Comparison::Below.crosses(f64::NAN, 0.0));
}

proptest! {
    #[test]
    fn evaluate_event_never_panics(text in any::<String>(), words in prop::collection::vec("[a-zA-Z' -]{0,12}", 0..40), nps in any::<Option<u8>>()) {
        let set = default_set();
        let tags = vec![text.clone()];
        let mut e = event(Some(&text), &tags);
        e.nps = nps;
        let _ = set.evaluate_event(&e);
        let joined = words.join(" ");
        let e = event(Some(&joined), &[]);
        for c in set.evaluate_event(&e) {
            prop_assert!(c.alert_id.starts_with("al_"));
        }
    }
}

#[test]
fn window_rule_contributions_are_usable() {
    // Aggregates built the way scoring builds them feed the rules directly.
    let mut agg = Aggregate::default();
    for nps in [0u8, 1, 2, 3, 4, 5, 6, 7, 8, 9].repeat(4) {
        agg.add(&Contribution {
            nps: Some(nps),
            ..Contribution::default()
        });
    }
    let set = default_set();
    let c = set
        .evaluate_window(
            window_rule(&set, "queue_nps_low"),
            "billing",
            &agg,
            None,
            AT,
        )
        .unwrap();
    assert_eq!(
        c.message,
        "Queue billing NPS over 1h is -60 (below 0), n=40"
    );
}

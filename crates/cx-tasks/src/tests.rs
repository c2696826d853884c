use std::collections::BTreeSet;

use proptest::prelude::*;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use crate::*;

const T0: OffsetDateTime = datetime!(2025-03-01 09:00 UTC);

fn directory() -> Directory {
    toml::from_str(
        r#"
        default_owner = "desk"
        head_of_cx = "head"

        [agents]
        a1 = "t1"
        a2 = "t-unknown"

        [teams.t1]
        lead = "lead1"
        manager = "mgr1"

        [teams.t2]
        lead = "lead2"

        [queues.q1]
        owner = "qowner"
        manager = "qmgr"
        "#,
    )
    .unwrap()
}

fn opening<'a>(alert_id: &'a str, severity: &'a str) -> Opening<'a> {
    Opening {
        customer_id: "c1",
        alert_id,
        interaction_id: Some("i1"),
        severity,
        reason: "NPS 2 on a voice call",
        agent_id: Some("a1"),
        team_id: None,
        queue_id: Some("q1"),
    }
}

fn open_task() -> Task {
    Task::open(
        &opening("al1", "warning"),
        &directory(),
        &SlaConfig::default(),
        T0,
    )
}

fn update(task: &Task, state: TaskState) -> TaskUpdate {
    TaskUpdate {
        task_id: task.task_id.clone(),
        version: task.version,
        state,
        owner: None,
        root_cause: None,
        resolution_note: None,
    }
}

/// A task moved into `state` through legal updates.
fn task_in(state: TaskState) -> Task {
    use TaskState::*;
    let path: &[TaskState] = match state {
        Open => &[],
        InProgress => &[InProgress],
        Contacted => &[Contacted],
        Resolved => &[Contacted, Resolved],
        Escalated => &[Escalated],
        Closed => &[Closed],
    };
    let mut task = open_task();
    for (i, step) in path.iter().enumerate() {
        let now = T0 + Duration::minutes(i as i64 + 1);
        task.apply_update(&update(&task, *step), now).unwrap();
    }
    assert_eq!(task.state, state);
    task
}

fn chain(v: &[&str]) -> OwnerChain {
    OwnerChain(v.iter().map(|s| s.to_string()).collect())
}

// ---- states ----------------------------------------------------------------

const LEGAL: [(TaskState, TaskState); 13] = {
    use TaskState::*;
    [
        (Open, InProgress),
        (Open, Contacted),
        (Open, Escalated),
        (Open, Closed),
        (InProgress, Contacted),
        (InProgress, Escalated),
        (InProgress, Closed),
        (Escalated, InProgress),
        (Escalated, Contacted),
        (Escalated, Closed),
        (Contacted, Resolved),
        (Contacted, Closed),
        (Resolved, Closed),
    ]
};

fn is_legal(from: TaskState, to: TaskState) -> bool {
    LEGAL.contains(&(from, to))
}

#[test]
fn transition_table_all_36_pairs() {
    let mut checked = 0;
    for from in TaskState::ALL {
        for to in TaskState::ALL {
            checked += 1;
            assert_eq!(from.can_become(to), is_legal(from, to), "{from} -> {to}");
            let mut task = task_in(from);
            let before = task.clone();
            let now = T0 + Duration::hours(1);
            let result = task.apply_update(&update(&task, to), now);
            if is_legal(from, to) {
                result.unwrap();
                assert_eq!(task.state, to);
                assert_eq!(task.version, before.version + 1);
                assert_eq!(task.updated_at, now);
            } else {
                let err = result.unwrap_err();
                assert_eq!(err, UpdateError::IllegalTransition { from, to });
                assert!(err.is_precondition());
                assert_eq!(task, before, "{from} -> {to} changed the task");
            }
        }
    }
    assert_eq!(checked, 36);
}

#[test]
fn state_predicates_and_strings() {
    use TaskState::*;
    for s in TaskState::ALL {
        assert_eq!(s.as_str().parse::<TaskState>().unwrap(), s);
        assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        assert_eq!(s.is_open(), s != Closed);
        assert_eq!(
            s.awaits_contact(),
            matches!(s, Open | InProgress | Escalated)
        );
        assert_eq!(s.takes_alerts(), !matches!(s, Resolved | Closed));
    }
    let err = "done".parse::<TaskState>().unwrap_err();
    assert_eq!(err.value, "done");
    assert!(err.to_string().contains("`done`"));
    assert!("Open".parse::<TaskState>().is_err());
}

#[test]
fn priority_order_and_severity() {
    assert!(Priority::Normal < Priority::High && Priority::High < Priority::Critical);
    assert_eq!(Priority::from_severity("critical"), Priority::Critical);
    assert_eq!(Priority::from_severity("warning"), Priority::High);
    assert_eq!(Priority::from_severity("info"), Priority::Normal);
    assert_eq!(Priority::from_severity("bogus"), Priority::Normal);
    for p in Priority::ALL {
        assert_eq!(serde_json::to_string(&p).unwrap(), format!("\"{p}\""));
        assert_eq!(p.as_str().parse::<Priority>().unwrap(), p);
    }
    assert_eq!(
        serde_json::to_string(&Outcome::NotRecovered).unwrap(),
        "\"not_recovered\""
    );
}

// ---- config ----------------------------------------------------------------

#[test]
fn sla_defaults_and_toml() {
    let sla = SlaConfig::default();
    assert_eq!(sla.due_after(Priority::Critical), Duration::hours(4));
    assert_eq!(sla.due_after(Priority::High), Duration::hours(24));
    assert_eq!(sla.due_after(Priority::Normal), Duration::hours(48));
    let sla: SlaConfig = toml::from_str("critical_s = 60").unwrap();
    assert_eq!(sla.critical_s, 60);
    assert_eq!(sla.high_s, 86_400);
    assert!(toml::from_str::<SlaConfig>("urgent_s = 1").is_err());
    // A huge SLA saturates instead of panicking.
    let huge = SlaConfig {
        normal_s: u64::MAX,
        ..SlaConfig::default()
    };
    assert_eq!(huge.due_at(Priority::Normal, T0).year(), 9999);
}

#[test]
fn directory_defaults_and_unknown_fields() {
    let d: Directory = toml::from_str("").unwrap();
    assert_eq!(d.default_owner, "cx-desk");
    assert_eq!(d.head_of_cx, "head-of-cx");
    assert_eq!(d.chain(None, None, None), chain(&["cx-desk", "head-of-cx"]));
    assert!(toml::from_str::<Directory>("owners = 1").is_err());
    assert!(toml::from_str::<Directory>("[teams.t]\nlead = \"x\"\nboss = \"y\"").is_err());
}

#[test]
fn chain_agent_in_directory() {
    let d = directory();
    // The agent's team wins over the interaction's team and the queue.
    assert_eq!(
        d.chain(Some("a1"), Some("t2"), Some("q1")),
        chain(&["lead1", "mgr1", "head"])
    );
    assert_eq!(d.team_of(Some("a1"), Some("t2")), Some("t1"));
}

#[test]
fn chain_team_only() {
    let d = directory();
    // Unknown agent: the interaction's team; t2 has no manager.
    assert_eq!(
        d.chain(Some("nobody"), Some("t2"), Some("q1")),
        chain(&["lead2", "head"])
    );
    assert_eq!(d.chain(None, Some("t2"), None), chain(&["lead2", "head"]));
}

#[test]
fn chain_queue_only() {
    let d = directory();
    // Agent maps to a team missing from the directory: fall to the queue.
    assert_eq!(
        d.chain(Some("a2"), Some("t1"), Some("q1")),
        chain(&["qowner", "qmgr", "head"])
    );
    assert_eq!(
        d.chain(None, Some("tx"), Some("q1")),
        chain(&["qowner", "qmgr", "head"])
    );
}

#[test]
fn chain_nothing_known() {
    let d = directory();
    assert_eq!(d.chain(None, None, None), chain(&["desk", "head"]));
    assert_eq!(
        d.chain(Some(""), Some(""), Some("qx")),
        chain(&["desk", "head"])
    );
}

#[test]
fn chain_collapses_consecutive_duplicates_and_blanks() {
    let mut d = directory();
    d.teams.get_mut("t1").unwrap().manager = Some("lead1".into());
    d.head_of_cx = "lead1".into();
    assert_eq!(d.chain(Some("a1"), None, None), chain(&["lead1"]));
    d.default_owner = " ".into();
    d.head_of_cx = "".into();
    assert_eq!(d.chain(None, None, None), chain(&["cx-desk"]));
    let d2 = Directory {
        default_owner: "x".into(),
        head_of_cx: "x".into(),
        ..Directory::default()
    };
    assert_eq!(d2.chain(None, None, None), chain(&["x"]));
}

// ---- open / attach -----------------------------------------------------------

#[test]
fn open_sets_everything() {
    let task = open_task();
    assert_eq!(task.task_id, task_id_for("c1", "al1"));
    assert!(task.task_id.starts_with("task_"));
    assert_eq!(task.task_id.len(), 5 + 32);
    assert!(task.task_id[5..]
        .chars()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    assert_eq!(task.state, TaskState::Open);
    assert_eq!(task.priority, Priority::High);
    assert_eq!(task.owner, "lead1");
    assert_eq!(task.escalation_level, 0);
    assert_eq!(task.escalation_chain, ["lead1", "mgr1", "head"]);
    assert_eq!(task.team.as_deref(), Some("t1"));
    assert_eq!(task.queue.as_deref(), Some("q1"));
    assert_eq!(task.interaction_ids, ["i1"]);
    assert_eq!(task.alert_ids, ["al1"]);
    assert_eq!(task.reason, "NPS 2 on a voice call");
    assert_eq!(task.version, 1);
    assert_eq!(task.created_at, T0);
    assert_eq!(task.updated_at, T0);
    assert_eq!(task.due_at, T0 + Duration::hours(24));
    assert_eq!(task.resolved_at, None);
    assert_eq!(task.outcome, None);
}

#[test]
fn task_id_is_deterministic_and_separator_safe() {
    assert_eq!(task_id_for("c1", "a"), task_id_for("c1", "a"));
    assert_ne!(task_id_for("ab", "c"), task_id_for("a", "bc"));
    assert_ne!(task_id_for("c1", "a"), task_id_for("c2", "a"));
    // Redelivery of the same alert opens the same task.
    let again = Task::open(
        &opening("al1", "critical"),
        &Directory::default(),
        &SlaConfig::default(),
        T0 + Duration::hours(3),
    );
    assert_eq!(again.task_id, open_task().task_id);
}

#[test]
fn attach_dedupes_and_raises_priority() {
    let sla = SlaConfig::default();
    let mut task = open_task();
    let before = task.clone();
    assert!(!task.attach(&opening("al1", "critical"), &sla, T0 + Duration::hours(1)));
    assert_eq!(task, before);

    // Same interaction, new alert, lower severity: ids deduped, priority kept.
    let t1 = T0 + Duration::hours(1);
    assert!(task.attach(&opening("al2", "info"), &sla, t1));
    assert_eq!(task.alert_ids, ["al1", "al2"]);
    assert_eq!(task.interaction_ids, ["i1"]);
    assert_eq!(task.priority, Priority::High);
    assert_eq!(task.due_at, T0 + Duration::hours(24));
    assert_eq!((task.version, task.updated_at), (2, t1));

    // Critical: priority raised, due pulled in to t2 + 4h.
    let t2 = T0 + Duration::hours(2);
    let mut crit = opening("al3", "critical");
    crit.interaction_id = Some("i2");
    assert!(task.attach(&crit, &sla, t2));
    assert_eq!(task.priority, Priority::Critical);
    assert_eq!(task.due_at, t2 + Duration::hours(4));
    assert_eq!(task.interaction_ids, ["i1", "i2"]);
    assert_eq!(task.version, 3);
    assert_eq!(task.reason, "NPS 2 on a voice call");
}

#[test]
fn attach_never_pushes_due_later() {
    // Raising priority with a longer configured SLA keeps the earlier due time.
    let sla = SlaConfig {
        critical_s: 10 * 86_400,
        ..SlaConfig::default()
    };
    let mut task = open_task();
    assert!(task.attach(&opening("al2", "critical"), &sla, T0 + Duration::hours(1)));
    assert_eq!(task.priority, Priority::Critical);
    assert_eq!(task.due_at, T0 + Duration::hours(24));
}

#[test]
fn attach_refused_once_resolved_or_closed() {
    let sla = SlaConfig::default();
    for state in [TaskState::Resolved, TaskState::Closed] {
        let mut task = task_in(state);
        let before = task.clone();
        assert!(!task.attach(&opening("al9", "critical"), &sla, T0 + Duration::hours(2)));
        assert_eq!(task, before);
    }
    let mut task = task_in(TaskState::Contacted);
    assert!(task.attach(&opening("al9", "critical"), &sla, T0 + Duration::hours(2)));
    // Contacted: the SLA clock has stopped, due time untouched.
    assert_eq!(task.due_at, T0 + Duration::hours(24));
}

// ---- updates ----------------------------------------------------------------

#[test]
fn stale_version_refused_unchanged() {
    let mut task = open_task();
    let before = task.clone();
    let mut up = update(&task, TaskState::InProgress);
    up.version = 7;
    let err = task.apply_update(&up, T0).unwrap_err();
    assert_eq!(
        err,
        UpdateError::StaleVersion {
            current: 1,
            given: 7
        }
    );
    assert!(err.is_precondition());
    assert_eq!(task, before);
}

#[test]
fn stale_checked_before_transition_before_fields() {
    let mut task = open_task();
    let mut up = update(&task, TaskState::Resolved);
    up.owner = Some(String::new());
    up.version = 0;
    assert!(matches!(
        task.apply_update(&up, T0),
        Err(UpdateError::StaleVersion { .. })
    ));
    up.version = 1;
    assert!(matches!(
        task.apply_update(&up, T0),
        Err(UpdateError::IllegalTransition { .. })
    ));
    up.state = TaskState::InProgress;
    let err = task.apply_update(&up, T0).unwrap_err();
    assert_eq!(err.field(), Some("owner"));
    assert!(!err.is_precondition());
    assert_eq!(task, open_task());
}

#[test]
fn two_updates_from_same_version_exactly_one_wins() {
    let mut task = open_task();
    let a = update(&task, TaskState::InProgress);
    let b = update(&task, TaskState::Contacted);
    assert!(task.apply_update(&a, T0).is_ok());
    assert_eq!(
        task.apply_update(&b, T0),
        Err(UpdateError::StaleVersion {
            current: 2,
            given: 1
        })
    );
    assert_eq!(task.state, TaskState::InProgress);
    assert_eq!(task.version, 2);
}

#[test]
fn update_applies_fields_and_stamps() {
    let mut task = open_task();
    let t1 = T0 + Duration::hours(1);
    let mut up = update(&task, TaskState::Contacted);
    up.owner = Some("crm-agent-7".into());
    task.apply_update(&up, t1).unwrap();
    assert_eq!(task.owner, "crm-agent-7");
    assert_eq!(task.first_contact_at, Some(t1));

    let t2 = T0 + Duration::hours(2);
    let mut up = update(&task, TaskState::Resolved);
    up.root_cause = Some("billing error".into());
    up.resolution_note = Some("refunded".into());
    task.apply_update(&up, t2).unwrap();
    assert_eq!(task.resolved_at, Some(t2));
    assert_eq!(task.root_cause.as_deref(), Some("billing error"));
    assert_eq!(task.resolution_note.as_deref(), Some("refunded"));
    assert_eq!(task.first_contact_at, Some(t1));
    assert_eq!(task.version, 3);

    task.apply_update(&update(&task, TaskState::Closed), t2)
        .unwrap();
    assert_eq!(task.root_cause.as_deref(), Some("billing error"));
    assert_eq!(task.resolved_at, Some(t2));
}

#[test]
fn update_field_limits() {
    let task = open_task();
    type Edit = fn(&mut TaskUpdate);
    let cases: [(&str, Edit); 5] = [
        ("owner", |u| u.owner = Some("  ".into())),
        ("owner", |u| u.owner = Some("é".repeat(129))),
        ("root_cause", |u| u.root_cause = Some("x".repeat(2049))),
        ("resolution_note", |u| {
            u.resolution_note = Some("é".repeat(1025))
        }),
        ("task_id", |u| u.task_id = "task_other".into()),
    ];
    for (field, edit) in cases {
        let mut t = task.clone();
        let mut up = update(&t, TaskState::InProgress);
        edit(&mut up);
        let err = t.apply_update(&up, T0).unwrap_err();
        assert_eq!(err.field(), Some(field), "{err}");
        assert_eq!(t, task);
    }
    // At the limits: accepted.
    let mut t = task.clone();
    let mut up = update(&t, TaskState::InProgress);
    up.owner = Some("é".repeat(128));
    up.root_cause = Some("x".repeat(2048));
    up.resolution_note = Some(String::new());
    t.apply_update(&up, T0).unwrap();
}

#[test]
fn update_from_json() {
    let up = TaskUpdate::from_json(
        br#"{"task_id":"task_1","version":3,"state":"contacted","owner":"bob","root_cause":null}"#,
    )
    .unwrap();
    assert_eq!(up.task_id, "task_1");
    assert_eq!(up.version, 3);
    assert_eq!(up.state, TaskState::Contacted);
    assert_eq!(up.owner.as_deref(), Some("bob"));
    assert_eq!(up.root_cause, None);
    // The serde derive agrees with the hand-written parser.
    let derived: TaskUpdate = serde_json::from_str(
        r#"{"task_id":"task_1","version":3,"state":"contacted","owner":"bob"}"#,
    )
    .unwrap();
    assert_eq!(derived, up);
}

#[test]
fn update_from_json_errors_name_the_field() {
    let cases: &[(&[u8], &str)] = &[
        (br#"{"task_id":"t","version":1,"state":"done"}"#, "state"),
        (br#"{"task_id":"t","version":1,"state":5}"#, "state"),
        (br#"{"task_id":"t","version":1}"#, "state"),
        (br#"{"task_id":"t","state":"closed"}"#, "version"),
        (
            br#"{"task_id":"t","version":-1,"state":"closed"}"#,
            "version",
        ),
        (
            br#"{"task_id":"t","version":"1","state":"closed"}"#,
            "version",
        ),
        (br#"{"version":1,"state":"closed"}"#, "task_id"),
        (br#"{"task_id":"","version":1,"state":"closed"}"#, "task_id"),
        (
            br#"{"task_id":"t","version":1,"state":"closed","owner":7}"#,
            "owner",
        ),
        (
            br#"{"task_id":"t","version":1,"state":"closed","resolution_note":[]}"#,
            "resolution_note",
        ),
        (
            br#"{"task_id":"t","version":1,"state":"closed","extra":1}"#,
            "extra",
        ),
        (
            br#"{"task_id":"t","version":0,"state":"closed"}"#,
            "version",
        ),
        (br#"{"task_id":"t","#, "body"),
        (br#"[1,2]"#, "body"),
        (b"\xff", "body"),
    ];
    for (json, field) in cases {
        let err = TaskUpdate::from_json(json).unwrap_err();
        assert_eq!(
            err.field(),
            Some(*field),
            "{} → {err}",
            String::from_utf8_lossy(json)
        );
        assert!(!err.is_precondition());
    }
    let err = TaskUpdate::from_json(br#"{"task_id":"t","version":1,"state":"done"}"#).unwrap_err();
    assert!(err.to_string().contains("done"), "{err}");
}

// ---- escalation ---------------------------------------------------------------

#[test]
fn escalation_walks_the_chain_with_due_times() {
    let sla = SlaConfig::default();
    let mut task = open_task();
    let due0 = task.due_at;
    // Not yet due (exactly at due_at is not past it).
    assert!(!task.escalate_if_due(&sla, due0));
    assert!(!task.is_overdue(due0));
    assert_eq!(task.version, 1);

    let t1 = due0 + Duration::seconds(1);
    assert!(task.is_overdue(t1));
    assert!(task.escalate_if_due(&sla, t1));
    assert_eq!(task.state, TaskState::Escalated);
    assert_eq!((task.escalation_level, task.owner.as_str()), (1, "mgr1"));
    assert_eq!(task.due_at, t1 + Duration::hours(24));
    assert_eq!((task.version, task.updated_at), (2, t1));
    // Not again before the new due time.
    assert!(!task.escalate_if_due(&sla, t1 + Duration::hours(1)));

    let t2 = task.due_at + Duration::minutes(5);
    assert!(task.escalate_if_due(&sla, t2));
    assert_eq!((task.escalation_level, task.owner.as_str()), (2, "head"));
    assert_eq!(task.due_at, t2 + Duration::hours(24));
    assert_eq!(task.version, 3);

    // Top of the chain: overdue, but nothing changes.
    let before = task.clone();
    let t3 = task.due_at + Duration::days(3);
    assert!(task.is_overdue(t3));
    assert!(!task.escalate_if_due(&sla, t3));
    assert_eq!(task, before);
}

#[test]
fn escalation_after_in_progress_and_not_after_contact() {
    let sla = SlaConfig::default();
    let late = T0 + Duration::days(5);
    let mut task = task_in(TaskState::InProgress);
    assert!(task.escalate_if_due(&sla, late));
    assert_eq!(task.state, TaskState::Escalated);

    for state in [TaskState::Contacted, TaskState::Resolved, TaskState::Closed] {
        let mut task = task_in(state);
        let before = task.clone();
        assert!(!task.is_overdue(late));
        assert!(!task.escalate_if_due(&sla, late));
        assert_eq!(task, before);
    }
}

#[test]
fn escalation_uses_the_stored_chain() {
    let sla = SlaConfig::default();
    let mut task = open_task();
    // A deserialised task from before the chain existed does not escalate.
    task.escalation_chain.clear();
    assert!(!task.escalate_if_due(&sla, T0 + Duration::days(5)));
}

// ---- outcome -----------------------------------------------------------------

fn survey(id: &str, at: OffsetDateTime, nps: Option<u8>, csat: Option<u8>) -> Survey<'_> {
    Survey {
        interaction_id: id,
        occurred_at: at,
        nps,
        csat,
    }
}

#[test]
fn outcome_recovered_and_not_recovered() {
    let resolved = task_in(TaskState::Resolved);
    let r_at = resolved.resolved_at.unwrap();
    let later = r_at + Duration::days(2);
    let cases = [
        (Some(9), None, Outcome::Recovered),
        (Some(7), Some(1), Outcome::Recovered),
        (Some(6), Some(5), Outcome::NotRecovered),
        (Some(0), None, Outcome::NotRecovered),
        (None, Some(4), Outcome::Recovered),
        (None, Some(3), Outcome::NotRecovered),
        (Some(11), Some(5), Outcome::Recovered),
    ];
    for (nps, csat, expected) in cases {
        let mut task = resolved.clone();
        assert!(task.record_survey(&survey("i9", later, nps, csat), later));
        assert_eq!(task.outcome, Some(expected), "nps {nps:?} csat {csat:?}");
        assert_eq!(task.last_survey_interaction_id.as_deref(), Some("i9"));
        assert_eq!(
            (task.version, task.updated_at),
            (resolved.version + 1, later)
        );
        // Only the first survey after resolution counts.
        let before = task.clone();
        assert!(!task.record_survey(&survey("i10", later, Some(10), None), later));
        assert_eq!(task, before);
    }
    // Closed after resolution still takes the outcome.
    let mut closed = resolved.clone();
    closed
        .apply_update(&update(&closed, TaskState::Closed), r_at)
        .unwrap();
    assert!(closed.record_survey(&survey("i9", later, Some(10), None), later));
    assert_eq!(closed.outcome, Some(Outcome::Recovered));
    assert_eq!(closed.state, TaskState::Closed);
}

#[test]
fn outcome_ignored_cases() {
    let resolved = task_in(TaskState::Resolved);
    let r_at = resolved.resolved_at.unwrap();
    let later = r_at + Duration::days(1);
    let unchanged = |mut task: Task, s: Survey| {
        let before = task.clone();
        assert!(!task.record_survey(&s, later), "{s:?}");
        assert_eq!(task, before);
    };
    // Before resolution (and closed without ever being resolved).
    for state in [TaskState::Open, TaskState::Contacted, TaskState::Closed] {
        unchanged(task_in(state), survey("i9", later, Some(10), None));
    }
    // An older survey, or one at the very resolution instant.
    unchanged(
        resolved.clone(),
        survey("i9", r_at - Duration::hours(1), Some(10), None),
    );
    unchanged(resolved.clone(), survey("i9", r_at, Some(10), None));
    // The task's own interaction redelivered.
    unchanged(resolved.clone(), survey("i1", later, Some(10), None));
    // No usable score.
    unchanged(resolved.clone(), survey("i9", later, None, None));
    unchanged(resolved, survey("i9", later, Some(42), Some(0)));
}

// ---- JSON ------------------------------------------------------------------

const CONTRACT_KEYS: [&str; 17] = [
    "task_id",
    "customer_id",
    "state",
    "priority",
    "owner",
    "escalation_level",
    "interaction_ids",
    "alert_ids",
    "reason",
    "created_at",
    "updated_at",
    "due_at",
    "resolved_at",
    "root_cause",
    "resolution_note",
    "outcome",
    "version",
];
const EXTRA_KEYS: [&str; 5] = [
    "escalation_chain",
    "team",
    "queue",
    "first_contact_at",
    "last_survey_interaction_id",
];

#[test]
fn json_has_exactly_contract_keys_plus_extras() {
    let task = open_task();
    let value: serde_json::Value = serde_json::from_slice(&task.to_json().unwrap()).unwrap();
    let keys: BTreeSet<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let expected: BTreeSet<&str> = CONTRACT_KEYS.into_iter().chain(EXTRA_KEYS).collect();
    assert_eq!(keys, expected);
    assert_eq!(value["state"], "open");
    assert_eq!(value["priority"], "high");
    assert_eq!(value["created_at"], "2025-03-01T09:00:00Z");
    assert_eq!(value["due_at"], "2025-03-02T09:00:00Z");
    for null in ["resolved_at", "root_cause", "resolution_note", "outcome"] {
        assert!(value[null].is_null(), "{null}");
    }
    assert_eq!(Task::from_json(&task.to_json().unwrap()).unwrap(), task);
}

#[test]
fn json_round_trips_a_full_task() {
    let mut task = task_in(TaskState::Resolved);
    let later = task.resolved_at.unwrap() + Duration::days(1);
    let mut up = update(&task, TaskState::Closed);
    up.root_cause = Some("wait time \"long\"".into());
    task.apply_update(&up, later).unwrap();
    task.record_survey(&survey("i9", later, Some(8), None), later);
    let json = task.to_json().unwrap();
    let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(value["outcome"], "recovered");
    assert_eq!(value["state"], "closed");
    assert!(value["resolved_at"].is_string());
    assert_eq!(Task::from_json(&json).unwrap(), task);
}

#[test]
fn json_reads_a_contract_only_task() {
    // A task from a producer that knows only the contract keys.
    let mut value: serde_json::Value =
        serde_json::from_slice(&open_task().to_json().unwrap()).unwrap();
    let obj = value.as_object_mut().unwrap();
    for key in EXTRA_KEYS {
        obj.remove(key);
    }
    let task: Task = serde_json::from_value(value).unwrap();
    assert!(task.escalation_chain.is_empty());
    assert_eq!(task.owner, "lead1");
}

// ---- invariants under random operations ---------------------------------------

#[derive(Debug, Clone)]
enum Op {
    Update {
        version_skew: i8,
        state: usize,
        owner: Option<usize>,
        note_len: Option<usize>,
    },
    Tick {
        minutes: u32,
    },
    Attach {
        alert: u8,
        severity: usize,
    },
    Survey {
        nps: Option<u8>,
        after_minutes: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (
            prop_oneof![4 => Just(0i8), 1 => -2i8..=2],
            0usize..6,
            proptest::option::of(0usize..140),
            proptest::option::of(2040usize..2060),
        )
            .prop_map(|(version_skew, state, owner, note_len)| Op::Update {
                version_skew,
                state,
                owner,
                note_len,
            }),
        2 => (0u32..6000).prop_map(|minutes| Op::Tick { minutes }),
        1 => (0u8..4, 0usize..3).prop_map(|(alert, severity)| Op::Attach { alert, severity }),
        1 => (proptest::option::of(0u8..12), -60i64..600)
            .prop_map(|(nps, after_minutes)| Op::Survey { nps, after_minutes }),
    ]
}

proptest! {
    #[test]
    fn random_operations_keep_invariants(ops in proptest::collection::vec(op(), 1..60)) {
        let sla = SlaConfig::default();
        let mut task = open_task();
        let mut now = T0;
        for op in ops {
            let before = task.clone();
            now += Duration::minutes(1);
            let changed = match op {
                Op::Update { version_skew, state, owner, note_len } => {
                    let up = TaskUpdate {
                        task_id: task.task_id.clone(),
                        version: task.version.wrapping_add_signed(version_skew.into()),
                        state: TaskState::ALL[state],
                        owner: owner.map(|n| "o".repeat(n)),
                        root_cause: None,
                        resolution_note: note_len.map(|n| "n".repeat(n)),
                    };
                    match task.apply_update(&up, now) {
                        Ok(()) => {
                            prop_assert_eq!(version_skew, 0);
                            prop_assert!(before.state.can_become(task.state));
                            prop_assert_eq!(task.state, up.state);
                            true
                        }
                        Err(_) => {
                            prop_assert_eq!(&task, &before);
                            false
                        }
                    }
                }
                Op::Tick { minutes } => {
                    now += Duration::minutes(minutes.into());
                    let escalated = task.escalate_if_due(&sla, now);
                    if escalated {
                        prop_assert!(before.is_overdue(now));
                        prop_assert_eq!(task.state, TaskState::Escalated);
                        prop_assert_eq!(task.escalation_level, before.escalation_level + 1);
                        prop_assert_eq!(&task.owner, &task.escalation_chain[task.escalation_level as usize]);
                        prop_assert_eq!(task.due_at, now + sla.due_after(task.priority));
                    }
                    escalated
                }
                Op::Attach { alert, severity } => {
                    let id = format!("al{alert}");
                    let o = opening(&id, ["info", "warning", "critical"][severity]);
                    let attached = task.attach(&o, &sla, now);
                    prop_assert!(task.priority >= before.priority);
                    prop_assert!(task.due_at <= before.due_at);
                    attached
                }
                Op::Survey { nps, after_minutes } => {
                    let at = now + Duration::minutes(after_minutes);
                    task.record_survey(&survey("s1", at, nps, None), now)
                }
            };
            if changed {
                prop_assert_eq!(task.version, before.version + 1);
                prop_assert_eq!(task.updated_at, now);
            } else {
                prop_assert_eq!(&task, &before);
            }
            // Closed is terminal; the state only ever moves along legal edges
            // (escalation by the timer is the one move outside the update table).
            if before.state == TaskState::Closed {
                prop_assert_eq!(task.state, TaskState::Closed);
            }
            prop_assert!(
                task.state == before.state
                    || before.state.can_become(task.state)
                    || task.state == TaskState::Escalated
            );
            prop_assert!(!task.owner.trim().is_empty());
            prop_assert!((task.escalation_level as usize) < task.escalation_chain.len());
            prop_assert!(task.resolved_at.is_some() || task.outcome.is_none());
            prop_assert!(task.state != TaskState::Resolved || task.resolved_at.is_some());
        }
    }
}

//! Topic tagging through the public API.

use cx_analytics::{TagMatcher, Taxonomy, TaxonomyError, Topic};

fn matcher(topics: &[(&str, &[&str])]) -> TagMatcher {
    Taxonomy {
        topics: topics
            .iter()
            .map(|(name, keywords)| Topic {
                name: (*name).to_owned(),
                keywords: keywords.iter().map(|k| (*k).to_owned()).collect(),
            })
            .collect(),
    }
    .compile()
    .unwrap()
}

fn one(keyword: &str) -> TagMatcher {
    matcher(&[("t", &[keyword])])
}

#[track_caller]
fn hits(keyword: &str, texts: &[&str]) {
    let m = one(keyword);
    for text in texts {
        assert_eq!(m.tags(text), ["t"], "{keyword:?} should match {text:?}");
    }
}

#[track_caller]
fn misses(keyword: &str, texts: &[&str]) {
    let m = one(keyword);
    for text in texts {
        assert!(
            m.tags(text).is_empty(),
            "{keyword:?} should not match {text:?}"
        );
    }
}

#[test]
fn word_forms_match() {
    hits(
        "cancel",
        &[
            "please cancel it",
            "he cancels",
            "I cancelled yesterday",
            "canceled order",
            "canceling now",
            "cancelling now",
            "the cancellation fee",
            "two cancellations",
            "CANCEL!!!",
        ],
    );
    hits(
        "charge",
        &["I was charged", "extra charges", "charging me", "a charge"],
    );
    hits(
        "refund",
        &["they refunded me", "refunds", "refunding", "no refund"],
    );
    hits(
        "bill",
        &[
            "my bill",
            "the billing team",
            "I was billed",
            "two bills",
            "Bill.",
        ],
    );
    hits(
        "delivery",
        &[
            "it was delivered",
            "two deliveries",
            "delivering",
            "deliver it",
        ],
    );
    hits("delivered", &["the delivery", "deliveries"]);
    hits("hold", &["put on hold", "holding for ages", "he holds"]);
    hits("customer", &["the customer's account"]);
    hits("don't work", &["it DON'T work", "it dont works"]);
}

#[test]
fn substrings_and_other_words_do_not_match() {
    misses(
        "bill",
        &[
            "a billion",
            "billy called",
            "billionaire",
            "rebill",
            "a billboard",
        ],
    );
    misses("cancel", &["scancel", "cancelable-ish", "cancer"]);
    misses("app", &["apply now", "happy", "application", "appetite"]);
    misses("patient", &["so impatient"]);
    misses("friendly", &["my friend"]);
    misses("fee", &["feedback", "coffee", "feed"]);
    misses("sue", &["issue", "pursue", "suede"]);
}

#[test]
fn phrases_match_consecutive_words() {
    hits(
        "on hold",
        &[
            "I was on hold",
            "on-hold music",
            "ON HOLD for an hour",
            "on holding",
        ],
    );
    misses("on hold", &["hold on", "on the hold", "on", "hold"]);
    hits(
        "charged twice",
        &["I got charged twice!", "they charge twice"],
    );
    misses("charged twice", &["charged once, then twice"]);
    // A phrase at the very end, and one longer than the text.
    hits("above and beyond", &["went above and beyond"]);
    misses("above and beyond", &["went above and", "beyond"]);
    hits("hung up on me", &["he hung up on me."]);
}

#[test]
fn output_is_sorted_and_unique() {
    let m = matcher(&[
        ("zeta", &["refund"]),
        ("alpha", &["cancel", "cancellation"]),
        ("mid", &["bill"]),
    ]);
    assert_eq!(
        m.tags("cancel my bill and refund me; cancellation now, cancel cancel"),
        ["alpha", "mid", "zeta"]
    );
    let mut out = vec!["already-there"];
    m.tags_into("refund please", &mut out);
    assert_eq!(out, ["already-there", "zeta"]);
    assert!(m.tags("").is_empty());
    assert!(m.tags("nothing relevant here").is_empty());
}

#[test]
fn many_topics_use_several_bitset_words() {
    let names: Vec<String> = (0..150).map(|i| format!("topic{i:03}")).collect();
    let taxonomy = Taxonomy {
        topics: names
            .iter()
            .map(|n| Topic {
                name: n.clone(),
                keywords: vec![format!("word{n}")],
            })
            .collect(),
    };
    let m = taxonomy.compile().unwrap();
    assert_eq!(
        m.tags("wordtopic149 and wordtopic000 and wordtopic070"),
        ["topic000", "topic070", "topic149"]
    );
}

#[test]
fn non_ascii_text_is_handled() {
    hits("café", &["the CAFÉ was closed", "cafés"]);
    hits("refund", &["¡refund! — now, «refunds» ✓"]);
    hits("dont", &["I don’t know"]);
}

#[test]
fn default_taxonomy_tags_typical_verbatims() {
    let m = Taxonomy::contact_centre_default().compile().unwrap();
    assert_eq!(m.len(), 12);
    let cases: &[(&str, &[&str])] = &[
        (
            "I was charged twice and want my money back",
            &["billing", "refund"],
        ),
        (
            "Waited on hold for 40 minutes then got transferred to another department",
            &["transfer", "wait_time"],
        ),
        ("The agent was rude and hung up on me", &["agent_attitude"]),
        (
            "My parcel never arrived and the courier lost it",
            &["delivery"],
        ),
        (
            "Someone made an unauthorised payment, this is fraud",
            &["billing", "fraud_security"],
        ),
        (
            "I'm cancelling and taking this to the ombudsman",
            &["cancellation", "legal_threat"],
        ),
        ("Sarah was brilliant, thank you so much", &["praise"]),
        ("The app keeps crashing with an error", &["technical_issue"]),
        ("The kettle arrived broken", &["product_defect"]),
        ("Good morning", &[]),
        ("My billionaire uncle Billy", &[]),
    ];
    for (text, want) in cases {
        assert_eq!(m.tags(text), *want, "{text:?}");
    }
}

#[test]
fn default_topics_have_8_to_20_keywords() {
    for topic in Taxonomy::contact_centre_default().topics {
        let n = topic.keywords.len();
        assert!((8..=20).contains(&n), "{}: {n}", topic.name);
    }
}

#[test]
fn taxonomy_loads_from_toml() {
    let taxonomy: Taxonomy = toml::from_str(
        r#"
        [[topics]]
        name = "billing"
        keywords = ["bill", "charged twice"]

        [[topics]]
        name = "wait_time"
        keywords = ["on hold"]
        "#,
    )
    .unwrap();
    let m = taxonomy.compile().unwrap();
    assert_eq!(
        m.tags("Billed twice, on hold for ages"),
        ["billing", "wait_time"]
    );
    assert_eq!(
        m.topic_names().collect::<Vec<_>>(),
        ["billing", "wait_time"]
    );
    assert!(
        toml::from_str::<Taxonomy>("[[topics]]\nname = \"x\"\nkeywords = []\ncolour = 1\n")
            .is_err()
    );
}

#[test]
fn invalid_taxonomies_are_refused() {
    let compile = |topics: Vec<(&str, Vec<&str>)>| {
        Taxonomy {
            topics: topics
                .into_iter()
                .map(|(n, k)| Topic {
                    name: n.to_owned(),
                    keywords: k.into_iter().map(str::to_owned).collect(),
                })
                .collect(),
        }
        .compile()
        .map(|_| ())
    };
    assert_eq!(
        compile(vec![("ok", vec!["a"]), (" ", vec!["b"])]),
        Err(TaxonomyError::EmptyName { index: 1 })
    );
    assert_eq!(
        compile(vec![("x", vec!["a"]), ("x", vec!["b"])]),
        Err(TaxonomyError::DuplicateName { name: "x".into() })
    );
    assert_eq!(
        compile(vec![("x", vec![])]),
        Err(TaxonomyError::NoKeywords { topic: "x".into() })
    );
    for bad in ["", "   ", "!!!"] {
        assert_eq!(
            compile(vec![("x", vec!["ok", bad])]),
            Err(TaxonomyError::EmptyKeyword {
                topic: "x".into(),
                index: 1,
                keyword: bad.into()
            })
        );
    }
    // The first problem in file order is the one reported.
    assert_eq!(
        compile(vec![("b", vec!["ok", "?"]), ("a", vec![""])]),
        Err(TaxonomyError::EmptyKeyword {
            topic: "b".into(),
            index: 1,
            keyword: "?".into()
        })
    );
    assert!(compile(vec![]).is_ok());
    let err = compile(vec![("x", vec![""])]).unwrap_err();
    assert!(err.to_string().contains("keyword #0"), "{err}");
}

#[test]
fn ascii_fast_path_matches_general_path() {
    // A trailing middle dot separates words like any punctuation but makes
    // the text non-ASCII, so the general tokenizer runs instead.
    let m = Taxonomy::contact_centre_default().compile().unwrap();
    let sentences = include_str!("fixtures/sentences.txt");
    let mut tagged = 0;
    for sentence in sentences.lines().filter(|s| s.is_ascii()) {
        let general = format!("{sentence} \u{b7}");
        let tags = m.tags(sentence);
        assert_eq!(tags, m.tags(&general), "{sentence:?}");
        tagged += usize::from(!tags.is_empty());
    }
    assert!(tagged > 50, "only {tagged} fixture sentences tagged");
}

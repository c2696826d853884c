//! Per-interaction scoring, IO-free: score buckets, the detractor flag,
//! sentiment, topic tags, and what the interaction adds to its windows.

use cx_analytics::sentiment::SentimentScorer;
use cx_analytics::tags::{TagMatcher, Taxonomy, TaxonomyError};
use cx_domain::{
    Ces, CesBucket, Csat, CustomerId, DetractorThresholds, DimensionKey, InteractionId, Nps,
    NpsBucket,
};
use cx_proto::prost::Message as _;
use cx_proto::{prost_types, v1};
use cx_windows::Contribution;

/// Why a record cannot be scored (it goes to the dead-letter topic).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Unscorable {
    pub field: &'static str,
    pub reason: String,
}

fn unscorable(field: &'static str, reason: impl Into<String>) -> Unscorable {
    Unscorable {
        field,
        reason: reason.into(),
    }
}

/// How far past the reader's clock an event time may be. Ingest allows 5
/// minutes; the rest is room for hosts whose clocks disagree.
pub const MAX_AHEAD_S: i64 = 3600;

/// What every reader of an interaction record relies on, checked again
/// because anyone can write to a topic: the contract's rules for the ids
/// and dimension keys (they reach Redis keys, logs and alerts), scores in
/// range, a known channel, an event time. Returns the event time (unix s).
pub fn check_record(interaction: &v1::Interaction) -> Result<i64, Unscorable> {
    let id_rule =
        |field: &'static str, error: cx_domain::IdError| unscorable(field, error.to_string());
    InteractionId::check(&interaction.interaction_id).map_err(|e| id_rule("interaction_id", e))?;
    CustomerId::check(&interaction.customer_id).map_err(|e| id_rule("customer_id", e))?;
    for (field, key) in [
        ("agent_id", &interaction.agent_id),
        ("team_id", &interaction.team_id),
        ("queue_id", &interaction.queue_id),
    ] {
        if let Some(key) = key.as_deref().filter(|k| !k.is_empty()) {
            DimensionKey::check(key).map_err(|e| id_rule(field, e))?;
        }
    }
    for (field, value, range) in [
        ("nps", interaction.nps, 0..=10),
        ("csat", interaction.csat, 1..=5),
        ("ces", interaction.ces, 1..=7),
    ] {
        if let Some(value) = value.filter(|v| !range.contains(v)) {
            return Err(unscorable(
                field,
                format!("{value} is outside {}..={}", range.start(), range.end()),
            ));
        }
    }
    v1::Channel::try_from(interaction.channel)
        .ok()
        .and_then(v1::Channel::contract_name)
        .ok_or_else(|| unscorable("channel", format!("unknown value {}", interaction.channel)))?;
    // Ingest measures the verbatim before redaction, which may lengthen
    // it a little ("a@b.io" is shorter than "[email]"): twice the limit
    // still bounds the sentiment's work per record.
    let verbatim_bytes = interaction.verbatim.as_deref().map_or(0, str::len);
    if verbatim_bytes > 2 * cx_domain::interaction::MAX_VERBATIM_BYTES {
        return Err(unscorable(
            "verbatim",
            format!(
                "{verbatim_bytes} bytes is over twice the contract's {}",
                cx_domain::interaction::MAX_VERBATIM_BYTES
            ),
        ));
    }
    let occurred_at = interaction
        .occurred_at
        .as_ref()
        .ok_or_else(|| unscorable("occurred_at", "is required"))?;
    if !(0..1_000_000_000).contains(&occurred_at.nanos)
        || !(cx_domain::interaction::MIN_UNIX_SECONDS..=cx_domain::interaction::MAX_UNIX_SECONDS)
            .contains(&occurred_at.seconds)
    {
        return Err(unscorable(
            "occurred_at",
            format!(
                "{}s {}ns is not a valid timestamp",
                occurred_at.seconds, occurred_at.nanos
            ),
        ));
    }
    Ok(occurred_at.seconds)
}

/// [`check_record`]'s event time against the reader's clock.
pub fn check_not_ahead(occurred_at_s: i64, now_s: i64) -> Result<(), Unscorable> {
    if occurred_at_s > now_s.saturating_add(MAX_AHEAD_S) {
        return Err(unscorable(
            "occurred_at",
            format!("{occurred_at_s} is more than {MAX_AHEAD_S} s ahead of this service's clock"),
        ));
    }
    Ok(())
}

/// A scored interaction before the Redis step adds repeat-contact figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    pub record: v1::ScoredInteraction,
    pub contribution: Contribution,
    pub occurred_at_s: i64,
    channel: &'static str,
}

/// What the window store and the publisher need of a scored interaction.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowEvent {
    pub interaction_id: String,
    pub customer_id: String,
    pub occurred_at_s: i64,
    pub contribution: Contribution,
    /// Dimension keys, empty when absent.
    agent: String,
    team: String,
    queue: String,
    channel: &'static str,
}

impl WindowEvent {
    /// Window keys: agent, team, queue, channel (empty when absent).
    pub fn dimension_keys(&self) -> [&str; 4] {
        [&self.agent, &self.team, &self.queue, self.channel]
    }
}

impl Scored {
    /// The record encoded as far as scoring knows it, and the little that
    /// counting and publishing still need: a batch waits for the previous
    /// one as these, a fifth of a `Scored` (about 930 bytes inline), and
    /// [`Self::finish`] later appends what the Redis step adds.
    pub fn into_event_and_head(self) -> (WindowEvent, Vec<u8>) {
        let head = self.record.encode_to_vec();
        let interaction = self
            .record
            .interaction
            .expect("scored records carry their interaction");
        let event = WindowEvent {
            interaction_id: interaction.interaction_id,
            customer_id: interaction.customer_id,
            occurred_at_s: self.occurred_at_s,
            contribution: self.contribution,
            agent: interaction.agent_id.unwrap_or_default(),
            team: interaction.team_id.unwrap_or_default(),
            queue: interaction.queue_id.unwrap_or_default(),
            channel: self.channel,
        };
        (event, head)
    }

    /// The full record's encoding: `head` from [`Self::into_event_and_head`]
    /// and the fields set after counting. They are the message's last
    /// field numbers, so this is byte for byte the encoding of the whole
    /// record (a test pins it).
    pub fn finish(
        head: &[u8],
        repeat_contact: bool,
        contacts_in_window: u32,
        scored_at: prost_types::Timestamp,
    ) -> Vec<u8> {
        let tail = v1::ScoredInteraction {
            repeat_contact,
            contacts_in_window,
            scored_at: Some(scored_at),
            ..Default::default()
        };
        let mut payload = Vec::with_capacity(head.len() + tail.encoded_len());
        payload.extend_from_slice(head);
        tail.encode(&mut payload)
            .expect("a Vec grows to fit the encoding");
        payload
    }
}

pub struct Scorer {
    sentiment: SentimentScorer,
    tags: TagMatcher,
    thresholds: DetractorThresholds,
}

impl Scorer {
    pub fn new(
        taxonomy: &Taxonomy,
        thresholds: DetractorThresholds,
    ) -> Result<Scorer, TaxonomyError> {
        Ok(Scorer {
            sentiment: SentimentScorer::new(),
            tags: taxonomy.compile()?,
            thresholds,
        })
    }

    /// Scores one interaction from cx.interactions.v1. Ingest validated it;
    /// this re-checks what scoring relies on, since anyone can write to a topic.
    pub fn score(&self, interaction: v1::Interaction) -> Result<Scored, Unscorable> {
        let occurred_at_s = check_record(&interaction)?;
        let channel = v1::Channel::try_from(interaction.channel)
            .ok()
            .and_then(v1::Channel::contract_name)
            .expect("check_record checked the channel");
        let nps = interaction
            .nps
            .map(|v| Nps::new(i64::from(v)))
            .transpose()
            .map_err(|e| unscorable("nps", e.to_string()))?;
        let csat = interaction
            .csat
            .map(|v| Csat::new(i64::from(v)))
            .transpose()
            .map_err(|e| unscorable("csat", e.to_string()))?;
        let ces = interaction
            .ces
            .map(|v| Ces::new(i64::from(v)))
            .transpose()
            .map_err(|e| unscorable("ces", e.to_string()))?;

        let verbatim = interaction
            .verbatim
            .as_deref()
            .filter(|v| !v.trim().is_empty());
        let sentiment = verbatim.map(|text| self.sentiment.compound(text));
        let tags: Vec<String> = verbatim
            .map(|text| {
                self.tags
                    .tags(text)
                    .into_iter()
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();

        let contribution = Contribution {
            nps: nps.map(Nps::get),
            csat: csat.map(Csat::get),
            ces: ces.map(Ces::get),
            sentiment,
            transfers: interaction
                .transfers
                .map(|t| u32::try_from(t).unwrap_or(u32::MAX)),
            resolved: interaction.resolved,
        };
        let record = v1::ScoredInteraction {
            nps_category: match nps.map(Nps::bucket) {
                None => v1::NpsCategory::Unspecified,
                Some(NpsBucket::Promoter) => v1::NpsCategory::Promoter,
                Some(NpsBucket::Passive) => v1::NpsCategory::Passive,
                Some(NpsBucket::Detractor) => v1::NpsCategory::Detractor,
            } as i32,
            csat_satisfied: csat.map(Csat::is_satisfied),
            ces_category: match ces.map(Ces::bucket) {
                None => v1::CesCategory::Unspecified,
                Some(CesBucket::Easy) => v1::CesCategory::Easy,
                Some(CesBucket::Neutral) => v1::CesCategory::Neutral,
                Some(CesBucket::Hard) => v1::CesCategory::Hard,
            } as i32,
            detractor: self.thresholds.is_detractor(nps, csat, ces),
            sentiment,
            tags,
            repeat_contact: false,
            contacts_in_window: 0,
            scored_at: None,
            interaction: Some(interaction),
        };
        Ok(Scored {
            record,
            contribution,
            occurred_at_s,
            channel,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scorer() -> Scorer {
        Scorer::new(
            &Taxonomy::contact_centre_default(),
            DetractorThresholds::default(),
        )
        .unwrap()
    }

    fn base() -> v1::Interaction {
        v1::Interaction {
            interaction_id: "i-1".into(),
            customer_id: "c-1".into(),
            occurred_at: Some(cx_proto::prost_types::Timestamp {
                seconds: 1_800_000_000,
                nanos: 0,
            }),
            channel: v1::Channel::Voice as i32,
            queue_id: Some("billing".into()),
            ..Default::default()
        }
    }

    #[test]
    fn records_breaking_the_contracts_rules_are_named_by_field() {
        let long = "x".repeat(129);
        let cases: Vec<(v1::Interaction, &str)> = vec![
            (
                v1::Interaction {
                    interaction_id: String::new(),
                    ..base()
                },
                "interaction_id",
            ),
            (
                v1::Interaction {
                    interaction_id: long.clone(),
                    ..base()
                },
                "interaction_id",
            ),
            (
                v1::Interaction {
                    customer_id: "   ".into(),
                    ..base()
                },
                "customer_id",
            ),
            (
                v1::Interaction {
                    customer_id: "c\n1".into(),
                    ..base()
                },
                "customer_id",
            ),
            (
                v1::Interaction {
                    agent_id: Some("a\u{7}".into()),
                    ..base()
                },
                "agent_id",
            ),
            (
                v1::Interaction {
                    team_id: Some(long.clone()),
                    ..base()
                },
                "team_id",
            ),
            (
                v1::Interaction {
                    queue_id: Some("q\u{0}".into()),
                    ..base()
                },
                "queue_id",
            ),
            (
                v1::Interaction {
                    nps: Some(11),
                    ..base()
                },
                "nps",
            ),
            (
                v1::Interaction {
                    csat: Some(0),
                    ..base()
                },
                "csat",
            ),
            (
                v1::Interaction {
                    ces: Some(-1),
                    ..base()
                },
                "ces",
            ),
            (
                v1::Interaction {
                    channel: 99,
                    ..base()
                },
                "channel",
            ),
            (
                v1::Interaction {
                    occurred_at: None,
                    ..base()
                },
                "occurred_at",
            ),
            (
                v1::Interaction {
                    occurred_at: Some(prost_types::Timestamp {
                        seconds: 1_800_000_000,
                        nanos: -5,
                    }),
                    ..base()
                },
                "occurred_at",
            ),
            (
                v1::Interaction {
                    verbatim: Some("x".repeat(2 * 8192 + 1)),
                    ..base()
                },
                "verbatim",
            ),
        ];
        for (interaction, field) in cases {
            let error = check_record(&interaction).unwrap_err();
            assert_eq!(error.field, field, "{error}");
            assert_eq!(scorer().score(interaction).unwrap_err().field, field);
        }
        // Empty dimension keys are absent (proto3 defaults), not invalid.
        let empty_keys = v1::Interaction {
            agent_id: Some(String::new()),
            queue_id: Some(String::new()),
            ..base()
        };
        assert_eq!(check_record(&empty_keys), Ok(1_800_000_000));
    }

    #[test]
    fn an_event_time_over_an_hour_ahead_of_the_clock_is_refused() {
        let now = 1_800_000_000;
        assert!(check_not_ahead(now + MAX_AHEAD_S, now).is_ok());
        assert_eq!(
            check_not_ahead(now + MAX_AHEAD_S + 1, now)
                .unwrap_err()
                .field,
            "occurred_at"
        );
        assert!(
            check_not_ahead(i64::MIN, now).is_ok(),
            "lateness is checked elsewhere"
        );
    }

    #[test]
    fn classification_follows_the_contract() {
        let s = scorer();
        for (nps, category, detractor) in [
            (0, v1::NpsCategory::Detractor, true),
            (6, v1::NpsCategory::Detractor, true),
            (7, v1::NpsCategory::Passive, false),
            (8, v1::NpsCategory::Passive, false),
            (9, v1::NpsCategory::Promoter, false),
            (10, v1::NpsCategory::Promoter, false),
        ] {
            let scored = s
                .score(v1::Interaction {
                    nps: Some(nps),
                    ..base()
                })
                .unwrap();
            assert_eq!(scored.record.nps_category, category as i32, "nps {nps}");
            assert_eq!(scored.record.detractor, detractor, "nps {nps}");
        }
        let csat_two = s
            .score(v1::Interaction {
                csat: Some(2),
                ..base()
            })
            .unwrap();
        assert!(csat_two.record.detractor);
        assert_eq!(csat_two.record.csat_satisfied, Some(false));
        let ces_two = s
            .score(v1::Interaction {
                ces: Some(2),
                ..base()
            })
            .unwrap();
        assert!(ces_two.record.detractor);
        assert_eq!(ces_two.record.ces_category, v1::CesCategory::Hard as i32);
        let fine = s
            .score(v1::Interaction {
                csat: Some(3),
                ces: Some(5),
                ..base()
            })
            .unwrap();
        assert!(!fine.record.detractor);
        assert_eq!(fine.record.ces_category, v1::CesCategory::Easy as i32);
    }

    #[test]
    fn verbatim_gets_sentiment_and_tags() {
        let scored = scorer()
            .score(v1::Interaction {
                verbatim: Some(
                    "I was charged twice and I want to cancel. Terrible service!".into(),
                ),
                ..base()
            })
            .unwrap();
        assert!(scored.record.sentiment.unwrap() < -0.05);
        assert!(
            scored.record.tags.iter().any(|t| t == "billing"),
            "{:?}",
            scored.record.tags
        );
        assert!(
            scored.record.tags.iter().any(|t| t == "cancellation"),
            "{:?}",
            scored.record.tags
        );
        assert_eq!(scored.contribution.sentiment, scored.record.sentiment);
        let silent = scorer().score(base()).unwrap();
        assert_eq!(silent.record.sentiment, None);
        assert!(silent.record.tags.is_empty());
    }

    #[test]
    fn records_scoring_cannot_trust_are_refused_with_the_field() {
        let s = scorer();
        assert_eq!(
            s.score(v1::Interaction {
                nps: Some(11),
                ..base()
            })
            .unwrap_err()
            .field,
            "nps"
        );
        assert_eq!(
            s.score(v1::Interaction {
                interaction_id: String::new(),
                ..base()
            })
            .unwrap_err()
            .field,
            "interaction_id"
        );
        assert_eq!(
            s.score(v1::Interaction {
                occurred_at: None,
                ..base()
            })
            .unwrap_err()
            .field,
            "occurred_at"
        );
        assert_eq!(
            s.score(v1::Interaction {
                channel: 0,
                ..base()
            })
            .unwrap_err()
            .field,
            "channel"
        );
    }

    #[test]
    fn a_head_and_its_tail_encode_exactly_the_whole_record() {
        let mut interaction = v1::Interaction {
            nps: Some(3),
            csat: Some(2),
            agent_id: Some("a-7".into()),
            team_id: Some("t-2".into()),
            verbatim: Some("I was charged twice and I want to cancel".into()),
            attributes: [("order".to_string(), "o-9".to_string())].into(),
            transfers: Some(2),
            ..base()
        };
        interaction.resolved = Some(false);
        let scored = scorer().score(interaction).unwrap();
        assert!(!scored.record.tags.is_empty(), "the verbatim has tags");
        let scored_at = prost_types::Timestamp {
            seconds: 1_800_000_100,
            nanos: 5,
        };
        let mut whole = scored.record.clone();
        whole.repeat_contact = true;
        whole.contacts_in_window = 3;
        whole.scored_at = Some(scored_at);

        let (event, head) = scored.into_event_and_head();
        assert_eq!(
            Scored::finish(&head, true, 3, scored_at),
            whole.encode_to_vec()
        );
        assert_eq!(event.dimension_keys(), ["a-7", "t-2", "billing", "voice"]);
        let interaction = whole.interaction.unwrap();
        assert_eq!(event.interaction_id, interaction.interaction_id);
        assert_eq!(event.customer_id, interaction.customer_id);
    }
}

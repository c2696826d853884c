//! Partial decodings of `cx.v1` messages, for consumers that read a few
//! fields of every record: prost skips the other fields without allocating
//! them (a scored record's verbatim, tags and attributes are most of its
//! allocations). Tags must match `proto/cx/v1/interaction.proto`; the tests
//! decode full messages to check that they do.

/// What the next-survey outcome reads of a `cx.v1.ScoredInteraction`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ScoredSurvey {
    #[prost(message, optional, tag = "1")]
    pub interaction: Option<Survey>,
}

/// The survey fields of a `cx.v1.Interaction`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Survey {
    #[prost(string, tag = "1")]
    pub interaction_id: String,
    #[prost(string, tag = "2")]
    pub customer_id: String,
    #[prost(message, optional, tag = "3")]
    pub occurred_at: Option<prost_types::Timestamp>,
    #[prost(int32, optional, tag = "8")]
    pub nps: Option<i32>,
    #[prost(int32, optional, tag = "9")]
    pub csat: Option<i32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1;
    use prost::Message as _;

    fn full_record() -> v1::ScoredInteraction {
        v1::ScoredInteraction {
            interaction: Some(v1::Interaction {
                interaction_id: "i-1".into(),
                customer_id: "c-9".into(),
                occurred_at: Some(prost_types::Timestamp {
                    seconds: 1_795_000_000,
                    nanos: 250_000_000,
                }),
                channel: v1::Channel::Chat.into(),
                agent_id: Some("a-3".into()),
                team_id: Some("t-2".into()),
                queue_id: Some("billing".into()),
                nps: Some(3),
                csat: Some(2),
                ces: Some(6),
                verbatim: Some("charged twice, nobody called back".into()),
                handle_time_s: Some(420),
                hold_time_s: Some(60),
                transfers: Some(2),
                resolved: Some(false),
                attributes: [("region".to_string(), "emea".to_string())].into(),
                ingested_at: Some(prost_types::Timestamp {
                    seconds: 1_795_000_001,
                    nanos: 0,
                }),
                redactions: 1,
            }),
            nps_category: v1::NpsCategory::Detractor.into(),
            csat_satisfied: Some(false),
            ces_category: v1::CesCategory::Hard.into(),
            detractor: true,
            sentiment: Some(-0.7),
            tags: vec!["billing".into(), "callback".into()],
            repeat_contact: true,
            contacts_in_window: 3,
            scored_at: Some(prost_types::Timestamp {
                seconds: 1_795_000_002,
                nanos: 0,
            }),
        }
    }

    #[test]
    fn a_full_scored_record_decodes_to_its_survey_fields() {
        let full = full_record();
        let view = ScoredSurvey::decode(full.encode_to_vec().as_slice()).expect("decodes");
        let interaction = full.interaction.expect("set above");
        assert_eq!(
            view.interaction,
            Some(Survey {
                interaction_id: interaction.interaction_id,
                customer_id: interaction.customer_id,
                occurred_at: interaction.occurred_at,
                nps: interaction.nps,
                csat: interaction.csat,
            })
        );
    }

    #[test]
    fn absent_scores_stay_absent() {
        let mut full = full_record();
        let interaction = full.interaction.as_mut().expect("set above");
        interaction.nps = None;
        interaction.csat = None;
        let view = ScoredSurvey::decode(full.encode_to_vec().as_slice()).expect("decodes");
        let survey = view.interaction.expect("present");
        assert_eq!((survey.nps, survey.csat), (None, None));
    }

    #[test]
    fn a_truncated_record_does_not_decode() {
        let bytes = full_record().encode_to_vec();
        let truncated = &bytes[..bytes.len() / 2];
        assert!(v1::ScoredInteraction::decode(truncated).is_err());
        assert!(ScoredSurvey::decode(truncated).is_err());
    }
}

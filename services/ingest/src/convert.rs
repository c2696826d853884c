//! Between the wire (protobuf) and the domain's raw and validated interactions.

use cx_domain::{Interaction, RawInteraction, RawTimestamp};
use cx_proto::v1;
use cx_runtime::grpc::timestamp;

/// A protobuf interaction as a raw one, for the same validation as JSON.
/// Proto3 empty strings mean "absent", like a missing JSON field.
pub fn raw_from_proto(p: v1::Interaction) -> RawInteraction {
    let non_empty = |s: String| (!s.is_empty()).then_some(s);
    let channel = match v1::Channel::try_from(p.channel) {
        Ok(channel) => channel.contract_name().map(str::to_string),
        Err(_) => Some(format!("unknown enum value {}", p.channel)),
    };
    let unsigned = |v: Option<u64>| v.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
    RawInteraction {
        interaction_id: non_empty(p.interaction_id),
        customer_id: non_empty(p.customer_id),
        occurred_at: p.occurred_at.map(|t| RawTimestamp::Unix {
            seconds: t.seconds,
            nanos: t.nanos,
        }),
        channel,
        agent_id: p.agent_id,
        team_id: p.team_id,
        queue_id: p.queue_id,
        nps: p.nps.map(i64::from),
        csat: p.csat.map(i64::from),
        ces: p.ces.map(i64::from),
        verbatim: p.verbatim,
        handle_time_s: unsigned(p.handle_time_s),
        hold_time_s: unsigned(p.hold_time_s),
        transfers: unsigned(p.transfers),
        resolved: p.resolved,
        attributes: p.attributes.into_iter().collect(),
    }
}

/// The record published to cx.interactions.v1.
pub fn to_proto(i: &Interaction, ingested_at: time::OffsetDateTime) -> v1::Interaction {
    let channel =
        v1::Channel::from_contract_name(i.channel.as_str()).unwrap_or(v1::Channel::Unspecified);
    v1::Interaction {
        interaction_id: i.interaction_id.as_str().to_string(),
        customer_id: i.customer_id.as_str().to_string(),
        occurred_at: Some(timestamp(i.occurred_at)),
        channel: channel as i32,
        agent_id: i.agent_id.as_ref().map(|k| k.as_str().to_string()),
        team_id: i.team_id.as_ref().map(|k| k.as_str().to_string()),
        queue_id: i.queue_id.as_ref().map(|k| k.as_str().to_string()),
        nps: i.nps.map(|s| i32::from(s.get())),
        csat: i.csat.map(|s| i32::from(s.get())),
        ces: i.ces.map(|s| i32::from(s.get())),
        verbatim: i.verbatim.clone(),
        handle_time_s: i.handle_time_s.map(u64::from),
        hold_time_s: i.hold_time_s.map(u64::from),
        transfers: i.transfers.map(u64::from),
        resolved: i.resolved,
        attributes: i
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        ingested_at: Some(timestamp(ingested_at)),
        redactions: i.redactions.total(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proto_round_trip_keeps_every_field() {
        let now = time::OffsetDateTime::now_utc();
        let wire = v1::Interaction {
            interaction_id: "i-1".into(),
            customer_id: "c-1".into(),
            occurred_at: Some(timestamp(now - time::Duration::minutes(3))),
            channel: v1::Channel::Chat as i32,
            agent_id: Some("a-1".into()),
            team_id: Some("t-1".into()),
            queue_id: Some("billing".into()),
            nps: Some(3),
            csat: Some(2),
            ces: Some(6),
            verbatim: Some("call me on 555-123-4567".into()),
            handle_time_s: Some(300),
            hold_time_s: Some(20),
            transfers: Some(1),
            resolved: Some(false),
            attributes: [("lang".to_string(), "en".to_string())].into(),
            ingested_at: None,
            redactions: 0,
        };
        let validated = cx_domain::validate(raw_from_proto(wire.clone()), now).unwrap();
        let back = to_proto(&validated, now);
        assert_eq!(back.verbatim.as_deref(), Some("call me on [phone]"));
        assert_eq!(back.redactions, 1);
        let expected = v1::Interaction {
            verbatim: back.verbatim.clone(),
            ingested_at: Some(timestamp(now)),
            redactions: 1,
            ..wire
        };
        assert_eq!(back, expected);
    }

    #[test]
    fn unknown_channel_numbers_are_reported_not_dropped() {
        let raw = raw_from_proto(v1::Interaction {
            channel: 42,
            ..Default::default()
        });
        assert_eq!(raw.channel.as_deref(), Some("unknown enum value 42"));
        let raw = raw_from_proto(v1::Interaction::default());
        assert_eq!(raw.channel, None);
        assert_eq!(raw.interaction_id, None);
    }
}

//! The dimensions metrics are kept for.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The contract's dimensions. Every interaction counts once under each
/// dimension it has a key for (always `global`/`all` and its channel; agent,
/// team and queue when present).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    Agent,
    Team,
    Queue,
    Channel,
    Global,
}

impl Dimension {
    /// Every dimension, in contract order.
    pub const ALL: [Dimension; 5] = [
        Dimension::Agent,
        Dimension::Team,
        Dimension::Queue,
        Dimension::Channel,
        Dimension::Global,
    ];

    /// The only key of [`Dimension::Global`].
    pub const GLOBAL_KEY: &'static str = "all";

    /// The contract name: `agent`, `team`, `queue`, `channel` or `global`.
    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Agent => "agent",
            Dimension::Team => "team",
            Dimension::Queue => "queue",
            Dimension::Channel => "channel",
            Dimension::Global => "global",
        }
    }

    /// The dimension named `s` (exact contract name), if any.
    pub fn parse(s: &str) -> Option<Dimension> {
        Dimension::ALL.into_iter().find(|d| d.as_str() == s)
    }

    /// The key every interaction has under this dimension, when it does not
    /// depend on the interaction: `Some("all")` for `global`, `None` otherwise.
    pub fn fixed_key(self) -> Option<&'static str> {
        match self {
            Dimension::Global => Some(Self::GLOBAL_KEY),
            _ => None,
        }
    }
}

impl fmt::Display for Dimension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let names = ["agent", "team", "queue", "channel", "global"];
        for (d, name) in Dimension::ALL.into_iter().zip(names) {
            assert_eq!(d.as_str(), name);
            assert_eq!(d.to_string(), name);
            assert_eq!(Dimension::parse(name), Some(d));
        }
        assert_eq!(Dimension::parse("Global"), None);
        assert_eq!(Dimension::parse("all"), None);
        assert_eq!(Dimension::parse(""), None);
    }

    #[test]
    fn only_global_has_a_fixed_key() {
        assert_eq!(Dimension::Global.fixed_key(), Some("all"));
        for d in Dimension::ALL
            .into_iter()
            .filter(|d| *d != Dimension::Global)
        {
            assert_eq!(d.fixed_key(), None, "{d}");
        }
    }

    #[test]
    fn deserializes_from_contract_names() {
        use serde::de::value::{Error, StrDeserializer};
        for d in Dimension::ALL {
            let de = StrDeserializer::<Error>::new(d.as_str());
            assert_eq!(Dimension::deserialize(de).unwrap(), d);
        }
    }
}

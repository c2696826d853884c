//! SLA and routing-directory configuration (the `CX_CONFIG` TOML sections).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::Priority;

/// Owner of a task nobody in the directory claims.
pub const DEFAULT_OWNER: &str = "cx-desk";
/// Last escalation level.
pub const DEFAULT_HEAD_OF_CX: &str = "head-of-cx";

/// Latest representable due time; a huge configured SLA saturates here
/// instead of overflowing (year 9999 is still valid RFC 3339).
const FAR_FUTURE: OffsetDateTime = time::macros::datetime!(9999-12-31 23:59:59 UTC);

/// Time allowed before first contact, per priority, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SlaConfig {
    pub critical_s: u64,
    pub high_s: u64,
    pub normal_s: u64,
}

impl Default for SlaConfig {
    fn default() -> Self {
        SlaConfig {
            critical_s: 4 * 3600,
            high_s: 24 * 3600,
            normal_s: 48 * 3600,
        }
    }
}

impl SlaConfig {
    pub fn due_after(&self, priority: Priority) -> Duration {
        let secs = match priority {
            Priority::Critical => self.critical_s,
            Priority::High => self.high_s,
            Priority::Normal => self.normal_s,
        };
        Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX))
    }

    /// `now + due_after(priority)`, saturating at the year 9999.
    pub fn due_at(&self, priority: Priority, now: OffsetDateTime) -> OffsetDateTime {
        now.checked_add(self.due_after(priority))
            .unwrap_or(FAR_FUTURE)
            .min(FAR_FUTURE)
    }
}

/// A team in the routing directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamEntry {
    pub lead: String,
    #[serde(default)]
    pub manager: Option<String>,
}

/// A queue in the routing directory, for interactions without a known team.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueEntry {
    pub owner: String,
    #[serde(default)]
    pub manager: Option<String>,
}

/// Routing directory: who owns a task and whom it escalates to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Directory {
    pub default_owner: String,
    pub head_of_cx: String,
    /// agent_id → team_id
    pub agents: BTreeMap<String, String>,
    /// team_id → team
    pub teams: BTreeMap<String, TeamEntry>,
    /// queue_id → queue
    pub queues: BTreeMap<String, QueueEntry>,
}

impl Default for Directory {
    fn default() -> Self {
        Directory {
            default_owner: DEFAULT_OWNER.to_owned(),
            head_of_cx: DEFAULT_HEAD_OF_CX.to_owned(),
            agents: BTreeMap::new(),
            teams: BTreeMap::new(),
            queues: BTreeMap::new(),
        }
    }
}

/// Empty ids (proto3 strings default to "") mean "not given".
fn given(id: Option<&str>) -> Option<&str> {
    id.filter(|s| !s.is_empty())
}

impl Directory {
    /// The interaction's team: the agent's team in the directory, else the
    /// interaction's own team_id.
    pub fn team_of<'a>(
        &'a self,
        agent_id: Option<&str>,
        team_id: Option<&'a str>,
    ) -> Option<&'a str> {
        given(agent_id)
            .and_then(|agent| self.agents.get(agent))
            .map(String::as_str)
            .filter(|t| !t.is_empty())
            .or(given(team_id))
    }

    /// Owner and escalation targets (CONTRACT: agent → team → team lead →
    /// manager): level 0 is the team's lead if the team is in the directory,
    /// else the queue's owner if the queue is, else `default_owner`; then that
    /// team's (or queue's) manager, then `head_of_cx`. Blank names are skipped
    /// and consecutive duplicates collapsed; never empty.
    pub fn chain(
        &self,
        agent_id: Option<&str>,
        team_id: Option<&str>,
        queue_id: Option<&str>,
    ) -> OwnerChain {
        let team = self
            .team_of(agent_id, team_id)
            .and_then(|t| self.teams.get(t));
        let queue = given(queue_id).and_then(|q| self.queues.get(q));
        let (first, manager) = match (team, queue) {
            (Some(t), _) => (t.lead.as_str(), t.manager.as_deref()),
            (None, Some(q)) => (q.owner.as_str(), q.manager.as_deref()),
            (None, None) => (self.default_owner.as_str(), None),
        };
        let mut chain = OwnerChain::default();
        for name in [Some(first), manager, Some(self.head_of_cx.as_str())]
            .into_iter()
            .flatten()
        {
            chain.push(name);
        }
        if chain.0.is_empty() {
            chain.push(DEFAULT_OWNER);
        }
        chain
    }
}

/// Level 0 is the initial owner, then the escalation targets in order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OwnerChain(pub Vec<String>);

impl OwnerChain {
    fn push(&mut self, name: &str) {
        let name = name.trim();
        if name.is_empty() || self.0.last().is_some_and(|last| last == name) {
            return;
        }
        self.0.push(name.to_owned());
    }

    /// The owner at `level`, if the chain reaches that far.
    pub fn at(&self, level: usize) -> Option<&str> {
        self.0.get(level).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

//! The escalation timer: every tick, escalates the tasks whose due time
//! passed. The timers are the `due` zset in Redis, so they survive
//! restarts, and every replica may run this loop: the compare-and-set in
//! [`crate::store::TaskStore::put`] lets exactly one escalate a task for
//! one due time.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::followups::Followups;

/// Most tasks escalated per tick; the rest wait for the next one.
const PER_TICK: usize = 1000;

pub async fn run(followups: Followups, tick: Duration, stop: CancellationToken) {
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = interval.tick() => {}
        }
        let round = tokio::select! {
            _ = stop.cancelled() => return,
            round = followups.escalate_due(PER_TICK) => round,
        };
        match round {
            Ok(0) => {}
            Ok(n) => tracing::debug!(escalated = n, "escalation round"),
            Err(error) => tracing::warn!(%error, "escalation round failed; next tick retries"),
        }
    }
}

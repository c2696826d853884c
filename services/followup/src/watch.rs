//! WatchTasks: one tail of the outbox stream per process, fanned out to
//! every watcher. Entries carry the task JSON at that version, so a watcher
//! sees every change, in order, without reading the task again.

use std::time::Duration;

use cx_runtime::RedisPool;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::store::{OutboxEntry, TaskStore};

/// A stream entry id, ordered like Redis orders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct StreamId(pub u64, pub u64);

impl StreamId {
    pub fn parse(id: &str) -> Option<StreamId> {
        let (ms, seq) = id.split_once('-')?;
        Some(StreamId(ms.parse().ok()?, seq.parse().ok()?))
    }

    pub fn encode(self) -> String {
        format!("{}-{}", self.0, self.1)
    }
}

#[derive(Debug, Clone)]
pub struct FeedEntry {
    pub id: StreamId,
    pub entry: OutboxEntry,
}

#[derive(Clone)]
pub struct TaskFeed {
    sender: broadcast::Sender<FeedEntry>,
}

impl Default for TaskFeed {
    fn default() -> Self {
        TaskFeed {
            sender: broadcast::channel(4096).0,
        }
    }
}

impl TaskFeed {
    pub fn subscribe(&self) -> broadcast::Receiver<FeedEntry> {
        self.sender.subscribe()
    }

    /// Tails the outbox from its current end until `stop`.
    pub async fn run(self, tail: RedisPool, outbox_key: String, stop: CancellationToken) {
        let mut last: Option<StreamId> = None;
        while !stop.is_cancelled() {
            let step = async {
                let mut conn = tail.get().await?;
                let after = match last {
                    Some(id) => id,
                    None => {
                        let newest: Vec<(String, Vec<(String, String)>)> = redis::cmd("XREVRANGE")
                            .arg(&outbox_key)
                            .arg("+")
                            .arg("-")
                            .arg("COUNT")
                            .arg(1)
                            .query_async(&mut conn)
                            .await?;
                        let newest = newest
                            .first()
                            .and_then(|(id, _)| StreamId::parse(id))
                            .unwrap_or_default();
                        last = Some(newest);
                        newest
                    }
                };
                TaskStore::outbox_after(&mut conn, &outbox_key, &after.encode(), 500, Some(1000))
                    .await
            };
            let entries = tokio::select! {
                _ = stop.cancelled() => return,
                entries = step => entries,
            };
            match entries {
                Ok(entries) => {
                    for entry in entries {
                        let Some(id) = StreamId::parse(&entry.sid) else {
                            continue;
                        };
                        last = Some(id);
                        // No receivers is fine: nobody is watching.
                        let _ = self.sender.send(FeedEntry { id, entry });
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, "task feed cannot read the outbox; retrying");
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_order_numerically_not_lexically() {
        let a = StreamId::parse("999-5").unwrap();
        let b = StreamId::parse("1000-0").unwrap();
        assert!(a < b);
        assert!(StreamId::parse("1000-2").unwrap() < StreamId::parse("1000-10").unwrap());
        assert_eq!(StreamId::parse("17-3").unwrap().encode(), "17-3");
        assert_eq!(StreamId::parse("17"), None);
    }
}

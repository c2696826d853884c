//! Sending interactions to cx-ingest over gRPC, with counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cx_proto::v1;
use cx_proto::v1::ingest_service_client::IngestServiceClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, Endpoint};

/// Attempts for items answered UNAVAILABLE (safe to retry).
const ATTEMPTS: u32 = 3;

/// What happened to what was sent.
#[derive(Debug, Default)]
pub struct Stats {
    pub sent: AtomicU64,
    pub accepted: AtomicU64,
    pub duplicates: AtomicU64,
    pub rejected: AtomicU64,
    /// UNAVAILABLE after every retry.
    pub unavailable: AtomicU64,
    /// Items lost to a failed call (transport, auth, …).
    pub errors: AtomicU64,
    /// The last error, for the progress line.
    pub last_error: Mutex<Option<String>>,
}

/// A snapshot of [`Stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub sent: u64,
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected: u64,
    pub unavailable: u64,
    pub errors: u64,
}

impl Counts {
    /// Sent but neither accepted nor answered as a duplicate: rejected,
    /// unavailable, failed, or still unanswered when cx-sim stopped.
    pub fn not_accepted(&self) -> u64 {
        self.sent.saturating_sub(self.accepted + self.duplicates)
    }
}

impl Stats {
    pub fn counts(&self) -> Counts {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Counts {
            sent: get(&self.sent),
            accepted: get(&self.accepted),
            duplicates: get(&self.duplicates),
            rejected: get(&self.rejected),
            unavailable: get(&self.unavailable),
            errors: get(&self.errors),
        }
    }

    pub fn take_last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|mut e| e.take())
    }

    fn error(&self, items: usize, message: String) {
        self.errors.fetch_add(items as u64, Ordering::Relaxed);
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(message);
        }
    }
}

/// The answer for one interaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    Duplicate,
    Rejected,
    Unavailable,
    Failed,
}

/// A bearer token as gRPC metadata.
pub fn bearer(token: &str) -> Result<MetadataValue<Ascii>, String> {
    format!("Bearer {token}")
        .parse()
        .map_err(|_| "the token must be printable ASCII".to_string())
}

/// Adds the authorization header to a request.
pub fn authed<T>(message: T, auth: &MetadataValue<Ascii>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", auth.clone());
    request
}

/// A gRPC channel to `addr` (host:port or a URI), connected now, retrying for up to
/// `patience` while the service starts.
pub async fn connect(addr: &str, patience: Duration) -> Result<Channel, String> {
    let endpoint = Endpoint::from_shared(cx_proto::endpoint_uri(addr))
        .map_err(|e| format!("bad address {addr}: {e}"))?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true);
    let started = std::time::Instant::now();
    let mut waited_once = false;
    loop {
        match endpoint.connect().await {
            Ok(channel) => return Ok(channel),
            Err(e) if started.elapsed() >= patience => {
                return Err(format!("cannot reach {addr}: {e}"));
            }
            Err(e) => {
                if waited_once {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                } else {
                    waited_once = true;
                    eprintln!(
                        "cx-sim: waiting for {addr} ({e}), up to {} s",
                        patience.as_secs()
                    );
                }
            }
        }
    }
}

/// Sends interactions to IngestService and counts the answers. Cheap to clone.
#[derive(Clone)]
pub struct Sender {
    client: IngestServiceClient<Channel>,
    auth: MetadataValue<Ascii>,
    pub stats: Arc<Stats>,
}

impl Sender {
    pub fn new(channel: Channel, auth: MetadataValue<Ascii>) -> Sender {
        Sender {
            client: IngestServiceClient::new(channel),
            auth,
            stats: Arc::new(Stats::default()),
        }
    }

    /// The same connection with counters of its own.
    pub fn with_own_stats(&self) -> Sender {
        Sender {
            client: self.client.clone(),
            auth: self.auth.clone(),
            stats: Arc::new(Stats::default()),
        }
    }

    /// One interaction with SubmitInteraction.
    pub async fn submit_one(&self, interaction: v1::Interaction) -> Outcome {
        self.stats.sent.fetch_add(1, Ordering::Relaxed);
        for attempt in 1..=ATTEMPTS {
            let mut client = self.client.clone();
            let request = authed(
                v1::SubmitInteractionRequest {
                    interaction: Some(interaction.clone()),
                },
                &self.auth,
            );
            match client.submit_interaction(request).await {
                Ok(answer) => {
                    return if answer.into_inner().duplicate {
                        self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
                        Outcome::Duplicate
                    } else {
                        self.stats.accepted.fetch_add(1, Ordering::Relaxed);
                        Outcome::Accepted
                    };
                }
                Err(status) if status.code() == tonic::Code::InvalidArgument => {
                    self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                    if let Ok(mut last) = self.stats.last_error.lock() {
                        *last = Some(format!(
                            "{} rejected: {}",
                            interaction.interaction_id,
                            status.message()
                        ));
                    }
                    return Outcome::Rejected;
                }
                Err(status) if status.code() == tonic::Code::Unavailable && attempt < ATTEMPTS => {
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                }
                Err(status) if status.code() == tonic::Code::Unavailable => {
                    self.stats.unavailable.fetch_add(1, Ordering::Relaxed);
                    return Outcome::Unavailable;
                }
                Err(status) => {
                    self.stats
                        .error(1, format!("{:?}: {}", status.code(), status.message()));
                    return Outcome::Failed;
                }
            }
        }
        Outcome::Failed
    }

    /// Up to 1000 interactions with SubmitInteractions; items
    /// answered UNAVAILABLE are sent again (twice at most).
    pub async fn submit_batch(&self, mut items: Vec<v1::Interaction>) {
        self.stats
            .sent
            .fetch_add(items.len() as u64, Ordering::Relaxed);
        for attempt in 1..=ATTEMPTS {
            if items.is_empty() {
                return;
            }
            let mut client = self.client.clone();
            let request = authed(
                v1::SubmitInteractionsRequest {
                    interactions: items.clone(),
                },
                &self.auth,
            );
            let results = match client.submit_interactions(request).await {
                Ok(answer) => answer.into_inner().results,
                Err(status) if status.code() == tonic::Code::Unavailable && attempt < ATTEMPTS => {
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                    continue;
                }
                // Still unavailable after every try: counted as such, like
                // an item answered UNAVAILABLE, not as a failed call.
                Err(status) if status.code() == tonic::Code::Unavailable => {
                    self.stats
                        .unavailable
                        .fetch_add(items.len() as u64, Ordering::Relaxed);
                    if let Ok(mut last) = self.stats.last_error.lock() {
                        *last = Some(format!("unavailable: {}", status.message()));
                    }
                    return;
                }
                Err(status) => {
                    self.stats.error(
                        items.len(),
                        format!("{:?}: {}", status.code(), status.message()),
                    );
                    return;
                }
            };
            let mut retry = Vec::new();
            for result in results {
                match v1::SubmitStatus::try_from(result.status) {
                    Ok(v1::SubmitStatus::Accepted) => {
                        self.stats.accepted.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(v1::SubmitStatus::Duplicate) => {
                        self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(v1::SubmitStatus::Unavailable) if attempt < ATTEMPTS => {
                        if let Some(item) = items.get(result.index as usize) {
                            retry.push(item.clone());
                        }
                    }
                    Ok(v1::SubmitStatus::Unavailable) => {
                        self.stats.unavailable.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                        let why = result
                            .field_violations
                            .iter()
                            .map(|v| format!("{}: {}", v.field, v.description))
                            .collect::<Vec<_>>()
                            .join("; ");
                        if let Ok(mut last) = self.stats.last_error.lock() {
                            *last = Some(format!("{} rejected: {why}", result.interaction_id));
                        }
                    }
                }
            }
            if !retry.is_empty() {
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            }
            items = retry;
        }
    }

    /// One item with a unary call, more as batches.
    pub async fn submit(&self, mut items: Vec<v1::Interaction>) {
        if items.len() == 1 {
            if let Some(item) = items.pop() {
                self.submit_one(item).await;
            }
        } else if !items.is_empty() {
            self.submit_batch(items).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock;

    fn item(id: &str, nps: i32) -> v1::Interaction {
        v1::Interaction {
            interaction_id: id.into(),
            customer_id: "c-0001".into(),
            nps: Some(nps),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn counts_every_answer_and_retries_unavailable() {
        let ingest = mock::Ingest::default();
        let channel = mock::serve(ingest.clone(), mock::Followups::default()).await;
        let sender = Sender::new(channel.clone(), bearer(mock::TOKEN).unwrap());
        sender
            .submit(vec![
                item("a", 9),
                item("b", 2),
                item("a", 9),
                item("bad", 11),
                item("c-flaky", 5),
            ])
            .await;
        assert_eq!(
            sender.stats.counts(),
            Counts {
                sent: 5,
                accepted: 3,
                duplicates: 1,
                rejected: 1,
                unavailable: 0,
                errors: 0
            }
        );
        assert!(ingest.seen.lock().unwrap().contains("c-flaky"));
        // Unary: accepted, duplicate, retried after UNAVAILABLE, rejected.
        assert_eq!(sender.submit_one(item("d", 8)).await, Outcome::Accepted);
        assert_eq!(sender.submit_one(item("d", 8)).await, Outcome::Duplicate);
        assert_eq!(
            sender.submit_one(item("e-flaky", 8)).await,
            Outcome::Accepted
        );
        assert_eq!(sender.submit_one(item("f", 12)).await, Outcome::Rejected);
        assert!(sender
            .stats
            .take_last_error()
            .unwrap()
            .contains("f rejected"));
        // A batch refused whole, UNAVAILABLE, on every try: unavailable.
        let before = sender.stats.counts();
        sender.submit(vec![item("g-down", 5), item("h", 5)]).await;
        let after = sender.stats.counts();
        assert_eq!(
            (
                after.unavailable - before.unavailable,
                after.errors - before.errors
            ),
            (2, 0)
        );
        // A wrong token: every item is an error, nothing accepted.
        let intruder = Sender::new(channel, bearer("nope").unwrap());
        intruder.submit(vec![item("g", 9), item("h", 9)]).await;
        let c = intruder.stats.counts();
        assert_eq!((c.sent, c.accepted, c.errors), (2, 0, 2));
        assert!(intruder
            .stats
            .take_last_error()
            .unwrap()
            .contains("Unauthenticated"));
    }
}

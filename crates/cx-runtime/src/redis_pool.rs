//! A Redis connection manager that is created in the background: a service
//! starts (and reports not-ready) while Redis is still unreachable.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

/// Deletes a lease or lock (KEYS[1]) only while the caller (ARGV[1]) still
/// holds it: an expired one may already belong to someone else. Shared by
/// every holder-token key (ingest's claims, the outbox relay's lease, the
/// alert digest's lock).
pub const RELEASE_IF_HOLDER: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

/// Cloneable handle; `get()` fails fast until the first connection succeeds,
/// after which the manager reconnects by itself.
#[derive(Clone)]
pub struct RedisPool {
    client: redis::Client,
    manager: Arc<OnceCell<ConnectionManager>>,
}

#[derive(Debug, thiserror::Error)]
pub enum RedisPoolError {
    #[error("invalid Redis URL: {0}")]
    Url(redis::RedisError),
}

impl RedisPool {
    pub fn new(url: &str) -> Result<RedisPool, RedisPoolError> {
        let client = redis::Client::open(url).map_err(RedisPoolError::Url)?;
        Ok(RedisPool {
            client,
            manager: Arc::new(OnceCell::new()),
        })
    }

    fn manager_config() -> ConnectionManagerConfig {
        ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500))
    }

    /// The connection manager, connecting first if needed.
    pub async fn get(&self) -> Result<ConnectionManager, redis::RedisError> {
        self.manager
            .get_or_try_init(|| async {
                ConnectionManager::new_with_config(self.client.clone(), Self::manager_config())
                    .await
            })
            .await
            .cloned()
    }

    /// PING, for readiness.
    pub async fn ping(&self) -> Result<(), String> {
        let mut conn = self.get().await.map_err(|e| e.to_string())?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

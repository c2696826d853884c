//! Serving a service's two ports and draining them: the part of every
//! service's `run_until_stopped` that is the same everywhere.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;

use crate::auth::AuthLayer;
use crate::config::Config;
use crate::grpc;
use crate::kafka::SharedProducer;
use crate::tls::{self, TlsError};
use crate::Readiness;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("grpc server: {0}")]
    Grpc(#[from] tonic::transport::Error),
    #[error("http server: {0}")]
    Http(std::io::Error),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// Why a service could not start or stopped with an error. `main` exits 64
/// for the configuration ones, 1 for the rest.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("kafka client: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error(transparent)]
    Redis(#[from] crate::redis_pool::RedisPoolError),
    #[error(transparent)]
    Config(#[from] crate::ConfigError),
    /// A service's own settings (rules, taxonomy, directory…); the message
    /// names the setting, e.g. `alerting.rules: …`.
    #[error("{0}")]
    Settings(String),
    #[error(transparent)]
    Server(#[from] ServerError),
}

impl StartError {
    pub fn settings(section: &str, error: impl std::fmt::Display) -> StartError {
        StartError::Settings(format!("{section}: {error}"))
    }

    pub fn is_config(&self) -> bool {
        // A Redis error at start is its URL (the pool connects lazily).
        matches!(
            self,
            StartError::Config(_) | StartError::Settings(_) | StartError::Redis(_)
        )
    }
}

/// The checks every service makes on the shared part of the configuration
/// before it binds or connects: the Redis URL parses (and names a scheme
/// this build speaks) and the TLS certificate and key load.
pub fn check_shared_config(config: &Config) -> Result<(), StartError> {
    crate::redis_pool::RedisPool::new(&config.redis_url)?;
    if let Some(files) = &config.tls {
        tls::grpc_config(files).map_err(|e| StartError::settings("CX_TLS_CERT/CX_TLS_KEY", e))?;
    }
    Ok(())
}

/// The gRPC and HTTP listeners, bound at build time (port 0 in tests).
pub struct Listeners {
    pub grpc: TcpListener,
    pub http: TcpListener,
}

impl Listeners {
    pub async fn bind(config: &Config) -> Result<Listeners, ServerError> {
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| ServerError::Bind { addr, source })
        };
        Ok(Listeners {
            grpc: bind(config.grpc_addr).await?,
            http: bind(config.http_addr).await?,
        })
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc.local_addr().expect("bound listener")
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http.local_addr().expect("bound listener")
    }
}

/// A tonic server builder with TLS when configured.
pub fn grpc_builder(config: &Config) -> Result<tonic::transport::Server, ServerError> {
    let mut builder = tonic::transport::Server::builder();
    if let Some(files) = &config.tls {
        builder = builder.tls_config(tls::grpc_config(files)?)?;
    }
    Ok(builder)
}

/// Both servers, running.
pub struct Serving {
    grpc: JoinHandle<Result<(), tonic::transport::Error>>,
    http: JoinHandle<Result<(), std::io::Error>>,
}

impl Serving {
    /// Starts a service's API: on the gRPC listener `service` behind `auth`,
    /// with the health service (reporting `service` as serving) and
    /// reflection; on the HTTP listener `http_router` (TLS on both when
    /// configured). Both stop taking work when `stop` is cancelled.
    pub async fn start<S>(
        config: &Config,
        listeners: Listeners,
        auth: AuthLayer,
        service: S,
        http_router: axum::Router,
        stop: &CancellationToken,
    ) -> Result<Serving, ServerError>
    where
        S: tower::Service<http::Request<tonic::body::Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Response: axum::response::IntoResponse,
        S::Future: Send + 'static,
    {
        let (health_reporter, health_service) = grpc::health();
        health_reporter.set_serving::<S>().await;
        let grpc_listener = listeners.grpc;
        // What tokio-stream's TcpListenerStream does.
        let incoming = futures::stream::poll_fn(move |cx| {
            grpc_listener
                .poll_accept(cx)
                .map(|accepted| Some(accepted.map(|(stream, _)| stream)))
        });
        let (reflection, reflection_v1alpha) = grpc::reflection(S::NAME)?;
        let grpc_server = grpc_builder(config)?
            .layer(auth)
            .add_service(health_service)
            .add_service(reflection)
            .add_service(reflection_v1alpha)
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, stop.clone().cancelled_owned());
        Ok(Serving {
            grpc: tokio::spawn(grpc_server),
            http: tokio::spawn(tls::serve_http(
                listeners.http,
                http_router,
                config.tls.clone(),
                stop.clone().cancelled_owned(),
            )),
        })
    }

    /// Call once shutdown began: not-ready, then wait (up to `grace`) for
    /// requests in hand to finish.
    pub async fn drain(
        self,
        readiness: &Readiness,
        grace: std::time::Duration,
    ) -> Result<(), ServerError> {
        readiness.set_draining();
        tracing::info!(grace_s = grace.as_secs(), "draining in-flight requests");
        let drained =
            tokio::time::timeout(grace, async { (self.grpc.await, self.http.await) }).await;
        match drained {
            Ok((grpc, http)) => {
                if let Ok(Err(error)) = grpc {
                    return Err(ServerError::Grpc(error));
                }
                if let Ok(Err(error)) = http {
                    return Err(ServerError::Http(error));
                }
                Ok(())
            }
            Err(_) => {
                tracing::warn!("grace period over with requests still in flight");
                Ok(())
            }
        }
    }

    /// The end of a run, once the consumers finished: drains the servers,
    /// stops the `background` tasks, waits for `awaited` (background tasks
    /// that still produce as they stop), then flushes `producer`.
    pub async fn shut_down(
        self,
        readiness: &Readiness,
        background: &CancellationToken,
        awaited: Vec<JoinHandle<()>>,
        producer: &SharedProducer,
        grace: Duration,
    ) -> Result<(), ServerError> {
        let drained = self.drain(readiness, grace).await;
        background.cancel();
        for task in awaited {
            let _ = task.await;
        }
        flush_producer(producer.get(), grace).await;
        drained
    }
}

/// Flushes a producer off the async threads (librdkafka's flush blocks).
pub async fn flush_producer(
    producer: std::sync::Arc<rdkafka::producer::FutureProducer>,
    timeout: std::time::Duration,
) {
    use rdkafka::producer::Producer;
    match tokio::task::spawn_blocking(move || producer.flush(timeout)).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(%error, "producer flush incomplete"),
        Err(error) => tracing::warn!(%error, "producer flush task failed"),
    }
}

/// Keeps readiness current until `stop`: first creates the `ensure` topics
/// (retrying), then every 2 s checks that Kafka knows `probe_topic` and
/// Redis answers PING. Never exits the service.
pub async fn watch_dependencies(
    kafka: crate::config::KafkaConfig,
    ensure: Vec<String>,
    probe_topic: String,
    producer: std::sync::Arc<crate::kafka::SharedProducer>,
    redis: crate::RedisPool,
    readiness: Readiness,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut topics_ensured = ensure.is_empty();
    let mut interval = tokio::time::interval(std::time::Duration::from_secs(2));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = interval.tick() => {}
        }
        if !topics_ensured {
            let names: Vec<&str> = ensure.iter().map(String::as_str).collect();
            match crate::kafka::ensure_topics(&kafka, &names).await {
                Ok(()) => topics_ensured = true,
                Err(error) => {
                    readiness.report(
                        "kafka",
                        Err(format!("cannot create topics {names:?}: {error}")),
                    );
                    continue;
                }
            }
        }
        let producer = producer.get();
        let (kafka_state, redis_state) = tokio::join!(
            crate::kafka::probe_topic(&producer, &probe_topic),
            redis.ping()
        );
        readiness.report("kafka", kafka_state);
        readiness.report("redis", redis_state);
    }
}

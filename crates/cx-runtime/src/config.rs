//! Layered configuration: built-in defaults → optional TOML file at
//! `CX_CONFIG` → environment variables of the contract.
//!
//! The environment is passed in as a map so tests never touch the process
//! environment. Service-specific sections of the TOML file stay available as
//! [`Config::file`] for each service to read its own part.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::auth::{TokenTable, TokenTableError};

/// The four services, with their contract default addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceName {
    Ingest,
    Scoring,
    Alerting,
    Followup,
}

impl ServiceName {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceName::Ingest => "ingest",
            ServiceName::Scoring => "scoring",
            ServiceName::Alerting => "alerting",
            ServiceName::Followup => "followup",
        }
    }

    fn default_ports(self) -> (u16, u16) {
        match self {
            ServiceName::Ingest => (50051, 8081),
            ServiceName::Scoring => (50052, 8082),
            ServiceName::Alerting => (50053, 8083),
            ServiceName::Followup => (50054, 8084),
        }
    }
}

/// Topic names. The defaults are the contract's; a deployment (or a test) may
/// rename them, e.g. to isolate tenants.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Topics {
    pub interactions: String,
    pub scored: String,
    pub alerts: String,
    pub followups: String,
    pub followup_updates: String,
    pub deadletter: String,
}

impl Default for Topics {
    fn default() -> Self {
        Topics {
            interactions: "cx.interactions.v1".into(),
            scored: "cx.scored.v1".into(),
            alerts: "cx.alerts.v1".into(),
            followups: "cx.followups.v1".into(),
            followup_updates: "cx.followup-updates.v1".into(),
            deadletter: "cx.deadletter.v1".into(),
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    pub brokers: String,
    /// librdkafka properties passed through unchanged (e.g.
    /// `fetch.wait.max.ms`, `security.protocol`), applied last.
    pub properties: BTreeMap<String, String>,
    /// Properties for one consumer group only, applied after `properties`:
    /// a group that need not be quick (follow-up's survey reader) can
    /// fetch less often than the ones on the alert path.
    pub group_properties: BTreeMap<String, BTreeMap<String, String>>,
    /// Partitions and replication for topics the services create if missing.
    pub topic_partitions: i32,
    pub topic_replication: i32,
    pub topics: Topics,
}

/// PEM files of a server certificate chain and its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Clone)]
pub struct Config {
    pub service: ServiceName,
    pub kafka: KafkaConfig,
    pub redis_url: String,
    /// Prefix of every Redis key this deployment writes (tests isolate by it).
    pub redis_key_prefix: String,
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub auth: TokenTable,
    pub alert_webhook_url: Option<String>,
    pub log_filter: String,
    pub log_format: LogFormat,
    /// How long SIGTERM waits for work in hand before giving up.
    pub shutdown_grace: Duration,
    /// Tokio worker threads; four services, a broker and Redis share few cores.
    pub worker_threads: usize,
    /// Serve gRPC and HTTP over TLS with this certificate chain and key.
    pub tls: Option<TlsFiles>,
    /// The whole TOML file (empty without one), for service-specific sections.
    pub file: toml::Table,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {source}")]
    ParseFile {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("{name} is not valid: {reason}")]
    Invalid { name: String, reason: String },
    #[error("CX_AUTH_TOKENS is not valid: {0}")]
    Tokens(#[from] TokenTableError),
}

fn invalid(name: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name: name.to_string(),
        reason: reason.into(),
    }
}

/// Every environment variable the services read (the contract's and the
/// project's own). A `CX_` variable outside this list is a typo or a
/// leftover: [`unknown_variables`] names it.
pub const VARIABLES: [&str; 16] = [
    "CX_KAFKA_BROKERS",
    "CX_KAFKA_PROPERTIES",
    "CX_KAFKA_GROUP_PROPERTIES",
    "CX_TOPIC_PARTITIONS",
    "CX_REDIS_URL",
    "CX_GRPC_ADDR",
    "CX_HTTP_ADDR",
    "CX_AUTH_TOKENS",
    "CX_ALERT_WEBHOOK_URL",
    "CX_CONFIG",
    "CX_LOG_FORMAT",
    "CX_SHUTDOWN_GRACE_S",
    "CX_WORKER_THREADS",
    "CX_TLS_CERT",
    "CX_TLS_KEY",
    "RUST_LOG",
];

/// Variables of the project's own tools (cxctl, cx-sim, cx-bench, the
/// deploy/local scripts, the tests), often exported in the shell that
/// starts a service: not typos.
const TOOL_VARIABLES: [&str; 8] = [
    "CX_TOKEN",
    "CX_INGEST_ADDR",
    "CX_METRICS_ADDR",
    "CX_ALERTS_ADDR",
    "CX_FOLLOWUP_ADDR",
    "CX_FOLLOWUP_HTTP_ADDR",
    "CX_SIM_TOKEN",
    "CX_SERVICE_BIN_DIR",
];
const TOOL_PREFIXES: [&str; 4] = ["CX_BENCH_", "CX_DEMO_", "CX_STACK_", "CX_TEST_"];

/// The `CX_` variables in `env` that neither a service nor one of the
/// project's tools reads, sorted: a misspelt one would otherwise be
/// ignored without a word.
pub fn unknown_variables(env: &HashMap<String, String>) -> Vec<&str> {
    let mut unknown: Vec<&str> = env
        .keys()
        .map(String::as_str)
        .filter(|name| {
            name.starts_with("CX_")
                && !VARIABLES.contains(name)
                && !TOOL_VARIABLES.contains(name)
                && !TOOL_PREFIXES.iter().any(|prefix| name.starts_with(prefix))
        })
        .collect();
    unknown.sort_unstable();
    unknown
}

/// The file's top-level keys. Each service reads its own section in full
/// (and refuses unknown keys there); a key outside this list is read by no
/// service at all.
const FILE_KEYS: [&str; 11] = [
    "kafka",
    "redis",
    "auth",
    "log",
    "tls",
    "ingest",
    "scoring",
    "alerting",
    "followup",
    "shutdown_grace_s",
    "worker_threads",
];

/// The file's shared sections; unknown service sections are left to services.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct FileShared {
    kafka: FileKafka,
    redis: FileRedis,
    auth: FileAuth,
    log: FileLog,
    tls: FileTls,
    alerting: FileServiceAddrs,
    ingest: FileServiceAddrs,
    scoring: FileServiceAddrs,
    followup: FileServiceAddrs,
    shutdown_grace_s: Option<u64>,
    worker_threads: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FileKafka {
    brokers: Option<String>,
    properties: BTreeMap<String, toml::Value>,
    group_properties: BTreeMap<String, BTreeMap<String, toml::Value>>,
    topic_partitions: Option<i32>,
    topic_replication: Option<i32>,
    topics: Option<Topics>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FileRedis {
    url: Option<String>,
    key_prefix: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FileAuth {
    tokens: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FileTls {
    cert: Option<String>,
    key: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FileLog {
    filter: Option<String>,
    format: Option<LogFormat>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct FileServiceAddrs {
    grpc_addr: Option<String>,
    http_addr: Option<String>,
    webhook_url: Option<String>,
}

impl Config {
    /// Loads the configuration of `service` from defaults, the optional file
    /// named by `CX_CONFIG`, then the environment `env`.
    pub fn load(
        service: ServiceName,
        env: &HashMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let file = match env.get("CX_CONFIG").filter(|p| !p.is_empty()) {
            Some(path) => {
                let path = PathBuf::from(path);
                let text =
                    std::fs::read_to_string(&path).map_err(|source| ConfigError::ReadFile {
                        path: path.clone(),
                        source,
                    })?;
                text.parse::<toml::Table>()
                    .map_err(|source| ConfigError::ParseFile {
                        path,
                        source: Box::new(source),
                    })?
            }
            None => toml::Table::new(),
        };
        Self::from_parts(service, file, env)
    }

    /// Same as [`Config::load`] with the file content given (tests).
    pub fn from_parts(
        service: ServiceName,
        file: toml::Table,
        env: &HashMap<String, String>,
    ) -> Result<Config, ConfigError> {
        if let Some(key) = file.keys().find(|key| !FILE_KEYS.contains(&key.as_str())) {
            return Err(invalid(
                "CX_CONFIG",
                format!(
                    "unknown top-level key `{key}` (expected one of: {})",
                    FILE_KEYS.join(", ")
                ),
            ));
        }
        let shared: FileShared = toml::Value::Table(file.clone())
            .try_into()
            .map_err(|e: toml::de::Error| invalid("CX_CONFIG", e.to_string()))?;
        let env_get = |name: &str| env.get(name).filter(|v| !v.is_empty()).cloned();

        let (grpc_port, http_port) = service.default_ports();
        let addrs = match service {
            ServiceName::Ingest => &shared.ingest,
            ServiceName::Scoring => &shared.scoring,
            ServiceName::Alerting => &shared.alerting,
            ServiceName::Followup => &shared.followup,
        };
        let grpc_addr = parse_addr(
            "CX_GRPC_ADDR",
            env_get("CX_GRPC_ADDR").or(addrs.grpc_addr.clone()),
            grpc_port,
        )?;
        let http_addr = parse_addr(
            "CX_HTTP_ADDR",
            env_get("CX_HTTP_ADDR").or(addrs.http_addr.clone()),
            http_port,
        )?;

        let mut properties = file_properties("kafka.properties", &shared.kafka.properties)?;
        if let Some(list) = env_get("CX_KAFKA_PROPERTIES") {
            properties.extend(parse_properties(&list)?);
        }
        let mut group_properties = BTreeMap::new();
        for (group, table) in &shared.kafka.group_properties {
            group_properties.insert(
                group.clone(),
                file_properties(&format!("kafka.group_properties.{group}"), table)?,
            );
        }
        if let Some(list) = env_get("CX_KAFKA_GROUP_PROPERTIES") {
            for (group, name, value) in parse_group_properties(&list)? {
                group_properties
                    .entry(group)
                    .or_insert_with(BTreeMap::new)
                    .insert(name, value);
            }
        }

        let topic_partitions = match env_get("CX_TOPIC_PARTITIONS") {
            Some(v) => v
                .parse::<i32>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| invalid("CX_TOPIC_PARTITIONS", "must be a positive integer"))?,
            None => shared.kafka.topic_partitions.unwrap_or(6),
        };

        let auth = match (env_get("CX_AUTH_TOKENS"), shared.auth.tokens.clone()) {
            (Some(spec), _) => TokenTable::parse(&spec)?,
            // Named by its key: the error must point where the bad value is.
            (None, Some(spec)) => {
                TokenTable::parse(&spec).map_err(|e| invalid("auth.tokens", e.to_string()))?
            }
            (None, None) => TokenTable::default(),
        };

        let log_format = match env_get("CX_LOG_FORMAT") {
            Some(v) => match v.as_str() {
                "json" => LogFormat::Json,
                "pretty" => LogFormat::Pretty,
                _ => return Err(invalid("CX_LOG_FORMAT", "must be json or pretty")),
            },
            None => shared.log.format.unwrap_or(LogFormat::Pretty),
        };

        let shutdown_grace_s = match env_get("CX_SHUTDOWN_GRACE_S") {
            Some(v) => v
                .parse::<u64>()
                .map_err(|_| invalid("CX_SHUTDOWN_GRACE_S", "must be a whole number of seconds"))?,
            None => shared.shutdown_grace_s.unwrap_or(30),
        };

        let worker_threads = match env_get("CX_WORKER_THREADS") {
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| invalid("CX_WORKER_THREADS", "must be a positive integer"))?,
            None => shared.worker_threads.unwrap_or(2),
        };

        let tls = match (
            env_get("CX_TLS_CERT").or(shared.tls.cert),
            env_get("CX_TLS_KEY").or(shared.tls.key),
        ) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.into(),
                key: key.into(),
            }),
            (None, None) => None,
            _ => {
                return Err(invalid(
                    "CX_TLS_CERT/CX_TLS_KEY",
                    "give both the certificate and the key, or neither",
                ))
            }
        };

        Ok(Config {
            service,
            kafka: KafkaConfig {
                brokers: env_get("CX_KAFKA_BROKERS")
                    .or(shared.kafka.brokers)
                    .unwrap_or_else(|| "127.0.0.1:9092".into()),
                properties,
                group_properties,
                topic_partitions,
                topic_replication: shared.kafka.topic_replication.unwrap_or(1),
                topics: shared.kafka.topics.unwrap_or_default(),
            },
            redis_url: env_get("CX_REDIS_URL")
                .or(shared.redis.url)
                .unwrap_or_else(|| "redis://127.0.0.1:6379".into()),
            redis_key_prefix: shared.redis.key_prefix.unwrap_or_else(|| "cx".into()),
            grpc_addr,
            http_addr,
            auth,
            alert_webhook_url: env_get("CX_ALERT_WEBHOOK_URL").or(shared.alerting.webhook_url),
            log_filter: env_get("RUST_LOG")
                .or(shared.log.filter)
                .unwrap_or_else(|| "info".into()),
            log_format,
            shutdown_grace: Duration::from_secs(shutdown_grace_s),
            worker_threads,
            tls,
            file,
        })
    }

    /// A service-specific section of the file (e.g. `[ingest]`), deserialized.
    pub fn section<T: serde::de::DeserializeOwned + Default>(
        &self,
        name: &str,
    ) -> Result<T, ConfigError> {
        match self.file.get(name) {
            Some(value) => value
                .clone()
                .try_into()
                .map_err(|e: toml::de::Error| invalid(name, e.to_string())),
            None => Ok(T::default()),
        }
    }
}

/// Properties whose values are secrets (SASL and TLS passwords, keys).
fn is_secret_property(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["password", "secret", "key", "token", "credentials"]
        .iter()
        .any(|word| name.contains(word))
}

/// A URL with any password replaced, for logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

// Configs end up in logs and panics: secrets are masked in Debug.
impl std::fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fn masked(properties: &BTreeMap<String, String>) -> BTreeMap<&str, &str> {
            properties
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str(),
                        if is_secret_property(k) {
                            "***"
                        } else {
                            v.as_str()
                        },
                    )
                })
                .collect()
        }
        let group_properties: BTreeMap<&str, BTreeMap<&str, &str>> = self
            .group_properties
            .iter()
            .map(|(group, properties)| (group.as_str(), masked(properties)))
            .collect();
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("properties", &masked(&self.properties))
            .field("group_properties", &group_properties)
            .field("topic_partitions", &self.topic_partitions)
            .field("topic_replication", &self.topic_replication)
            .field("topics", &self.topics)
            .finish()
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("service", &self.service)
            .field("kafka", &self.kafka)
            .field("redis_url", &redact_url(&self.redis_url))
            .field("redis_key_prefix", &self.redis_key_prefix)
            .field("grpc_addr", &self.grpc_addr)
            .field("http_addr", &self.http_addr)
            .field("auth", &self.auth)
            .field(
                "alert_webhook_url",
                &self.alert_webhook_url.as_deref().map(redact_url),
            )
            .field("log_filter", &self.log_filter)
            .field("log_format", &self.log_format)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("worker_threads", &self.worker_threads)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

fn parse_addr(
    name: &str,
    value: Option<String>,
    default_port: u16,
) -> Result<SocketAddr, ConfigError> {
    match value {
        Some(v) => v.parse().map_err(|_| {
            invalid(
                name,
                format!("{v:?} is not an address like 127.0.0.1:{default_port}"),
            )
        }),
        None => Ok(SocketAddr::from(([127, 0, 0, 1], default_port))),
    }
}

/// A TOML table of librdkafka properties as strings; `section` names it in errors.
fn file_properties(
    section: &str,
    table: &BTreeMap<String, toml::Value>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut out = BTreeMap::new();
    for (name, value) in table {
        let value = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Float(f) => f.to_string(),
            other => {
                return Err(invalid(
                    &format!("{section}.{name}"),
                    format!(
                        "must be a string, number or boolean, not {}",
                        other.type_str()
                    ),
                ))
            }
        };
        librdkafka_accepts(name, &value)
            .map_err(|reason| invalid(&format!("{section}.{name}"), reason))?;
        out.insert(name.clone(), value);
    }
    Ok(out)
}

/// Whether librdkafka takes this property (a known name, a valid value),
/// checked at load: a consumer-only property is otherwise first seen when
/// a consumer is created, after the service has started. The message
/// leaves out the value of a secret. Also refuses the values that would
/// undo cxloop's delivery guarantees (see [`weakens_a_guarantee`]).
fn librdkafka_accepts(name: &str, value: &str) -> Result<(), String> {
    if let Some(reason) = weakens_a_guarantee(name, value) {
        return Err(format!("{name}={value} is not allowed: {reason}"));
    }
    let mut config = rdkafka::ClientConfig::new();
    config.set(name, value);
    match config.create_native_config() {
        Ok(_) => Ok(()),
        Err(_) if is_secret_property(name) => Err(format!("librdkafka refuses {name}")),
        Err(error) => Err(error.to_string()),
    }
}

/// Why a pass-through property would undo a guarantee cxloop's clients
/// are built on, if it would. The clients set these values after the
/// pass-through ones anyway; refusing them at load tells the operator
/// instead of ignoring what they asked for.
pub(crate) fn weakens_a_guarantee(name: &str, value: &str) -> Option<&'static str> {
    let value = value.trim().to_ascii_lowercase();
    // librdkafka takes a topic property with a `topic.` prefix too, and
    // older names for some: each spelling sets the same value.
    let name = name.trim();
    let name = name.strip_prefix("topic.").unwrap_or(name);
    let name = match name {
        "request.required.acks" => "acks",
        "auto.commit.enable" => "enable.auto.commit",
        other => other,
    };
    match name {
        "enable.auto.commit" | "enable.auto.offset.store"
            if !matches!(value.as_str(), "false" | "f" | "0") =>
        {
            Some(
                "cxloop commits a batch's offsets itself, once its effects are durable; \
                 automatic commits would pass over records a crash left unhandled",
            )
        }
        "auto.offset.reset" if !matches!(value.as_str(), "earliest" | "smallest" | "beginning") => {
            Some(
                "a consumer group without a committed offset (new, or its offsets expired) \
                 would skip the records already on the topic; cxloop starts from the earliest",
            )
        }
        "acks" if !matches!(value.as_str(), "all" | "-1") => Some(
            "an interaction is accepted once every in-sync replica has it (the contract's acks=all)",
        ),
        _ => None,
    }
}

/// The `target=value` items of a `;`-separated list, trimmed; `shape`
/// names the expected form in the error. A `,` separates items too, except
/// before a piece without `=`, which continues the value before it, as in
/// librdkafka's lists (`debug=cgrp,topic`). A value holding `,x=` (some
/// SASL settings) goes in the TOML file instead.
fn list_items<'a>(
    variable: &str,
    list: &'a str,
    shape: &str,
) -> Result<Vec<(&'a str, &'a str)>, ConfigError> {
    // Byte ranges of the items in `list`: a value extends over a comma
    // without copying.
    let mut items: Vec<(usize, usize)> = Vec::new();
    let mut piece_start = 0;
    for piece in list.split([';', ',']) {
        let range = (piece_start, piece_start + piece.len());
        // The separator that ended the previous piece.
        let after_comma = piece_start > 0 && list.as_bytes()[piece_start - 1] == b',';
        piece_start += piece.len() + 1;
        if piece.trim().is_empty() {
            continue;
        }
        match items.last_mut() {
            Some(last) if after_comma && !piece.contains('=') => last.1 = range.1,
            _ => items.push(range),
        }
    }
    items
        .into_iter()
        .map(|(start, end)| list[start..end].trim())
        .map(|item| {
            item.split_once('=')
                .map(|(target, value)| (target.trim(), value.trim()))
                .ok_or_else(|| invalid(variable, format!("{item:?} is not {shape}")))
        })
        .collect()
}

/// `group:name=value;group:name=value` (commas also separate): properties
/// for one consumer group each. The group is what precedes the last `:`
/// before the `=` (property names have none).
fn parse_group_properties(list: &str) -> Result<Vec<(String, String, String)>, ConfigError> {
    const VARIABLE: &str = "CX_KAFKA_GROUP_PROPERTIES";
    let mut out = Vec::new();
    for (target, value) in list_items(VARIABLE, list, "group:name=value")? {
        // The value stays out of the message: it may be a secret.
        let bad = || {
            invalid(
                VARIABLE,
                format!("{target:?} is not group:name before the ="),
            )
        };
        let (group, name) = target.rsplit_once(':').ok_or_else(bad)?;
        let (group, name) = (group.trim(), name.trim());
        if group.is_empty() || name.is_empty() {
            return Err(bad());
        }
        librdkafka_accepts(name, value)
            .map_err(|reason| invalid(VARIABLE, format!("{group}: {reason}")))?;
        out.push((group.to_string(), name.to_string(), value.to_string()));
    }
    Ok(out)
}

/// `name=value;name=value` (commas also separate) into librdkafka properties.
fn parse_properties(list: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    const VARIABLE: &str = "CX_KAFKA_PROPERTIES";
    let mut out = BTreeMap::new();
    for (name, value) in list_items(VARIABLE, list, "name=value")? {
        librdkafka_accepts(name, value).map_err(|reason| invalid(VARIABLE, reason))?;
        out.insert(name.to_string(), value.to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_follow_the_contract() {
        let cfg = Config::from_parts(ServiceName::Scoring, toml::Table::new(), &env(&[])).unwrap();
        assert_eq!(cfg.grpc_addr, "127.0.0.1:50052".parse().unwrap());
        assert_eq!(cfg.http_addr, "127.0.0.1:8082".parse().unwrap());
        assert_eq!(cfg.kafka.brokers, "127.0.0.1:9092");
        assert_eq!(cfg.redis_url, "redis://127.0.0.1:6379");
        assert_eq!(cfg.kafka.topics.interactions, "cx.interactions.v1");
        assert!(cfg.auth.is_empty());
        assert_eq!(cfg.log_filter, "info");
    }

    #[test]
    fn env_overrides_file_which_overrides_defaults() {
        let file: toml::Table = r#"
            [kafka]
            brokers = "file:9092"
            [kafka.properties]
            "fetch.wait.max.ms" = 10
            "client.id" = "from-file"
            [ingest]
            grpc_addr = "0.0.0.0:6000"
            http_addr = "0.0.0.0:6001"
        "#
        .parse()
        .unwrap();
        let cfg = Config::from_parts(
            ServiceName::Ingest,
            file,
            &env(&[
                ("CX_KAFKA_BROKERS", "env:9092"),
                ("CX_HTTP_ADDR", "127.0.0.1:7001"),
                ("CX_KAFKA_PROPERTIES", "client.id=from-env; linger.ms=5"),
                ("CX_AUTH_TOKENS", "abc=ingest:write"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.kafka.brokers, "env:9092");
        assert_eq!(cfg.grpc_addr, "0.0.0.0:6000".parse().unwrap());
        assert_eq!(cfg.http_addr, "127.0.0.1:7001".parse().unwrap());
        assert_eq!(cfg.kafka.properties["fetch.wait.max.ms"], "10");
        assert_eq!(cfg.kafka.properties["client.id"], "from-env");
        assert_eq!(cfg.kafka.properties["linger.ms"], "5");
        assert!(!cfg.auth.is_empty());
    }

    #[test]
    fn group_properties_come_from_the_file_and_the_environment() {
        let file: toml::Table = r#"
            [kafka.group_properties.cx-followup-surveys]
            "fetch.wait.max.ms" = 100
            "fetch.min.bytes" = 65536
        "#
        .parse()
        .unwrap();
        let cfg = Config::from_parts(
            ServiceName::Followup,
            file,
            &env(&[(
                "CX_KAFKA_GROUP_PROPERTIES",
                "cx-followup-surveys:fetch.wait.max.ms=250; cx-followup-updates : fetch.wait.max.ms = 500",
            )]),
        )
        .unwrap();
        let surveys = &cfg.kafka.group_properties["cx-followup-surveys"];
        assert_eq!(surveys["fetch.wait.max.ms"], "250");
        assert_eq!(surveys["fetch.min.bytes"], "65536");
        assert_eq!(
            cfg.kafka.group_properties["cx-followup-updates"]["fetch.wait.max.ms"],
            "500"
        );
        assert!(cfg.kafka.properties.is_empty());

        for bad in [
            "fetch.wait.max.ms=100",
            ":fetch.wait.max.ms=100",
            "group:=1",
            "group:name",
        ] {
            let err = Config::from_parts(
                ServiceName::Followup,
                toml::Table::new(),
                &env(&[("CX_KAFKA_GROUP_PROPERTIES", bad)]),
            )
            .unwrap_err();
            assert!(
                err.to_string().contains("CX_KAFKA_GROUP_PROPERTIES"),
                "{bad}: {err}"
            );
        }
        let file: toml::Table = "[kafka.group_properties.g]\n\"fetch.wait.max.ms\" = [1]\n"
            .parse()
            .unwrap();
        let err = Config::from_parts(ServiceName::Followup, file, &env(&[])).unwrap_err();
        assert!(
            err.to_string()
                .contains("kafka.group_properties.g.fetch.wait.max.ms"),
            "{err}"
        );
    }

    /// The load error of `variable=list`, which names the variable and the
    /// property.
    fn property_refused(variable: &str, list: &str) -> String {
        let err = Config::from_parts(
            ServiceName::Scoring,
            toml::Table::new(),
            &env(&[(variable, list)]),
        )
        .unwrap_err()
        .to_string();
        let name = list.split_once('=').unwrap().0.rsplit(':').next().unwrap();
        assert!(
            err.contains(variable) && err.contains(name),
            "{list}: {err}"
        );
        err
    }

    /// The load error of `name = "value"` in the file's [kafka.properties].
    fn file_property_refused(name: &str, value: &str) -> String {
        let file: toml::Table = format!("[kafka.properties]\n\"{name}\" = \"{value}\"\n")
            .parse()
            .unwrap();
        Config::from_parts(ServiceName::Scoring, file, &env(&[]))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn properties_librdkafka_refuses_fail_the_load_naming_the_source() {
        for (variable, list) in [
            ("CX_KAFKA_PROPERTIES", "fetch.wait.max.ms=soon"),
            ("CX_KAFKA_PROPERTIES", "no.such.property=1"),
            (
                "CX_KAFKA_GROUP_PROPERTIES",
                "cx-scoring:fetch.wait.max.ms=soon",
            ),
        ] {
            property_refused(variable, list);
        }
        let err = file_property_refused("fetch.wait.max.ms", "soon");
        assert!(err.contains("kafka.properties.fetch.wait.max.ms"), "{err}");
        // A refused secret is named, its value is not repeated.
        let err = librdkafka_accepts("sasl.password.typo", "hunter7").unwrap_err();
        assert!(
            err.contains("sasl.password.typo") && !err.contains("hunter7"),
            "{err}"
        );
    }

    #[test]
    fn properties_that_would_undo_a_guarantee_are_refused_naming_the_source() {
        for (variable, list) in [
            ("CX_KAFKA_PROPERTIES", "enable.auto.commit=true"),
            ("CX_KAFKA_PROPERTIES", "enable.auto.offset.store=true"),
            ("CX_KAFKA_PROPERTIES", "auto.offset.reset=latest"),
            ("CX_KAFKA_PROPERTIES", "acks=1"),
            ("CX_KAFKA_PROPERTIES", "request.required.acks=0"),
            // The same properties by their other names.
            ("CX_KAFKA_PROPERTIES", "topic.auto.offset.reset=latest"),
            ("CX_KAFKA_PROPERTIES", "topic.acks=1"),
            ("CX_KAFKA_PROPERTIES", "topic.request.required.acks=0"),
            ("CX_KAFKA_PROPERTIES", "auto.commit.enable=true"),
            ("CX_KAFKA_PROPERTIES", "topic.enable.auto.commit=true"),
            (
                "CX_KAFKA_GROUP_PROPERTIES",
                "cx-scoring:auto.offset.reset=latest",
            ),
        ] {
            let err = property_refused(variable, list);
            assert!(err.contains("not allowed"), "{list}: {err}");
        }
        let err = file_property_refused("auto.offset.reset", "latest");
        assert!(err.contains("kafka.properties.auto.offset.reset"), "{err}");
        // The values cxloop sets itself are fine to repeat.
        let same = "enable.auto.commit=false;auto.offset.reset=earliest;acks=all;acks=-1;\
                    topic.auto.offset.reset=smallest;auto.commit.enable=0";
        Config::from_parts(
            ServiceName::Scoring,
            toml::Table::new(),
            &env(&[("CX_KAFKA_PROPERTIES", same)]),
        )
        .unwrap();
    }

    #[test]
    fn a_comma_separates_properties_unless_it_is_inside_a_value() {
        let properties = parse_properties(
            "fetch.wait.max.ms=10,client.id=a;debug=cgrp,topic;\
             partition.assignment.strategy=range,roundrobin",
        )
        .unwrap();
        assert_eq!(properties["fetch.wait.max.ms"], "10");
        assert_eq!(properties["client.id"], "a");
        assert_eq!(properties["debug"], "cgrp,topic");
        assert_eq!(
            properties["partition.assignment.strategy"],
            "range,roundrobin"
        );
        // A comma list as a value beside another property; stray commas.
        let properties =
            parse_properties("client.id=a,debug=cgrp,topic,;,fetch.wait.max.ms=10,,").unwrap();
        assert_eq!(properties["client.id"], "a");
        assert_eq!(properties["debug"], "cgrp,topic");
        assert_eq!(properties["fetch.wait.max.ms"], "10");
        assert!(parse_properties("novalue,client.id=a").is_err());
        let groups = parse_group_properties("cx-scoring:debug=cgrp,fetch").unwrap();
        assert_eq!(
            groups,
            [("cx-scoring".into(), "debug".into(), "cgrp,fetch".into())]
        );
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = Config::from_parts(
            ServiceName::Ingest,
            toml::Table::new(),
            &env(&[("CX_GRPC_ADDR", "not-an-addr")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("CX_GRPC_ADDR"), "{err}");
        let err = Config::from_parts(
            ServiceName::Ingest,
            toml::Table::new(),
            &env(&[("CX_KAFKA_PROPERTIES", "novalue")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("CX_KAFKA_PROPERTIES"), "{err}");
    }

    #[test]
    fn debug_output_masks_secrets() {
        let cfg = Config::from_parts(
            ServiceName::Ingest,
            toml::Table::new(),
            &env(&[
                ("CX_REDIS_URL", "redis://app:hunter2@redis:6379/0"),
                (
                    "CX_KAFKA_PROPERTIES",
                    "sasl.password=hunter3;sasl.kerberos.keytab=hunter4;client.id=x",
                ),
                (
                    "CX_KAFKA_GROUP_PROPERTIES",
                    "cx-scoring:sasl.password=hunter6",
                ),
                ("CX_AUTH_TOKENS", "hunter5=ingest:write"),
            ]),
        )
        .unwrap();
        let printed = format!("{cfg:?}");
        for secret in ["hunter2", "hunter3", "hunter4", "hunter5", "hunter6"] {
            assert!(!printed.contains(secret), "{secret} leaked: {printed}");
        }
        assert!(
            printed.contains("redis://app:***@redis:6379/0"),
            "{printed}"
        );
        assert!(printed.contains("client.id"), "{printed}");
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
    }

    #[test]
    fn missing_config_file_is_an_error_naming_it() {
        let err = Config::load(
            ServiceName::Ingest,
            &env(&[("CX_CONFIG", "/nonexistent/cx.toml")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/cx.toml"), "{err}");
    }

    #[test]
    fn a_key_no_service_reads_is_refused_naming_it() {
        for (text, named) in [
            (
                "[alertng]\nretention_days = 3",
                "unknown top-level key `alertng`",
            ),
            ("[kafka]\nbroker = \"k:9092\"", "unknown field `broker`"),
            ("[redis]\nkey_prefx = \"x\"", "unknown field `key_prefx`"),
            ("[log]\nlevel = \"debug\"", "unknown field `level`"),
        ] {
            let file: toml::Table = text.parse().unwrap();
            let err = Config::from_parts(ServiceName::Scoring, file, &env(&[]))
                .err()
                .unwrap_or_else(|| panic!("{text} was accepted"));
            assert!(err.to_string().contains(named), "{text}: {err}");
        }
        // Another service's section is that service's to check.
        let file: toml::Table = "[alerting]\nretention_days = 3".parse().unwrap();
        assert!(Config::from_parts(ServiceName::Scoring, file, &env(&[])).is_ok());
    }

    #[test]
    fn unknown_variables_are_the_cx_ones_nothing_reads() {
        let env = env(&[
            ("CX_TOPIC_PARTITION", "6"),
            ("CX_REDIS_URL", "redis://r:6379"),
            ("RUST_LOG", "info"),
            ("HOME", "/root"),
            ("CX_KAFKA_BROKER", "k:9092"),
            ("CX_TOKEN", "cxctl's"),
            ("CX_BENCH_RATE", "2000"),
        ]);
        assert_eq!(
            unknown_variables(&env),
            vec!["CX_KAFKA_BROKER", "CX_TOPIC_PARTITION"]
        );
    }

    #[test]
    fn bad_tokens_are_named_where_they_were_set() {
        let file: toml::Table = "[auth]\ntokens = \"no-scopes\"".parse().unwrap();
        let from_file =
            Config::from_parts(ServiceName::Ingest, file.clone(), &env(&[])).expect_err("refused");
        assert!(
            from_file
                .to_string()
                .starts_with("auth.tokens is not valid"),
            "{from_file}"
        );
        let from_env = Config::from_parts(
            ServiceName::Ingest,
            file,
            &env(&[("CX_AUTH_TOKENS", "also-no-scopes")]),
        )
        .expect_err("refused");
        assert!(
            from_env
                .to_string()
                .starts_with("CX_AUTH_TOKENS is not valid"),
            "{from_env}"
        );
    }

    #[test]
    fn every_variable_this_file_names_is_listed() {
        // The list drives the unknown-variable warning: a variable read
        // here but missing from it would be reported as unknown.
        let source = include_str!("config.rs");
        let code = &source[..source.find("#[cfg(test)]").expect("tests module")];
        let mut named = std::collections::BTreeSet::new();
        for piece in code.split("CX_").skip(1) {
            let end = piece
                .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(piece.len());
            if end > 0 {
                named.insert(format!("CX_{}", &piece[..end]));
            }
        }
        let named: Vec<&String> = named
            .iter()
            .filter(|name| {
                !TOOL_VARIABLES.contains(&name.as_str())
                    && !TOOL_PREFIXES.iter().any(|prefix| name.starts_with(prefix))
            })
            .collect();
        assert!(named.len() >= 15, "{named:?}");
        for name in named {
            assert!(
                VARIABLES.contains(&name.as_str()),
                "{name} is not in VARIABLES"
            );
        }
    }
}

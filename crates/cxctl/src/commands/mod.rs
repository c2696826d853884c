//! One module per service; here: connections, auth, printing and errors.

pub mod alerts;
pub mod metrics;
pub mod stats;
pub mod submit;
pub mod tasks;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use cx_proto::endpoint_uri;
use cx_proto::v1::alert_service_client::AlertServiceClient;
use cx_proto::v1::follow_up_service_client::FollowUpServiceClient;
use cx_proto::v1::ingest_service_client::IngestServiceClient;
use cx_proto::v1::metrics_service_client::MetricsServiceClient;
use serde_json::{json, Value};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;

use crate::{AlertsCommand, Cli, Command, Global, MetricsCommand, TasksCommand};

/// At most this much of a non-JSON error body goes into a message.
const BODY_EXCERPT: usize = 200;

/// How long a unary call may take (streams have no deadline).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the HTTP/1.1 probe of a failed gRPC address may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// An address option of cxctl: the service and port it should name, and
/// its default (CONTRACT.md), so that an error can say what to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrOption {
    pub service: &'static str,
    /// `gRPC` or `HTTP`.
    pub port: &'static str,
    pub option: &'static str,
    pub env: &'static str,
    pub default: &'static str,
}

impl AddrOption {
    fn is_grpc(&self) -> bool {
        self.port == "gRPC"
    }
}

pub const INGEST: AddrOption = AddrOption {
    service: "cx-ingest",
    port: "gRPC",
    option: "--ingest",
    env: "CX_INGEST_ADDR",
    default: "http://127.0.0.1:50051",
};
pub const METRICS: AddrOption = AddrOption {
    service: "cx-scoring",
    port: "gRPC",
    option: "--metrics",
    env: "CX_METRICS_ADDR",
    default: "http://127.0.0.1:50052",
};
pub const ALERTS: AddrOption = AddrOption {
    service: "cx-alerting",
    port: "gRPC",
    option: "--alerts",
    env: "CX_ALERTS_ADDR",
    default: "http://127.0.0.1:50053",
};
pub const FOLLOWUP: AddrOption = AddrOption {
    service: "cx-followup",
    port: "gRPC",
    option: "--followup",
    env: "CX_FOLLOWUP_ADDR",
    default: "http://127.0.0.1:50054",
};
pub const FOLLOWUP_HTTP: AddrOption = AddrOption {
    service: "cx-followup",
    port: "HTTP",
    option: "--followup-http",
    env: "CX_FOLLOWUP_HTTP_ADDR",
    default: "http://127.0.0.1:8084",
};

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad arguments or input that keeps the command from running.
    #[error("{0}")]
    Usage(String),
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot connect to {addr}: {}", error_chain(.source.as_ref()))]
    Connect {
        addr: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The service is not at the address given: what failed and what to
    /// check, from [`explain`].
    #[error("{0}")]
    Unreachable(String),
    #[error("{}: {}", code_name(.0.code()), .0.message())]
    Status(#[from] Status),
}

impl CliError {
    /// 2 when a service could not be reached or failed, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Connect { .. } | CliError::Unreachable(_) => 2,
            CliError::Status(s) if is_transport(s.code()) => 2,
            _ => 1,
        }
    }
}

/// Codes that say "the service is not there or broke", not "you asked wrong".
pub fn is_transport(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::Unknown
            | Code::Internal
    )
}

/// The canonical name, as in the gRPC spec and CONTRACT.md.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Adds `authorization: Bearer …` to every call when a token is set.
#[derive(Debug, Clone)]
pub struct Auth(Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

pub type Svc = InterceptedService<Channel, Auth>;

/// What every command needs: addresses, auth, output mode.
pub struct Ctx {
    pub global: Global,
    auth: Auth,
    pub json: bool,
    /// Colour severities (stdout is a terminal, not --json, NO_COLOR unset).
    pub color: bool,
}

impl Ctx {
    fn new(global: Global) -> Result<Ctx, CliError> {
        let auth = match global.token.as_deref().filter(|t| !t.is_empty()) {
            None => Auth(None),
            Some(token) => Auth(Some(format!("Bearer {token}").parse().map_err(|_| {
                CliError::Usage("the token must be printable ASCII".to_owned())
            })?)),
        };
        let json = global.json;
        Ok(Ctx {
            color: !json
                && std::io::stdout().is_terminal()
                && std::env::var_os("NO_COLOR").is_none(),
            json,
            auth,
            global,
        })
    }

    pub async fn ingest(&self) -> Result<IngestServiceClient<Svc>, CliError> {
        let channel = connect(&self.global.ingest).await?;
        Ok(IngestServiceClient::with_interceptor(
            channel,
            self.auth.clone(),
        ))
    }

    pub async fn metrics(&self) -> Result<MetricsServiceClient<Svc>, CliError> {
        let channel = connect(&self.global.metrics).await?;
        Ok(MetricsServiceClient::with_interceptor(
            channel,
            self.auth.clone(),
        ))
    }

    pub async fn alerts(&self) -> Result<AlertServiceClient<Svc>, CliError> {
        let channel = connect(&self.global.alerts).await?;
        Ok(AlertServiceClient::with_interceptor(
            channel,
            self.auth.clone(),
        ))
    }

    pub async fn followup(&self) -> Result<FollowUpServiceClient<Svc>, CliError> {
        let channel = connect(&self.global.followup).await?;
        Ok(FollowUpServiceClient::with_interceptor(
            channel,
            self.auth.clone(),
        ))
    }

    /// `GET {base}{path}` with the bearer token; the JSON body of a 2xx answer.
    /// Other answers become a [`Status`] with the matching code (401 →
    /// UNAUTHENTICATED, 403 → PERMISSION_DENIED, 503 → UNAVAILABLE, …), so
    /// they are reported and exit like the gRPC commands' errors. `scope` is
    /// named in auth errors.
    pub async fn http_get_json(
        &self,
        base: &str,
        path: &str,
        scope: &str,
    ) -> Result<Value, CliError> {
        let url = format!("{}{path}", endpoint_uri(base).trim_end_matches('/'));
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(CALL_TIMEOUT)
            .build()
            .map_err(|e| CliError::Usage(format!("cannot build the HTTP client: {e}")))?;
        let mut request = client.get(&url).header("accept", "application/json");
        if let Some(token) = self.global.token.as_deref().filter(|t| !t.is_empty()) {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| http_error(&url, e))?;
        let status = response.status();
        let body = response.text().await.map_err(|e| {
            CliError::Status(Status::unavailable(format!(
                "GET {url}: {}",
                error_chain(&e)
            )))
        })?;
        if !status.is_success() {
            return Err(CliError::Status(http_status(
                &url,
                status.as_u16(),
                &body,
                scope,
            )));
        }
        serde_json::from_str(&body).map_err(|e| {
            CliError::Status(Status::internal(format!(
                "GET {url}: the answer is not JSON: {e}"
            )))
        })
    }
}

/// A request that got no HTTP answer: not reachable (exit 2) or a bad address.
fn http_error(url: &str, e: reqwest::Error) -> CliError {
    if e.is_builder() {
        CliError::Usage(format!("bad address {url:?}: {}", error_chain(&e)))
    } else if e.is_connect() {
        CliError::Connect {
            addr: url.to_owned(),
            source: Box::new(e),
        }
    } else if e.is_timeout() {
        CliError::Status(Status::deadline_exceeded(format!(
            "GET {url}: no answer within {}s",
            CALL_TIMEOUT.as_secs()
        )))
    } else {
        CliError::Status(Status::unavailable(format!(
            "GET {url}: {}",
            error_chain(&e)
        )))
    }
}

/// The gRPC code closest to an HTTP status (as the services map them).
pub fn http_code(status: u16) -> Code {
    match status {
        400 | 413 | 415 | 422 => Code::InvalidArgument,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::NotFound,
        409 => Code::FailedPrecondition,
        429 => Code::ResourceExhausted,
        501 => Code::Unimplemented,
        503 | 502 => Code::Unavailable,
        504 => Code::DeadlineExceeded,
        400..500 => Code::InvalidArgument,
        500..600 => Code::Internal,
        _ => Code::Unknown,
    }
}

/// A non-2xx answer as a status: the service's `{"error":{"message"}}` (or
/// the start of the body), plus what an auth error needs to be fixed.
pub fn http_status(url: &str, status: u16, body: &str, scope: &str) -> Status {
    let code = http_code(status);
    let message = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.trim().chars().take(BODY_EXCERPT).collect());
    let mut text = format!("GET {url}: HTTP {status}");
    if !message.is_empty() {
        text.push_str(": ");
        text.push_str(&message);
    }
    match code {
        Code::Unauthenticated => {
            text.push_str(&format!(" (needs a valid bearer token with scope {scope})"));
        }
        Code::PermissionDenied if !message.contains(scope) => {
            text.push_str(&format!(" (the token needs scope {scope})"));
        }
        _ => {}
    }
    Status::new(code, text)
}

async fn connect(addr: &str) -> Result<Channel, CliError> {
    let uri = endpoint_uri(addr);
    let endpoint = Endpoint::from_shared(uri.clone())
        .map_err(|e| CliError::Usage(format!("bad address {addr:?}: {e}")))?
        .connect_timeout(CONNECT_TIMEOUT);
    endpoint.connect().await.map_err(|e| CliError::Connect {
        addr: uri,
        source: Box::new(e),
    })
}

/// Says plainly why `addr`, given for `option`, did not lead to its
/// service and what to check: nothing listens there, the host does not
/// resolve, it answered but not in gRPC (an HTTP port) or not in HTTP/1.1
/// (a gRPC port), or it is another service. Any other error is returned
/// as it is.
pub async fn explain(error: CliError, option: &AddrOption, addr: &str) -> CliError {
    // host:port only: the address may carry user:password@.
    let Some(at) = host_port(&endpoint_uri(addr)) else {
        return error;
    };
    let default = host_port(option.default).unwrap_or_default();
    let (service, port) = (option.service, option.port);
    let set = format!("set with {} or {}", option.option, option.env);
    let text = match &error {
        CliError::Connect { source, .. } => {
            if refused(source.as_ref()) {
                format!(
                    "nothing listens on {at}: is {service} running, and is this its {port} \
                     port? (default {default}; {set})"
                )
            } else if tokio::net::lookup_host(at.as_str()).await.is_err() {
                format!(
                    "cannot resolve the host name of {at}: is it spelt right? \
                     ({service}'s {port} address is {default} by default; {set})"
                )
            } else {
                return error;
            }
        }
        CliError::Status(s) if option.is_grpc() => {
            if not_grpc(s, &at).await {
                format!(
                    "{at} answered, but not with gRPC: this looks like an HTTP port; \
                     {service}'s gRPC port is {default} by default ({set})"
                )
            } else if s.code() == Code::Unimplemented {
                let said = if s.message().is_empty() {
                    String::new()
                } else {
                    format!(": {}", s.message())
                };
                format!(
                    "{at} speaks gRPC, but does not serve this call of {service} \
                     (UNIMPLEMENTED{said}): is this another service's port? \
                     {service}'s gRPC port is {default} by default ({set})"
                )
            } else {
                return error;
            }
        }
        CliError::Status(s) => {
            // cx-followup's HTTP port never answers 404 on its paths.
            if s.code() == Code::NotFound && s.message().starts_with("GET ") {
                format!(
                    "{at} answers HTTP, but not as {service}: is this another service's \
                     port? {service}'s HTTP port is {default} by default ({set})"
                )
            } else if s.code() == Code::Unavailable && !answered_http(s) && speaks_http2(&at).await
            {
                format!(
                    "{at} answered, but not to HTTP/1.1: this looks like a gRPC port; \
                     {service}'s HTTP port is {default} by default ({set})"
                )
            } else {
                return error;
            }
        }
        _ => return error,
    };
    CliError::Unreachable(text)
}

/// Whether the status is an HTTP answer ([`http_status`]: `… HTTP 503 …`)
/// rather than a request that got none.
fn answered_http(status: &Status) -> bool {
    status
        .message()
        .split_once(": HTTP ")
        .is_some_and(|(_, rest)| rest.starts_with(|c: char| c.is_ascii_digit()))
}

/// Whether `at` answers the HTTP/2 connection preface with SETTINGS. Asked
/// only where an HTTP/1.1 request got no answer at all: then it is a gRPC
/// server (the services' HTTP ports answer both).
async fn speaks_http2(at: &str) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let probe = async {
        let mut stream = tokio::net::TcpStream::connect(at).await?;
        // The client preface, then an empty SETTINGS frame.
        stream
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
            .await?;
        let mut frame_head = [0; 9];
        stream.read_exact(&mut frame_head).await?;
        std::io::Result::Ok(frame_head[3] == 4)
    };
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, probe).await,
        Ok(Ok(true))
    )
}

/// `host:port` of an address URI, the port defaulting by scheme.
fn host_port(uri: &str) -> Option<String> {
    let uri: Uri = uri.parse().ok()?;
    let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
        Some("https") => 443,
        _ => 80,
    });
    Some(format!("{}:{port}", uri.host()?))
}

/// Whether the connection was refused: nothing listens on that port.
fn refused(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(e) = source {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
        {
            return true;
        }
        source = e.source();
    }
    false
}

/// Whether a call's status shows an answer that is not gRPC: an HTTP
/// response without grpc-status (tonic then infers the code from the HTTP
/// status, as from the services' HTTP ports, which also speak h2c), or a
/// connection that broke under us at an address that answers HTTP/1.1.
async fn not_grpc(status: &Status, at: &str) -> bool {
    if status.message().starts_with("grpc-status header missing") {
        return true;
    }
    // A source means the error is local (transport), not the server's status.
    if !is_transport(status.code()) || std::error::Error::source(status).is_none() {
        return false;
    }
    // A gRPC server does not answer HTTP/1.1; no token is sent.
    let Ok(client) = reqwest::Client::builder()
        .http1_only()
        .timeout(PROBE_TIMEOUT)
        .build()
    else {
        return false;
    };
    client.get(format!("http://{at}/")).send().await.is_ok()
}

/// An error and its sources, `: `-separated (tonic's own text is just "transport error").
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// A unary request with the call deadline.
pub fn unary<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.set_timeout(CALL_TIMEOUT);
    request
}

/// Largest page a list command asks for; the service may return fewer.
const PAGE_SIZE: u32 = 500;

/// One page of a list call: its items and the token of the next page
/// (empty after the last).
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_page_token: String,
}

/// Fetches pages with `fetch_page(page_size, page_token)` until `limit`
/// items (0: no limit) or the last page. The flag is true when more items
/// may match than were returned.
pub async fn fetch_pages<T>(
    limit: u32,
    fetch_page: impl AsyncFnMut(u32, String) -> Result<Page<T>, Exit>,
) -> Result<(Vec<T>, bool), Exit> {
    fetch_matching(limit, None, fetch_page).await
}

/// [`fetch_pages`] that keeps only the items `keep` accepts (when set), for
/// a filter the service lacks: `limit` counts kept items, so pages are
/// fetched until that many match. Filtered pages are asked at full size, as
/// most of a page may be dropped.
pub async fn fetch_matching<T>(
    limit: u32,
    keep: Option<&dyn Fn(&T) -> bool>,
    mut fetch_page: impl AsyncFnMut(u32, String) -> Result<Page<T>, Exit>,
) -> Result<(Vec<T>, bool), Exit> {
    let limit = if limit == 0 { u32::MAX } else { limit };
    let mut items = Vec::new();
    let mut page_token = String::new();
    let mut more = false;
    loop {
        let remaining = limit - u32::try_from(items.len()).unwrap_or(u32::MAX);
        let page_size = if keep.is_some() {
            PAGE_SIZE
        } else {
            remaining.min(PAGE_SIZE)
        };
        let page = fetch_page(page_size, page_token.clone()).await?;
        let room = usize::try_from(remaining).unwrap_or(usize::MAX);
        let got = page.items.len();
        let mut matching = page
            .items
            .into_iter()
            .filter(|item| keep.is_none_or(|keep| keep(item)));
        items.extend(matching.by_ref().take(room));
        if matching.next().is_some() {
            more = true;
            break;
        }
        if page.next_page_token.is_empty() || got == 0 {
            break;
        }
        if items.len() == usize::try_from(limit).unwrap_or(usize::MAX) {
            more = true;
            break;
        }
        page_token = page.next_page_token;
    }
    Ok((items, more))
}

/// One line to stdout; a closed pipe (`| head`) ends the program quietly.
pub fn emit(line: &str) {
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
        std::process::exit(0);
    }
}

pub fn emit_json(value: &Value) {
    emit(&value.to_string());
}

/// The field violations a status carries (google.rpc.BadRequest), if any.
pub fn status_violations(status: &Status) -> Vec<(String, String)> {
    status
        .get_error_details()
        .bad_request()
        .map(|b| {
            b.field_violations
                .iter()
                .map(|v| (v.field.clone(), v.description.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Prints an error to stderr: code, message, field violations (JSON with --json).
pub fn report(error: &CliError, json: bool, has_token: bool) {
    let (code, message, violations) = match error {
        CliError::Status(s) => (
            code_name(s.code()),
            s.message().to_owned(),
            status_violations(s),
        ),
        CliError::Connect { .. } | CliError::Unreachable(_) => {
            ("UNAVAILABLE", error.to_string(), Vec::new())
        }
        CliError::Usage(_) | CliError::Read { .. } => {
            ("INVALID_ARGUMENT", error.to_string(), Vec::new())
        }
    };
    if json {
        let violations: Vec<Value> = violations
            .iter()
            .map(|(f, d)| json!({"field": f, "description": d}))
            .collect();
        eprintln!(
            "{}",
            json!({"error": {"code": code, "message": message, "field_violations": violations}})
        );
        return;
    }
    match error {
        CliError::Status(_) => eprintln!("error: {code}: {message}"),
        _ => eprintln!("error: {message}"),
    }
    for (field, description) in &violations {
        if field.is_empty() {
            eprintln!("  {description}");
        } else {
            eprintln!("  {field}: {description}");
        }
    }
    if matches!(error, CliError::Status(s) if s.code() == Code::Unauthenticated) && !has_token {
        eprintln!("hint: pass --token or set CX_TOKEN");
    }
}

pub async fn run(cli: Cli) -> ExitCode {
    let json = cli.global.json;
    let has_token = cli.global.token.as_deref().is_some_and(|t| !t.is_empty());
    let result = match Ctx::new(cli.global) {
        Ok(ctx) => dispatch(&ctx, cli.command).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            report(&e, json, has_token);
            ExitCode::from(e.exit_code())
        }
    }
}

async fn dispatch(ctx: &Ctx, command: Command) -> Result<ExitCode, CliError> {
    let g = &ctx.global;
    let (option, addr) = match &command {
        Command::Submit(_) => (&INGEST, &g.ingest),
        Command::Alerts(_) => (&ALERTS, &g.alerts),
        Command::Tasks(_) => (&FOLLOWUP, &g.followup),
        Command::Metrics(_) => (&METRICS, &g.metrics),
        Command::Stats(_) => (&FOLLOWUP_HTTP, &g.followup_http),
    };
    let result: CmdResult = match command {
        Command::Submit(args) => submit::run(ctx, args).await,
        Command::Alerts(AlertsCommand::Tail(args)) => alerts::tail(ctx, args).await,
        Command::Alerts(AlertsCommand::List(args)) => alerts::list(ctx, args).await,
        Command::Alerts(AlertsCommand::Ack(args)) => alerts::ack(ctx, args).await,
        Command::Tasks(TasksCommand::List(args)) => tasks::list(ctx, args).await,
        Command::Tasks(TasksCommand::Show { task_id }) => tasks::show(ctx, task_id).await,
        Command::Tasks(TasksCommand::Update(args)) => tasks::update(ctx, args).await,
        Command::Tasks(TasksCommand::Watch(args)) => tasks::watch(ctx, args).await,
        Command::Metrics(args) => match args.command {
            Some(MetricsCommand::Get(get)) => metrics::get(ctx, get).await,
            None => metrics::rank(ctx, args.rank).await,
        },
        Command::Stats(args) => stats::run(ctx, args).await,
    };
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(Exit::Code(code)) => Ok(code),
        Err(Exit::Error(e)) => Err(explain(e, option, addr).await),
    }
}

/// What a command ends with besides success: an exit code it chose (submit),
/// or an error to report.
#[derive(Debug)]
pub enum Exit {
    Code(ExitCode),
    Error(CliError),
}

impl From<CliError> for Exit {
    fn from(e: CliError) -> Self {
        Exit::Error(e)
    }
}

impl From<Status> for Exit {
    fn from(s: Status) -> Self {
        Exit::Error(CliError::Status(s))
    }
}

pub type CmdResult = Result<(), Exit>;

/// The longest pause between a resuming watch's attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A resuming watch's pause: 1 s after a stream that delivered, doubling
/// up to [`MAX_BACKOFF`] while attempts fail.
pub struct Backoff(Duration);

impl Backoff {
    pub fn new() -> Backoff {
        Backoff(Duration::from_secs(1))
    }

    /// Says why the `what` stream stopped, then waits before the next try.
    pub async fn pause(&mut self, what: &str, dropped: &str) {
        eprintln!(
            "cxctl: {what} stream interrupted ({dropped}); resuming in {}s",
            self.0.as_secs()
        );
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 2).min(MAX_BACKOFF);
    }
}

/// One attempt of a resuming watch: the call's answer, then its stream
/// until it drops, handing each item to `on_item`. `Ok(why)` when the
/// watch should resume (the service ended the stream, or could not be
/// reached once the watch had been established); `Err` for a refusal
/// (auth, bad request), which resuming would not change.
pub async fn watch_once<T>(
    opened: Result<tonic::Response<tonic::Streaming<T>>, Status>,
    established: &mut bool,
    backoff: &mut Backoff,
    mut on_item: impl FnMut(T),
) -> Result<String, Exit> {
    let mut stream = match opened {
        Ok(response) => {
            *established = true;
            response.into_inner()
        }
        Err(status) if *established && is_transport(status.code()) => {
            return Ok(CliError::Status(status).to_string())
        }
        Err(status) => return Err(status.into()),
    };
    loop {
        match stream.message().await {
            Ok(Some(item)) => {
                *backoff = Backoff::new();
                on_item(item);
            }
            Ok(None) => return Ok("the service ended the stream".to_owned()),
            Err(status) if is_transport(status.code()) => {
                return Ok(CliError::Status(status).to_string())
            }
            Err(status) => return Err(status.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use tonic_types::ErrorDetails;

    #[test]
    fn http_errors_map_to_status_codes() {
        let url = "http://127.0.0.1:8084/v1/stats";
        let denied = http_status(
            url,
            403,
            r#"{"error":{"code":"permission_denied","message":"token lacks scope followups:read"}}"#,
            "followups:read",
        );
        assert_eq!(denied.code(), Code::PermissionDenied);
        assert_eq!(
            denied.message(),
            "GET http://127.0.0.1:8084/v1/stats: HTTP 403: token lacks scope followups:read"
        );
        let missing = http_status(
            url,
            401,
            r#"{"error":{"code":"unauthenticated","message":"missing or invalid bearer token"}}"#,
            "followups:read",
        );
        assert_eq!(missing.code(), Code::Unauthenticated);
        assert!(missing
            .message()
            .ends_with("missing or invalid bearer token (needs a valid bearer token with scope followups:read)"));
        let error = CliError::from(missing);
        assert_eq!(error.exit_code(), 1);
        assert!(error.to_string().starts_with("UNAUTHENTICATED: GET "));
        let down = http_status(url, 503, "redis unavailable", "followups:read");
        assert_eq!(
            down.message(),
            format!("GET {url}: HTTP 503: redis unavailable")
        );
        assert_eq!(CliError::from(down).exit_code(), 2);
        assert_eq!(http_code(404), Code::NotFound);
        assert_eq!(http_code(418), Code::InvalidArgument);
        assert_eq!(http_code(500), Code::Internal);
    }

    #[test]
    fn status_errors_carry_code_and_violations() {
        let mut details = ErrorDetails::new();
        details.add_bad_request_violation("nps", "must be between 0 and 10");
        let status = Status::with_error_details(Code::InvalidArgument, "bad interaction", details);
        assert_eq!(
            status_violations(&status),
            [("nps".to_owned(), "must be between 0 and 10".to_owned())]
        );
        let error = CliError::from(status);
        assert_eq!(error.to_string(), "INVALID_ARGUMENT: bad interaction");
        assert_eq!(error.exit_code(), 1);
        assert_eq!(CliError::from(Status::unavailable("down")).exit_code(), 2);
        assert_eq!(
            CliError::from(Status::failed_precondition("stale version")).exit_code(),
            1
        );
    }

    /// A service holding `total` items, answering pages of at most `page_size`.
    async fn list_of(total: usize, limit: u32) -> (Vec<usize>, bool, Vec<u32>) {
        matching_of(total, limit, None).await
    }

    /// [`list_of`] keeping only what `keep` accepts.
    async fn matching_of(
        total: usize,
        limit: u32,
        keep: Option<&dyn Fn(&usize) -> bool>,
    ) -> (Vec<usize>, bool, Vec<u32>) {
        let mut asked = Vec::new();
        let (items, more) = fetch_matching(limit, keep, async |page_size, page_token| {
            asked.push(page_size);
            let start: usize = if page_token.is_empty() {
                0
            } else {
                page_token.parse().unwrap()
            };
            let end = (start + page_size as usize).min(total);
            Ok(Page {
                items: (start..end).collect(),
                next_page_token: if end < total {
                    end.to_string()
                } else {
                    String::new()
                },
            })
        })
        .await
        .unwrap();
        (items, more, asked)
    }

    #[tokio::test]
    async fn fetch_pages_stops_at_the_limit_or_the_last_page() {
        // No limit: every page, in order.
        let (items, more, asked) = list_of(1200, 0).await;
        assert_eq!(items, (0..1200).collect::<Vec<_>>());
        assert!(!more);
        assert_eq!(asked, [500, 500, 500]);
        // The limit asks for no more than it keeps; more may match.
        let (items, more, asked) = list_of(1200, 700).await;
        assert_eq!(items.len(), 700);
        assert!(more);
        assert_eq!(asked, [500, 200]);
        // The limit met by the last page: nothing more.
        let (items, more, _) = list_of(300, 1000).await;
        assert_eq!(items.len(), 300);
        assert!(!more);
    }

    #[tokio::test]
    async fn fetch_matching_fills_the_limit_with_kept_items() {
        // Every tenth item is kept: 120 of 1200.
        let keep = |i: &usize| i.is_multiple_of(10);
        let tenths = |n: usize| (0..n).step_by(10).collect::<Vec<_>>();
        // 50 kept per page of 500: a limit of 100 takes two pages.
        let (items, more, asked) = matching_of(1200, 100, Some(&keep)).await;
        assert_eq!(items, tenths(1000));
        assert!(more);
        assert_eq!(asked, [500, 500]);
        // Kept items left on the page: more match.
        let (items, more, asked) = matching_of(1200, 30, Some(&keep)).await;
        assert_eq!(items, tenths(300));
        assert!(more);
        assert_eq!(asked, [500]);
        // Fewer kept than the limit: every page, nothing more.
        let (items, more, asked) = matching_of(1200, 500, Some(&keep)).await;
        assert_eq!(items, tenths(1200));
        assert!(!more);
        assert_eq!(asked, [500, 500, 500]);
    }

    /// Never in an error message.
    const TOKEN: &str = "tok-secret-42";

    /// Runs cxctl with `args` (as `run` does) and returns its error.
    async fn failure(args: &[&str]) -> CliError {
        let cli = Cli::try_parse_from(["cxctl", "--token", TOKEN].iter().chain(args)).unwrap();
        let ctx = Ctx::new(cli.global).unwrap();
        let error = dispatch(&ctx, cli.command).await.unwrap_err();
        assert!(!error.to_string().contains(TOKEN));
        error
    }

    #[tokio::test]
    async fn alerts_list_checks_kinds_as_tail_does() {
        for command in ["list", "tail"] {
            let error = failure(&["alerts", command, "--kind", "response,spik"]).await;
            assert_eq!(
                error.to_string(),
                r#"--kind: "spik" is not one of response, keyword, threshold, spike"#
            );
            assert_eq!(error.exit_code(), 1);
        }
    }

    /// A free port: bound, then released.
    fn closed_port() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
    }

    #[tokio::test]
    async fn nothing_listening_names_the_service_and_its_port() {
        let addr = closed_port();
        let error = failure(&["--alerts", &addr, "alerts", "list"]).await;
        assert_eq!(
            error.to_string(),
            format!(
                "nothing listens on {addr}: is cx-alerting running, and is this its gRPC port? \
                 (default 127.0.0.1:50053; set with --alerts or CX_ALERTS_ADDR)"
            )
        );
        assert_eq!(error.exit_code(), 2);
        let error = failure(&["--followup-http", &addr, "stats"]).await;
        assert_eq!(
            error.to_string(),
            format!(
                "nothing listens on {addr}: is cx-followup running, and is this its HTTP port? \
                 (default 127.0.0.1:8084; set with --followup-http or CX_FOLLOWUP_HTTP_ADDR)"
            )
        );
    }

    /// Serves every connection on 127.0.0.1 with `answer(stream)`.
    async fn serve<F: std::future::Future<Output = std::io::Result<()>> + Send + 'static>(
        answer: fn(tokio::net::TcpStream) -> F,
    ) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(answer(stream));
            }
        });
        addr
    }

    /// An HTTP/1.1-only server: 400 to anything.
    async fn http1_bad_request(mut stream: tokio::net::TcpStream) -> std::io::Result<()> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let _ = stream.read(&mut [0; 1024]).await?;
        stream
            .write_all(
                b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            )
            .await?;
        stream.shutdown().await
    }

    /// What a service's HTTP port (axum, which also speaks h2c) answers a
    /// gRPC call: an HTTP/2 404 without grpc-status.
    async fn h2c_not_found(mut stream: tokio::net::TcpStream) -> std::io::Result<()> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // The client preface; our SETTINGS (none); the client's frames
        // (9-byte header, then payload) up to the request's HEADERS.
        stream.read_exact(&mut [0; 24]).await?;
        stream.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await?;
        loop {
            let mut head = [0; 9];
            stream.read_exact(&mut head).await?;
            let mut payload = vec![0; usize::from(head[1]) << 8 | usize::from(head[2])];
            stream.read_exact(&mut payload).await?;
            if head[3] == 1 {
                break;
            }
        }
        // SETTINGS ack; HEADERS on stream 1, END_STREAM | END_HEADERS,
        // `:status 404` (HPACK static index 13).
        let answer = [0, 0, 0, 4, 1, 0, 0, 0, 0, 0, 0, 1, 1, 5, 0, 0, 0, 1, 0x8d];
        stream.write_all(&answer).await?;
        let _ = stream.read(&mut [0; 1024]).await?;
        Ok(())
    }

    #[tokio::test]
    async fn an_http_port_is_named_as_such() {
        for addr in [serve(http1_bad_request).await, serve(h2c_not_found).await] {
            for command in ["list", "tail"] {
                let error = tokio::time::timeout(
                    Duration::from_secs(20),
                    failure(&["--alerts", &addr, "alerts", command]),
                )
                .await
                .unwrap();
                assert_eq!(
                    error.to_string(),
                    format!(
                        "{addr} answered, but not with gRPC: this looks like an HTTP port; \
                         cx-alerting's gRPC port is 127.0.0.1:50053 by default \
                         (set with --alerts or CX_ALERTS_ADDR)"
                    ),
                    "alerts {command}"
                );
                assert_eq!(error.exit_code(), 2);
            }
        }
    }

    #[tokio::test]
    async fn another_grpc_service_is_named() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        // A gRPC server serving nothing: UNIMPLEMENTED to every call.
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_routes(tonic::service::Routes::default())
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        let error = failure(&["--followup", &addr, "tasks", "show", "t-1"]).await;
        assert_eq!(
            error.to_string(),
            format!(
                "{addr} speaks gRPC, but does not serve this call of cx-followup \
                 (UNIMPLEMENTED): is this another service's port? cx-followup's gRPC port is \
                 127.0.0.1:50054 by default (set with --followup or CX_FOLLOWUP_ADDR)"
            )
        );
        assert_eq!(error.exit_code(), 2);
    }

    #[tokio::test]
    async fn a_grpc_port_or_another_services_http_port_is_named_for_stats() {
        // A gRPC server: HTTP/2 only, as the services' gRPC ports.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let grpc = listener.local_addr().unwrap().to_string();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_routes(tonic::service::Routes::default())
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        let error = failure(&["--followup-http", &grpc, "stats"]).await;
        assert_eq!(
            error.to_string(),
            format!(
                "{grpc} answered, but not to HTTP/1.1: this looks like a gRPC port; \
                 cx-followup's HTTP port is 127.0.0.1:8084 by default \
                 (set with --followup-http or CX_FOLLOWUP_HTTP_ADDR)"
            )
        );
        assert_eq!(error.exit_code(), 2);

        // Another service's HTTP port: 404 to GET /v1/stats.
        let other = serve(http1_not_found).await;
        let error = failure(&["--followup-http", &other, "stats"]).await;
        assert_eq!(
            error.to_string(),
            format!(
                "{other} answers HTTP, but not as cx-followup: is this another service's \
                 port? cx-followup's HTTP port is 127.0.0.1:8084 by default \
                 (set with --followup-http or CX_FOLLOWUP_HTTP_ADDR)"
            )
        );
        assert_eq!(error.exit_code(), 2);

        // An HTTP/1.1 server failing otherwise is reported as it is.
        let error = failure(&["--followup-http", &serve(http1_bad_request).await, "stats"]).await;
        assert!(error.to_string().contains("HTTP 400"), "{error}");

        // cx-followup's own port (HTTP/1.1 and h2c) answering 503 while
        // Redis is down: its reason, not a wrong-port guess.
        let error = failure(&[
            "--followup-http",
            &serve(h2c_and_http1_unavailable).await,
            "stats",
        ])
        .await;
        assert_eq!(error.exit_code(), 2);
        let text = error.to_string();
        assert!(
            text.contains("HTTP 503") && text.contains("redis unavailable"),
            "{text}"
        );
        assert!(!text.contains("gRPC port"), "{text}");
    }

    /// Like a service's HTTP port: SETTINGS to the HTTP/2 preface, and 503
    /// with the error JSON to an HTTP/1.1 request.
    async fn h2c_and_http1_unavailable(mut stream: tokio::net::TcpStream) -> std::io::Result<()> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut start = [0; 3];
        stream.read_exact(&mut start).await?;
        if &start == b"PRI" {
            stream.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await?;
        } else {
            let _ = stream.read(&mut [0; 1024]).await?;
            let body = r#"{"error":{"code":"unavailable","message":"redis unavailable"}}"#;
            stream
                .write_all(
                    format!(
                        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
                         content-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                )
                .await?;
        }
        stream.shutdown().await
    }

    /// An HTTP/1.1-only server: 404 to anything.
    async fn http1_not_found(mut stream: tokio::net::TcpStream) -> std::io::Result<()> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let _ = stream.read(&mut [0; 1024]).await?;
        stream
            .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .await?;
        stream.shutdown().await
    }

    #[tokio::test]
    async fn an_unknown_host_is_named() {
        // .invalid never resolves (RFC 6761).
        let error = failure(&["--metrics", "http://cx.invalid:50052", "metrics"]).await;
        assert_eq!(
            error.to_string(),
            "cannot resolve the host name of cx.invalid:50052: is it spelt right? \
             (cx-scoring's gRPC address is 127.0.0.1:50052 by default; \
             set with --metrics or CX_METRICS_ADDR)"
        );
        assert_eq!(error.exit_code(), 2);
    }

    #[test]
    fn address_options_match_the_command_line() {
        let command = <Cli as clap::CommandFactory>::command();
        for option in [INGEST, METRICS, ALERTS, FOLLOWUP, FOLLOWUP_HTTP] {
            let arg = command
                .get_arguments()
                .find(|a| a.get_long() == option.option.strip_prefix("--"))
                .unwrap();
            assert_eq!(arg.get_env(), Some(std::ffi::OsStr::new(option.env)));
        }
    }
}

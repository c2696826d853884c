//! Bearer-token authentication with scopes: one tower layer in front of both
//! the gRPC and the HTTP servers of every service.
//!
//! Tokens come from `CX_AUTH_TOKENS` (`token=scope,scope;token=scope`). A
//! token is never logged: a caller is known by its [`Principal`] name
//! (`token-<n>`, its position in the table).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};
use tower::{Layer, Service};

/// The contract's scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    IngestWrite,
    MetricsRead,
    AlertsRead,
    AlertsWrite,
    FollowupsRead,
    FollowupsWrite,
}

impl Scope {
    pub const ALL: [Scope; 6] = [
        Scope::IngestWrite,
        Scope::MetricsRead,
        Scope::AlertsRead,
        Scope::AlertsWrite,
        Scope::FollowupsRead,
        Scope::FollowupsWrite,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::IngestWrite => "ingest:write",
            Scope::MetricsRead => "metrics:read",
            Scope::AlertsRead => "alerts:read",
            Scope::AlertsWrite => "alerts:write",
            Scope::FollowupsRead => "followups:read",
            Scope::FollowupsWrite => "followups:write",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl std::str::FromStr for Scope {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or(())
    }
}

/// The authenticated caller, put in request extensions for handlers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    scopes: u8,
}

impl Principal {
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes & scope.bit() != 0
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenTableError {
    #[error("entry {index} is not token=scope,scope")]
    Malformed { index: usize },
    #[error("entry {index} has an empty token")]
    EmptyToken { index: usize },
    #[error("entry {index} names unknown scope {scope:?}")]
    UnknownScope { index: usize, scope: String },
    #[error("entry {index} repeats a token")]
    DuplicateToken { index: usize },
}

/// Tokens and their scopes. Empty: every protected call is refused.
#[derive(Clone, Default)]
pub struct TokenTable {
    by_token: Arc<HashMap<String, Principal>>,
}

impl fmt::Debug for TokenTable {
    // Tokens are secrets: only their count is ever printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenTable({} tokens)", self.by_token.len())
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing or invalid bearer token")]
    Unauthenticated,
    #[error("token lacks scope {}", .0.as_str())]
    PermissionDenied(Scope),
}

impl TokenTable {
    pub fn parse(spec: &str) -> Result<TokenTable, TokenTableError> {
        let mut by_token = HashMap::new();
        for (index, entry) in spec
            .split(';')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .enumerate()
        {
            let index = index + 1;
            let (token, scopes) = entry
                .split_once('=')
                .ok_or(TokenTableError::Malformed { index })?;
            let token = token.trim();
            if token.is_empty() {
                return Err(TokenTableError::EmptyToken { index });
            }
            let mut bits = 0u8;
            for scope in scopes.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let scope: Scope = scope.parse().map_err(|()| TokenTableError::UnknownScope {
                    index,
                    scope: scope.to_string(),
                })?;
                bits |= scope.bit();
            }
            let principal = Principal {
                name: format!("token-{index}"),
                scopes: bits,
            };
            if by_token.insert(token.to_string(), principal).is_some() {
                return Err(TokenTableError::DuplicateToken { index });
            }
        }
        Ok(TokenTable {
            by_token: Arc::new(by_token),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.by_token.is_empty()
    }

    /// Checks the `authorization` header for a known bearer token with `scope`.
    pub fn authorize(&self, headers: &HeaderMap, scope: Scope) -> Result<Principal, AuthError> {
        let value = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(AuthError::Unauthenticated)?;
        let (kind, token) = value
            .trim()
            .split_once(' ')
            .ok_or(AuthError::Unauthenticated)?;
        if !kind.eq_ignore_ascii_case("bearer") {
            return Err(AuthError::Unauthenticated);
        }
        let principal = self
            .by_token
            .get(token.trim())
            .ok_or(AuthError::Unauthenticated)?;
        if principal.has(scope) {
            Ok(principal.clone())
        } else {
            Err(AuthError::PermissionDenied(scope))
        }
    }
}

/// What a path needs: nothing (health, reflection, /metrics) or a scope.
pub type AccessPolicy = Arc<dyn Fn(&str) -> Option<Scope> + Send + Sync>;

/// A response body a refusal can be written into; implemented for the body
/// types of both servers.
pub trait RefusalBody {
    fn from_text(text: String) -> Self;
}

impl RefusalBody for axum::body::Body {
    fn from_text(text: String) -> Self {
        axum::body::Body::from(text)
    }
}

impl RefusalBody for tonic::body::Body {
    fn from_text(text: String) -> Self {
        // gRPC refusals travel in headers (trailers-only response).
        let _ = text;
        tonic::body::Body::empty()
    }
}

#[derive(Clone)]
pub struct AuthLayer {
    tokens: TokenTable,
    policy: AccessPolicy,
}

impl AuthLayer {
    pub fn new(tokens: TokenTable, policy: AccessPolicy) -> Self {
        for reason in ["unauthenticated", "permission_denied"] {
            crate::telemetry::start_at_zero(
                crate::telemetry::AUTH_REFUSED_TOTAL,
                &[("reason", reason)],
            );
        }
        AuthLayer { tokens, policy }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            tokens: self.tokens.clone(),
            policy: self.policy.clone(),
        }
    }
}

#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    tokens: TokenTable,
    policy: AccessPolicy,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for AuthService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: RefusalBody,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = futures::future::Either<
        S::Future,
        futures::future::Ready<Result<Response<ResBody>, S::Error>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let Some(scope) = (self.policy)(request.uri().path()) else {
            return futures::future::Either::Left(self.inner.call(request));
        };
        match self.tokens.authorize(request.headers(), scope) {
            Ok(principal) => {
                request.extensions_mut().insert(principal);
                futures::future::Either::Left(self.inner.call(request))
            }
            Err(error) => {
                let grpc = is_grpc(request.headers());
                metrics::counter!(crate::telemetry::AUTH_REFUSED_TOTAL,
                    "reason" => match error { AuthError::Unauthenticated => "unauthenticated", AuthError::PermissionDenied(_) => "permission_denied" })
                .increment(1);
                futures::future::Either::Right(futures::future::ready(Ok(refusal(error, grpc))))
            }
        }
    }
}

fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"))
}

fn refusal<B: RefusalBody>(error: AuthError, grpc: bool) -> Response<B> {
    if grpc {
        let code = match error {
            AuthError::Unauthenticated => tonic::Code::Unauthenticated,
            AuthError::PermissionDenied(_) => tonic::Code::PermissionDenied,
        };
        let mut response = Response::new(B::from_text(String::new()));
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        headers.insert("grpc-status", HeaderValue::from(code as i32));
        if let Ok(message) = HeaderValue::from_str(&error.to_string()) {
            headers.insert("grpc-message", message);
        }
        return response;
    }
    let (status, code) = match error {
        AuthError::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
        AuthError::PermissionDenied(_) => (StatusCode::FORBIDDEN, "permission_denied"),
    };
    let body = serde_json::json!({"error": {"code": code, "message": error.to_string()}});
    let mut response = Response::new(B::from_text(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(auth).unwrap());
        h
    }

    #[test]
    fn scopes_are_checked_per_token() {
        let table =
            TokenTable::parse("writer=ingest:write; reader=metrics:read,alerts:read").unwrap();
        let writer = table
            .authorize(&headers("Bearer writer"), Scope::IngestWrite)
            .unwrap();
        assert_eq!(writer.name, "token-1");
        assert_eq!(
            table.authorize(&headers("Bearer writer"), Scope::MetricsRead),
            Err(AuthError::PermissionDenied(Scope::MetricsRead))
        );
        assert!(table
            .authorize(&headers("Bearer reader"), Scope::AlertsRead)
            .is_ok());
        assert!(table
            .authorize(&headers("bearer reader"), Scope::MetricsRead)
            .is_ok());
        assert_eq!(
            table.authorize(&headers("Bearer reader"), Scope::FollowupsWrite),
            Err(AuthError::PermissionDenied(Scope::FollowupsWrite))
        );
    }

    #[test]
    fn missing_unknown_or_non_bearer_tokens_are_unauthenticated() {
        let table = TokenTable::parse("t=ingest:write").unwrap();
        for value in ["Bearer nope", "Basic dDp4", "t", "Bearer", "Bearer  "] {
            assert_eq!(
                table.authorize(&headers(value), Scope::IngestWrite),
                Err(AuthError::Unauthenticated),
                "{value}"
            );
        }
        assert_eq!(
            table.authorize(&HeaderMap::new(), Scope::IngestWrite),
            Err(AuthError::Unauthenticated)
        );
    }

    #[test]
    fn an_empty_table_refuses_everything() {
        let table = TokenTable::default();
        for scope in Scope::ALL {
            assert_eq!(
                table.authorize(&headers("Bearer anything"), scope),
                Err(AuthError::Unauthenticated)
            );
        }
    }

    #[test]
    fn bad_specs_are_refused_without_echoing_tokens() {
        assert_eq!(
            TokenTable::parse("secret=ingest:write;other=bogus:scope").unwrap_err(),
            TokenTableError::UnknownScope {
                index: 2,
                scope: "bogus:scope".into()
            }
        );
        assert_eq!(
            TokenTable::parse("noscopes").unwrap_err(),
            TokenTableError::Malformed { index: 1 }
        );
        assert_eq!(
            TokenTable::parse("a=ingest:write;a=metrics:read").unwrap_err(),
            TokenTableError::DuplicateToken { index: 2 }
        );
        let table = TokenTable::parse("supersecret=ingest:write").unwrap();
        assert!(!format!("{table:?}").contains("supersecret"));
    }

    #[tokio::test]
    async fn layer_answers_http_and_grpc_in_their_own_terms() {
        let inner = tower::service_fn(|_req: Request<()>| async {
            Ok::<_, std::convert::Infallible>(Response::new(axum::body::Body::from("ok")))
        });
        let policy: AccessPolicy =
            Arc::new(|path: &str| (path != "/healthz").then_some(Scope::IngestWrite));
        let table = TokenTable::parse("w=ingest:write;r=metrics:read").unwrap();
        let mut service = AuthLayer::new(table, policy).layer(inner);

        let call = |auth: Option<&str>, path: &str, grpc: bool| {
            let mut builder = Request::builder().uri(path);
            if let Some(auth) = auth {
                builder = builder.header(header::AUTHORIZATION, auth);
            }
            if grpc {
                builder = builder.header(header::CONTENT_TYPE, "application/grpc");
            }
            builder.body(()).unwrap()
        };
        let ok = service
            .call(call(Some("Bearer w"), "/v1/interactions", false))
            .await
            .unwrap();
        assert_eq!(ok.status(), StatusCode::OK);
        let public = service.call(call(None, "/healthz", false)).await.unwrap();
        assert_eq!(public.status(), StatusCode::OK);
        let missing = service
            .call(call(None, "/v1/interactions", false))
            .await
            .unwrap();
        assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
        let wrong_scope = service
            .call(call(Some("Bearer r"), "/v1/interactions", false))
            .await
            .unwrap();
        assert_eq!(wrong_scope.status(), StatusCode::FORBIDDEN);
        let grpc = service
            .call(call(
                Some("Bearer r"),
                "/cx.v1.IngestService/SubmitInteraction",
                true,
            ))
            .await
            .unwrap();
        assert_eq!(grpc.status(), StatusCode::OK);
        assert_eq!(grpc.headers()["grpc-status"], "7");
        let grpc = service
            .call(call(None, "/cx.v1.IngestService/SubmitInteraction", true))
            .await
            .unwrap();
        assert_eq!(grpc.headers()["grpc-status"], "16");
    }
}

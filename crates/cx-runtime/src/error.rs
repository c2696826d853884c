//! One table from service errors to gRPC codes and HTTP statuses, so every
//! handler reports the same failure the same way on both protocols.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use cx_domain::FieldViolation;
use tonic_types::{ErrorDetails, StatusExt};

#[derive(Debug, Clone, thiserror::Error)]
pub enum ServiceError {
    #[error("{message}")]
    InvalidArgument {
        message: String,
        violations: Vec<FieldViolation>,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Internal(String),
}

/// Redis could not answer a request: UNAVAILABLE, so the client retries.
pub fn redis_unavailable(error: redis::RedisError) -> tonic::Status {
    ServiceError::Unavailable(format!("redis unavailable: {error}")).into()
}

impl ServiceError {
    pub fn invalid(violations: Vec<FieldViolation>) -> Self {
        let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
        ServiceError::InvalidArgument {
            message: format!("invalid fields: {}", fields.join(", ")),
            violations,
        }
    }

    fn table(&self) -> (tonic::Code, StatusCode, &'static str) {
        use ServiceError::*;
        match self {
            InvalidArgument { .. } => (
                tonic::Code::InvalidArgument,
                StatusCode::BAD_REQUEST,
                "invalid_argument",
            ),
            NotFound(_) => (tonic::Code::NotFound, StatusCode::NOT_FOUND, "not_found"),
            FailedPrecondition(_) => (
                tonic::Code::FailedPrecondition,
                StatusCode::CONFLICT,
                "failed_precondition",
            ),
            Unavailable(_) => (
                tonic::Code::Unavailable,
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
            ),
            PayloadTooLarge(_) => (
                tonic::Code::InvalidArgument,
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
            ),
            UnsupportedMediaType(_) => (
                tonic::Code::InvalidArgument,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
            ),
            Internal(_) => (
                tonic::Code::Internal,
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
            ),
        }
    }
}

impl From<ServiceError> for tonic::Status {
    fn from(error: ServiceError) -> tonic::Status {
        let (code, _, _) = error.table();
        match &error {
            ServiceError::InvalidArgument { violations, .. } => {
                let mut details = ErrorDetails::new();
                for v in violations {
                    details.add_bad_request_violation(v.field.clone(), v.description.clone());
                }
                tonic::Status::with_error_details(code, error.to_string(), details)
            }
            _ => tonic::Status::new(code, error.to_string()),
        }
    }
}

impl IntoResponse for ServiceError {
    fn into_response(self) -> Response {
        let (_, status, code) = self.table();
        let mut body = serde_json::json!({"error": {"code": code, "message": self.to_string()}});
        if let ServiceError::InvalidArgument { violations, .. } = &self {
            body["error"]["field_violations"] = serde_json::json!(violations);
        }
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_carries_field_violations_on_both_protocols() {
        let error =
            ServiceError::invalid(vec![FieldViolation::new("nps", "must be between 0 and 10")]);
        let status: tonic::Status = error.clone().into();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        let details = status.get_error_details();
        let bad_request = details.bad_request().expect("BadRequest detail");
        assert_eq!(bad_request.field_violations[0].field, "nps");

        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn unavailable_is_503_and_grpc_unavailable() {
        let error = ServiceError::Unavailable("kafka down".into());
        assert_eq!(
            tonic::Status::from(error.clone()).code(),
            tonic::Code::Unavailable
        );
        assert_eq!(
            error.into_response().status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}

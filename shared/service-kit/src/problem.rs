//! One error type for the HTTP edge, rendered as RFC 9457 problem+json with a stable `type`.
//!
//! In every error case nothing was appended: rejections happen before the append, and an append
//! that failed stored nothing (a commit is one message).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use event_store::StoreError;
use remediation_domain::Rejection;
use serde_json::{Value, json};

/// Every way a request can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Malformed(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("request body larger than {0} bytes")]
    TooLarge(usize),
    #[error("{detail}")]
    RuleViolated { rule: &'static str, detail: String },
    #[error("this Idempotency-Key was used for a different request")]
    IdempotencyKeyReused,
    #[error("a request with this Idempotency-Key is still being decided; retry to get its answer")]
    IdempotencyKeyInFlight,
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Malformed(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) | ApiError::IdempotencyKeyInFlight => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RuleViolated { .. } | ApiError::IdempotencyKeyReused => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable problem type; clients branch on it, never on `detail`.
    pub fn problem_type(&self) -> &'static str {
        match self {
            ApiError::Malformed(_) => "urn:kh63:problem:malformed-request",
            ApiError::Unauthorized(_) => "urn:kh63:problem:unauthenticated",
            ApiError::Forbidden(_) => "urn:kh63:problem:forbidden",
            ApiError::NotFound(_) => "urn:kh63:problem:not-found",
            ApiError::Conflict(_) => "urn:kh63:problem:concurrency-conflict",
            ApiError::TooLarge(_) => "urn:kh63:problem:payload-too-large",
            ApiError::RuleViolated { .. } => "urn:kh63:problem:rule-violated",
            ApiError::IdempotencyKeyReused => "urn:kh63:problem:idempotency-key-reused",
            ApiError::IdempotencyKeyInFlight => "urn:kh63:problem:idempotency-key-in-flight",
            ApiError::Unavailable(_) => "urn:kh63:problem:store-unavailable",
            ApiError::Internal(_) => "urn:kh63:problem:internal",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            ApiError::Malformed(_) => "Malformed request",
            ApiError::Unauthorized(_) => "Authentication required",
            ApiError::Forbidden(_) => "Not allowed",
            ApiError::NotFound(_) => "Not found",
            ApiError::Conflict(_) => "Concurrent change",
            ApiError::TooLarge(_) => "Request body too large",
            ApiError::RuleViolated { .. } => "Business rule violated",
            ApiError::IdempotencyKeyReused => "Idempotency key reused",
            ApiError::IdempotencyKeyInFlight => "Idempotency key in flight",
            ApiError::Unavailable(_) => "Event store unavailable",
            ApiError::Internal(_) => "Internal error",
        }
    }

    /// The problem document.
    pub fn body(&self) -> Value {
        let mut body = json!({
            "type": self.problem_type(),
            "title": self.title(),
            "status": self.status().as_u16(),
            "detail": self.to_string(),
        });
        if let ApiError::RuleViolated { rule, .. } = self {
            body["rule"] = json!(rule);
        }
        body
    }

    /// Whether a retry with the same Idempotency-Key should get this answer again. Transient
    /// failures (conflict, store down) are not remembered: the retry runs the command anew.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            ApiError::Forbidden(_) | ApiError::NotFound(_) | ApiError::RuleViolated { .. }
        )
    }
}

impl From<Rejection> for ApiError {
    fn from(rejection: Rejection) -> Self {
        match rejection {
            Rejection::NotFound(detail) => ApiError::NotFound(detail),
            Rejection::Forbidden(detail) => ApiError::Forbidden(detail),
            Rejection::Rule { rule, detail } => ApiError::RuleViolated {
                rule: rule.code(),
                detail,
            },
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict => {
                ApiError::Conflict("the aggregate changed concurrently".to_owned())
            }
            StoreError::Unavailable(detail) => ApiError::Unavailable(detail),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// Renders a problem document with its status and content type.
pub fn problem_response(status: StatusCode, body: Value) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status().is_server_error() {
            tracing::error!(problem = self.problem_type(), error = %self, "request failed");
        }
        let mut response = problem_response(self.status(), self.body());
        match self {
            ApiError::Unauthorized(_) => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::Unavailable(_) | ApiError::IdempotencyKeyInFlight => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}

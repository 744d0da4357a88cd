//! The problem+json vocabulary of both services (RFC 9457, a stable `type` per kind), and the
//! error of the command side.
//!
//! In every error case nothing was appended: rejections happen before the append, and an append
//! that failed stored nothing (a commit is one message).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use event_store::StoreError;
use remediation_domain::Rejection;
use serde_json::{Value, json};

/// Every kind of problem either service answers with: one table of status, stable type URI and
/// title, so that the command and the query service speak one vocabulary. Clients branch on the
/// type, never on `detail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    Malformed,
    Unauthenticated,
    Forbidden,
    NotFound,
    ConcurrencyConflict,
    PayloadTooLarge,
    RuleViolated,
    IdempotencyKeyReused,
    IdempotencyKeyInFlight,
    /// A time range whose start lies after its end.
    InvalidRange,
    /// Read-your-writes with a sequence the stream itself has not reached.
    SequenceNotReached,
    /// Read-your-writes: the projection did not reach the sequence within the wait.
    ProjectionBehind,
    DatabaseUnavailable,
    /// Readiness: a projection stopped, or lags the stream beyond the configured bounds.
    NotReady,
    StoreUnavailable,
    /// The event stream refused a write for lack of room; nothing was stored.
    StoreFull,
    /// A read of the audit trail could not be recorded, so it is not answered.
    ReadNotRecorded,
    /// The service is already deciding as many commands as it takes at once; nothing was done.
    Overloaded,
    Internal,
}

impl ProblemKind {
    pub fn status(self) -> StatusCode {
        match self {
            ProblemKind::Malformed => StatusCode::BAD_REQUEST,
            ProblemKind::Unauthenticated => StatusCode::UNAUTHORIZED,
            ProblemKind::Forbidden => StatusCode::FORBIDDEN,
            ProblemKind::NotFound => StatusCode::NOT_FOUND,
            ProblemKind::ConcurrencyConflict | ProblemKind::IdempotencyKeyInFlight => {
                StatusCode::CONFLICT
            }
            ProblemKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProblemKind::RuleViolated
            | ProblemKind::IdempotencyKeyReused
            | ProblemKind::InvalidRange
            | ProblemKind::SequenceNotReached => StatusCode::UNPROCESSABLE_ENTITY,
            ProblemKind::ProjectionBehind
            | ProblemKind::DatabaseUnavailable
            | ProblemKind::NotReady
            | ProblemKind::StoreUnavailable
            | ProblemKind::StoreFull
            | ProblemKind::ReadNotRecorded
            | ProblemKind::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            ProblemKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable problem type.
    pub fn uri(self) -> &'static str {
        match self {
            ProblemKind::Malformed => "urn:kh63:problem:malformed-request",
            ProblemKind::Unauthenticated => "urn:kh63:problem:unauthenticated",
            ProblemKind::Forbidden => "urn:kh63:problem:forbidden",
            ProblemKind::NotFound => "urn:kh63:problem:not-found",
            ProblemKind::ConcurrencyConflict => "urn:kh63:problem:concurrency-conflict",
            ProblemKind::PayloadTooLarge => "urn:kh63:problem:payload-too-large",
            ProblemKind::RuleViolated => "urn:kh63:problem:rule-violated",
            ProblemKind::IdempotencyKeyReused => "urn:kh63:problem:idempotency-key-reused",
            ProblemKind::IdempotencyKeyInFlight => "urn:kh63:problem:idempotency-key-in-flight",
            ProblemKind::InvalidRange => "urn:kh63:problem:invalid-range",
            ProblemKind::SequenceNotReached => "urn:kh63:problem:sequence-not-reached",
            ProblemKind::ProjectionBehind => "urn:kh63:problem:projection-behind",
            ProblemKind::DatabaseUnavailable => "urn:kh63:problem:database-unavailable",
            ProblemKind::NotReady => "urn:kh63:problem:not-ready",
            ProblemKind::StoreUnavailable => "urn:kh63:problem:store-unavailable",
            ProblemKind::StoreFull => "urn:kh63:problem:store-full",
            ProblemKind::ReadNotRecorded => "urn:kh63:problem:read-not-recorded",
            ProblemKind::Overloaded => "urn:kh63:problem:overloaded",
            ProblemKind::Internal => "urn:kh63:problem:internal",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            ProblemKind::Malformed => "Malformed request",
            ProblemKind::Unauthenticated => "Authentication required",
            ProblemKind::Forbidden => "Not allowed",
            ProblemKind::NotFound => "Not found",
            ProblemKind::ConcurrencyConflict => "Concurrent change",
            ProblemKind::PayloadTooLarge => "Request body too large",
            ProblemKind::RuleViolated => "Business rule violated",
            ProblemKind::IdempotencyKeyReused => "Idempotency key reused",
            ProblemKind::IdempotencyKeyInFlight => "Idempotency key in flight",
            ProblemKind::InvalidRange => "Time range ends before it starts",
            ProblemKind::SequenceNotReached => "Sequence not reached by the stream",
            ProblemKind::ProjectionBehind => "Read model behind the requested sequence",
            ProblemKind::DatabaseUnavailable => "Read model unavailable",
            ProblemKind::NotReady => "Read model stopped or behind",
            ProblemKind::StoreUnavailable => "Event store unavailable",
            ProblemKind::StoreFull => "Event store full",
            ProblemKind::ReadNotRecorded => "Read of the audit trail not recorded",
            ProblemKind::Overloaded => "Too many commands at once",
            ProblemKind::Internal => "Internal error",
        }
    }

    /// The problem document's standard members; callers add their extension members.
    pub fn body(self, detail: &str) -> Value {
        json!({
            "type": self.uri(),
            "title": self.title(),
            "status": self.status().as_u16(),
            "detail": detail,
        })
    }

    /// The response for `body` (this kind's document): problem+json, with `WWW-Authenticate` on
    /// 401 and `Retry-After` where a retry soon may succeed. Server errors are logged with
    /// `error`, the full story, which the body may leave out — except a refusal for overload,
    /// which is the service working as meant and comes in floods (its metric counts it).
    pub fn respond(self, body: Value, error: &dyn std::fmt::Display) -> Response {
        if self.status().is_server_error() && self != ProblemKind::Overloaded {
            tracing::error!(problem = self.uri(), %error, "request failed");
        }
        let mut response = problem_response(self.status(), body);
        let headers = response.headers_mut();
        match self {
            ProblemKind::Unauthenticated => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ProblemKind::StoreUnavailable
            | ProblemKind::IdempotencyKeyInFlight
            | ProblemKind::ProjectionBehind
            | ProblemKind::DatabaseUnavailable
            | ProblemKind::NotReady
            | ProblemKind::ReadNotRecorded
            | ProblemKind::Overloaded => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            // Room comes back only when an operator acts: retrying every second would not help.
            ProblemKind::StoreFull => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
            }
            _ => {}
        }
        response
    }
}

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
    #[error("the event store is full (an operator must raise its limits or free space): {0}")]
    StoreFull(String),
    #[error(
        "the service is deciding {0} commands already, as many as it takes at once; retry shortly"
    )]
    Overloaded(usize),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn kind(&self) -> ProblemKind {
        match self {
            ApiError::Malformed(_) => ProblemKind::Malformed,
            ApiError::Unauthorized(_) => ProblemKind::Unauthenticated,
            ApiError::Forbidden(_) => ProblemKind::Forbidden,
            ApiError::NotFound(_) => ProblemKind::NotFound,
            ApiError::Conflict(_) => ProblemKind::ConcurrencyConflict,
            ApiError::TooLarge(_) => ProblemKind::PayloadTooLarge,
            ApiError::RuleViolated { .. } => ProblemKind::RuleViolated,
            ApiError::IdempotencyKeyReused => ProblemKind::IdempotencyKeyReused,
            ApiError::IdempotencyKeyInFlight => ProblemKind::IdempotencyKeyInFlight,
            ApiError::Unavailable(_) => ProblemKind::StoreUnavailable,
            ApiError::StoreFull(_) => ProblemKind::StoreFull,
            ApiError::Overloaded(_) => ProblemKind::Overloaded,
            ApiError::Internal(_) => ProblemKind::Internal,
        }
    }

    pub fn status(&self) -> StatusCode {
        self.kind().status()
    }

    /// The stable problem type; clients branch on it, never on `detail`.
    pub fn problem_type(&self) -> &'static str {
        self.kind().uri()
    }

    /// The problem document.
    pub fn body(&self) -> Value {
        let mut body = self.kind().body(&self.to_string());
        if let ApiError::RuleViolated { rule, .. } = self {
            body["rule"] = json!(rule);
        }
        body
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
            StoreError::Full(detail) => ApiError::StoreFull(detail),
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
        self.kind().respond(self.body(), &self)
    }
}

//! One error type for the HTTP edge, rendered as RFC 9457 problem+json with a stable `type`
//! (the same vocabulary as the command service, plus the failures only reads have: a projection
//! that has not caught up, an unreachable database, and a read of the audit trail that could not
//! be recorded).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use service_kit::problem::{ApiError, ProblemKind};

/// Every way a query can fail.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{0}")]
    Malformed(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// Read-your-writes: the projection did not reach `min_sequence` within the wait.
    #[error(
        "the {projection} projection has applied the stream up to sequence {checkpoint}, not yet {min_sequence}"
    )]
    ProjectionBehind {
        projection: &'static str,
        checkpoint: u64,
        min_sequence: u64,
    },
    /// A time range whose start lies after its end: well-formed, but it names no instant.
    #[error("{0}")]
    InvalidRange(String),
    /// Read-your-writes with a sequence the stream itself has not reached: no wait helps.
    #[error(
        "min_sequence {min_sequence} is beyond the stream's last sequence {stream_head}: no command answer carried it"
    )]
    SequenceNotReached { min_sequence: u64, stream_head: u64 },
    #[error("{0}")]
    DatabaseUnavailable(String),
    /// Readiness: a projection stopped, or lags the stream beyond the configured bounds.
    /// `readiness` holds what the ready answer would (each projection's state), as extension
    /// members.
    #[error("{detail}")]
    NotReady { detail: String, readiness: Value },
    /// NATS or the stream did not answer (audit verification reads the stream itself).
    #[error("{0}")]
    StoreUnavailable(String),
    /// A read of the audit trail could not be recorded, so it is not answered: fail closed.
    #[error("{0}")]
    ReadNotRecorded(String),
    #[error("{0}")]
    Internal(String),
}

impl QueryError {
    pub fn kind(&self) -> ProblemKind {
        match self {
            QueryError::Malformed(_) => ProblemKind::Malformed,
            QueryError::Unauthorized(_) => ProblemKind::Unauthenticated,
            QueryError::Forbidden(_) => ProblemKind::Forbidden,
            QueryError::NotFound(_) => ProblemKind::NotFound,
            QueryError::SequenceNotReached { .. } => ProblemKind::SequenceNotReached,
            QueryError::InvalidRange(_) => ProblemKind::InvalidRange,
            QueryError::ProjectionBehind { .. } => ProblemKind::ProjectionBehind,
            QueryError::DatabaseUnavailable(_) => ProblemKind::DatabaseUnavailable,
            QueryError::NotReady { .. } => ProblemKind::NotReady,
            QueryError::StoreUnavailable(_) => ProblemKind::StoreUnavailable,
            QueryError::ReadNotRecorded(_) => ProblemKind::ReadNotRecorded,
            QueryError::Internal(_) => ProblemKind::Internal,
        }
    }

    pub fn status(&self) -> StatusCode {
        self.kind().status()
    }

    /// The stable problem type; clients branch on it, never on `detail`.
    pub fn problem_type(&self) -> &'static str {
        self.kind().uri()
    }

    /// The problem document, with extension members where the problem has them.
    pub fn body(&self) -> Value {
        let detail = match self {
            // Database and internal failures are logged in full; the client learns only that
            // they happened, not the SQL.
            QueryError::Internal(_) => "the query failed; see the service log".to_owned(),
            other => other.to_string(),
        };
        let mut body = self.kind().body(&detail);
        if let QueryError::ProjectionBehind {
            projection,
            checkpoint,
            min_sequence,
        } = self
        {
            body["projection"] = json!(projection);
            body["checkpoint"] = json!(checkpoint);
            body["min_sequence"] = json!(min_sequence);
        }
        if let QueryError::NotReady {
            readiness: Value::Object(members),
            ..
        } = self
        {
            for (name, value) in members {
                body[name.as_str()] = value.clone();
            }
        }
        if let QueryError::SequenceNotReached {
            min_sequence,
            stream_head,
        } = self
        {
            body["min_sequence"] = json!(min_sequence);
            body["stream_head"] = json!(stream_head);
        }
        body
    }
}

/// The shared bearer-token extractor answers in the command service's vocabulary; only its
/// authentication failures can reach us.
impl From<ApiError> for QueryError {
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::Unauthorized(detail) => QueryError::Unauthorized(detail),
            ApiError::Forbidden(detail) => QueryError::Forbidden(detail),
            ApiError::Malformed(detail) => QueryError::Malformed(detail),
            ApiError::NotFound(detail) => QueryError::NotFound(detail),
            other => QueryError::Internal(other.to_string()),
        }
    }
}

/// SQLSTATEs that mean "the read model is not there (yet)" or "the server is going away", which
/// a retry may cure, as opposed to a query bug.
fn unavailable_sqlstate(code: &str) -> bool {
    matches!(
        code,
        "42P01"   // undefined_table: the projector has not migrated this database yet
            | "42703" // undefined_column: nor to the columns this build reads
            | "3F000" // invalid_schema_name
            | "42704" // undefined_object: the reader role does not exist yet
            | "42501" // insufficient_privilege: the login may not SET ROLE to the reader, or a
                      // table was created after the projector granted the reader its rights
            | "57014" // query_canceled: statement_timeout
            | "57P01" // admin_shutdown
            | "57P02" // crash_shutdown
            | "57P03" // cannot_connect_now
            | "53300" // too_many_connections
    ) || code.starts_with("08") // connection exceptions
}

impl From<sqlx::Error> for QueryError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => QueryError::DatabaseUnavailable(format!(
                "the read model database is unreachable: {error}"
            )),
            sqlx::Error::Database(db) if db.code().is_some_and(|c| unavailable_sqlstate(&c)) => {
                QueryError::DatabaseUnavailable(format!(
                    "the read model is not available: {}",
                    db.message()
                ))
            }
            _ => QueryError::Internal(error.to_string()),
        }
    }
}

impl From<time_travel::Error> for QueryError {
    fn from(error: time_travel::Error) -> Self {
        match error {
            time_travel::Error::Database(e) => e.into(),
            time_travel::Error::Invalid(detail) => QueryError::Malformed(detail),
            // The log holds something this build cannot fold, a stored snapshot is damaged, or
            // the configured schema name is refused: an answer without it would be wrong, so
            // there is none.
            other @ (time_travel::Error::Undecodable { .. }
            | time_travel::Error::Snapshot(_)
            | time_travel::Error::Schema(_)) => {
                QueryError::Internal(format!("time travel: {other}"))
            }
        }
    }
}

impl IntoResponse for QueryError {
    fn into_response(self) -> Response {
        self.kind().respond(self.body(), &self)
    }
}

//! Liveness, readiness and metrics.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use readmodel::Projection;
use schemars::JsonSchema;
use serde::Serialize;

use crate::db::Stall;
use crate::error::QueryError;
use crate::readiness::StreamHead;
use crate::state::AppState;

#[derive(Debug, Serialize, JsonSchema)]
pub struct Health {
    pub status: &'static str,
}

pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ProjectionState {
    pub projection: String,
    /// Last stream sequence applied.
    pub checkpoint: u64,
    /// Recorded time of the newest applied event.
    pub last_recorded_at: Option<DateTime<Utc>>,
    /// How long ago that was, in seconds: a bound on staleness while events keep coming, and
    /// simply the quiet time when none do.
    pub last_recorded_age_seconds: Option<f64>,
    /// When the projector last committed a batch.
    pub updated_at: DateTime<Utc>,
    /// Whether the projection stopped on a commit it must not skip.
    pub stalled: bool,
    /// The stop, as the projector recorded it.
    pub stall: Option<Stall>,
    /// Commits in the stream not applied yet; null while the stream's head is unknown.
    pub lag_events: Option<u64>,
    /// How long the oldest of them has waited, in seconds (0 when none); null while unknown.
    pub lag_seconds: Option<f64>,
    /// Whether this projection can serve correct answers now.
    pub ready: bool,
    /// Why not, when it cannot.
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Readiness {
    pub status: &'static str,
    pub as_of: DateTime<Utc>,
    /// The stream's head the lags were judged from; null when NATS has not answered since the
    /// service started (the lags are then unknown, and only stops count).
    pub stream: Option<StreamHead>,
    /// Not ready beyond this many commits not applied (`READY_MAX_LAG_EVENTS`)…
    pub max_lag_events: u64,
    /// …or beyond the oldest of them waiting this long, in seconds (`READY_MAX_LAG_SECS`).
    pub max_lag_seconds: f64,
    pub projections: Vec<ProjectionState>,
}

/// 200 when the database answers as the reader role and no projection has stopped or lags
/// beyond the bounds; otherwise 503 problem+json saying which and why (`not-ready`, with the
/// same members as the ready answer, or `database-unavailable`).
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Readiness>, QueryError> {
    // The connection goes back to the pool before NATS is asked.
    let checkpoints = {
        let mut conn = state.read_model.pool.acquire().await?;
        state.read_model.checkpoints(&mut conn).await?
    };
    let mut found = Vec::new();
    for projection in Projection::ALL {
        let checkpoint = checkpoints
            .iter()
            .find(|c| c.projection == projection.name())
            .ok_or_else(|| {
                QueryError::DatabaseUnavailable(format!(
                    "the {} projection has no checkpoint yet",
                    projection.name()
                ))
            })?;
        found.push(checkpoint);
    }
    let sequences: Vec<u64> = found.iter().map(|c| c.sequence()).collect();
    let (stream, lags) = state
        .stream_watch
        .lags(&state.audit_reads, &sequences)
        .await;
    let mut as_of = Utc::now();
    let mut projections = Vec::new();
    for (checkpoint, lag) in found.into_iter().zip(lags) {
        as_of = checkpoint.as_of;
        let stall = checkpoint.stall();
        let reason = state.readiness.unready(stall.as_ref(), lag);
        projections.push(ProjectionState {
            projection: checkpoint.projection.clone(),
            checkpoint: checkpoint.sequence(),
            last_recorded_at: checkpoint.last_recorded_at,
            last_recorded_age_seconds: checkpoint
                .last_recorded_at
                .map(|at| (checkpoint.as_of - at).num_milliseconds().max(0) as f64 / 1000.0),
            updated_at: checkpoint.updated_at,
            stalled: stall.is_some(),
            stall,
            lag_events: lag.events,
            lag_seconds: lag.seconds,
            ready: reason.is_none(),
            reason,
        });
    }
    let readiness = Readiness {
        status: "ready",
        as_of,
        stream,
        max_lag_events: state.readiness.max_lag_events,
        max_lag_seconds: state.readiness.max_lag.as_secs_f64(),
        projections,
    };
    let reasons: Vec<String> = readiness
        .projections
        .iter()
        .filter_map(|p| {
            p.reason
                .as_ref()
                .map(|reason| format!("the {} projection {reason}", p.projection))
        })
        .collect();
    if reasons.is_empty() {
        return Ok(Json(readiness));
    }
    let mut members = serde_json::to_value(&readiness)
        .map_err(|e| QueryError::Internal(format!("readiness: {e}")))?;
    if let Some(members) = members.as_object_mut() {
        members.remove("status");
    }
    Err(QueryError::NotReady {
        detail: reasons.join("; "),
        readiness: members,
    })
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

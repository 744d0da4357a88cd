//! Liveness, readiness and metrics.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use readmodel::Projection;
use schemars::JsonSchema;
use serde::Serialize;

use crate::error::QueryError;
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
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Readiness {
    pub status: &'static str,
    pub as_of: DateTime<Utc>,
    pub projections: Vec<ProjectionState>,
}

/// 200 when the database answers as the reader role and every projection has its checkpoint;
/// otherwise 503 problem+json saying which.
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Readiness>, QueryError> {
    let mut conn = state.read_model.pool.acquire().await?;
    let checkpoints = state.read_model.checkpoints(&mut conn).await?;
    let mut projections = Vec::new();
    let mut as_of = Utc::now();
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
        as_of = checkpoint.as_of;
        projections.push(ProjectionState {
            projection: projection.name().to_owned(),
            checkpoint: checkpoint.sequence(),
            last_recorded_at: checkpoint.last_recorded_at,
            last_recorded_age_seconds: checkpoint
                .last_recorded_at
                .map(|at| (checkpoint.as_of - at).num_milliseconds().max(0) as f64 / 1000.0),
            updated_at: checkpoint.updated_at,
        });
    }
    Ok(Json(Readiness {
        status: "ready",
        as_of,
        projections,
    }))
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

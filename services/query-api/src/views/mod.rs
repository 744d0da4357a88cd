//! The answers: one module per endpoint, each with its response types (which the OpenAPI
//! document describes) and the SQL it runs, from `src/sql/`.

pub mod as_of;
pub mod audit;
pub mod compliance;
pub mod deadlines;
pub mod exports;
pub mod health;
pub mod item;
pub mod me;
pub mod overview;
pub mod scorecard;
pub mod verify;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use readmodel::Projection;
use schemars::JsonSchema;
use serde::Serialize;
use sqlx::{PgConnection, Postgres, Transaction};

use crate::access::{Caller, Visibility};
use crate::error::QueryError;
use crate::freshness::{Fresh, Freshness};
use crate::state::AppState;

const ACTING_UNITS: &str = include_str!("../sql/acting_units.sql");

/// The one identifier in a route's path. Identifiers are short slugs; anything longer cannot name
/// a plan, item or unit and is refused before it reaches SQL.
#[derive(Debug, Clone)]
pub struct PathId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = QueryError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, QueryError> {
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| QueryError::Malformed(format!("invalid path: {e}")))?;
        if id.is_empty() || id.len() > 200 {
            return Err(QueryError::Malformed(
                "identifiers are 1–200 characters".to_owned(),
            ));
        }
        Ok(Self(id))
    }
}

/// A read-only snapshot and what it answers for.
pub struct Snapshot {
    pub tx: Transaction<'static, Postgres>,
    /// The database's `now()` in the snapshot: the instant deadline qualifiers are judged at.
    pub as_of: DateTime<Utc>,
    /// The projection's checkpoint and stop in the snapshot: what the answer reflects.
    pub freshness: Freshness,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("as_of", &self.as_of)
            .field("freshness", &self.freshness)
            .finish_non_exhaustive()
    }
}

impl Snapshot {
    /// A snapshot for an answer.
    pub async fn open(state: &AppState, projection: Projection) -> Result<Self, QueryError> {
        Self::within(state, state.read_model.snapshot().await?, projection).await
    }

    /// A snapshot on the bulk pool, for an answer streamed for as long as the data takes.
    pub async fn open_bulk(state: &AppState, projection: Projection) -> Result<Self, QueryError> {
        Self::within(state, state.read_model.bulk_snapshot().await?, projection).await
    }

    async fn within(
        state: &AppState,
        mut tx: Transaction<'static, Postgres>,
        projection: Projection,
    ) -> Result<Self, QueryError> {
        let checkpoint = state.read_model.checkpoint(&mut tx, projection).await?;
        Ok(Self {
            tx,
            as_of: checkpoint.as_of,
            freshness: Freshness::of(projection, &checkpoint),
        })
    }

    pub fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    /// `body` with the freshness headers of this snapshot.
    pub fn answer<T>(&self, body: T) -> Fresh<T> {
        Fresh(self.freshness, body)
    }
}

/// A unit or group as the plan names it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Assignee {
    /// `unit` or `group`.
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    pub name: String,
}

/// The units a unit's staff act for now: their own and any whose work passed to it.
pub async fn acting_units(conn: &mut PgConnection, unit: &str) -> Result<Vec<String>, QueryError> {
    Ok(sqlx::query_scalar(ACTING_UNITS)
        .bind(unit)
        .fetch_all(conn)
        .await?)
}

/// How much of units' internal work `caller` may see.
pub async fn visibility(
    caller: &Caller,
    conn: &mut PgConnection,
) -> Result<Visibility, QueryError> {
    // The union of the caller's roles: the widest view any of them has.
    Ok(if caller.sees_all_units() {
        Visibility::Full
    } else if let Some(unit) = caller.staff_unit() {
        Visibility::Units(acting_units(conn, unit).await?)
    } else {
        // Viewers; and a staff token always names a unit (the token check refuses one that
        // does not), but should one slip through, it sees nothing internal.
        Visibility::Public
    })
}

/// Unit staff may read what belongs to a unit they act for now (their own, or one whose work
/// passed to it), unless another of their roles sees every unit; every other role that reaches
/// a route has already passed its role check.
pub async fn require_acting_for(
    caller: &Caller,
    conn: &mut PgConnection,
    unit_id: &str,
    what: &str,
) -> Result<(), QueryError> {
    if !caller.sees_all_units()
        && let Some(own) = caller.staff_unit()
        && !acting_units(conn, own).await?.iter().any(|u| u == unit_id)
    {
        return Err(QueryError::Forbidden(format!(
            "staff of {own} may read the {what} of their own unit only"
        )));
    }
    Ok(())
}

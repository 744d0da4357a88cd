//! `GET /v1/as-of/…`: the plan, one item or one unit as of any instant on either clock, and what
//! changed between two instants.
//!
//! The answers are folded from the audit log with the domain's own `AggregateState::evolve`
//! (the `time-travel` crate, starting from the nearest stored snapshot), not read from the
//! current-state tables: the rules that decided a command are the rules that replay it. The fold
//! runs in the answer's read-only snapshot, so `log.head_sequence` names exactly the prefix of
//! the log the answer is the fold of.

use axum::Json;
use axum::extract::State;
use axum::http::Uri;
use chrono::{DateTime, Utc};
use readmodel::Projection;
use remediation_domain::text::{ItemId, UnitId};
use schemars::JsonSchema;
use serde::Serialize;
use time_travel::{AsOf, Axis, ItemView, PlanDiff, PlanView, UnitView};

use super::item::Shown;
use super::{PathId, Snapshot, require_acting_for, visibility};
use crate::access::Caller;
use crate::error::QueryError;
use crate::freshness::Fresh;
use crate::params::Params;
use crate::state::AppState;

/// Events listed in a diff unless `limit` says otherwise.
const DEFAULT_EVENT_LIMIT: u32 = 100;
pub const MAX_EVENT_LIMIT: i64 = 1_000;

/// An as-of answer cut to what the caller may see of units' internal work.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Visible<T> {
    /// What of units' tasks and report lines the answer holds (viewers: none, the lists are
    /// empty; unit staff: those of the units they act for now).
    pub visibility: Shown,
    #[serde(flatten)]
    pub view: T,
}

/// A diff, and the record of its having been read (it lists who did what: audit trail).
#[derive(Debug, Serialize, JsonSchema)]
pub struct RecordedDiff {
    #[serde(flatten)]
    pub diff: PlanDiff,
    /// Stream sequence of the `access.audit_read` event recording this read.
    pub read_sequence: u64,
}

fn axis(params: &Params) -> Result<Axis, QueryError> {
    params
        .text("axis")
        .map(str::parse)
        .transpose()
        .map_err(|e: time_travel::UnknownAxis| QueryError::Malformed(e.to_string()))
        .map(|axis| axis.unwrap_or(Axis::Recorded))
}

/// `at` (default: the snapshot's now) on `axis` (default: recorded).
fn as_of(params: &Params, now: DateTime<Utc>) -> Result<AsOf, QueryError> {
    Ok(AsOf::new(
        params.instant("at")?.unwrap_or(now),
        axis(params)?,
    ))
}

pub async fn plan(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> Result<Fresh<Json<Visible<PlanView>>>, QueryError> {
    let mut snapshot = Snapshot::open(&state, Projection::Audit).await?;
    let as_of = as_of(&params, snapshot.as_of)?;
    let seen = visibility(&caller, snapshot.conn()).await?;
    let mut view = state.time_travel.plan(snapshot.conn(), as_of).await?;
    view.tasks.retain(|task| seen.sees(task.unit_id.as_str()));
    Ok(snapshot.answer(Json(Visible {
        visibility: Shown::from(&seen),
        view,
    })))
}

pub async fn item(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
    PathId(item_id): PathId,
) -> Result<Fresh<Json<Visible<ItemView>>>, QueryError> {
    let mut snapshot = Snapshot::open(&state, Projection::Audit).await?;
    let as_of = as_of(&params, snapshot.as_of)?;
    let not_found = || {
        QueryError::NotFound(format!(
            "no item {item_id} as of {} on the {} axis",
            as_of.instant.to_rfc3339(),
            as_of.axis
        ))
    };
    let id = ItemId::new(&item_id).map_err(|_| not_found())?;
    let seen = visibility(&caller, snapshot.conn()).await?;
    let mut view = state
        .time_travel
        .item(snapshot.conn(), as_of, &id)
        .await?
        .ok_or_else(not_found)?;
    view.tasks.retain(|task| seen.sees(task.unit_id.as_str()));
    view.report_lines
        .retain(|line| seen.sees(line.unit_id.as_str()));
    Ok(snapshot.answer(Json(Visible {
        visibility: Shown::from(&seen),
        view,
    })))
}

pub async fn unit(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
    PathId(unit_id): PathId,
) -> Result<Fresh<Json<UnitView>>, QueryError> {
    let mut snapshot = Snapshot::open(&state, Projection::Audit).await?;
    let as_of = as_of(&params, snapshot.as_of)?;
    require_acting_for(&caller, snapshot.conn(), &unit_id, "unit as of an instant").await?;
    let not_found = || {
        QueryError::NotFound(format!(
            "no unit {unit_id} as of {} on the {} axis",
            as_of.instant.to_rfc3339(),
            as_of.axis
        ))
    };
    let id = UnitId::new(&unit_id).map_err(|_| not_found())?;
    let view = state
        .time_travel
        .unit(snapshot.conn(), as_of, &id)
        .await?
        .ok_or_else(not_found)?;
    Ok(snapshot.answer(Json(view)))
}

pub async fn diff(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
    uri: Uri,
) -> Result<Fresh<Json<RecordedDiff>>, QueryError> {
    let (from, to) = params.range("from", "to")?;
    // The route declares `from` required, so the guard has refused a request without it.
    let from =
        from.ok_or_else(|| QueryError::Malformed("query parameter from is required".to_owned()))?;
    let mut snapshot = Snapshot::open(&state, Projection::Audit).await?;
    let to = to.unwrap_or(snapshot.as_of);
    let limit = params
        .integer("limit", 1, MAX_EVENT_LIMIT)?
        .and_then(|limit| u32::try_from(limit).ok())
        .unwrap_or(DEFAULT_EVENT_LIMIT);
    let diff = state
        .time_travel
        .diff(snapshot.conn(), axis(&params)?, from, to, limit)
        .await?;
    let freshness = snapshot.freshness;
    // The connection goes back to the pool before the (NATS) recording.
    drop(snapshot);
    let recorded = state
        .audit_reads
        .record(&caller, &uri, diff.events.len() as u64)
        .await?;
    Ok(Fresh(
        freshness,
        Json(RecordedDiff {
            diff,
            read_sequence: recorded.sequence,
        }),
    ))
}

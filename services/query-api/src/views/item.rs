//! `GET /v1/items/{item_id}`: one item in full — who was assigned when, who answers for it now,
//! the units' tasks and their latest report lines, and its status history on both time axes.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, NaiveDate, Utc};
use readmodel::Projection;
use remediation_domain::calendar::DeadlineQualifier;
use remediation_domain::item::AssignmentRole;
use remediation_domain::lifecycle::Lifecycle;
use remediation_domain::report::ReportStatus;
use schemars::JsonSchema;
use serde::Serialize;

use super::{PathId, Snapshot, visibility};
use crate::access::{Caller, Visibility};
use crate::error::QueryError;
use crate::freshness::Fresh;
use crate::state::AppState;

const ITEM: &str = include_str!("../sql/item.sql");
const ASSIGNMENTS: &str = include_str!("../sql/item_assignments.sql");
const RESPONSIBLE: &str = include_str!("../sql/item_responsible_units.sql");
const TASKS: &str = include_str!("../sql/item_tasks.sql");
const REPORT_LINES: &str = include_str!("../sql/item_report_lines.sql");
pub(crate) const STATUS_HISTORY: &str = include_str!("../sql/status_history.sql");

#[derive(Debug, Serialize, JsonSchema, sqlx::FromRow)]
pub struct Item {
    pub item_id: String,
    pub plan_id: String,
    pub ordinal: i32,
    pub title: String,
    pub sector: Option<String>,
    pub causes_objective: Option<String>,
    pub causes_subjective: Option<String>,
    pub remedies: Option<String>,
    #[schemars(with = "Lifecycle")]
    pub status: String,
    pub status_since: DateTime<Utc>,
    pub due_on: Option<NaiveDate>,
    pub completed_at: Option<DateTime<Utc>>,
    #[schemars(with = "DeadlineQualifier")]
    pub deadline_qualifier: String,
}

/// An assignment with its validity on the effective axis: [valid_from, valid_until).
#[derive(Debug, Serialize, JsonSchema, sqlx::FromRow)]
pub struct Assignment {
    #[schemars(with = "AssignmentRole")]
    pub role: String,
    /// `unit` or `group`.
    pub assignee_type: String,
    pub assignee_id: String,
    pub assignee_name: String,
    pub valid_from: DateTime<Utc>,
    pub valid_until: Option<DateTime<Utc>>,
    pub revoke_reason: Option<String>,
    /// In force now.
    pub active: bool,
    pub stream_sequence: i64,
}

/// A unit answerable for the item now, and through which assignment.
#[derive(Debug, Serialize, JsonSchema, sqlx::FromRow)]
pub struct ResponsibleUnit {
    #[schemars(with = "AssignmentRole")]
    pub role: String,
    pub unit_id: String,
    pub unit_name: String,
    /// `unit` (assigned directly, or as successor of an assigned unit) or `group`.
    pub via_type: String,
    pub via_id: String,
}

#[derive(Debug, Serialize, JsonSchema, sqlx::FromRow)]
pub struct Task {
    pub task_id: String,
    pub unit_id: String,
    pub unit_name: String,
    pub title: String,
    pub person_responsible: String,
    pub leader_in_charge: String,
    pub due_on: NaiveDate,
    #[schemars(with = "Lifecycle")]
    pub status: String,
    pub status_since: DateTime<Utc>,
    pub evidence: Option<String>,
    pub cancelled: bool,
    pub cancel_reason: Option<String>,
    pub planned_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    #[schemars(with = "DeadlineQualifier")]
    pub deadline_qualifier: String,
}

/// A unit's line on the item from its most recent report that has one.
#[derive(Debug, Serialize, JsonSchema, sqlx::FromRow)]
pub struct ReportLine {
    pub unit_id: String,
    pub unit_name: String,
    pub report_id: String,
    pub year: i32,
    pub quarter: i32,
    #[schemars(with = "ReportStatus")]
    pub review_status: String,
    pub first_submitted_at: DateTime<Utc>,
    pub last_revised_at: Option<DateTime<Utc>>,
    pub progress: String,
    #[schemars(with = "Option<Lifecycle>")]
    pub reported_status: Option<String>,
}

/// One status the item held: effective [effective_from, effective_until) in the world, recorded
/// [recorded_from, recorded_until) in the system. The current status has both untils null.
#[derive(Debug, Serialize, JsonSchema, sqlx::FromRow)]
pub struct StatusPeriod {
    #[schemars(with = "Lifecycle")]
    pub status: String,
    #[schemars(with = "Option<Lifecycle>")]
    pub previous_status: Option<String>,
    pub reason: Option<String>,
    pub evidence: Option<String>,
    pub effective_from: DateTime<Utc>,
    pub effective_until: Option<DateTime<Utc>>,
    pub recorded_from: DateTime<Utc>,
    pub recorded_until: Option<DateTime<Utc>>,
    pub actor_user: String,
    pub actor_unit: Option<String>,
    pub stream_sequence: i64,
}

/// What of the units' internal work the answer contains.
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Shown {
    /// All units' tasks and report lines.
    Full,
    /// Only those of the units the caller (unit staff) acts for.
    OwnUnits,
    /// None: `tasks` and `report_lines` are absent (viewers).
    Public,
}

impl From<&Visibility> for Shown {
    fn from(visibility: &Visibility) -> Self {
        match visibility {
            Visibility::Full => Shown::Full,
            Visibility::Units(_) => Shown::OwnUnits,
            Visibility::Public => Shown::Public,
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ItemDetail {
    pub as_of: DateTime<Utc>,
    pub checkpoint: u64,
    /// Whether that projection had stopped on a commit it must not skip: the answer is then
    /// frozen at `checkpoint` until the cause is repaired (see `/readyz`).
    pub stalled: bool,
    pub visibility: Shown,
    pub item: Item,
    /// Every assignment the item had, in the order made.
    pub assignments: Vec<Assignment>,
    /// Units answerable now, after group membership and succession.
    pub responsible_units: Vec<ResponsibleUnit>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tasks: Option<Vec<Task>>,
    /// Latest report line per unit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report_lines: Option<Vec<ReportLine>>,
    pub status_history: Vec<StatusPeriod>,
}

pub async fn handler(
    State(state): State<AppState>,
    caller: Caller,
    PathId(item_id): PathId,
) -> Result<Fresh<Json<ItemDetail>>, QueryError> {
    let mut snapshot = Snapshot::open(&state, Projection::Core).await?;
    let item: Item = sqlx::query_as(ITEM)
        .bind(&item_id)
        .fetch_optional(snapshot.conn())
        .await?
        .ok_or_else(|| QueryError::NotFound(format!("no item {item_id}")))?;
    let assignments = sqlx::query_as(ASSIGNMENTS)
        .bind(&item_id)
        .fetch_all(snapshot.conn())
        .await?;
    let responsible_units = sqlx::query_as(RESPONSIBLE)
        .bind(&item_id)
        .fetch_all(snapshot.conn())
        .await?;
    let status_history = sqlx::query_as(STATUS_HISTORY)
        .bind("item")
        .bind(&item_id)
        .fetch_all(snapshot.conn())
        .await?;
    let seen = visibility(&caller, snapshot.conn()).await?;
    let shown = Shown::from(&seen);
    let units = match seen {
        Visibility::Units(units) => Some(units),
        Visibility::Full | Visibility::Public => None,
    };
    let (tasks, report_lines) = if matches!(shown, Shown::Public) {
        (None, None)
    } else {
        let tasks = sqlx::query_as(TASKS)
            .bind(&item_id)
            .bind(&units)
            .fetch_all(snapshot.conn())
            .await?;
        let lines = sqlx::query_as(REPORT_LINES)
            .bind(&item_id)
            .bind(&units)
            .fetch_all(snapshot.conn())
            .await?;
        (Some(tasks), Some(lines))
    };
    Ok(snapshot.answer(Json(ItemDetail {
        as_of: snapshot.as_of,
        checkpoint: snapshot.freshness.checkpoint,
        stalled: snapshot.freshness.stalled,
        visibility: shown,
        item,
        assignments,
        responsible_units,
        tasks,
        report_lines,
        status_history,
    })))
}

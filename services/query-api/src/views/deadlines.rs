//! `GET /v1/overdue` and `GET /v1/due-soon`: open items and tasks by deadline qualifier, judged
//! now by the read model's `deadline_qualifier` — the same rule as the domain's calendar.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, NaiveDate, Utc};
use readmodel::Projection;
use remediation_domain::calendar::DeadlineQualifier;
use remediation_domain::lifecycle::Lifecycle;
use schemars::JsonSchema;
use serde::Serialize;

use super::overview::active_assignments;
use super::{Assignee, Snapshot};
use crate::error::QueryError;
use crate::freshness::Fresh;
use crate::state::AppState;

const ITEMS: &str = include_str!("../sql/deadline_items.sql");
const TASKS: &str = include_str!("../sql/deadline_tasks.sql");

#[derive(Debug, Serialize, JsonSchema, sqlx::FromRow)]
pub struct DeadlineItem {
    pub item_id: String,
    pub plan_id: String,
    pub ordinal: i32,
    pub title: String,
    #[schemars(with = "Lifecycle")]
    pub status: String,
    pub due_on: NaiveDate,
    /// Days from today (local) to the due date: 0 due today, negative overdue.
    pub days_left: i32,
    /// Lead units and groups in force now.
    #[sqlx(skip)]
    pub leads: Vec<Assignee>,
}

/// Tasks carry what a dashboard needs to chase them — the unit and who holds its work now — but
/// not the unit's internal detail (person responsible, leader, evidence): those are on the item
/// page for those allowed to see them.
#[derive(Debug, Serialize, JsonSchema, sqlx::FromRow)]
pub struct DeadlineTask {
    pub task_id: String,
    pub item_id: String,
    pub plan_id: String,
    pub item_ordinal: i32,
    pub unit_id: String,
    pub unit_name: String,
    /// The units holding the task's work now: the unit itself, or its successors.
    pub held_by: Vec<String>,
    pub title: String,
    #[schemars(with = "Lifecycle")]
    pub status: String,
    pub due_on: NaiveDate,
    pub days_left: i32,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DeadlineList {
    pub as_of: DateTime<Utc>,
    pub checkpoint: u64,
    /// Whether that projection had stopped on a commit it must not skip: the answer is then
    /// frozen at `checkpoint` until the cause is repaired (see `/readyz`).
    pub stalled: bool,
    /// `overdue` or `due_soon`.
    pub qualifier: DeadlineQualifier,
    pub items: Vec<DeadlineItem>,
    pub tasks: Vec<DeadlineTask>,
}

fn wire(qualifier: DeadlineQualifier) -> &'static str {
    match qualifier {
        DeadlineQualifier::WithinTime => "within_time",
        DeadlineQualifier::DueSoon => "due_soon",
        DeadlineQualifier::Overdue => "overdue",
        DeadlineQualifier::NoDeadline => "no_deadline",
    }
}

async fn list(
    state: &AppState,
    qualifier: DeadlineQualifier,
) -> Result<Fresh<Json<DeadlineList>>, QueryError> {
    let mut snapshot = Snapshot::open(state, Projection::Core).await?;
    let mut items: Vec<DeadlineItem> = sqlx::query_as(ITEMS)
        .bind(wire(qualifier))
        .fetch_all(snapshot.conn())
        .await?;
    let ids: Vec<String> = items.iter().map(|i| i.item_id.clone()).collect();
    let mut assignments = active_assignments(snapshot.conn(), &ids).await?;
    for item in &mut items {
        if let Some((leads, _)) = assignments.remove(&item.item_id) {
            item.leads = leads;
        }
    }
    let tasks = sqlx::query_as(TASKS)
        .bind(wire(qualifier))
        .fetch_all(snapshot.conn())
        .await?;
    Ok(snapshot.answer(Json(DeadlineList {
        as_of: snapshot.as_of,
        checkpoint: snapshot.freshness.checkpoint,
        stalled: snapshot.freshness.stalled,
        qualifier,
        items,
        tasks,
    })))
}

pub async fn overdue(
    State(state): State<AppState>,
) -> Result<Fresh<Json<DeadlineList>>, QueryError> {
    list(&state, DeadlineQualifier::Overdue).await
}

pub async fn due_soon(
    State(state): State<AppState>,
) -> Result<Fresh<Json<DeadlineList>>, QueryError> {
    list(&state, DeadlineQualifier::DueSoon).await
}

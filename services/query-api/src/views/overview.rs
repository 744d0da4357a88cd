//! `GET /v1/plans/{plan_id}/overview`: the plan at a glance.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, NaiveDate, Utc};
use readmodel::Projection;
use remediation_domain::calendar::DeadlineQualifier;
use remediation_domain::lifecycle::Lifecycle;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;
use sqlx::PgConnection;

use super::{Assignee, PathId, Snapshot};
use crate::error::QueryError;
use crate::freshness::Fresh;
use crate::state::AppState;

const PLAN: &str = include_str!("../sql/plan.sql");
const ITEMS: &str = include_str!("../sql/plan_items.sql");
const ACTIVE_ASSIGNMENTS: &str = include_str!("../sql/active_assignments.sql");

#[derive(Debug, Serialize, JsonSchema, sqlx::FromRow)]
pub struct Plan {
    pub plan_id: String,
    pub code: String,
    pub title: String,
    pub issuer: String,
    pub issued_on: NaiveDate,
    #[schemars(with = "Vec<String>")]
    pub legal_basis: Value,
    pub reporting_rule: String,
}

#[derive(Debug, Serialize, JsonSchema, sqlx::FromRow)]
pub struct OverviewItem {
    pub item_id: String,
    pub ordinal: i32,
    pub title: String,
    pub sector: Option<String>,
    #[schemars(with = "Lifecycle")]
    pub status: String,
    pub status_since: DateTime<Utc>,
    /// Deadline (local date; the work may be done until the end of that day).
    pub due_on: Option<NaiveDate>,
    pub completed_at: Option<DateTime<Utc>>,
    #[schemars(with = "DeadlineQualifier")]
    pub deadline_qualifier: String,
    /// Chủ trì: the lead units and groups in force now.
    #[sqlx(skip)]
    pub leads: Vec<Assignee>,
    /// Phối hợp: the coordinating units and groups in force now.
    #[sqlx(skip)]
    pub coordinators: Vec<Assignee>,
}

/// Items per lifecycle status.
#[derive(Debug, Default, Serialize, JsonSchema)]
pub struct StatusCounts {
    pub not_started: u32,
    pub in_progress: u32,
    pub awaiting_confirmation: u32,
    pub completed: u32,
    pub suspended: u32,
    pub reopened: u32,
}

impl StatusCounts {
    pub fn add(&mut self, status: &str) {
        match status {
            "not_started" => self.not_started += 1,
            "in_progress" => self.in_progress += 1,
            "awaiting_confirmation" => self.awaiting_confirmation += 1,
            "completed" => self.completed += 1,
            "suspended" => self.suspended += 1,
            "reopened" => self.reopened += 1,
            other => tracing::warn!(status = other, "unknown lifecycle status in the read model"),
        }
    }
}

/// Items per deadline qualifier.
#[derive(Debug, Default, Serialize, JsonSchema)]
pub struct DeadlineCounts {
    pub within_time: u32,
    pub due_soon: u32,
    pub overdue: u32,
    pub no_deadline: u32,
}

impl DeadlineCounts {
    pub fn add(&mut self, qualifier: &str) {
        match qualifier {
            "within_time" => self.within_time += 1,
            "due_soon" => self.due_soon += 1,
            "overdue" => self.overdue += 1,
            "no_deadline" => self.no_deadline += 1,
            other => tracing::warn!(
                qualifier = other,
                "unknown deadline qualifier in the read model"
            ),
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct OverviewCounts {
    pub items: u32,
    pub by_status: StatusCounts,
    pub by_deadline: DeadlineCounts,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct PlanOverview {
    /// The instant the answer describes (the database clock).
    pub as_of: DateTime<Utc>,
    /// Stream sequence the core projection had applied.
    pub checkpoint: u64,
    /// Whether that projection had stopped on a commit it must not skip: the answer is then
    /// frozen at `checkpoint` until the cause is repaired (see `/readyz`).
    pub stalled: bool,
    pub plan: Plan,
    pub items: Vec<OverviewItem>,
    pub counts: OverviewCounts,
}

#[derive(Debug, sqlx::FromRow)]
struct ActiveAssignment {
    item_id: String,
    role: String,
    assignee_type: String,
    assignee_id: String,
    assignee_name: String,
}

/// The assignments in force now for `items`, by item: (leads, coordinators).
pub async fn active_assignments(
    conn: &mut PgConnection,
    items: &[String],
) -> Result<BTreeMap<String, (Vec<Assignee>, Vec<Assignee>)>, QueryError> {
    let rows: Vec<ActiveAssignment> = sqlx::query_as(ACTIVE_ASSIGNMENTS)
        .bind(items)
        .fetch_all(conn)
        .await?;
    let mut by_item: BTreeMap<String, (Vec<Assignee>, Vec<Assignee>)> = BTreeMap::new();
    for row in rows {
        let entry = by_item.entry(row.item_id).or_default();
        let assignee = Assignee {
            kind: row.assignee_type,
            id: row.assignee_id,
            name: row.assignee_name,
        };
        if row.role == "lead" {
            entry.0.push(assignee);
        } else {
            entry.1.push(assignee);
        }
    }
    Ok(by_item)
}

pub async fn handler(
    State(state): State<AppState>,
    PathId(plan_id): PathId,
) -> Result<Fresh<Json<PlanOverview>>, QueryError> {
    let mut snapshot = Snapshot::open(&state, Projection::Core).await?;
    let plan: Plan = sqlx::query_as(PLAN)
        .bind(&plan_id)
        .fetch_optional(snapshot.conn())
        .await?
        .ok_or_else(|| QueryError::NotFound(format!("no plan {plan_id}")))?;
    let mut items: Vec<OverviewItem> = sqlx::query_as(ITEMS)
        .bind(&plan_id)
        .fetch_all(snapshot.conn())
        .await?;
    let ids: Vec<String> = items.iter().map(|i| i.item_id.clone()).collect();
    let mut assignments = active_assignments(snapshot.conn(), &ids).await?;
    let mut counts = OverviewCounts {
        items: 0,
        by_status: StatusCounts::default(),
        by_deadline: DeadlineCounts::default(),
    };
    for item in &mut items {
        if let Some((leads, coordinators)) = assignments.remove(&item.item_id) {
            item.leads = leads;
            item.coordinators = coordinators;
        }
        counts.items += 1;
        counts.by_status.add(&item.status);
        counts.by_deadline.add(&item.deadline_qualifier);
    }
    Ok(snapshot.answer(Json(PlanOverview {
        as_of: snapshot.as_of,
        checkpoint: snapshot.freshness.checkpoint,
        stalled: snapshot.freshness.stalled,
        plan,
        items,
        counts,
    })))
}

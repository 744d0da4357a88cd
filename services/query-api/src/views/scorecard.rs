//! `GET /v1/units/{unit_id}/scorecard`: how one unit stands — the items it answers for, the tasks
//! it holds, what of it is overdue, and its reporting record quarter by quarter.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, NaiveDate, Utc};
use readmodel::Projection;
use remediation_domain::calendar::DeadlineQualifier;
use remediation_domain::item::AssignmentRole;
use remediation_domain::lifecycle::Lifecycle;
use remediation_domain::report::ReportStatus;
use remediation_domain::unit::UnitKind;
use schemars::JsonSchema;
use serde::Serialize;

use super::compliance::ComplianceTotals;
use super::{PathId, Snapshot, require_acting_for};
use crate::access::Caller;
use crate::error::QueryError;
use crate::freshness::Fresh;
use crate::state::AppState;
use remediation_domain::calendar::Compliance;

const UNIT: &str = include_str!("../sql/unit.sql");
const ITEMS: &str = include_str!("../sql/unit_items.sql");
const TASKS: &str = include_str!("../sql/unit_tasks.sql");
const COMPLIANCE: &str = include_str!("../sql/unit_compliance.sql");

#[derive(Debug, Serialize, JsonSchema, sqlx::FromRow)]
pub struct Unit {
    pub unit_id: String,
    pub name: String,
    #[schemars(with = "UnitKind")]
    pub kind: String,
    pub registered_at: DateTime<Utc>,
    /// Local date from which its successors hold its work.
    pub succeeded_on: Option<NaiveDate>,
    pub successors: Vec<String>,
    pub succession_reason: Option<String>,
}

#[derive(Debug, sqlx::FromRow)]
struct ItemRow {
    item_id: String,
    plan_id: String,
    ordinal: i32,
    title: String,
    status: String,
    due_on: Option<NaiveDate>,
    completed_at: Option<DateTime<Utc>>,
    deadline_qualifier: String,
    role: String,
    via_type: String,
    via_id: String,
}

/// One way the unit is assigned to an item.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Responsibility {
    #[schemars(with = "AssignmentRole")]
    pub role: String,
    /// `unit` (directly, or as successor of an assigned unit) or `group`.
    pub via_type: String,
    pub via_id: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct UnitItem {
    pub item_id: String,
    pub plan_id: String,
    pub ordinal: i32,
    pub title: String,
    #[schemars(with = "Lifecycle")]
    pub status: String,
    pub due_on: Option<NaiveDate>,
    pub completed_at: Option<DateTime<Utc>>,
    #[schemars(with = "DeadlineQualifier")]
    pub deadline_qualifier: String,
    /// Whether the unit leads (chủ trì) the item, rather than only coordinating it.
    pub lead: bool,
    pub responsibilities: Vec<Responsibility>,
}

#[derive(Debug, Serialize, JsonSchema, sqlx::FromRow)]
pub struct UnitTask {
    pub task_id: String,
    pub item_id: String,
    pub plan_id: String,
    pub item_ordinal: i32,
    /// The unit that planned it (this unit, or one it succeeded).
    pub unit_id: String,
    pub title: String,
    pub person_responsible: String,
    pub leader_in_charge: String,
    pub due_on: NaiveDate,
    #[schemars(with = "Lifecycle")]
    pub status: String,
    pub status_since: DateTime<Utc>,
    pub cancelled: bool,
    pub completed_at: Option<DateTime<Utc>>,
    #[schemars(with = "DeadlineQualifier")]
    pub deadline_qualifier: String,
}

/// The unit's overdue work: open items it leads and open tasks it holds, past their deadline.
#[derive(Debug, Serialize, JsonSchema)]
pub struct OverdueWork {
    pub items: Vec<String>,
    pub tasks: Vec<String>,
}

#[derive(Debug, Serialize, JsonSchema, sqlx::FromRow)]
pub struct QuarterCompliance {
    pub plan_id: String,
    pub year: i32,
    pub quarter: i32,
    pub due_at: DateTime<Utc>,
    pub first_submitted_at: Option<DateTime<Utc>>,
    pub last_revised_at: Option<DateTime<Utc>>,
    #[schemars(with = "Option<ReportStatus>")]
    pub review_status: Option<String>,
    #[schemars(with = "Compliance")]
    pub compliance: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Scorecard {
    pub as_of: DateTime<Utc>,
    pub checkpoint: u64,
    /// Whether that projection had stopped on a commit it must not skip: the answer is then
    /// frozen at `checkpoint` until the cause is repaired (see `/readyz`).
    pub stalled: bool,
    pub unit: Unit,
    pub items: Vec<UnitItem>,
    pub tasks: Vec<UnitTask>,
    pub overdue: OverdueWork,
    /// Every quarter the unit owed a report, oldest first.
    pub compliance: Vec<QuarterCompliance>,
    pub compliance_totals: ComplianceTotals,
}

fn open(status: &str) -> bool {
    status != "completed"
}

pub async fn handler(
    State(state): State<AppState>,
    caller: Caller,
    PathId(unit_id): PathId,
) -> Result<Fresh<Json<Scorecard>>, QueryError> {
    let mut snapshot = Snapshot::open(&state, Projection::Core).await?;
    require_acting_for(&caller, snapshot.conn(), &unit_id, "scorecard").await?;
    let unit: Unit = sqlx::query_as(UNIT)
        .bind(&unit_id)
        .fetch_optional(snapshot.conn())
        .await?
        .ok_or_else(|| QueryError::NotFound(format!("no unit {unit_id}")))?;
    let rows: Vec<ItemRow> = sqlx::query_as(ITEMS)
        .bind(&unit_id)
        .fetch_all(snapshot.conn())
        .await?;
    let mut items: Vec<UnitItem> = Vec::new();
    for row in rows {
        let responsibility = Responsibility {
            role: row.role,
            via_type: row.via_type,
            via_id: row.via_id,
        };
        match items.last_mut() {
            Some(last) if last.item_id == row.item_id => {
                last.lead |= responsibility.role == "lead";
                last.responsibilities.push(responsibility);
            }
            _ => items.push(UnitItem {
                item_id: row.item_id,
                plan_id: row.plan_id,
                ordinal: row.ordinal,
                title: row.title,
                status: row.status,
                due_on: row.due_on,
                completed_at: row.completed_at,
                deadline_qualifier: row.deadline_qualifier,
                lead: responsibility.role == "lead",
                responsibilities: vec![responsibility],
            }),
        }
    }
    let tasks: Vec<UnitTask> = sqlx::query_as(TASKS)
        .bind(&unit_id)
        .fetch_all(snapshot.conn())
        .await?;
    let compliance: Vec<QuarterCompliance> = sqlx::query_as(COMPLIANCE)
        .bind(&unit_id)
        .fetch_all(snapshot.conn())
        .await?;
    let overdue = OverdueWork {
        items: items
            .iter()
            .filter(|i| i.lead && open(&i.status) && i.deadline_qualifier == "overdue")
            .map(|i| i.item_id.clone())
            .collect(),
        tasks: tasks
            .iter()
            .filter(|t| !t.cancelled && open(&t.status) && t.deadline_qualifier == "overdue")
            .map(|t| t.task_id.clone())
            .collect(),
    };
    let compliance_totals = ComplianceTotals::of(
        compliance
            .iter()
            .map(|c| (c.compliance.as_str(), c.review_status.as_deref())),
    );
    Ok(snapshot.answer(Json(Scorecard {
        as_of: snapshot.as_of,
        checkpoint: snapshot.freshness.checkpoint,
        stalled: snapshot.freshness.stalled,
        unit,
        items,
        tasks,
        overdue,
        compliance,
        compliance_totals,
    })))
}

//! `GET /v1/plans/{plan_id}/compliance?year=&quarter=`: the Department of Finance's matrix for
//! one quarter — every unit that owed the plan a report, and how it stands.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use readmodel::Projection;
use remediation_domain::calendar::{Compliance, Quarter};
use remediation_domain::report::ReportStatus;
use schemars::JsonSchema;
use serde::Serialize;

use super::{PathId, Snapshot};
use crate::error::QueryError;
use crate::freshness::Fresh;
use crate::params::Params;
use crate::state::AppState;

const PLAN_EXISTS: &str = "SELECT p.plan_id FROM plans p WHERE p.plan_id = $1";
const MATRIX: &str = include_str!("../sql/compliance.sql");

/// Counts over a set of (unit, quarter) rows.
#[derive(Debug, Default, Serialize, JsonSchema)]
pub struct ComplianceTotals {
    /// Rows: reports owed.
    pub owed: u32,
    pub on_time: u32,
    pub late: u32,
    pub missing: u32,
    pub pending: u32,
    /// Submitted reports under review (submitted or revised, not yet accepted or returned).
    pub under_review: u32,
    pub accepted: u32,
    pub returned: u32,
}

impl ComplianceTotals {
    /// Totals of `(compliance, review_status)` pairs.
    pub fn of<'a>(rows: impl IntoIterator<Item = (&'a str, Option<&'a str>)>) -> Self {
        let mut totals = Self::default();
        for (compliance, review) in rows {
            totals.owed += 1;
            match compliance {
                "on_time" => totals.on_time += 1,
                "late" => totals.late += 1,
                "missing" => totals.missing += 1,
                "pending" => totals.pending += 1,
                other => tracing::warn!(compliance = other, "unknown compliance in the read model"),
            }
            match review {
                Some("submitted") => totals.under_review += 1,
                Some("accepted") => totals.accepted += 1,
                Some("returned") => totals.returned += 1,
                _ => {}
            }
        }
        totals
    }
}

#[derive(Debug, Serialize, JsonSchema, sqlx::FromRow)]
pub struct ComplianceRow {
    pub unit_id: String,
    pub unit_name: String,
    #[schemars(with = "Compliance")]
    pub compliance: String,
    /// Effective instant of the first submission: what on time or late is judged by.
    pub first_submitted_at: Option<DateTime<Utc>>,
    pub last_revised_at: Option<DateTime<Utc>>,
    #[schemars(with = "Option<ReportStatus>")]
    pub review_status: Option<String>,
    pub revisions: i32,
    pub accepted_at: Option<DateTime<Utc>>,
    pub returned_at: Option<DateTime<Utc>>,
    pub return_reason: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct QuarterInfo {
    pub year: i32,
    pub quarter: u8,
    /// `Q2/2025`.
    pub label: String,
    /// Reports are due strictly before this instant (00:00 local on the 15th of the quarter's
    /// last month).
    pub due_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ComplianceMatrix {
    pub as_of: DateTime<Utc>,
    pub checkpoint: u64,
    /// Whether that projection had stopped on a commit it must not skip: the answer is then
    /// frozen at `checkpoint` until the cause is repaired (see `/readyz`).
    pub stalled: bool,
    pub plan_id: String,
    pub quarter: QuarterInfo,
    /// One row per unit that owed a report, by unit id.
    pub units: Vec<ComplianceRow>,
    pub totals: ComplianceTotals,
}

/// The quarter asked for; a part left out is the current quarter's (no year: this year; neither:
/// the current quarter).
pub(crate) fn quarter(params: &Params, now: DateTime<Utc>) -> Result<Quarter, QueryError> {
    let current = Quarter::containing(now);
    let year = params
        .integer("year", 2000, 2100)?
        .map_or(Ok(current.year), i32::try_from);
    let quarter = params
        .integer("quarter", 1, 4)?
        .map_or(Ok(current.quarter), u8::try_from);
    year.ok()
        .zip(quarter.ok())
        .and_then(|(year, quarter)| Quarter::new(year, quarter))
        .ok_or_else(|| QueryError::Malformed("no such quarter".to_owned()))
}

pub async fn handler(
    State(state): State<AppState>,
    PathId(plan_id): PathId,
    params: Params,
) -> Result<Fresh<Json<ComplianceMatrix>>, QueryError> {
    let mut snapshot = Snapshot::open(&state, Projection::Core).await?;
    let quarter = quarter(&params, snapshot.as_of)?;
    let found: Option<String> = sqlx::query_scalar(PLAN_EXISTS)
        .bind(&plan_id)
        .fetch_optional(snapshot.conn())
        .await?;
    if found.is_none() {
        return Err(QueryError::NotFound(format!("no plan {plan_id}")));
    }
    let units: Vec<ComplianceRow> = sqlx::query_as(MATRIX)
        .bind(&plan_id)
        .bind(quarter.year)
        .bind(i32::from(quarter.quarter))
        .fetch_all(snapshot.conn())
        .await?;
    let totals = ComplianceTotals::of(
        units
            .iter()
            .map(|u| (u.compliance.as_str(), u.review_status.as_deref())),
    );
    Ok(snapshot.answer(Json(ComplianceMatrix {
        as_of: snapshot.as_of,
        checkpoint: snapshot.freshness.checkpoint,
        stalled: snapshot.freshness.stalled,
        plan_id,
        quarter: QuarterInfo {
            year: quarter.year,
            quarter: quarter.quarter,
            label: quarter.label(),
            due_at: quarter.report_due(),
        },
        units,
        totals,
    })))
}

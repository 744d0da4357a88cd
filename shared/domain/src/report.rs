//! Báo cáo quý — a unit's quarterly progress report to the Department of Finance: one line per
//! item it is responsible for; submitted, revised, accepted or returned for revision.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::actor::Role;
use crate::calendar::{Quarter, local_date};
use crate::context::Context;
use crate::facts::AggregateRef;
use crate::lifecycle::Lifecycle;
use crate::rejection::{Rejection, Rule};
use crate::text::{ItemId, PlanId, Prose, Reason, ReportId, UnitId};

/// Dòng báo cáo — progress on one item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportLine {
    pub item_id: ItemId,
    /// Kết quả thực hiện.
    pub progress: Prose,
    /// The status the unit reports; the item's own status changes only by command.
    pub status: Option<Lifecycle>,
}

/// Review status of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReportStatus {
    /// Đã gửi, chờ xem xét.
    Submitted,
    /// Đã tiếp nhận.
    Accepted,
    /// Trả lại để bổ sung, chỉnh sửa.
    Returned,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub plan_id: PlanId,
    pub unit_id: UnitId,
    pub quarter: Quarter,
    pub lines: Vec<ReportLine>,
    pub status: ReportStatus,
    pub submitted_at: DateTime<Utc>,
}

/// The one report a unit sends for a plan and quarter has a derived identity.
pub fn report_id(plan: &PlanId, unit: &UnitId, quarter: Quarter) -> ReportId {
    ReportId::new(format!(
        "{plan}--{unit}--{}-q{}",
        quarter.year, quarter.quarter
    ))
    .expect("plan and unit identifiers compose into a valid report identifier")
}

/// Addresses the report of `unit_id` on `plan_id` for `quarter`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportKey {
    pub plan_id: PlanId,
    pub unit_id: UnitId,
    pub quarter: Quarter,
}

impl ReportKey {
    pub fn report_id(&self) -> ReportId {
        report_id(&self.plan_id, &self.unit_id, self.quarter)
    }

    pub fn references(&self) -> Vec<AggregateRef> {
        vec![
            AggregateRef::Plan(self.plan_id.clone()),
            AggregateRef::Unit(self.unit_id.clone()),
        ]
    }
}

/// Gửi báo cáo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitReport {
    pub plan_id: PlanId,
    pub unit_id: UnitId,
    pub quarter: Quarter,
    #[schemars(length(min = 1))]
    pub lines: Vec<ReportLine>,
}

/// Bổ sung, chỉnh sửa báo cáo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviseReport {
    pub plan_id: PlanId,
    pub unit_id: UnitId,
    pub quarter: Quarter,
    #[schemars(length(min = 1))]
    pub lines: Vec<ReportLine>,
    pub reason: Option<Reason>,
}

/// Trả lại báo cáo để chỉnh sửa.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReturnReport {
    pub plan_id: PlanId,
    pub unit_id: UnitId,
    pub quarter: Quarter,
    pub reason: Reason,
}

impl SubmitReport {
    pub fn key(&self) -> ReportKey {
        ReportKey {
            plan_id: self.plan_id.clone(),
            unit_id: self.unit_id.clone(),
            quarter: self.quarter,
        }
    }
}

impl ReviseReport {
    pub fn key(&self) -> ReportKey {
        ReportKey {
            plan_id: self.plan_id.clone(),
            unit_id: self.unit_id.clone(),
            quarter: self.quarter,
        }
    }
}

impl ReturnReport {
    pub fn key(&self) -> ReportKey {
        ReportKey {
            plan_id: self.plan_id.clone(),
            unit_id: self.unit_id.clone(),
            quarter: self.quarter,
        }
    }
}

/// The items a set of lines refers to.
pub fn line_references(lines: &[ReportLine]) -> impl Iterator<Item = AggregateRef> + '_ {
    lines.iter().map(|l| AggregateRef::Item(l.item_id.clone()))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", tag = "event", content = "data")]
pub enum ReportEvent {
    Submitted {
        plan_id: PlanId,
        unit_id: UnitId,
        quarter: Quarter,
        lines: Vec<ReportLine>,
        /// Effective submission instant: what on-time or late is judged by.
        submitted_at: DateTime<Utc>,
    },
    Revised {
        lines: Vec<ReportLine>,
        reason: Option<Reason>,
        revised_at: DateTime<Utc>,
    },
    Accepted {
        accepted_at: DateTime<Utc>,
    },
    Returned {
        reason: Reason,
        returned_at: DateTime<Utc>,
    },
}

pub type State = Option<Report>;

pub fn evolve(state: State, event: &ReportEvent) -> State {
    match (state, event) {
        (
            None,
            ReportEvent::Submitted {
                plan_id,
                unit_id,
                quarter,
                lines,
                submitted_at,
            },
        ) => Some(Report {
            plan_id: plan_id.clone(),
            unit_id: unit_id.clone(),
            quarter: *quarter,
            lines: lines.clone(),
            status: ReportStatus::Submitted,
            submitted_at: *submitted_at,
        }),
        (Some(report), ReportEvent::Revised { lines, .. }) => Some(Report {
            lines: lines.clone(),
            status: ReportStatus::Submitted,
            ..report
        }),
        (Some(report), ReportEvent::Accepted { .. }) => Some(Report {
            status: ReportStatus::Accepted,
            ..report
        }),
        (Some(report), ReportEvent::Returned { .. }) => Some(Report {
            status: ReportStatus::Returned,
            ..report
        }),
        (state, _) => state,
    }
}

/// Checks who reports and on what: the unit's own staff (or the province office keying in a
/// paper report), on items of this plan that the unit is assigned to at the effective time.
fn check_lines(key: &ReportKey, lines: &[ReportLine], ctx: &Context) -> Result<(), Rejection> {
    ctx.require_acts_for(&key.unit_id, "submit reports")?;
    ctx.facts.plan(&key.plan_id)?;
    if ctx
        .facts
        .unit(&key.unit_id)?
        .succeeded_by(local_date(ctx.effective_at))
    {
        return Err(Rejection::rule(
            Rule::UnitSucceeded,
            format!(
                "unit {} has been succeeded; its successors report",
                key.unit_id
            ),
        ));
    }
    if ctx.effective_at < key.quarter.starts_at() {
        return Err(Rejection::rule(
            Rule::QuarterNotStarted,
            format!("{} has not started yet", key.quarter.label()),
        ));
    }
    if lines.is_empty() {
        return Err(Rejection::rule(
            Rule::EmptyReport,
            "a report has at least one line",
        ));
    }
    let mut seen = BTreeSet::new();
    for line in lines {
        if !seen.insert(&line.item_id) {
            return Err(Rejection::rule(
                Rule::DuplicateLine,
                format!("item {} appears twice", line.item_id),
            ));
        }
        let item = ctx.facts.item(&line.item_id)?;
        if item.plan_id != key.plan_id {
            return Err(Rejection::rule(
                Rule::WrongPlan,
                format!("item {} belongs to plan {}", line.item_id, item.plan_id),
            ));
        }
        if !ctx
            .facts
            .responsible_units(item, None, ctx.effective_at)
            .contains(&key.unit_id)
        {
            return Err(Rejection::rule(
                Rule::NotAssigned,
                format!(
                    "unit {} is not assigned to item {}",
                    key.unit_id, line.item_id
                ),
            ));
        }
    }
    Ok(())
}

pub fn submit(
    state: &State,
    cmd: &SubmitReport,
    ctx: &Context,
) -> Result<Vec<ReportEvent>, Rejection> {
    let key = cmd.key();
    if let Some(report) = state {
        ctx.require_acts_for(&key.unit_id, "submit reports")?;
        return if report.lines == cmd.lines {
            Ok(vec![])
        } else {
            Err(Rejection::rule(
                Rule::AlreadyExists,
                format!(
                    "the {} report of {} was already submitted; revise it instead",
                    key.quarter.label(),
                    key.unit_id
                ),
            ))
        };
    }
    check_lines(&key, &cmd.lines, ctx)?;
    Ok(vec![ReportEvent::Submitted {
        plan_id: cmd.plan_id.clone(),
        unit_id: cmd.unit_id.clone(),
        quarter: cmd.quarter,
        lines: cmd.lines.clone(),
        submitted_at: ctx.effective_at,
    }])
}

fn existing<'s>(state: &'s State, key: &ReportKey) -> Result<&'s Report, Rejection> {
    state.as_ref().ok_or_else(|| {
        Rejection::not_found(format!(
            "no {} report of {} on plan {} has been submitted",
            key.quarter.label(),
            key.unit_id,
            key.plan_id
        ))
    })
}

pub fn revise(
    state: &State,
    cmd: &ReviseReport,
    ctx: &Context,
) -> Result<Vec<ReportEvent>, Rejection> {
    let key = cmd.key();
    let report = existing(state, &key)?;
    ctx.require_acts_for(&key.unit_id, "revise reports")?;
    if report.status == ReportStatus::Accepted {
        return Err(Rejection::rule(
            Rule::ReportAccepted,
            "an accepted report cannot be revised",
        ));
    }
    if report.status == ReportStatus::Submitted && report.lines == cmd.lines {
        return Ok(vec![]);
    }
    check_lines(&key, &cmd.lines, ctx)?;
    Ok(vec![ReportEvent::Revised {
        lines: cmd.lines.clone(),
        reason: cmd.reason.clone(),
        revised_at: ctx.effective_at,
    }])
}

/// Who may review (accept or return) the report `key` names. The Department of Finance reviews
/// the reports sent to it, except its own; the province office reviews exactly those, the
/// reports of the plan's recipient: nobody reviews a report their own unit submitted. Checked
/// before anything about the report itself, as every authorisation is.
fn check_reviewer(key: &ReportKey, ctx: &Context, action: &str) -> Result<(), Rejection> {
    ctx.require_role(&[Role::DepartmentOfFinance, Role::ProvinceOffice], action)?;
    // A report exists only for an issued plan, which is loaded with it: a plan missing here was
    // never issued, so neither was the report (404 below).
    let recipient = ctx
        .facts
        .plans
        .get(&key.plan_id)
        .and_then(|p| p.report_recipient.as_ref());
    let at = ctx.effective_at;
    // "Own" follows succession: a unit answers for the reports of the units whose work it took
    // over. The recipient's own reports are also those of a unit it merged into, or of one
    // merged into it.
    let reviewers_own = ctx
        .actor
        .unit
        .as_ref()
        .is_some_and(|own| ctx.facts.acts_for(own, &key.unit_id, at));
    let recipients_own = recipient.is_some_and(|recipient| {
        ctx.facts.acts_for(recipient, &key.unit_id, at)
            || ctx.facts.acts_for(&key.unit_id, recipient, at)
    });
    let report = format!("the {} report of {}", key.quarter.label(), key.unit_id);
    match (ctx.actor.role, recipient) {
        _ if reviewers_own => Err(Rejection::rule(
            Rule::OwnReportReview,
            format!("{report} is your own unit's; nobody reviews a report their unit submitted"),
        )),
        (Role::DepartmentOfFinance, _) if recipients_own => Err(Rejection::rule(
            Rule::OwnReportReview,
            format!("{report} is the Department of Finance's own; the province office reviews it"),
        )),
        (Role::ProvinceOffice, Some(recipient)) if !recipients_own => {
            Err(Rejection::forbidden(format!(
                "the province office may {action} of the plan's recipient {recipient} only, not {report}"
            )))
        }
        (Role::ProvinceOffice, None) => Err(Rejection::forbidden(format!(
            "plan {} names no recipient of its reports, so the province office may not {action}",
            key.plan_id
        ))),
        _ => Ok(()),
    }
}

pub fn accept(
    state: &State,
    key: &ReportKey,
    ctx: &Context,
) -> Result<Vec<ReportEvent>, Rejection> {
    check_reviewer(key, ctx, "accept reports")?;
    let report = existing(state, key)?;
    match report.status {
        ReportStatus::Accepted => Ok(vec![]),
        ReportStatus::Returned => Err(Rejection::rule(
            Rule::ReportReturned,
            "a returned report must be revised before it can be accepted",
        )),
        ReportStatus::Submitted => Ok(vec![ReportEvent::Accepted {
            accepted_at: ctx.effective_at,
        }]),
    }
}

pub fn return_for_revision(
    state: &State,
    cmd: &ReturnReport,
    ctx: &Context,
) -> Result<Vec<ReportEvent>, Rejection> {
    let key = cmd.key();
    check_reviewer(&key, ctx, "return reports")?;
    let report = existing(state, &key)?;
    match report.status {
        ReportStatus::Returned => Ok(vec![]),
        ReportStatus::Accepted => Err(Rejection::rule(
            Rule::ReportAccepted,
            "an accepted report cannot be returned",
        )),
        ReportStatus::Submitted => Ok(vec![ReportEvent::Returned {
            reason: cmd.reason.clone(),
            returned_at: ctx.effective_at,
        }]),
    }
}

//! What people read, derived from a folded [`PlanState`] at an instant: items with their status,
//! deadline qualifier and responsible units, assignments, tasks, reports and reporting
//! compliance — with the domain's own calendar and `Facts::responsible_units`.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, Utc};
use remediation_domain::calendar::{
    DeadlineQualifier, Quarter, Timeliness, deadline_qualifier, local_date, start_of_local_day,
    timeliness,
};
use remediation_domain::facts::{Assignee, Facts};
use remediation_domain::item::{AssignmentRole, Item};
use remediation_domain::lifecycle::Lifecycle;
use remediation_domain::report::{Report, ReportStatus, report_id};
use remediation_domain::task::Task;
use remediation_domain::text::{GroupId, ItemId, PlanId, ReportId, TaskId, UnitId};
use remediation_domain::unit::{Succession, UnitKind};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::state::PlanState;
use crate::{AsOf, Axis, FoldStats};

/// Where an answer comes from: the log head it folds and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LogInfo {
    pub head_sequence: i64,
    pub events_folded: u64,
    /// Stream sequence of the snapshot the fold started from, if any.
    pub snapshot_sequence: Option<i64>,
    pub folded_after_snapshot: u64,
}

impl From<FoldStats> for LogInfo {
    fn from(stats: FoldStats) -> Self {
        Self {
            head_sequence: stats.head_sequence,
            events_folded: stats.events,
            snapshot_sequence: stats.snapshot.map(|s| s.stream_sequence),
            folded_after_snapshot: stats.folded_after_snapshot,
        }
    }
}

/// Kế hoạch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PlanRow {
    pub plan_id: PlanId,
    pub code: String,
    pub title: String,
    pub issuer: String,
    pub issued_on: NaiveDate,
}

/// Nội dung hạn chế at T.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ItemRow {
    pub item_id: ItemId,
    pub plan_id: PlanId,
    pub ordinal: u16,
    pub title: String,
    pub status: Lifecycle,
    pub status_label: String,
    pub due_on: Option<NaiveDate>,
    /// `calendar::deadline_qualifier(due_on, T)`; for completed work, at its completion.
    pub deadline_qualifier: DeadlineQualifier,
    pub deadline_label: String,
    /// Đơn vị chủ trì at T, after groups and succession (`Facts::responsible_units`).
    pub leads: Vec<UnitId>,
    /// Đơn vị phối hợp at T.
    pub coordinators: Vec<UnitId>,
    /// The lead assignments valid at T as the plan names them (units or groups).
    pub lead_assignees: Vec<Assignee>,
    /// The coordinating assignments valid at T as named.
    pub coordinator_assignees: Vec<Assignee>,
}

/// An assignment valid at T, with the units it stands for at T.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AssignmentRow {
    pub item_id: ItemId,
    pub role: AssignmentRole,
    pub assignee: Assignee,
    pub valid_from: DateTime<Utc>,
    pub valid_until: Option<DateTime<Utc>>,
    pub units: Vec<UnitId>,
}

/// Nhiệm vụ at T.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TaskRow {
    pub task_id: TaskId,
    pub item_id: ItemId,
    pub unit_id: UnitId,
    pub title: String,
    pub person_responsible: String,
    pub leader_in_charge: String,
    pub status: Lifecycle,
    pub status_label: String,
    pub due_on: NaiveDate,
    pub deadline_qualifier: DeadlineQualifier,
    pub deadline_label: String,
    pub cancelled: bool,
}

/// Báo cáo quý at T.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReportRow {
    pub report_id: ReportId,
    pub plan_id: PlanId,
    pub unit_id: UnitId,
    pub quarter: Quarter,
    pub due_at: DateTime<Utc>,
    /// Review status at T.
    pub status: ReportStatus,
    /// Effective first submission: what timeliness is judged by.
    pub submitted_at: DateTime<Utc>,
    pub timeliness: Timeliness,
    pub items: Vec<ItemId>,
}

pub use remediation_domain::calendar::Compliance;

/// One unit × quarter, by the rule of the SQL function `reporting_compliance_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ComplianceRow {
    pub plan_id: PlanId,
    pub unit_id: UnitId,
    pub unit_name: String,
    pub quarter: Quarter,
    pub due_at: DateTime<Utc>,
    pub first_submitted_at: Option<DateTime<Utc>>,
    pub review_status: Option<ReportStatus>,
    pub compliance: Compliance,
}

/// The whole plan as of an instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PlanView {
    pub as_of: DateTime<Utc>,
    pub axis: Axis,
    pub log: LogInfo,
    pub plans: Vec<PlanRow>,
    /// By plan and ordinal.
    pub items: Vec<ItemRow>,
    /// Valid at T.
    pub assignments: Vec<AssignmentRow>,
    pub tasks: Vec<TaskRow>,
    pub reports: Vec<ReportRow>,
    pub compliance: Vec<ComplianceRow>,
}

/// One assignment of an item, whether or not valid at T.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ItemAssignment {
    pub role: AssignmentRole,
    pub assignee: Assignee,
    pub valid_from: DateTime<Utc>,
    pub valid_until: Option<DateTime<Utc>>,
    pub valid_at: bool,
    pub units: Vec<UnitId>,
}

/// A line of a report on the item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReportLineRow {
    pub report_id: ReportId,
    pub unit_id: UnitId,
    pub quarter: Quarter,
    pub progress: String,
    pub reported_status: Option<Lifecycle>,
    pub report_status: ReportStatus,
}

/// One item as of an instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ItemView {
    pub as_of: DateTime<Utc>,
    pub axis: Axis,
    pub log: LogInfo,
    pub item: ItemRow,
    /// Every assignment known at T, with whether it holds at T.
    pub assignments: Vec<ItemAssignment>,
    pub tasks: Vec<TaskRow>,
    pub report_lines: Vec<ReportLineRow>,
}

/// Đơn vị at T.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct UnitRow {
    pub unit_id: UnitId,
    pub name: String,
    pub kind: UnitKind,
    pub succession: Option<Succession>,
    /// Whether the succession has taken effect at T.
    pub succeeded: bool,
    /// Who holds the unit's responsibilities at T: itself, or its successors.
    pub holders: Vec<UnitId>,
}

/// An item the unit is responsible for at T, and in which role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct UnitItem {
    pub role: AssignmentRole,
    pub item: ItemRow,
}

/// One unit as of an instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct UnitView {
    pub as_of: DateTime<Utc>,
    pub axis: Axis,
    pub log: LogInfo,
    pub unit: UnitRow,
    /// Groups the unit belongs to on T's local date.
    pub groups: Vec<GroupId>,
    pub items: Vec<UnitItem>,
    /// Tasks whose unit's responsibilities the unit holds at T (its own, or a predecessor's).
    pub tasks: Vec<TaskRow>,
    pub reports: Vec<ReportRow>,
    pub compliance: Vec<ComplianceRow>,
}

fn ids(units: BTreeSet<UnitId>) -> Vec<UnitId> {
    units.into_iter().collect()
}

fn item_row(id: &ItemId, item: &Item, facts: &Facts, at: DateTime<Utc>) -> ItemRow {
    // Completed work is judged at its completion, as the read model's items_overview does.
    let qualifier = deadline_qualifier(item.due_on, item.completed_at.unwrap_or(at));
    ItemRow {
        item_id: id.clone(),
        plan_id: item.plan_id.clone(),
        ordinal: item.ordinal,
        title: item.title.to_string(),
        status: item.status,
        status_label: item.status.label_vi().to_owned(),
        due_on: item.due_on,
        deadline_qualifier: qualifier,
        deadline_label: qualifier.label_vi().to_owned(),
        leads: ids(facts.responsible_units(item, Some(AssignmentRole::Lead), at)),
        coordinators: ids(facts.responsible_units(item, Some(AssignmentRole::Coordinator), at)),
        lead_assignees: named(item, AssignmentRole::Lead, at),
        coordinator_assignees: named(item, AssignmentRole::Coordinator, at),
    }
}

fn named(item: &Item, role: AssignmentRole, at: DateTime<Utc>) -> Vec<Assignee> {
    let named: BTreeSet<Assignee> = item
        .assignments_at(at)
        .filter(|a| a.role == role)
        .map(|a| a.assignee.clone())
        .collect();
    named.into_iter().collect()
}

fn task_row(id: &TaskId, task: &Task, at: DateTime<Utc>) -> TaskRow {
    let qualifier = deadline_qualifier(Some(task.due_on), task.completed_at.unwrap_or(at));
    TaskRow {
        task_id: id.clone(),
        item_id: task.item_id.clone(),
        unit_id: task.unit_id.clone(),
        title: task.title.to_string(),
        person_responsible: task.person_responsible.to_string(),
        leader_in_charge: task.leader_in_charge.to_string(),
        status: task.status,
        status_label: task.status.label_vi().to_owned(),
        due_on: task.due_on,
        deadline_qualifier: qualifier,
        deadline_label: qualifier.label_vi().to_owned(),
        cancelled: task.cancelled,
    }
}

fn report_row(id: &ReportId, report: &Report) -> ReportRow {
    ReportRow {
        report_id: id.clone(),
        plan_id: report.plan_id.clone(),
        unit_id: report.unit_id.clone(),
        quarter: report.quarter,
        due_at: report.quarter.report_due(),
        status: report.status,
        submitted_at: report.submitted_at,
        timeliness: timeliness(report.quarter, report.submitted_at),
        items: report.lines.iter().map(|l| l.item_id.clone()).collect(),
    }
}

fn next_quarter(q: Quarter) -> Option<Quarter> {
    if q.quarter == 4 {
        Quarter::new(q.year + 1, 1)
    } else {
        Quarter::new(q.year, q.quarter + 1)
    }
}

/// Reporting compliance at `at`, the rule of `reporting_compliance_at` in
/// `migrations/core/0001_core.sql`: for every quarter from the plan's issue quarter to `at`'s,
/// the units responsible for any of the plan's items at the quarter's due instant (or at `at`, if
/// earlier) owe a report; first submission before the due instant is on time, later is late; none
/// and `at` past the due instant is missing; otherwise pending.
pub fn compliance(state: &PlanState, facts: &Facts, at: DateTime<Utc>) -> Vec<ComplianceRow> {
    let mut rows = Vec::new();
    let last = Quarter::containing(at);
    for (plan_id, plan) in state.plans() {
        let items: Vec<&Item> = state
            .items()
            .filter(|(_, item)| &item.plan_id == plan_id)
            .map(|(_, item)| item)
            .collect();
        let mut quarter = Some(Quarter::containing(start_of_local_day(plan.issued_on)));
        while let Some(q) = quarter.filter(|q| *q <= last) {
            let due_at = q.report_due();
            let when = due_at.min(at);
            let owing: BTreeSet<UnitId> = items
                .iter()
                .flat_map(|item| facts.responsible_units(item, None, when))
                .collect();
            for unit_id in owing {
                // Only registered units owe reports (the SQL joins `units`).
                let Some(unit) = state.unit(&unit_id) else {
                    continue;
                };
                let report = state.report(&report_id(plan_id, &unit_id, q));
                let compliance = Compliance::of(due_at, report.map(|r| r.submitted_at), at);
                rows.push(ComplianceRow {
                    plan_id: plan_id.clone(),
                    unit_id: unit_id.clone(),
                    unit_name: unit.name.to_string(),
                    quarter: q,
                    due_at,
                    first_submitted_at: report.map(|r| r.submitted_at),
                    review_status: report.map(|r| r.status),
                    compliance,
                });
            }
            quarter = next_quarter(q);
        }
    }
    rows
}

fn sorted_items(state: &PlanState) -> Vec<(&ItemId, &Item)> {
    let mut items: Vec<_> = state.items().collect();
    items.sort_by(|a, b| (&a.1.plan_id, a.1.ordinal, a.0).cmp(&(&b.1.plan_id, b.1.ordinal, b.0)));
    items
}

/// The whole plan at `as_of.instant`.
pub fn plan_view(state: &PlanState, as_of: AsOf, stats: FoldStats) -> PlanView {
    let at = as_of.instant;
    let facts = state.facts();
    let date = local_date(at);
    let plans = state
        .plans()
        .map(|(id, p)| PlanRow {
            plan_id: id.clone(),
            code: p.code.to_string(),
            title: p.title.to_string(),
            issuer: p.issuer.to_string(),
            issued_on: p.issued_on,
        })
        .collect();
    let items = sorted_items(state);
    let assignments = items
        .iter()
        .flat_map(|(id, item)| {
            item.assignments_at(at).map(|a| AssignmentRow {
                item_id: (*id).clone(),
                role: a.role,
                assignee: a.assignee.clone(),
                valid_from: a.from,
                valid_until: a.until,
                units: ids(facts.units_of(&a.assignee, date)),
            })
        })
        .collect();
    PlanView {
        as_of: at,
        axis: as_of.axis,
        log: stats.into(),
        plans,
        items: items
            .iter()
            .map(|(id, item)| item_row(id, item, &facts, at))
            .collect(),
        assignments,
        tasks: state.tasks().map(|(id, t)| task_row(id, t, at)).collect(),
        reports: state.reports().map(|(id, r)| report_row(id, r)).collect(),
        compliance: compliance(state, &facts, at),
    }
}

/// One item at `as_of.instant`; `None` if it was not recorded (yet).
pub fn item_view(
    state: &PlanState,
    as_of: AsOf,
    stats: FoldStats,
    item_id: &ItemId,
) -> Option<ItemView> {
    let at = as_of.instant;
    let item = state.item(item_id)?;
    let facts = state.facts();
    let date = local_date(at);
    let valid: Vec<_> = item.assignments_at(at).collect();
    let assignments = item
        .assignments
        .iter()
        .map(|a| ItemAssignment {
            role: a.role,
            assignee: a.assignee.clone(),
            valid_from: a.from,
            valid_until: a.until,
            valid_at: valid.iter().any(|v| std::ptr::eq(*v, a)),
            units: ids(facts.units_of(&a.assignee, date)),
        })
        .collect();
    let report_lines = state
        .reports()
        .flat_map(|(id, r)| {
            r.lines
                .iter()
                .filter(|l| &l.item_id == item_id)
                .map(move |l| ReportLineRow {
                    report_id: id.clone(),
                    unit_id: r.unit_id.clone(),
                    quarter: r.quarter,
                    progress: l.progress.to_string(),
                    reported_status: l.status,
                    report_status: r.status,
                })
        })
        .collect();
    Some(ItemView {
        as_of: at,
        axis: as_of.axis,
        log: stats.into(),
        item: item_row(item_id, item, &facts, at),
        assignments,
        tasks: state
            .tasks()
            .filter(|(_, t)| &t.item_id == item_id)
            .map(|(id, t)| task_row(id, t, at))
            .collect(),
        report_lines,
    })
}

/// One unit at `as_of.instant`; `None` if it was not registered (yet).
pub fn unit_view(
    state: &PlanState,
    as_of: AsOf,
    stats: FoldStats,
    unit_id: &UnitId,
) -> Option<UnitView> {
    let at = as_of.instant;
    let unit = state.unit(unit_id)?;
    let facts = state.facts();
    let date = local_date(at);
    let groups = state
        .groups()
        .filter(|(_, g)| g.members_on(date).contains(unit_id))
        .map(|(id, _)| id.clone())
        .collect();
    let mut items = Vec::new();
    for (id, item) in sorted_items(state) {
        for role in [AssignmentRole::Lead, AssignmentRole::Coordinator] {
            if facts
                .responsible_units(item, Some(role), at)
                .contains(unit_id)
            {
                items.push(UnitItem {
                    role,
                    item: item_row(id, item, &facts, at),
                });
            }
        }
    }
    let tasks = state
        .tasks()
        .filter(|(_, t)| facts.holders(&t.unit_id, date).contains(unit_id))
        .map(|(id, t)| task_row(id, t, at))
        .collect();
    let reports = state
        .reports()
        .filter(|(_, r)| &r.unit_id == unit_id)
        .map(|(id, r)| report_row(id, r))
        .collect();
    let compliance = compliance(state, &facts, at)
        .into_iter()
        .filter(|c| &c.unit_id == unit_id)
        .collect();
    Some(UnitView {
        as_of: at,
        axis: as_of.axis,
        log: stats.into(),
        unit: UnitRow {
            unit_id: unit_id.clone(),
            name: unit.name.to_string(),
            kind: unit.kind,
            succession: unit.succession.clone(),
            succeeded: unit.succeeded_by(date),
            holders: ids(facts.holders(unit_id, date)),
        },
        groups,
        items,
        tasks,
        reports,
        compliance,
    })
}

/// Item statuses by item, as the SQL as-of queries answer them (for comparisons).
pub fn item_statuses(state: &PlanState) -> BTreeMap<ItemId, Lifecycle> {
    state
        .items()
        .map(|(id, item)| (id.clone(), item.status))
        .collect()
}

#[cfg(test)]
mod tests {
    use remediation_domain::item::ItemEvent;
    use remediation_domain::text::{Reason, Title};
    use remediation_domain::{AggregateRef, Event};

    use super::*;

    fn instant(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("instant")
            .with_timezone(&Utc)
    }

    /// As the read model's items_overview has it: completed work is judged at its completion, so
    /// an item finished on time stays "trong hạn" after its due date; reopened, it is judged now.
    #[test]
    fn completed_work_is_judged_at_its_completion() {
        let id = ItemId::new("kh-63-2025-01").expect("id");
        let target = AggregateRef::Item(id.clone());
        let mut state = PlanState::default();
        let status = |from, to, at: &str| {
            Event::Item(ItemEvent::StatusChanged {
                from,
                to,
                reason: Reason::new("Theo báo cáo").expect("reason"),
                evidence: None,
                at: instant(at),
            })
        };
        for event in [
            Event::Item(ItemEvent::Recorded {
                plan_id: PlanId::new("kh-63-2025").expect("plan"),
                plan_issued_on: NaiveDate::from_ymd_opt(2025, 4, 8).expect("date"),
                ordinal: 1,
                title: Title::new("Tăng trưởng nông nghiệp").expect("title"),
                sector: None,
                causes_objective: None,
                causes_subjective: None,
                remedies: None,
            }),
            Event::Item(ItemEvent::DeadlineSet {
                due_on: NaiveDate::from_ymd_opt(2025, 6, 30).expect("date"),
            }),
            status(
                Lifecycle::NotStarted,
                Lifecycle::Completed,
                "2025-06-20T09:00:00+07:00",
            ),
        ] {
            state.apply(&target, &event);
        }
        let stats = FoldStats {
            head_sequence: 3,
            events: 3,
            snapshot: None,
            folded_after_snapshot: 3,
        };
        let later = AsOf::recorded(instant("2025-09-01T00:00:00+07:00"));
        let view = item_view(&state, later, stats, &id).expect("the item");
        assert_eq!(view.item.deadline_qualifier, DeadlineQualifier::WithinTime);
        state.apply(
            &target,
            &status(
                Lifecycle::Completed,
                Lifecycle::Reopened,
                "2025-08-01T09:00:00+07:00",
            ),
        );
        let view = item_view(&state, later, stats, &id).expect("the item");
        assert_eq!(view.item.deadline_qualifier, DeadlineQualifier::Overdue);
    }
}

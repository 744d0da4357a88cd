//! Nội dung hạn chế, yếu kém — one shortcoming of the plan, with its lead (chủ trì) and
//! coordinating (phối hợp) units, deadline and lifecycle.

use chrono::{DateTime, NaiveDate, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::actor::Role;
use crate::calendar::local_date;
use crate::context::Context;
use crate::facts::{AggregateRef, Assignee};
use crate::lifecycle::Lifecycle;
use crate::rejection::{Rejection, Rule};
use crate::text::{ItemId, Name, PlanId, Prose, Reason, Title};

/// Vai trò được giao — chủ trì (lead) or phối hợp (coordinating).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum AssignmentRole {
    /// Đơn vị chủ trì — lead unit.
    Lead,
    /// Đơn vị phối hợp — coordinating unit.
    Coordinator,
}

/// Phân công — one assignment with its validity interval on the effective axis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    pub role: AssignmentRole,
    pub assignee: Assignee,
    pub from: DateTime<Utc>,
    pub until: Option<DateTime<Utc>>,
}

impl Assignment {
    fn valid_at(&self, at: DateTime<Utc>) -> bool {
        self.from <= at && self.until.is_none_or(|until| at < until)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub plan_id: PlanId,
    /// Copied from the plan when recorded: deadlines may not precede it.
    pub plan_issued_on: NaiveDate,
    pub ordinal: u16,
    pub title: Title,
    pub assignments: Vec<Assignment>,
    pub due_on: Option<NaiveDate>,
    pub status: Lifecycle,
    /// When the completion in force took effect: the deadline qualifier of completed work is
    /// judged then, not now.
    #[serde(default)]
    pub completed_at: Option<DateTime<Utc>>,
}

impl Item {
    pub fn assignments_at(&self, at: DateTime<Utc>) -> impl Iterator<Item = &Assignment> {
        self.assignments.iter().filter(move |a| a.valid_at(at))
    }

    fn open_assignment(&self, role: AssignmentRole, assignee: &Assignee) -> Option<&Assignment> {
        self.assignments
            .iter()
            .find(|a| a.role == role && &a.assignee == assignee && a.until.is_none())
    }

    pub fn references(&self) -> Vec<AggregateRef> {
        let mut refs: Vec<AggregateRef> = self
            .assignments
            .iter()
            .map(|a| a.assignee.reference())
            .collect();
        refs.sort();
        refs.dedup();
        refs.push(AggregateRef::Plan(self.plan_id.clone()));
        refs
    }
}

/// Ghi nhận nội dung hạn chế.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordItem {
    pub item_id: ItemId,
    pub plan_id: PlanId,
    #[schemars(range(min = 1, max = 999))]
    pub ordinal: u16,
    pub title: Title,
    /// Lĩnh vực.
    pub sector: Option<Name>,
    /// Nguyên nhân khách quan.
    pub causes_objective: Option<Prose>,
    /// Nguyên nhân chủ quan.
    pub causes_subjective: Option<Prose>,
    /// Giải pháp khắc phục.
    pub remedies: Option<Prose>,
}

/// Giao chủ trì / phối hợp.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Assign {
    pub item_id: ItemId,
    pub assignee: Assignee,
}

/// Thu hồi phân công.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeAssignment {
    pub item_id: ItemId,
    pub role: AssignmentRole,
    pub assignee: Assignee,
    pub reason: Reason,
}

/// Đặt hoặc điều chỉnh thời hạn hoàn thành; a change needs a reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetItemDeadline {
    pub item_id: ItemId,
    pub due_on: NaiveDate,
    pub reason: Option<Reason>,
}

/// Chuyển trạng thái nội dung.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeItemStatus {
    pub item_id: ItemId,
    pub to: Lifecycle,
    pub reason: Reason,
    /// Kết quả, minh chứng: required when reporting the item done.
    pub evidence: Option<Prose>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", tag = "event", content = "data")]
pub enum ItemEvent {
    Recorded {
        plan_id: PlanId,
        plan_issued_on: NaiveDate,
        ordinal: u16,
        title: Title,
        sector: Option<Name>,
        causes_objective: Option<Prose>,
        causes_subjective: Option<Prose>,
        remedies: Option<Prose>,
    },
    Assigned {
        role: AssignmentRole,
        assignee: Assignee,
        from: DateTime<Utc>,
    },
    AssignmentRevoked {
        role: AssignmentRole,
        assignee: Assignee,
        until: DateTime<Utc>,
        reason: Reason,
    },
    DeadlineSet {
        due_on: NaiveDate,
    },
    DeadlineChanged {
        from: NaiveDate,
        to: NaiveDate,
        reason: Reason,
    },
    StatusChanged {
        from: Lifecycle,
        to: Lifecycle,
        reason: Reason,
        evidence: Option<Prose>,
        at: DateTime<Utc>,
    },
}

pub type State = Option<Item>;

pub fn evolve(state: State, event: &ItemEvent) -> State {
    match (state, event) {
        (
            None,
            ItemEvent::Recorded {
                plan_id,
                plan_issued_on,
                ordinal,
                title,
                ..
            },
        ) => Some(Item {
            plan_id: plan_id.clone(),
            plan_issued_on: *plan_issued_on,
            ordinal: *ordinal,
            title: title.clone(),
            assignments: vec![],
            due_on: None,
            status: Lifecycle::NotStarted,
            completed_at: None,
        }),
        (
            Some(mut item),
            ItemEvent::Assigned {
                role,
                assignee,
                from,
            },
        ) => {
            item.assignments.push(Assignment {
                role: *role,
                assignee: assignee.clone(),
                from: *from,
                until: None,
            });
            Some(item)
        }
        (
            Some(mut item),
            ItemEvent::AssignmentRevoked {
                role,
                assignee,
                until,
                ..
            },
        ) => {
            if let Some(a) = item
                .assignments
                .iter_mut()
                .find(|a| a.role == *role && &a.assignee == assignee && a.until.is_none())
            {
                a.until = Some(*until);
            }
            Some(item)
        }
        (
            Some(item),
            ItemEvent::DeadlineSet { due_on } | ItemEvent::DeadlineChanged { to: due_on, .. },
        ) => Some(Item {
            due_on: Some(*due_on),
            ..item
        }),
        (Some(item), ItemEvent::StatusChanged { to, at, .. }) => Some(Item {
            status: *to,
            completed_at: (*to == Lifecycle::Completed).then_some(*at),
            ..item
        }),
        (state, _) => state,
    }
}

const MANAGE: &[Role] = &[Role::ProvinceOffice];

fn existing<'s>(state: &'s State, id: &ItemId) -> Result<&'s Item, Rejection> {
    state
        .as_ref()
        .ok_or_else(|| Rejection::not_found(format!("item {id} has not been recorded")))
}

pub fn record(state: &State, cmd: &RecordItem, ctx: &Context) -> Result<Vec<ItemEvent>, Rejection> {
    ctx.require_role(MANAGE, "record plan items")?;
    let plan = ctx.facts.plan(&cmd.plan_id)?;
    let recorded = ItemEvent::Recorded {
        plan_id: cmd.plan_id.clone(),
        plan_issued_on: plan.issued_on,
        ordinal: cmd.ordinal,
        title: cmd.title.clone(),
        sector: cmd.sector.clone(),
        causes_objective: cmd.causes_objective.clone(),
        causes_subjective: cmd.causes_subjective.clone(),
        remedies: cmd.remedies.clone(),
    };
    match state {
        None => Ok(vec![recorded]),
        Some(item)
            if item.plan_id == cmd.plan_id
                && item.ordinal == cmd.ordinal
                && item.title == cmd.title =>
        {
            Ok(vec![])
        }
        Some(_) => Err(Rejection::rule(
            Rule::AlreadyExists,
            format!(
                "item {} is already recorded with other content",
                cmd.item_id
            ),
        )),
    }
}

pub fn assign(
    state: &State,
    cmd: &Assign,
    role: AssignmentRole,
    ctx: &Context,
) -> Result<Vec<ItemEvent>, Rejection> {
    ctx.require_role(MANAGE, "assign units to items")?;
    let item = existing(state, &cmd.item_id)?;
    if item.open_assignment(role, &cmd.assignee).is_some() {
        return Ok(vec![]);
    }
    match &cmd.assignee {
        Assignee::Unit(unit_id) => {
            if ctx
                .facts
                .unit(unit_id)?
                .succeeded_by(local_date(ctx.effective_at))
            {
                return Err(Rejection::rule(
                    Rule::UnitSucceeded,
                    format!("unit {unit_id} has been succeeded and takes no new assignments"),
                ));
            }
        }
        Assignee::Group(group_id) => {
            ctx.facts.group(group_id)?;
        }
    }
    Ok(vec![ItemEvent::Assigned {
        role,
        assignee: cmd.assignee.clone(),
        from: ctx.effective_at,
    }])
}

pub fn revoke(
    state: &State,
    cmd: &RevokeAssignment,
    ctx: &Context,
) -> Result<Vec<ItemEvent>, Rejection> {
    ctx.require_role(MANAGE, "revoke assignments")?;
    let item = existing(state, &cmd.item_id)?;
    let Some(open) = item.open_assignment(cmd.role, &cmd.assignee) else {
        return Ok(vec![]);
    };
    // A backdated revocation may correct when an assignment ended, not make it end before it
    // began: the validity interval [from, until) would be empty and the history contradictory.
    if ctx.effective_at < open.from {
        return Err(Rejection::rule(
            Rule::RevokedBeforeAssigned,
            format!(
                "the assignment began at {}; it cannot be revoked effective {}",
                open.from.to_rfc3339(),
                ctx.effective_at.to_rfc3339()
            ),
        ));
    }
    Ok(vec![ItemEvent::AssignmentRevoked {
        role: cmd.role,
        assignee: cmd.assignee.clone(),
        until: ctx.effective_at,
        reason: cmd.reason.clone(),
    }])
}

pub fn set_deadline(
    state: &State,
    cmd: &SetItemDeadline,
    ctx: &Context,
) -> Result<Vec<ItemEvent>, Rejection> {
    ctx.require_role(MANAGE, "set item deadlines")?;
    let item = existing(state, &cmd.item_id)?;
    if cmd.due_on < item.plan_issued_on {
        return Err(Rejection::rule(
            Rule::DeadlineBeforePlanIssue,
            format!(
                "deadline {} precedes the plan's issue date {}",
                cmd.due_on, item.plan_issued_on
            ),
        ));
    }
    match item.due_on {
        Some(current) if current == cmd.due_on => Ok(vec![]),
        None => Ok(vec![ItemEvent::DeadlineSet { due_on: cmd.due_on }]),
        Some(current) => {
            let reason = cmd.reason.clone().ok_or_else(|| {
                Rejection::rule(
                    Rule::InvalidTransition,
                    "changing a deadline needs a reason",
                )
            })?;
            Ok(vec![ItemEvent::DeadlineChanged {
                from: current,
                to: cmd.due_on,
                reason,
            }])
        }
    }
}

pub fn change_status(
    state: &State,
    cmd: &ChangeItemStatus,
    ctx: &Context,
) -> Result<Vec<ItemEvent>, Rejection> {
    let item = existing(state, &cmd.item_id)?;
    let from = item.status;
    // Authorise before the no-change check: a repeat is no licence for an actor who may not
    // make the change at all.
    if from.needs_province_office(cmd.to) {
        ctx.require_role(MANAGE, "confirm or reopen a completion")?;
    } else if ctx.actor.role != Role::ProvinceOffice {
        ctx.require_role(&[Role::UnitStaff], "change item status")?;
        let leads = ctx
            .facts
            .responsible_units(item, Some(AssignmentRole::Lead), ctx.effective_at);
        if !ctx.actor.unit.as_ref().is_some_and(|u| leads.contains(u)) {
            return Err(Rejection::forbidden(format!(
                "only the province office or a lead unit of item {} may change its status",
                cmd.item_id
            )));
        }
    }
    if from == cmd.to {
        return Ok(vec![]);
    }
    check_transition(from, cmd.to, cmd.evidence.as_ref())?;
    Ok(vec![ItemEvent::StatusChanged {
        from,
        to: cmd.to,
        reason: cmd.reason.clone(),
        evidence: cmd.evidence.clone(),
        at: ctx.effective_at,
    }])
}

/// The lifecycle rules items and tasks share.
pub(crate) fn check_transition(
    from: Lifecycle,
    to: Lifecycle,
    evidence: Option<&Prose>,
) -> Result<(), Rejection> {
    if !from.can_become(to) {
        return Err(Rejection::rule(
            Rule::InvalidTransition,
            format!(
                "status cannot go from “{}” to “{}”",
                from.label_vi(),
                to.label_vi()
            ),
        ));
    }
    if to == Lifecycle::AwaitingConfirmation && evidence.is_none() {
        return Err(Rejection::rule(
            Rule::EvidenceRequired,
            "reporting work as done needs evidence (kết quả, minh chứng)",
        ));
    }
    Ok(())
}

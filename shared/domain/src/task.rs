//! Nhiệm vụ — one entry of a unit's detailed plan (kế hoạch chi tiết) for an item: what, who is
//! responsible, which leader is in charge, by when.

use chrono::{DateTime, NaiveDate, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::actor::Role;
use crate::calendar::local_date;
use crate::context::Context;
use crate::facts::AggregateRef;
use crate::item::check_transition;
use crate::lifecycle::Lifecycle;
use crate::rejection::{Rejection, Rule};
use crate::text::{ItemId, Name, Prose, Reason, TaskId, Title, UnitId};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub item_id: ItemId,
    pub unit_id: UnitId,
    pub plan_issued_on: NaiveDate,
    pub title: Title,
    pub person_responsible: Name,
    pub leader_in_charge: Name,
    pub due_on: NaiveDate,
    pub status: Lifecycle,
    /// When the completion in force took effect (see [`crate::item::Item::completed_at`]).
    #[serde(default)]
    pub completed_at: Option<DateTime<Utc>>,
    pub cancelled: bool,
}

impl Task {
    pub fn references(&self) -> Vec<AggregateRef> {
        vec![
            AggregateRef::Unit(self.unit_id.clone()),
            AggregateRef::Item(self.item_id.clone()),
        ]
    }
}

/// Lập nhiệm vụ trong kế hoạch chi tiết.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanTask {
    pub task_id: TaskId,
    pub item_id: ItemId,
    pub unit_id: UnitId,
    pub title: Title,
    /// Cá nhân chịu trách nhiệm.
    pub person_responsible: Name,
    /// Lãnh đạo trực tiếp chỉ đạo.
    pub leader_in_charge: Name,
    /// Thời hạn hoàn thành.
    pub due_on: NaiveDate,
}

/// Điều chỉnh thời hạn nhiệm vụ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RescheduleTask {
    pub task_id: TaskId,
    pub due_on: NaiveDate,
    pub reason: Reason,
}

/// Chuyển trạng thái nhiệm vụ; "chờ xác nhận" needs evidence, "đã hoàn thành" is the province
/// office's confirmation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeTaskStatus {
    pub task_id: TaskId,
    pub to: Lifecycle,
    pub reason: Reason,
    pub evidence: Option<Prose>,
}

/// Hủy nhiệm vụ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelTask {
    pub task_id: TaskId,
    pub reason: Reason,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", tag = "event", content = "data")]
pub enum TaskEvent {
    Planned {
        item_id: ItemId,
        unit_id: UnitId,
        plan_issued_on: NaiveDate,
        title: Title,
        person_responsible: Name,
        leader_in_charge: Name,
        due_on: NaiveDate,
    },
    Rescheduled {
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
    Cancelled {
        reason: Reason,
    },
}

pub type State = Option<Task>;

pub fn evolve(state: State, event: &TaskEvent) -> State {
    match (state, event) {
        (
            None,
            TaskEvent::Planned {
                item_id,
                unit_id,
                plan_issued_on,
                title,
                person_responsible,
                leader_in_charge,
                due_on,
            },
        ) => Some(Task {
            item_id: item_id.clone(),
            unit_id: unit_id.clone(),
            plan_issued_on: *plan_issued_on,
            title: title.clone(),
            person_responsible: person_responsible.clone(),
            leader_in_charge: leader_in_charge.clone(),
            due_on: *due_on,
            status: Lifecycle::NotStarted,
            completed_at: None,
            cancelled: false,
        }),
        (Some(task), TaskEvent::Rescheduled { to, .. }) => Some(Task {
            due_on: *to,
            ..task
        }),
        (Some(task), TaskEvent::StatusChanged { to, at, .. }) => Some(Task {
            status: *to,
            completed_at: (*to == Lifecycle::Completed).then_some(*at),
            ..task
        }),
        (Some(task), TaskEvent::Cancelled { .. }) => Some(Task {
            cancelled: true,
            ..task
        }),
        (state, _) => state,
    }
}

fn planned<'s>(state: &'s State, id: &TaskId) -> Result<&'s Task, Rejection> {
    state
        .as_ref()
        .ok_or_else(|| Rejection::not_found(format!("task {id} has not been planned")))
}

/// Checked only once the actor is authorised, so that whoever may not act on the task gets
/// Forbidden rather than a business answer about it.
fn ensure_open(task: &Task, id: &TaskId) -> Result<(), Rejection> {
    if task.cancelled {
        return Err(Rejection::rule(
            Rule::TaskClosed,
            format!("task {id} was cancelled"),
        ));
    }
    Ok(())
}

fn check_due(due_on: NaiveDate, plan_issued_on: NaiveDate) -> Result<(), Rejection> {
    if due_on < plan_issued_on {
        return Err(Rejection::rule(
            Rule::DeadlineBeforePlanIssue,
            format!("due date {due_on} precedes the plan's issue date {plan_issued_on}"),
        ));
    }
    Ok(())
}

pub fn plan(state: &State, cmd: &PlanTask, ctx: &Context) -> Result<Vec<TaskEvent>, Rejection> {
    ctx.require_acts_for(&cmd.unit_id, "plan tasks")?;
    let item = ctx.facts.item(&cmd.item_id)?;
    let planned = TaskEvent::Planned {
        item_id: cmd.item_id.clone(),
        unit_id: cmd.unit_id.clone(),
        plan_issued_on: item.plan_issued_on,
        title: cmd.title.clone(),
        person_responsible: cmd.person_responsible.clone(),
        leader_in_charge: cmd.leader_in_charge.clone(),
        due_on: cmd.due_on,
    };
    if let Some(existing) = state {
        return if evolve(None, &planned).as_ref() == Some(existing) {
            Ok(vec![])
        } else {
            Err(Rejection::rule(
                Rule::AlreadyExists,
                format!("task {} already exists", cmd.task_id),
            ))
        };
    }
    if ctx
        .facts
        .unit(&cmd.unit_id)?
        .succeeded_by(local_date(ctx.effective_at))
    {
        return Err(Rejection::rule(
            Rule::UnitSucceeded,
            format!(
                "unit {} has been succeeded; its successors plan the work",
                cmd.unit_id
            ),
        ));
    }
    if !ctx
        .facts
        .responsible_units(item, None, ctx.effective_at)
        .contains(&cmd.unit_id)
    {
        return Err(Rejection::rule(
            Rule::NotAssigned,
            format!(
                "unit {} is not assigned to item {}",
                cmd.unit_id, cmd.item_id
            ),
        ));
    }
    check_due(cmd.due_on, item.plan_issued_on)?;
    Ok(vec![planned])
}

pub fn reschedule(
    state: &State,
    cmd: &RescheduleTask,
    ctx: &Context,
) -> Result<Vec<TaskEvent>, Rejection> {
    let task = planned(state, &cmd.task_id)?;
    ctx.require_acts_for(&task.unit_id, "reschedule tasks")?;
    ensure_open(task, &cmd.task_id)?;
    if task.due_on == cmd.due_on {
        return Ok(vec![]);
    }
    check_due(cmd.due_on, task.plan_issued_on)?;
    Ok(vec![TaskEvent::Rescheduled {
        from: task.due_on,
        to: cmd.due_on,
        reason: cmd.reason.clone(),
    }])
}

pub fn change_status(
    state: &State,
    cmd: &ChangeTaskStatus,
    ctx: &Context,
) -> Result<Vec<TaskEvent>, Rejection> {
    let task = planned(state, &cmd.task_id)?;
    // Authorise before the no-change check: a repeat is no licence for an actor who may not
    // make the change at all.
    if task.status.needs_province_office(cmd.to) {
        ctx.require_role(&[Role::ProvinceOffice], "confirm or reopen a completion")?;
    } else {
        ctx.require_acts_for(&task.unit_id, "change task status")?;
    }
    ensure_open(task, &cmd.task_id)?;
    if task.status == cmd.to {
        return Ok(vec![]);
    }
    check_transition(task.status, cmd.to, cmd.evidence.as_ref())?;
    Ok(vec![TaskEvent::StatusChanged {
        from: task.status,
        to: cmd.to,
        reason: cmd.reason.clone(),
        evidence: cmd.evidence.clone(),
        at: ctx.effective_at,
    }])
}

pub fn cancel(state: &State, cmd: &CancelTask, ctx: &Context) -> Result<Vec<TaskEvent>, Rejection> {
    let Some(task) = state else {
        return Err(Rejection::not_found(format!(
            "task {} has not been planned",
            cmd.task_id
        )));
    };
    ctx.require_acts_for(&task.unit_id, "cancel tasks")?;
    if task.cancelled {
        return Ok(vec![]);
    }
    if task.status == Lifecycle::Completed {
        return Err(Rejection::rule(
            Rule::TaskClosed,
            format!("task {} is completed; reopen it first", cmd.task_id),
        ));
    }
    Ok(vec![TaskEvent::Cancelled {
        reason: cmd.reason.clone(),
    }])
}

//! Tasks (nhiệm vụ).

use super::*;
use crate::lifecycle::task_in;

#[test]
fn plan_task_for_an_item_the_unit_leads() {
    Spec::given(task_ref(TASK), &[])
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(plan_task(TASK, ITEM_1, XAY_DUNG, TASK_DUE))
        .then(&task_history());
}

#[test]
fn a_member_of_a_coordinating_group_plans_a_task() {
    Spec::given(task_ref("ns-01"), &[])
        .with_facts(world())
        .as_actor(staff(NGA_SON))
        .when(plan_task("ns-01", ITEM_1, NGA_SON, TASK_DUE))
        .then(&[task_planned(ITEM_1, NGA_SON, TASK_DUE)]);
}

#[test]
fn planning_the_same_task_again_changes_nothing() {
    Spec::given(task_ref(TASK), &task_history())
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(plan_task(TASK, ITEM_1, XAY_DUNG, TASK_DUE))
        .then_nothing();
}

#[test]
fn planning_other_content_under_an_existing_task_id_is_rejected() {
    Spec::given(task_ref(TASK), &task_history())
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(plan_task(TASK, ITEM_1, XAY_DUNG, "2025-12-31"))
        .then_rejected(Rule::AlreadyExists);
}

#[test]
fn a_unit_not_assigned_to_an_item_may_not_plan_a_task_for_it() {
    Spec::given(task_ref("nv-01"), &[])
        .with_facts(world())
        .as_actor(staff(NOI_VU))
        .when(plan_task("nv-01", ITEM_1, NOI_VU, TASK_DUE))
        .then_rejected(Rule::NotAssigned);
    Spec::given(task_ref("xd-02"), &[])
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(plan_task("xd-02", ITEM_2, XAY_DUNG, TASK_DUE))
        .then_rejected(Rule::NotAssigned);
}

#[test]
fn group_membership_counts_only_while_it_is_valid() {
    // Nga Sơn left the districts group on 2025-06-01; Quảng Xương joins on 2025-08-01.
    let mut districts = districts_history();
    districts.push(member_removed(NGA_SON, "2025-06-01", LEAVE_REASON));
    districts.push(member_added(QUANG_XUONG, "2025-08-01"));
    let facts = || world().with(group_ref(DISTRICTS), &districts);

    Spec::given(task_ref("ns-01"), &[])
        .with_facts(facts())
        .as_actor(staff(NGA_SON))
        .at("2025-05-31T16:00:00+07:00")
        .when(plan_task("ns-01", ITEM_1, NGA_SON, TASK_DUE))
        .events();
    Spec::given(task_ref("ns-01"), &[])
        .with_facts(facts())
        .as_actor(staff(NGA_SON))
        .at("2025-06-01T08:00:00+07:00")
        .when(plan_task("ns-01", ITEM_1, NGA_SON, TASK_DUE))
        .then_rejected(Rule::NotAssigned);

    Spec::given(task_ref("qx-01"), &[])
        .with_facts(facts())
        .as_actor(staff(QUANG_XUONG))
        .at("2025-07-31T23:59:59+07:00")
        .when(plan_task("qx-01", ITEM_1, QUANG_XUONG, TASK_DUE))
        .then_rejected(Rule::NotAssigned);
    Spec::given(task_ref("qx-01"), &[])
        .with_facts(facts())
        .as_actor(staff(QUANG_XUONG))
        .at("2025-08-01T00:00:00+07:00")
        .when(plan_task("qx-01", ITEM_1, QUANG_XUONG, TASK_DUE))
        .events();
    Spec::given(report_ref(PLAN, QUANG_XUONG, q3()), &[])
        .with_facts(facts())
        .as_actor(staff(QUANG_XUONG))
        .at("2025-07-31T10:00:00+07:00")
        .when(submit(
            PLAN,
            QUANG_XUONG,
            q3(),
            vec![line(ITEM_1, "Đã phối hợp rà soát")],
        ))
        .then_rejected(Rule::NotAssigned);
    Spec::given(report_ref(PLAN, QUANG_XUONG, q3()), &[])
        .with_facts(facts())
        .as_actor(staff(QUANG_XUONG))
        .at("2025-08-05T10:00:00+07:00")
        .when(submit(
            PLAN,
            QUANG_XUONG,
            q3(),
            vec![line(ITEM_1, "Đã phối hợp rà soát")],
        ))
        .events();
}

#[test]
fn unit_staff_plan_tasks_only_for_their_own_unit() {
    Spec::given(task_ref(TASK), &[])
        .with_facts(world())
        .as_actor(staff(NGA_SON))
        .when(plan_task(TASK, ITEM_1, XAY_DUNG, TASK_DUE))
        .then_forbidden();
    // The province office plans for any unit.
    Spec::given(task_ref(TASK), &[])
        .with_facts(world())
        .when(plan_task(TASK, ITEM_1, XAY_DUNG, TASK_DUE))
        .then(&task_history());
}

#[test]
fn planning_a_task_for_an_unrecorded_item_is_not_found() {
    Spec::given(task_ref(TASK), &[])
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(plan_task(TASK, "kh-63-2025-99", XAY_DUNG, TASK_DUE))
        .then_not_found();
}

#[test]
fn planning_a_task_for_an_unregistered_unit_is_not_found() {
    Spec::given(task_ref(TASK), &[])
        .with_facts(world())
        .when(plan_task(TASK, ITEM_1, "so-khong-co", TASK_DUE))
        .then_not_found();
}

#[test]
fn a_task_due_date_cannot_precede_the_plan_issue_date() {
    Spec::given(task_ref(TASK), &[])
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(plan_task(TASK, ITEM_1, XAY_DUNG, "2025-03-09"))
        .then_rejected(Rule::DeadlineBeforePlanIssue);
    Spec::given(task_ref(TASK), &task_history())
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(reschedule(TASK, "2025-03-09"))
        .then_rejected(Rule::DeadlineBeforePlanIssue);
    Spec::given(task_ref(TASK), &task_history())
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(reschedule(TASK, PLAN_ISSUED_ON))
        .events();
}

#[test]
fn reschedule_task_records_old_and_new_date_with_the_reason() {
    Spec::given(task_ref(TASK), &task_history())
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(reschedule(TASK, "2025-10-31"))
        .then(&[Event::Task(TaskEvent::Rescheduled {
            from: day(TASK_DUE),
            to: day("2025-10-31"),
            reason: reason(RESCHEDULE_REASON),
        })]);
}

#[test]
fn rescheduling_to_the_same_date_changes_nothing() {
    Spec::given(task_ref(TASK), &task_history())
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(reschedule(TASK, TASK_DUE))
        .then_nothing();
}

#[test]
fn change_task_status_records_the_reason() {
    Spec::given(task_ref(TASK), &task_history())
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(change_task_status(TASK, Lifecycle::InProgress, None))
        .then(&[Event::Task(TaskEvent::StatusChanged {
            from: Lifecycle::NotStarted,
            to: Lifecycle::InProgress,
            reason: reason(STATUS_REASON),
            evidence: None,
            at: instant(NOW),
        })]);
}

#[test]
fn changing_a_task_to_its_current_status_changes_nothing() {
    for status in Lifecycle::ALL {
        Spec::given(task_ref(TASK), &task_in(status))
            .with_facts(world())
            .when(change_task_status(TASK, status, Some(EVIDENCE)))
            .then_nothing();
    }
}

#[test]
fn cancel_task_carries_the_reason() {
    Spec::given(task_ref(TASK), &task_history())
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(cancel_task(TASK))
        .then(&[Event::Task(TaskEvent::Cancelled {
            reason: reason(CANCEL_REASON),
        })]);
}

#[test]
fn cancelling_a_cancelled_task_changes_nothing() {
    let mut cancelled = task_history();
    cancelled.push(task_cancelled());
    Spec::given(task_ref(TASK), &cancelled)
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(cancel_task(TASK))
        .then_nothing();
}

#[test]
fn a_completed_task_cannot_be_cancelled() {
    Spec::given(task_ref(TASK), &task_in(Lifecycle::Completed))
        .with_facts(world())
        .when(cancel_task(TASK))
        .then_rejected(Rule::TaskClosed);
}

#[test]
fn a_cancelled_task_can_be_neither_rescheduled_nor_change_status() {
    let mut cancelled = task_history();
    cancelled.push(task_cancelled());
    Spec::given(task_ref(TASK), &cancelled)
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(reschedule(TASK, "2025-10-31"))
        .then_rejected(Rule::TaskClosed);
    Spec::given(task_ref(TASK), &cancelled)
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(change_task_status(TASK, Lifecycle::InProgress, None))
        .then_rejected(Rule::TaskClosed);
}

#[test]
fn commands_on_an_unplanned_task_are_not_found() {
    for command in [
        reschedule(TASK, "2025-10-31"),
        change_task_status(TASK, Lifecycle::InProgress, None),
        cancel_task(TASK),
    ] {
        Spec::given(task_ref(TASK), &[])
            .with_facts(world())
            .as_actor(staff(XAY_DUNG))
            .when(command)
            .then_not_found();
    }
}

#[test]
fn unit_staff_act_only_on_their_own_units_tasks() {
    let mut cancelled = task_history();
    cancelled.push(task_cancelled());
    for given in [task_history(), task_in(Lifecycle::InProgress), cancelled] {
        for command in [
            reschedule(TASK, "2025-10-31"),
            reschedule(TASK, TASK_DUE),
            change_task_status(TASK, Lifecycle::InProgress, None),
            change_task_status(TASK, Lifecycle::Suspended, None),
            cancel_task(TASK),
        ] {
            for outsider in [staff(NGA_SON), staff(NOI_VU), actor(Role::UnitStaff, None)] {
                Spec::given(task_ref(TASK), &given)
                    .with_facts(world())
                    .as_actor(outsider)
                    .when(command.clone())
                    .then_forbidden();
            }
        }
    }
}

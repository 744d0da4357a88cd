//! Succession: open assignments pass to the successors from the effective date.

use super::*;

#[test]
fn a_succeeded_unit_plans_no_new_tasks_and_sends_no_reports() {
    // Neither the province office nor the successor may plan new work in the predecessor's name.
    for actor in [province_office(), staff(THANH_HOA)] {
        Spec::given(task_ref("ds-02"), &[])
            .with_facts(world())
            .as_actor(actor.clone())
            .when(plan_task("ds-02", ITEM_2, DONG_SON, TASK_DUE))
            .then_rejected(Rule::UnitSucceeded);
        Spec::given(report_ref(PLAN, DONG_SON, q3()), &[])
            .with_facts(world())
            .as_actor(actor)
            .when(submit(
                PLAN,
                DONG_SON,
                q3(),
                vec![line(ITEM_2, "Đã bàn giao mặt bằng")],
            ))
            .then_rejected(Rule::UnitSucceeded);
    }
}

#[test]
fn before_the_succession_date_the_successor_may_not_act_for_the_predecessor() {
    let at = "2025-06-30T23:59:59+07:00";
    Spec::given(task_ref("tp-01"), &[])
        .with_facts(world())
        .as_actor(staff(THANH_HOA))
        .at(at)
        .when(plan_task("tp-01", ITEM_2, THANH_HOA, TASK_DUE))
        .then_rejected(Rule::NotAssigned);
    Spec::given(report_ref(PLAN, THANH_HOA, quarter(2025, 2)), &[])
        .with_facts(world())
        .as_actor(staff(THANH_HOA))
        .at(at)
        .when(submit(
            PLAN,
            THANH_HOA,
            quarter(2025, 2),
            vec![line(ITEM_2, "Đã bàn giao mặt bằng")],
        ))
        .then_rejected(Rule::NotAssigned);
    for command in [
        reschedule(TASK_DS, "2025-10-31"),
        change_task_status(TASK_DS, Lifecycle::InProgress, None),
        cancel_task(TASK_DS),
    ] {
        Spec::given(task_ref(TASK_DS), &task_ds_history())
            .with_facts(world())
            .as_actor(staff(THANH_HOA))
            .at(at)
            .when(command)
            .then_forbidden();
    }
    Spec::given(item_ref(ITEM_2), &item_2_history())
        .with_facts(world())
        .as_actor(staff(THANH_HOA))
        .at(at)
        .when(change_item_status(ITEM_2, Lifecycle::InProgress, None))
        .then_forbidden();
    // …while the predecessor itself still may.
    Spec::given(task_ref("ds-02"), &[])
        .with_facts(world())
        .as_actor(staff(DONG_SON))
        .at(at)
        .when(plan_task("ds-02", ITEM_2, DONG_SON, TASK_DUE))
        .events();
}

#[test]
fn from_the_succession_date_the_successor_takes_over_open_assignments() {
    let at = "2025-07-01T00:00:00+07:00";
    Spec::given(task_ref("tp-01"), &[])
        .with_facts(world())
        .as_actor(staff(THANH_HOA))
        .at(at)
        .when(plan_task("tp-01", ITEM_2, THANH_HOA, TASK_DUE))
        .then(&[task_planned(ITEM_2, THANH_HOA, TASK_DUE)]);
    Spec::given(report_ref(PLAN, THANH_HOA, q3()), &[])
        .with_facts(world())
        .as_actor(staff(THANH_HOA))
        .at(at)
        .when(submit(
            PLAN,
            THANH_HOA,
            q3(),
            vec![line(ITEM_2, "Đã bàn giao mặt bằng")],
        ))
        .events();
    // The predecessor's tasks are the successor's to carry on.
    Spec::given(task_ref(TASK_DS), &task_ds_history())
        .with_facts(world())
        .as_actor(staff(THANH_HOA))
        .at(at)
        .when(reschedule(TASK_DS, "2025-10-31"))
        .events();
    Spec::given(task_ref(TASK_DS), &task_ds_history())
        .with_facts(world())
        .as_actor(staff(THANH_HOA))
        .at(at)
        .when(change_task_status(TASK_DS, Lifecycle::InProgress, None))
        .events();
    Spec::given(task_ref(TASK_DS), &task_ds_history())
        .with_facts(world())
        .as_actor(staff(THANH_HOA))
        .at(at)
        .when(cancel_task(TASK_DS))
        .events();
    // And the successor leads the item the predecessor led.
    Spec::given(item_ref(ITEM_2), &item_2_history())
        .with_facts(world())
        .as_actor(staff(THANH_HOA))
        .at(at)
        .when(change_item_status(ITEM_2, Lifecycle::InProgress, None))
        .events();
}

#[test]
fn a_succession_passes_group_membership_to_the_successor() {
    // Đông Sơn coordinates item 1 through the districts group; from 2025-07-01 Thanh Hóa does.
    Spec::given(report_ref(PLAN, THANH_HOA, q3()), &[])
        .with_facts(world())
        .as_actor(staff(THANH_HOA))
        .when(submit(
            PLAN,
            THANH_HOA,
            q3(),
            vec![line(ITEM_1, "Đã phối hợp rà soát")],
        ))
        .events();
    Spec::given(report_ref(PLAN, THANH_HOA, quarter(2025, 2)), &[])
        .with_facts(world())
        .as_actor(staff(THANH_HOA))
        .at(BEFORE_SUCCESSION)
        .when(submit(
            PLAN,
            THANH_HOA,
            quarter(2025, 2),
            vec![line(ITEM_1, "Đã phối hợp rà soát")],
        ))
        .then_rejected(Rule::NotAssigned);
}

#[test]
fn history_keeps_the_predecessor_as_the_assignee() {
    let facts: Facts = world().into();
    let item = facts.item(&item_id(ITEM_2)).expect("item 2 is known");
    // The record is not rewritten: the item's assignment still names Đông Sơn…
    assert_eq!(item.assignments.len(), 1);
    assert_eq!(item.assignments[0].assignee, unit_assignee(DONG_SON));
    assert_eq!(item.assignments[0].until, None);
    // …who held it until the succession, after which Thanh Hóa holds it.
    let lead = Some(AssignmentRole::Lead);
    assert_eq!(
        facts
            .responsible_units(item, lead, instant("2025-06-30T23:59:59+07:00"))
            .into_iter()
            .collect::<Vec<_>>(),
        [unit_id(DONG_SON)]
    );
    assert_eq!(
        facts
            .responsible_units(item, lead, instant("2025-07-01T00:00:00+07:00"))
            .into_iter()
            .collect::<Vec<_>>(),
        [unit_id(THANH_HOA)]
    );
    // The successor's work does not touch the item's own history.
    let planned = Spec::given(task_ref("tp-01"), &[])
        .with_facts(world())
        .as_actor(staff(THANH_HOA))
        .when(plan_task("tp-01", ITEM_2, THANH_HOA, TASK_DUE))
        .events();
    assert!(planned.iter().all(|e| e.kind() == "task"));
    // A task planned by the predecessor keeps naming it.
    let AggregateState::Task(Some(task)) = fold(&task_ref(TASK_DS), &task_ds_history()) else {
        panic!("the task exists");
    };
    assert_eq!(task.unit_id, unit_id(DONG_SON));
}

#[test]
fn from_the_succession_date_the_predecessor_no_longer_acts_on_its_tasks() {
    let at = "2025-07-01T00:00:00+07:00";
    for command in [
        reschedule(TASK_DS, "2025-10-31"),
        change_task_status(TASK_DS, Lifecycle::InProgress, None),
        cancel_task(TASK_DS),
    ] {
        Spec::given(task_ref(TASK_DS), &task_ds_history())
            .with_facts(world())
            .as_actor(staff(DONG_SON))
            .at(at)
            .when(command.clone())
            .then_forbidden();
        // …and its successor does.
        Spec::given(task_ref(TASK_DS), &task_ds_history())
            .with_facts(world())
            .as_actor(staff(THANH_HOA))
            .at(at)
            .when(command)
            .events();
    }
}

//! Items and tasks: status and lifecycle.

use super::*;

/// A route of allowed transitions from `not_started` to `to`.
fn route_to(to: Lifecycle) -> Vec<(Lifecycle, Lifecycle)> {
    use Lifecycle::*;
    let route = match to {
        NotStarted => vec![],
        InProgress => vec![(NotStarted, InProgress)],
        Suspended => vec![(NotStarted, Suspended)],
        AwaitingConfirmation => vec![(NotStarted, InProgress), (InProgress, AwaitingConfirmation)],
        Completed => vec![
            (NotStarted, InProgress),
            (InProgress, AwaitingConfirmation),
            (AwaitingConfirmation, Completed),
        ],
        Reopened => vec![
            (NotStarted, InProgress),
            (InProgress, AwaitingConfirmation),
            (AwaitingConfirmation, Reopened),
        ],
    };
    assert!(route.iter().all(|(from, to)| from.can_become(*to)));
    route
}

fn item_1_in(status: Lifecycle) -> Vec<Event> {
    let mut history = item_1_history();
    history.extend(
        route_to(status)
            .into_iter()
            .map(|(from, to)| item_status_changed(from, to, "2025-07-01T08:00:00+07:00")),
    );
    history
}

pub(crate) fn task_in(status: Lifecycle) -> Vec<Event> {
    let mut history = task_history();
    history.extend(
        route_to(status)
            .into_iter()
            .map(|(from, to)| task_status_changed(from, to, "2025-07-01T08:00:00+07:00")),
    );
    history
}

#[test]
fn lead_unit_staff_change_the_item_status_with_a_reason() {
    Spec::given(item_ref(ITEM_1), &item_1_history())
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(change_item_status(ITEM_1, Lifecycle::InProgress, None))
        .then(&[Event::Item(ItemEvent::StatusChanged {
            from: Lifecycle::NotStarted,
            to: Lifecycle::InProgress,
            reason: reason(STATUS_REASON),
            evidence: None,
            at: instant(NOW),
        })]);
}

#[test]
fn coordinating_and_unassigned_units_may_not_change_the_item_status() {
    for unit in [NGA_SON, THANH_HOA, NOI_VU] {
        Spec::given(item_ref(ITEM_1), &item_1_history())
            .with_facts(world())
            .as_actor(staff(unit))
            .when(change_item_status(ITEM_1, Lifecycle::InProgress, None))
            .then_forbidden();
    }
    // Staff without a unit neither.
    Spec::given(item_ref(ITEM_1), &item_1_history())
        .with_facts(world())
        .as_actor(actor(Role::UnitStaff, None))
        .when(change_item_status(ITEM_1, Lifecycle::InProgress, None))
        .then_forbidden();
}

#[test]
fn the_department_of_finance_may_not_change_an_item_or_task_status() {
    Spec::given(item_ref(ITEM_1), &item_1_history())
        .with_facts(world())
        .as_actor(finance())
        .when(change_item_status(ITEM_1, Lifecycle::InProgress, None))
        .then_forbidden();
    Spec::given(task_ref(TASK), &task_history())
        .with_facts(world())
        .as_actor(finance())
        .when(change_task_status(TASK, Lifecycle::InProgress, None))
        .then_forbidden();
}

#[test]
fn changing_an_item_to_its_current_status_changes_nothing() {
    for status in Lifecycle::ALL {
        Spec::given(item_ref(ITEM_1), &item_1_in(status))
            .with_facts(world())
            .when(change_item_status(ITEM_1, status, Some(EVIDENCE)))
            .then_nothing();
    }
    Spec::given(item_ref(ITEM_1), &item_1_in(Lifecycle::InProgress))
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(change_item_status(ITEM_1, Lifecycle::InProgress, None))
        .then_nothing();
}

#[test]
fn an_unassigned_unit_repeating_the_current_item_status_is_still_forbidden() {
    Spec::given(item_ref(ITEM_1), &item_1_in(Lifecycle::InProgress))
        .with_facts(world())
        .as_actor(staff(NOI_VU))
        .when(change_item_status(ITEM_1, Lifecycle::InProgress, None))
        .then_forbidden();
}

#[test]
fn changing_the_status_of_an_unrecorded_item_is_not_found() {
    Spec::given(item_ref("kh-63-2025-99"), &[])
        .with_facts(world())
        .when(change_item_status(
            "kh-63-2025-99",
            Lifecycle::InProgress,
            None,
        ))
        .then_not_found();
}

#[test]
fn every_transition_the_lifecycle_allows_succeeds_and_every_other_is_rejected_for_items() {
    let mut allowed = 0;
    for from in Lifecycle::ALL {
        for to in Lifecycle::ALL.into_iter().filter(|to| *to != from) {
            let outcome = Spec::given(item_ref(ITEM_1), &item_1_in(from))
                .with_facts(world())
                .when(change_item_status(ITEM_1, to, Some(EVIDENCE)));
            if from.can_become(to) {
                allowed += 1;
                outcome.then(&[Event::Item(ItemEvent::StatusChanged {
                    from,
                    to,
                    reason: reason(STATUS_REASON),
                    evidence: Some(prose(EVIDENCE)),
                    at: instant(NOW),
                })]);
            } else {
                outcome.then_rejected(Rule::InvalidTransition);
            }
        }
    }
    assert_eq!(allowed, 10);
}

#[test]
fn every_transition_the_lifecycle_allows_succeeds_and_every_other_is_rejected_for_tasks() {
    let mut allowed = 0;
    for from in Lifecycle::ALL {
        for to in Lifecycle::ALL.into_iter().filter(|to| *to != from) {
            let outcome = Spec::given(task_ref(TASK), &task_in(from))
                .with_facts(world())
                .when(change_task_status(TASK, to, Some(EVIDENCE)));
            if from.can_become(to) {
                allowed += 1;
                outcome.then(&[Event::Task(TaskEvent::StatusChanged {
                    from,
                    to,
                    reason: reason(STATUS_REASON),
                    evidence: Some(prose(EVIDENCE)),
                    at: instant(NOW),
                })]);
            } else {
                outcome.then_rejected(Rule::InvalidTransition);
            }
        }
    }
    assert_eq!(allowed, 10);
}

#[test]
fn a_lead_unit_makes_every_allowed_transition_but_confirming_or_reopening_a_completion() {
    for from in Lifecycle::ALL {
        for to in Lifecycle::ALL.into_iter().filter(|to| from.can_become(*to)) {
            let item = Spec::given(item_ref(ITEM_1), &item_1_in(from))
                .with_facts(world())
                .as_actor(staff(XAY_DUNG))
                .when(change_item_status(ITEM_1, to, Some(EVIDENCE)));
            let task = Spec::given(task_ref(TASK), &task_in(from))
                .with_facts(world())
                .as_actor(staff(XAY_DUNG))
                .when(change_task_status(TASK, to, Some(EVIDENCE)));
            if to == Lifecycle::Completed || from == Lifecycle::Completed {
                item.then_forbidden();
                task.then_forbidden();
            } else {
                item.events();
                task.events();
            }
        }
    }
}

#[test]
fn not_started_to_completed_is_an_invalid_transition() {
    Spec::given(item_ref(ITEM_1), &item_1_history())
        .with_facts(world())
        .when(change_item_status(
            ITEM_1,
            Lifecycle::Completed,
            Some(EVIDENCE),
        ))
        .then_rejected(Rule::InvalidTransition);
    Spec::given(task_ref(TASK), &task_history())
        .with_facts(world())
        .when(change_task_status(
            TASK,
            Lifecycle::Completed,
            Some(EVIDENCE),
        ))
        .then_rejected(Rule::InvalidTransition);
}

#[test]
fn awaiting_confirmation_without_evidence_is_rejected() {
    for from in [Lifecycle::InProgress, Lifecycle::Reopened] {
        Spec::given(item_ref(ITEM_1), &item_1_in(from))
            .with_facts(world())
            .as_actor(staff(XAY_DUNG))
            .when(change_item_status(
                ITEM_1,
                Lifecycle::AwaitingConfirmation,
                None,
            ))
            .then_rejected(Rule::EvidenceRequired);
        Spec::given(task_ref(TASK), &task_in(from))
            .with_facts(world())
            .as_actor(staff(XAY_DUNG))
            .when(change_task_status(
                TASK,
                Lifecycle::AwaitingConfirmation,
                None,
            ))
            .then_rejected(Rule::EvidenceRequired);
    }
}

#[test]
fn only_the_province_office_confirms_a_completion() {
    let awaiting_item = item_1_in(Lifecycle::AwaitingConfirmation);
    let awaiting_task = task_in(Lifecycle::AwaitingConfirmation);
    for actor in [staff(XAY_DUNG), finance()] {
        Spec::given(item_ref(ITEM_1), &awaiting_item)
            .with_facts(world())
            .as_actor(actor.clone())
            .when(change_item_status(ITEM_1, Lifecycle::Completed, None))
            .then_forbidden();
        Spec::given(task_ref(TASK), &awaiting_task)
            .with_facts(world())
            .as_actor(actor)
            .when(change_task_status(TASK, Lifecycle::Completed, None))
            .then_forbidden();
    }
    Spec::given(item_ref(ITEM_1), &awaiting_item)
        .with_facts(world())
        .when(change_item_status(ITEM_1, Lifecycle::Completed, None))
        .events();
    Spec::given(task_ref(TASK), &awaiting_task)
        .with_facts(world())
        .when(change_task_status(TASK, Lifecycle::Completed, None))
        .events();
}

#[test]
fn only_the_province_office_reopens_a_completed_item_or_task() {
    let completed_item = item_1_in(Lifecycle::Completed);
    let completed_task = task_in(Lifecycle::Completed);
    for actor in [staff(XAY_DUNG), finance()] {
        Spec::given(item_ref(ITEM_1), &completed_item)
            .with_facts(world())
            .as_actor(actor.clone())
            .when(change_item_status(ITEM_1, Lifecycle::Reopened, None))
            .then_forbidden();
        Spec::given(task_ref(TASK), &completed_task)
            .with_facts(world())
            .as_actor(actor)
            .when(change_task_status(TASK, Lifecycle::Reopened, None))
            .then_forbidden();
    }
    Spec::given(item_ref(ITEM_1), &completed_item)
        .with_facts(world())
        .when(change_item_status(ITEM_1, Lifecycle::Reopened, None))
        .then(&[Event::Item(ItemEvent::StatusChanged {
            from: Lifecycle::Completed,
            to: Lifecycle::Reopened,
            reason: reason(STATUS_REASON),
            evidence: None,
            at: instant(NOW),
        })]);
    Spec::given(task_ref(TASK), &completed_task)
        .with_facts(world())
        .when(change_task_status(TASK, Lifecycle::Reopened, None))
        .events();
}

//! Quarterly reports (báo cáo quý).

use super::*;

fn xd_line() -> Vec<ReportLine> {
    vec![line(ITEM_1, "Đã cấp 120 giấy chứng nhận")]
}

fn submitted_at(events: &[Event]) -> DateTime<Utc> {
    match events {
        [Event::Report(ReportEvent::Submitted { submitted_at, .. })] => *submitted_at,
        other => panic!("expected one submission, got {other:?}"),
    }
}

#[test]
fn submit_report_for_an_item_the_unit_is_assigned_to() {
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &[])
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .at(SUBMITTED_AT)
        .when(submit(PLAN, XAY_DUNG, q3(), xd_line()))
        .then(&xd_report_history());
}

#[test]
fn a_member_of_a_coordinating_group_submits_a_report() {
    Spec::given(report_ref(PLAN, NGA_SON, q3()), &[])
        .with_facts(world())
        .as_actor(staff(NGA_SON))
        .when(submit(
            PLAN,
            NGA_SON,
            q3(),
            vec![line(ITEM_1, "Đã phối hợp rà soát")],
        ))
        .events();
}

#[test]
fn submitting_an_identical_report_again_changes_nothing() {
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &xd_report_history())
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(submit(PLAN, XAY_DUNG, q3(), xd_line()))
        .then_nothing();
}

#[test]
fn submitting_a_different_report_for_the_same_quarter_is_rejected() {
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &xd_report_history())
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(submit(
            PLAN,
            XAY_DUNG,
            q3(),
            vec![line(ITEM_1, "Đã cấp 200 giấy")],
        ))
        .then_rejected(Rule::AlreadyExists);
}

#[test]
fn only_units_assigned_to_an_item_may_report_on_it() {
    Spec::given(report_ref(PLAN, NOI_VU, q3()), &[])
        .with_facts(world())
        .as_actor(staff(NOI_VU))
        .when(submit(PLAN, NOI_VU, q3(), vec![line(ITEM_1, "Không có")]))
        .then_rejected(Rule::NotAssigned);
    // Assigned to item 1 but not to item 2: one line too many.
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &[])
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(submit(
            PLAN,
            XAY_DUNG,
            q3(),
            vec![line(ITEM_1, "Đã cấp 120 giấy"), line(ITEM_2, "Không có")],
        ))
        .then_rejected(Rule::NotAssigned);
}

#[test]
fn unit_staff_report_only_for_their_own_unit() {
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &[])
        .with_facts(world())
        .as_actor(staff(NGA_SON))
        .when(submit(PLAN, XAY_DUNG, q3(), xd_line()))
        .then_forbidden();
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &xd_report_history())
        .with_facts(world())
        .as_actor(staff(NGA_SON))
        .when(submit(PLAN, XAY_DUNG, q3(), xd_line()))
        .then_forbidden();
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &xd_report_history())
        .with_facts(world())
        .as_actor(staff(NGA_SON))
        .when(revise(PLAN, XAY_DUNG, q3(), vec![line(ITEM_1, "Sửa")]))
        .then_forbidden();
}

#[test]
fn the_province_office_keys_in_a_paper_report_with_its_arrival_time() {
    // A paper report arrived on 14 June and was typed in on the 17th: it is on time.
    let events = Spec::given(report_ref(PLAN, XAY_DUNG, quarter(2025, 2)), &[])
        .with_facts(world())
        .at("2025-06-17T10:00:00+07:00")
        .effective_at("2025-06-14T16:00:00+07:00")
        .when(submit(PLAN, XAY_DUNG, quarter(2025, 2), xd_line()))
        .events();
    assert_eq!(submitted_at(&events), instant("2025-06-14T16:00:00+07:00"));
    assert_eq!(
        calendar::timeliness(quarter(2025, 2), submitted_at(&events)),
        Timeliness::OnTime
    );
}

#[test]
fn reporting_calendar_a_q2_2025_report_is_due_before_the_15th_of_june() {
    let q2 = quarter(2025, 2);
    let submit_at = |at: &str| {
        Spec::given(report_ref(PLAN, XAY_DUNG, q2), &[])
            .with_facts(world())
            .as_actor(staff(XAY_DUNG))
            .at(at)
            .when(submit(PLAN, XAY_DUNG, q2, xd_line()))
            .events()
    };
    let last_second = submit_at("2025-06-14T23:59:59+07:00");
    assert_eq!(
        submitted_at(&last_second),
        instant("2025-06-14T23:59:59+07:00")
    );
    assert_eq!(
        calendar::timeliness(q2, submitted_at(&last_second)),
        Timeliness::OnTime
    );
    let midnight = submit_at("2025-06-15T00:00:00+07:00");
    assert_eq!(
        calendar::timeliness(q2, submitted_at(&midnight)),
        Timeliness::Late
    );
}

#[test]
fn a_report_for_a_quarter_that_has_not_started_is_rejected() {
    let q4 = quarter(2025, 4);
    Spec::given(report_ref(PLAN, XAY_DUNG, q4), &[])
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .at("2025-09-30T23:59:59+07:00")
        .when(submit(PLAN, XAY_DUNG, q4, xd_line()))
        .then_rejected(Rule::QuarterNotStarted);
    Spec::given(report_ref(PLAN, XAY_DUNG, q4), &[])
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .at("2025-10-01T00:00:00+07:00")
        .when(submit(PLAN, XAY_DUNG, q4, xd_line()))
        .events();
}

#[test]
fn a_report_needs_at_least_one_line() {
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &[])
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(submit(PLAN, XAY_DUNG, q3(), vec![]))
        .then_rejected(Rule::EmptyReport);
}

#[test]
fn a_report_names_each_item_once() {
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &[])
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(submit(
            PLAN,
            XAY_DUNG,
            q3(),
            vec![
                line(ITEM_1, "Đã cấp 120 giấy"),
                line(ITEM_1, "Đã cấp 130 giấy"),
            ],
        ))
        .then_rejected(Rule::DuplicateLine);
}

#[test]
fn a_report_covers_only_items_of_its_plan() {
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &[])
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(submit(
            PLAN,
            XAY_DUNG,
            q3(),
            vec![line(ITEM_OTHER, "Đã rà soát")],
        ))
        .then_rejected(Rule::WrongPlan);
}

#[test]
fn reporting_on_an_unrecorded_item_is_not_found() {
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &[])
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(submit(
            PLAN,
            XAY_DUNG,
            q3(),
            vec![line("kh-63-2025-99", "Không có")],
        ))
        .then_not_found();
}

#[test]
fn reporting_on_an_unissued_plan_or_for_an_unregistered_unit_is_not_found() {
    Spec::given(report_ref("kh-1-2026", XAY_DUNG, q3()), &[])
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(submit("kh-1-2026", XAY_DUNG, q3(), xd_line()))
        .then_not_found();
    Spec::given(report_ref(PLAN, "so-khong-co", q3()), &[])
        .with_facts(world())
        .when(submit(PLAN, "so-khong-co", q3(), xd_line()))
        .then_not_found();
}

#[test]
fn revise_report_replaces_the_lines() {
    let lines = vec![line(ITEM_1, "Đã cấp 135 giấy chứng nhận")];
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &xd_report_history())
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(revise(PLAN, XAY_DUNG, q3(), lines.clone()))
        .then(&[Event::Report(ReportEvent::Revised {
            lines,
            reason: Some(reason(REVISE_REASON)),
            revised_at: instant(NOW),
        })]);
}

#[test]
fn revising_with_identical_lines_changes_nothing() {
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &xd_report_history())
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(revise(PLAN, XAY_DUNG, q3(), xd_line()))
        .then_nothing();
}

#[test]
fn a_revision_is_checked_like_a_submission() {
    let given = xd_report_history();
    let revise_with = |lines: Vec<ReportLine>| {
        Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &given)
            .with_facts(world())
            .as_actor(staff(XAY_DUNG))
            .when(revise(PLAN, XAY_DUNG, q3(), lines))
    };
    revise_with(vec![]).then_rejected(Rule::EmptyReport);
    revise_with(vec![line(ITEM_2, "Không có")]).then_rejected(Rule::NotAssigned);
    revise_with(vec![line(ITEM_OTHER, "Không có")]).then_rejected(Rule::WrongPlan);
    revise_with(vec![line(ITEM_1, "a"), line(ITEM_1, "b")]).then_rejected(Rule::DuplicateLine);
}

#[test]
fn revising_an_unsubmitted_report_is_not_found() {
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &[])
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(revise(PLAN, XAY_DUNG, q3(), xd_line()))
        .then_not_found();
}

#[test]
fn an_accepted_report_cannot_be_revised() {
    let accepted = Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &xd_report_history())
        .with_facts(world())
        .as_actor(finance())
        .when(accept(PLAN, XAY_DUNG, q3()))
        .history();
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &accepted)
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(revise(
            PLAN,
            XAY_DUNG,
            q3(),
            vec![line(ITEM_1, "Đã cấp 135 giấy")],
        ))
        .then_rejected(Rule::ReportAccepted);
    // Not even with the same lines.
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &accepted)
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(revise(PLAN, XAY_DUNG, q3(), xd_line()))
        .then_rejected(Rule::ReportAccepted);
}

#[test]
fn a_returned_report_can_be_revised_and_is_then_accepted() {
    let target = report_ref(PLAN, XAY_DUNG, q3());
    let returned = Spec::given(target.clone(), &xd_report_history())
        .with_facts(world())
        .as_actor(finance())
        .at("2025-07-11T09:00:00+07:00")
        .when(return_report(PLAN, XAY_DUNG, q3()))
        .then(&[Event::Report(ReportEvent::Returned {
            reason: reason(RETURN_REASON),
            returned_at: instant("2025-07-11T09:00:00+07:00"),
        })]);
    // Resubmitting the same lines after a return is a revision, not a repeat.
    let revised = Spec::given(target.clone(), &returned)
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .at("2025-07-12T09:00:00+07:00")
        .when(revise(PLAN, XAY_DUNG, q3(), xd_line()))
        .then(&[Event::Report(ReportEvent::Revised {
            lines: xd_line(),
            reason: Some(reason(REVISE_REASON)),
            revised_at: instant("2025-07-12T09:00:00+07:00"),
        })]);
    let AggregateState::Report(Some(report)) = fold(&target, &revised) else {
        panic!("the report exists");
    };
    assert_eq!(report.status, ReportStatus::Submitted);
    // The original submission still decides timeliness.
    assert_eq!(report.submitted_at, instant(SUBMITTED_AT));
    Spec::given(target, &revised)
        .with_facts(world())
        .as_actor(finance())
        .when(accept(PLAN, XAY_DUNG, q3()))
        .then(&[Event::Report(ReportEvent::Accepted {
            accepted_at: instant(NOW),
        })]);
}

#[test]
fn accept_report_by_the_department_of_finance() {
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &xd_report_history())
        .with_facts(world())
        .as_actor(finance())
        .when(accept(PLAN, XAY_DUNG, q3()))
        .then(&[Event::Report(ReportEvent::Accepted {
            accepted_at: instant(NOW),
        })]);
}

#[test]
fn accepting_an_accepted_report_changes_nothing() {
    let mut accepted = xd_report_history();
    accepted.push(Event::Report(ReportEvent::Accepted {
        accepted_at: instant("2025-07-11T09:00:00+07:00"),
    }));
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &accepted)
        .as_actor(finance())
        .when(accept(PLAN, XAY_DUNG, q3()))
        .then_nothing();
}

#[test]
fn a_returned_report_cannot_be_accepted_before_it_is_revised() {
    let mut returned = xd_report_history();
    returned.push(Event::Report(ReportEvent::Returned {
        reason: reason(RETURN_REASON),
        returned_at: instant("2025-07-11T09:00:00+07:00"),
    }));
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &returned)
        .as_actor(finance())
        .when(accept(PLAN, XAY_DUNG, q3()))
        .then_rejected(Rule::ReportReturned);
}

#[test]
fn return_report_carries_the_reason() {
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &xd_report_history())
        .as_actor(finance())
        .when(return_report(PLAN, XAY_DUNG, q3()))
        .then(&[Event::Report(ReportEvent::Returned {
            reason: reason(RETURN_REASON),
            returned_at: instant(NOW),
        })]);
}

#[test]
fn returning_a_returned_report_changes_nothing() {
    let mut returned = xd_report_history();
    returned.push(Event::Report(ReportEvent::Returned {
        reason: reason(RETURN_REASON),
        returned_at: instant("2025-07-11T09:00:00+07:00"),
    }));
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &returned)
        .as_actor(finance())
        .when(return_report(PLAN, XAY_DUNG, q3()))
        .then_nothing();
}

#[test]
fn an_accepted_report_cannot_be_returned() {
    let mut accepted = xd_report_history();
    accepted.push(Event::Report(ReportEvent::Accepted {
        accepted_at: instant("2025-07-11T09:00:00+07:00"),
    }));
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &accepted)
        .as_actor(finance())
        .when(return_report(PLAN, XAY_DUNG, q3()))
        .then_rejected(Rule::ReportAccepted);
}

#[test]
fn only_the_department_of_finance_accepts_or_returns_reports() {
    for actor in [province_office(), staff(XAY_DUNG)] {
        Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &xd_report_history())
            .as_actor(actor.clone())
            .when(accept(PLAN, XAY_DUNG, q3()))
            .then_forbidden();
        Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &xd_report_history())
            .as_actor(actor)
            .when(return_report(PLAN, XAY_DUNG, q3()))
            .then_forbidden();
    }
}

#[test]
fn the_department_of_finance_reviews_reports_but_neither_plans_tasks_nor_reports() {
    Spec::given(task_ref("tc-01"), &[])
        .with_facts(world())
        .as_actor(finance())
        .when(plan_task("tc-01", ITEM_1, XAY_DUNG, TASK_DUE))
        .then_forbidden();
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &[])
        .with_facts(world())
        .as_actor(finance())
        .when(submit(PLAN, XAY_DUNG, q3(), xd_line()))
        .then_forbidden();
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &xd_report_history())
        .with_facts(world())
        .as_actor(finance())
        .when(revise(PLAN, XAY_DUNG, q3(), vec![line(ITEM_1, "Sửa")]))
        .then_forbidden();
    Spec::given(task_ref(TASK), &task_history())
        .with_facts(world())
        .as_actor(finance())
        .when(cancel_task(TASK))
        .then_forbidden();
}

#[test]
fn accepting_or_returning_an_unsubmitted_report_is_not_found() {
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &[])
        .as_actor(finance())
        .when(accept(PLAN, XAY_DUNG, q3()))
        .then_not_found();
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &[])
        .as_actor(finance())
        .when(return_report(PLAN, XAY_DUNG, q3()))
        .then_not_found();
}

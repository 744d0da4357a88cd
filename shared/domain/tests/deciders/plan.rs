//! The plan (kế hoạch): issuing and amending.

use super::*;

#[test]
fn issue_plan_records_the_plan() {
    Spec::given(plan_ref(PLAN), &[])
        .when(issue_plan(PLAN, &the_plan()))
        .then(&[plan_issued(the_plan())]);
}

#[test]
fn issuing_the_same_plan_again_changes_nothing() {
    Spec::given(plan_ref(PLAN), &plan_history())
        .when(issue_plan(PLAN, &the_plan()))
        .then_nothing();
}

#[test]
fn issuing_other_content_under_an_issued_plan_id_is_rejected() {
    Spec::given(plan_ref(PLAN), &plan_history())
        .when(issue_plan(PLAN, &other_plan()))
        .then_rejected(Rule::AlreadyExists);
}

#[test]
fn amend_plan_records_only_what_changes_with_the_reason() {
    let current_title = the_plan().title;
    Spec::given(plan_ref(PLAN), &plan_history())
        .when(amend_plan(
            PLAN,
            Some(current_title.as_str()),
            Some("Định kỳ hằng tháng, trước ngày 20"),
        ))
        .then(&[Event::Plan(PlanEvent::Amended {
            title: None,
            legal_basis: None,
            reporting_rule: Some(prose("Định kỳ hằng tháng, trước ngày 20")),
            report_recipient: None,
            reason: reason(AMEND_REASON),
        })]);
}

#[test]
fn an_amendment_that_changes_nothing_yields_no_events() {
    let history = Spec::given(plan_ref(PLAN), &plan_history())
        .when(amend_plan(
            PLAN,
            None,
            Some("Định kỳ hằng tháng, trước ngày 20"),
        ))
        .history();
    Spec::given(plan_ref(PLAN), &history)
        .when(amend_plan(
            PLAN,
            None,
            Some("Định kỳ hằng tháng, trước ngày 20"),
        ))
        .then_nothing();
    Spec::given(plan_ref(PLAN), &plan_history())
        .when(amend_plan(PLAN, None, None))
        .then_nothing();
}

#[test]
fn amending_an_unissued_plan_is_not_found() {
    Spec::given(plan_ref(PLAN), &[])
        .when(amend_plan(PLAN, Some("Kế hoạch mới"), None))
        .then_not_found();
}

#[test]
fn only_the_province_office_issues_and_amends_plans() {
    for actor in [finance(), staff(XAY_DUNG)] {
        Spec::given(plan_ref(PLAN), &[])
            .as_actor(actor.clone())
            .when(issue_plan(PLAN, &the_plan()))
            .then_forbidden();
        Spec::given(plan_ref(PLAN), &plan_history())
            .as_actor(actor)
            .when(amend_plan(PLAN, Some("Kế hoạch mới"), None))
            .then_forbidden();
    }
}

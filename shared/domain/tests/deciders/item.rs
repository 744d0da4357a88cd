//! Items (nội dung): recording, assignments, deadlines.

use super::*;

#[test]
fn record_item_copies_the_plan_issue_date() {
    Spec::given(item_ref("kh-63-2025-03"), &[])
        .with_facts(world())
        .when(record_item(
            "kh-63-2025-03",
            PLAN,
            3,
            "Chuyển đổi số còn chậm",
        ))
        .then(&[item_recorded(
            PLAN,
            PLAN_ISSUED_ON,
            3,
            "Chuyển đổi số còn chậm",
        )]);
}

#[test]
fn recording_the_same_item_again_changes_nothing() {
    Spec::given(item_ref(ITEM_1), &item_1_history())
        .with_facts(world())
        .when(record_item(
            ITEM_1,
            PLAN,
            1,
            "Cấp giấy chứng nhận quyền sở hữu nhà ở còn chậm",
        ))
        .then_nothing();
}

#[test]
fn recording_other_content_under_a_recorded_item_id_is_rejected() {
    Spec::given(item_ref(ITEM_1), &item_1_history())
        .with_facts(world())
        .when(record_item(
            ITEM_1,
            PLAN,
            7,
            "Cấp giấy chứng nhận quyền sở hữu nhà ở còn chậm",
        ))
        .then_rejected(Rule::AlreadyExists);
    Spec::given(item_ref(ITEM_1), &item_1_history())
        .with_facts(world())
        .when(record_item(
            ITEM_1,
            OTHER_PLAN,
            1,
            "Cấp giấy chứng nhận quyền sở hữu nhà ở còn chậm",
        ))
        .then_rejected(Rule::AlreadyExists);
}

#[test]
fn recording_an_item_of_an_unissued_plan_is_not_found() {
    Spec::given(item_ref("kh-1-2026-01"), &[])
        .with_facts(world())
        .when(record_item("kh-1-2026-01", "kh-1-2026", 1, "Nội dung"))
        .then_not_found();
}

#[test]
fn assign_lead_names_the_unit_from_the_effective_time() {
    Spec::given(item_ref(ITEM_2), &item_2_history())
        .with_facts(world())
        .when(assign_lead(ITEM_2, unit_assignee(XAY_DUNG)))
        .then(&[assigned(AssignmentRole::Lead, unit_assignee(XAY_DUNG), NOW)]);
}

#[test]
fn assign_coordinator_names_a_group() {
    Spec::given(item_ref(ITEM_2), &item_2_history())
        .with_facts(world())
        .when(assign_coordinator(ITEM_2, group_assignee(DISTRICTS)))
        .then(&[assigned(
            AssignmentRole::Coordinator,
            group_assignee(DISTRICTS),
            NOW,
        )]);
}

#[test]
fn the_same_assignment_again_changes_nothing() {
    Spec::given(item_ref(ITEM_1), &item_1_history())
        .with_facts(world())
        .when(assign_lead(ITEM_1, unit_assignee(XAY_DUNG)))
        .then_nothing();
    Spec::given(item_ref(ITEM_1), &item_1_history())
        .with_facts(world())
        .when(assign_coordinator(ITEM_1, group_assignee(DISTRICTS)))
        .then_nothing();
}

#[test]
fn assigning_an_unregistered_unit_or_undefined_group_is_not_found() {
    Spec::given(item_ref(ITEM_2), &item_2_history())
        .with_facts(world())
        .when(assign_lead(ITEM_2, unit_assignee("so-khong-co")))
        .then_not_found();
    Spec::given(item_ref(ITEM_2), &item_2_history())
        .with_facts(world())
        .when(assign_coordinator(ITEM_2, group_assignee("nhom-khong-co")))
        .then_not_found();
}

#[test]
fn assigning_on_an_unrecorded_item_is_not_found() {
    Spec::given(item_ref("kh-63-2025-99"), &[])
        .with_facts(world())
        .when(assign_lead("kh-63-2025-99", unit_assignee(XAY_DUNG)))
        .then_not_found();
}

#[test]
fn a_succeeded_unit_takes_no_new_assignments() {
    // From the effective date of its succession, Đông Sơn can be neither lead, nor coordinator,
    // nor join a group.
    Spec::given(item_ref(ITEM_1), &item_1_history())
        .with_facts(world())
        .at(NOW)
        .when(assign_lead(ITEM_1, unit_assignee(DONG_SON)))
        .then_rejected(Rule::UnitSucceeded);
    Spec::given(item_ref(ITEM_1), &item_1_history())
        .with_facts(world())
        .at("2025-07-01T00:00:00+07:00")
        .when(assign_coordinator(ITEM_1, unit_assignee(DONG_SON)))
        .then_rejected(Rule::UnitSucceeded);
    let ungrouped = vec![group_defined("UBND các huyện, thị xã, thành phố")];
    Spec::given(group_ref(DISTRICTS), &ungrouped)
        .with_facts(world())
        .at(NOW)
        .when(add_member(DISTRICTS, DONG_SON, "2025-03-10"))
        .then_rejected(Rule::UnitSucceeded);
    // Nor join a group from a date on which it will have been succeeded.
    Spec::given(group_ref(DISTRICTS), &ungrouped)
        .with_facts(world())
        .at(BEFORE_SUCCESSION)
        .when(add_member(DISTRICTS, DONG_SON, "2025-07-01"))
        .then_rejected(Rule::UnitSucceeded);

    // The day before, all of that was still possible.
    Spec::given(item_ref(ITEM_1), &item_1_history())
        .with_facts(world())
        .at("2025-06-30T23:59:59+07:00")
        .when(assign_lead(ITEM_1, unit_assignee(DONG_SON)))
        .then(&[assigned(
            AssignmentRole::Lead,
            unit_assignee(DONG_SON),
            "2025-06-30T23:59:59+07:00",
        )]);
    Spec::given(item_ref(ITEM_1), &item_1_history())
        .with_facts(world())
        .at(BEFORE_SUCCESSION)
        .when(assign_coordinator(ITEM_1, unit_assignee(DONG_SON)))
        .events();
    Spec::given(group_ref(DISTRICTS), &ungrouped)
        .with_facts(world())
        .at(BEFORE_SUCCESSION)
        .when(add_member(DISTRICTS, DONG_SON, "2025-03-10"))
        .then(&[member_added(DONG_SON, "2025-03-10")]);
}

#[test]
fn revoke_assignment_carries_the_reason_and_ends_it_at_the_effective_time() {
    Spec::given(item_ref(ITEM_1), &item_1_history())
        .when(revoke(
            ITEM_1,
            AssignmentRole::Coordinator,
            group_assignee(DISTRICTS),
        ))
        .then(&[Event::Item(ItemEvent::AssignmentRevoked {
            role: AssignmentRole::Coordinator,
            assignee: group_assignee(DISTRICTS),
            until: instant(NOW),
            reason: reason(REVOKE_REASON),
        })]);
}

#[test]
fn a_backdated_revocation_may_not_end_an_assignment_before_it_began() {
    let detail = Spec::given(item_ref(ITEM_1), &item_1_history())
        .effective_at("2025-03-20T07:59:59+07:00")
        .when(revoke(
            ITEM_1,
            AssignmentRole::Lead,
            unit_assignee(XAY_DUNG),
        ))
        .then_rejected(Rule::RevokedBeforeAssigned);
    assert!(detail.contains("2025-03-20T01:00:00"), "{detail}");
    // At the very instant it began: the assignment never held, a legitimate correction.
    Spec::given(item_ref(ITEM_1), &item_1_history())
        .effective_at(ASSIGNED_AT)
        .when(revoke(
            ITEM_1,
            AssignmentRole::Lead,
            unit_assignee(XAY_DUNG),
        ))
        .then(&[Event::Item(ItemEvent::AssignmentRevoked {
            role: AssignmentRole::Lead,
            assignee: unit_assignee(XAY_DUNG),
            until: instant(ASSIGNED_AT),
            reason: reason(REVOKE_REASON),
        })]);
}

#[test]
fn revoking_an_absent_assignment_changes_nothing() {
    // Never assigned.
    Spec::given(item_ref(ITEM_1), &item_1_history())
        .when(revoke(ITEM_1, AssignmentRole::Lead, unit_assignee(NOI_VU)))
        .then_nothing();
    // Assigned in the other role only.
    Spec::given(item_ref(ITEM_1), &item_1_history())
        .when(revoke(
            ITEM_1,
            AssignmentRole::Coordinator,
            unit_assignee(XAY_DUNG),
        ))
        .then_nothing();
    // Already revoked.
    let history = Spec::given(item_ref(ITEM_1), &item_1_history())
        .when(revoke(
            ITEM_1,
            AssignmentRole::Lead,
            unit_assignee(XAY_DUNG),
        ))
        .history();
    Spec::given(item_ref(ITEM_1), &history)
        .when(revoke(
            ITEM_1,
            AssignmentRole::Lead,
            unit_assignee(XAY_DUNG),
        ))
        .then_nothing();
}

#[test]
fn revoking_on_an_unrecorded_item_is_not_found() {
    Spec::given(item_ref("kh-63-2025-99"), &[])
        .when(revoke(
            "kh-63-2025-99",
            AssignmentRole::Lead,
            unit_assignee(XAY_DUNG),
        ))
        .then_not_found();
}

#[test]
fn a_revoked_unit_may_no_longer_report_on_the_item() {
    let history = Spec::given(item_ref(ITEM_1), &item_1_history())
        .at("2025-07-05T08:00:00+07:00")
        .when(revoke(
            ITEM_1,
            AssignmentRole::Lead,
            unit_assignee(XAY_DUNG),
        ))
        .history();
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &[])
        .with_facts(world().with(item_ref(ITEM_1), &history))
        .as_actor(staff(XAY_DUNG))
        .when(submit(
            PLAN,
            XAY_DUNG,
            q3(),
            vec![line(ITEM_1, "Đã cấp 120 giấy chứng nhận")],
        ))
        .then_rejected(Rule::NotAssigned);
}

#[test]
fn set_item_deadline_the_first_time_needs_no_reason() {
    Spec::given(item_ref(ITEM_1), &item_1_history())
        .when(set_deadline(ITEM_1, "2025-12-31", None))
        .then(&[Event::Item(ItemEvent::DeadlineSet {
            due_on: day("2025-12-31"),
        })]);
}

#[test]
fn changing_an_item_deadline_records_old_and_new_with_the_reason() {
    let history = Spec::given(item_ref(ITEM_1), &item_1_history())
        .when(set_deadline(ITEM_1, "2025-12-31", None))
        .history();
    Spec::given(item_ref(ITEM_1), &history)
        .when(set_deadline(
            ITEM_1,
            "2026-06-30",
            Some("Vướng mắc về thủ tục đất đai"),
        ))
        .then(&[Event::Item(ItemEvent::DeadlineChanged {
            from: day("2025-12-31"),
            to: day("2026-06-30"),
            reason: reason("Vướng mắc về thủ tục đất đai"),
        })]);
}

#[test]
fn changing_an_item_deadline_without_a_reason_is_rejected() {
    let history = Spec::given(item_ref(ITEM_1), &item_1_history())
        .when(set_deadline(ITEM_1, "2025-12-31", None))
        .history();
    Spec::given(item_ref(ITEM_1), &history)
        .when(set_deadline(ITEM_1, "2026-06-30", None))
        .then_rejected(Rule::InvalidTransition);
}

#[test]
fn setting_the_same_item_deadline_changes_nothing() {
    let history = Spec::given(item_ref(ITEM_1), &item_1_history())
        .when(set_deadline(ITEM_1, "2025-12-31", None))
        .history();
    Spec::given(item_ref(ITEM_1), &history)
        .when(set_deadline(ITEM_1, "2025-12-31", None))
        .then_nothing();
    Spec::given(item_ref(ITEM_1), &history)
        .when(set_deadline(ITEM_1, "2025-12-31", Some("Nhắc lại")))
        .then_nothing();
}

#[test]
fn an_item_deadline_cannot_precede_the_plan_issue_date() {
    Spec::given(item_ref(ITEM_1), &item_1_history())
        .when(set_deadline(ITEM_1, "2025-03-09", None))
        .then_rejected(Rule::DeadlineBeforePlanIssue);
    // The issue date itself is allowed.
    Spec::given(item_ref(ITEM_1), &item_1_history())
        .when(set_deadline(ITEM_1, PLAN_ISSUED_ON, None))
        .events();
}

#[test]
fn setting_a_deadline_on_an_unrecorded_item_is_not_found() {
    Spec::given(item_ref("kh-63-2025-99"), &[])
        .when(set_deadline("kh-63-2025-99", "2025-12-31", None))
        .then_not_found();
}

#[test]
fn only_the_province_office_records_assigns_revokes_and_sets_deadlines() {
    for actor in [finance(), staff(XAY_DUNG)] {
        Spec::given(item_ref("kh-63-2025-03"), &[])
            .with_facts(world())
            .as_actor(actor.clone())
            .when(record_item(
                "kh-63-2025-03",
                PLAN,
                3,
                "Chuyển đổi số còn chậm",
            ))
            .then_forbidden();
        Spec::given(item_ref(ITEM_2), &item_2_history())
            .with_facts(world())
            .as_actor(actor.clone())
            .when(assign_lead(ITEM_2, unit_assignee(XAY_DUNG)))
            .then_forbidden();
        Spec::given(item_ref(ITEM_2), &item_2_history())
            .with_facts(world())
            .as_actor(actor.clone())
            .when(assign_coordinator(ITEM_2, unit_assignee(XAY_DUNG)))
            .then_forbidden();
        Spec::given(item_ref(ITEM_1), &item_1_history())
            .as_actor(actor.clone())
            .when(revoke(
                ITEM_1,
                AssignmentRole::Lead,
                unit_assignee(XAY_DUNG),
            ))
            .then_forbidden();
        Spec::given(item_ref(ITEM_1), &item_1_history())
            .as_actor(actor)
            .when(set_deadline(ITEM_1, "2025-12-31", None))
            .then_forbidden();
    }
}

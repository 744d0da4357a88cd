//! Unit groups (nhóm đơn vị): definition and members over time.

use super::*;

#[test]
fn define_group_records_its_name() {
    Spec::given(group_ref("cac-so-nganh"), &[])
        .when(define_group("cac-so-nganh", "Các sở, ban, ngành"))
        .then(&[group_defined("Các sở, ban, ngành")]);
}

#[test]
fn defining_the_same_group_again_changes_nothing() {
    Spec::given(group_ref(DISTRICTS), &districts_history())
        .when(define_group(DISTRICTS, "UBND các huyện, thị xã, thành phố"))
        .then_nothing();
}

#[test]
fn defining_an_existing_group_id_with_another_name_is_rejected() {
    Spec::given(group_ref(DISTRICTS), &districts_history())
        .when(define_group(DISTRICTS, "Các đơn vị liên quan"))
        .then_rejected(Rule::AlreadyExists);
}

#[test]
fn add_group_member_from_a_date() {
    Spec::given(group_ref(DISTRICTS), &districts_history())
        .with_facts(world())
        .when(add_member(DISTRICTS, QUANG_XUONG, "2025-08-01"))
        .then(&[member_added(QUANG_XUONG, "2025-08-01")]);
}

#[test]
fn adding_an_existing_member_changes_nothing() {
    Spec::given(group_ref(DISTRICTS), &districts_history())
        .with_facts(world())
        .when(add_member(DISTRICTS, NGA_SON, "2025-08-01"))
        .then_nothing();
}

#[test]
fn a_removed_member_can_be_added_again() {
    let mut given = districts_history();
    given.push(member_removed(NGA_SON, "2025-05-01", LEAVE_REASON));
    Spec::given(group_ref(DISTRICTS), &given)
        .with_facts(world())
        .when(add_member(DISTRICTS, NGA_SON, "2025-08-01"))
        .then(&[member_added(NGA_SON, "2025-08-01")]);
}

#[test]
fn adding_a_member_to_an_undefined_group_is_not_found() {
    Spec::given(group_ref("cac-so-nganh"), &[])
        .with_facts(world())
        .when(add_member("cac-so-nganh", XAY_DUNG, "2025-08-01"))
        .then_not_found();
}

#[test]
fn adding_an_unregistered_unit_to_a_group_is_not_found() {
    Spec::given(group_ref(DISTRICTS), &districts_history())
        .with_facts(world())
        .when(add_member(DISTRICTS, "ubnd-huyen-khong-co", "2025-08-01"))
        .then_not_found();
}

#[test]
fn remove_group_member_carries_the_reason() {
    Spec::given(group_ref(DISTRICTS), &districts_history())
        .when(remove_member(DISTRICTS, NGA_SON, "2025-08-01"))
        .then(&[member_removed(NGA_SON, "2025-08-01", LEAVE_REASON)]);
}

#[test]
fn removing_a_unit_that_is_not_a_member_changes_nothing() {
    Spec::given(group_ref(DISTRICTS), &districts_history())
        .when(remove_member(DISTRICTS, QUANG_XUONG, "2025-08-01"))
        .then_nothing();
    let mut removed = districts_history();
    removed.push(member_removed(NGA_SON, "2025-08-01", LEAVE_REASON));
    Spec::given(group_ref(DISTRICTS), &removed)
        .when(remove_member(DISTRICTS, NGA_SON, "2025-08-01"))
        .then_nothing();
}

#[test]
fn a_removal_before_the_membership_began_is_rejected() {
    Spec::given(group_ref(DISTRICTS), &districts_history())
        .when(remove_member(DISTRICTS, NGA_SON, "2025-03-09"))
        .then_rejected(Rule::InvalidTransition);
}

#[test]
fn removing_from_an_undefined_group_is_not_found() {
    Spec::given(group_ref("cac-so-nganh"), &[])
        .when(remove_member("cac-so-nganh", NGA_SON, "2025-08-01"))
        .then_not_found();
}

#[test]
fn only_the_province_office_defines_and_changes_groups() {
    for actor in [finance(), staff(NGA_SON)] {
        Spec::given(group_ref("cac-so-nganh"), &[])
            .as_actor(actor.clone())
            .when(define_group("cac-so-nganh", "Các sở, ban, ngành"))
            .then_forbidden();
        Spec::given(group_ref(DISTRICTS), &districts_history())
            .with_facts(world())
            .as_actor(actor.clone())
            .when(add_member(DISTRICTS, QUANG_XUONG, "2025-08-01"))
            .then_forbidden();
        Spec::given(group_ref(DISTRICTS), &districts_history())
            .as_actor(actor)
            .when(remove_member(DISTRICTS, NGA_SON, "2025-08-01"))
            .then_forbidden();
    }
}

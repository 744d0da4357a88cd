//! Units (đơn vị): registration, renaming, succession decisions.

use super::*;

#[test]
fn register_unit_records_its_name_and_kind() {
    Spec::given(unit_ref("so-y-te"), &[])
        .when(register_unit("so-y-te", "Sở Y tế", UnitKind::Department))
        .then(&[registered("Sở Y tế", UnitKind::Department)]);
}

#[test]
fn registering_the_same_unit_again_changes_nothing() {
    Spec::given(
        unit_ref("so-y-te"),
        &[registered("Sở Y tế", UnitKind::Department)],
    )
    .when(register_unit("so-y-te", "Sở Y tế", UnitKind::Department))
    .then_nothing();
}

#[test]
fn registering_an_existing_unit_id_with_other_details_is_rejected() {
    let given = [registered("Sở Y tế", UnitKind::Department)];
    Spec::given(unit_ref("so-y-te"), &given)
        .when(register_unit(
            "so-y-te",
            "Bệnh viện Đa khoa tỉnh",
            UnitKind::Department,
        ))
        .then_rejected(Rule::AlreadyExists);
    Spec::given(unit_ref("so-y-te"), &given)
        .when(register_unit(
            "so-y-te",
            "Sở Y tế",
            UnitKind::PublicFacility,
        ))
        .then_rejected(Rule::AlreadyExists);
}

#[test]
fn only_the_province_office_registers_renames_and_succeeds_units() {
    for actor in [finance(), staff(NGA_SON)] {
        Spec::given(unit_ref("so-y-te"), &[])
            .as_actor(actor.clone())
            .when(register_unit("so-y-te", "Sở Y tế", UnitKind::Department))
            .then_forbidden();
        let nga_son = [registered(
            "UBND huyện Nga Sơn",
            UnitKind::DistrictCommittee,
        )];
        Spec::given(unit_ref(NGA_SON), &nga_son)
            .as_actor(actor.clone())
            .when(rename_unit(NGA_SON, "UBND thị xã Nga Sơn"))
            .then_forbidden();
        Spec::given(unit_ref(NGA_SON), &nga_son)
            .with_facts(world())
            .as_actor(actor)
            .when(succeed_unit(NGA_SON, &[THANH_HOA], SUCCESSION_ON))
            .then_forbidden();
    }
}

#[test]
fn rename_unit_records_old_and_new_name_with_the_reason() {
    Spec::given(
        unit_ref(XAY_DUNG),
        &[registered("Sở Xây dựng", UnitKind::Department)],
    )
    .when(rename_unit(XAY_DUNG, "Sở Xây dựng tỉnh Thanh Hóa"))
    .then(&[Event::Unit(UnitEvent::Renamed {
        from: name("Sở Xây dựng"),
        to: name("Sở Xây dựng tỉnh Thanh Hóa"),
        reason: reason(RENAME_REASON),
    })]);
}

#[test]
fn renaming_to_the_same_name_changes_nothing() {
    Spec::given(
        unit_ref(XAY_DUNG),
        &[registered("Sở Xây dựng", UnitKind::Department)],
    )
    .when(rename_unit(XAY_DUNG, "Sở Xây dựng"))
    .then_nothing();
}

#[test]
fn renaming_an_unregistered_unit_is_not_found() {
    Spec::given(unit_ref("so-y-te"), &[])
        .when(rename_unit("so-y-te", "Sở Y tế"))
        .then_not_found();
}

#[test]
fn succeed_unit_records_successors_effective_date_and_reason() {
    Spec::given(unit_ref(DONG_SON), &dong_son_history()[..1])
        .with_facts(world())
        .when(succeed_unit(DONG_SON, &[THANH_HOA], SUCCESSION_ON))
        .then(&[succeeded(&[THANH_HOA], SUCCESSION_ON)]);
}

#[test]
fn the_same_succession_again_changes_nothing() {
    Spec::given(unit_ref(DONG_SON), &dong_son_history())
        .with_facts(world())
        .when(succeed_unit(DONG_SON, &[THANH_HOA], SUCCESSION_ON))
        .then_nothing();
}

#[test]
fn a_second_different_succession_is_rejected() {
    Spec::given(unit_ref(DONG_SON), &dong_son_history())
        .with_facts(world())
        .when(succeed_unit(DONG_SON, &[THANH_HOA, NGA_SON], SUCCESSION_ON))
        .then_rejected(Rule::InvalidSuccession);
    Spec::given(unit_ref(DONG_SON), &dong_son_history())
        .with_facts(world())
        .when(succeed_unit(DONG_SON, &[THANH_HOA], "2025-08-01"))
        .then_rejected(Rule::InvalidSuccession);
}

#[test]
fn a_succession_without_successors_is_rejected() {
    Spec::given(
        unit_ref(NGA_SON),
        &[registered(
            "UBND huyện Nga Sơn",
            UnitKind::DistrictCommittee,
        )],
    )
    .with_facts(world())
    .when(succeed_unit(NGA_SON, &[], SUCCESSION_ON))
    .then_rejected(Rule::InvalidSuccession);
}

#[test]
fn a_unit_cannot_succeed_itself() {
    Spec::given(
        unit_ref(NGA_SON),
        &[registered(
            "UBND huyện Nga Sơn",
            UnitKind::DistrictCommittee,
        )],
    )
    .with_facts(world())
    .when(succeed_unit(NGA_SON, &[THANH_HOA, NGA_SON], SUCCESSION_ON))
    .then_rejected(Rule::InvalidSuccession);
}

#[test]
fn a_successor_must_be_registered() {
    Spec::given(
        unit_ref(NGA_SON),
        &[registered(
            "UBND huyện Nga Sơn",
            UnitKind::DistrictCommittee,
        )],
    )
    .with_facts(world())
    .when(succeed_unit(
        NGA_SON,
        &["ubnd-thi-xa-nghi-son"],
        SUCCESSION_ON,
    ))
    .then_not_found();
}

#[test]
fn a_successor_already_succeeded_by_the_effective_date_is_rejected() {
    let nga_son = [registered(
        "UBND huyện Nga Sơn",
        UnitKind::DistrictCommittee,
    )];
    Spec::given(unit_ref(NGA_SON), &nga_son)
        .with_facts(world())
        .when(succeed_unit(NGA_SON, &[DONG_SON], SUCCESSION_ON))
        .then_rejected(Rule::UnitSucceeded);
    // Before Đông Sơn's own succession it can still take Nga Sơn's work over.
    Spec::given(unit_ref(NGA_SON), &nga_son)
        .with_facts(world())
        .when(succeed_unit(NGA_SON, &[DONG_SON], "2025-06-30"))
        .events();
}

#[test]
fn succeeding_an_unregistered_unit_is_not_found() {
    Spec::given(unit_ref("ubnd-huyen-khong-co"), &[])
        .with_facts(world())
        .when(succeed_unit(
            "ubnd-huyen-khong-co",
            &[THANH_HOA],
            SUCCESSION_ON,
        ))
        .then_not_found();
}

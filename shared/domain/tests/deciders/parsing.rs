//! Reading commands from their JSON form: the types' own rules and where a body breaks them.
//! How the command service reads a client's body beyond that (integral floats, control
//! characters, trailing input) is tested with its wire module.

use super::*;

#[test]
fn parse_errors_name_the_json_path_of_the_offending_field() {
    let error_of =
        |command: &str, body: Value| parse(command, &body).expect_err("the body does not parse");
    let unknown = error_of(
        "register-unit",
        json!({ "unit_id": "so-y-te", "name": "Sở Y tế", "kind": "department", "colour": "red" }),
    );
    assert_eq!(unknown.path, "colour");
    assert!(
        unknown.message.contains("unknown field `colour`"),
        "{unknown}"
    );

    let nested_unknown = error_of(
        "submit-report",
        json!({
            "plan_id": PLAN, "unit_id": XAY_DUNG, "quarter": { "year": 2025, "quarter": 3 },
            "lines": [{ "item_id": ITEM_1, "progress": "Đã cấp", "percent": 50 }]
        }),
    );
    assert_eq!(nested_unknown.path, "lines[0].percent");

    let too_long = error_of(
        "register-unit",
        json!({ "unit_id": "so-y-te", "name": "ạ".repeat(201), "kind": "department" }),
    );
    assert_eq!(too_long.path, "name");
    assert!(
        too_long
            .message
            .contains("longer than 200 characters (201)"),
        "{too_long}"
    );
    // Characters are counted, not bytes: 200 Vietnamese letters fit.
    parse(
        "register-unit",
        &json!({ "unit_id": "so-y-te", "name": "ạ".repeat(200), "kind": "department" }),
    )
    .expect("200 characters fit a name");

    let nested_too_long = error_of(
        "submit-report",
        json!({
            "plan_id": PLAN, "unit_id": XAY_DUNG, "quarter": { "year": 2025, "quarter": 3 },
            "lines": [
                { "item_id": ITEM_1, "progress": "Đã cấp" },
                { "item_id": ITEM_2, "progress": "x".repeat(4001) }
            ]
        }),
    );
    assert_eq!(nested_too_long.path, "lines[1].progress");

    let bad_id = error_of(
        "plan-task",
        json!({
            "task_id": "XD 01", "item_id": ITEM_1, "unit_id": XAY_DUNG, "title": "t",
            "person_responsible": "p", "leader_in_charge": "l", "due_on": TASK_DUE
        }),
    );
    assert_eq!(bad_id.path, "task_id");

    let bad_quarter = error_of(
        "accept-report",
        json!({ "plan_id": PLAN, "unit_id": XAY_DUNG, "quarter": { "year": 2025, "quarter": 5 } }),
    );
    assert_eq!(bad_quarter.path, "quarter");

    let bad_status = error_of(
        "change-item-status",
        json!({ "item_id": ITEM_1, "to": "done", "reason": STATUS_REASON }),
    );
    assert_eq!(bad_status.path, "to");

    let bad_date = error_of(
        "set-item-deadline",
        json!({ "item_id": ITEM_1, "due_on": "31/12/2025" }),
    );
    assert_eq!(bad_date.path, "due_on");

    let bad_assignee = error_of(
        "assign-lead",
        json!({ "item_id": ITEM_1, "assignee": { "team": XAY_DUNG } }),
    );
    assert_eq!(bad_assignee.path, "assignee");
}

#[test]
fn text_is_nfc_normalised_so_a_repeat_typed_differently_changes_nothing() {
    // "Sở Tài chính" typed with combining marks (o + horn + hook above, a + grave, i + acute),
    // with stray spaces around it.
    let decomposed = "  So\u{031b}\u{0309} Ta\u{0300}i chi\u{0301}nh ";
    assert_ne!(decomposed.trim(), "Sở Tài chính");
    let command = parse(
        "rename-unit",
        &json!({ "unit_id": TAI_CHINH, "name": decomposed, "reason": RENAME_REASON }),
    )
    .expect("the body parses");
    let Command::RenameUnit(rename) = &command else {
        panic!("parsed {command:?}");
    };
    assert_eq!(rename.name.as_str(), "Sở Tài chính");
    Spec::given(
        unit_ref(TAI_CHINH),
        &[registered("Sở Tài chính", UnitKind::Department)],
    )
    .when(command)
    .then_nothing();
}

//! Parsing commands from their JSON bodies.

use super::*;

#[test]
fn an_integral_float_reads_as_the_integer_it_equals_and_nothing_else_does() {
    let body = |quarter: Value| json!({ "plan_id": PLAN, "unit_id": XAY_DUNG, "quarter": { "year": 2025.0, "quarter": quarter } });
    let whole = parse("accept-report", &body(json!(3.0))).expect("3.0 is the integer 3");
    assert_eq!(
        whole,
        parse("accept-report", &body(json!(3))).expect("3 parses")
    );
    let fraction = parse("accept-report", &body(json!(3.5))).expect_err("3.5 is no quarter");
    assert_eq!(fraction.path, "quarter.quarter");
    // Integral, yet not a quarter: refused with the first error.
    let out_of_range = parse("accept-report", &body(json!(5.0))).expect_err("no fifth quarter");
    assert_eq!(out_of_range.path, "quarter.quarter");
}

#[test]
fn commands_refuse_control_characters_with_their_path_but_events_still_read_them() {
    let body = |progress: &str| {
        json!({
            "plan_id": PLAN, "unit_id": XAY_DUNG, "quarter": { "year": 2025, "quarter": 3 },
            "lines": [{ "item_id": ITEM_1, "progress": progress }]
        })
    };
    let refused = parse("submit-report", &body("Đã cấp\u{0}")).expect_err("a NUL");
    assert_eq!(refused.path, "lines[0].progress");
    assert!(refused.message.contains("U+0000"), "{refused}");
    assert!(parse("submit-report", &body("Đã cấp\r\n\t50 hồ sơ")).is_ok());
    // An event stored before the rule decodes as it was.
    let stored: Name = serde_json::from_value(json!("Sở\u{1b}Y tế")).expect("decodes");
    assert_eq!(stored.as_str(), "Sở\u{1b}Y tế");
}

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
fn a_body_with_trailing_input_does_not_parse() {
    let error = (spec_named("define-group").parse)(br#"{"group_id":"g","name":"G"} {}"#)
        .expect_err("trailing input is refused");
    assert_eq!(error.path, ".");
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

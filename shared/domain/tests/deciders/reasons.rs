//! Reasons: what every revocation, return and postponement must say.

use super::*;
use crate::commands::{example, example_command};

/// Commands whose reason is required (the others' is optional but, if given, not blank).
const REASON_REQUIRED: &[&str] = &[
    "rename-unit",
    "succeed-unit",
    "remove-group-member",
    "amend-plan",
    "revoke-assignment",
    "change-item-status",
    "reschedule-task",
    "change-task-status",
    "cancel-task",
    "return-report",
    "quarantine-message",
];

#[test]
fn an_empty_or_blank_reason_does_not_parse() {
    let mut with_reason = vec![];
    for spec in COMMANDS {
        let mut body = example(spec.name).body;
        if spec.name == "set-item-deadline" {
            body["reason"] = json!("Điều chỉnh theo chỉ đạo");
        }
        let Some(fields) = body.as_object_mut() else {
            panic!("{}: the example body is an object", spec.name);
        };
        if !fields.contains_key("reason") {
            continue;
        }
        with_reason.push(spec.name);
        for blank in ["", "   ", "\t\n \u{3000}"] {
            fields.insert("reason".to_owned(), json!(blank));
            let error = parse(spec.name, &Value::Object(fields.clone()))
                .expect_err("a blank reason does not parse");
            assert_eq!(error.path, "reason", "{}: {error}", spec.name);
            assert!(
                error.message.contains("must not be empty"),
                "{}: {error}",
                spec.name
            );
        }
        fields.remove("reason");
        let missing = parse(spec.name, &Value::Object(fields.clone()));
        if REASON_REQUIRED.contains(&spec.name) {
            let error = missing.expect_err("a required reason cannot be left out");
            assert!(
                error.message.contains("missing field `reason`"),
                "{}: {error}",
                spec.name
            );
        } else {
            missing.unwrap_or_else(|e| panic!("{}: {e}", spec.name));
        }
    }
    let mut expected: Vec<&str> = REASON_REQUIRED.to_vec();
    expected.extend(["set-item-deadline", "revise-report"]);
    expected.sort_unstable();
    with_reason.sort_unstable();
    assert_eq!(with_reason, expected);
}

/// The reason an event records, if it records one.
fn reason_of(event: &Event) -> Option<&Reason> {
    match event {
        Event::Unit(UnitEvent::Renamed { reason, .. })
        | Event::Unit(UnitEvent::Succeeded(Succession { reason, .. }))
        | Event::Group(GroupEvent::MemberRemoved { reason, .. })
        | Event::Plan(PlanEvent::Amended { reason, .. })
        | Event::Item(ItemEvent::AssignmentRevoked { reason, .. })
        | Event::Item(ItemEvent::DeadlineChanged { reason, .. })
        | Event::Item(ItemEvent::StatusChanged { reason, .. })
        | Event::Task(TaskEvent::Rescheduled { reason, .. })
        | Event::Task(TaskEvent::StatusChanged { reason, .. })
        | Event::Task(TaskEvent::Cancelled { reason })
        | Event::Report(ReportEvent::Returned { reason, .. })
        | Event::Quarantine(QuarantineEvent::MessageQuarantined(QuarantineMessage {
            reason,
            ..
        })) => Some(reason),
        Event::Report(ReportEvent::Revised { reason, .. }) => reason.as_ref(),
        _ => None,
    }
}

#[test]
fn every_status_change_and_revocation_carries_its_reason_into_the_event() {
    for name in REASON_REQUIRED {
        let spec = spec_named(name);
        let ex = example(name);
        let expected = Reason::new(
            ex.body["reason"]
                .as_str()
                .expect("the example has a reason"),
        )
        .expect("a valid reason");
        let command = example_command(spec, &ex.body);
        let events = Spec::given(command.target(), &ex.given)
            .with_facts(world())
            .as_actor(ex.actor)
            .when(command)
            .events();
        for event in &events {
            assert_eq!(reason_of(event), Some(&expected), "{name}: {event:?}");
        }
    }
}

//! Every command: one happy path per entry of `COMMANDS`, parsed from its JSON body.

use super::*;
use crate::access::{AUDIT_QUERY, TODAY};

pub(crate) const DIGEST: &str = "4fa7bfb279404f63cc27ed898ce6aa467bf5d1e2bbb13bc89db4847ccb804db9";

/// A JSON body for each command, and the target history and actor with which it succeeds.
pub(crate) struct Example {
    pub(crate) body: Value,
    pub(crate) given: Vec<Event>,
    pub(crate) actor: Actor,
}

pub(crate) fn example(command: &str) -> Example {
    let q3 = json!({ "year": 2025, "quarter": 3 });
    let (body, given, actor) = match command {
        "register-unit" => (
            json!({ "unit_id": "so-y-te", "name": "Sở Y tế", "kind": "department" }),
            vec![],
            province_office(),
        ),
        "rename-unit" => (
            json!({ "unit_id": XAY_DUNG, "name": "Sở Xây dựng tỉnh Thanh Hóa", "reason": RENAME_REASON }),
            vec![registered("Sở Xây dựng", UnitKind::Department)],
            province_office(),
        ),
        "succeed-unit" => (
            json!({ "unit_id": NGA_SON, "successors": [THANH_HOA], "effective_on": SUCCESSION_ON, "reason": MERGER }),
            vec![registered(
                "UBND huyện Nga Sơn",
                UnitKind::DistrictCommittee,
            )],
            province_office(),
        ),
        "define-group" => (
            json!({ "group_id": "cac-so-nganh", "name": "Các sở, ban, ngành" }),
            vec![],
            province_office(),
        ),
        "add-group-member" => (
            json!({ "group_id": DISTRICTS, "unit_id": QUANG_XUONG, "from": "2025-07-15" }),
            districts_history(),
            province_office(),
        ),
        "remove-group-member" => (
            json!({ "group_id": DISTRICTS, "unit_id": NGA_SON, "from": "2025-07-15", "reason": LEAVE_REASON }),
            districts_history(),
            province_office(),
        ),
        "issue-plan" => (
            json!({
                "plan_id": PLAN,
                "code": "63/KH-UBND",
                "title": "Kế hoạch khắc phục những hạn chế, yếu kém năm 2025",
                "issuer": "UBND tỉnh Thanh Hóa",
                "issued_on": PLAN_ISSUED_ON,
                "legal_basis": ["Kết luận của Ban Thường vụ Tỉnh ủy"],
                "reporting_rule": "Định kỳ hằng quý, trước ngày 15 của tháng cuối quý"
            }),
            vec![],
            province_office(),
        ),
        "amend-plan" => (
            json!({ "plan_id": PLAN, "reporting_rule": "Định kỳ hằng tháng, trước ngày 20", "reason": AMEND_REASON }),
            plan_history(),
            province_office(),
        ),
        "record-item" => (
            json!({ "item_id": "kh-63-2025-03", "plan_id": PLAN, "ordinal": 3, "title": "Chuyển đổi số còn chậm", "sector": "Chuyển đổi số" }),
            vec![],
            province_office(),
        ),
        "assign-lead" => (
            json!({ "item_id": ITEM_2, "assignee": { "unit": XAY_DUNG } }),
            item_2_history(),
            province_office(),
        ),
        "assign-coordinator" => (
            json!({ "item_id": ITEM_2, "assignee": { "group": DISTRICTS } }),
            item_2_history(),
            province_office(),
        ),
        "revoke-assignment" => (
            json!({ "item_id": ITEM_1, "role": "coordinator", "assignee": { "group": DISTRICTS }, "reason": REVOKE_REASON }),
            item_1_history(),
            province_office(),
        ),
        "set-item-deadline" => (
            json!({ "item_id": ITEM_1, "due_on": "2025-12-31" }),
            item_1_history(),
            province_office(),
        ),
        "change-item-status" => (
            json!({ "item_id": ITEM_1, "to": "in_progress", "reason": STATUS_REASON }),
            item_1_history(),
            staff(XAY_DUNG),
        ),
        "plan-task" => (
            json!({
                "task_id": "xd-02",
                "item_id": ITEM_1,
                "unit_id": XAY_DUNG,
                "title": "Số hóa hồ sơ cấp giấy chứng nhận",
                "person_responsible": "Lê Văn Bình",
                "leader_in_charge": "Nguyễn Thị An",
                "due_on": "2025-10-31"
            }),
            vec![],
            staff(XAY_DUNG),
        ),
        "reschedule-task" => (
            json!({ "task_id": TASK, "due_on": "2025-10-31", "reason": RESCHEDULE_REASON }),
            task_history(),
            staff(XAY_DUNG),
        ),
        "change-task-status" => (
            json!({ "task_id": TASK, "to": "in_progress", "reason": STATUS_REASON }),
            task_history(),
            staff(XAY_DUNG),
        ),
        "cancel-task" => (
            json!({ "task_id": TASK, "reason": CANCEL_REASON }),
            task_history(),
            staff(XAY_DUNG),
        ),
        "submit-report" => (
            json!({
                "plan_id": PLAN,
                "unit_id": XAY_DUNG,
                "quarter": q3,
                "lines": [{ "item_id": ITEM_1, "progress": "Đã cấp 120 giấy chứng nhận", "status": "in_progress" }]
            }),
            vec![],
            staff(XAY_DUNG),
        ),
        "revise-report" => (
            json!({
                "plan_id": PLAN,
                "unit_id": XAY_DUNG,
                "quarter": q3,
                "lines": [{ "item_id": ITEM_1, "progress": "Đã cấp 135 giấy chứng nhận" }],
                "reason": REVISE_REASON
            }),
            xd_report_history(),
            staff(XAY_DUNG),
        ),
        "accept-report" => (
            json!({ "plan_id": PLAN, "unit_id": XAY_DUNG, "quarter": q3 }),
            xd_report_history(),
            finance(),
        ),
        "return-report" => (
            json!({ "plan_id": PLAN, "unit_id": XAY_DUNG, "quarter": q3, "reason": RETURN_REASON }),
            xd_report_history(),
            finance(),
        ),
        "record-digest" => (
            json!({ "up_to_sequence": 120, "chains": 40, "events": 118, "digest": DIGEST }),
            vec![],
            auditor(),
        ),
        "record-audit-read" => (
            json!({ "day": TODAY, "query": AUDIT_QUERY, "results": 12 }),
            vec![],
            auditor(),
        ),
        "quarantine-message" => (
            json!({ "sequence": 187, "subject": "events.unit.so-y-te", "digest": DIGEST, "size": 412, "reason": "Sự kiện giả mạo, không thuộc chuỗi băm" }),
            vec![],
            auditor(),
        ),
        other => panic!("no example for command {other}: add one to `example`"),
    };
    Example { body, given, actor }
}

/// The command parsed from the example body, checked against its spec entry.
pub(crate) fn example_command(spec: &CommandSpec, body: &Value) -> Command {
    let command = parse(spec.name, body).unwrap_or_else(|e| panic!("{}: {e}", spec.name));
    assert_eq!(command.name(), spec.name);
    assert_eq!(command.target().kind(), spec.aggregate, "{}", spec.name);
    command
}

#[test]
fn every_listed_command_parses_and_decides_its_happy_path() {
    for spec in COMMANDS {
        let ex = example(spec.name);
        let command = example_command(spec, &ex.body);
        let events = Spec::given(command.target(), &ex.given)
            .with_facts(world())
            .as_actor(ex.actor)
            .when(command)
            .events();
        assert!(
            events.iter().all(|e| e.kind() == spec.aggregate),
            "{}: {events:?}",
            spec.name
        );
    }
}

/// Commands that record something that happened rather than a desired state: each one is a
/// fact of its own, so a repeat is recorded again instead of changing nothing.
const NOT_IDEMPOTENT: &[&str] = &["record-audit-read"];

#[test]
fn every_listed_command_repeated_right_away_changes_nothing() {
    for spec in COMMANDS {
        let ex = example(spec.name);
        let command = example_command(spec, &ex.body);
        let first = Spec::given(command.target(), &ex.given)
            .with_facts(world())
            .as_actor(ex.actor.clone())
            .when(command.clone());
        let history = first.history();
        let repeat = Spec::given(command.target(), &history)
            .with_facts(world())
            .as_actor(ex.actor)
            .when(command);
        if NOT_IDEMPOTENT.contains(&spec.name) {
            // The exception proves the rule: the repeat yields again what the first one did.
            let again = repeat.events();
            assert_eq!(again, history[ex.given.len()..], "{}", spec.name);
        } else {
            repeat.then_nothing();
        }
    }
}

/// Auditors verify the log, and recording the digest of its chains is part of that; reading the
/// audit trail is what auditors do, and every read is recorded; signing off a break in the log
/// (a quarantine) is an audit decision.
const AUDITOR_COMMANDS: &[&str] = &["record-digest", "record-audit-read", "quarantine-message"];

#[test]
fn auditor_and_viewer_may_issue_no_command() {
    for spec in COMMANDS
        .iter()
        .filter(|s| !AUDITOR_COMMANDS.contains(&s.name))
    {
        let ex = example(spec.name);
        let command = example_command(spec, &ex.body);
        let after = Spec::given(command.target(), &ex.given)
            .with_facts(world())
            .as_actor(ex.actor)
            .when(command.clone())
            .history();
        for reader in [auditor(), viewer()] {
            // Neither the first issue of the command nor a repeat that would change nothing.
            for given in [&ex.given, &after] {
                Spec::given(command.target(), given)
                    .with_facts(world())
                    .as_actor(reader.clone())
                    .when(command.clone())
                    .then_forbidden();
            }
        }
    }
}

#[test]
fn an_effective_time_in_the_future_is_rejected_for_every_role() {
    for spec in COMMANDS {
        let ex = example(spec.name);
        let command = example_command(spec, &ex.body);
        for actor in [
            province_office(),
            finance(),
            staff(XAY_DUNG),
            auditor(),
            viewer(),
        ] {
            Spec::given(command.target(), &ex.given)
                .with_facts(world())
                .as_actor(actor)
                .effective_at("2025-07-15T09:00:01+07:00")
                .when(command.clone())
                .then_rejected(Rule::EffectiveTimeInFuture);
        }
    }
}

#[test]
fn unit_staff_may_not_backdate_a_record() {
    Spec::given(task_ref(TASK), &task_history())
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .effective_at("2025-07-14T09:00:00+07:00")
        .when(change_task_status(TASK, Lifecycle::InProgress, None))
        .then_forbidden();
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &[])
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .effective_at("2025-07-14T09:00:00+07:00")
        .when(submit(
            PLAN,
            XAY_DUNG,
            q3(),
            vec![line(ITEM_1, "Đã cấp 120 giấy chứng nhận")],
        ))
        .then_forbidden();
}

#[test]
fn the_province_office_may_backdate_a_record() {
    // An assignment decided at a meeting on the 10th, keyed in on the 15th, runs from the 10th.
    Spec::given(item_ref(ITEM_2), &item_2_history())
        .with_facts(world())
        .effective_at("2025-07-10T15:00:00+07:00")
        .when(assign_coordinator(ITEM_2, unit_assignee(NGA_SON)))
        .then(&[assigned(
            AssignmentRole::Coordinator,
            unit_assignee(NGA_SON),
            "2025-07-10T15:00:00+07:00",
        )]);
}

#[test]
fn the_department_of_finance_may_backdate_a_review() {
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &xd_report_history())
        .with_facts(world())
        .as_actor(finance())
        .effective_at("2025-07-12T16:00:00+07:00")
        .when(accept(PLAN, XAY_DUNG, q3()))
        .then(&[Event::Report(ReportEvent::Accepted {
            accepted_at: instant("2025-07-12T16:00:00+07:00"),
        })]);
}

#[test]
fn a_command_against_an_aggregate_of_another_type_is_not_found() {
    Spec::given(group_ref(DISTRICTS), &districts_history())
        .with_facts(world())
        .decide(register_unit(DISTRICTS, "UBND các huyện", UnitKind::Other))
        .then_not_found();
    Spec::given(item_ref(ITEM_1), &item_1_history())
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .decide(change_task_status(ITEM_1, Lifecycle::InProgress, None))
        .then_not_found();
}

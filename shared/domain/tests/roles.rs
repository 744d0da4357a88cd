//! Principals with several roles, and separation of duties in reviewing reports — given the
//! events of the target aggregate and facts about others, **when** a principal's command is
//! decided, **then** these events under this acting role, or this rejection.
//!
//! The fixture world: Plan 63 names Sở Tài chính the recipient of the quarterly reports and the
//! lead unit of items 6 and 13; Sở Xây dựng leads item 1; Sở Kế hoạch và Đầu tư leads item 2,
//! submits its Q2 report and is merged into Sở Tài chính from 2025-06-20 (a fixture date).

use chrono::{DateTime, NaiveDate, Utc};
use remediation_domain::calendar::Quarter;
use remediation_domain::item::{AssignmentRole, ItemEvent};
use remediation_domain::lifecycle::Lifecycle;
use remediation_domain::plan::{AmendPlan, Plan, PlanEvent};
use remediation_domain::report::{ReportEvent, ReportKey, ReportLine, ReturnReport, SubmitReport};
use remediation_domain::task::{PlanTask, TaskEvent};
use remediation_domain::text::{ItemId, Name, PlanId, Prose, Reason, TaskId, Title, UnitId};
use remediation_domain::unit::{Succession, UnitEvent, UnitKind};
use remediation_domain::{
    Actor, AggregateRef, AggregateState, Assignee, Command, Event, Facts, Principal,
    PrincipalError, Rejection, Role, Rule,
};
use serde_json::json;

// ── values ───────────────────────────────────────────────────────────────────────────────────

fn instant(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .expect("a valid RFC 3339 instant")
        .with_timezone(&Utc)
}

fn day(iso: &str) -> NaiveDate {
    iso.parse().expect("a valid ISO date")
}

fn unit_id(s: &str) -> UnitId {
    UnitId::new(s).expect("a valid unit id")
}

fn item_id(s: &str) -> ItemId {
    ItemId::new(s).expect("a valid item id")
}

fn name(s: &str) -> Name {
    Name::new(s).expect("a valid name")
}

fn title(s: &str) -> Title {
    Title::new(s).expect("a valid title")
}

fn prose(s: &str) -> Prose {
    Prose::new(s).expect("valid prose")
}

fn reason(s: &str) -> Reason {
    Reason::new(s).expect("a valid reason")
}

const PLAN: &str = "kh-63-2025";
const PLAN_ISSUED_ON: &str = "2025-04-08";
/// Sở Tài chính: the plan's recipient of reports, lead of items 6 and 13.
const TAI_CHINH: &str = "so-tai-chinh";
/// Sở Xây dựng: lead of item 1.
const XAY_DUNG: &str = "so-xay-dung";
/// Sở Kế hoạch và Đầu tư: lead of item 2, merged into Sở Tài chính from MERGED_ON.
const KE_HOACH: &str = "so-ke-hoach-va-dau-tu";
const VAN_PHONG: &str = "van-phong-ubnd-tinh";
const MERGED_ON: &str = "2025-06-20";

const ITEM_1: &str = "kh-63-2025-01";
const ITEM_2: &str = "kh-63-2025-02";
const ITEM_6: &str = "kh-63-2025-06";
const ITEM_13: &str = "kh-63-2025-13";

const ASSIGNED_AT: &str = "2025-04-08T00:00:00+07:00";
const NOW: &str = "2025-07-15T09:00:00+07:00";
const SUBMITTED_AT: &str = "2025-07-10T10:00:00+07:00";
const RETURN_REASON: &str = "Thiếu số liệu kết quả thực hiện quý";

fn q2() -> Quarter {
    Quarter::new(2025, 2).expect("a quarter")
}

fn q3() -> Quarter {
    Quarter::new(2025, 3).expect("a quarter")
}

fn key(unit: &str, quarter: Quarter) -> ReportKey {
    ReportKey {
        plan_id: PlanId::new(PLAN).expect("plan id"),
        unit_id: unit_id(unit),
        quarter,
    }
}

fn report_ref(unit: &str, quarter: Quarter) -> AggregateRef {
    AggregateRef::Report(key(unit, quarter).report_id())
}

fn unit_ref(id: &str) -> AggregateRef {
    AggregateRef::Unit(unit_id(id))
}

fn item_ref(id: &str) -> AggregateRef {
    AggregateRef::Item(item_id(id))
}

fn plan_ref() -> AggregateRef {
    AggregateRef::Plan(PlanId::new(PLAN).expect("plan id"))
}

// ── the fixture world ────────────────────────────────────────────────────────────────────────

fn plan(recipient: Option<&str>) -> Plan {
    Plan {
        code: name("63/KH-UBND"),
        title: title("Kế hoạch khắc phục những hạn chế, yếu kém năm 2024"),
        issuer: name("UBND tỉnh Thanh Hóa"),
        issued_on: day(PLAN_ISSUED_ON),
        legal_basis: vec![],
        reporting_rule: prose(
            "Định kỳ trước ngày 15 của tháng cuối quý, gửi báo cáo về Sở Tài chính để tổng hợp.",
        ),
        report_recipient: recipient.map(unit_id),
    }
}

fn registered(unit_name: &str) -> Event {
    Event::Unit(UnitEvent::Registered {
        name: name(unit_name),
        kind: UnitKind::Department,
    })
}

fn item_led_by(ordinal: u16, lead: &str) -> Vec<Event> {
    vec![
        Event::Item(ItemEvent::Recorded {
            plan_id: PlanId::new(PLAN).expect("plan id"),
            plan_issued_on: day(PLAN_ISSUED_ON),
            ordinal,
            title: title(&format!("Hạn chế số {ordinal}")),
            sector: None,
            causes_objective: None,
            causes_subjective: None,
            remedies: None,
        }),
        Event::Item(ItemEvent::Assigned {
            role: AssignmentRole::Lead,
            assignee: Assignee::Unit(unit_id(lead)),
            from: instant(ASSIGNED_AT),
        }),
    ]
}

fn fold(of: &AggregateRef, events: &[Event]) -> AggregateState {
    events
        .iter()
        .fold(AggregateState::initial(of), AggregateState::evolve)
}

fn facts(plan: Plan) -> Facts {
    let mut facts = Facts::default();
    let known = [
        (plan_ref(), vec![Event::Plan(PlanEvent::Issued(plan))]),
        (unit_ref(TAI_CHINH), vec![registered("Sở Tài chính")]),
        (unit_ref(XAY_DUNG), vec![registered("Sở Xây dựng")]),
        (unit_ref(VAN_PHONG), vec![registered("Văn phòng UBND tỉnh")]),
        (
            unit_ref(KE_HOACH),
            vec![
                registered("Sở Kế hoạch và Đầu tư"),
                Event::Unit(UnitEvent::Succeeded(Succession {
                    successors: vec![unit_id(TAI_CHINH)],
                    effective_on: day(MERGED_ON),
                    reason: reason("Hợp nhất Sở Kế hoạch và Đầu tư vào Sở Tài chính"),
                })),
            ],
        ),
        (item_ref(ITEM_1), item_led_by(1, XAY_DUNG)),
        (item_ref(ITEM_2), item_led_by(2, KE_HOACH)),
        (item_ref(ITEM_6), item_led_by(6, TAI_CHINH)),
        (item_ref(ITEM_13), item_led_by(13, TAI_CHINH)),
    ];
    for (of, events) in known {
        fold(&of, &events).add_to(&of, &mut facts);
    }
    facts
}

fn world() -> Facts {
    facts(plan(Some(TAI_CHINH)))
}

fn line(item: &str, progress: &str) -> ReportLine {
    ReportLine {
        item_id: item_id(item),
        progress: prose(progress),
        status: Some(Lifecycle::InProgress),
    }
}

fn submitted(unit: &str, quarter: Quarter, item: &str, at: &str) -> Vec<Event> {
    vec![Event::Report(ReportEvent::Submitted {
        plan_id: PlanId::new(PLAN).expect("plan id"),
        unit_id: unit_id(unit),
        quarter,
        lines: vec![line(item, "Đã triển khai theo kế hoạch")],
        submitted_at: instant(at),
    })]
}

fn accept(unit: &str, quarter: Quarter) -> Command {
    Command::AcceptReport(key(unit, quarter))
}

fn return_report(unit: &str, quarter: Quarter) -> Command {
    Command::ReturnReport(ReturnReport {
        plan_id: PlanId::new(PLAN).expect("plan id"),
        unit_id: unit_id(unit),
        quarter,
        reason: reason(RETURN_REASON),
    })
}

fn accepted() -> Event {
    Event::Report(ReportEvent::Accepted {
        accepted_at: instant(NOW),
    })
}

fn returned() -> Event {
    Event::Report(ReportEvent::Returned {
        reason: reason(RETURN_REASON),
        returned_at: instant(NOW),
    })
}

// ── principals ───────────────────────────────────────────────────────────────────────────────

/// An officer of Sở Tài chính: reviews reports, and manages the department's own tasks and
/// reports as a lead unit.
fn finance_officer() -> Principal {
    Principal::new(
        "stc",
        Some(unit_id(TAI_CHINH)),
        [Role::DepartmentOfFinance, Role::UnitStaff],
    )
    .expect("a principal")
}

fn province_office() -> Principal {
    Actor {
        user: "vp-ubnd".to_owned(),
        unit: Some(unit_id(VAN_PHONG)),
        role: Role::ProvinceOffice,
    }
    .into()
}

/// A token issued before principals held several roles: one role, no unit.
fn old_finance_token() -> Principal {
    Actor {
        user: "stc-cu".to_owned(),
        unit: None,
        role: Role::DepartmentOfFinance,
    }
    .into()
}

// ── given / when / then ──────────────────────────────────────────────────────────────────────

struct Spec {
    target: AggregateRef,
    given: Vec<Event>,
    facts: Facts,
    principal: Principal,
}

fn given(target: AggregateRef, events: &[Event]) -> Spec {
    Spec {
        target,
        given: events.to_vec(),
        facts: world(),
        principal: finance_officer(),
    }
}

impl Spec {
    fn with_facts(mut self, facts: Facts) -> Self {
        self.facts = facts;
        self
    }

    fn by(mut self, principal: Principal) -> Self {
        self.principal = principal;
        self
    }

    fn when(self, command: Command) -> Outcome {
        let state = fold(&self.target, &self.given);
        assert_eq!(
            command.target(),
            self.target,
            "the command targets the spec's aggregate"
        );
        let now = instant(NOW);
        Outcome {
            command: command.name(),
            result: command
                .decide_as(&state, &self.principal, now, now, &self.facts)
                .map(|d| (d.actor.role, d.events)),
        }
    }
}

struct Outcome {
    command: &'static str,
    result: Result<(Role, Vec<Event>), Rejection>,
}

impl Outcome {
    /// Decided under `role`, yielding exactly `events`.
    fn then(self, role: Role, events: &[Event]) {
        assert_eq!(self.result, Ok((role, events.to_vec())), "{}", self.command);
    }

    fn then_rejected(self, rule: Rule) {
        match self.result {
            Err(Rejection::Rule { rule: got, .. }) => assert_eq!(got, rule, "{}", self.command),
            other => panic!("{}: expected rule {rule}, got {other:?}", self.command),
        }
    }

    fn then_forbidden(self) {
        assert!(
            matches!(self.result, Err(Rejection::Forbidden(_))),
            "{}: expected forbidden, got {:?}",
            self.command,
            self.result
        );
    }

    fn then_not_found(self) {
        assert!(
            matches!(self.result, Err(Rejection::NotFound(_))),
            "{}: expected not found, got {:?}",
            self.command,
            self.result
        );
    }
}

// ── the Department of Finance as a lead unit ─────────────────────────────────────────────────

#[test]
fn a_finance_officer_plans_a_task_of_item_6_as_staff_of_their_unit() {
    let task = PlanTask {
        task_id: TaskId::new("stc-2025-06").expect("task id"),
        item_id: item_id(ITEM_6),
        unit_id: unit_id(TAI_CHINH),
        title: title("Rà soát, đẩy nhanh giải ngân vốn đầu tư công"),
        person_responsible: name("Trần Văn Cường"),
        leader_in_charge: name("Phó Giám đốc Lê Thị Dung"),
        due_on: day("2025-12-15"),
    };
    given(AggregateRef::Task(task.task_id.clone()), &[])
        .when(Command::PlanTask(task.clone()))
        .then(
            Role::UnitStaff,
            &[Event::Task(TaskEvent::Planned {
                item_id: task.item_id,
                unit_id: task.unit_id,
                plan_issued_on: day(PLAN_ISSUED_ON),
                title: task.title,
                person_responsible: task.person_responsible,
                leader_in_charge: task.leader_in_charge,
                due_on: task.due_on,
            })],
        );
}

#[test]
fn a_finance_officer_submits_their_units_quarterly_report_on_items_6_and_13() {
    let lines = vec![
        line(ITEM_6, "Đã giải ngân 65% kế hoạch vốn"),
        line(ITEM_13, "Đã ban hành hướng dẫn thu ngân sách"),
    ];
    given(report_ref(TAI_CHINH, q3()), &[])
        .when(Command::SubmitReport(SubmitReport {
            plan_id: PlanId::new(PLAN).expect("plan id"),
            unit_id: unit_id(TAI_CHINH),
            quarter: q3(),
            lines: lines.clone(),
        }))
        .then(
            Role::UnitStaff,
            &[Event::Report(ReportEvent::Submitted {
                plan_id: PlanId::new(PLAN).expect("plan id"),
                unit_id: unit_id(TAI_CHINH),
                quarter: q3(),
                lines,
                submitted_at: instant(NOW),
            })],
        );
}

#[test]
fn a_principal_holding_only_the_finance_role_submits_no_report_for_its_unit() {
    let reviewer_only =
        Principal::new("stc", Some(unit_id(TAI_CHINH)), [Role::DepartmentOfFinance])
            .expect("a principal");
    given(report_ref(TAI_CHINH, q3()), &[])
        .by(reviewer_only)
        .when(Command::SubmitReport(SubmitReport {
            plan_id: PlanId::new(PLAN).expect("plan id"),
            unit_id: unit_id(TAI_CHINH),
            quarter: q3(),
            lines: vec![line(ITEM_6, "Đã giải ngân 65% kế hoạch vốn")],
        }))
        .then_forbidden();
}

// ── separation of duties ─────────────────────────────────────────────────────────────────────

#[test]
fn a_finance_officer_may_neither_accept_nor_return_their_own_units_report() {
    let own = submitted(TAI_CHINH, q3(), ITEM_6, SUBMITTED_AT);
    given(report_ref(TAI_CHINH, q3()), &own)
        .when(accept(TAI_CHINH, q3()))
        .then_rejected(Rule::OwnReportReview);
    given(report_ref(TAI_CHINH, q3()), &own)
        .when(return_report(TAI_CHINH, q3()))
        .then_rejected(Rule::OwnReportReview);
    // Whatever the order of the roles on the token.
    let staff_first = Principal::new(
        "stc",
        Some(unit_id(TAI_CHINH)),
        [Role::UnitStaff, Role::DepartmentOfFinance],
    )
    .expect("a principal");
    given(report_ref(TAI_CHINH, q3()), &own)
        .by(staff_first)
        .when(accept(TAI_CHINH, q3()))
        .then_rejected(Rule::OwnReportReview);
}

#[test]
fn a_finance_officer_reviews_another_units_report_as_the_department_of_finance() {
    let theirs = submitted(XAY_DUNG, q3(), ITEM_1, SUBMITTED_AT);
    given(report_ref(XAY_DUNG, q3()), &theirs)
        .when(accept(XAY_DUNG, q3()))
        .then(Role::DepartmentOfFinance, &[accepted()]);
    given(report_ref(XAY_DUNG, q3()), &theirs)
        .when(return_report(XAY_DUNG, q3()))
        .then(Role::DepartmentOfFinance, &[returned()]);
}

#[test]
fn the_province_office_reviews_the_department_of_finances_report() {
    let finance_report = submitted(TAI_CHINH, q3(), ITEM_6, SUBMITTED_AT);
    given(report_ref(TAI_CHINH, q3()), &finance_report)
        .by(province_office())
        .when(accept(TAI_CHINH, q3()))
        .then(Role::ProvinceOffice, &[accepted()]);
    given(report_ref(TAI_CHINH, q3()), &finance_report)
        .by(province_office())
        .when(return_report(TAI_CHINH, q3()))
        .then(Role::ProvinceOffice, &[returned()]);
}

#[test]
fn the_province_office_reviews_no_other_units_report() {
    let theirs = submitted(XAY_DUNG, q3(), ITEM_1, SUBMITTED_AT);
    given(report_ref(XAY_DUNG, q3()), &theirs)
        .by(province_office())
        .when(accept(XAY_DUNG, q3()))
        .then_forbidden();
    given(report_ref(XAY_DUNG, q3()), &theirs)
        .by(province_office())
        .when(return_report(XAY_DUNG, q3()))
        .then_forbidden();
}

#[test]
fn an_old_single_role_finance_token_reviews_other_units_but_not_the_departments_own_report() {
    given(
        report_ref(XAY_DUNG, q3()),
        &submitted(XAY_DUNG, q3(), ITEM_1, SUBMITTED_AT),
    )
    .by(old_finance_token())
    .when(accept(XAY_DUNG, q3()))
    .then(Role::DepartmentOfFinance, &[accepted()]);
    // The token names no unit, but the plan names the department its reports go to.
    given(
        report_ref(TAI_CHINH, q3()),
        &submitted(TAI_CHINH, q3(), ITEM_6, SUBMITTED_AT),
    )
    .by(old_finance_token())
    .when(accept(TAI_CHINH, q3()))
    .then_rejected(Rule::OwnReportReview);
}

#[test]
fn a_report_of_a_unit_merged_into_the_department_of_finance_is_the_departments_own() {
    let predecessor = submitted(KE_HOACH, q2(), ITEM_2, "2025-06-10T10:00:00+07:00");
    given(report_ref(KE_HOACH, q2()), &predecessor)
        .when(accept(KE_HOACH, q2()))
        .then_rejected(Rule::OwnReportReview);
    given(report_ref(KE_HOACH, q2()), &predecessor)
        .by(old_finance_token())
        .when(accept(KE_HOACH, q2()))
        .then_rejected(Rule::OwnReportReview);
    given(report_ref(KE_HOACH, q2()), &predecessor)
        .by(province_office())
        .when(accept(KE_HOACH, q2()))
        .then(Role::ProvinceOffice, &[accepted()]);
}

#[test]
fn without_a_named_recipient_the_province_office_reviews_nothing_and_finance_all_but_its_own() {
    let unnamed = facts(plan(None));
    let finance_report = submitted(TAI_CHINH, q3(), ITEM_6, SUBMITTED_AT);
    given(report_ref(TAI_CHINH, q3()), &finance_report)
        .with_facts(unnamed.clone())
        .by(province_office())
        .when(accept(TAI_CHINH, q3()))
        .then_forbidden();
    given(report_ref(TAI_CHINH, q3()), &finance_report)
        .with_facts(unnamed.clone())
        .when(accept(TAI_CHINH, q3()))
        .then_rejected(Rule::OwnReportReview);
    given(
        report_ref(XAY_DUNG, q3()),
        &submitted(XAY_DUNG, q3(), ITEM_1, SUBMITTED_AT),
    )
    .with_facts(unnamed)
    .when(accept(XAY_DUNG, q3()))
    .then(Role::DepartmentOfFinance, &[accepted()]);
}

// ── choosing the acting role ─────────────────────────────────────────────────────────────────

#[test]
fn the_most_informative_refusal_wins_when_no_role_may_act() {
    // As unit staff the officer may not review at all; as the Department of Finance the report
    // does not exist: that is the answer.
    given(report_ref(XAY_DUNG, q3()), &[])
        .when(accept(XAY_DUNG, q3()))
        .then_not_found();
    // Neither role may issue a plan: forbidden.
    given(plan_ref(), &[])
        .when(Command::AmendPlan(AmendPlan {
            plan_id: PlanId::new(PLAN).expect("plan id"),
            title: None,
            legal_basis: None,
            reporting_rule: None,
            report_recipient: Some(unit_id(XAY_DUNG)),
            reason: reason("Thử"),
        }))
        .then_forbidden();
}

#[test]
fn a_principal_holds_at_least_one_role_and_each_role_once() {
    assert_eq!(
        Principal::new("x", None, []).map(|p| p.roles().to_vec()),
        Err(PrincipalError::NoRole)
    );
    let principal = Principal::new("x", None, [Role::Auditor, Role::Viewer, Role::Auditor])
        .expect("a principal");
    assert_eq!(principal.roles(), [Role::Auditor, Role::Viewer]);
    assert_eq!(principal.primary_role(), Role::Auditor);
}

// ── the plan names its recipient ─────────────────────────────────────────────────────────────

#[test]
fn an_amendment_names_the_recipient_of_a_plan_issued_without_one_once() {
    let issued = [Event::Plan(PlanEvent::Issued(plan(None)))];
    let amend = || {
        Command::AmendPlan(AmendPlan {
            plan_id: PlanId::new(PLAN).expect("plan id"),
            title: None,
            legal_basis: None,
            reporting_rule: None,
            report_recipient: Some(unit_id(TAI_CHINH)),
            reason: reason("Kế hoạch giao Sở Tài chính tổng hợp báo cáo"),
        })
    };
    let amended = Event::Plan(PlanEvent::Amended {
        title: None,
        legal_basis: None,
        reporting_rule: None,
        report_recipient: Some(unit_id(TAI_CHINH)),
        reason: reason("Kế hoạch giao Sở Tài chính tổng hợp báo cáo"),
    });
    given(plan_ref(), &issued)
        .by(province_office())
        .when(amend())
        .then(Role::ProvinceOffice, std::slice::from_ref(&amended));
    given(plan_ref(), &[issued[0].clone(), amended])
        .by(province_office())
        .when(amend())
        .then(Role::ProvinceOffice, &[]);
}

#[test]
fn plan_events_stored_before_the_recipient_existed_read_and_write_back_unchanged() {
    let issued = json!({
        "code": "63/KH-UBND", "title": "Kế hoạch", "issuer": "UBND tỉnh Thanh Hóa",
        "issued_on": "2025-04-08", "legal_basis": [], "reporting_rule": "Hằng quý"
    });
    let amended = json!({
        "title": "Kế hoạch sửa đổi", "legal_basis": null, "reporting_rule": null,
        "reason": "Theo chỉ đạo"
    });
    for (name, data) in [("issued", issued), ("amended", amended)] {
        let event = Event::decode("plan", name, 1, data.clone()).expect("decodes");
        assert_eq!(event.name_and_data(), (name.to_owned(), data), "{name}");
    }
}

//! Decider tests, in the style of Equinox / EventSourcing.NetCore: **given** the events of the
//! target aggregate (and facts folded from other aggregates' events), **when** a command is
//! decided, **then** these events — or this rejection, or nothing at all.
//!
//! The fixture world is a small slice of Kế hoạch 63/KH-UBND: a plan issued on 2025-03-10, two
//! of its items, a group of district committees, and a district (Đông Sơn) whose
//! responsibilities pass to the city of Thanh Hóa from 2025-07-01.
//!
//! This file holds the fixture world and the given/when/then harness; the tests sit in
//! `deciders/`, one file per aggregate (`unit`, `group`, `plan`, `item`, `task`, `report`,
//! `ledger`, `access`) and per cross-cutting behaviour (`commands`: one happy path per command;
//! `lifecycle`, `succession`, `reasons`, `parsing`, `properties`).

use chrono::{DateTime, NaiveDate, Utc};
use remediation_domain::access::{AccessDay, AccessEvent, ReadQuery, RecordAuditRead};
use remediation_domain::calendar::{self, Quarter, Timeliness};
use remediation_domain::group::{AddGroupMember, DefineGroup, GroupEvent, RemoveGroupMember};
use remediation_domain::item::{
    Assign, AssignmentRole, ChangeItemStatus, ItemEvent, RecordItem, RevokeAssignment,
    SetItemDeadline,
};
use remediation_domain::lifecycle::Lifecycle;
use remediation_domain::plan::{AmendPlan, IssuePlan, Plan, PlanEvent};
use remediation_domain::quarantine::{QuarantineEvent, QuarantineMessage};
use remediation_domain::report::{
    ReportEvent, ReportKey, ReportLine, ReportStatus, ReturnReport, ReviseReport, SubmitReport,
};
use remediation_domain::task::{CancelTask, ChangeTaskStatus, PlanTask, RescheduleTask, TaskEvent};
use remediation_domain::text::{
    GroupId, ItemId, Name, PlanId, Prose, Reason, TaskId, Title, UnitId,
};
use remediation_domain::unit::{
    RegisterUnit, RenameUnit, SucceedUnit, Succession, UnitEvent, UnitKind,
};
use remediation_domain::{
    Actor, AggregateRef, AggregateState, Assignee, COMMANDS, Command, CommandSpec, Context, Event,
    Facts, Rejection, Role, Rule,
};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------

fn instant(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .expect("a valid RFC 3339 instant")
        .with_timezone(&Utc)
}

fn day(iso: &str) -> NaiveDate {
    iso.parse().expect("a valid ISO date")
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

fn unit_id(s: &str) -> UnitId {
    UnitId::new(s).expect("a valid unit id")
}

fn group_id(s: &str) -> GroupId {
    GroupId::new(s).expect("a valid group id")
}

fn plan_id(s: &str) -> PlanId {
    PlanId::new(s).expect("a valid plan id")
}

fn item_id(s: &str) -> ItemId {
    ItemId::new(s).expect("a valid item id")
}

fn task_id(s: &str) -> TaskId {
    TaskId::new(s).expect("a valid task id")
}

fn quarter(year: i32, q: u8) -> Quarter {
    Quarter::new(year, q).expect("a valid quarter")
}

fn unit_ref(id: &str) -> AggregateRef {
    AggregateRef::Unit(unit_id(id))
}

fn group_ref(id: &str) -> AggregateRef {
    AggregateRef::Group(group_id(id))
}

fn plan_ref(id: &str) -> AggregateRef {
    AggregateRef::Plan(plan_id(id))
}

fn item_ref(id: &str) -> AggregateRef {
    AggregateRef::Item(item_id(id))
}

fn task_ref(id: &str) -> AggregateRef {
    AggregateRef::Task(task_id(id))
}

fn key(plan: &str, unit: &str, q: Quarter) -> ReportKey {
    ReportKey {
        plan_id: plan_id(plan),
        unit_id: unit_id(unit),
        quarter: q,
    }
}

fn report_ref(plan: &str, unit: &str, q: Quarter) -> AggregateRef {
    AggregateRef::Report(key(plan, unit, q).report_id())
}

fn unit_assignee(id: &str) -> Assignee {
    Assignee::Unit(unit_id(id))
}

fn group_assignee(id: &str) -> Assignee {
    Assignee::Group(group_id(id))
}

// ---------------------------------------------------------------------------------------------
// The fixture world
// ---------------------------------------------------------------------------------------------

const PLAN: &str = "kh-63-2025";
const PLAN_ISSUED_ON: &str = "2025-03-10";
const OTHER_PLAN: &str = "kh-99-2025";
const OTHER_PLAN_ISSUED_ON: &str = "2025-05-20";

/// Lead of ITEM_1, and of ITEM_OTHER.
const XAY_DUNG: &str = "so-xay-dung";
/// The Department of Finance's own unit; assigned to nothing.
const TAI_CHINH: &str = "so-tai-chinh";
/// Assigned to nothing.
const NOI_VU: &str = "so-noi-vu";
/// Lead of ITEM_2 and member of DISTRICTS; succeeded by THANH_HOA from SUCCESSION_ON.
const DONG_SON: &str = "ubnd-huyen-dong-son";
const THANH_HOA: &str = "ubnd-tp-thanh-hoa";
/// Member of DISTRICTS.
const NGA_SON: &str = "ubnd-huyen-nga-son";
/// Registered, in no group.
const QUANG_XUONG: &str = "ubnd-huyen-quang-xuong";
/// Coordinator of ITEM_1.
const DISTRICTS: &str = "ubnd-cac-huyen";

const ITEM_1: &str = "kh-63-2025-01";
const ITEM_2: &str = "kh-63-2025-02";
const ITEM_OTHER: &str = "kh-99-2025-01";
/// XAY_DUNG's task for ITEM_1.
const TASK: &str = "xd-01";
/// DONG_SON's task for ITEM_2.
const TASK_DS: &str = "ds-01";

const ASSIGNED_AT: &str = "2025-03-20T08:00:00+07:00";
const MEMBERS_FROM: &str = "2025-03-10";
const SUCCESSION_ON: &str = "2025-07-01";
const BEFORE_SUCCESSION: &str = "2025-06-20T09:00:00+07:00";
/// The default decision time: Q3/2025, after the succession.
const NOW: &str = "2025-07-15T09:00:00+07:00";
const SUBMITTED_AT: &str = "2025-07-10T10:00:00+07:00";
const TASK_DUE: &str = "2025-09-30";

const MERGER: &str = "Sắp xếp đơn vị hành chính cấp huyện theo Nghị quyết của UBTVQH";
const STATUS_REASON: &str = "Theo báo cáo tiến độ của đơn vị";
const EVIDENCE: &str = "Văn bản số 123/SXD-QLN kèm danh mục hồ sơ đã xử lý";

fn registered(unit_name: &str, kind: UnitKind) -> Event {
    Event::Unit(UnitEvent::Registered {
        name: name(unit_name),
        kind,
    })
}

fn succeeded(successors: &[&str], on: &str) -> Event {
    Event::Unit(UnitEvent::Succeeded(Succession {
        successors: successors.iter().map(|s| unit_id(s)).collect(),
        effective_on: day(on),
        reason: reason(MERGER),
    }))
}

fn group_defined(group_name: &str) -> Event {
    Event::Group(GroupEvent::Defined {
        name: name(group_name),
    })
}

fn member_added(unit: &str, from: &str) -> Event {
    Event::Group(GroupEvent::MemberAdded {
        unit_id: unit_id(unit),
        from: day(from),
    })
}

fn member_removed(unit: &str, from: &str, why: &str) -> Event {
    Event::Group(GroupEvent::MemberRemoved {
        unit_id: unit_id(unit),
        from: day(from),
        reason: reason(why),
    })
}

fn the_plan() -> Plan {
    Plan {
        code: name("63/KH-UBND"),
        title: title("Kế hoạch khắc phục những hạn chế, yếu kém năm 2025"),
        issuer: name("UBND tỉnh Thanh Hóa"),
        issued_on: day(PLAN_ISSUED_ON),
        legal_basis: vec![prose("Kết luận của Ban Thường vụ Tỉnh ủy")],
        reporting_rule: prose("Định kỳ hằng quý, trước ngày 15 của tháng cuối quý"),
        report_recipient: None,
    }
}

fn other_plan() -> Plan {
    Plan {
        code: name("99/KH-UBND"),
        title: title("Kế hoạch cải cách hành chính"),
        issued_on: day(OTHER_PLAN_ISSUED_ON),
        ..the_plan()
    }
}

fn plan_issued(plan: Plan) -> Event {
    Event::Plan(PlanEvent::Issued(plan))
}

fn item_recorded(plan: &str, issued_on: &str, ordinal: u16, item_title: &str) -> Event {
    Event::Item(ItemEvent::Recorded {
        plan_id: plan_id(plan),
        plan_issued_on: day(issued_on),
        ordinal,
        title: title(item_title),
        sector: None,
        causes_objective: None,
        causes_subjective: None,
        remedies: None,
    })
}

fn assigned(role: AssignmentRole, assignee: Assignee, from: &str) -> Event {
    Event::Item(ItemEvent::Assigned {
        role,
        assignee,
        from: instant(from),
    })
}

fn item_status_changed(from: Lifecycle, to: Lifecycle, at: &str) -> Event {
    Event::Item(ItemEvent::StatusChanged {
        from,
        to,
        reason: reason(STATUS_REASON),
        evidence: Some(prose(EVIDENCE)),
        at: instant(at),
    })
}

fn task_planned(item: &str, unit: &str, due: &str) -> Event {
    Event::Task(TaskEvent::Planned {
        item_id: item_id(item),
        unit_id: unit_id(unit),
        plan_issued_on: day(PLAN_ISSUED_ON),
        title: title("Rà soát hồ sơ tồn đọng"),
        person_responsible: name("Lê Văn Bình"),
        leader_in_charge: name("Nguyễn Thị An"),
        due_on: day(due),
    })
}

fn task_status_changed(from: Lifecycle, to: Lifecycle, at: &str) -> Event {
    Event::Task(TaskEvent::StatusChanged {
        from,
        to,
        reason: reason(STATUS_REASON),
        evidence: Some(prose(EVIDENCE)),
        at: instant(at),
    })
}

fn task_cancelled() -> Event {
    Event::Task(TaskEvent::Cancelled {
        reason: reason("Nhiệm vụ đã được gộp vào nhiệm vụ khác"),
    })
}

fn line(item: &str, progress: &str) -> ReportLine {
    ReportLine {
        item_id: item_id(item),
        progress: prose(progress),
        status: Some(Lifecycle::InProgress),
    }
}

fn report_submitted(plan: &str, unit: &str, q: Quarter, lines: Vec<ReportLine>, at: &str) -> Event {
    Event::Report(ReportEvent::Submitted {
        plan_id: plan_id(plan),
        unit_id: unit_id(unit),
        quarter: q,
        lines,
        submitted_at: instant(at),
    })
}

fn q3() -> Quarter {
    quarter(2025, 3)
}

fn plan_history() -> Vec<Event> {
    vec![plan_issued(the_plan())]
}

fn dong_son_history() -> Vec<Event> {
    vec![
        registered("UBND huyện Đông Sơn", UnitKind::DistrictCommittee),
        succeeded(&[THANH_HOA], SUCCESSION_ON),
    ]
}

fn districts_history() -> Vec<Event> {
    vec![
        group_defined("UBND các huyện, thị xã, thành phố"),
        member_added(DONG_SON, MEMBERS_FROM),
        member_added(NGA_SON, MEMBERS_FROM),
    ]
}

/// Lead: Sở Xây dựng; coordinating: the district committees.
fn item_1_history() -> Vec<Event> {
    vec![
        item_recorded(
            PLAN,
            PLAN_ISSUED_ON,
            1,
            "Cấp giấy chứng nhận quyền sở hữu nhà ở còn chậm",
        ),
        assigned(AssignmentRole::Lead, unit_assignee(XAY_DUNG), ASSIGNED_AT),
        assigned(
            AssignmentRole::Coordinator,
            group_assignee(DISTRICTS),
            ASSIGNED_AT,
        ),
    ]
}

/// Lead: UBND huyện Đông Sơn (succeeded by the city from 2025-07-01).
fn item_2_history() -> Vec<Event> {
    vec![
        item_recorded(
            PLAN,
            PLAN_ISSUED_ON,
            2,
            "Giải phóng mặt bằng các dự án trọng điểm chậm",
        ),
        assigned(AssignmentRole::Lead, unit_assignee(DONG_SON), ASSIGNED_AT),
    ]
}

fn item_other_history() -> Vec<Event> {
    vec![
        item_recorded(
            OTHER_PLAN,
            OTHER_PLAN_ISSUED_ON,
            1,
            "Thủ tục hành chính còn rườm rà",
        ),
        assigned(
            AssignmentRole::Lead,
            unit_assignee(XAY_DUNG),
            "2025-05-25T08:00:00+07:00",
        ),
    ]
}

fn task_history() -> Vec<Event> {
    vec![task_planned(ITEM_1, XAY_DUNG, TASK_DUE)]
}

fn task_ds_history() -> Vec<Event> {
    vec![task_planned(ITEM_2, DONG_SON, TASK_DUE)]
}

fn xd_report_history() -> Vec<Event> {
    vec![report_submitted(
        PLAN,
        XAY_DUNG,
        q3(),
        vec![line(ITEM_1, "Đã cấp 120 giấy chứng nhận")],
        SUBMITTED_AT,
    )]
}

/// Folds the events of one aggregate from its initial state.
fn fold(target: &AggregateRef, events: &[Event]) -> AggregateState {
    events
        .iter()
        .fold(AggregateState::initial(target), AggregateState::evolve)
}

/// Facts about other aggregates, each folded from its events.
#[derive(Default)]
struct Known(Facts);

impl Known {
    /// Records (or replaces) what is known of `of` after `events`.
    fn with(mut self, of: AggregateRef, events: &[Event]) -> Self {
        match &of {
            AggregateRef::Unit(id) => {
                self.0.units.remove(id);
            }
            AggregateRef::Group(id) => {
                self.0.groups.remove(id);
            }
            AggregateRef::Plan(id) => {
                self.0.plans.remove(id);
            }
            AggregateRef::Item(id) => {
                self.0.items.remove(id);
            }
            AggregateRef::Task(_)
            | AggregateRef::Report(_)
            | AggregateRef::Ledger
            | AggregateRef::Access(_)
            | AggregateRef::Quarantine(_) => {}
        }
        fold(&of, events).add_to(&of, &mut self.0);
        self
    }
}

impl From<Known> for Facts {
    fn from(known: Known) -> Facts {
        known.0
    }
}

fn world() -> Known {
    Known::default()
        .with(plan_ref(PLAN), &plan_history())
        .with(plan_ref(OTHER_PLAN), &[plan_issued(other_plan())])
        .with(
            unit_ref(XAY_DUNG),
            &[registered("Sở Xây dựng", UnitKind::Department)],
        )
        .with(
            unit_ref(TAI_CHINH),
            &[registered("Sở Tài chính", UnitKind::Department)],
        )
        .with(
            unit_ref(NOI_VU),
            &[registered("Sở Nội vụ", UnitKind::Department)],
        )
        .with(unit_ref(DONG_SON), &dong_son_history())
        .with(
            unit_ref(THANH_HOA),
            &[registered(
                "UBND thành phố Thanh Hóa",
                UnitKind::DistrictCommittee,
            )],
        )
        .with(
            unit_ref(NGA_SON),
            &[registered(
                "UBND huyện Nga Sơn",
                UnitKind::DistrictCommittee,
            )],
        )
        .with(
            unit_ref(QUANG_XUONG),
            &[registered(
                "UBND huyện Quảng Xương",
                UnitKind::DistrictCommittee,
            )],
        )
        .with(group_ref(DISTRICTS), &districts_history())
        .with(item_ref(ITEM_1), &item_1_history())
        .with(item_ref(ITEM_2), &item_2_history())
        .with(item_ref(ITEM_OTHER), &item_other_history())
}

// ---------------------------------------------------------------------------------------------
// Actors
// ---------------------------------------------------------------------------------------------

fn actor(role: Role, unit: Option<&str>) -> Actor {
    Actor {
        user: format!("{}@thanhhoa.gov.vn", role.as_str()),
        unit: unit.map(unit_id),
        role,
    }
}

fn province_office() -> Actor {
    actor(Role::ProvinceOffice, Some("van-phong-ubnd-tinh"))
}

fn finance() -> Actor {
    actor(Role::DepartmentOfFinance, Some(TAI_CHINH))
}

fn staff(unit: &str) -> Actor {
    actor(Role::UnitStaff, Some(unit))
}

fn auditor() -> Actor {
    actor(Role::Auditor, None)
}

fn viewer() -> Actor {
    actor(Role::Viewer, None)
}

// ---------------------------------------------------------------------------------------------
// Given / when / then
// ---------------------------------------------------------------------------------------------

struct Spec {
    target: AggregateRef,
    given: Vec<Event>,
    facts: Facts,
    actor: Actor,
    now: DateTime<Utc>,
    effective_at: Option<DateTime<Utc>>,
}

impl Spec {
    /// The target aggregate and its history. The province office acts at `NOW` unless told.
    fn given(target: AggregateRef, events: &[Event]) -> Self {
        Spec {
            target,
            given: events.to_vec(),
            facts: Facts::default(),
            actor: province_office(),
            now: instant(NOW),
            effective_at: None,
        }
    }

    fn with_facts(mut self, facts: impl Into<Facts>) -> Self {
        self.facts = facts.into();
        self
    }

    /// Reads as "…as actor X" in a spec; it is a builder step, not a conversion.
    #[allow(clippy::wrong_self_convention)]
    fn as_actor(mut self, actor: Actor) -> Self {
        self.actor = actor;
        self
    }

    /// When the decision is recorded; also when it takes effect unless `effective_at` says.
    fn at(mut self, now: &str) -> Self {
        self.now = instant(now);
        self
    }

    fn effective_at(mut self, at: &str) -> Self {
        self.effective_at = Some(instant(at));
        self
    }

    #[track_caller]
    fn when(self, command: Command) -> Outcome {
        assert_eq!(
            command.target(),
            self.target,
            "{} targets another aggregate than the spec's",
            command.name()
        );
        self.decide(command)
    }

    /// Decides without checking that the command targets the given aggregate.
    fn decide(self, command: Command) -> Outcome {
        let state = fold(&self.target, &self.given);
        let ctx = Context {
            actor: &self.actor,
            now: self.now,
            effective_at: self.effective_at.unwrap_or(self.now),
            facts: &self.facts,
        };
        let result = command.decide(&state, &ctx);
        Outcome {
            given: self.given,
            command,
            result,
        }
    }
}

struct Outcome {
    given: Vec<Event>,
    command: Command,
    result: Result<Vec<Event>, Rejection>,
}

impl Outcome {
    /// Asserts the new events and returns the whole history (given + new).
    #[track_caller]
    fn then(self, expected: &[Event]) -> Vec<Event> {
        assert_eq!(
            self.result,
            Ok(expected.to_vec()),
            "{}",
            self.command.name()
        );
        let mut history = self.given;
        history.extend_from_slice(expected);
        history
    }

    /// The new events, which must not be empty.
    #[track_caller]
    fn events(self) -> Vec<Event> {
        match self.result {
            Ok(events) if !events.is_empty() => events,
            other => panic!("{}: expected events, got {other:?}", self.command.name()),
        }
    }

    /// The whole history after the command, which must have produced events.
    #[track_caller]
    fn history(self) -> Vec<Event> {
        let name = self.command.name();
        match self.result {
            Ok(events) if !events.is_empty() => {
                let mut history = self.given;
                history.extend(events);
                history
            }
            other => panic!("{name}: expected events, got {other:?}"),
        }
    }

    #[track_caller]
    fn then_rejected(self, rule: Rule) -> String {
        match self.result {
            Err(Rejection::Rule { rule: got, detail }) if got == rule => detail,
            other => panic!(
                "{}: expected a rejection by rule {rule}, got {other:?}",
                self.command.name()
            ),
        }
    }

    #[track_caller]
    fn then_forbidden(self) -> String {
        match self.result {
            Err(Rejection::Forbidden(detail)) => detail,
            other => panic!("{}: expected Forbidden, got {other:?}", self.command.name()),
        }
    }

    #[track_caller]
    fn then_not_found(self) -> String {
        match self.result {
            Err(Rejection::NotFound(detail)) => detail,
            other => panic!("{}: expected NotFound, got {other:?}", self.command.name()),
        }
    }

    #[track_caller]
    fn then_nothing(self) {
        assert_eq!(
            self.result,
            Ok(vec![]),
            "{}: expected no events",
            self.command.name()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------------

fn register_unit(id: &str, unit_name: &str, kind: UnitKind) -> Command {
    Command::RegisterUnit(RegisterUnit {
        unit_id: unit_id(id),
        name: name(unit_name),
        kind,
    })
}

const RENAME_REASON: &str = "Theo Quyết định đổi tên của UBND tỉnh";

fn rename_unit(id: &str, unit_name: &str) -> Command {
    Command::RenameUnit(RenameUnit {
        unit_id: unit_id(id),
        name: name(unit_name),
        reason: reason(RENAME_REASON),
    })
}

fn succeed_unit(id: &str, successors: &[&str], on: &str) -> Command {
    Command::SucceedUnit(SucceedUnit {
        unit_id: unit_id(id),
        successors: successors.iter().map(|s| unit_id(s)).collect(),
        effective_on: day(on),
        reason: reason(MERGER),
    })
}

fn define_group(id: &str, group_name: &str) -> Command {
    Command::DefineGroup(DefineGroup {
        group_id: group_id(id),
        name: name(group_name),
    })
}

fn add_member(group: &str, unit: &str, from: &str) -> Command {
    Command::AddGroupMember(AddGroupMember {
        group_id: group_id(group),
        unit_id: unit_id(unit),
        from: day(from),
    })
}

const LEAVE_REASON: &str = "Đơn vị không còn liên quan đến nội dung";

fn remove_member(group: &str, unit: &str, from: &str) -> Command {
    Command::RemoveGroupMember(RemoveGroupMember {
        group_id: group_id(group),
        unit_id: unit_id(unit),
        from: day(from),
        reason: reason(LEAVE_REASON),
    })
}

fn issue_plan(id: &str, plan: &Plan) -> Command {
    Command::IssuePlan(IssuePlan {
        plan_id: plan_id(id),
        code: plan.code.clone(),
        title: plan.title.clone(),
        issuer: plan.issuer.clone(),
        issued_on: plan.issued_on,
        legal_basis: plan.legal_basis.clone(),
        reporting_rule: plan.reporting_rule.clone(),
        report_recipient: None,
    })
}

const AMEND_REASON: &str = "Theo chỉ đạo của Thường trực Tỉnh ủy";

fn amend_plan(id: &str, new_title: Option<&str>, new_rule: Option<&str>) -> Command {
    Command::AmendPlan(AmendPlan {
        plan_id: plan_id(id),
        title: new_title.map(title),
        legal_basis: None,
        reporting_rule: new_rule.map(prose),
        report_recipient: None,
        reason: reason(AMEND_REASON),
    })
}

fn record_item(id: &str, plan: &str, ordinal: u16, item_title: &str) -> Command {
    Command::RecordItem(RecordItem {
        item_id: item_id(id),
        plan_id: plan_id(plan),
        ordinal,
        title: title(item_title),
        sector: None,
        causes_objective: None,
        causes_subjective: None,
        remedies: None,
    })
}

fn assign_lead(item: &str, assignee: Assignee) -> Command {
    Command::AssignLead(Assign {
        item_id: item_id(item),
        assignee,
    })
}

fn assign_coordinator(item: &str, assignee: Assignee) -> Command {
    Command::AssignCoordinator(Assign {
        item_id: item_id(item),
        assignee,
    })
}

const REVOKE_REASON: &str = "Điều chỉnh phân công theo chức năng, nhiệm vụ";

fn revoke(item: &str, role: AssignmentRole, assignee: Assignee) -> Command {
    Command::RevokeAssignment(RevokeAssignment {
        item_id: item_id(item),
        role,
        assignee,
        reason: reason(REVOKE_REASON),
    })
}

fn set_deadline(item: &str, due: &str, why: Option<&str>) -> Command {
    Command::SetItemDeadline(SetItemDeadline {
        item_id: item_id(item),
        due_on: day(due),
        reason: why.map(reason),
    })
}

fn change_item_status(item: &str, to: Lifecycle, evidence: Option<&str>) -> Command {
    Command::ChangeItemStatus(ChangeItemStatus {
        item_id: item_id(item),
        to,
        reason: reason(STATUS_REASON),
        evidence: evidence.map(prose),
    })
}

fn plan_task(task: &str, item: &str, unit: &str, due: &str) -> Command {
    Command::PlanTask(PlanTask {
        task_id: task_id(task),
        item_id: item_id(item),
        unit_id: unit_id(unit),
        title: title("Rà soát hồ sơ tồn đọng"),
        person_responsible: name("Lê Văn Bình"),
        leader_in_charge: name("Nguyễn Thị An"),
        due_on: day(due),
    })
}

const RESCHEDULE_REASON: &str = "Chờ ý kiến thẩm định của Bộ Xây dựng";

fn reschedule(task: &str, due: &str) -> Command {
    Command::RescheduleTask(RescheduleTask {
        task_id: task_id(task),
        due_on: day(due),
        reason: reason(RESCHEDULE_REASON),
    })
}

fn change_task_status(task: &str, to: Lifecycle, evidence: Option<&str>) -> Command {
    Command::ChangeTaskStatus(ChangeTaskStatus {
        task_id: task_id(task),
        to,
        reason: reason(STATUS_REASON),
        evidence: evidence.map(prose),
    })
}

const CANCEL_REASON: &str = "Nhiệm vụ đã được gộp vào nhiệm vụ khác";

fn cancel_task(task: &str) -> Command {
    Command::CancelTask(CancelTask {
        task_id: task_id(task),
        reason: reason(CANCEL_REASON),
    })
}

fn submit(plan: &str, unit: &str, q: Quarter, lines: Vec<ReportLine>) -> Command {
    Command::SubmitReport(SubmitReport {
        plan_id: plan_id(plan),
        unit_id: unit_id(unit),
        quarter: q,
        lines,
    })
}

const REVISE_REASON: &str = "Bổ sung số liệu theo yêu cầu của Sở Tài chính";

fn revise(plan: &str, unit: &str, q: Quarter, lines: Vec<ReportLine>) -> Command {
    Command::ReviseReport(ReviseReport {
        plan_id: plan_id(plan),
        unit_id: unit_id(unit),
        quarter: q,
        lines,
        reason: Some(reason(REVISE_REASON)),
    })
}

fn accept(plan: &str, unit: &str, q: Quarter) -> Command {
    Command::AcceptReport(key(plan, unit, q))
}

const RETURN_REASON: &str = "Thiếu số liệu kết quả thực hiện quý";

fn return_report(plan: &str, unit: &str, q: Quarter) -> Command {
    Command::ReturnReport(ReturnReport {
        plan_id: plan_id(plan),
        unit_id: unit_id(unit),
        quarter: q,
        reason: reason(RETURN_REASON),
    })
}

fn spec_named(name: &str) -> &'static CommandSpec {
    COMMANDS
        .iter()
        .find(|spec| spec.name == name)
        .unwrap_or_else(|| panic!("no command named {name}"))
}

/// Where a JSON body breaks a command type's rules, and how.
#[derive(Debug)]
struct ParseError {
    path: String,
    message: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Command `name` read from `body` with its types' own rules, naming the path of a field that
/// breaks one.
fn parse(name: &str, body: &Value) -> Result<Command, ParseError> {
    macro_rules! decode {
        ($($variant:ident($body:ty) => $name:literal, $aggregate:literal, $summary:literal;)*) => {
            match name {
                $($name => serde_path_to_error::deserialize::<_, $body>(body.clone())
                    .map(Command::$variant),)*
                _ => panic!("no command named {name}"),
            }
        };
    }
    remediation_domain::for_each_command!(decode).map_err(|e| ParseError {
        path: e.path().to_string(),
        message: e.inner().to_string(),
    })
}

#[path = "deciders/access.rs"]
mod access;
#[path = "deciders/commands.rs"]
mod commands;
#[path = "deciders/group.rs"]
mod group;
#[path = "deciders/item.rs"]
mod item;
#[path = "deciders/ledger.rs"]
mod ledger;
#[path = "deciders/lifecycle.rs"]
mod lifecycle;
#[path = "deciders/parsing.rs"]
mod parsing;
#[path = "deciders/plan.rs"]
mod plan;
#[path = "deciders/properties.rs"]
mod properties;
#[path = "deciders/reasons.rs"]
mod reasons;
#[path = "deciders/report.rs"]
mod report;
#[path = "deciders/succession.rs"]
mod succession;
#[path = "deciders/task.rs"]
mod task;
#[path = "deciders/unit.rs"]
mod unit;

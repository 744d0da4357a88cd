//! Decider tests, in the style of Equinox / EventSourcing.NetCore: **given** the events of the
//! target aggregate (and facts folded from other aggregates' events), **when** a command is
//! decided, **then** these events — or this rejection, or nothing at all.
//!
//! The fixture world is a small slice of Kế hoạch 63/KH-UBND: a plan issued on 2025-03-10, two
//! of its items, a group of district committees, and a district (Đông Sơn) whose
//! responsibilities pass to the city of Thanh Hóa from 2025-07-01.

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

fn parse(name: &str, body: &Value) -> Result<Command, remediation_domain::ParseError> {
    (spec_named(name).parse)(&serde_json::to_vec(body).expect("JSON serialises"))
}

// =============================================================================================
// Every command: one happy path per entry of COMMANDS, parsed from its JSON body
// =============================================================================================

const DIGEST: &str = "4fa7bfb279404f63cc27ed898ce6aa467bf5d1e2bbb13bc89db4847ccb804db9";

/// A JSON body for each command, and the target history and actor with which it succeeds.
struct Example {
    body: Value,
    given: Vec<Event>,
    actor: Actor,
}

fn example(command: &str) -> Example {
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
fn example_command(spec: &CommandSpec, body: &Value) -> Command {
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

// =============================================================================================
// Units
// =============================================================================================

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

// =============================================================================================
// Groups
// =============================================================================================

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

// =============================================================================================
// Plans
// =============================================================================================

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

// =============================================================================================
// Items: recording, assignments, deadlines
// =============================================================================================

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

// =============================================================================================
// Items and tasks: status and lifecycle
// =============================================================================================

/// A route of allowed transitions from `not_started` to `to`.
fn route_to(to: Lifecycle) -> Vec<(Lifecycle, Lifecycle)> {
    use Lifecycle::*;
    let route = match to {
        NotStarted => vec![],
        InProgress => vec![(NotStarted, InProgress)],
        Suspended => vec![(NotStarted, Suspended)],
        AwaitingConfirmation => vec![(NotStarted, InProgress), (InProgress, AwaitingConfirmation)],
        Completed => vec![
            (NotStarted, InProgress),
            (InProgress, AwaitingConfirmation),
            (AwaitingConfirmation, Completed),
        ],
        Reopened => vec![
            (NotStarted, InProgress),
            (InProgress, AwaitingConfirmation),
            (AwaitingConfirmation, Reopened),
        ],
    };
    assert!(route.iter().all(|(from, to)| from.can_become(*to)));
    route
}

fn item_1_in(status: Lifecycle) -> Vec<Event> {
    let mut history = item_1_history();
    history.extend(
        route_to(status)
            .into_iter()
            .map(|(from, to)| item_status_changed(from, to, "2025-07-01T08:00:00+07:00")),
    );
    history
}

fn task_in(status: Lifecycle) -> Vec<Event> {
    let mut history = task_history();
    history.extend(
        route_to(status)
            .into_iter()
            .map(|(from, to)| task_status_changed(from, to, "2025-07-01T08:00:00+07:00")),
    );
    history
}

#[test]
fn lead_unit_staff_change_the_item_status_with_a_reason() {
    Spec::given(item_ref(ITEM_1), &item_1_history())
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(change_item_status(ITEM_1, Lifecycle::InProgress, None))
        .then(&[Event::Item(ItemEvent::StatusChanged {
            from: Lifecycle::NotStarted,
            to: Lifecycle::InProgress,
            reason: reason(STATUS_REASON),
            evidence: None,
            at: instant(NOW),
        })]);
}

#[test]
fn coordinating_and_unassigned_units_may_not_change_the_item_status() {
    for unit in [NGA_SON, THANH_HOA, NOI_VU] {
        Spec::given(item_ref(ITEM_1), &item_1_history())
            .with_facts(world())
            .as_actor(staff(unit))
            .when(change_item_status(ITEM_1, Lifecycle::InProgress, None))
            .then_forbidden();
    }
    // Staff without a unit neither.
    Spec::given(item_ref(ITEM_1), &item_1_history())
        .with_facts(world())
        .as_actor(actor(Role::UnitStaff, None))
        .when(change_item_status(ITEM_1, Lifecycle::InProgress, None))
        .then_forbidden();
}

#[test]
fn the_department_of_finance_may_not_change_an_item_or_task_status() {
    Spec::given(item_ref(ITEM_1), &item_1_history())
        .with_facts(world())
        .as_actor(finance())
        .when(change_item_status(ITEM_1, Lifecycle::InProgress, None))
        .then_forbidden();
    Spec::given(task_ref(TASK), &task_history())
        .with_facts(world())
        .as_actor(finance())
        .when(change_task_status(TASK, Lifecycle::InProgress, None))
        .then_forbidden();
}

#[test]
fn changing_an_item_to_its_current_status_changes_nothing() {
    for status in Lifecycle::ALL {
        Spec::given(item_ref(ITEM_1), &item_1_in(status))
            .with_facts(world())
            .when(change_item_status(ITEM_1, status, Some(EVIDENCE)))
            .then_nothing();
    }
    Spec::given(item_ref(ITEM_1), &item_1_in(Lifecycle::InProgress))
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(change_item_status(ITEM_1, Lifecycle::InProgress, None))
        .then_nothing();
}

#[test]
fn an_unassigned_unit_repeating_the_current_item_status_is_still_forbidden() {
    Spec::given(item_ref(ITEM_1), &item_1_in(Lifecycle::InProgress))
        .with_facts(world())
        .as_actor(staff(NOI_VU))
        .when(change_item_status(ITEM_1, Lifecycle::InProgress, None))
        .then_forbidden();
}

#[test]
fn changing_the_status_of_an_unrecorded_item_is_not_found() {
    Spec::given(item_ref("kh-63-2025-99"), &[])
        .with_facts(world())
        .when(change_item_status(
            "kh-63-2025-99",
            Lifecycle::InProgress,
            None,
        ))
        .then_not_found();
}

#[test]
fn every_transition_the_lifecycle_allows_succeeds_and_every_other_is_rejected_for_items() {
    let mut allowed = 0;
    for from in Lifecycle::ALL {
        for to in Lifecycle::ALL.into_iter().filter(|to| *to != from) {
            let outcome = Spec::given(item_ref(ITEM_1), &item_1_in(from))
                .with_facts(world())
                .when(change_item_status(ITEM_1, to, Some(EVIDENCE)));
            if from.can_become(to) {
                allowed += 1;
                outcome.then(&[Event::Item(ItemEvent::StatusChanged {
                    from,
                    to,
                    reason: reason(STATUS_REASON),
                    evidence: Some(prose(EVIDENCE)),
                    at: instant(NOW),
                })]);
            } else {
                outcome.then_rejected(Rule::InvalidTransition);
            }
        }
    }
    assert_eq!(allowed, 10);
}

#[test]
fn every_transition_the_lifecycle_allows_succeeds_and_every_other_is_rejected_for_tasks() {
    let mut allowed = 0;
    for from in Lifecycle::ALL {
        for to in Lifecycle::ALL.into_iter().filter(|to| *to != from) {
            let outcome = Spec::given(task_ref(TASK), &task_in(from))
                .with_facts(world())
                .when(change_task_status(TASK, to, Some(EVIDENCE)));
            if from.can_become(to) {
                allowed += 1;
                outcome.then(&[Event::Task(TaskEvent::StatusChanged {
                    from,
                    to,
                    reason: reason(STATUS_REASON),
                    evidence: Some(prose(EVIDENCE)),
                    at: instant(NOW),
                })]);
            } else {
                outcome.then_rejected(Rule::InvalidTransition);
            }
        }
    }
    assert_eq!(allowed, 10);
}

#[test]
fn a_lead_unit_makes_every_allowed_transition_but_confirming_or_reopening_a_completion() {
    for from in Lifecycle::ALL {
        for to in Lifecycle::ALL.into_iter().filter(|to| from.can_become(*to)) {
            let item = Spec::given(item_ref(ITEM_1), &item_1_in(from))
                .with_facts(world())
                .as_actor(staff(XAY_DUNG))
                .when(change_item_status(ITEM_1, to, Some(EVIDENCE)));
            let task = Spec::given(task_ref(TASK), &task_in(from))
                .with_facts(world())
                .as_actor(staff(XAY_DUNG))
                .when(change_task_status(TASK, to, Some(EVIDENCE)));
            if to == Lifecycle::Completed || from == Lifecycle::Completed {
                item.then_forbidden();
                task.then_forbidden();
            } else {
                item.events();
                task.events();
            }
        }
    }
}

#[test]
fn not_started_to_completed_is_an_invalid_transition() {
    Spec::given(item_ref(ITEM_1), &item_1_history())
        .with_facts(world())
        .when(change_item_status(
            ITEM_1,
            Lifecycle::Completed,
            Some(EVIDENCE),
        ))
        .then_rejected(Rule::InvalidTransition);
    Spec::given(task_ref(TASK), &task_history())
        .with_facts(world())
        .when(change_task_status(
            TASK,
            Lifecycle::Completed,
            Some(EVIDENCE),
        ))
        .then_rejected(Rule::InvalidTransition);
}

#[test]
fn awaiting_confirmation_without_evidence_is_rejected() {
    for from in [Lifecycle::InProgress, Lifecycle::Reopened] {
        Spec::given(item_ref(ITEM_1), &item_1_in(from))
            .with_facts(world())
            .as_actor(staff(XAY_DUNG))
            .when(change_item_status(
                ITEM_1,
                Lifecycle::AwaitingConfirmation,
                None,
            ))
            .then_rejected(Rule::EvidenceRequired);
        Spec::given(task_ref(TASK), &task_in(from))
            .with_facts(world())
            .as_actor(staff(XAY_DUNG))
            .when(change_task_status(
                TASK,
                Lifecycle::AwaitingConfirmation,
                None,
            ))
            .then_rejected(Rule::EvidenceRequired);
    }
}

#[test]
fn only_the_province_office_confirms_a_completion() {
    let awaiting_item = item_1_in(Lifecycle::AwaitingConfirmation);
    let awaiting_task = task_in(Lifecycle::AwaitingConfirmation);
    for actor in [staff(XAY_DUNG), finance()] {
        Spec::given(item_ref(ITEM_1), &awaiting_item)
            .with_facts(world())
            .as_actor(actor.clone())
            .when(change_item_status(ITEM_1, Lifecycle::Completed, None))
            .then_forbidden();
        Spec::given(task_ref(TASK), &awaiting_task)
            .with_facts(world())
            .as_actor(actor)
            .when(change_task_status(TASK, Lifecycle::Completed, None))
            .then_forbidden();
    }
    Spec::given(item_ref(ITEM_1), &awaiting_item)
        .with_facts(world())
        .when(change_item_status(ITEM_1, Lifecycle::Completed, None))
        .events();
    Spec::given(task_ref(TASK), &awaiting_task)
        .with_facts(world())
        .when(change_task_status(TASK, Lifecycle::Completed, None))
        .events();
}

#[test]
fn only_the_province_office_reopens_a_completed_item_or_task() {
    let completed_item = item_1_in(Lifecycle::Completed);
    let completed_task = task_in(Lifecycle::Completed);
    for actor in [staff(XAY_DUNG), finance()] {
        Spec::given(item_ref(ITEM_1), &completed_item)
            .with_facts(world())
            .as_actor(actor.clone())
            .when(change_item_status(ITEM_1, Lifecycle::Reopened, None))
            .then_forbidden();
        Spec::given(task_ref(TASK), &completed_task)
            .with_facts(world())
            .as_actor(actor)
            .when(change_task_status(TASK, Lifecycle::Reopened, None))
            .then_forbidden();
    }
    Spec::given(item_ref(ITEM_1), &completed_item)
        .with_facts(world())
        .when(change_item_status(ITEM_1, Lifecycle::Reopened, None))
        .then(&[Event::Item(ItemEvent::StatusChanged {
            from: Lifecycle::Completed,
            to: Lifecycle::Reopened,
            reason: reason(STATUS_REASON),
            evidence: None,
            at: instant(NOW),
        })]);
    Spec::given(task_ref(TASK), &completed_task)
        .with_facts(world())
        .when(change_task_status(TASK, Lifecycle::Reopened, None))
        .events();
}

// =============================================================================================
// Tasks
// =============================================================================================

#[test]
fn plan_task_for_an_item_the_unit_leads() {
    Spec::given(task_ref(TASK), &[])
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(plan_task(TASK, ITEM_1, XAY_DUNG, TASK_DUE))
        .then(&task_history());
}

#[test]
fn a_member_of_a_coordinating_group_plans_a_task() {
    Spec::given(task_ref("ns-01"), &[])
        .with_facts(world())
        .as_actor(staff(NGA_SON))
        .when(plan_task("ns-01", ITEM_1, NGA_SON, TASK_DUE))
        .then(&[task_planned(ITEM_1, NGA_SON, TASK_DUE)]);
}

#[test]
fn planning_the_same_task_again_changes_nothing() {
    Spec::given(task_ref(TASK), &task_history())
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(plan_task(TASK, ITEM_1, XAY_DUNG, TASK_DUE))
        .then_nothing();
}

#[test]
fn planning_other_content_under_an_existing_task_id_is_rejected() {
    Spec::given(task_ref(TASK), &task_history())
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(plan_task(TASK, ITEM_1, XAY_DUNG, "2025-12-31"))
        .then_rejected(Rule::AlreadyExists);
}

#[test]
fn a_unit_not_assigned_to_an_item_may_not_plan_a_task_for_it() {
    Spec::given(task_ref("nv-01"), &[])
        .with_facts(world())
        .as_actor(staff(NOI_VU))
        .when(plan_task("nv-01", ITEM_1, NOI_VU, TASK_DUE))
        .then_rejected(Rule::NotAssigned);
    Spec::given(task_ref("xd-02"), &[])
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(plan_task("xd-02", ITEM_2, XAY_DUNG, TASK_DUE))
        .then_rejected(Rule::NotAssigned);
}

#[test]
fn group_membership_counts_only_while_it_is_valid() {
    // Nga Sơn left the districts group on 2025-06-01; Quảng Xương joins on 2025-08-01.
    let mut districts = districts_history();
    districts.push(member_removed(NGA_SON, "2025-06-01", LEAVE_REASON));
    districts.push(member_added(QUANG_XUONG, "2025-08-01"));
    let facts = || world().with(group_ref(DISTRICTS), &districts);

    Spec::given(task_ref("ns-01"), &[])
        .with_facts(facts())
        .as_actor(staff(NGA_SON))
        .at("2025-05-31T16:00:00+07:00")
        .when(plan_task("ns-01", ITEM_1, NGA_SON, TASK_DUE))
        .events();
    Spec::given(task_ref("ns-01"), &[])
        .with_facts(facts())
        .as_actor(staff(NGA_SON))
        .at("2025-06-01T08:00:00+07:00")
        .when(plan_task("ns-01", ITEM_1, NGA_SON, TASK_DUE))
        .then_rejected(Rule::NotAssigned);

    Spec::given(task_ref("qx-01"), &[])
        .with_facts(facts())
        .as_actor(staff(QUANG_XUONG))
        .at("2025-07-31T23:59:59+07:00")
        .when(plan_task("qx-01", ITEM_1, QUANG_XUONG, TASK_DUE))
        .then_rejected(Rule::NotAssigned);
    Spec::given(task_ref("qx-01"), &[])
        .with_facts(facts())
        .as_actor(staff(QUANG_XUONG))
        .at("2025-08-01T00:00:00+07:00")
        .when(plan_task("qx-01", ITEM_1, QUANG_XUONG, TASK_DUE))
        .events();
    Spec::given(report_ref(PLAN, QUANG_XUONG, q3()), &[])
        .with_facts(facts())
        .as_actor(staff(QUANG_XUONG))
        .at("2025-07-31T10:00:00+07:00")
        .when(submit(
            PLAN,
            QUANG_XUONG,
            q3(),
            vec![line(ITEM_1, "Đã phối hợp rà soát")],
        ))
        .then_rejected(Rule::NotAssigned);
    Spec::given(report_ref(PLAN, QUANG_XUONG, q3()), &[])
        .with_facts(facts())
        .as_actor(staff(QUANG_XUONG))
        .at("2025-08-05T10:00:00+07:00")
        .when(submit(
            PLAN,
            QUANG_XUONG,
            q3(),
            vec![line(ITEM_1, "Đã phối hợp rà soát")],
        ))
        .events();
}

#[test]
fn unit_staff_plan_tasks_only_for_their_own_unit() {
    Spec::given(task_ref(TASK), &[])
        .with_facts(world())
        .as_actor(staff(NGA_SON))
        .when(plan_task(TASK, ITEM_1, XAY_DUNG, TASK_DUE))
        .then_forbidden();
    // The province office plans for any unit.
    Spec::given(task_ref(TASK), &[])
        .with_facts(world())
        .when(plan_task(TASK, ITEM_1, XAY_DUNG, TASK_DUE))
        .then(&task_history());
}

#[test]
fn planning_a_task_for_an_unrecorded_item_is_not_found() {
    Spec::given(task_ref(TASK), &[])
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(plan_task(TASK, "kh-63-2025-99", XAY_DUNG, TASK_DUE))
        .then_not_found();
}

#[test]
fn planning_a_task_for_an_unregistered_unit_is_not_found() {
    Spec::given(task_ref(TASK), &[])
        .with_facts(world())
        .when(plan_task(TASK, ITEM_1, "so-khong-co", TASK_DUE))
        .then_not_found();
}

#[test]
fn a_task_due_date_cannot_precede_the_plan_issue_date() {
    Spec::given(task_ref(TASK), &[])
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(plan_task(TASK, ITEM_1, XAY_DUNG, "2025-03-09"))
        .then_rejected(Rule::DeadlineBeforePlanIssue);
    Spec::given(task_ref(TASK), &task_history())
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(reschedule(TASK, "2025-03-09"))
        .then_rejected(Rule::DeadlineBeforePlanIssue);
    Spec::given(task_ref(TASK), &task_history())
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(reschedule(TASK, PLAN_ISSUED_ON))
        .events();
}

#[test]
fn reschedule_task_records_old_and_new_date_with_the_reason() {
    Spec::given(task_ref(TASK), &task_history())
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(reschedule(TASK, "2025-10-31"))
        .then(&[Event::Task(TaskEvent::Rescheduled {
            from: day(TASK_DUE),
            to: day("2025-10-31"),
            reason: reason(RESCHEDULE_REASON),
        })]);
}

#[test]
fn rescheduling_to_the_same_date_changes_nothing() {
    Spec::given(task_ref(TASK), &task_history())
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(reschedule(TASK, TASK_DUE))
        .then_nothing();
}

#[test]
fn change_task_status_records_the_reason() {
    Spec::given(task_ref(TASK), &task_history())
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(change_task_status(TASK, Lifecycle::InProgress, None))
        .then(&[Event::Task(TaskEvent::StatusChanged {
            from: Lifecycle::NotStarted,
            to: Lifecycle::InProgress,
            reason: reason(STATUS_REASON),
            evidence: None,
            at: instant(NOW),
        })]);
}

#[test]
fn changing_a_task_to_its_current_status_changes_nothing() {
    for status in Lifecycle::ALL {
        Spec::given(task_ref(TASK), &task_in(status))
            .with_facts(world())
            .when(change_task_status(TASK, status, Some(EVIDENCE)))
            .then_nothing();
    }
}

#[test]
fn cancel_task_carries_the_reason() {
    Spec::given(task_ref(TASK), &task_history())
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(cancel_task(TASK))
        .then(&[Event::Task(TaskEvent::Cancelled {
            reason: reason(CANCEL_REASON),
        })]);
}

#[test]
fn cancelling_a_cancelled_task_changes_nothing() {
    let mut cancelled = task_history();
    cancelled.push(task_cancelled());
    Spec::given(task_ref(TASK), &cancelled)
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(cancel_task(TASK))
        .then_nothing();
}

#[test]
fn a_completed_task_cannot_be_cancelled() {
    Spec::given(task_ref(TASK), &task_in(Lifecycle::Completed))
        .with_facts(world())
        .when(cancel_task(TASK))
        .then_rejected(Rule::TaskClosed);
}

#[test]
fn a_cancelled_task_can_be_neither_rescheduled_nor_change_status() {
    let mut cancelled = task_history();
    cancelled.push(task_cancelled());
    Spec::given(task_ref(TASK), &cancelled)
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(reschedule(TASK, "2025-10-31"))
        .then_rejected(Rule::TaskClosed);
    Spec::given(task_ref(TASK), &cancelled)
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(change_task_status(TASK, Lifecycle::InProgress, None))
        .then_rejected(Rule::TaskClosed);
}

#[test]
fn commands_on_an_unplanned_task_are_not_found() {
    for command in [
        reschedule(TASK, "2025-10-31"),
        change_task_status(TASK, Lifecycle::InProgress, None),
        cancel_task(TASK),
    ] {
        Spec::given(task_ref(TASK), &[])
            .with_facts(world())
            .as_actor(staff(XAY_DUNG))
            .when(command)
            .then_not_found();
    }
}

#[test]
fn unit_staff_act_only_on_their_own_units_tasks() {
    let mut cancelled = task_history();
    cancelled.push(task_cancelled());
    for given in [task_history(), task_in(Lifecycle::InProgress), cancelled] {
        for command in [
            reschedule(TASK, "2025-10-31"),
            reschedule(TASK, TASK_DUE),
            change_task_status(TASK, Lifecycle::InProgress, None),
            change_task_status(TASK, Lifecycle::Suspended, None),
            cancel_task(TASK),
        ] {
            for outsider in [staff(NGA_SON), staff(NOI_VU), actor(Role::UnitStaff, None)] {
                Spec::given(task_ref(TASK), &given)
                    .with_facts(world())
                    .as_actor(outsider)
                    .when(command.clone())
                    .then_forbidden();
            }
        }
    }
}

// =============================================================================================
// Succession: open assignments pass to the successors from the effective date
// =============================================================================================

#[test]
fn a_succeeded_unit_plans_no_new_tasks_and_sends_no_reports() {
    // Neither the province office nor the successor may plan new work in the predecessor's name.
    for actor in [province_office(), staff(THANH_HOA)] {
        Spec::given(task_ref("ds-02"), &[])
            .with_facts(world())
            .as_actor(actor.clone())
            .when(plan_task("ds-02", ITEM_2, DONG_SON, TASK_DUE))
            .then_rejected(Rule::UnitSucceeded);
        Spec::given(report_ref(PLAN, DONG_SON, q3()), &[])
            .with_facts(world())
            .as_actor(actor)
            .when(submit(
                PLAN,
                DONG_SON,
                q3(),
                vec![line(ITEM_2, "Đã bàn giao mặt bằng")],
            ))
            .then_rejected(Rule::UnitSucceeded);
    }
}

#[test]
fn before_the_succession_date_the_successor_may_not_act_for_the_predecessor() {
    let at = "2025-06-30T23:59:59+07:00";
    Spec::given(task_ref("tp-01"), &[])
        .with_facts(world())
        .as_actor(staff(THANH_HOA))
        .at(at)
        .when(plan_task("tp-01", ITEM_2, THANH_HOA, TASK_DUE))
        .then_rejected(Rule::NotAssigned);
    Spec::given(report_ref(PLAN, THANH_HOA, quarter(2025, 2)), &[])
        .with_facts(world())
        .as_actor(staff(THANH_HOA))
        .at(at)
        .when(submit(
            PLAN,
            THANH_HOA,
            quarter(2025, 2),
            vec![line(ITEM_2, "Đã bàn giao mặt bằng")],
        ))
        .then_rejected(Rule::NotAssigned);
    for command in [
        reschedule(TASK_DS, "2025-10-31"),
        change_task_status(TASK_DS, Lifecycle::InProgress, None),
        cancel_task(TASK_DS),
    ] {
        Spec::given(task_ref(TASK_DS), &task_ds_history())
            .with_facts(world())
            .as_actor(staff(THANH_HOA))
            .at(at)
            .when(command)
            .then_forbidden();
    }
    Spec::given(item_ref(ITEM_2), &item_2_history())
        .with_facts(world())
        .as_actor(staff(THANH_HOA))
        .at(at)
        .when(change_item_status(ITEM_2, Lifecycle::InProgress, None))
        .then_forbidden();
    // …while the predecessor itself still may.
    Spec::given(task_ref("ds-02"), &[])
        .with_facts(world())
        .as_actor(staff(DONG_SON))
        .at(at)
        .when(plan_task("ds-02", ITEM_2, DONG_SON, TASK_DUE))
        .events();
}

#[test]
fn from_the_succession_date_the_successor_takes_over_open_assignments() {
    let at = "2025-07-01T00:00:00+07:00";
    Spec::given(task_ref("tp-01"), &[])
        .with_facts(world())
        .as_actor(staff(THANH_HOA))
        .at(at)
        .when(plan_task("tp-01", ITEM_2, THANH_HOA, TASK_DUE))
        .then(&[task_planned(ITEM_2, THANH_HOA, TASK_DUE)]);
    Spec::given(report_ref(PLAN, THANH_HOA, q3()), &[])
        .with_facts(world())
        .as_actor(staff(THANH_HOA))
        .at(at)
        .when(submit(
            PLAN,
            THANH_HOA,
            q3(),
            vec![line(ITEM_2, "Đã bàn giao mặt bằng")],
        ))
        .events();
    // The predecessor's tasks are the successor's to carry on.
    Spec::given(task_ref(TASK_DS), &task_ds_history())
        .with_facts(world())
        .as_actor(staff(THANH_HOA))
        .at(at)
        .when(reschedule(TASK_DS, "2025-10-31"))
        .events();
    Spec::given(task_ref(TASK_DS), &task_ds_history())
        .with_facts(world())
        .as_actor(staff(THANH_HOA))
        .at(at)
        .when(change_task_status(TASK_DS, Lifecycle::InProgress, None))
        .events();
    Spec::given(task_ref(TASK_DS), &task_ds_history())
        .with_facts(world())
        .as_actor(staff(THANH_HOA))
        .at(at)
        .when(cancel_task(TASK_DS))
        .events();
    // And the successor leads the item the predecessor led.
    Spec::given(item_ref(ITEM_2), &item_2_history())
        .with_facts(world())
        .as_actor(staff(THANH_HOA))
        .at(at)
        .when(change_item_status(ITEM_2, Lifecycle::InProgress, None))
        .events();
}

#[test]
fn a_succession_passes_group_membership_to_the_successor() {
    // Đông Sơn coordinates item 1 through the districts group; from 2025-07-01 Thanh Hóa does.
    Spec::given(report_ref(PLAN, THANH_HOA, q3()), &[])
        .with_facts(world())
        .as_actor(staff(THANH_HOA))
        .when(submit(
            PLAN,
            THANH_HOA,
            q3(),
            vec![line(ITEM_1, "Đã phối hợp rà soát")],
        ))
        .events();
    Spec::given(report_ref(PLAN, THANH_HOA, quarter(2025, 2)), &[])
        .with_facts(world())
        .as_actor(staff(THANH_HOA))
        .at(BEFORE_SUCCESSION)
        .when(submit(
            PLAN,
            THANH_HOA,
            quarter(2025, 2),
            vec![line(ITEM_1, "Đã phối hợp rà soát")],
        ))
        .then_rejected(Rule::NotAssigned);
}

#[test]
fn history_keeps_the_predecessor_as_the_assignee() {
    let facts: Facts = world().into();
    let item = facts.item(&item_id(ITEM_2)).expect("item 2 is known");
    // The record is not rewritten: the item's assignment still names Đông Sơn…
    assert_eq!(item.assignments.len(), 1);
    assert_eq!(item.assignments[0].assignee, unit_assignee(DONG_SON));
    assert_eq!(item.assignments[0].until, None);
    // …who held it until the succession, after which Thanh Hóa holds it.
    let lead = Some(AssignmentRole::Lead);
    assert_eq!(
        facts
            .responsible_units(item, lead, instant("2025-06-30T23:59:59+07:00"))
            .into_iter()
            .collect::<Vec<_>>(),
        [unit_id(DONG_SON)]
    );
    assert_eq!(
        facts
            .responsible_units(item, lead, instant("2025-07-01T00:00:00+07:00"))
            .into_iter()
            .collect::<Vec<_>>(),
        [unit_id(THANH_HOA)]
    );
    // The successor's work does not touch the item's own history.
    let planned = Spec::given(task_ref("tp-01"), &[])
        .with_facts(world())
        .as_actor(staff(THANH_HOA))
        .when(plan_task("tp-01", ITEM_2, THANH_HOA, TASK_DUE))
        .events();
    assert!(planned.iter().all(|e| e.kind() == "task"));
    // A task planned by the predecessor keeps naming it.
    let AggregateState::Task(Some(task)) = fold(&task_ref(TASK_DS), &task_ds_history()) else {
        panic!("the task exists");
    };
    assert_eq!(task.unit_id, unit_id(DONG_SON));
}

// =============================================================================================
// Reports
// =============================================================================================

fn xd_line() -> Vec<ReportLine> {
    vec![line(ITEM_1, "Đã cấp 120 giấy chứng nhận")]
}

fn submitted_at(events: &[Event]) -> DateTime<Utc> {
    match events {
        [Event::Report(ReportEvent::Submitted { submitted_at, .. })] => *submitted_at,
        other => panic!("expected one submission, got {other:?}"),
    }
}

#[test]
fn submit_report_for_an_item_the_unit_is_assigned_to() {
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &[])
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .at(SUBMITTED_AT)
        .when(submit(PLAN, XAY_DUNG, q3(), xd_line()))
        .then(&xd_report_history());
}

#[test]
fn a_member_of_a_coordinating_group_submits_a_report() {
    Spec::given(report_ref(PLAN, NGA_SON, q3()), &[])
        .with_facts(world())
        .as_actor(staff(NGA_SON))
        .when(submit(
            PLAN,
            NGA_SON,
            q3(),
            vec![line(ITEM_1, "Đã phối hợp rà soát")],
        ))
        .events();
}

#[test]
fn submitting_an_identical_report_again_changes_nothing() {
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &xd_report_history())
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(submit(PLAN, XAY_DUNG, q3(), xd_line()))
        .then_nothing();
}

#[test]
fn submitting_a_different_report_for_the_same_quarter_is_rejected() {
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &xd_report_history())
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(submit(
            PLAN,
            XAY_DUNG,
            q3(),
            vec![line(ITEM_1, "Đã cấp 200 giấy")],
        ))
        .then_rejected(Rule::AlreadyExists);
}

#[test]
fn only_units_assigned_to_an_item_may_report_on_it() {
    Spec::given(report_ref(PLAN, NOI_VU, q3()), &[])
        .with_facts(world())
        .as_actor(staff(NOI_VU))
        .when(submit(PLAN, NOI_VU, q3(), vec![line(ITEM_1, "Không có")]))
        .then_rejected(Rule::NotAssigned);
    // Assigned to item 1 but not to item 2: one line too many.
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &[])
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(submit(
            PLAN,
            XAY_DUNG,
            q3(),
            vec![line(ITEM_1, "Đã cấp 120 giấy"), line(ITEM_2, "Không có")],
        ))
        .then_rejected(Rule::NotAssigned);
}

#[test]
fn unit_staff_report_only_for_their_own_unit() {
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &[])
        .with_facts(world())
        .as_actor(staff(NGA_SON))
        .when(submit(PLAN, XAY_DUNG, q3(), xd_line()))
        .then_forbidden();
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &xd_report_history())
        .with_facts(world())
        .as_actor(staff(NGA_SON))
        .when(submit(PLAN, XAY_DUNG, q3(), xd_line()))
        .then_forbidden();
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &xd_report_history())
        .with_facts(world())
        .as_actor(staff(NGA_SON))
        .when(revise(PLAN, XAY_DUNG, q3(), vec![line(ITEM_1, "Sửa")]))
        .then_forbidden();
}

#[test]
fn the_province_office_keys_in_a_paper_report_with_its_arrival_time() {
    // A paper report arrived on 14 June and was typed in on the 17th: it is on time.
    let events = Spec::given(report_ref(PLAN, XAY_DUNG, quarter(2025, 2)), &[])
        .with_facts(world())
        .at("2025-06-17T10:00:00+07:00")
        .effective_at("2025-06-14T16:00:00+07:00")
        .when(submit(PLAN, XAY_DUNG, quarter(2025, 2), xd_line()))
        .events();
    assert_eq!(submitted_at(&events), instant("2025-06-14T16:00:00+07:00"));
    assert_eq!(
        calendar::timeliness(quarter(2025, 2), submitted_at(&events)),
        Timeliness::OnTime
    );
}

#[test]
fn reporting_calendar_a_q2_2025_report_is_due_before_the_15th_of_june() {
    let q2 = quarter(2025, 2);
    let submit_at = |at: &str| {
        Spec::given(report_ref(PLAN, XAY_DUNG, q2), &[])
            .with_facts(world())
            .as_actor(staff(XAY_DUNG))
            .at(at)
            .when(submit(PLAN, XAY_DUNG, q2, xd_line()))
            .events()
    };
    let last_second = submit_at("2025-06-14T23:59:59+07:00");
    assert_eq!(
        submitted_at(&last_second),
        instant("2025-06-14T23:59:59+07:00")
    );
    assert_eq!(
        calendar::timeliness(q2, submitted_at(&last_second)),
        Timeliness::OnTime
    );
    let midnight = submit_at("2025-06-15T00:00:00+07:00");
    assert_eq!(
        calendar::timeliness(q2, submitted_at(&midnight)),
        Timeliness::Late
    );
}

#[test]
fn a_report_for_a_quarter_that_has_not_started_is_rejected() {
    let q4 = quarter(2025, 4);
    Spec::given(report_ref(PLAN, XAY_DUNG, q4), &[])
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .at("2025-09-30T23:59:59+07:00")
        .when(submit(PLAN, XAY_DUNG, q4, xd_line()))
        .then_rejected(Rule::QuarterNotStarted);
    Spec::given(report_ref(PLAN, XAY_DUNG, q4), &[])
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .at("2025-10-01T00:00:00+07:00")
        .when(submit(PLAN, XAY_DUNG, q4, xd_line()))
        .events();
}

#[test]
fn a_report_needs_at_least_one_line() {
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &[])
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(submit(PLAN, XAY_DUNG, q3(), vec![]))
        .then_rejected(Rule::EmptyReport);
}

#[test]
fn a_report_names_each_item_once() {
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &[])
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(submit(
            PLAN,
            XAY_DUNG,
            q3(),
            vec![
                line(ITEM_1, "Đã cấp 120 giấy"),
                line(ITEM_1, "Đã cấp 130 giấy"),
            ],
        ))
        .then_rejected(Rule::DuplicateLine);
}

#[test]
fn a_report_covers_only_items_of_its_plan() {
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &[])
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(submit(
            PLAN,
            XAY_DUNG,
            q3(),
            vec![line(ITEM_OTHER, "Đã rà soát")],
        ))
        .then_rejected(Rule::WrongPlan);
}

#[test]
fn reporting_on_an_unrecorded_item_is_not_found() {
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &[])
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(submit(
            PLAN,
            XAY_DUNG,
            q3(),
            vec![line("kh-63-2025-99", "Không có")],
        ))
        .then_not_found();
}

#[test]
fn reporting_on_an_unissued_plan_or_for_an_unregistered_unit_is_not_found() {
    Spec::given(report_ref("kh-1-2026", XAY_DUNG, q3()), &[])
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(submit("kh-1-2026", XAY_DUNG, q3(), xd_line()))
        .then_not_found();
    Spec::given(report_ref(PLAN, "so-khong-co", q3()), &[])
        .with_facts(world())
        .when(submit(PLAN, "so-khong-co", q3(), xd_line()))
        .then_not_found();
}

#[test]
fn revise_report_replaces_the_lines() {
    let lines = vec![line(ITEM_1, "Đã cấp 135 giấy chứng nhận")];
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &xd_report_history())
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(revise(PLAN, XAY_DUNG, q3(), lines.clone()))
        .then(&[Event::Report(ReportEvent::Revised {
            lines,
            reason: Some(reason(REVISE_REASON)),
            revised_at: instant(NOW),
        })]);
}

#[test]
fn revising_with_identical_lines_changes_nothing() {
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &xd_report_history())
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(revise(PLAN, XAY_DUNG, q3(), xd_line()))
        .then_nothing();
}

#[test]
fn a_revision_is_checked_like_a_submission() {
    let given = xd_report_history();
    let revise_with = |lines: Vec<ReportLine>| {
        Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &given)
            .with_facts(world())
            .as_actor(staff(XAY_DUNG))
            .when(revise(PLAN, XAY_DUNG, q3(), lines))
    };
    revise_with(vec![]).then_rejected(Rule::EmptyReport);
    revise_with(vec![line(ITEM_2, "Không có")]).then_rejected(Rule::NotAssigned);
    revise_with(vec![line(ITEM_OTHER, "Không có")]).then_rejected(Rule::WrongPlan);
    revise_with(vec![line(ITEM_1, "a"), line(ITEM_1, "b")]).then_rejected(Rule::DuplicateLine);
}

#[test]
fn revising_an_unsubmitted_report_is_not_found() {
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &[])
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(revise(PLAN, XAY_DUNG, q3(), xd_line()))
        .then_not_found();
}

#[test]
fn an_accepted_report_cannot_be_revised() {
    let accepted = Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &xd_report_history())
        .with_facts(world())
        .as_actor(finance())
        .when(accept(PLAN, XAY_DUNG, q3()))
        .history();
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &accepted)
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(revise(
            PLAN,
            XAY_DUNG,
            q3(),
            vec![line(ITEM_1, "Đã cấp 135 giấy")],
        ))
        .then_rejected(Rule::ReportAccepted);
    // Not even with the same lines.
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &accepted)
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .when(revise(PLAN, XAY_DUNG, q3(), xd_line()))
        .then_rejected(Rule::ReportAccepted);
}

#[test]
fn a_returned_report_can_be_revised_and_is_then_accepted() {
    let target = report_ref(PLAN, XAY_DUNG, q3());
    let returned = Spec::given(target.clone(), &xd_report_history())
        .with_facts(world())
        .as_actor(finance())
        .at("2025-07-11T09:00:00+07:00")
        .when(return_report(PLAN, XAY_DUNG, q3()))
        .then(&[Event::Report(ReportEvent::Returned {
            reason: reason(RETURN_REASON),
            returned_at: instant("2025-07-11T09:00:00+07:00"),
        })]);
    // Resubmitting the same lines after a return is a revision, not a repeat.
    let revised = Spec::given(target.clone(), &returned)
        .with_facts(world())
        .as_actor(staff(XAY_DUNG))
        .at("2025-07-12T09:00:00+07:00")
        .when(revise(PLAN, XAY_DUNG, q3(), xd_line()))
        .then(&[Event::Report(ReportEvent::Revised {
            lines: xd_line(),
            reason: Some(reason(REVISE_REASON)),
            revised_at: instant("2025-07-12T09:00:00+07:00"),
        })]);
    let AggregateState::Report(Some(report)) = fold(&target, &revised) else {
        panic!("the report exists");
    };
    assert_eq!(report.status, ReportStatus::Submitted);
    // The original submission still decides timeliness.
    assert_eq!(report.submitted_at, instant(SUBMITTED_AT));
    Spec::given(target, &revised)
        .with_facts(world())
        .as_actor(finance())
        .when(accept(PLAN, XAY_DUNG, q3()))
        .then(&[Event::Report(ReportEvent::Accepted {
            accepted_at: instant(NOW),
        })]);
}

#[test]
fn accept_report_by_the_department_of_finance() {
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &xd_report_history())
        .with_facts(world())
        .as_actor(finance())
        .when(accept(PLAN, XAY_DUNG, q3()))
        .then(&[Event::Report(ReportEvent::Accepted {
            accepted_at: instant(NOW),
        })]);
}

#[test]
fn accepting_an_accepted_report_changes_nothing() {
    let mut accepted = xd_report_history();
    accepted.push(Event::Report(ReportEvent::Accepted {
        accepted_at: instant("2025-07-11T09:00:00+07:00"),
    }));
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &accepted)
        .as_actor(finance())
        .when(accept(PLAN, XAY_DUNG, q3()))
        .then_nothing();
}

#[test]
fn a_returned_report_cannot_be_accepted_before_it_is_revised() {
    let mut returned = xd_report_history();
    returned.push(Event::Report(ReportEvent::Returned {
        reason: reason(RETURN_REASON),
        returned_at: instant("2025-07-11T09:00:00+07:00"),
    }));
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &returned)
        .as_actor(finance())
        .when(accept(PLAN, XAY_DUNG, q3()))
        .then_rejected(Rule::ReportReturned);
}

#[test]
fn return_report_carries_the_reason() {
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &xd_report_history())
        .as_actor(finance())
        .when(return_report(PLAN, XAY_DUNG, q3()))
        .then(&[Event::Report(ReportEvent::Returned {
            reason: reason(RETURN_REASON),
            returned_at: instant(NOW),
        })]);
}

#[test]
fn returning_a_returned_report_changes_nothing() {
    let mut returned = xd_report_history();
    returned.push(Event::Report(ReportEvent::Returned {
        reason: reason(RETURN_REASON),
        returned_at: instant("2025-07-11T09:00:00+07:00"),
    }));
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &returned)
        .as_actor(finance())
        .when(return_report(PLAN, XAY_DUNG, q3()))
        .then_nothing();
}

#[test]
fn an_accepted_report_cannot_be_returned() {
    let mut accepted = xd_report_history();
    accepted.push(Event::Report(ReportEvent::Accepted {
        accepted_at: instant("2025-07-11T09:00:00+07:00"),
    }));
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &accepted)
        .as_actor(finance())
        .when(return_report(PLAN, XAY_DUNG, q3()))
        .then_rejected(Rule::ReportAccepted);
}

#[test]
fn only_the_department_of_finance_accepts_or_returns_reports() {
    for actor in [province_office(), staff(XAY_DUNG)] {
        Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &xd_report_history())
            .as_actor(actor.clone())
            .when(accept(PLAN, XAY_DUNG, q3()))
            .then_forbidden();
        Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &xd_report_history())
            .as_actor(actor)
            .when(return_report(PLAN, XAY_DUNG, q3()))
            .then_forbidden();
    }
}

#[test]
fn the_department_of_finance_reviews_reports_but_neither_plans_tasks_nor_reports() {
    Spec::given(task_ref("tc-01"), &[])
        .with_facts(world())
        .as_actor(finance())
        .when(plan_task("tc-01", ITEM_1, XAY_DUNG, TASK_DUE))
        .then_forbidden();
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &[])
        .with_facts(world())
        .as_actor(finance())
        .when(submit(PLAN, XAY_DUNG, q3(), xd_line()))
        .then_forbidden();
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &xd_report_history())
        .with_facts(world())
        .as_actor(finance())
        .when(revise(PLAN, XAY_DUNG, q3(), vec![line(ITEM_1, "Sửa")]))
        .then_forbidden();
    Spec::given(task_ref(TASK), &task_history())
        .with_facts(world())
        .as_actor(finance())
        .when(cancel_task(TASK))
        .then_forbidden();
}

#[test]
fn accepting_or_returning_an_unsubmitted_report_is_not_found() {
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &[])
        .as_actor(finance())
        .when(accept(PLAN, XAY_DUNG, q3()))
        .then_not_found();
    Spec::given(report_ref(PLAN, XAY_DUNG, q3()), &[])
        .as_actor(finance())
        .when(return_report(PLAN, XAY_DUNG, q3()))
        .then_not_found();
}

// =============================================================================================
// Reasons
// =============================================================================================

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

// =============================================================================================
// Parsing
// =============================================================================================

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

// =============================================================================================
// Properties over random command sequences
// =============================================================================================

/// Random command sequences over a small universe (2 plans, 3 units of which any may be
/// succeeded, 1 group, 2 items, 2 tasks, reports for 2 quarters), random actors, roles and times
/// around 2025. Each command is decided against the current state of its target, with facts from
/// the current state of every other aggregate, and:
/// 1. nothing panics (neither `decide` nor `evolve`);
/// 2. a rejected command leaves the aggregate as it was, and an accepted one yields events only
///    if it changes the state;
/// 3. re-folding each aggregate's events from its initial state reproduces its state exactly (and
///    every event survives encoding and decoding);
/// 4. deciding the same accepted command again right away yields no events — this holds for every
///    command;
/// 5. whatever is accepted was authorised: the role matrix, backdating, unit staff only for their
///    own unit or one it succeeded, item status only by a lead; auditors and viewers get nothing
///    but Forbidden, NotFound or a future-time rejection.
mod properties {
    use std::collections::BTreeMap;

    use chrono::Duration;
    use proptest::prelude::*;
    use proptest::sample::select;

    use super::*;

    const UNITS: [&str; 3] = ["u1", "u2", "u3"];
    const PLANS: [&str; 2] = ["p1", "p2"];
    const ITEMS: [&str; 2] = ["i1", "i2"];
    const TASKS: [&str; 2] = ["t1", "t2"];
    const GROUP: &str = "g1";
    const DATES: [&str; 8] = [
        "2024-12-31",
        "2025-02-28",
        "2025-03-01",
        "2025-05-01",
        "2025-06-30",
        "2025-07-01",
        "2025-09-30",
        "2025-12-31",
    ];
    const START: &str = "2025-03-20T08:00:00+07:00";

    fn any_unit() -> impl Strategy<Value = UnitId> {
        select(UNITS.to_vec()).prop_map(unit_id)
    }

    fn any_plan() -> impl Strategy<Value = PlanId> {
        select(PLANS.to_vec()).prop_map(plan_id)
    }

    fn any_item() -> impl Strategy<Value = ItemId> {
        select(ITEMS.to_vec()).prop_map(item_id)
    }

    fn any_task() -> impl Strategy<Value = TaskId> {
        select(TASKS.to_vec()).prop_map(task_id)
    }

    fn any_date() -> impl Strategy<Value = NaiveDate> {
        select(DATES.to_vec()).prop_map(day)
    }

    fn any_name() -> impl Strategy<Value = Name> {
        select(vec!["Alpha", "Beta"]).prop_map(name)
    }

    fn any_title() -> impl Strategy<Value = Title> {
        select(vec!["Một", "Hai"]).prop_map(title)
    }

    fn any_reason() -> impl Strategy<Value = Reason> {
        select(vec!["Vì một", "Vì hai"]).prop_map(reason)
    }

    fn any_evidence() -> impl Strategy<Value = Option<Prose>> {
        prop::option::weighted(0.7, select(vec!["Minh chứng"]).prop_map(prose))
    }

    fn any_status() -> impl Strategy<Value = Lifecycle> {
        select(Lifecycle::ALL.to_vec())
    }

    fn any_quarter() -> impl Strategy<Value = Quarter> {
        prop_oneof![3 => Just(quarter(2025, 2)), 1 => Just(quarter(2025, 3))]
    }

    fn any_assignee() -> impl Strategy<Value = Assignee> {
        prop_oneof![
            3 => any_unit().prop_map(Assignee::Unit),
            1 => Just(Assignee::Group(group_id(GROUP))),
        ]
    }

    fn any_role() -> impl Strategy<Value = AssignmentRole> {
        select(vec![AssignmentRole::Lead, AssignmentRole::Coordinator])
    }

    fn any_line() -> impl Strategy<Value = ReportLine> {
        (
            any_item(),
            select(vec!["Đang làm", "Đã xong"]).prop_map(prose),
            prop::option::of(any_status()),
        )
            .prop_map(|(item_id, progress, status)| ReportLine {
                item_id,
                progress,
                status,
            })
    }

    /// Mostly one line on the item every bootstrapped unit is assigned to; sometimes up to two
    /// lines on any items, sometimes none.
    fn any_lines() -> impl Strategy<Value = Vec<ReportLine>> {
        let on_i1 = any_line().prop_map(|line| {
            vec![ReportLine {
                item_id: item_id("i1"),
                ..line
            }]
        });
        prop_oneof![
            1 => Just(vec![]),
            5 => on_i1,
            4 => prop::collection::vec(any_line(), 1..3),
        ]
    }

    /// Reports mostly address the plan the bootstrap items belong to…
    fn any_report_plan() -> impl Strategy<Value = PlanId> {
        prop_oneof![4 => Just(plan_id("p1")), 1 => Just(plan_id("p2"))]
    }

    /// …and mostly come from one unit, so that reviews and revisions meet submitted reports.
    fn any_report_unit() -> impl Strategy<Value = UnitId> {
        prop_oneof![
            3 => Just(unit_id("u1")),
            1 => Just(unit_id("u2")),
            1 => Just(unit_id("u3")),
        ]
    }

    fn any_command() -> impl Strategy<Value = Command> {
        prop_oneof![
            1 => (any_unit(), any_name(), select(vec![UnitKind::Department, UnitKind::DistrictCommittee]))
                .prop_map(|(unit_id, name, kind)| Command::RegisterUnit(RegisterUnit { unit_id, name, kind })),
            1 => (any_unit(), any_name(), any_reason())
                .prop_map(|(unit_id, name, reason)| Command::RenameUnit(RenameUnit { unit_id, name, reason })),
            2 => (any_unit(), prop::collection::vec(any_unit(), 0..3), any_date(), any_reason()).prop_map(
                |(unit_id, successors, effective_on, reason)| Command::SucceedUnit(SucceedUnit {
                    unit_id,
                    successors,
                    effective_on,
                    reason
                })
            ),
            1 => any_name().prop_map(|name| Command::DefineGroup(DefineGroup { group_id: group_id(GROUP), name })),
            1 => (any_unit(), any_date()).prop_map(|(unit_id, from)| Command::AddGroupMember(AddGroupMember {
                group_id: group_id(GROUP),
                unit_id,
                from
            })),
            1 => (any_unit(), any_date(), any_reason()).prop_map(|(unit_id, from, reason)| {
                Command::RemoveGroupMember(RemoveGroupMember {
                    group_id: group_id(GROUP),
                    unit_id,
                    from,
                    reason,
                })
            }),
            1 => (any_plan(), any_date(), any_title()).prop_map(|(plan_id, issued_on, title)| {
                Command::IssuePlan(IssuePlan {
                    plan_id,
                    code: name("1/KH"),
                    title,
                    issuer: name("UBND tỉnh"),
                    issued_on,
                    legal_basis: vec![],
                    reporting_rule: prose("Hằng quý"),
                    report_recipient: None,
                })
            }),
            1 => (any_plan(), prop::option::of(any_title()), any_reason()).prop_map(|(plan_id, title, reason)| {
                Command::AmendPlan(AmendPlan {
                    plan_id,
                    title,
                    legal_basis: None,
                    reporting_rule: None,
                    report_recipient: None,
                    reason,
                })
            }),
            1 => (any_item(), any_plan(), 1..3u16, any_title()).prop_map(|(item_id, plan_id, ordinal, title)| {
                Command::RecordItem(RecordItem {
                    item_id,
                    plan_id,
                    ordinal,
                    title,
                    sector: None,
                    causes_objective: None,
                    causes_subjective: None,
                    remedies: None,
                })
            }),
            2 => (any_item(), any_assignee())
                .prop_map(|(item_id, assignee)| Command::AssignLead(Assign { item_id, assignee })),
            2 => (any_item(), any_assignee())
                .prop_map(|(item_id, assignee)| Command::AssignCoordinator(Assign { item_id, assignee })),
            1 => (any_item(), any_role(), any_assignee(), any_reason()).prop_map(|(item_id, role, assignee, reason)| {
                Command::RevokeAssignment(RevokeAssignment {
                    item_id,
                    role,
                    assignee,
                    reason,
                })
            }),
            1 => (any_item(), any_date(), prop::option::of(any_reason())).prop_map(|(item_id, due_on, reason)| {
                Command::SetItemDeadline(SetItemDeadline { item_id, due_on, reason })
            }),
            3 => (any_item(), any_status(), any_reason(), any_evidence()).prop_map(
                |(item_id, to, reason, evidence)| Command::ChangeItemStatus(ChangeItemStatus {
                    item_id,
                    to,
                    reason,
                    evidence
                })
            ),
            3 => (any_task(), any_item(), any_unit(), any_date()).prop_map(|(task_id, item_id, unit_id, due_on)| {
                Command::PlanTask(PlanTask {
                    task_id,
                    item_id,
                    unit_id,
                    title: title("Nhiệm vụ"),
                    person_responsible: name("Người phụ trách"),
                    leader_in_charge: name("Lãnh đạo"),
                    due_on,
                })
            }),
            1 => (any_task(), any_date(), any_reason()).prop_map(|(task_id, due_on, reason)| {
                Command::RescheduleTask(RescheduleTask { task_id, due_on, reason })
            }),
            3 => (any_task(), any_status(), any_reason(), any_evidence()).prop_map(
                |(task_id, to, reason, evidence)| Command::ChangeTaskStatus(ChangeTaskStatus {
                    task_id,
                    to,
                    reason,
                    evidence
                })
            ),
            1 => (any_task(), any_reason()).prop_map(|(task_id, reason)| Command::CancelTask(CancelTask { task_id, reason })),
            3 => (any_report_plan(), any_report_unit(), any_quarter(), any_lines()).prop_map(|(plan_id, unit_id, quarter, lines)| {
                Command::SubmitReport(SubmitReport {
                    plan_id,
                    unit_id,
                    quarter,
                    lines,
                })
            }),
            2 => (any_report_plan(), any_report_unit(), any_quarter(), any_lines(), prop::option::of(any_reason())).prop_map(
                |(plan_id, unit_id, quarter, lines, reason)| Command::ReviseReport(ReviseReport {
                    plan_id,
                    unit_id,
                    quarter,
                    lines,
                    reason
                })
            ),
            2 => (any_report_plan(), any_report_unit(), any_quarter())
                .prop_map(|(plan_id, unit_id, quarter)| Command::AcceptReport(ReportKey { plan_id, unit_id, quarter })),
            2 => (any_report_plan(), any_report_unit(), any_quarter(), any_reason()).prop_map(
                |(plan_id, unit_id, quarter, reason)| Command::ReturnReport(ReturnReport {
                    plan_id,
                    unit_id,
                    quarter,
                    reason
                })
            ),
        ]
    }

    fn any_actor() -> impl Strategy<Value = Actor> {
        (
            prop_oneof![
                4 => Just(Role::ProvinceOffice),
                2 => Just(Role::DepartmentOfFinance),
                4 => Just(Role::UnitStaff),
                1 => Just(Role::Auditor),
                1 => Just(Role::Viewer),
            ],
            prop::option::weighted(0.9, select(UNITS.to_vec())),
        )
            .prop_map(|(role, unit)| actor(role, unit))
    }

    /// How far the effective time lies before `now` (negative: in the future), in seconds.
    fn any_backdating() -> impl Strategy<Value = i64> {
        prop_oneof![
            8 => Just(0i64),
            1 => 1..30 * 86_400i64,
            1 => -2 * 86_400..0i64,
        ]
    }

    #[derive(Debug, Clone)]
    struct Step {
        /// Who issues the command; `None` for whoever would normally issue it.
        actor: Option<Actor>,
        /// Seconds since the previous step.
        advance: i64,
        backdating: i64,
        command: Command,
    }

    fn any_step() -> impl Strategy<Value = Step> {
        (
            prop::option::weighted(0.5, any_actor()),
            0..10 * 86_400i64,
            any_backdating(),
            any_command(),
        )
            .prop_map(|(actor, advance, backdating, command)| Step {
                actor,
                advance,
                backdating,
                command,
            })
    }

    /// Whoever would normally issue the command, so that sequences get deep enough to matter.
    fn usual_actor(command: &Command, world: &World) -> Actor {
        match command {
            Command::AcceptReport(_) | Command::ReturnReport(_) => finance(),
            Command::ChangeItemStatus(_) => staff("u1"),
            Command::PlanTask(c) => staff(c.unit_id.as_str()),
            Command::SubmitReport(c) => staff(c.unit_id.as_str()),
            Command::ReviseReport(c) => staff(c.unit_id.as_str()),
            Command::RescheduleTask(_) | Command::ChangeTaskStatus(_) | Command::CancelTask(_) => {
                match world.state(&command.target()) {
                    AggregateState::Task(Some(task)) => staff(task.unit_id.as_str()),
                    _ => province_office(),
                }
            }
            _ => province_office(),
        }
    }

    /// Commands that set up a populated world, so that random commands meet existing aggregates.
    fn bootstrap() -> Vec<Command> {
        let plan = |id: &str, on: &str| {
            Command::IssuePlan(IssuePlan {
                plan_id: plan_id(id),
                code: name("1/KH"),
                title: title("Một"),
                issuer: name("UBND tỉnh"),
                issued_on: day(on),
                legal_basis: vec![],
                reporting_rule: prose("Hằng quý"),
                report_recipient: None,
            })
        };
        vec![
            plan("p1", "2025-03-01"),
            plan("p2", "2025-05-01"),
            register_unit("u1", "Alpha", UnitKind::Department),
            register_unit("u2", "Beta", UnitKind::DistrictCommittee),
            register_unit("u3", "Alpha", UnitKind::DistrictCommittee),
            define_group(GROUP, "Alpha"),
            add_member(GROUP, "u2", "2025-03-01"),
            add_member(GROUP, "u3", "2025-03-01"),
            record_item("i1", "p1", 1, "Một"),
            record_item("i2", "p1", 2, "Hai"),
            assign_lead("i1", unit_assignee("u1")),
            assign_coordinator("i1", group_assignee(GROUP)),
            assign_lead("i2", unit_assignee("u3")),
        ]
    }

    /// Every aggregate touched so far: its current state and every event it produced.
    #[derive(Default)]
    struct World {
        aggregates: BTreeMap<AggregateRef, (AggregateState, Vec<Event>)>,
    }

    impl World {
        fn state(&self, of: &AggregateRef) -> AggregateState {
            self.aggregates
                .get(of)
                .map_or_else(|| AggregateState::initial(of), |(state, _)| state.clone())
        }

        /// Facts from the current state of every aggregate but `target`.
        fn facts_for(&self, target: &AggregateRef) -> Facts {
            let mut facts = Facts::default();
            for (of, (state, _)) in &self.aggregates {
                if of != target {
                    state.add_to(of, &mut facts);
                }
            }
            facts
        }
    }

    /// What unit an actor must act for to be allowed the command, if unit staff may issue it.
    fn acting_for(command: &Command, state: &AggregateState) -> Option<UnitId> {
        match (command, state) {
            (Command::PlanTask(c), _) => Some(c.unit_id.clone()),
            (
                Command::RescheduleTask(_) | Command::ChangeTaskStatus(_) | Command::CancelTask(_),
                AggregateState::Task(Some(task)),
            ) => Some(task.unit_id.clone()),
            (Command::SubmitReport(c), _) => Some(c.unit_id.clone()),
            (Command::ReviseReport(c), _) => Some(c.unit_id.clone()),
            _ => None,
        }
    }

    /// Whether the move is one only the province office makes.
    fn province_office_move(command: &Command, state: &AggregateState) -> bool {
        let (from, to) = match (command, state) {
            (Command::ChangeItemStatus(c), AggregateState::Item(Some(item))) => (item.status, c.to),
            (Command::ChangeTaskStatus(c), AggregateState::Task(Some(task))) => (task.status, c.to),
            _ => return false,
        };
        from == Lifecycle::Completed || to == Lifecycle::Completed
    }

    /// Who may have had a command accepted (with or without events): the role matrix, backdating,
    /// unit staff only for their own unit (or one they succeeded), item status only by leads.
    fn check_authorised(
        command: &Command,
        state: &AggregateState,
        ctx: &Context,
    ) -> Result<(), TestCaseError> {
        let role = ctx.actor.role;
        prop_assert!(
            ctx.effective_at <= ctx.now,
            "accepted a future effective time"
        );
        if ctx.effective_at < ctx.now {
            prop_assert!(
                matches!(role, Role::ProvinceOffice | Role::DepartmentOfFinance),
                "{role:?} backdated {command:?}"
            );
        }
        match command {
            Command::AcceptReport(_) | Command::ReturnReport(_) => {
                prop_assert_eq!(role, Role::DepartmentOfFinance, "{:?}", command);
            }
            Command::ChangeItemStatus(_)
            | Command::PlanTask(_)
            | Command::RescheduleTask(_)
            | Command::ChangeTaskStatus(_)
            | Command::CancelTask(_)
            | Command::SubmitReport(_)
            | Command::ReviseReport(_) => {
                prop_assert!(
                    matches!(role, Role::ProvinceOffice | Role::UnitStaff),
                    "{role:?} issued {command:?}"
                );
                if province_office_move(command, state) {
                    prop_assert_eq!(role, Role::ProvinceOffice, "{:?}", command);
                }
                if role == Role::UnitStaff {
                    let own = ctx.actor.unit.as_ref();
                    prop_assert!(own.is_some(), "staff without a unit issued {command:?}");
                    if let (Some(own), Some(unit)) = (own, acting_for(command, state)) {
                        prop_assert!(
                            ctx.facts.acts_for(own, &unit, ctx.effective_at),
                            "staff of {own} acted for {unit}: {command:?}"
                        );
                    }
                    if let (Some(own), AggregateState::Item(Some(item))) = (own, state) {
                        let leads = ctx.facts.responsible_units(
                            item,
                            Some(AssignmentRole::Lead),
                            ctx.effective_at,
                        );
                        prop_assert!(
                            leads.contains(own),
                            "staff of {own}, not a lead, changed {command:?}"
                        );
                    }
                }
            }
            _ => prop_assert_eq!(role, Role::ProvinceOffice, "{:?}", command),
        }
        Ok(())
    }

    /// Runs one command against the world, checking the properties that hold for each decision.
    fn run(
        world: &mut World,
        actor: &Actor,
        now: DateTime<Utc>,
        effective_at: DateTime<Utc>,
        command: &Command,
    ) -> Result<Result<usize, Rejection>, TestCaseError> {
        let target = command.target();
        let before = world.state(&target);
        let facts = world.facts_for(&target);
        let ctx = Context {
            actor,
            now,
            effective_at,
            facts: &facts,
        };
        let outcome = command.decide(&before, &ctx);
        if matches!(actor.role, Role::Auditor | Role::Viewer) {
            prop_assert!(
                matches!(
                    outcome,
                    Err(Rejection::Forbidden(_)
                        | Rejection::NotFound(_)
                        | Rejection::Rule {
                            rule: Rule::EffectiveTimeInFuture,
                            ..
                        })
                ),
                "{:?} got {outcome:?} for {command:?}",
                actor.role
            );
        }
        let events = match outcome {
            Err(rejection) => {
                // (2) A rejection leaves the aggregate as it was: nothing to apply.
                prop_assert_eq!(world.state(&target), before);
                return Ok(Err(rejection));
            }
            Ok(events) => events,
        };
        check_authorised(command, &before, &ctx)?;
        let after = events.iter().fold(before.clone(), AggregateState::evolve);
        if events.is_empty() {
            prop_assert_eq!(&after, &before);
        } else {
            // Only a change yields events.
            prop_assert_ne!(
                &after,
                &before,
                "{:?} yielded {:?} but changed nothing",
                command,
                events
            );
            prop_assert!(after.exists());
            for event in &events {
                prop_assert_eq!(event.kind(), target.kind());
                // Events survive the wire: encoded and decoded, they are the same.
                let (name, data) = event.name_and_data();
                let decoded = Event::decode(
                    event.kind(),
                    &name,
                    remediation_domain::CURRENT_VERSION,
                    data,
                )
                .map_err(|e| TestCaseError::fail(format!("{name}: {e}")))?;
                prop_assert_eq!(&decoded, event);
            }
            // (4) Deciding the same command again right away changes nothing.
            let again = command.decide(&after, &ctx);
            prop_assert_eq!(again, Ok(vec![]), "repeating {:?}", command);
        }
        let produced = events.len();
        let entry = world
            .aggregates
            .entry(target.clone())
            .or_insert_with(|| (AggregateState::initial(&target), vec![]));
        entry.0 = after;
        entry.1.extend(events);
        Ok(Ok(produced))
    }

    fn check_refold(world: &World) -> Result<(), TestCaseError> {
        for (of, (state, events)) in &world.aggregates {
            // (3) The state is exactly the fold of the events produced for the aggregate.
            prop_assert_eq!(&fold(of, events), state, "{:?}", of);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn random_command_sequences_keep_the_deciders_honest(
            populate in prop::bool::weighted(0.85),
            steps in prop::collection::vec(any_step(), 1..64),
        ) {
            let mut world = World::default();
            let mut now = instant(START);
            if populate {
                for command in bootstrap() {
                    let outcome = run(&mut world, &province_office(), now, now, &command)?;
                    prop_assert!(matches!(outcome, Ok(n) if n > 0), "bootstrap {:?}: {:?}", command, outcome);
                }
            }
            for step in &steps {
                now += Duration::seconds(step.advance);
                let effective_at = now - Duration::seconds(step.backdating);
                let actor = step
                    .actor
                    .clone()
                    .unwrap_or_else(|| usual_actor(&step.command, &world));
                let _outcome = run(&mut world, &actor, now, effective_at, &step.command)?;
                check_refold(&world)?;
            }
        }

        #[test]
        fn evolve_is_total_over_any_event_sequence(
            steps in prop::collection::vec(any_step(), 1..32),
        ) {
            // Fold every event the other test could produce into every kind of aggregate, in any
            // order: evolving never panics, and foreign events leave a state as it is.
            let mut world = World::default();
            let mut now = instant(START);
            for command in bootstrap() {
                let _outcome = run(&mut world, &province_office(), now, now, &command)?;
            }
            for step in &steps {
                now += Duration::seconds(step.advance);
                let _outcome = run(&mut world, &province_office(), now, now, &step.command)?;
            }
            let all: Vec<Event> = world.aggregates.values().flat_map(|(_, events)| events.clone()).collect();
            for of in world.aggregates.keys() {
                let folded = fold(of, &all);
                let own: Vec<Event> = all.iter().filter(|e| e.kind() == of.kind()).cloned().collect();
                prop_assert_eq!(folded, fold(of, &own));
            }
        }
    }
}

#[test]
fn from_the_succession_date_the_predecessor_no_longer_acts_on_its_tasks() {
    let at = "2025-07-01T00:00:00+07:00";
    for command in [
        reschedule(TASK_DS, "2025-10-31"),
        change_task_status(TASK_DS, Lifecycle::InProgress, None),
        cancel_task(TASK_DS),
    ] {
        Spec::given(task_ref(TASK_DS), &task_ds_history())
            .with_facts(world())
            .as_actor(staff(DONG_SON))
            .at(at)
            .when(command.clone())
            .then_forbidden();
        // …and its successor does.
        Spec::given(task_ref(TASK_DS), &task_ds_history())
            .with_facts(world())
            .as_actor(staff(THANH_HOA))
            .at(at)
            .when(command)
            .events();
    }
}

#[test]
fn a_viewer_may_not_record_a_digest_and_an_older_digest_is_refused() {
    let ex = example("record-digest");
    let command = example_command(
        COMMANDS
            .iter()
            .find(|s| s.name == "record-digest")
            .expect("listed"),
        &ex.body,
    );
    Spec::given(command.target(), &[])
        .with_facts(world())
        .as_actor(viewer())
        .when(command.clone())
        .then_forbidden();
    let history = Spec::given(command.target(), &[])
        .with_facts(world())
        .as_actor(auditor())
        .when(command)
        .history();
    let older = Command::RecordDigest(remediation_domain::ledger::RecordDigest {
        up_to_sequence: 100,
        chains: 30,
        events: 99,
        digest: DIGEST.to_owned(),
    });
    Spec::given(older.target(), &history)
        .with_facts(world())
        .as_actor(auditor())
        .when(older)
        .then_rejected(Rule::InvalidDigest);
}

// =============================================================================================
// Access log (nhật ký truy cập)
// =============================================================================================

/// The local date of `NOW`.
const TODAY: &str = "2025-07-15";
const AUDIT_QUERY: &str = "GET /v1/audit?aggregate_id=kh-63-2025-01&limit=50";

fn access_ref(day: &str) -> AggregateRef {
    AggregateRef::Access(AccessDay::parse(day).expect("a day"))
}

fn record_read(day: &str, query: &str, results: u32) -> Command {
    Command::RecordAuditRead(RecordAuditRead {
        day: AccessDay::parse(day).expect("a day"),
        query: ReadQuery::new(query).expect("a query"),
        results,
    })
}

fn audit_read(query: &str, results: u32, at: &str) -> Event {
    Event::Access(AccessEvent::AuditRead {
        query: ReadQuery::new(query).expect("a query"),
        results,
        at: instant(at),
    })
}

#[test]
fn a_read_of_the_audit_trail_is_recorded_with_what_was_asked_and_when() {
    Spec::given(access_ref(TODAY), &[])
        .as_actor(auditor())
        .when(record_read(TODAY, AUDIT_QUERY, 12))
        .then(&[audit_read(AUDIT_QUERY, 12, NOW)]);
    // The province office reads the audit trail too.
    Spec::given(access_ref(TODAY), &[])
        .when(record_read(TODAY, AUDIT_QUERY, 0))
        .then(&[audit_read(AUDIT_QUERY, 0, NOW)]);
}

#[test]
fn the_same_read_again_is_recorded_again_because_every_read_is_a_fact() {
    let history = Spec::given(access_ref(TODAY), &[])
        .as_actor(auditor())
        .when(record_read(TODAY, AUDIT_QUERY, 12))
        .history();
    let history = Spec::given(access_ref(TODAY), &history)
        .as_actor(auditor())
        .when(record_read(TODAY, AUDIT_QUERY, 12))
        .then(&[audit_read(AUDIT_QUERY, 12, NOW)]);
    assert_eq!(history.len(), 2);
    match fold(&access_ref(TODAY), &history) {
        AggregateState::Access(Some(log)) => {
            assert_eq!(log.reads, 2);
            assert_eq!(log.last_read_at, instant(NOW));
        }
        other => panic!("expected the day's log, got {other:?}"),
    }
}

#[test]
fn only_those_who_may_read_the_audit_trail_record_reads_of_it() {
    for actor in [finance(), staff(XAY_DUNG), viewer()] {
        Spec::given(access_ref(TODAY), &[])
            .as_actor(actor)
            .when(record_read(TODAY, AUDIT_QUERY, 12))
            .then_forbidden();
    }
}

#[test]
fn a_read_goes_into_the_log_of_the_local_day_it_is_recorded_on() {
    // 23:59:59 local time still belongs to the 14th; midnight local time is the 15th, while UTC
    // is still on the 14th.
    Spec::given(access_ref("2025-07-14"), &[])
        .as_actor(auditor())
        .at("2025-07-14T23:59:59+07:00")
        .when(record_read("2025-07-14", AUDIT_QUERY, 1))
        .then(&[audit_read(AUDIT_QUERY, 1, "2025-07-14T23:59:59+07:00")]);
    Spec::given(access_ref("2025-07-14"), &[])
        .as_actor(auditor())
        .at("2025-07-15T00:00:00+07:00")
        .when(record_read("2025-07-14", AUDIT_QUERY, 1))
        .then_rejected(Rule::WrongAccessDay);
    Spec::given(access_ref("2025-07-16"), &[])
        .as_actor(auditor())
        .when(record_read("2025-07-16", AUDIT_QUERY, 1))
        .then_rejected(Rule::WrongAccessDay);
}

#[test]
fn a_read_cannot_be_backdated_even_by_the_province_office() {
    Spec::given(access_ref(TODAY), &[])
        .effective_at("2025-07-15T08:00:00+07:00")
        .when(record_read(TODAY, AUDIT_QUERY, 12))
        .then_forbidden();
}

#[test]
fn a_read_names_its_day_as_yyyy_mm_dd_and_what_was_read() {
    let spec = spec_named("record-audit-read");
    for (body, path) in [
        (
            json!({ "day": "2025-7-15", "query": AUDIT_QUERY, "results": 1 }),
            "day",
        ),
        (
            json!({ "day": "2025-02-30", "query": AUDIT_QUERY, "results": 1 }),
            "day",
        ),
        (
            json!({ "day": TODAY, "query": "  ", "results": 1 }),
            "query",
        ),
        (
            json!({ "day": TODAY, "query": "x".repeat(2001), "results": 1 }),
            "query",
        ),
        (
            json!({ "day": TODAY, "query": AUDIT_QUERY, "results": -1 }),
            "results",
        ),
    ] {
        let error = parse(spec.name, &body).expect_err("refused");
        assert_eq!(error.path, path, "{body}: {error}");
    }
    let command = parse(
        spec.name,
        &json!({ "day": TODAY, "query": AUDIT_QUERY, "results": 3 }),
    )
    .expect("parses");
    assert_eq!(command.target(), access_ref(TODAY));
    assert_eq!(command.target().id(), TODAY);
}

//! The union of all commands: their names, the aggregate each one changes, the facts each one
//! needs, and the dispatch to the aggregate deciders. Reading a command from a client's body (JSON
//! paths in errors, integral floats, control characters) and its JSON Schema belong to the edge
//! that receives it; [`for_each_command!`](crate::for_each_command) lets an edge build its own
//! table over the same list.

use crate::access;
use crate::context::Context;
use crate::event::{AggregateState, Event};
use crate::facts::AggregateRef;
use crate::group;
use crate::item::{self, AssignmentRole};
use crate::ledger;
use crate::plan;
use crate::quarantine::{self, QuarantineId};
use crate::rejection::Rejection;
use crate::report::{self, line_references};
use crate::task;
use crate::unit;

/// One command: its name and what it changes.
#[derive(Debug, Clone, Copy)]
pub struct CommandSpec {
    /// The kebab-case name, recorded in every event's envelope (and the last segment of the
    /// command service's path for it).
    pub name: &'static str,
    /// Aggregate type it changes.
    pub aggregate: &'static str,
    pub summary: &'static str,
    /// Reads the command from its JSON form with its types' own rules alone.
    pub decode: fn(serde_json::Value) -> Result<Command, serde_json::Error>,
}

impl CommandSpec {
    /// Whether clients may send it (over the command API). Reads of the audit trail are recorded
    /// by the query service itself, as it answers them: a client that could send the command
    /// could fill the access log with reads that never happened. A quarantine is decided at the
    /// operator's console (`remediation-admin quarantine`), which first reads the message from
    /// the stream and checks that it really breaks the record: a token alone must not be enough
    /// to set messages aside.
    pub fn sent_by_clients(&self) -> bool {
        !matches!(self.aggregate, "access" | "quarantine")
    }
}

macro_rules! commands {
    ($($variant:ident($body:ty) => $name:literal, $aggregate:literal, $summary:literal;)*) => {
        /// Lệnh — any command.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Command {
            $($variant($body),)*
        }

        /// Every command, in the order the API documents them.
        pub const COMMANDS: &[CommandSpec] = &[
            $(CommandSpec {
                name: $name,
                aggregate: $aggregate,
                summary: $summary,
                decode: |body| serde_json::from_value::<$body>(body).map(Command::$variant),
            },)*
        ];

        impl Command {
            pub fn name(&self) -> &'static str {
                match self {
                    $(Command::$variant(_) => $name,)*
                }
            }
        }
    };
}

/// Calls macro `$callback` with the list of every command — `Variant(BodyType) => "name",
/// "aggregate", "summary";` each — so that an edge builds its own table (parsers, schemas) over
/// exactly the commands the domain knows, in [`COMMANDS`]' order.
#[macro_export]
macro_rules! for_each_command {
    ($callback:ident) => {
        $callback! {
            RegisterUnit($crate::unit::RegisterUnit) => "register-unit", "unit", "Đăng ký đơn vị — register a unit";
            RenameUnit($crate::unit::RenameUnit) => "rename-unit", "unit", "Đổi tên đơn vị — rename a unit";
            SucceedUnit($crate::unit::SucceedUnit) => "succeed-unit", "unit", "Sáp nhập, giải thể — a unit is succeeded from a date";
            DefineGroup($crate::group::DefineGroup) => "define-group", "group", "Lập nhóm đơn vị — define a unit group";
            AddGroupMember($crate::group::AddGroupMember) => "add-group-member", "group", "Thêm thành viên nhóm — add a unit to a group from a date";
            RemoveGroupMember($crate::group::RemoveGroupMember) => "remove-group-member", "group", "Bớt thành viên nhóm — remove a unit from a group from a date";
            IssuePlan($crate::plan::IssuePlan) => "issue-plan", "plan", "Ban hành kế hoạch — issue a plan";
            AmendPlan($crate::plan::AmendPlan) => "amend-plan", "plan", "Sửa đổi kế hoạch — amend a plan";
            RecordItem($crate::item::RecordItem) => "record-item", "item", "Ghi nhận nội dung hạn chế — record an item";
            AssignLead($crate::item::Assign) => "assign-lead", "item", "Giao chủ trì — assign a lead unit or group";
            AssignCoordinator($crate::item::Assign) => "assign-coordinator", "item", "Giao phối hợp — assign a coordinating unit or group";
            RevokeAssignment($crate::item::RevokeAssignment) => "revoke-assignment", "item", "Thu hồi phân công — revoke an assignment, with a reason";
            SetItemDeadline($crate::item::SetItemDeadline) => "set-item-deadline", "item", "Đặt thời hạn — set or change an item's deadline";
            ChangeItemStatus($crate::item::ChangeItemStatus) => "change-item-status", "item", "Chuyển trạng thái nội dung — change an item's status, with a reason";
            PlanTask($crate::task::PlanTask) => "plan-task", "task", "Lập nhiệm vụ — plan a task in a unit's detailed plan";
            RescheduleTask($crate::task::RescheduleTask) => "reschedule-task", "task", "Điều chỉnh thời hạn nhiệm vụ — reschedule a task";
            ChangeTaskStatus($crate::task::ChangeTaskStatus) => "change-task-status", "task", "Chuyển trạng thái nhiệm vụ — change a task's status, with a reason";
            CancelTask($crate::task::CancelTask) => "cancel-task", "task", "Hủy nhiệm vụ — cancel a task, with a reason";
            SubmitReport($crate::report::SubmitReport) => "submit-report", "report", "Gửi báo cáo quý — submit a quarterly report";
            ReviseReport($crate::report::ReviseReport) => "revise-report", "report", "Chỉnh sửa báo cáo — revise a submitted or returned report";
            AcceptReport($crate::report::ReportKey) => "accept-report", "report", "Tiếp nhận báo cáo — the Department of Finance accepts a report";
            ReturnReport($crate::report::ReturnReport) => "return-report", "report", "Trả lại báo cáo — the Department of Finance returns a report, with a reason";
            RecordDigest($crate::ledger::RecordDigest) => "record-digest", "ledger", "Ghi nhận bản tóm lược chuỗi băm — record a digest over all hash chains";
            RecordAuditRead($crate::access::RecordAuditRead) => "record-audit-read", "access", "Ghi nhận lượt đọc nhật ký kiểm toán — record a read of the audit trail (never idempotent: every read is a fact)";
            QuarantineMessage($crate::quarantine::QuarantineMessage) => "quarantine-message", "quarantine", "Cách ly thông điệp — an auditor sets aside one stored message that breaks the record, so the read side continues past it";
        }
    };
}

for_each_command!(commands);

fn wrap<E>(into: fn(E) -> Event) -> impl Fn(Vec<E>) -> Vec<Event> {
    move |events| events.into_iter().map(into).collect()
}

impl Command {
    /// The one aggregate the command changes.
    pub fn target(&self) -> AggregateRef {
        match self {
            Command::RegisterUnit(c) => AggregateRef::Unit(c.unit_id.clone()),
            Command::RenameUnit(c) => AggregateRef::Unit(c.unit_id.clone()),
            Command::SucceedUnit(c) => AggregateRef::Unit(c.unit_id.clone()),
            Command::DefineGroup(c) => AggregateRef::Group(c.group_id.clone()),
            Command::AddGroupMember(c) => AggregateRef::Group(c.group_id.clone()),
            Command::RemoveGroupMember(c) => AggregateRef::Group(c.group_id.clone()),
            Command::IssuePlan(c) => AggregateRef::Plan(c.plan_id.clone()),
            Command::AmendPlan(c) => AggregateRef::Plan(c.plan_id.clone()),
            Command::RecordItem(c) => AggregateRef::Item(c.item_id.clone()),
            Command::AssignLead(c) | Command::AssignCoordinator(c) => {
                AggregateRef::Item(c.item_id.clone())
            }
            Command::RevokeAssignment(c) => AggregateRef::Item(c.item_id.clone()),
            Command::SetItemDeadline(c) => AggregateRef::Item(c.item_id.clone()),
            Command::ChangeItemStatus(c) => AggregateRef::Item(c.item_id.clone()),
            Command::PlanTask(c) => AggregateRef::Task(c.task_id.clone()),
            Command::RescheduleTask(c) => AggregateRef::Task(c.task_id.clone()),
            Command::ChangeTaskStatus(c) => AggregateRef::Task(c.task_id.clone()),
            Command::CancelTask(c) => AggregateRef::Task(c.task_id.clone()),
            Command::SubmitReport(c) => AggregateRef::Report(c.key().report_id()),
            Command::ReviseReport(c) => AggregateRef::Report(c.key().report_id()),
            Command::AcceptReport(c) => AggregateRef::Report(c.report_id()),
            Command::ReturnReport(c) => AggregateRef::Report(c.key().report_id()),
            Command::RecordDigest(_) => AggregateRef::Ledger,
            Command::RecordAuditRead(c) => AggregateRef::Access(c.day.clone()),
            Command::QuarantineMessage(c) => AggregateRef::Quarantine(QuarantineId::of(c.sequence)),
        }
    }

    /// Aggregates the decision reads besides its target (their own references are followed by
    /// the loader).
    pub fn references(&self) -> Vec<AggregateRef> {
        match self {
            Command::SucceedUnit(c) => c
                .successors
                .iter()
                .cloned()
                .map(AggregateRef::Unit)
                .collect(),
            Command::AddGroupMember(c) => vec![AggregateRef::Unit(c.unit_id.clone())],
            Command::RecordItem(c) => vec![AggregateRef::Plan(c.plan_id.clone())],
            Command::AssignLead(c) | Command::AssignCoordinator(c) => vec![c.assignee.reference()],
            Command::PlanTask(c) => vec![
                AggregateRef::Unit(c.unit_id.clone()),
                AggregateRef::Item(c.item_id.clone()),
            ],
            Command::SubmitReport(c) => c
                .key()
                .references()
                .into_iter()
                .chain(line_references(&c.lines))
                .collect(),
            Command::ReviseReport(c) => c
                .key()
                .references()
                .into_iter()
                .chain(line_references(&c.lines))
                .collect(),
            // Who may review depends on whose report it is and on the plan's recipient.
            Command::AcceptReport(c) => c.references(),
            Command::ReturnReport(c) => c.key().references(),
            _ => vec![],
        }
    }

    /// Whether the decision consults aggregates the target itself refers to: who leads an item
    /// (its groups, their members, successors) for a status change, and who holds a task's unit
    /// after a succession for task commands. Other commands need only [`Command::references`],
    /// which keeps their loading to what they name.
    pub fn consults_target_references(&self) -> bool {
        matches!(
            self,
            Command::ChangeItemStatus(_)
                | Command::RescheduleTask(_)
                | Command::ChangeTaskStatus(_)
                | Command::CancelTask(_)
                | Command::SubmitReport(_)
                | Command::ReviseReport(_)
        )
    }

    /// Decides the command against the target's state. A rejection yields no events; a command
    /// that would change nothing yields an empty list — except [`Command::RecordAuditRead`],
    /// which records a fact that happened and so always yields its one event.
    pub fn decide(&self, state: &AggregateState, ctx: &Context) -> Result<Vec<Event>, Rejection> {
        ctx.check_effective_time()?;
        use AggregateState as S;
        match (self, state) {
            (Command::RegisterUnit(c), S::Unit(s)) => {
                unit::register(s, c, ctx).map(wrap(Event::Unit))
            }
            (Command::RenameUnit(c), S::Unit(s)) => unit::rename(s, c, ctx).map(wrap(Event::Unit)),
            (Command::SucceedUnit(c), S::Unit(s)) => {
                unit::succeed(s, c, ctx).map(wrap(Event::Unit))
            }
            (Command::DefineGroup(c), S::Group(s)) => {
                group::define(s, c, ctx).map(wrap(Event::Group))
            }
            (Command::AddGroupMember(c), S::Group(s)) => {
                group::add_member(s, c, ctx).map(wrap(Event::Group))
            }
            (Command::RemoveGroupMember(c), S::Group(s)) => {
                group::remove_member(s, c, ctx).map(wrap(Event::Group))
            }
            (Command::IssuePlan(c), S::Plan(s)) => plan::issue(s, c, ctx).map(wrap(Event::Plan)),
            (Command::AmendPlan(c), S::Plan(s)) => plan::amend(s, c, ctx).map(wrap(Event::Plan)),
            (Command::RecordItem(c), S::Item(s)) => item::record(s, c, ctx).map(wrap(Event::Item)),
            (Command::AssignLead(c), S::Item(s)) => {
                item::assign(s, c, AssignmentRole::Lead, ctx).map(wrap(Event::Item))
            }
            (Command::AssignCoordinator(c), S::Item(s)) => {
                item::assign(s, c, AssignmentRole::Coordinator, ctx).map(wrap(Event::Item))
            }
            (Command::RevokeAssignment(c), S::Item(s)) => {
                item::revoke(s, c, ctx).map(wrap(Event::Item))
            }
            (Command::SetItemDeadline(c), S::Item(s)) => {
                item::set_deadline(s, c, ctx).map(wrap(Event::Item))
            }
            (Command::ChangeItemStatus(c), S::Item(s)) => {
                item::change_status(s, c, ctx).map(wrap(Event::Item))
            }
            (Command::PlanTask(c), S::Task(s)) => task::plan(s, c, ctx).map(wrap(Event::Task)),
            (Command::RescheduleTask(c), S::Task(s)) => {
                task::reschedule(s, c, ctx).map(wrap(Event::Task))
            }
            (Command::ChangeTaskStatus(c), S::Task(s)) => {
                task::change_status(s, c, ctx).map(wrap(Event::Task))
            }
            (Command::CancelTask(c), S::Task(s)) => task::cancel(s, c, ctx).map(wrap(Event::Task)),
            (Command::SubmitReport(c), S::Report(s)) => {
                report::submit(s, c, ctx).map(wrap(Event::Report))
            }
            (Command::ReviseReport(c), S::Report(s)) => {
                report::revise(s, c, ctx).map(wrap(Event::Report))
            }
            (Command::AcceptReport(c), S::Report(s)) => {
                report::accept(s, c, ctx).map(wrap(Event::Report))
            }
            (Command::ReturnReport(c), S::Report(s)) => {
                report::return_for_revision(s, c, ctx).map(wrap(Event::Report))
            }
            (Command::RecordDigest(c), S::Ledger(s)) => {
                ledger::record(s, c, ctx).map(wrap(Event::Ledger))
            }
            (Command::RecordAuditRead(c), S::Access(s)) => {
                access::record_read(s, c, ctx).map(wrap(Event::Access))
            }
            (Command::QuarantineMessage(c), S::Quarantine(s)) => {
                quarantine::quarantine(s, c, ctx).map(wrap(Event::Quarantine))
            }
            (command, _) => Err(Rejection::not_found(format!(
                "command {} does not apply to this aggregate",
                command.name()
            ))),
        }
    }
}

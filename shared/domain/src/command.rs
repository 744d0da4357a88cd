//! The union of all commands: their HTTP names, the aggregate each one changes, the facts each
//! one needs, and the dispatch to the aggregate deciders.

use schemars::{Schema, SchemaGenerator};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::access::{self, RecordAuditRead};
use crate::context::Context;
use crate::event::{AggregateState, Event};
use crate::facts::AggregateRef;
use crate::group::{self, AddGroupMember, DefineGroup, RemoveGroupMember};
use crate::item::{
    self, Assign, AssignmentRole, ChangeItemStatus, RecordItem, RevokeAssignment, SetItemDeadline,
};
use crate::ledger::{self, RecordDigest};
use crate::plan::{self, AmendPlan, IssuePlan};
use crate::quarantine::{self, QuarantineId, QuarantineMessage};
use crate::rejection::Rejection;
use crate::report::{self, ReportKey, ReturnReport, ReviseReport, SubmitReport, line_references};
use crate::task::{self, CancelTask, ChangeTaskStatus, PlanTask, RescheduleTask};
use crate::unit::{self, RegisterUnit, RenameUnit, SucceedUnit};

/// A command body that could not be read, with the JSON path of the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ParseError {
    pub path: String,
    pub message: String,
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ParseError> {
    let command = parse_typed(body)?;
    refuse_control_characters(body)?;
    Ok(command)
}

/// A command's text may carry no control character but tab and line breaks: a NUL cannot be
/// stored by PostgreSQL (it would stall every projection) and the others do not belong in prose.
/// Checked on the body as a whole, here where commands come in, and not in `Text`'s
/// deserialisation, which also reads back events stored before the rule.
fn refuse_control_characters(body: &[u8]) -> Result<(), ParseError> {
    /// The path in `serde_path_to_error`'s notation (`lines[0].progress`) and the error.
    fn find(value: &Value, path: &str) -> Option<(String, String)> {
        match value {
            Value::String(text) => {
                crate::text::forbidden_control(text).map(|e| (path.to_owned(), e.to_string()))
            }
            Value::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, item)| find(item, &format!("{path}[{i}]"))),
            Value::Object(fields) => fields.iter().find_map(|(name, field)| {
                let path = if path.is_empty() {
                    name.clone()
                } else {
                    format!("{path}.{name}")
                };
                find(field, &path)
            }),
            _ => None,
        }
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| ParseError {
        path: ".".to_owned(),
        message: e.to_string(),
    })?;
    match find(&value, "") {
        Some((path, message)) => Err(ParseError { path, message }),
        None => Ok(()),
    }
}

fn parse_typed<T: DeserializeOwned>(body: &[u8]) -> Result<T, ParseError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let parsed = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| ParseError {
        path: e.path().to_string(),
        message: e.inner().to_string(),
    });
    match parsed {
        Ok(value) => {
            deserializer.end().map_err(|e| ParseError {
                path: ".".to_owned(),
                message: e.to_string(),
            })?;
            Ok(value)
        }
        Err(error) => parse_integral_floats(body).ok_or(error),
    }
}

/// JSON does not tell `3` from `3.0`, and JSON Schema calls both integers, but serde refuses a
/// float for an integer field. A body refused for that is read once more with every integral
/// float that fits an `i64`/`u64` as the integer it equals; a body refused for anything else
/// stays refused with its first error.
fn parse_integral_floats<T: DeserializeOwned>(body: &[u8]) -> Option<T> {
    fn integral(value: &mut Value) -> bool {
        match value {
            Value::Number(n) if n.is_f64() => {
                let f = n.as_f64().unwrap_or(f64::NAN);
                // Every integer up to 2^53 is a float exactly, so the cast loses nothing.
                let exact = f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0;
                if exact {
                    *value = Value::from(f as i64);
                }
                exact
            }
            // Every number is visited (no short circuit): each may need rewriting.
            Value::Array(items) => items.iter_mut().map(integral).fold(false, |a, b| a | b),
            Value::Object(fields) => fields.values_mut().map(integral).fold(false, |a, b| a | b),
            _ => false,
        }
    }
    let mut value: Value = serde_json::from_slice(body).ok()?;
    integral(&mut value).then(|| serde_json::from_value(value).ok())?
}

/// How the edge finds, documents and reads one command.
#[derive(Debug, Clone, Copy)]
pub struct CommandSpec {
    /// The kebab-case name, also the last segment of its HTTP path.
    pub name: &'static str,
    /// Aggregate type it changes.
    pub aggregate: &'static str,
    pub summary: &'static str,
    pub schema: fn(&mut SchemaGenerator) -> Schema,
    pub parse: fn(&[u8]) -> Result<Command, ParseError>,
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
                schema: |generator| generator.subschema_for::<$body>(),
                parse: |body| parse::<$body>(body).map(Command::$variant),
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

commands! {
    RegisterUnit(RegisterUnit) => "register-unit", "unit", "Đăng ký đơn vị — register a unit";
    RenameUnit(RenameUnit) => "rename-unit", "unit", "Đổi tên đơn vị — rename a unit";
    SucceedUnit(SucceedUnit) => "succeed-unit", "unit", "Sáp nhập, giải thể — a unit is succeeded from a date";
    DefineGroup(DefineGroup) => "define-group", "group", "Lập nhóm đơn vị — define a unit group";
    AddGroupMember(AddGroupMember) => "add-group-member", "group", "Thêm thành viên nhóm — add a unit to a group from a date";
    RemoveGroupMember(RemoveGroupMember) => "remove-group-member", "group", "Bớt thành viên nhóm — remove a unit from a group from a date";
    IssuePlan(IssuePlan) => "issue-plan", "plan", "Ban hành kế hoạch — issue a plan";
    AmendPlan(AmendPlan) => "amend-plan", "plan", "Sửa đổi kế hoạch — amend a plan";
    RecordItem(RecordItem) => "record-item", "item", "Ghi nhận nội dung hạn chế — record an item";
    AssignLead(Assign) => "assign-lead", "item", "Giao chủ trì — assign a lead unit or group";
    AssignCoordinator(Assign) => "assign-coordinator", "item", "Giao phối hợp — assign a coordinating unit or group";
    RevokeAssignment(RevokeAssignment) => "revoke-assignment", "item", "Thu hồi phân công — revoke an assignment, with a reason";
    SetItemDeadline(SetItemDeadline) => "set-item-deadline", "item", "Đặt thời hạn — set or change an item's deadline";
    ChangeItemStatus(ChangeItemStatus) => "change-item-status", "item", "Chuyển trạng thái nội dung — change an item's status, with a reason";
    PlanTask(PlanTask) => "plan-task", "task", "Lập nhiệm vụ — plan a task in a unit's detailed plan";
    RescheduleTask(RescheduleTask) => "reschedule-task", "task", "Điều chỉnh thời hạn nhiệm vụ — reschedule a task";
    ChangeTaskStatus(ChangeTaskStatus) => "change-task-status", "task", "Chuyển trạng thái nhiệm vụ — change a task's status, with a reason";
    CancelTask(CancelTask) => "cancel-task", "task", "Hủy nhiệm vụ — cancel a task, with a reason";
    SubmitReport(SubmitReport) => "submit-report", "report", "Gửi báo cáo quý — submit a quarterly report";
    ReviseReport(ReviseReport) => "revise-report", "report", "Chỉnh sửa báo cáo — revise a submitted or returned report";
    AcceptReport(ReportKey) => "accept-report", "report", "Tiếp nhận báo cáo — the Department of Finance accepts a report";
    ReturnReport(ReturnReport) => "return-report", "report", "Trả lại báo cáo — the Department of Finance returns a report, with a reason";
    RecordDigest(RecordDigest) => "record-digest", "ledger", "Ghi nhận bản tóm lược chuỗi băm — record a digest over all hash chains";
    RecordAuditRead(RecordAuditRead) => "record-audit-read", "access", "Ghi nhận lượt đọc nhật ký kiểm toán — record a read of the audit trail (never idempotent: every read is a fact)";
    QuarantineMessage(QuarantineMessage) => "quarantine-message", "quarantine", "Cách ly thông điệp — an auditor sets aside one stored message that breaks the record, so the read side continues past it";
}

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

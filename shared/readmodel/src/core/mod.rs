//! The core projection, a batch at a time: the rows the batch touches are loaded with one SELECT
//! per table, every event is folded into them in stream order, and each changed row is written
//! once, with a few set-based statements per table.
//!
//! The tables come out as applying the events one by one, statement by statement, would leave
//! them, and so do the refusals: an event whose statements the database would refuse (a key
//! already taken, a value it cannot store) ends the fold; what came before it is written, and
//! the event is written on its own, exactly as its statements would, so that the database
//! answers for it. If it refuses, the batch fails with its error, and the caller finds the
//! commit one at a time; if not, the fold goes on after it.

mod rows;

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Utc};
use event_store::{CloudEvent, HashedCommit};
use remediation_domain::calendar::Quarter;
use remediation_domain::group::GroupEvent;
use remediation_domain::item::{AssignmentRole, ItemEvent};
use remediation_domain::lifecycle::Lifecycle;
use remediation_domain::plan::PlanEvent;
use remediation_domain::report::{ReportEvent, ReportLine, report_id};
use remediation_domain::task::TaskEvent;
use remediation_domain::unit::UnitEvent;
use remediation_domain::{Assignee, Event};
use sqlx::PgConnection;

use self::rows::*;
use crate::ApplyError;

/// Snake-case wire name of a serde enum value (lifecycle, kinds, roles).
fn wire<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn assignee_parts(assignee: &Assignee) -> (&'static str, &str) {
    match assignee {
        Assignee::Unit(id) => ("unit", id.as_str()),
        Assignee::Group(id) => ("group", id.as_str()),
    }
}

fn role_name(role: AssignmentRole) -> &'static str {
    match role {
        AssignmentRole::Lead => "lead",
        AssignmentRole::Coordinator => "coordinator",
    }
}

/// One event of the batch, decoded, with the commit it came in.
struct Step<'a> {
    sequence: u64,
    envelope: &'a CloudEvent,
    event: Result<Event, remediation_domain::DecodeError>,
}

/// Why the fold stopped before an event.
enum Halt {
    /// The database would refuse the event's statements: it is written on its own.
    Refused,
    /// The projection stops at the event.
    Stop(ApplyError),
}

/// How an event is folded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Halts, changing nothing, at an event the database would refuse.
    Checked,
    /// Folds the event as its statements would write it, refusals included; the values the
    /// database cannot store are handed to it as they are.
    AsWritten,
}

/// Applies the events of `commits`, in order, to the core tables.
pub async fn apply(conn: &mut PgConnection, commits: &[&HashedCommit]) -> Result<(), ApplyError> {
    let steps: Vec<Step<'_>> = commits
        .iter()
        .flat_map(|commit| {
            commit.events.iter().map(|envelope| Step {
                sequence: commit.sequence,
                envelope,
                event: envelope.decode(),
            })
        })
        .collect();
    let mut rest = &steps[..];
    while !rest.is_empty() {
        let mut state = State::load(conn, rest).await?;
        let mut folded = 0;
        let mut halt = None;
        for step in rest {
            if let Err(h) = state.fold(step, Mode::Checked) {
                halt = Some(h);
                break;
            }
            folded += 1;
        }
        // What came before a stop is written too: the database may refuse some of it, and
        // then its error is the first, as it would have been event by event.
        state.write(conn).await?;
        match halt {
            None => break,
            Some(Halt::Stop(error)) => return Err(error),
            Some(Halt::Refused) => {
                let step = &rest[folded];
                let one = std::slice::from_ref(step);
                let mut state = State::load(conn, one).await?;
                match state.fold(step, Mode::AsWritten) {
                    Err(Halt::Stop(error)) => return Err(error),
                    Ok(()) | Err(Halt::Refused) => {}
                }
                state.write(conn).await?;
                rest = &rest[folded + 1..];
            }
        }
    }
    Ok(())
}

/// A value the database refuses in any statement, handed to it as such when an event is
/// written as it is.
#[derive(Debug, Clone)]
enum Probe {
    Text(String),
    Json(serde_json::Value),
    Time(DateTime<Utc>),
    Date(NaiveDate),
}

impl Probe {
    async fn run(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        let query = match self {
            Probe::Text(v) => sqlx::query("SELECT $1::text").bind(v.as_str()),
            Probe::Json(v) => sqlx::query("SELECT $1::jsonb").bind(v),
            Probe::Time(v) => sqlx::query("SELECT $1::timestamptz").bind(*v),
            Probe::Date(v) => sqlx::query("SELECT $1::date").bind(*v),
        };
        query.execute(conn).await?;
        Ok(())
    }
}

/// Years PostgreSQL's timestamps and dates hold (it starts at 4713 BC; the upper bound is the
/// lower of timestamptz's and date's).
const STORABLE_YEARS: std::ops::RangeInclusive<i32> = -4711..=294_275;

/// What an event's statements would hand the database that it refuses.
#[derive(Debug, Default)]
struct Guard {
    probes: Vec<Probe>,
    taken: bool,
}

impl Guard {
    fn text(&mut self, value: &str) -> String {
        if value.contains('\0') {
            self.probes.push(Probe::Text(value.to_owned()));
        }
        value.to_owned()
    }

    fn opt(&mut self, value: Option<&str>) -> Option<String> {
        value.map(|v| self.text(v))
    }

    fn json(&mut self, value: serde_json::Value) -> serde_json::Value {
        if value.to_string().contains("\\u0000") {
            self.probes.push(Probe::Json(value.clone()));
        }
        value
    }

    /// The instant as PostgreSQL stores it: whole microseconds, truncated towards 2000-01-01
    /// as the driver encodes it.
    fn time(&mut self, value: DateTime<Utc>) -> DateTime<Utc> {
        let epoch = NaiveDate::from_ymd_opt(2000, 1, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc());
        let stored = epoch.and_then(|epoch| {
            (value - epoch)
                .num_microseconds()
                .map(|us| epoch + TimeDelta::microseconds(us))
        });
        match stored {
            Some(stored) if STORABLE_YEARS.contains(&value.year()) => stored,
            _ => {
                self.probes.push(Probe::Time(value));
                value
            }
        }
    }

    fn date(&mut self, value: NaiveDate) -> NaiveDate {
        if !STORABLE_YEARS.contains(&value.year()) {
            self.probes.push(Probe::Date(value));
        }
        value
    }

    /// The event inserts a key that is taken.
    fn taken(&mut self, taken: bool) {
        self.taken |= taken;
    }
}

/// The rows a batch touches, as its events leave them.
struct State {
    units: Table<UnitRow>,
    groups: Table<GroupRow>,
    members: Groups<(String, String), MemberRow>,
    plans: Table<PlanRow>,
    items: Table<ItemRow>,
    assignments: Groups<String, AssignmentRow>,
    tasks: Table<TaskRow>,
    reports: Table<ReportRow>,
    /// Reports whose lines the batch replaced, with their last lines.
    lines: HashMap<String, Vec<LineRow>>,
    history: Groups<Aggregate, HistoryRow>,
    /// Rows inserted so far: orders the inserts.
    inserts: u64,
    probes: Vec<Probe>,
}

/// The keys the events of a batch touch, per table.
#[derive(Default)]
struct Keys {
    units: HashSet<String>,
    groups: HashSet<String>,
    members: HashSet<(String, String)>,
    plans: HashSet<String>,
    items: HashSet<String>,
    assignments: HashSet<String>,
    tasks: HashSet<String>,
    reports: HashSet<String>,
    history: HashSet<Aggregate>,
}

impl Keys {
    fn of(steps: &[Step<'_>]) -> Self {
        let mut keys = Keys::default();
        for step in steps {
            let Ok(event) = &step.event else { continue };
            let id = step.envelope.aggregateid.clone();
            match event {
                Event::Unit(_) => {
                    keys.units.insert(id);
                }
                Event::Group(GroupEvent::Defined { .. }) => {
                    keys.groups.insert(id);
                }
                Event::Group(GroupEvent::MemberRemoved { unit_id, .. }) => {
                    keys.members.insert((id, unit_id.as_str().to_owned()));
                }
                Event::Group(GroupEvent::MemberAdded { .. }) => {}
                Event::Plan(_) => {
                    keys.plans.insert(id);
                }
                Event::Item(e) => {
                    match e {
                        ItemEvent::Recorded { .. } | ItemEvent::StatusChanged { .. } => {
                            keys.history.insert(("item", id.clone()));
                        }
                        ItemEvent::Assigned { .. } | ItemEvent::AssignmentRevoked { .. } => {
                            keys.assignments.insert(id.clone());
                        }
                        ItemEvent::DeadlineSet { .. } | ItemEvent::DeadlineChanged { .. } => {}
                    }
                    keys.items.insert(id);
                }
                Event::Task(e) => {
                    if matches!(
                        e,
                        TaskEvent::Planned { .. } | TaskEvent::StatusChanged { .. }
                    ) {
                        keys.history.insert(("task", id.clone()));
                    }
                    keys.tasks.insert(id);
                }
                Event::Report(_) => {
                    keys.reports.insert(id);
                }
                Event::Ledger(_) | Event::Access(_) | Event::Quarantine(_) => {}
            }
        }
        keys
    }
}

/// The slot of `key` in `table`: loaded for every key the batch touches.
fn slot<'t, R: Clone + PartialEq>(table: &'t mut Table<R>, key: &str) -> &'t mut Tracked<R> {
    table.entry(key.to_owned()).or_insert_with(Tracked::absent)
}

/// One status an item or task took, as an event recorded it.
struct StatusChange {
    aggregate: Aggregate,
    previous: Option<Lifecycle>,
    status: Lifecycle,
    reason: Option<String>,
    evidence: Option<String>,
    /// Effective instant of the change.
    at: DateTime<Utc>,
}

/// Where an event sits in the log and who caused it.
struct Meta<'a> {
    sequence: i64,
    envelope: &'a CloudEvent,
}

/// What a status change keeps of its event, as stored.
struct Stamp {
    sequence: i64,
    time: DateTime<Utc>,
    actor_user: String,
    actor_unit: Option<String>,
}

impl Meta<'_> {
    fn effective(&self, guard: &mut Guard) -> DateTime<Utc> {
        guard.time(self.envelope.effectivetime)
    }

    fn stamp(&self, guard: &mut Guard) -> Stamp {
        Stamp {
            sequence: self.sequence,
            time: guard.time(self.envelope.time),
            actor_user: guard.text(&self.envelope.actoruser),
            actor_unit: guard.opt(self.envelope.actorunit.as_deref()),
        }
    }
}

impl State {
    async fn load(conn: &mut PgConnection, steps: &[Step<'_>]) -> Result<Self, sqlx::Error> {
        let keys = Keys::of(steps);
        // The rows the batch touches in a table, without a round trip to the database when it
        // touches none: most batches touch only a few of the tables, and an empty `SELECT`
        // cost about as much as a full one (a quarter of a catch-up's time went to them).
        macro_rules! touched {
            ($keys:expr, $load:ident) => {
                if $keys.is_empty() {
                    Default::default()
                } else {
                    $load(conn, $keys.into_iter().collect()).await?
                }
            };
        }
        Ok(State {
            units: touched!(keys.units, load_units),
            groups: touched!(keys.groups, load_groups),
            members: touched!(keys.members, load_members),
            plans: touched!(keys.plans, load_plans),
            items: touched!(keys.items, load_items),
            assignments: touched!(keys.assignments, load_assignments),
            tasks: touched!(keys.tasks, load_tasks),
            reports: touched!(keys.reports, load_reports),
            lines: HashMap::new(),
            history: touched!(keys.history, load_history),
            inserts: 0,
            probes: Vec::new(),
        })
    }

    async fn write(mut self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        for probe in &self.probes {
            probe.run(&mut *conn).await?;
        }
        write_units(&mut *conn, &self.units).await?;
        write_groups(&mut *conn, &self.groups).await?;
        write_members(&mut *conn, &self.members).await?;
        write_plans(&mut *conn, &self.plans).await?;
        write_items(&mut *conn, &self.items).await?;
        write_assignments(&mut *conn, &self.assignments).await?;
        write_tasks(&mut *conn, &self.tasks).await?;
        write_reports(&mut *conn, &self.reports).await?;
        write_lines(&mut *conn, &self.lines).await?;
        write_history(conn, &mut self.history).await
    }

    fn order(&mut self) -> u64 {
        self.inserts += 1;
        self.inserts
    }

    /// Lets an event through the guard: in [`Mode::Checked`], an event the database would
    /// refuse halts the fold before it changes anything.
    fn admit(&mut self, guard: Guard, mode: Mode) -> Result<(), Halt> {
        if mode == Mode::Checked && (guard.taken || !guard.probes.is_empty()) {
            return Err(Halt::Refused);
        }
        self.probes.extend(guard.probes);
        Ok(())
    }

    fn fold(&mut self, step: &Step<'_>, mode: Mode) -> Result<(), Halt> {
        let event = step.event.as_ref().map_err(|reason| {
            Halt::Stop(ApplyError::Undecodable {
                sequence: step.sequence,
                event_id: step.envelope.id,
                reason: reason.to_string(),
            })
        })?;
        let mut guard = Guard::default();
        let id = guard.text(&step.envelope.aggregateid);
        let recorded = Meta {
            sequence: step.sequence as i64,
            envelope: step.envelope,
        };
        match event {
            Event::Unit(e) => self.unit(id, e, &recorded, guard, mode),
            Event::Group(e) => self.group(id, e, guard, mode),
            Event::Plan(e) => self.plan(id, e, guard, mode),
            Event::Item(e) => self.item(id, e, &recorded, guard, mode),
            Event::Task(e) => self.task(id, e, &recorded, guard, mode),
            Event::Report(e) => self.report(id, e, step.sequence, guard, mode),
            // Chain digests, reads of the trail and quarantine decisions concern the log itself;
            // the audit projection keeps them.
            Event::Ledger(_) | Event::Access(_) | Event::Quarantine(_) => Ok(()),
        }
    }

    fn unit(
        &mut self,
        id: String,
        event: &UnitEvent,
        recorded: &Meta<'_>,
        mut guard: Guard,
        mode: Mode,
    ) -> Result<(), Halt> {
        match event {
            UnitEvent::Registered { name, kind } => {
                let row = UnitRow {
                    name: guard.text(name.as_str()),
                    kind: wire(kind),
                    registered_at: recorded.effective(&mut guard),
                    succeeded_on: None,
                    successors: Vec::new(),
                    succession_reason: None,
                    unit_id: id,
                };
                guard.taken(slot(&mut self.units, &row.unit_id).current.is_some());
                self.admit(guard, mode)?;
                let order = self.order();
                let key = row.unit_id.clone();
                slot(&mut self.units, &key).insert(row, order);
            }
            UnitEvent::Renamed { to, .. } => {
                let to = guard.text(to.as_str());
                self.admit(guard, mode)?;
                if let Some(unit) = slot(&mut self.units, &id).current.as_mut() {
                    unit.name = to;
                }
            }
            UnitEvent::Succeeded(succession) => {
                let successors: Vec<String> = succession
                    .successors
                    .iter()
                    .map(|s| s.as_str().to_owned())
                    .collect();
                let on = guard.date(succession.effective_on);
                let reason = guard.text(succession.reason.as_str());
                self.admit(guard, mode)?;
                if let Some(unit) = slot(&mut self.units, &id).current.as_mut() {
                    unit.succeeded_on = Some(on);
                    unit.successors = successors;
                    unit.succession_reason = Some(reason);
                }
            }
        }
        Ok(())
    }

    fn group(
        &mut self,
        id: String,
        event: &GroupEvent,
        mut guard: Guard,
        mode: Mode,
    ) -> Result<(), Halt> {
        match event {
            GroupEvent::Defined { name } => {
                let name = guard.text(name.as_str());
                guard.taken(slot(&mut self.groups, &id).current.is_some());
                self.admit(guard, mode)?;
                let order = self.order();
                slot(&mut self.groups, &id).insert(GroupRow { group_id: id, name }, order);
            }
            GroupEvent::MemberAdded { unit_id, from } => {
                let from = guard.date(*from);
                self.admit(guard, mode)?;
                let order = self.order();
                let row = MemberRow {
                    membership_id: None,
                    group_id: id.clone(),
                    unit_id: unit_id.as_str().to_owned(),
                    valid_from: from,
                    valid_until: None,
                    removal_reason: None,
                };
                self.members
                    .entry((id, unit_id.as_str().to_owned()))
                    .or_default()
                    .push(Tracked::inserted(row, order));
            }
            GroupEvent::MemberRemoved {
                unit_id,
                from,
                reason,
            } => {
                let from = guard.date(*from);
                let reason = guard.text(reason.as_str());
                self.admit(guard, mode)?;
                let stretches = self
                    .members
                    .entry((id, unit_id.as_str().to_owned()))
                    .or_default();
                for member in stretches.iter_mut().filter_map(|m| m.current.as_mut()) {
                    if member.valid_until.is_none() {
                        member.valid_until = Some(from);
                        member.removal_reason = Some(reason.clone());
                    }
                }
            }
        }
        Ok(())
    }

    fn plan(
        &mut self,
        id: String,
        event: &PlanEvent,
        mut guard: Guard,
        mode: Mode,
    ) -> Result<(), Halt> {
        match event {
            PlanEvent::Issued(plan) => {
                let row = PlanRow {
                    code: guard.text(plan.code.as_str()),
                    title: guard.text(plan.title.as_str()),
                    issuer: guard.text(plan.issuer.as_str()),
                    issued_on: guard.date(plan.issued_on),
                    legal_basis: guard.json(serde_json::json!(plan.legal_basis)),
                    reporting_rule: guard.text(plan.reporting_rule.as_str()),
                    plan_id: id,
                };
                guard.taken(slot(&mut self.plans, &row.plan_id).current.is_some());
                self.admit(guard, mode)?;
                let order = self.order();
                let key = row.plan_id.clone();
                slot(&mut self.plans, &key).insert(row, order);
            }
            PlanEvent::Amended {
                title,
                legal_basis,
                reporting_rule,
                ..
            } => {
                let title = guard.opt(title.as_ref().map(|t| t.as_str()));
                let legal_basis = legal_basis
                    .as_ref()
                    .map(|l| guard.json(serde_json::json!(l)));
                let reporting_rule = guard.opt(reporting_rule.as_ref().map(|r| r.as_str()));
                self.admit(guard, mode)?;
                if let Some(plan) = slot(&mut self.plans, &id).current.as_mut() {
                    if let Some(title) = title {
                        plan.title = title;
                    }
                    if let Some(legal_basis) = legal_basis {
                        plan.legal_basis = legal_basis;
                    }
                    if let Some(reporting_rule) = reporting_rule {
                        plan.reporting_rule = reporting_rule;
                    }
                }
            }
        }
        Ok(())
    }

    /// Whether the aggregate's history already has a row at the event's stream sequence.
    fn history_taken(&self, aggregate: &Aggregate, sequence: i64) -> bool {
        self.history.get(aggregate).is_some_and(|rows| {
            rows.iter()
                .filter_map(|r| r.current.as_ref())
                .any(|r| r.stream_sequence == sequence)
        })
    }

    /// Adds a change to the aggregate's status history. Recorded axis: the open row closes when
    /// the change is recorded. Effective axis: the ends follow effective order (ties by stream
    /// sequence) and are recomputed when the history is written, since a backdated change lands
    /// in the middle of the timeline.
    fn status_change(&mut self, change: StatusChange, recorded: &Stamp) {
        let order = self.order();
        let rows = self.history.entry(change.aggregate.clone()).or_default();
        for row in rows.iter_mut().filter_map(|r| r.current.as_mut()) {
            if row.recorded_until.is_none() {
                row.recorded_until = Some(recorded.time);
            }
        }
        let row = HistoryRow {
            aggregate_type: change.aggregate.0.to_owned(),
            aggregate_id: change.aggregate.1,
            stream_sequence: recorded.sequence,
            effective_from: change.at,
            effective_until: None,
            recorded_until: None,
            entry: Some(Box::new(HistoryEntry {
                status: wire(&change.status),
                previous_status: change.previous.map(|p| wire(&p)),
                reason: change.reason,
                evidence: change.evidence,
                recorded_from: recorded.time,
                actor_user: recorded.actor_user.clone(),
                actor_unit: recorded.actor_unit.clone(),
            })),
        };
        rows.push(Tracked::inserted(row, order));
    }

    fn item(
        &mut self,
        id: String,
        event: &ItemEvent,
        recorded: &Meta<'_>,
        mut guard: Guard,
        mode: Mode,
    ) -> Result<(), Halt> {
        match event {
            ItemEvent::Recorded {
                plan_id,
                ordinal,
                title,
                sector,
                causes_objective,
                causes_subjective,
                remedies,
                ..
            } => {
                let effective = recorded.effective(&mut guard);
                let stamp = recorded.stamp(&mut guard);
                let row = ItemRow {
                    item_id: id.clone(),
                    plan_id: plan_id.as_str().to_owned(),
                    ordinal: i32::from(*ordinal),
                    title: guard.text(title.as_str()),
                    sector: guard.opt(sector.as_ref().map(|s| s.as_str())),
                    causes_objective: guard.opt(causes_objective.as_ref().map(|s| s.as_str())),
                    causes_subjective: guard.opt(causes_subjective.as_ref().map(|s| s.as_str())),
                    remedies: guard.opt(remedies.as_ref().map(|s| s.as_str())),
                    due_on: None,
                    status: wire(&Lifecycle::NotStarted),
                    status_since: effective,
                    completed_at: None,
                };
                let aggregate = ("item", id.clone());
                guard.taken(slot(&mut self.items, &id).current.is_some());
                guard.taken(self.history_taken(&aggregate, recorded.sequence));
                self.admit(guard, mode)?;
                let order = self.order();
                slot(&mut self.items, &id).insert(row, order);
                self.status_change(
                    StatusChange {
                        aggregate,
                        previous: None,
                        status: Lifecycle::NotStarted,
                        reason: None,
                        evidence: None,
                        at: effective,
                    },
                    &stamp,
                );
            }
            ItemEvent::Assigned {
                role,
                assignee,
                from,
            } => {
                let (kind, assignee_id) = assignee_parts(assignee);
                let row = AssignmentRow {
                    item_id: id.clone(),
                    role: role_name(*role).to_owned(),
                    assignee_type: kind.to_owned(),
                    assignee_id: assignee_id.to_owned(),
                    valid_from: guard.time(*from),
                    valid_until: None,
                    revoke_reason: None,
                    stream_sequence: recorded.sequence,
                };
                let assignments = self.assignments.entry(id).or_default();
                guard.taken(
                    assignments
                        .iter()
                        .filter_map(|a| a.current.as_ref())
                        .any(|a| {
                            (&a.role, &a.assignee_type, &a.assignee_id, a.valid_from)
                                == (
                                    &row.role,
                                    &row.assignee_type,
                                    &row.assignee_id,
                                    row.valid_from,
                                )
                        }),
                );
                self.admit(guard, mode)?;
                let order = self.order();
                self.assignments
                    .entry(row.item_id.clone())
                    .or_default()
                    .push(Tracked::inserted(row, order));
            }
            ItemEvent::AssignmentRevoked {
                role,
                assignee,
                until,
                reason,
            } => {
                let (kind, assignee_id) = assignee_parts(assignee);
                let until = guard.time(*until);
                let reason = guard.text(reason.as_str());
                self.admit(guard, mode)?;
                let role = role_name(*role);
                let assignments = self.assignments.entry(id).or_default();
                for a in assignments.iter_mut().filter_map(|a| a.current.as_mut()) {
                    if a.role == role
                        && a.assignee_type == kind
                        && a.assignee_id == assignee_id
                        && a.valid_until.is_none()
                    {
                        a.valid_until = Some(until);
                        a.revoke_reason = Some(reason.clone());
                    }
                }
            }
            ItemEvent::DeadlineSet { due_on } | ItemEvent::DeadlineChanged { to: due_on, .. } => {
                let due_on = guard.date(*due_on);
                self.admit(guard, mode)?;
                if let Some(item) = slot(&mut self.items, &id).current.as_mut() {
                    item.due_on = Some(due_on);
                }
            }
            ItemEvent::StatusChanged {
                from,
                to,
                reason,
                evidence,
                at,
            } => {
                let at = guard.time(*at);
                let reason = guard.text(reason.as_str());
                let evidence = guard.opt(evidence.as_ref().map(|e| e.as_str()));
                let stamp = recorded.stamp(&mut guard);
                let aggregate = ("item", id.clone());
                guard.taken(self.history_taken(&aggregate, recorded.sequence));
                self.admit(guard, mode)?;
                if let Some(item) = slot(&mut self.items, &id).current.as_mut() {
                    item.status = wire(to);
                    item.status_since = at;
                    item.completed_at = (*to == Lifecycle::Completed).then_some(at);
                }
                self.status_change(
                    StatusChange {
                        aggregate,
                        previous: Some(*from),
                        status: *to,
                        reason: Some(reason),
                        evidence,
                        at,
                    },
                    &stamp,
                );
            }
        }
        Ok(())
    }

    fn task(
        &mut self,
        id: String,
        event: &TaskEvent,
        recorded: &Meta<'_>,
        mut guard: Guard,
        mode: Mode,
    ) -> Result<(), Halt> {
        match event {
            TaskEvent::Planned {
                item_id,
                unit_id,
                title,
                person_responsible,
                leader_in_charge,
                due_on,
                ..
            } => {
                let effective = recorded.effective(&mut guard);
                let stamp = recorded.stamp(&mut guard);
                let row = TaskRow {
                    task_id: id.clone(),
                    item_id: item_id.as_str().to_owned(),
                    unit_id: unit_id.as_str().to_owned(),
                    title: guard.text(title.as_str()),
                    person_responsible: guard.text(person_responsible.as_str()),
                    leader_in_charge: guard.text(leader_in_charge.as_str()),
                    due_on: guard.date(*due_on),
                    status: wire(&Lifecycle::NotStarted),
                    status_since: effective,
                    evidence: None,
                    cancelled: false,
                    cancel_reason: None,
                    planned_at: effective,
                    completed_at: None,
                };
                let aggregate = ("task", id.clone());
                guard.taken(slot(&mut self.tasks, &id).current.is_some());
                guard.taken(self.history_taken(&aggregate, recorded.sequence));
                self.admit(guard, mode)?;
                let order = self.order();
                slot(&mut self.tasks, &id).insert(row, order);
                self.status_change(
                    StatusChange {
                        aggregate,
                        previous: None,
                        status: Lifecycle::NotStarted,
                        reason: None,
                        evidence: None,
                        at: effective,
                    },
                    &stamp,
                );
            }
            TaskEvent::Rescheduled { to, .. } => {
                let to = guard.date(*to);
                self.admit(guard, mode)?;
                if let Some(task) = slot(&mut self.tasks, &id).current.as_mut() {
                    task.due_on = to;
                }
            }
            TaskEvent::StatusChanged {
                from,
                to,
                reason,
                evidence,
                at,
            } => {
                let at = guard.time(*at);
                let reason = guard.text(reason.as_str());
                let evidence = guard.opt(evidence.as_ref().map(|e| e.as_str()));
                let stamp = recorded.stamp(&mut guard);
                let aggregate = ("task", id.clone());
                guard.taken(self.history_taken(&aggregate, recorded.sequence));
                self.admit(guard, mode)?;
                if let Some(task) = slot(&mut self.tasks, &id).current.as_mut() {
                    task.status = wire(to);
                    task.status_since = at;
                    if let Some(evidence) = &evidence {
                        task.evidence = Some(evidence.clone());
                    }
                    task.completed_at = (*to == Lifecycle::Completed).then_some(at);
                }
                self.status_change(
                    StatusChange {
                        aggregate,
                        previous: Some(*from),
                        status: *to,
                        reason: Some(reason),
                        evidence,
                        at,
                    },
                    &stamp,
                );
            }
            TaskEvent::Cancelled { reason } => {
                let reason = guard.text(reason.as_str());
                self.admit(guard, mode)?;
                if let Some(task) = slot(&mut self.tasks, &id).current.as_mut() {
                    task.cancelled = true;
                    task.cancel_reason = Some(reason);
                }
            }
        }
        Ok(())
    }

    fn report(
        &mut self,
        id: String,
        event: &ReportEvent,
        sequence: u64,
        mut guard: Guard,
        mode: Mode,
    ) -> Result<(), Halt> {
        match event {
            ReportEvent::Submitted {
                plan_id,
                unit_id,
                quarter,
                lines,
                submitted_at,
            } => {
                let expected = report_id(plan_id, unit_id, *quarter);
                if expected.as_str() != id {
                    return Err(Halt::Stop(ApplyError::Inconsistent {
                        sequence,
                        reason: format!(
                            "report {id:?} does not match its plan {plan_id}, unit {unit_id} and quarter {}, whose report is {expected}",
                            quarter.label()
                        ),
                    }));
                }
                let row = ReportRow {
                    report_id: id.clone(),
                    plan_id: plan_id.as_str().to_owned(),
                    unit_id: unit_id.as_str().to_owned(),
                    year: quarter.year,
                    quarter: i32::from(quarter.quarter),
                    due_at: guard.time(Quarter::report_due(*quarter)),
                    status: "submitted".to_owned(),
                    first_submitted_at: guard.time(*submitted_at),
                    last_revised_at: None,
                    revisions: 0,
                    accepted_at: None,
                    returned_at: None,
                    return_reason: None,
                };
                let lines = report_lines(&mut guard, lines);
                guard.taken(slot(&mut self.reports, &id).current.is_some());
                self.admit(guard, mode)?;
                let order = self.order();
                slot(&mut self.reports, &id).insert(row, order);
                self.lines.insert(id, lines);
            }
            ReportEvent::Revised {
                lines, revised_at, ..
            } => {
                let revised_at = guard.time(*revised_at);
                let lines = report_lines(&mut guard, lines);
                self.admit(guard, mode)?;
                if let Some(report) = slot(&mut self.reports, &id).current.as_mut() {
                    report.status = "submitted".to_owned();
                    report.last_revised_at = Some(revised_at);
                    report.revisions += 1;
                }
                // The lines are replaced whether the report exists or not, as before.
                self.lines.insert(id, lines);
            }
            ReportEvent::Accepted { accepted_at } => {
                let accepted_at = guard.time(*accepted_at);
                self.admit(guard, mode)?;
                if let Some(report) = slot(&mut self.reports, &id).current.as_mut() {
                    report.status = "accepted".to_owned();
                    report.accepted_at = Some(accepted_at);
                }
            }
            ReportEvent::Returned {
                reason,
                returned_at,
            } => {
                let returned_at = guard.time(*returned_at);
                let reason = guard.text(reason.as_str());
                self.admit(guard, mode)?;
                if let Some(report) = slot(&mut self.reports, &id).current.as_mut() {
                    report.status = "returned".to_owned();
                    report.returned_at = Some(returned_at);
                    report.return_reason = Some(reason);
                }
            }
        }
        Ok(())
    }
}

/// A report's lines as stored; two lines on one item take the same key.
fn report_lines(guard: &mut Guard, lines: &[ReportLine]) -> Vec<LineRow> {
    let mut items = HashSet::new();
    lines
        .iter()
        .map(|l| {
            guard.taken(!items.insert(l.item_id.as_str()));
            LineRow {
                item_id: l.item_id.as_str().to_owned(),
                progress: guard.text(l.progress.as_str()),
                reported_status: l.status.map(|s| wire(&s)),
            }
        })
        .collect()
}

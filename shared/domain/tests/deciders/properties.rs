//! Random command sequences over a small universe (2 plans, 3 units of which any may be
//! succeeded, 1 group, 2 items, 2 tasks, reports for 2 quarters), random actors, roles and times
//! around 2025. Each command is decided against the current state of its target, with facts from
//! the current state of every other aggregate, and:
//! 1. nothing panics (neither `decide` nor `evolve`);
//! 2. a rejected command leaves the aggregate as it was, and an accepted one yields events only
//!    if it changes the state;
//! 3. re-folding each aggregate's events from its initial state reproduces its state exactly (and
//!    every event survives encoding and decoding);
//! 4. deciding the same accepted command again right away yields no events — this holds for every
//!    command;
//! 5. whatever is accepted was authorised: the role matrix, backdating, unit staff only for their
//!    own unit or one it succeeded, item status only by a lead; auditors and viewers get nothing
//!    but Forbidden, NotFound or a future-time rejection.

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

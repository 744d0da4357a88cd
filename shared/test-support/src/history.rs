//! A generated plan history, for the tests and benchmarks of time travel and the read side.
//!
//! The history is Plan 63's seed followed by the everyday life of the plan — item and task status
//! changes, tasks planned and rescheduled, deadlines moved, quarterly reports submitted, revised,
//! accepted and returned, coordinators assigned and revoked — each decided by the domain's own
//! deciders against the state so far (so every event is valid), wrapped with
//! `CloudEvent::new`, hash-chained per aggregate with `event_store::seal`, and written into a
//! scratch audit schema by the audit projection's own `readmodel::apply`. A share of the
//! commands is backdated by the offices that may do so.

use std::collections::HashMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use event_store::{CloudEvent, CommandMeta, Commit, HashedCommit, seal};
use readmodel::{ApplyError, Projection, save_checkpoint};
use remediation_domain::calendar::{Quarter, local_date, start_of_local_day};
use remediation_domain::facts::Facts;
use remediation_domain::item::{
    Assign, AssignmentRole, ChangeItemStatus, RevokeAssignment, SetItemDeadline,
};
use remediation_domain::lifecycle::Lifecycle;
use remediation_domain::report::{
    ReportKey, ReportLine, ReportStatus, ReturnReport, ReviseReport, SubmitReport,
};
use remediation_domain::seed::Seed;
use remediation_domain::task::{CancelTask, ChangeTaskStatus, PlanTask, RescheduleTask};
use remediation_domain::text::{ItemId, PlanId, TaskId, Text, UnitId};
use remediation_domain::{Actor, AggregateRef, Assignee, Command, Context, Role};
use sqlx::{AssertSqlSafe, PgConnection, PgPool};

use time_travel::state::PlanState;

const SEED: &str = include_str!("../../../deploy/seed/ke-hoach-63.json");

/// SplitMix64: a small, fast, reproducible generator.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            None
        } else {
            items.get(self.below(items.len() as u64) as usize)
        }
    }
}

fn text<const MAX: usize>(s: &str) -> Text<MAX> {
    Text::new(s).expect("generated text is valid")
}

fn office() -> Actor {
    Actor {
        user: "vp-ubnd.chuyen-vien".to_owned(),
        unit: None,
        role: Role::ProvinceOffice,
    }
}

fn finance() -> Actor {
    Actor {
        user: "stc.chuyen-vien".to_owned(),
        unit: None,
        role: Role::DepartmentOfFinance,
    }
}

fn staff(unit: &UnitId) -> Actor {
    Actor {
        user: format!("can-bo.{unit}"),
        unit: Some(unit.clone()),
        role: Role::UnitStaff,
    }
}

/// Tasks in the generated detailed plans, at most.
const MAX_TASKS: u64 = 5_000;

const PEOPLE: &[&str] = &[
    "Nguyễn Văn An",
    "Trần Thị Bình",
    "Lê Văn Cường",
    "Phạm Thị Dung",
    "Hoàng Văn Em",
    "Vũ Thị Giang",
];

/// A valid plan history, commit by commit, decided by the domain.
#[derive(Debug)]
pub struct History {
    rng: Rng,
    state: PlanState,
    facts: Facts,
    heads: HashMap<AggregateRef, String>,
    plan_id: PlanId,
    items: Vec<ItemId>,
    tasks: Vec<TaskId>,
    reports: Vec<ReportKey>,
    issued_at: DateTime<Utc>,
    /// Recorded time of the next commit.
    pub clock: DateTime<Utc>,
    step: Duration,
    /// Share of office and Department of Finance commands that are backdated.
    pub backdate_ratio: f64,
    /// Recorded times run up to this much behind the clock, at random: command services on
    /// different machines whose clocks disagree a little (recorded times then are not monotonic
    /// in stream order).
    pub jitter: Duration,
    pub sequence: u64,
    pub events: u64,
    pub backdated: u64,
    target_events: u64,
}

impl History {
    /// A history of about `events` events over `span`, starting with Plan 63's seed.
    pub fn new(seed: u64, events: u64, span: Duration) -> Self {
        let plan = Seed::from_json(SEED).expect("the Plan 63 seed parses");
        let issued_at = start_of_local_day(plan.plan.issued_on);
        let mut history = Self {
            rng: Rng::new(seed),
            state: PlanState::default(),
            facts: Facts::default(),
            heads: HashMap::new(),
            plan_id: plan.plan.plan_id.clone(),
            items: plan.items.iter().map(|i| i.item_id.clone()).collect(),
            tasks: Vec::new(),
            reports: Vec::new(),
            issued_at,
            clock: issued_at + Duration::hours(8),
            step: span / i32::try_from(events.max(1)).unwrap_or(i32::MAX),
            backdate_ratio: 0.05,
            jitter: Duration::zero(),
            sequence: 0,
            events: 0,
            backdated: 0,
            target_events: events,
        };
        history.step = history.step.max(Duration::milliseconds(1));
        history
    }

    /// The seed's commands, as the seed loader sends them (province office, effective from the
    /// plan's issue date).
    pub fn seed_commits(&mut self) -> Vec<Commit> {
        let plan = Seed::from_json(SEED).expect("the Plan 63 seed parses");
        let actor = Actor {
            user: "seed-loader".to_owned(),
            unit: None,
            role: Role::ProvinceOffice,
        };
        plan.commands()
            .into_iter()
            .filter_map(|command| self.decide(command, &actor, self.issued_at))
            .collect()
    }

    /// The state every decision so far was made on (recorded order).
    pub fn state(&self) -> &PlanState {
        &self.state
    }

    /// Decides `command`; on events, seals and records them and advances the clock.
    fn decide(
        &mut self,
        command: Command,
        actor: &Actor,
        effective_at: DateTime<Utc>,
    ) -> Option<Commit> {
        let target = command.target();
        let state = self.state.get(&target);
        let jitter = self.jitter.num_milliseconds().max(0) as u64;
        let recorded_at = self.clock - Duration::milliseconds(self.rng.below(jitter + 1) as i64);
        let effective_at = effective_at.min(recorded_at);
        let context = Context {
            actor,
            now: recorded_at,
            effective_at,
            facts: &self.facts,
        };
        let events = command.decide(&state, &context).ok()?;
        if events.is_empty() {
            return None;
        }
        let meta = CommandMeta {
            command_id: uuid::Uuid::now_v7(),
            command_name: command.name(),
            actor: actor.clone(),
            correlation_id: format!("bench-{}", self.sequence + 1),
            causation_id: format!("bench-{}", self.sequence + 1),
            recorded_at,
            effective_at,
        };
        let mut envelopes: Vec<CloudEvent> = events
            .iter()
            .map(|e| CloudEvent::new(&target, e, &meta))
            .collect();
        let head = seal(
            self.heads.get(&target).map_or("", String::as_str),
            &mut envelopes,
        );
        self.heads.insert(target.clone(), head);
        for event in &events {
            self.state.apply(&target, event);
        }
        if matches!(
            target,
            AggregateRef::Unit(_)
                | AggregateRef::Group(_)
                | AggregateRef::Plan(_)
                | AggregateRef::Item(_)
        ) {
            self.state.get(&target).add_to(&target, &mut self.facts);
        }
        if effective_at < recorded_at {
            self.backdated += events.len() as u64;
        }
        self.sequence += 1;
        self.events += events.len() as u64;
        self.clock += self.step;
        Some(Commit {
            sequence: self.sequence,
            events: envelopes,
        })
    }

    fn effective(&mut self, may_backdate: bool) -> DateTime<Utc> {
        if may_backdate && self.rng.chance(self.backdate_ratio) {
            let back = Duration::minutes(60 + self.rng.below(30 * 24 * 60) as i64);
            (self.clock - back).max(self.issued_at)
        } else {
            self.clock
        }
    }

    fn date_after(&mut self, from: NaiveDate, min_days: u64, max_days: u64) -> NaiveDate {
        from + Duration::days((min_days + self.rng.below(max_days - min_days)) as i64)
    }

    fn next_status(&mut self, from: Lifecycle) -> Option<Lifecycle> {
        let choices: Vec<Lifecycle> = Lifecycle::ALL
            .into_iter()
            .filter(|to| from.can_become(*to))
            .collect();
        self.rng.pick(&choices).copied()
    }

    fn responsible(&self, item: &ItemId, role: Option<AssignmentRole>) -> Vec<UnitId> {
        self.state
            .item(item)
            .map(|i| {
                self.facts
                    .responsible_units(i, role, self.clock)
                    .into_iter()
                    .filter(|u| self.state.unit(u).is_some())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn item_status(&mut self) -> Option<Commit> {
        let item_id = self.rng.pick(&self.items)?.clone();
        let from = self.state.item(&item_id)?.status;
        let to = self.next_status(from)?;
        let leads = self.responsible(&item_id, Some(AssignmentRole::Lead));
        let (actor, effective) = if from.needs_province_office(to) || self.rng.chance(0.5) {
            (office(), self.effective(true))
        } else {
            (staff(self.rng.pick(&leads)?), self.clock)
        };
        let command = Command::ChangeItemStatus(ChangeItemStatus {
            item_id,
            to,
            reason: text(&format!("Cập nhật tiến độ thực hiện: {}", to.label_vi())),
            evidence: (to == Lifecycle::AwaitingConfirmation)
                .then(|| text("Báo cáo kết quả và hồ sơ minh chứng kèm theo")),
        });
        self.decide(command, &actor, effective)
    }

    fn plan_task(&mut self) -> Option<Commit> {
        let item_id = self.rng.pick(&self.items)?.clone();
        let units = self.responsible(&item_id, None);
        let unit = self.rng.pick(&units)?.clone();
        let ordinal = self.state.item(&item_id)?.ordinal;
        let number = self.tasks.len() + 1;
        let task_id = TaskId::new(format!("nv-{number:07}")).ok()?;
        let due_on = self.date_after(local_date(self.clock), 15, 240);
        let person = PEOPLE[self.rng.below(PEOPLE.len() as u64) as usize];
        let command = Command::PlanTask(PlanTask {
            task_id: task_id.clone(),
            item_id,
            unit_id: unit.clone(),
            title: text(&format!(
                "Nhiệm vụ {number}: triển khai giải pháp khắc phục hạn chế số {ordinal} tại đơn vị"
            )),
            person_responsible: text(person),
            leader_in_charge: text("Phó Giám đốc phụ trách lĩnh vực"),
            due_on,
        });
        let commit = self.decide(command, &staff(&unit), self.clock)?;
        self.tasks.push(task_id);
        Some(commit)
    }

    fn open_task(&mut self) -> Option<(TaskId, UnitId, Lifecycle, NaiveDate)> {
        let id = self.rng.pick(&self.tasks)?.clone();
        let task = self.state.task(&id)?;
        (!task.cancelled).then(|| (id, task.unit_id.clone(), task.status, task.due_on))
    }

    fn holder(&mut self, unit: &UnitId) -> Option<Actor> {
        let holders: Vec<UnitId> = self
            .facts
            .holders(unit, local_date(self.clock))
            .into_iter()
            .collect();
        self.rng.pick(&holders).map(staff)
    }

    fn task_status(&mut self) -> Option<Commit> {
        let (task_id, unit, from, _) = self.open_task()?;
        let to = self.next_status(from)?;
        let (actor, effective) = if from.needs_province_office(to) || self.rng.chance(0.3) {
            (office(), self.effective(true))
        } else {
            (self.holder(&unit)?, self.clock)
        };
        let command = Command::ChangeTaskStatus(ChangeTaskStatus {
            task_id,
            to,
            reason: text(&format!("Tiến độ nhiệm vụ: {}", to.label_vi())),
            evidence: (to == Lifecycle::AwaitingConfirmation)
                .then(|| text("Biên bản nghiệm thu và hình ảnh minh chứng")),
        });
        self.decide(command, &actor, effective)
    }

    fn reschedule(&mut self) -> Option<Commit> {
        let (task_id, unit, _, due_on) = self.open_task()?;
        let due_on = self.date_after(due_on.max(local_date(self.clock)), 1, 90);
        let actor = self.holder(&unit)?;
        let command = Command::RescheduleTask(RescheduleTask {
            task_id,
            due_on,
            reason: text("Điều chỉnh thời hạn theo tiến độ thực tế"),
        });
        self.decide(command, &actor, self.clock)
    }

    fn item_deadline(&mut self) -> Option<Commit> {
        let item_id = self.rng.pick(&self.items)?.clone();
        let due_on = self.date_after(local_date(self.clock), 30, 400);
        let command = Command::SetItemDeadline(SetItemDeadline {
            item_id,
            due_on,
            reason: Some(text(
                "Điều chỉnh thời hạn hoàn thành theo chỉ đạo của UBND tỉnh",
            )),
        });
        let effective = self.effective(true);
        self.decide(command, &office(), effective)
    }

    fn report(&mut self) -> Option<Commit> {
        let quarter = Quarter::containing(self.clock);
        let item_id = self.rng.pick(&self.items)?.clone();
        let units = self.responsible(&item_id, None);
        let unit = self.rng.pick(&units)?.clone();
        let items: Vec<ItemId> = self
            .items
            .clone()
            .into_iter()
            .filter(|i| self.responsible(i, None).contains(&unit))
            .take(4)
            .collect();
        let round = self.rng.below(1_000);
        let lines: Vec<ReportLine> = items
            .iter()
            .map(|i| ReportLine {
                item_id: i.clone(),
                progress: text(&format!(
                    "Đã triển khai các giải pháp theo kế hoạch; kết quả đợt {round} đạt yêu cầu đề ra"
                )),
                status: Some(Lifecycle::InProgress),
            })
            .collect();
        let key = ReportKey {
            plan_id: self.plan_id.clone(),
            unit_id: unit.clone(),
            quarter,
        };
        let existing = self.state.report(&key.report_id()).map(|r| r.status);
        // Paper reports are keyed in late by the province office.
        let (actor, effective) = if self.rng.chance(0.2) {
            (office(), self.effective(true))
        } else {
            (staff(&unit), self.clock)
        };
        let command = match existing {
            None => Command::SubmitReport(SubmitReport {
                plan_id: key.plan_id.clone(),
                unit_id: unit,
                quarter,
                lines,
            }),
            Some(ReportStatus::Accepted) => return None,
            Some(_) => Command::ReviseReport(ReviseReport {
                plan_id: key.plan_id.clone(),
                unit_id: unit,
                quarter,
                lines,
                reason: Some(text("Bổ sung số liệu theo yêu cầu")),
            }),
        };
        let commit = self.decide(command, &actor, effective)?;
        if existing.is_none() {
            self.reports.push(key);
        }
        Some(commit)
    }

    fn review(&mut self) -> Option<Commit> {
        let key = self.rng.pick(&self.reports)?.clone();
        if self.state.report(&key.report_id())?.status != ReportStatus::Submitted {
            return None;
        }
        let command = if self.rng.chance(0.7) {
            Command::AcceptReport(key)
        } else {
            Command::ReturnReport(ReturnReport {
                plan_id: key.plan_id,
                unit_id: key.unit_id,
                quarter: key.quarter,
                reason: text("Đề nghị bổ sung kết quả cụ thể, số liệu định lượng"),
            })
        };
        let effective = self.effective(true);
        self.decide(command, &finance(), effective)
    }

    fn coordinator(&mut self) -> Option<Commit> {
        let item_id = self.rng.pick(&self.items)?.clone();
        let item = self.state.item(&item_id)?;
        let open: Vec<Assignee> = item
            .assignments
            .iter()
            .filter(|a| a.role == AssignmentRole::Coordinator && a.until.is_none())
            .map(|a| a.assignee.clone())
            .collect();
        let command = if self.rng.chance(0.5) && !open.is_empty() {
            Command::RevokeAssignment(RevokeAssignment {
                item_id,
                role: AssignmentRole::Coordinator,
                assignee: self.rng.pick(&open)?.clone(),
                reason: text("Điều chỉnh phân công theo chức năng, nhiệm vụ"),
            })
        } else {
            let units: Vec<UnitId> = self.state.units().map(|(id, _)| id.clone()).collect();
            Command::AssignCoordinator(Assign {
                item_id,
                assignee: Assignee::Unit(self.rng.pick(&units)?.clone()),
            })
        };
        let effective = self.effective(true);
        self.decide(command, &office(), effective)
    }

    fn cancel(&mut self) -> Option<Commit> {
        let (task_id, unit, _, _) = self.open_task()?;
        let actor = self.holder(&unit)?;
        let command = Command::CancelTask(CancelTask {
            task_id,
            reason: text("Nhiệm vụ được lồng ghép vào nhiệm vụ khác"),
        });
        self.decide(command, &actor, self.clock)
    }

    /// The next commit of everyday plan life.
    pub fn next_commit(&mut self) -> Commit {
        // About one task per hundred events: the detailed plans grow with the history, up to
        // about a hundred tasks per unit of the plan.
        let task_target = (30 + self.events / 100).min(MAX_TASKS);
        loop {
            let roll = self.rng.below(100);
            let commit = match roll {
                0..=14 => self.item_status(),
                15..=44 => self.task_status(),
                45..=54 if (self.tasks.len() as u64) < task_target => self.plan_task(),
                45..=54 => self.task_status(),
                55..=66 => self.reschedule(),
                67..=72 => self.item_deadline(),
                73..=84 => self.report(),
                85..=94 => self.review(),
                95..=98 => self.coordinator(),
                _ => self.cancel(),
            };
            if let Some(commit) = commit {
                return commit;
            }
        }
    }

    /// Whether the history has reached the events it was made for.
    pub fn done(&self) -> bool {
        self.events >= self.target_events
    }

    /// Asks for `more` events beyond those generated so far.
    pub fn extend(&mut self, more: u64) {
        self.target_events = self.events + more;
    }

    /// The plan's issue instant, where the history begins.
    pub fn issued_at(&self) -> DateTime<Utc> {
        self.issued_at
    }

    pub fn summary(&self) -> String {
        format!(
            "{} events in {} commits; {} items, {} tasks, {} reports; {:.1}% backdated; recorded {} → {}",
            self.events,
            self.sequence,
            self.state.items().count(),
            self.state.tasks().count(),
            self.state.reports().count(),
            100.0 * self.backdated as f64 / self.events.max(1) as f64,
            self.issued_at.format("%Y-%m-%d"),
            self.clock.format("%Y-%m-%d"),
        )
    }
}

/// Writes `commits` into the audit schema with the audit projection's own insert.
pub async fn insert(pool: &PgPool, schema: &str, commits: &[Commit]) -> Result<(), ApplyError> {
    apply_commits(pool, schema, Projection::Audit, commits).await
}

/// [`readmodel::apply`] of `commits` on `conn` (in a transaction, with the schema on its search
/// path), each hashed first as the projector hashes what it decodes.
pub async fn apply(
    conn: &mut PgConnection,
    projection: Projection,
    commits: &[Commit],
) -> Result<(), ApplyError> {
    let hashed: Vec<HashedCommit> = commits.iter().cloned().map(HashedCommit::new).collect();
    readmodel::apply(conn, projection, &hashed.iter().collect::<Vec<_>>()).await
}

/// Applies `commits` to `projection` in `schema` with its checkpoint, in one transaction, with
/// the projection's own statements (as the projector's batches do, without its gap check).
pub async fn apply_commits(
    pool: &PgPool,
    schema: &str,
    projection: Projection,
    commits: &[Commit],
) -> Result<(), ApplyError> {
    let Some(last) = commits.last() else {
        return Ok(());
    };
    let mut tx = pool.begin().await?;
    sqlx::query(AssertSqlSafe(format!(
        "SET LOCAL search_path TO \"{schema}\""
    )))
    .execute(&mut *tx)
    .await?;
    apply(&mut tx, projection, commits).await?;
    let recorded_at = last.events.last().map(|e| e.time);
    save_checkpoint(&mut tx, projection, last.sequence, recorded_at).await?;
    tx.commit().await?;
    Ok(())
}

/// Generates and inserts commits until the history is done (beginning with the seed if `seed`),
/// then refreshes the table's planner statistics, as autovacuum would after such a load.
pub async fn fill(
    pool: &PgPool,
    schema: &str,
    history: &mut History,
    seed: bool,
) -> Result<(), ApplyError> {
    let mut batch = if seed {
        history.seed_commits()
    } else {
        Vec::new()
    };
    while !history.done() {
        batch.push(history.next_commit());
        if batch.len() >= 2_000 {
            insert(pool, schema, &batch).await?;
            batch.clear();
        }
    }
    insert(pool, schema, &batch).await?;
    sqlx::query(AssertSqlSafe(format!("ANALYZE \"{schema}\".audit_log")))
        .execute(pool)
        .await?;
    Ok(())
}

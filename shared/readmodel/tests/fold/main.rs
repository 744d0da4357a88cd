//! The core projection's batched fold against the reference it replaced (one event at a time,
//! statement by statement): random histories, applied in random batches the way the worker
//! applies them (a failed batch again commit by commit, stopping at the first that fails), must
//! leave every core table exactly as the reference leaves it, and stop at the same commit.

mod reference;

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use event_store::{CloudEvent, CommandMeta, Commit, seal};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use readmodel::{ApplyError, Projection, prepare_schema};
use remediation_domain::calendar::Quarter;
use remediation_domain::group::GroupEvent;
use remediation_domain::item::{AssignmentRole, ItemEvent};
use remediation_domain::lifecycle::Lifecycle;
use remediation_domain::plan::{Plan, PlanEvent};
use remediation_domain::report::{ReportEvent, ReportLine, report_id};
use remediation_domain::task::TaskEvent;
use remediation_domain::text::{GroupId, ItemId, PlanId, ReportId, TaskId, Text, UnitId};
use remediation_domain::unit::{Succession, UnitEvent, UnitKind};
use remediation_domain::{Actor, AggregateRef, Assignee, Event, Role};
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use test_support::TestDatabase;
use test_support::history::apply;

const UNITS: [&str; 5] = [
    "so-tai-chinh",
    "so-y-te",
    "so-xay-dung",
    "ubnd-huyen-nga-son",
    "ubnd-thi-xa-nghi-son",
];
const GROUPS: [&str; 3] = ["cac-so", "ubnd-cac-huyen", "khoi-kinh-te"];
const PLANS: [&str; 3] = ["kh-63-2025", "kh-12-2025", "kh-40-2026"];
const ITEMS: [&str; 5] = [
    "kh-63-2025-01",
    "kh-63-2025-02",
    "kh-63-2025-03",
    "kh-12-2025-01",
    "kh-12-2025-02",
];
const TASKS: [&str; 5] = ["nv-01", "nv-02", "nv-03", "nv-04", "nv-05"];
const LIFECYCLES: [Lifecycle; 6] = [
    Lifecycle::NotStarted,
    Lifecycle::InProgress,
    Lifecycle::AwaitingConfirmation,
    Lifecycle::Completed,
    Lifecycle::Suspended,
    Lifecycle::Reopened,
];
/// Nanoseconds added to instants: several fall in one microsecond, which is all PostgreSQL
/// keeps, so ties in effective order come up.
const NANOS: [i64; 4] = [0, 400, 700, 1_500];

/// One step of a history, as proptest draws it; [`History::push`] turns it into an event.
#[derive(Debug, Clone)]
struct Op {
    kind: u8,
    a: u8,
    b: u8,
    c: u8,
    t: u8,
    /// In the same commit as the previous event.
    join: bool,
    /// 0: allow a refused insert (a key taken); 1: the recorder's clock steps back; 2: a text
    /// with NUL (decoded from old events, never accepted as input); else nothing odd.
    odd: u8,
}

fn op() -> impl Strategy<Value = Op> {
    // Status changes come up more often: their history rows are where effective order, ties
    // within a microsecond and backdating meet.
    let kind = prop_oneof![3 => Just(13u8), 3 => Just(16u8), 12 => 0u8..22];
    (
        kind,
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
        prop::bool::weighted(0.3),
        0u8..100,
    )
        .prop_map(|(kind, a, b, c, t, join, odd)| Op {
            kind,
            a,
            b,
            c,
            t,
            join,
            odd,
        })
}

fn text<const N: usize>(s: &str) -> Text<N> {
    Text::new(s).expect("text")
}

/// Text as an old event could carry it: decoding takes control characters.
fn stored_text<const N: usize>(s: &str) -> Text<N> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).expect("text")
}

fn base() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-06-01T01:00:00Z")
        .expect("instant")
        .with_timezone(&Utc)
}

fn instant(x: u8) -> DateTime<Utc> {
    base()
        + TimeDelta::minutes(i64::from(x % 4) * 7)
        + TimeDelta::nanoseconds(NANOS[usize::from(x / 4 % 4)])
}

fn date(x: u8) -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 5, 1).expect("date") + TimeDelta::days(i64::from(x % 5))
}

fn pick<'a>(pool: &[&'a str], x: u8) -> &'a str {
    pool[usize::from(x) % pool.len()]
}

/// A history being drawn: commits of sealed events, and what exists so far (so that inserts
/// mostly take free keys).
#[derive(Default)]
struct History {
    commits: Vec<Commit>,
    heads: HashMap<String, String>,
    exists: HashSet<String>,
    /// Aggregates whose status the open commit changed: a second change in one commit takes
    /// the history row's key again.
    changed_in_commit: HashSet<String>,
    clock: i64,
}

impl History {
    /// A free id of `kind` from `pool` (the drawn one when `dup`).
    fn fresh<'a>(&self, kind: &str, pool: &[&'a str], x: u8, dup: bool) -> &'a str {
        let drawn = pick(pool, x);
        if dup {
            return drawn;
        }
        (0..pool.len())
            .map(|i| pool[(usize::from(x) + i) % pool.len()])
            .find(|id| !self.exists.contains(&format!("{kind}/{id}")))
            .unwrap_or(drawn)
    }

    fn event(&mut self, op: &Op) -> (AggregateRef, Event, Option<String>) {
        let dup = op.odd == 0;
        let nul = op.odd == 2;
        let unit = |x: u8| UnitId::new(pick(&UNITS, x)).expect("id");
        let item = |x: u8| ItemId::new(pick(&ITEMS, x)).expect("id");
        let reason = |s: &str| -> Text<1000> {
            if nul {
                stored_text(&format!("{s}\u{0}"))
            } else {
                text(s)
            }
        };
        let lines = |x: u8, y: u8| -> Vec<ReportLine> {
            let count = usize::from(x % 3);
            let mut lines: Vec<ReportLine> = (0..count)
                .map(|i| ReportLine {
                    item_id: item(y.wrapping_add(i as u8)),
                    progress: text(&format!("Đã thực hiện {i}")),
                    status: (i % 2 == 0).then(|| LIFECYCLES[usize::from(x) % 6]),
                })
                .collect();
            if dup && let Some(first) = lines.first().cloned() {
                lines.push(first);
            }
            lines
        };
        let quarter = |x: u8| Quarter::new(2025, 1 + x % 2).expect("quarter");
        match op.kind {
            0..=2 => {
                let id = if op.kind == 0 {
                    self.fresh("unit", &UNITS, op.a, dup)
                } else {
                    pick(&UNITS, op.a)
                };
                let event = match op.kind {
                    0 => UnitEvent::Registered {
                        name: text(&format!("Đơn vị {id}")),
                        kind: [UnitKind::Department, UnitKind::DistrictCommittee]
                            [usize::from(op.c % 2)],
                    },
                    1 => UnitEvent::Renamed {
                        from: text("Tên cũ"),
                        to: if nul {
                            stored_text("Tên\u{0}mới")
                        } else {
                            text(&format!("Tên mới {}", op.c % 4))
                        },
                        reason: text("Đổi tên"),
                    },
                    _ => UnitEvent::Succeeded(Succession {
                        successors: (0..=op.b % 2).map(|i| unit(op.c.wrapping_add(i))).collect(),
                        effective_on: date(op.t),
                        reason: reason("Sắp xếp đơn vị"),
                    }),
                };
                let target = AggregateRef::Unit(UnitId::new(id).expect("id"));
                (target, Event::Unit(event), None)
            }
            3..=5 => {
                let id = if op.kind == 3 {
                    self.fresh("group", &GROUPS, op.a, dup)
                } else {
                    pick(&GROUPS, op.a)
                };
                let event = match op.kind {
                    3 => GroupEvent::Defined {
                        name: text(&format!("Nhóm {id}")),
                    },
                    4 => GroupEvent::MemberAdded {
                        unit_id: unit(op.b),
                        from: date(op.c),
                    },
                    _ => GroupEvent::MemberRemoved {
                        unit_id: unit(op.b),
                        from: date(op.c),
                        reason: reason("Thêm nhầm"),
                    },
                };
                let target = AggregateRef::Group(GroupId::new(id).expect("id"));
                (target, Event::Group(event), None)
            }
            6 | 7 => {
                let id = if op.kind == 6 {
                    self.fresh("plan", &PLANS, op.a, dup)
                } else {
                    pick(&PLANS, op.a)
                };
                let event = if op.kind == 6 {
                    PlanEvent::Issued(Plan {
                        code: text(&format!("{}/KH-UBND", op.b)),
                        title: text("Kế hoạch khắc phục hạn chế"),
                        issuer: text("UBND tỉnh Thanh Hóa"),
                        issued_on: date(op.c),
                        legal_basis: vec![text("Luật Tổ chức chính quyền địa phương")],
                        reporting_rule: text("Trước ngày 15 của tháng cuối quý."),
                        report_recipient: None,
                    })
                } else {
                    PlanEvent::Amended {
                        title: op
                            .b
                            .is_multiple_of(2)
                            .then(|| text(&format!("Kế hoạch sửa đổi {}", op.c % 3))),
                        legal_basis: op.c.is_multiple_of(3).then(|| {
                            if nul {
                                vec![stored_text("Căn cứ\u{0}")]
                            } else {
                                vec![text("Căn cứ mới"), text("Nghị định 08")]
                            }
                        }),
                        reporting_rule: op.t.is_multiple_of(2).then(|| text("Hằng quý")),
                        report_recipient: None,
                        reason: text("Bổ sung"),
                    }
                };
                let target = AggregateRef::Plan(PlanId::new(id).expect("id"));
                (target, Event::Plan(event), None)
            }
            8..=13 => {
                let id = if op.kind == 8 {
                    self.fresh("item", &ITEMS, op.a, dup)
                } else {
                    pick(&ITEMS, op.a)
                };
                let role =
                    [AssignmentRole::Lead, AssignmentRole::Coordinator][usize::from(op.c % 2)];
                let assignee = if op.b.is_multiple_of(3) {
                    Assignee::Group(GroupId::new(pick(&GROUPS, op.b)).expect("id"))
                } else {
                    Assignee::Unit(unit(op.b))
                };
                let event = match op.kind {
                    8 => ItemEvent::Recorded {
                        plan_id: PlanId::new(pick(&PLANS, op.b)).expect("id"),
                        plan_issued_on: date(0),
                        ordinal: u16::from(op.c % 9) + 1,
                        title: text(&format!("Hạn chế {id}")),
                        sector: op.t.is_multiple_of(2).then(|| text("Nông nghiệp")),
                        causes_objective: None,
                        causes_subjective: op.t.is_multiple_of(3).then(|| text("Chưa quyết liệt")),
                        remedies: Some(text("Tăng cường kiểm tra")),
                    },
                    9 => ItemEvent::Assigned {
                        role,
                        assignee,
                        from: instant(op.t),
                    },
                    10 => ItemEvent::AssignmentRevoked {
                        role,
                        assignee,
                        until: instant(op.t.wrapping_add(1)),
                        reason: reason("Điều chỉnh phân công"),
                    },
                    11 => ItemEvent::DeadlineSet { due_on: date(op.c) },
                    12 => ItemEvent::DeadlineChanged {
                        from: date(op.b),
                        to: date(op.c),
                        reason: text("Gia hạn"),
                    },
                    _ => ItemEvent::StatusChanged {
                        from: LIFECYCLES[usize::from(op.b) % 6],
                        to: LIFECYCLES[usize::from(op.c) % 6],
                        reason: reason("Cập nhật tiến độ"),
                        evidence: op.b.is_multiple_of(2).then(|| text("Biên bản kiểm tra")),
                        at: instant(op.t),
                    },
                };
                let changes = matches!(op.kind, 8 | 13).then(|| format!("item/{id}"));
                let target = AggregateRef::Item(ItemId::new(id).expect("id"));
                (target, Event::Item(event), changes)
            }
            14..=17 => {
                let id = if op.kind == 14 {
                    self.fresh("task", &TASKS, op.a, dup)
                } else {
                    pick(&TASKS, op.a)
                };
                let event = match op.kind {
                    14 => TaskEvent::Planned {
                        item_id: item(op.b),
                        unit_id: unit(op.c),
                        plan_issued_on: date(0),
                        title: text(&format!("Nhiệm vụ {id}")),
                        person_responsible: text("Nguyễn Văn An"),
                        leader_in_charge: text("Lê Thị Bình"),
                        due_on: date(op.t),
                    },
                    15 => TaskEvent::Rescheduled {
                        from: date(op.b),
                        to: date(op.c),
                        reason: text("Điều chỉnh theo mùa vụ"),
                    },
                    16 => TaskEvent::StatusChanged {
                        from: LIFECYCLES[usize::from(op.b) % 6],
                        to: LIFECYCLES[usize::from(op.c) % 6],
                        reason: reason("Tiến độ"),
                        evidence: op
                            .b
                            .is_multiple_of(3)
                            .then(|| text(&format!("Minh chứng {}", op.t % 3))),
                        at: instant(op.t),
                    },
                    _ => TaskEvent::Cancelled {
                        reason: reason("Không còn phù hợp"),
                    },
                };
                let changes = matches!(op.kind, 14 | 16).then(|| format!("task/{id}"));
                let target = AggregateRef::Task(TaskId::new(id).expect("id"));
                (target, Event::Task(event), changes)
            }
            _ => {
                let plan = PlanId::new(pick(&PLANS, op.a)).expect("id");
                let unit_id = unit(op.b);
                let mut quarter = quarter(op.c);
                let mut id = report_id(&plan, &unit_id, quarter);
                if op.kind == 18 && !dup && self.exists.contains(&format!("report/{id}")) {
                    quarter = Quarter::new(2025, 3 + op.c % 2).expect("quarter");
                    id = report_id(&plan, &unit_id, quarter);
                }
                let event = match op.kind {
                    18 => ReportEvent::Submitted {
                        plan_id: plan,
                        unit_id,
                        quarter,
                        lines: lines(op.t, op.b),
                        submitted_at: instant(op.t),
                    },
                    19 => ReportEvent::Revised {
                        lines: lines(op.t.wrapping_add(1), op.c),
                        reason: None,
                        revised_at: instant(op.t),
                    },
                    20 => ReportEvent::Accepted {
                        accepted_at: instant(op.t),
                    },
                    _ => ReportEvent::Returned {
                        reason: reason("Thiếu số liệu"),
                        returned_at: instant(op.t),
                    },
                };
                let target = AggregateRef::Report(ReportId::new(id.as_str()).expect("id"));
                (target, Event::Report(event), None)
            }
        }
    }

    fn push(&mut self, op: &Op) {
        let (target, event, changes) = self.event(op);
        let key = format!("{}/{}", target.kind(), target.id());
        let repeats_change = changes
            .as_ref()
            .is_some_and(|c| self.changed_in_commit.contains(c) && op.odd != 0);
        let join = op.join && !self.commits.is_empty() && !repeats_change;
        if !join {
            self.clock += 10;
            self.changed_in_commit.clear();
        }
        if matches!(op.kind, 0 | 3 | 6 | 8 | 14 | 18) {
            self.exists.insert(key.clone());
        }
        if let Some(change) = changes {
            self.changed_in_commit.insert(change);
        }
        let recorded = base()
            + TimeDelta::seconds(self.clock - if op.odd == 1 { 25 } else { 0 })
            + TimeDelta::nanoseconds(NANOS[usize::from(op.t % 4)]);
        let meta = CommandMeta {
            command_id: uuid::Uuid::now_v7(),
            command_name: "test",
            actor: Actor {
                user: "vp.nguyen-thi-hoa".into(),
                unit: op
                    .b
                    .is_multiple_of(2)
                    .then(|| UnitId::new(UNITS[0]).expect("id")),
                role: Role::ProvinceOffice,
            },
            correlation_id: "test".into(),
            causation_id: "test".into(),
            recorded_at: recorded,
            effective_at: instant(op.t.wrapping_add(3)),
        };
        let mut envelope = CloudEvent::new(&target, &event, &meta);
        let head = seal(
            self.heads.get(&key).map_or("", String::as_str),
            std::slice::from_mut(&mut envelope),
        );
        self.heads.insert(key, head);
        if join && let Some(commit) = self.commits.last_mut() {
            commit.events.push(envelope);
        } else {
            let sequence = self.commits.len() as u64 + 1;
            self.commits.push(Commit {
                sequence,
                events: vec![envelope],
            });
        }
    }
}

fn history(ops: &[Op]) -> Vec<Commit> {
    let mut history = History::default();
    for op in ops {
        history.push(op);
    }
    history.commits
}

const TABLES: [&str; 10] = [
    "units",
    "unit_groups",
    "group_members",
    "plans",
    "items",
    "assignments",
    "tasks",
    "reports",
    "report_lines",
    "status_history",
];

async fn in_schema(conn: &mut PgConnection, schema: &str) {
    sqlx::query(AssertSqlSafe(format!("SET LOCAL search_path TO {schema}")))
        .execute(&mut *conn)
        .await
        .expect("search path");
}

/// Applies `commits` one at a time with the reference; returns the sequence it stopped at.
async fn apply_reference(conn: &mut PgConnection, schema: &str, commits: &[Commit]) -> Option<u64> {
    let mut tx = conn.begin().await.expect("begin");
    in_schema(&mut tx, schema).await;
    let mut stop = None;
    for commit in commits {
        let mut savepoint = tx.begin().await.expect("savepoint");
        match reference::apply(&mut savepoint, commit).await {
            Ok(()) => savepoint.commit().await.expect("release"),
            Err(_) => {
                savepoint.rollback().await.expect("rollback");
                stop = Some(commit.sequence);
                break;
            }
        }
    }
    tx.commit().await.expect("commit");
    stop
}

/// Applies `commits` with the fold in batches of `sizes` (cycled), as the worker does: a batch
/// that fails is applied again commit by commit, up to the first that fails.
async fn apply_folded(
    conn: &mut PgConnection,
    schema: &str,
    commits: &[Commit],
    sizes: &[usize],
) -> (Option<u64>, Vec<String>) {
    let mut tx = conn.begin().await.expect("begin");
    in_schema(&mut tx, schema).await;
    let mut stop = None;
    let mut errors = Vec::new();
    let mut rest = commits;
    let mut sizes = sizes.iter().cycle();
    'batches: while !rest.is_empty() {
        let size = (*sizes.next().expect("sizes")).min(rest.len());
        let (batch, after) = rest.split_at(size);
        rest = after;
        let mut savepoint = tx.begin().await.expect("savepoint");
        match apply(&mut savepoint, Projection::Core, batch).await {
            Ok(()) => {
                savepoint.commit().await.expect("release");
                continue;
            }
            Err(error) => {
                assert_not_transient(&error);
                savepoint.rollback().await.expect("rollback");
            }
        }
        for commit in batch {
            let mut savepoint = tx.begin().await.expect("savepoint");
            match apply(
                &mut savepoint,
                Projection::Core,
                std::slice::from_ref(commit),
            )
            .await
            {
                Ok(()) => savepoint.commit().await.expect("release"),
                Err(error) => {
                    assert_not_transient(&error);
                    errors.push(error.to_string());
                    savepoint.rollback().await.expect("rollback");
                    stop = Some(commit.sequence);
                    break 'batches;
                }
            }
        }
        panic!("the batch failed, and none of its commits on its own");
    }
    tx.commit().await.expect("commit");
    (stop, errors)
}

/// A refusal must fail the same way every time (SQLSTATE classes 22 and 23, or a stop of the
/// projection's own): the worker retries anything else as transient.
fn assert_not_transient(error: &ApplyError) {
    if let ApplyError::Database(e) = error {
        let code = e
            .as_database_error()
            .and_then(|d| d.code().map(|c| c.into_owned()))
            .unwrap_or_default();
        assert!(
            code.starts_with("22") || code.starts_with("23"),
            "a refusal the worker would retry: {e}"
        );
    }
}

/// Every row of every core table, as sorted JSON texts. Stretches of group membership are
/// numbered by a sequence that failed attempts advance too: they are compared by their rank.
async fn tables(
    conn: &mut PgConnection,
    schema: &str,
    exact_ids: bool,
) -> Vec<(String, Vec<String>)> {
    let mut all = Vec::new();
    for table in TABLES {
        let row = if table == "group_members" && !exact_ids {
            test_support::GROUP_MEMBER_BY_RANK
        } else {
            "to_jsonb(t)::text"
        };
        let mut rows: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT {row} FROM {schema}.{table} t"
        )))
        .fetch_all(&mut *conn)
        .await
        .expect("rows");
        rows.sort();
        all.push((table.to_owned(), rows));
    }
    all
}

struct Fixture {
    runtime: tokio::runtime::Runtime,
    database: TestDatabase,
}

impl Fixture {
    fn new() -> Self {
        Fixture {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime"),
            database: TestDatabase::create(),
        }
    }

    /// Runs one case in two fresh schemas; returns the tables of each and where each stopped.
    fn case(&self, commits: &[Commit], sizes: &[usize]) -> Outcome {
        self.runtime.block_on(async {
            let pool = sqlx::PgPool::connect(&self.database.url())
                .await
                .expect("connect");
            for schema in ["reference", "folded"] {
                sqlx::query(AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS {schema} CASCADE"
                )))
                .execute(&pool)
                .await
                .expect("drop");
                prepare_schema(&pool, Projection::Core, schema)
                    .await
                    .expect("migrate");
            }
            let mut conn = pool.acquire().await.expect("connection");
            let reference_stop = apply_reference(&mut conn, "reference", commits).await;
            let (folded_stop, errors) = apply_folded(&mut conn, "folded", commits, sizes).await;
            let exact = reference_stop.is_none() && folded_stop.is_none();
            let outcome = Outcome {
                reference: (reference_stop, tables(&mut conn, "reference", exact).await),
                folded: (folded_stop, tables(&mut conn, "folded", exact).await),
                errors,
            };
            drop(conn);
            pool.close().await;
            outcome
        })
    }
}

type Tables = Vec<(String, Vec<String>)>;

struct Outcome {
    reference: (Option<u64>, Tables),
    folded: (Option<u64>, Tables),
    errors: Vec<String>,
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 96,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn batches_fold_to_the_tables_events_one_by_one_make(
        ops in prop::collection::vec(op(), 1..60),
        sizes in prop::collection::vec(1usize..12, 1..8),
    ) {
        thread_local!(static FIXTURE: Fixture = Fixture::new());
        let commits = history(&ops);
        let outcome = FIXTURE.with(|fixture| fixture.case(&commits, &sizes));
        prop_assert_eq!(outcome.folded.0, outcome.reference.0, "stopped at; errors {:?}", outcome.errors);
        for ((table, folded), (_, reference)) in outcome.folded.1.iter().zip(&outcome.reference.1) {
            prop_assert_eq!(folded, reference, "table {}", table);
        }
    }
}

/// The generator reaches what the comparison is for: long histories that apply whole, and
/// histories that stop.
#[test]
fn the_generator_draws_histories_that_apply_and_histories_that_stop() {
    let fixture = Fixture::new();
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = prop::collection::vec(op(), 40..60);
    let (mut whole, mut stopped) = (0, 0);
    for _ in 0..12 {
        let ops = strategy.new_tree(&mut runner).expect("ops").current();
        let outcome = fixture.case(&history(&ops), &[7]);
        match outcome.reference.0 {
            None => whole += 1,
            Some(_) => stopped += 1,
        }
    }
    assert!(
        whole >= 3 && stopped >= 1,
        "whole {whole}, stopped {stopped}"
    );
}

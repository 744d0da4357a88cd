//! Time travel against real NATS and PostgreSQL: commands go through the real command handler
//! (in-process, over a private nats-server), the real projector applies the stream to a fresh
//! database, and the answers of the fold are checked against the documented SQL as-of queries,
//! against full folds without snapshots, and against hand-computed expectations.
//!
//! - `sql_as_of_equals_fold_on_both_axes` — proptest: random status histories with random
//!   effective times (many backdated, some tied) in random recorded order; at random instants and
//!   at every event's times ±1 µs, on both axes, SQL = fold = fold from snapshots, before and
//!   after the snapshots are refreshed past backdated events;
//! - `backdated_correction_scenario` — a scripted history with a backdated correction, a paper
//!   report keyed in late, a succession and group membership: statuses, qualifiers, responsible
//!   units, compliance, item and unit views, diff, snapshot invalidation;
//! - `snapshots_answer_like_full_folds_on_a_generated_history` — the benchmark's generator
//!   (thousands of events, clock skew between recorded times, heavy backdating): every snapshot
//!   answer equals a full fold.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;

use async_nats::jetstream;
use chrono::{DateTime, Duration, Utc};
use command_app::handler::{CommandHandler, CommandRequest, HandlerSettings};
use event_store::access::Service;
use event_store::{Repository, StreamSettings, decode_commit};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use readmodel::Projection;
use remediation_domain::calendar::{DeadlineQualifier, Quarter, local_date, start_of_local_day};
use remediation_domain::item::AssignmentRole;
use remediation_domain::lifecycle::Lifecycle;
use remediation_domain::report::ReportStatus;
use remediation_domain::text::{ItemId, UnitId};
use remediation_domain::{Actor, AggregateRef, Assignee, COMMANDS, Command, Role};
use serde_json::{Value, json};
use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, PgPool};
use test_support::history::{History, apply_commits, fill};
use test_support::{NatsServer, TestDatabase};
use time_travel::view::{Compliance, item_statuses};
use time_travel::{AsOf, Axis, Change, Entity, PlanState, TimeTravel, sql, table};

// ── harness ──────────────────────────────────────────────────────────────────────────────────

fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

fn office() -> Actor {
    Actor {
        user: "vp-ubnd.nguyen-van-a".to_owned(),
        unit: None,
        role: Role::ProvinceOffice,
    }
}

fn finance() -> Actor {
    Actor {
        user: "stc.tran-thi-b".to_owned(),
        unit: None,
        role: Role::DepartmentOfFinance,
    }
}

fn command(name: &str, body: Value) -> Command {
    let spec = COMMANDS
        .iter()
        .find(|c| c.name == name)
        .expect("known command");
    (spec.decode)(body).expect("valid command body")
}

async fn pool(url: &str) -> PgPool {
    PgPoolOptions::new()
        .max_connections(6)
        .connect(url)
        .await
        .expect("connect to the test database")
}

/// A private nats-server, a fresh database, the command handler and the projector's batches.
struct Env {
    handler: CommandHandler,
    js: jetstream::Context,
    pool: PgPool,
    projected: u64,
    _nats: NatsServer,
    _db: TestDatabase,
}

impl Env {
    async fn start() -> Self {
        let nats = NatsServer::start();
        let db = TestDatabase::create();
        let (_client, js) = service_kit::connect_nats(
            &nats.url(),
            Service::CommandApi,
            Some(&nats.nkey_file(Service::CommandApi)),
            "time-travel-tests",
            std::time::Duration::from_secs(5),
        )
        .await
        .expect("connect NATS");
        let store = service_kit::open_store(&js, &StreamSettings::default())
            .await
            .expect("event store");
        let handler = CommandHandler::new(
            Repository::new(store, NonZeroUsize::new(1_000).expect("non-zero")),
            HandlerSettings::default(),
        );
        let pool = pool(&db.url()).await;
        readmodel::prepare_read_model(&pool, "")
            .await
            .expect("migrate");
        Self {
            handler,
            js,
            pool,
            projected: 0,
            _nats: nats,
            _db: db,
        }
    }

    /// Sends a command that must change something; returns its stream sequence.
    async fn send(&self, command: Command, actor: &Actor, effective: Option<DateTime<Utc>>) -> u64 {
        let name = command.name();
        let answer = self
            .handler
            .handle(CommandRequest {
                command,
                principal: actor.clone().into(),
                correlation_id: None,
                causation_id: None,
                effective_at: effective,
                idempotency: None,
            })
            .await
            .unwrap_or_else(|e| panic!("{name} failed: {e}"))
            .settled
            .unwrap_or_else(|e| panic!("{name} rejected: {e}"));
        assert!(answer.changed, "{name} changed nothing: {answer:?}");
        answer.stream_sequence
    }

    /// Applies the stream's new commits to both projections, as the projector's workers do.
    async fn project(&mut self) {
        let mut stream = self
            .js
            .get_stream(StreamSettings::default().name)
            .await
            .expect("stream");
        let head = stream
            .info()
            .await
            .expect("stream info")
            .state
            .last_sequence;
        let mut batch = Vec::new();
        for sequence in self.projected + 1..=head {
            let message = stream.get_raw_message(sequence).await.expect("raw message");
            batch.push(decode_commit(sequence, &message.payload).expect("a commit"));
        }
        for projection in Projection::ALL {
            apply_commits(&self.pool, &projection.schema(""), projection, &batch)
                .await
                .expect("apply the batch");
        }
        self.projected = head;
    }

    /// Recorded and effective time of the first event of a commit, from the audit log.
    async fn times(&self, sequence: u64) -> (DateTime<Utc>, DateTime<Utc>) {
        sqlx::query_as(
            "SELECT recorded_at, effective_at FROM audit.audit_log
             WHERE stream_sequence = $1 ORDER BY position LIMIT 1",
        )
        .bind(sequence as i64)
        .fetch_one(&self.pool)
        .await
        .expect("audit row")
    }
}

fn wire(status: Lifecycle) -> String {
    serde_json::to_value(status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn statuses(state: &PlanState) -> BTreeMap<String, String> {
    item_statuses(state)
        .into_iter()
        .map(|(id, s)| (id.to_string(), wire(s)))
        .collect()
}

/// Every instant worth asking about: each event's time on the axis, a microsecond either side,
/// and `extra` fractions (‰) of the span around them.
async fn probes(pool: &PgPool, axis: Axis, extra: &[u16]) -> Vec<DateTime<Utc>> {
    let column = match axis {
        Axis::Recorded => "recorded_at",
        Axis::Effective => "effective_at",
    };
    let times: Vec<DateTime<Utc>> = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT DISTINCT {column} FROM audit.audit_log ORDER BY 1"
    )))
    .fetch_all(pool)
    .await
    .expect("times");
    let micro = Duration::microseconds(1);
    let mut out: Vec<DateTime<Utc>> = times
        .iter()
        .flat_map(|t| [*t - micro, *t, *t + micro])
        .collect();
    if let (Some(first), Some(last)) = (times.first(), times.last()) {
        let from = *first - Duration::days(1);
        let span = (*last + Duration::days(1) - from)
            .num_microseconds()
            .unwrap_or(0);
        out.extend(
            extra
                .iter()
                .map(|p| from + Duration::microseconds(span / 1000 * i64::from(*p))),
        );
    }
    out
}

/// At every probe on both axes: the fold from snapshots equals the full fold, and the SQL
/// as-of answer for item statuses equals the fold's.
async fn check_everywhere(pool: &PgPool, extra: &[u16]) -> Result<(), TestCaseError> {
    let tt = TimeTravel::new("audit").expect("schema");
    let full = tt.clone().without_snapshots();
    let mut conn = pool.acquire().await.expect("connection");
    for axis in Axis::ALL {
        for instant in probes(pool, axis, extra).await {
            let as_of = AsOf::new(instant, axis);
            let slow = full.fold(&mut conn, as_of).await.expect("full fold");
            let fast = tt.fold(&mut conn, as_of).await.expect("snapshot fold");
            prop_assert_eq!(
                &fast.state,
                &slow.state,
                "snapshot fold differs from full fold as of {} ({})",
                instant,
                axis
            );
            prop_assert_eq!(fast.stats.events, slow.stats.events);
            let sql = sql::statuses_as_of(&mut conn, "core", "audit", as_of, "item")
                .await
                .expect("SQL as of");
            prop_assert_eq!(
                sql,
                statuses(&slow.state),
                "SQL and fold disagree as of {} ({})",
                instant,
                axis
            );
        }
    }
    Ok(())
}

// ── property: SQL as-of = fold as-of ─────────────────────────────────────────────────────────

/// When a status change took effect.
#[derive(Debug, Clone)]
enum When {
    /// Not backdated: effective when recorded.
    Now,
    /// Backdated to this fraction (‰) of [plan issue − 3 days, now): some precede the items
    /// themselves.
    At(u16),
    /// The same effective time as an earlier backdated step (ties go by stream sequence).
    Same(usize),
}

#[derive(Debug, Clone)]
struct Step {
    item: usize,
    choice: usize,
    when: When,
}

#[derive(Debug, Clone)]
struct Case {
    steps: Vec<Step>,
    /// Steps sent before the first snapshot refresh (‰ of the history).
    split: u16,
    every: u64,
    extra: Vec<u16>,
}

fn case() -> impl Strategy<Value = Case> {
    let when = prop_oneof![
        2 => Just(When::Now),
        3 => (0u16..1000).prop_map(When::At),
        1 => (0usize..32).prop_map(When::Same),
    ];
    let step =
        (0usize..3, 0usize..4, when).prop_map(|(item, choice, when)| Step { item, choice, when });
    (
        proptest::collection::vec(step, 4..18),
        0u16..=1000,
        1u64..=4,
        proptest::collection::vec(0u16..1000, 6),
    )
        .prop_map(|(steps, split, every, extra)| Case {
            steps,
            split,
            every,
            extra,
        })
}

const PLAN: &str = "kh-prop";
const ISSUED: &str = "2025-04-08";

fn items() -> [String; 3] {
    [1, 2, 3].map(|n| format!("{PLAN}-{n:02}"))
}

async fn run_case(case: Case) -> Result<(), TestCaseError> {
    let mut env = Env::start().await;
    let issued = start_of_local_day(ISSUED.parse().expect("date"));
    let office = office();
    let setup = [
        command(
            "issue-plan",
            json!({"plan_id": PLAN, "code": "99/KH-UBND", "title": "Kế hoạch thử", "issuer": "UBND tỉnh",
                   "issued_on": ISSUED, "legal_basis": [], "reporting_rule": "Trước ngày 15 tháng cuối quý"}),
        ),
        command(
            "register-unit",
            json!({"unit_id": "so-a", "name": "Sở A", "kind": "department"}),
        ),
    ];
    for c in setup {
        env.send(c, &office, Some(issued)).await;
    }
    for (n, item) in items().iter().enumerate() {
        env.send(
            command(
                "record-item",
                json!({"item_id": item, "plan_id": PLAN, "ordinal": n + 1, "title": format!("Hạn chế số {}", n + 1)}),
            ),
            &office,
            Some(issued),
        )
        .await;
        env.send(
            command(
                "assign-lead",
                json!({"item_id": item, "assignee": {"unit": "so-a"}}),
            ),
            &office,
            Some(issued),
        )
        .await;
    }
    let split = case.steps.len() * usize::from(case.split) / 1000;
    let lo = issued - Duration::days(3);
    let mut current = [Lifecycle::NotStarted; 3];
    let mut backdated: Vec<DateTime<Utc>> = Vec::new();
    let tt = TimeTravel::new("audit").expect("schema");
    for (i, step) in case.steps.iter().enumerate() {
        if i == split {
            env.project().await;
            tt.refresh_snapshots(&env.pool, case.every)
                .await
                .expect("refresh");
        }
        let from = current[step.item];
        let allowed: Vec<Lifecycle> = Lifecycle::ALL
            .into_iter()
            .filter(|to| from.can_become(*to))
            .collect();
        let to = allowed[step.choice % allowed.len()];
        let now = Utc::now();
        let effective = match step.when {
            When::Now => None,
            When::At(p) => {
                let span = (now - lo).num_microseconds().unwrap_or(0);
                Some(lo + Duration::microseconds(span / 1000 * i64::from(p)))
            }
            When::Same(k) if !backdated.is_empty() => Some(backdated[k % backdated.len()]),
            When::Same(_) => None,
        };
        if let Some(t) = effective {
            backdated.push(t);
        }
        env.send(
            command(
                "change-item-status",
                json!({"item_id": items()[step.item], "to": wire(to), "reason": "Cập nhật",
                       "evidence": (to == Lifecycle::AwaitingConfirmation).then_some("Minh chứng")}),
            ),
            &office,
            effective,
        )
        .await;
        current[step.item] = to;
    }
    env.project().await;
    // Events after the last refresh are not validated yet: readers must check them.
    check_everywhere(&env.pool, &case.extra).await?;
    tt.refresh_snapshots(&env.pool, case.every)
        .await
        .expect("refresh");
    check_everywhere(&env.pool, &case.extra).await
}

#[test]
fn sql_as_of_equals_fold_on_both_axes() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let mut runner = TestRunner::new(Config {
        cases: 16,
        max_shrink_iters: 8,
        failure_persistence: None,
        ..Config::default()
    });
    let outcome = runner.run(&case(), |case| runtime.block_on(run_case(case)));
    if let Err(e) = outcome {
        panic!("{e}");
    }
}

// ── a scripted history ───────────────────────────────────────────────────────────────────────

const I1: &str = "kh-test-01";
const I2: &str = "kh-test-02";

fn item_id(id: &str) -> ItemId {
    ItemId::new(id).expect("item id")
}

fn unit_id(id: &str) -> UnitId {
    UnitId::new(id).expect("unit id")
}

fn units(ids: &[&str]) -> Vec<UnitId> {
    ids.iter().map(|u| unit_id(u)).collect()
}

async fn plan_at(tt: &TimeTravel, pool: &PgPool, as_of: AsOf) -> time_travel::PlanView {
    let mut conn = pool.acquire().await.expect("connection");
    tt.plan(&mut conn, as_of).await.expect("plan as of")
}

fn status_of(view: &time_travel::PlanView, item: &str) -> Option<Lifecycle> {
    view.items
        .iter()
        .find(|i| i.item_id.as_str() == item)
        .map(|i| i.status)
}

fn compliance_of(view: &time_travel::PlanView, quarter: (i32, u8)) -> BTreeMap<String, Compliance> {
    let q = Quarter::new(quarter.0, quarter.1).expect("quarter");
    view.compliance
        .iter()
        .filter(|c| c.quarter == q)
        .map(|c| (c.unit_id.to_string(), c.compliance))
        .collect()
}

/// SQL assignments valid at T = the fold's, at `instant` on both axes.
async fn check_assignments(pool: &PgPool, tt: &TimeTravel, instant: DateTime<Utc>) {
    for axis in Axis::ALL {
        let as_of = AsOf::new(instant, axis);
        let view = plan_at(tt, pool, as_of).await;
        let mut conn = pool.acquire().await.expect("connection");
        let sql: Vec<(String, String, String, String, DateTime<Utc>)> =
            sql::assignments_as_of(&mut conn, "core", "audit", as_of)
                .await
                .expect("SQL assignments")
                .into_iter()
                .map(|a| {
                    (
                        a.item_id,
                        a.role,
                        a.assignee_type,
                        a.assignee_id,
                        a.valid_from,
                    )
                })
                .collect();
        let mut fold: Vec<(String, String, String, String, DateTime<Utc>)> = view
            .assignments
            .iter()
            .map(|a| {
                let (kind, id) = match &a.assignee {
                    Assignee::Unit(u) => ("unit", u.to_string()),
                    Assignee::Group(g) => ("group", g.to_string()),
                };
                let role = match a.role {
                    AssignmentRole::Lead => "lead",
                    AssignmentRole::Coordinator => "coordinator",
                };
                (
                    a.item_id.to_string(),
                    role.to_owned(),
                    kind.to_owned(),
                    id,
                    // The read model keeps microseconds.
                    DateTime::from_timestamp_micros(a.valid_from.timestamp_micros())
                        .expect("instant"),
                )
            })
            .collect();
        fold.sort();
        assert_eq!(sql, fold, "assignments as of {instant} ({axis})");
    }
}

/// Everything the scripted history must answer, asked through `tt`.
async fn check_scenario(pool: &PgPool, tt: &TimeTravel, recorded: &BTreeMap<&str, DateTime<Utc>>) {
    let effective = |t: &str| AsOf::effective(at(t));

    // Before anything happened to the items.
    let may = plan_at(tt, pool, effective("2025-05-01T00:00:00+07:00")).await;
    assert_eq!(status_of(&may, I1), Some(Lifecycle::NotStarted));
    assert_eq!(status_of(&may, I2), Some(Lifecycle::NotStarted));
    assert!(may.reports.is_empty());

    // Q2's due instant: the paper report (effective 10 June, keyed in later) was on time and
    // already accepted (12 June); so-b sent nothing.
    let due_q2 = plan_at(tt, pool, effective("2025-06-15T00:00:00+07:00")).await;
    assert_eq!(status_of(&due_q2, I1), Some(Lifecycle::InProgress));
    assert_eq!(
        compliance_of(&due_q2, (2025, 2)),
        BTreeMap::from([
            ("so-a".to_owned(), Compliance::OnTime),
            ("so-b".to_owned(), Compliance::Missing)
        ])
    );
    assert_eq!(due_q2.reports.len(), 1);
    assert_eq!(due_q2.reports[0].status, ReportStatus::Accepted);
    let before_acceptance = plan_at(tt, pool, effective("2025-06-11T00:00:00+07:00")).await;
    assert_eq!(before_acceptance.reports[0].status, ReportStatus::Submitted);
    assert_eq!(
        compliance_of(&before_acceptance, (2025, 2)),
        BTreeMap::from([
            ("so-a".to_owned(), Compliance::OnTime),
            ("so-b".to_owned(), Compliance::Pending)
        ])
    );

    // 1 August: suspended since 1 July — the correction recorded later is effective 1 June, so
    // it does not undo the suspension on this axis. so-b was succeeded by so-c on 1 July: the
    // group's coordination passes to so-c.
    let august = plan_at(tt, pool, effective("2025-08-01T00:00:00+07:00")).await;
    let i1 = august
        .items
        .iter()
        .find(|i| i.item_id.as_str() == I1)
        .expect("item 1");
    assert_eq!(i1.status, Lifecycle::Suspended);
    assert_eq!(i1.status_label, "tạm hoãn");
    assert_eq!(i1.due_on, "2025-09-30".parse().ok());
    assert_eq!(i1.deadline_qualifier, DeadlineQualifier::WithinTime);
    assert_eq!(i1.leads, units(&["so-a"]));
    assert_eq!(i1.coordinators, units(&["so-c"]));
    let i2 = august
        .items
        .iter()
        .find(|i| i.item_id.as_str() == I2)
        .expect("item 2");
    assert_eq!(i2.leads, units(&["so-c"]));
    assert_eq!(i2.coordinators, units(&["so-c"]));

    // Three days or less before the deadline's end of day.
    let due_soon = plan_at(tt, pool, effective("2025-09-28T12:00:00+07:00")).await;
    let i1 = &due_soon.items[0];
    assert_eq!(i1.deadline_qualifier, DeadlineQualifier::DueSoon);
    assert_eq!(i1.deadline_label, "sắp quá hạn");

    // Q3: so-b's responsibilities are so-c's from 1 July; nobody reported.
    let september = plan_at(tt, pool, effective("2025-09-20T00:00:00+07:00")).await;
    assert_eq!(
        compliance_of(&september, (2025, 3)),
        BTreeMap::from([
            ("so-a".to_owned(), Compliance::Missing),
            ("so-c".to_owned(), Compliance::Missing)
        ])
    );
    assert_eq!(
        compliance_of(&september, (2025, 2)).get("so-b"),
        Some(&Compliance::Missing)
    );

    // The views of one item and one unit.
    let mut conn = pool.acquire().await.expect("connection");
    let item = tt
        .item(
            &mut conn,
            effective("2025-08-01T00:00:00+07:00"),
            &item_id(I1),
        )
        .await
        .expect("item view")
        .expect("item 1 exists");
    assert_eq!(item.item.status, Lifecycle::Suspended);
    assert_eq!(item.assignments.len(), 2);
    assert!(item.assignments.iter().all(|a| a.valid_at));
    assert_eq!(item.report_lines.len(), 1);
    assert!(
        tt.item(
            &mut conn,
            effective("2025-04-07T00:00:00+07:00"),
            &item_id(I1)
        )
        .await
        .expect("item view")
        .is_none(),
        "the item did not exist before the plan"
    );
    let so_c = tt
        .unit(
            &mut conn,
            effective("2025-09-20T00:00:00+07:00"),
            &unit_id("so-c"),
        )
        .await
        .expect("unit view")
        .expect("so-c exists");
    let roles: Vec<(String, AssignmentRole)> = so_c
        .items
        .iter()
        .map(|i| (i.item.item_id.to_string(), i.role))
        .collect();
    assert_eq!(
        roles,
        [
            (I1.to_owned(), AssignmentRole::Coordinator),
            (I2.to_owned(), AssignmentRole::Lead),
            (I2.to_owned(), AssignmentRole::Coordinator)
        ]
    );
    assert_eq!(so_c.compliance.len(), 1);
    let so_b = tt
        .unit(
            &mut conn,
            effective("2025-09-20T00:00:00+07:00"),
            &unit_id("so-b"),
        )
        .await
        .expect("unit view")
        .expect("so-b exists");
    assert!(so_b.unit.succeeded);
    assert_eq!(so_b.unit.holders, units(&["so-c"]));
    assert!(so_b.items.is_empty());
    let so_b_june = tt
        .unit(
            &mut conn,
            effective("2025-06-20T00:00:00+07:00"),
            &unit_id("so-b"),
        )
        .await
        .expect("unit view")
        .expect("so-b exists");
    assert!(!so_b_june.unit.succeeded);
    assert_eq!(so_b_june.groups.len(), 1);
    drop(conn);

    // What the system knew: suspended once the suspension was recorded, in progress again from
    // the moment the correction was recorded.
    let micro = Duration::microseconds(1);
    let knew = |t: DateTime<Utc>| AsOf::recorded(t);
    let suspended_known = plan_at(tt, pool, knew(recorded["suspended"])).await;
    assert_eq!(status_of(&suspended_known, I1), Some(Lifecycle::Suspended));
    let before_correction = plan_at(tt, pool, knew(recorded["correction"] - micro)).await;
    assert_eq!(
        status_of(&before_correction, I1),
        Some(Lifecycle::Suspended)
    );
    let corrected = plan_at(tt, pool, knew(recorded["correction"])).await;
    assert_eq!(status_of(&corrected, I1), Some(Lifecycle::InProgress));
    let before_report = plan_at(tt, pool, knew(recorded["report"] - micro)).await;
    assert!(before_report.reports.is_empty());
    let with_report = plan_at(tt, pool, knew(recorded["report"])).await;
    assert_eq!(with_report.reports.len(), 1);
    assert_eq!(with_report.reports[0].status, ReportStatus::Submitted);

    // One aggregate alone, from its own events.
    let mut conn = pool.acquire().await.expect("connection");
    let alone = tt
        .fold_aggregate(
            &mut conn,
            effective("2025-08-01T00:00:00+07:00"),
            &AggregateRef::Item(item_id(I1)),
        )
        .await
        .expect("aggregate fold");
    let whole = tt
        .fold(&mut conn, effective("2025-08-01T00:00:00+07:00"))
        .await
        .expect("fold");
    assert_eq!(alone, *whole.state.get(&AggregateRef::Item(item_id(I1))));

    // The diff: what changed between mid-June and August, and who did what in between.
    let diff = tt
        .diff(
            &mut conn,
            Axis::Effective,
            at("2025-06-15T00:00:00+07:00"),
            at("2025-08-01T00:00:00+07:00"),
            100,
        )
        .await
        .expect("diff");
    assert!(diff.changes.contains(&Change::Changed {
        entity: Entity::Item,
        key: I1.to_owned(),
        field: "status".to_owned(),
        before: json!("in_progress"),
        after: json!("suspended"),
    }));
    assert!(diff.changes.contains(&Change::Changed {
        entity: Entity::Item,
        key: I1.to_owned(),
        field: "due_on".to_owned(),
        before: Value::Null,
        after: json!("2025-09-30"),
    }));
    assert!(diff.changes.iter().any(|c| matches!(c,
        Change::Added { entity: Entity::Assignment, key, .. } if key == &format!("{I2}/coordinator/unit:so-c"))));
    let commands: Vec<&str> = diff
        .events
        .iter()
        .map(|e| e.command_name.as_str())
        .collect();
    assert_eq!(
        commands,
        [
            "set-item-deadline",
            "succeed-unit",
            "change-item-status",
            "assign-coordinator"
        ]
    );
    assert_eq!(diff.events_total, 4);
    assert!(diff.events.iter().all(|e| e.actor_role == "province_office"
        && e.actor_user == office().user
        && e.effective_at < e.recorded_at));
    let rendered = table::diff(&diff);
    assert!(rendered.contains("tạm hoãn") || rendered.contains("suspended"));

    // The table people read.
    let rendered = table::plan(&august);
    for expected in [
        "STT",
        "Trạng thái",
        "Tình trạng hạn",
        "tạm hoãn",
        "trong hạn",
        "so-c",
    ] {
        assert!(
            rendered.contains(expected),
            "{expected} missing from\n{rendered}"
        );
    }

    // SQL = fold for statuses and assignments at the scripted instants, on both axes.
    let mut instants: Vec<DateTime<Utc>> = [
        "2025-05-01T00:00:00+07:00",
        "2025-06-01T12:00:00+07:00",
        "2025-06-15T00:00:00+07:00",
        "2025-07-02T00:00:00+07:00",
        "2025-08-01T00:00:00+07:00",
    ]
    .map(at)
    .to_vec();
    instants.extend(recorded.values().flat_map(|t| [*t - micro, *t + micro]));
    for instant in instants {
        check_assignments(pool, tt, instant).await;
        for axis in Axis::ALL {
            let as_of = AsOf::new(instant, axis);
            let mut conn = pool.acquire().await.expect("connection");
            let fold = tt.fold(&mut conn, as_of).await.expect("fold");
            let full = tt
                .clone()
                .without_snapshots()
                .fold(&mut conn, as_of)
                .await
                .expect("full fold");
            assert_eq!(
                fold.state, full.state,
                "snapshot fold as of {instant} ({axis})"
            );
            let envelopes = tt
                .clone()
                .without_snapshots()
                .decoding_envelopes()
                .fold(&mut conn, as_of)
                .await
                .expect("fold from envelopes");
            assert_eq!(
                envelopes.state, full.state,
                "envelope decoding as of {instant}"
            );
            let sql = sql::statuses_as_of(&mut conn, "core", "audit", as_of, "item")
                .await
                .expect("SQL");
            assert_eq!(
                sql,
                statuses(&fold.state),
                "statuses as of {instant} ({axis})"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backdated_correction_scenario() {
    let mut env = Env::start().await;
    let office = office();
    let issued = Some(at("2025-04-08T00:00:00+07:00"));
    let setup = vec![
        command(
            "issue-plan",
            json!({"plan_id": "kh-test", "code": "98/KH-UBND", "title": "Kế hoạch khắc phục hạn chế năm 2024",
                   "issuer": "UBND tỉnh Thanh Hóa", "issued_on": "2025-04-08", "legal_basis": [],
                   "reporting_rule": "Định kỳ trước ngày 15 của tháng cuối quý"}),
        ),
        command(
            "register-unit",
            json!({"unit_id": "so-a", "name": "Sở Nông nghiệp và Môi trường", "kind": "department"}),
        ),
        command(
            "register-unit",
            json!({"unit_id": "so-b", "name": "UBND huyện Bá Thước", "kind": "district_committee"}),
        ),
        command(
            "register-unit",
            json!({"unit_id": "so-c", "name": "UBND xã Cành Nàng", "kind": "commune_committee"}),
        ),
        command(
            "define-group",
            json!({"group_id": "nhom-g", "name": "UBND các huyện"}),
        ),
        command(
            "add-group-member",
            json!({"group_id": "nhom-g", "unit_id": "so-b", "from": "2025-04-08"}),
        ),
        command(
            "record-item",
            json!({"item_id": I1, "plan_id": "kh-test", "ordinal": 1,
                   "title": "Tăng trưởng ngành nông nghiệp chưa đạt kế hoạch"}),
        ),
        command(
            "assign-lead",
            json!({"item_id": I1, "assignee": {"unit": "so-a"}}),
        ),
        command(
            "assign-coordinator",
            json!({"item_id": I1, "assignee": {"group": "nhom-g"}}),
        ),
        command(
            "record-item",
            json!({"item_id": I2, "plan_id": "kh-test", "ordinal": 2,
                   "title": "Giải ngân vốn đầu tư công còn chậm"}),
        ),
        command(
            "assign-lead",
            json!({"item_id": I2, "assignee": {"unit": "so-b"}}),
        ),
    ];
    for c in setup {
        env.send(c, &office, issued).await;
    }
    // A read of the audit trail is logged as an event too; it is no part of the plan's state.
    let auditor = Actor {
        user: "kiem-toan.le-van-c".to_owned(),
        unit: None,
        role: Role::Auditor,
    };
    env.send(
        command(
            "record-audit-read",
            json!({"day": local_date(Utc::now()).format("%Y-%m-%d").to_string(),
                   "query": "/v1/audit?aggregate=item", "results": 12}),
        ),
        &auditor,
        None,
    )
    .await;
    let mut sequences = BTreeMap::new();
    env.send(
        command(
            "change-item-status",
            json!({"item_id": I1, "to": "in_progress", "reason": "Bắt đầu triển khai"}),
        ),
        &office,
        Some(at("2025-05-10T09:00:00+07:00")),
    )
    .await;
    // A paper report, keyed in by the province office.
    sequences.insert(
        "report",
        env.send(
            command(
                "submit-report",
                json!({"plan_id": "kh-test", "unit_id": "so-a", "quarter": {"year": 2025, "quarter": 2},
                       "lines": [{"item_id": I1, "progress": "Đã triển khai 3/5 mô hình", "status": "in_progress"}]}),
            ),
            &office,
            Some(at("2025-06-10T10:00:00+07:00")),
        )
        .await,
    );
    env.send(
        command(
            "set-item-deadline",
            json!({"item_id": I1, "due_on": "2025-09-30"}),
        ),
        &office,
        Some(at("2025-06-20T09:00:00+07:00")),
    )
    .await;
    let tt = TimeTravel::new("audit").expect("schema").with_cache(8);
    env.project().await;
    tt.refresh_snapshots(&env.pool, 2).await.expect("refresh");

    sequences.insert(
        "suspended",
        env.send(
            command(
                "change-item-status",
                json!({"item_id": I1, "to": "suspended", "reason": "Chờ bố trí vốn"}),
            ),
            &office,
            Some(at("2025-07-01T09:00:00+07:00")),
        )
        .await,
    );
    env.send(
        command(
            "succeed-unit",
            json!({"unit_id": "so-b", "successors": ["so-c"], "effective_on": "2025-07-01",
                   "reason": "Sắp xếp đơn vị hành chính, không tổ chức cấp huyện"}),
        ),
        &office,
        Some(at("2025-06-25T09:00:00+07:00")),
    )
    .await;
    env.send(
        command(
            "assign-coordinator",
            json!({"item_id": I2, "assignee": {"unit": "so-c"}}),
        ),
        &office,
        Some(at("2025-07-05T09:00:00+07:00")),
    )
    .await;
    env.project().await;
    let first = tt.refresh_snapshots(&env.pool, 2).await.expect("refresh");
    assert!(first.effective.stored > 0 && first.recorded.stored > 0);

    // The backdated correction, recorded after the suspension but effective before it, and the
    // Department of Finance's acceptance keyed in late.
    sequences.insert(
        "correction",
        env.send(
            command(
                "change-item-status",
                json!({"item_id": I1, "to": "in_progress", "reason": "Đính chính: đã triển khai lại từ 01/6"}),
            ),
            &office,
            Some(at("2025-06-01T09:00:00+07:00")),
        )
        .await,
    );
    env.send(
        command(
            "accept-report",
            json!({"plan_id": "kh-test", "unit_id": "so-a", "quarter": {"year": 2025, "quarter": 2}}),
        ),
        &finance(),
        Some(at("2025-06-12T10:00:00+07:00")),
    )
    .await;
    env.project().await;
    let mut recorded = BTreeMap::new();
    for (name, sequence) in &sequences {
        recorded.insert(*name, env.times(*sequence).await.0);
    }

    // Not yet validated against the correction: readers must notice it themselves.
    check_scenario(&env.pool, &tt, &recorded).await;
    let second = tt.refresh_snapshots(&env.pool, 2).await.expect("refresh");
    assert!(
        second.effective.invalidated > 0,
        "the backdated correction invalidates effective snapshots after 1 June: {second:?}"
    );
    assert_eq!(second.recorded.invalidated, 0);
    check_scenario(&env.pool, &tt, &recorded).await;
    check_scenario(&env.pool, &tt.clone().without_snapshots(), &recorded).await;
}

// ── snapshots over a generated history ───────────────────────────────────────────────────────

async fn compare_with_full_folds(pool: &PgPool, schema: &str, instants: &[DateTime<Utc>]) {
    let tt = TimeTravel::new(schema).expect("schema").with_cache(4);
    let full = tt.clone().without_snapshots();
    let mut conn = pool.acquire().await.expect("connection");
    for axis in Axis::ALL {
        for instant in instants {
            let as_of = AsOf::new(*instant, axis);
            let fast = tt.fold(&mut conn, as_of).await.expect("fold");
            let slow = full.fold(&mut conn, as_of).await.expect("full fold");
            assert_eq!(
                fast.stats.events, slow.stats.events,
                "as of {instant} ({axis})"
            );
            assert!(fast.state == slow.state, "as of {instant} ({axis})");
        }
    }
}

async fn event_instants(pool: &PgPool, schema: &str, every_nth: i64) -> Vec<DateTime<Utc>> {
    let rows: Vec<(DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT recorded_at, effective_at FROM \"{schema}\".audit_log
         WHERE stream_sequence % $1 = 0 ORDER BY stream_sequence"
    )))
    .bind(every_nth)
    .fetch_all(pool)
    .await
    .expect("instants");
    let micro = Duration::microseconds(1);
    rows.into_iter()
        .flat_map(|(r, e)| [r, e, e - micro])
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_answer_like_full_folds_on_a_generated_history() {
    let db = TestDatabase::create();
    let pool = pool(&db.url()).await;
    let schema = "audit";
    readmodel::prepare_schema(&pool, Projection::Audit, schema)
        .await
        .expect("migrate");
    let mut history = History::new(11, 1_800, Duration::days(200));
    history.jitter = Duration::hours(5);
    fill(&pool, schema, &mut history, true)
        .await
        .expect("history");
    let tt = TimeTravel::new(schema).expect("schema");
    let report = tt.refresh_snapshots(&pool, 61).await.expect("refresh");
    assert!(report.recorded.written >= 20 && report.effective.written >= 20);
    let instants = event_instants(&pool, schema, 127).await;
    compare_with_full_folds(&pool, schema, &instants).await;

    // Heavy backdating after the snapshots: unvalidated, then refreshed.
    history.backdate_ratio = 0.6;
    history.extend(300);
    fill(&pool, schema, &mut history, false)
        .await
        .expect("more history");
    let instants = event_instants(&pool, schema, 149).await;
    compare_with_full_folds(&pool, schema, &instants).await;
    let report = tt.refresh_snapshots(&pool, 61).await.expect("refresh");
    assert!(report.effective.invalidated > 0, "{report:?}");
    compare_with_full_folds(&pool, schema, &instants).await;

    // Refreshing again changes nothing.
    let again = tt.refresh_snapshots(&pool, 61).await.expect("refresh");
    assert_eq!(
        (again.effective.invalidated, again.effective.written),
        (0, 0)
    );
    assert_eq!(again.recorded.written, 0);
}

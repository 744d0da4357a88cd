//! `kill -9` of the projector binary while it catches up on 50 000 commits, then a restart, a
//! SIGTERM further on (it exits 0 with its checkpoints matching its rows) and another restart: the
//! read model ends equal, table by table, to a from-scratch `projector rebuild all`.

use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use remediation_domain::calendar::Quarter;
use remediation_domain::item::{AssignmentRole, ItemEvent};
use remediation_domain::lifecycle::Lifecycle;
use remediation_domain::plan::{Plan, PlanEvent};
use remediation_domain::report::{ReportEvent, ReportLine, report_id};
use remediation_domain::task::TaskEvent;
use remediation_domain::text::{ItemId, Name, PlanId, Reason, TaskId, Text, UnitId};
use remediation_domain::unit::{UnitEvent, UnitKind};
use remediation_domain::{AggregateRef, Assignee, Event};
use reqwest::StatusCode;
use test_support::{NatsServer, TestDatabase};

use crate::harness::*;

// Mostly single-statement events (registrations, renames, deadline changes) so that debug
// builds get through two full passes quickly, with every multi-statement kind in the mix.
const UNITS: u64 = 20_000;
const RENAMED: u64 = 10_000;
const ITEMS: u64 = 1_000;
/// Deadline changes per item, after the deadline is set.
const DEADLINE_CHANGES: u64 = 12;
const TASKS: u64 = 1_000;
const REPORTS: u64 = 1_000;
/// plan + units + renames + items (recorded, assigned, deadline set, status changed, deadline
/// changes) + tasks + reports (submitted, revised, accepted).
pub const COMMITS: u64 = 1 + UNITS + RENAMED + ITEMS * (4 + DEADLINE_CHANGES) + TASKS + 3 * REPORTS;

fn text<const MAX: usize>(s: &str) -> Text<MAX> {
    Text::new(s).expect("valid text")
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
}

fn unit_id(n: u64) -> UnitId {
    UnitId::new(format!("dv-{n:05}")).expect("unit id")
}

fn item_id(n: u64) -> ItemId {
    ItemId::new(format!("nd-{n:05}")).expect("item id")
}

/// Publishes a valid history of `COMMITS` commits, as the command side would have written it:
/// a plan, units registered and renamed, items recorded, assigned, given deadlines and statuses,
/// tasks planned, reports submitted, revised and accepted.
pub async fn publish_history(js: &async_nats::jetstream::Context) -> u64 {
    let issued = date(2025, 4, 8);
    let p0: DateTime<Utc> = at("2025-04-08T08:00:00+07:00");
    let plan_id = PlanId::new("kh-63-2025").expect("plan id");
    let mut publisher = Publisher::new(js, 0);
    let plan = AggregateRef::Plan(plan_id.clone());
    publisher
        .commit(
            &plan,
            &[Event::Plan(PlanEvent::Issued(Plan {
                code: text("63/KH-UBND"),
                title: text("Kế hoạch khắc phục những hạn chế, yếu kém năm 2024"),
                issuer: text("UBND tỉnh Thanh Hóa"),
                issued_on: issued,
                legal_basis: vec![text("Nghị quyết số 18-NQ/TU ngày 05/12/2024")],
                reporting_rule: text("Định kỳ trước ngày 15 của tháng cuối quý"),
                report_recipient: None,
            }))],
            &meta("issue-plan", p0),
        )
        .await;
    let unit_name = |n: u64| -> Name { text(&format!("UBND xã số {n}")) };
    for n in 1..=UNITS {
        let kind = if n % 3 == 0 {
            UnitKind::PublicFacility
        } else {
            UnitKind::CommuneCommittee
        };
        publisher
            .commit(
                &AggregateRef::Unit(unit_id(n)),
                &[Event::Unit(UnitEvent::Registered {
                    name: unit_name(n),
                    kind,
                })],
                &meta("register-unit", p0),
            )
            .await;
    }
    for n in 1..=RENAMED {
        publisher
            .commit(
                &AggregateRef::Unit(unit_id(n)),
                &[Event::Unit(UnitEvent::Renamed {
                    from: unit_name(n),
                    to: text(&format!("UBND phường số {n}")),
                    reason: text("Sắp xếp đơn vị hành chính cấp xã"),
                })],
                &meta("rename-unit", at("2025-07-01T08:00:00+07:00")),
            )
            .await;
    }
    let reason = |s: &str| -> Reason { text(s) };
    let due = |n: u64, change: u64| {
        date(2025, 12, 1) + chrono::Duration::days((n % 28 + 30 * change) as i64)
    };
    for step in 0..4 + DEADLINE_CHANGES {
        for n in 1..=ITEMS {
            let event = match step {
                0 => ItemEvent::Recorded {
                    plan_id: plan_id.clone(),
                    plan_issued_on: issued,
                    ordinal: (n % 999 + 1) as u16,
                    title: text(&format!("Nội dung hạn chế số {n}")),
                    sector: Some(text("Nông nghiệp")),
                    causes_objective: None,
                    causes_subjective: None,
                    remedies: Some(text("Ứng dụng công nghệ cao trong sản xuất")),
                },
                1 => ItemEvent::Assigned {
                    role: AssignmentRole::Lead,
                    assignee: Assignee::Unit(unit_id(n)),
                    from: p0,
                },
                2 => ItemEvent::DeadlineSet { due_on: due(n, 0) },
                3 => ItemEvent::StatusChanged {
                    from: Lifecycle::NotStarted,
                    to: Lifecycle::InProgress,
                    reason: reason("Triển khai kế hoạch chi tiết"),
                    evidence: None,
                    at: at("2025-05-01T08:00:00+07:00"),
                },
                change => ItemEvent::DeadlineChanged {
                    from: due(n, change - 4),
                    to: due(n, change - 3),
                    reason: reason("Gia hạn theo đề nghị"),
                },
            };
            let effective = if step == 3 {
                at("2025-05-01T08:00:00+07:00")
            } else {
                p0
            };
            publisher
                .commit(
                    &AggregateRef::Item(item_id(n)),
                    &[Event::Item(event)],
                    &meta("generated", effective),
                )
                .await;
        }
    }
    for n in 1..=TASKS {
        publisher
            .commit(
                &AggregateRef::Task(TaskId::new(format!("nv-{n:05}")).expect("task id")),
                &[Event::Task(TaskEvent::Planned {
                    item_id: item_id(n),
                    unit_id: unit_id(n),
                    plan_issued_on: issued,
                    title: text(&format!("Nhiệm vụ số {n}")),
                    person_responsible: text("Nguyễn Văn An"),
                    leader_in_charge: text("Phó Chủ tịch UBND xã"),
                    due_on: date(2026, 3, 31),
                })],
                &meta("plan-task", at("2025-05-10T08:00:00+07:00")),
            )
            .await;
    }
    let q2 = Quarter::new(2025, 2).expect("quarter");
    let line = |n: u64, progress: &str| ReportLine {
        item_id: item_id(n),
        progress: text(progress),
        status: Some(Lifecycle::InProgress),
    };
    for step in 0..3 {
        for n in 1..=REPORTS {
            let event = match step {
                0 => ReportEvent::Submitted {
                    plan_id: plan_id.clone(),
                    unit_id: unit_id(n),
                    quarter: q2,
                    lines: vec![line(n, "Đã triển khai")],
                    submitted_at: at("2025-06-10T08:00:00+07:00")
                        + chrono::Duration::minutes(n as i64),
                },
                1 => ReportEvent::Revised {
                    lines: vec![line(n, "Đã triển khai, bổ sung số liệu")],
                    reason: Some(reason("Bổ sung số liệu")),
                    revised_at: at("2025-06-12T08:00:00+07:00"),
                },
                _ => ReportEvent::Accepted {
                    accepted_at: at("2025-06-20T08:00:00+07:00"),
                },
            };
            let id = report_id(&plan_id, &unit_id(n), q2);
            publisher
                .commit(
                    &AggregateRef::Report(id),
                    &[Event::Report(event)],
                    &meta("generated", at("2025-06-10T08:00:00+07:00")),
                )
                .await;
        }
    }
    publisher.flush().await;
    COMMITS
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_then_sigterm_while_catching_up_on_50_000_commits_each_restart_resumes_and_equals_a_rebuild()
 {
    let nats = NatsServer::start();
    let db = TestDatabase::create();
    let (_client, js) = jetstream(&nats).await;
    provision(&js).await;
    let head = publish_history(&js).await;
    assert!(head >= 50_000);
    assert_eq!(stream_head(&js).await, head);

    let log = std::env::temp_dir().join(format!(
        "projector-crash-test-{}-{}.log",
        std::process::id(),
        uuid::Uuid::now_v7()
    ));
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    let addr = free_addr();
    let mut conn = connect(&db.url()).await;

    // The reference: `projector rebuild all` from scratch, swapped in, in a database of its own
    // so that it runs alongside the live projector instead of after it (advisory locks are per
    // database; in one database every rebuild batch waits for the live projection's lock).
    let reference_db = TestDatabase::create();
    let mut rebuild = spawn_projector(
        &["rebuild", "all"],
        &nats,
        &reference_db.url(),
        free_addr(),
        1_000,
        "",
        &log,
    );

    // Run the live projector and kill -9 it once core is well under way but not done.
    let mut child = spawn_projector(&[], &nats, &db.url(), addr, 200, "", &log);
    let started = Instant::now();
    loop {
        let core = checkpoint(&mut conn, "core").await.unwrap_or(0);
        if core >= 5_000 {
            break;
        }
        assert!(child.running(), "the projector exited: {}", log_text());
        assert!(started.elapsed() < PATIENCE, "no progress: core at {core}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill();
    // What was committed is exactly what the checkpoints say: rows and checkpoint commit in one
    // transaction (one event per commit here). Read in one snapshot, in case a COMMIT the
    // projector sent just before dying is still landing.
    let (core_at_kill, units, audit_at_kill, audited, last): (i64, i64, i64, i64, Option<i64>) =
        sqlx::query_as(
            "SELECT (SELECT last_sequence FROM core.checkpoints),
                    (SELECT count(*) FROM core.units),
                    (SELECT last_sequence FROM audit.checkpoints),
                    (SELECT count(*) FROM audit.audit_log),
                    (SELECT max(stream_sequence) FROM audit.audit_log)",
        )
        .fetch_one(&mut conn)
        .await
        .expect("state at the kill");
    let core_at_kill = core_at_kill as u64;
    assert!(
        (5_000..head).contains(&core_at_kill),
        "killed mid-way: core at {core_at_kill} of {head}"
    );
    assert_eq!(
        units as u64,
        (core_at_kill - 1).min(UNITS),
        "the units of commits 2..={core_at_kill}"
    );
    assert_eq!(audited, audit_at_kill);
    assert_eq!(last.unwrap_or(0), audit_at_kill);

    // Restart; it takes up from its checkpoints. Stop it again with SIGTERM, as a service
    // manager would, well into the rest: it finishes its batch, exits 0, and what it committed
    // is again exactly what its checkpoints say.
    let mut child = spawn_projector(&[], &nats, &db.url(), addr, 200, "", &log);
    let started = Instant::now();
    loop {
        let core = checkpoint(&mut conn, "core").await.unwrap_or(0);
        if core >= core_at_kill + 5_000 || core >= head {
            break;
        }
        assert!(child.running(), "the projector exited: {}", log_text());
        assert!(started.elapsed() < PATIENCE, "no progress: core at {core}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let stopped = child.terminate();
    assert!(stopped.success(), "SIGTERM: {stopped}; {}", log_text());
    let (core_at_term, units): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT last_sequence FROM core.checkpoints), (SELECT count(*) FROM core.units)",
    )
    .fetch_one(&mut conn)
    .await
    .expect("state at the stop");
    assert_eq!(
        units as u64,
        (core_at_term as u64 - 1).min(UNITS),
        "the units of commits 2..={core_at_term}"
    );

    // Restart once more; it takes up from its checkpoints and finishes.
    let mut child = spawn_projector(&[], &nats, &db.url(), addr, 200, "", &log);
    wait_for_checkpoints(&mut conn, "", head).await;
    // The restarted process applied the rest of core itself, so its /readyz shows the head
    // (audit may have been done before the kill: see regressions::projection for what it then shows).
    wait_ready(&format!("http://{addr}"), head).await;
    let restarted = all_checksums(&mut conn, "").await;

    // Sanity: the history is all there, each fact once.
    assert_eq!(restarted["core.units"].0 as u64, UNITS);
    assert_eq!(restarted["core.items"].0 as u64, ITEMS);
    assert_eq!(restarted["core.status_history"].0 as u64, 2 * ITEMS + TASKS);
    assert_eq!(restarted["core.tasks"].0 as u64, TASKS);
    assert_eq!(restarted["core.reports"].0 as u64, REPORTS);
    assert_eq!(restarted["audit.audit_log"].0 as u64, head);
    let (revisions, renamed, due): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT sum(revisions)::bigint FROM core.reports),
                (SELECT count(*) FROM core.units WHERE name LIKE 'UBND phường%'),
                (SELECT count(*) FROM core.items WHERE due_on = DATE '2025-12-01' + substring(item_id from 4)::int % 28 + 360)",
    )
    .fetch_one(&mut conn)
    .await
    .expect("facts");
    assert_eq!(revisions as u64, REPORTS, "every revision counted once");
    assert_eq!(renamed as u64, RENAMED);
    assert_eq!(due as u64, ITEMS, "every item at its last deadline");

    // The from-scratch rebuild: done, switched in, and equal table by table.
    let status = rebuild.wait();
    assert!(status.success(), "rebuild failed: {}", log_text());
    let mut reference = connect(&reference_db.url()).await;
    let rebuilt = all_checksums(&mut reference, "").await;
    assert_eq!(
        restarted.keys().collect::<Vec<_>>(),
        rebuilt.keys().collect::<Vec<_>>()
    );
    for (table, sum) in &restarted {
        assert_eq!(
            Some(sum),
            rebuilt.get(table),
            "{table} differs from the rebuild"
        );
    }
    for schema in ["core", "audit"] {
        assert_eq!(checkpoint(&mut conn, schema).await, Some(head), "{schema}");
        assert_eq!(
            checkpoint(&mut reference, schema).await,
            Some(head),
            "{schema}"
        );
    }

    child.kill();
    let _ = std::fs::remove_file(&log);
}

/// Polls the binary's `/readyz` until it answers 200 with the core checkpoint at `head` (it
/// binds only after migrating).
async fn wait_ready(url: &str, head: u64) -> serde_json::Value {
    let started = Instant::now();
    loop {
        if let Ok(response) = reqwest::get(format!("{url}/readyz")).await {
            let status = response.status();
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            if status == StatusCode::OK && body["projections"]["core"]["checkpoint"] == head {
                return body;
            }
        }
        assert!(
            started.elapsed() < PATIENCE,
            "the projector never became ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

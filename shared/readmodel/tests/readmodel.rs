//! The read model fed directly with commits (no NATS needed): exports and the quarterly
//! compilation over a small, exactly known history.

use chrono::{DateTime, Utc};
use event_store::{CloudEvent, CommandMeta, Commit, seal};
use readmodel::export::{
    Dataset, Format, Range, compilation_csv, compilation_xlsx, export, quarterly_compilation,
};
use readmodel::{Projection, prepare_schema};
use remediation_domain::calendar::Quarter;
use remediation_domain::item::{AssignmentRole, ItemEvent};
use remediation_domain::lifecycle::Lifecycle;
use remediation_domain::plan::{Plan, PlanEvent};
use remediation_domain::report::{ReportEvent, ReportLine, report_id};
use remediation_domain::text::{ItemId, PlanId, ReportId, Text, UnitId};
use remediation_domain::unit::{UnitEvent, UnitKind};
use remediation_domain::{Actor, AggregateRef, Assignee, Event, Role};
use sqlx::postgres::PgPoolOptions;
use test_support::TestDatabase;
use test_support::history::apply;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("instant")
        .with_timezone(&Utc)
}

fn text<const N: usize>(s: &str) -> Text<N> {
    Text::new(s).expect("text")
}

const PLAN: &str = "kh-63-2025";
const ITEM: &str = "kh-63-2025-01";
const ON_TIME: &str = "so-nong-nghiep-va-moi-truong";
const SILENT: &str = "so-khoa-hoc-va-cong-nghe";

/// The history, as (aggregate, event, effective time), one commit each.
fn history() -> Vec<(AggregateRef, Event, DateTime<Utc>)> {
    let plan_id = PlanId::new(PLAN).expect("id");
    let item = || AggregateRef::Item(ItemId::new(ITEM).expect("id"));
    let unit = |id: &str| AggregateRef::Unit(UnitId::new(id).expect("id"));
    let issued = at("2025-04-08T00:00:00+07:00");
    let quarter = Quarter::new(2025, 2).expect("quarter");
    vec![
        (
            AggregateRef::Plan(plan_id.clone()),
            Event::Plan(PlanEvent::Issued(Plan {
                code: text("63/KH-UBND"),
                title: text("Kế hoạch khắc phục hạn chế, yếu kém năm 2024"),
                issuer: text("UBND tỉnh Thanh Hóa"),
                issued_on: chrono::NaiveDate::from_ymd_opt(2025, 4, 8).expect("date"),
                legal_basis: vec![],
                reporting_rule: text("Trước ngày 15 của tháng cuối quý."),
                report_recipient: None,
            })),
            issued,
        ),
        (
            unit(ON_TIME),
            Event::Unit(UnitEvent::Registered {
                name: text("Sở Nông nghiệp và Môi trường"),
                kind: UnitKind::Department,
            }),
            issued,
        ),
        (
            unit(SILENT),
            Event::Unit(UnitEvent::Registered {
                name: text("Sở Khoa học và Công nghệ"),
                kind: UnitKind::Department,
            }),
            issued,
        ),
        (
            item(),
            Event::Item(ItemEvent::Recorded {
                plan_id: plan_id.clone(),
                plan_issued_on: chrono::NaiveDate::from_ymd_opt(2025, 4, 8).expect("date"),
                ordinal: 1,
                title: text("Ứng dụng công nghệ cao trong sản xuất nông nghiệp chưa nhiều"),
                sector: None,
                causes_objective: None,
                causes_subjective: None,
                remedies: None,
            }),
            issued,
        ),
        (
            item(),
            Event::Item(ItemEvent::Assigned {
                role: AssignmentRole::Lead,
                assignee: Assignee::Unit(UnitId::new(ON_TIME).expect("id")),
                from: issued,
            }),
            issued,
        ),
        (
            item(),
            Event::Item(ItemEvent::Assigned {
                role: AssignmentRole::Lead,
                assignee: Assignee::Unit(UnitId::new(SILENT).expect("id")),
                from: issued,
            }),
            issued,
        ),
        (
            item(),
            Event::Item(ItemEvent::DeadlineSet {
                due_on: chrono::NaiveDate::from_ymd_opt(2025, 12, 31).expect("date"),
            }),
            issued,
        ),
        (
            AggregateRef::Report(report_id(
                &plan_id,
                &UnitId::new(ON_TIME).expect("id"),
                quarter,
            )),
            Event::Report(ReportEvent::Submitted {
                plan_id: plan_id.clone(),
                unit_id: UnitId::new(ON_TIME).expect("id"),
                quarter,
                lines: vec![ReportLine {
                    item_id: ItemId::new(ITEM).expect("id"),
                    progress: text("Đã xây dựng 3 mô hình, \"đạt\" yêu cầu"),
                    status: None,
                }],
                submitted_at: at("2025-06-14T23:59:59+07:00"),
            }),
            at("2025-06-14T23:59:59+07:00"),
        ),
    ]
}

fn commits() -> Vec<Commit> {
    commits_of(history())
}

/// `history` as commits of one event each, sealed onto their aggregates' chains.
fn commits_of(history: Vec<(AggregateRef, Event, DateTime<Utc>)>) -> Vec<Commit> {
    let mut heads = std::collections::HashMap::<String, String>::new();
    history
        .into_iter()
        .enumerate()
        .map(|(index, (target, event, effective))| {
            let meta = CommandMeta {
                command_id: uuid::Uuid::now_v7(),
                command_name: "test",
                actor: Actor {
                    user: "test".into(),
                    unit: None,
                    role: Role::ProvinceOffice,
                },
                correlation_id: "test".into(),
                causation_id: "test".into(),
                recorded_at: effective,
                effective_at: effective,
            };
            let mut events = vec![CloudEvent::new(&target, &event, &meta)];
            let key = format!("{}/{}", target.kind(), target.id());
            let head = seal(heads.get(&key).map_or("", String::as_str), &mut events);
            heads.insert(key, head);
            Commit {
                sequence: index as u64 + 1,
                events,
            }
        })
        .collect()
}

async fn loaded() -> (TestDatabase, sqlx::PgPool) {
    load(&commits()).await
}

/// A transaction with `projection`'s schema on its search path.
async fn in_schema(
    pool: &sqlx::PgPool,
    projection: Projection,
) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut tx = pool.begin().await.expect("begin");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SET LOCAL search_path TO {}",
        projection.name()
    )))
    .execute(&mut *tx)
    .await
    .expect("search path");
    tx
}

/// A database with both projections applied to `commits`.
async fn load(commits: &[Commit]) -> (TestDatabase, sqlx::PgPool) {
    let database = TestDatabase::create();
    let admin = sqlx::PgPool::connect(&database.url())
        .await
        .expect("connect");
    for projection in Projection::ALL {
        prepare_schema(&admin, projection, projection.name())
            .await
            .expect("migrate");
        let mut tx = in_schema(&admin, projection).await;
        apply(&mut tx, projection, commits).await.expect("apply");
        tx.commit().await.expect("commit");
    }
    let pool = PgPoolOptions::new()
        .after_connect(|conn, _| {
            Box::pin(async move {
                sqlx::query("SET search_path TO core, audit")
                    .execute(conn)
                    .await?;
                Ok(())
            })
        })
        .connect(&database.url())
        .await
        .expect("connect");
    (database, pool)
}

async fn exported(
    pool: &sqlx::PgPool,
    dataset: Dataset,
    format: Format,
    range: Range,
) -> (u64, String) {
    let mut out = Vec::new();
    let rows = export(pool, dataset, range, format, &mut out)
        .await
        .expect("export");
    (rows, String::from_utf8(out).expect("utf-8"))
}

#[tokio::test]
async fn events_export_as_ndjson_envelopes_in_stream_order_within_the_range() {
    let (_database, pool) = loaded().await;
    let (rows, text) = exported(&pool, Dataset::Events, Format::Ndjson, Range::default()).await;
    assert_eq!(rows, 8);
    let envelopes: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(envelopes.len(), 8);
    assert_eq!(
        envelopes[0]["type"],
        "vn.gov.thanhhoa.remediation.plan.issued.v1"
    );
    assert_eq!(
        envelopes[7]["type"],
        "vn.gov.thanhhoa.remediation.report.submitted.v1"
    );
    let june = Range {
        from: Some(at("2025-06-01T00:00:00+07:00")),
        to: Some(at("2025-07-01T00:00:00+07:00")),
    };
    let (rows, _) = exported(&pool, Dataset::Events, Format::Ndjson, june).await;
    assert_eq!(rows, 1, "only the report was recorded in June");
}

#[tokio::test]
async fn csv_exports_carry_a_bom_a_header_and_quoted_fields() {
    let (_database, pool) = loaded().await;
    let (rows, text) = exported(&pool, Dataset::Reports, Format::Csv, Range::default()).await;
    assert_eq!(rows, 1);
    assert!(text.starts_with('\u{feff}'), "UTF-8 byte-order mark first");
    let mut lines = text.trim_start_matches('\u{feff}').lines();
    let header = lines.next().expect("header");
    assert!(
        header.starts_with("report_id,plan_id,unit_id,unit_name"),
        "{header}"
    );
    let row = lines.next().expect("row");
    assert!(row.contains("Sở Nông nghiệp và Môi trường"));
    assert!(row.contains("on_time"));
    assert!(
        row.contains(r#""Đã xây dựng 3 mô hình, ""đạt"" yêu cầu""#),
        "quoted: {row}"
    );
    let (_, compliance) = exported(&pool, Dataset::Compliance, Format::Csv, Range::default()).await;
    assert!(
        compliance.contains(&format!("{SILENT},Sở Khoa học và Công nghệ,2025,2")),
        "{compliance}"
    );
}

#[tokio::test]
async fn the_quarterly_compilation_has_one_row_per_item_and_lead_unit() {
    let (_database, pool) = loaded().await;
    let rows = quarterly_compilation(&pool, PLAN, 2025, 2, at("2025-07-01T00:00:00+07:00"))
        .await
        .expect("compilation");
    assert_eq!(rows.len(), 2);
    let on_time = rows
        .iter()
        .find(|r| r.lead_unit == "Sở Nông nghiệp và Môi trường")
        .expect("row");
    assert_eq!(on_time.report, "đúng hạn");
    assert_eq!(on_time.status, "chưa thực hiện");
    assert_eq!(on_time.deadline_qualifier, "trong hạn");
    assert_eq!(
        on_time.progress.as_deref(),
        Some("Đã xây dựng 3 mô hình, \"đạt\" yêu cầu")
    );
    let silent = rows
        .iter()
        .find(|r| r.lead_unit == "Sở Khoa học và Công nghệ")
        .expect("row");
    assert_eq!(silent.report, "không gửi");
    assert_eq!(silent.progress, None);

    // Before the due instant the silent unit is not yet missing.
    let early = quarterly_compilation(&pool, PLAN, 2025, 2, at("2025-06-14T23:00:00+07:00"))
        .await
        .expect("compilation");
    assert!(early.iter().any(|r| r.report == "chưa đến hạn"));

    let csv = String::from_utf8(compilation_csv(&rows)).expect("utf-8");
    assert!(csv.starts_with("\u{feff}STT,\"Nội dung hạn chế, yếu kém\",Đơn vị chủ trì"));
    assert!(csv.contains(",31/12/2025,"), "dates as dd/mm/yyyy: {csv}");
    assert!(
        csv.contains(",14/06/2025"),
        "submission date in local time: {csv}"
    );
    let xlsx = compilation_xlsx(&rows, "63/KH-UBND", 2025, 2).expect("xlsx");
    assert_eq!(&xlsx[..2], b"PK", "an XLSX workbook is a zip archive");
}

#[tokio::test]
async fn ids_in_the_history_are_consistent() {
    // The report identity the projection stores is the one the domain derives.
    let (_database, pool) = loaded().await;
    let stored: String = sqlx::query_scalar("SELECT report_id FROM reports")
        .fetch_one(&pool)
        .await
        .expect("report");
    let expected: ReportId = report_id(
        &PlanId::new(PLAN).expect("id"),
        &UnitId::new(ON_TIME).expect("id"),
        Quarter::new(2025, 2).expect("q"),
    );
    assert_eq!(stored, expected.as_str());
}

/// A database that held events before it tracked hash chains (upgraded from a version without
/// `chain_heads`) takes an old aggregate's next link as given, and checks every one after; a
/// database built from the first event refuses the same commit as a link from nowhere.
#[tokio::test]
async fn chains_picked_up_mid_stream_trust_their_first_link_only_after_an_upgrade() {
    let commits = commits();
    let continuing = commits
        .iter()
        .rposition(|c| !c.events[0].prevhash.is_empty())
        .expect("a commit that continues a chain");
    let (before, last) = (&commits[..continuing], &commits[continuing..=continuing]);
    for (since, accepted) in [(before.len(), true), (0, false)] {
        let database = TestDatabase::create();
        let admin = sqlx::PgPool::connect(&database.url())
            .await
            .expect("connect");
        prepare_schema(&admin, Projection::Core, "core")
            .await
            .expect("migrate");
        let mut tx = admin.begin().await.expect("begin");
        sqlx::query("SET LOCAL search_path TO core")
            .execute(&mut *tx)
            .await
            .expect("search path");
        apply(&mut tx, Projection::Core, before)
            .await
            .expect("apply");
        // What an upgrade leaves: no heads, tracking from where the projection stood.
        sqlx::query("DELETE FROM chain_heads")
            .execute(&mut *tx)
            .await
            .expect("forget heads");
        sqlx::query("UPDATE chain_tracking SET since = $1")
            .bind(since as i64)
            .execute(&mut *tx)
            .await
            .expect("tracking");
        let outcome = apply(&mut tx, Projection::Core, last).await;
        assert_eq!(outcome.is_ok(), accepted, "since {since}: {outcome:?}");
    }
}

/// The NDJSON export's lines, and what the audit table held before its data was stored once: each
/// envelope as PostgreSQL prints a whole jsonb envelope.
async fn exported_and_whole(pool: &sqlx::PgPool, commits: &[Commit]) -> (Vec<String>, Vec<String>) {
    let (_, text) = exported(pool, Dataset::Events, Format::Ndjson, Range::default()).await;
    let mut whole = Vec::new();
    for event in commits.iter().flat_map(|c| &c.events) {
        let envelope = serde_json::to_value(event).expect("envelope");
        let printed: String = sqlx::query_scalar("SELECT $1::jsonb::text")
            .bind(&envelope)
            .fetch_one(pool)
            .await
            .expect("jsonb text");
        whole.push(printed);
    }
    (text.lines().map(str::to_owned).collect(), whole)
}

#[tokio::test]
async fn the_audit_table_stores_the_data_once_and_readers_get_the_whole_envelope_back() {
    let commits = commits();
    let (_database, pool) = load(&commits).await;
    let with_data: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit.audit_log WHERE envelope ? 'data'")
            .fetch_one(&pool)
            .await
            .expect("count");
    assert_eq!(with_data, 0, "the data is stored once, as the payload");
    let (lines, whole) = exported_and_whole(&pool, &commits).await;
    assert_eq!(lines.len(), 8);
    assert_eq!(lines, whole, "the export prints the envelopes as published");

    // Rows written before the data was stored once: the migration strips it, and nothing a
    // reader sees changes.
    sqlx::query(
        "UPDATE audit.audit_log SET envelope = envelope || jsonb_build_object('data', payload)",
    )
    .execute(&pool)
    .await
    .expect("rows as they used to be");
    let (before, _) = exported_and_whole(&pool, &commits).await;
    assert_eq!(before, whole);
    let mut tx = pool.begin().await.expect("begin");
    sqlx::query("SET LOCAL search_path TO audit")
        .execute(&mut *tx)
        .await
        .expect("search path");
    sqlx::raw_sql(include_str!(
        "../migrations/audit/0008_envelope_without_data.sql"
    ))
    .execute(&mut *tx)
    .await
    .expect("the migration");
    tx.commit().await.expect("commit");
    let stripped: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit.audit_log WHERE envelope ? 'data'")
            .fetch_one(&pool)
            .await
            .expect("count");
    assert_eq!(stripped, 0);
    let (after, _) = exported_and_whole(&pool, &commits).await;
    assert_eq!(after, whole);
}

/// A benchmark pointed at a database that does not exist makes it instead of stopping; asked
/// again, it finds it there.
#[tokio::test]
async fn a_missing_database_is_created_once() {
    let server = TestDatabase::create();
    let url = format!("{}_made", server.url());
    assert!(
        readmodel::create_database_if_missing(&url)
            .await
            .expect("create")
    );
    assert!(
        !readmodel::create_database_if_missing(&url)
            .await
            .expect("exists")
    );
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .expect("the new database answers");
    pool.close().await;
    use sqlx::migrate::MigrateDatabase;
    sqlx::Postgres::drop_database(&url).await.expect("drop");
}

/// A transaction on `conn` that has saved the core checkpoint of `schema` at `sequence`, open.
async fn saved_checkpoint<'c>(
    conn: &'c mut sqlx::PgConnection,
    schema: &str,
    sequence: u64,
) -> sqlx::Transaction<'c, sqlx::Postgres> {
    use sqlx::Connection;
    let mut tx = conn.begin().await.expect("begin");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SET LOCAL search_path TO \"{schema}\""
    )))
    .execute(&mut *tx)
    .await
    .expect("search path");
    readmodel::save_checkpoint(&mut tx, Projection::Core, sequence, None)
        .await
        .expect("save");
    tx
}

#[tokio::test]
async fn a_checkpoint_is_announced_with_its_schema_when_its_transaction_commits_and_not_before() {
    use sqlx::postgres::PgListener;

    let database = TestDatabase::create();
    let pool = sqlx::PgPool::connect(&database.url()).await.expect("pool");
    let schema = Projection::Core.schema("announce_");
    prepare_schema(&pool, Projection::Core, &schema)
        .await
        .expect("schema");
    let mut listener = PgListener::connect_with(&pool).await.expect("listener");
    listener
        .listen(readmodel::CHECKPOINT_CHANNEL)
        .await
        .expect("listen");

    let mut conn = pool.acquire().await.expect("connection");
    let tx = saved_checkpoint(&mut conn, &schema, 7).await;
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(300), listener.recv())
            .await
            .is_err(),
        "announced before the commit"
    );
    tx.commit().await.expect("commit");
    let announced = tokio::time::timeout(std::time::Duration::from_secs(10), listener.recv())
        .await
        .expect("announced after the commit")
        .expect("notification");
    assert_eq!(announced.payload(), schema);

    let tx = saved_checkpoint(&mut conn, &schema, 8).await;
    tx.rollback().await.expect("rollback");
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(300), listener.recv())
            .await
            .is_err(),
        "a rolled-back checkpoint was announced"
    );
}

/// The rows every batch rewrites (chain heads, items, the history row a change closes) have
/// room on their page, so their updates are heap-only: no new index entry, and the page is
/// pruned in place instead of the table growing by a row per change. Enough items that the
/// inserts fill whole pages: with no room kept, almost none of the updates would be heap-only.
/// A history row grows when it is closed (two instants filled in), so where a batch closes every
/// row of a page, the room holds most of them but not all: at least three in four, as a share.
#[tokio::test]
async fn rows_rewritten_by_each_batch_are_updated_in_place() {
    const ITEMS: usize = 400;
    let plan_id = PlanId::new(PLAN).expect("id");
    let issued = at("2025-04-08T00:00:00+07:00");
    let item =
        |n: usize| AggregateRef::Item(ItemId::new(format!("kh-63-2025-{n:03}")).expect("id"));
    let recorded = (0..ITEMS).map(|n| {
        let event = Event::Item(ItemEvent::Recorded {
            plan_id: plan_id.clone(),
            plan_issued_on: chrono::NaiveDate::from_ymd_opt(2025, 4, 8).expect("date"),
            ordinal: n as u16 + 1,
            title: text("Hạn chế trong công tác chuyển đổi số"),
            sector: Some(text("Khoa học, công nghệ")),
            causes_objective: None,
            causes_subjective: None,
            remedies: Some(text("Hoàn thiện cơ sở dữ liệu dùng chung của tỉnh")),
        });
        (item(n), event, issued)
    });
    let started = at("2025-05-02T08:00:00+07:00");
    let changed = (0..ITEMS).map(|n| {
        let event = Event::Item(ItemEvent::StatusChanged {
            from: Lifecycle::NotStarted,
            to: Lifecycle::InProgress,
            reason: text("Đã triển khai"),
            evidence: None,
            at: started,
        });
        (item(n), event, started)
    });
    let all = commits_of(recorded.chain(changed).collect());
    let (first, second) = all.split_at(ITEMS);
    let (_database, pool) = load(first).await;
    // (table, the share of its updates that must be heap-only, in quarters)
    for (projection, tables) in [
        (
            Projection::Core,
            &[("chain_heads", 4), ("items", 4), ("status_history", 3)][..],
        ),
        (Projection::Audit, &[("chain_heads", 4)][..]),
    ] {
        let mut tx = in_schema(&pool, projection).await;
        apply(&mut tx, projection, second).await.expect("apply");
        for &(table, quarters) in tables {
            let (updated, heap_only): (i64, i64) = sqlx::query_as(
                "SELECT pg_stat_get_xact_tuples_updated($1::regclass),
                        pg_stat_get_xact_tuples_hot_updated($1::regclass)",
            )
            .bind(table)
            .fetch_one(&mut *tx)
            .await
            .expect("statistics");
            assert_eq!(updated, ITEMS as i64, "{}.{table}", projection.name());
            assert!(
                heap_only * 4 >= updated * quarters,
                "{}.{table}: {heap_only} of {updated} updates heap-only",
                projection.name()
            );
        }
        tx.rollback().await.expect("end");
    }
}

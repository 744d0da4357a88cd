//! The rules the read model states twice — once in the domain (Rust), once in SQL for views and
//! ad-hoc queries — held equal over random inputs: the local date, the report due instant, the
//! deadline qualifier, the reporting compliance of a unit for a quarter, and the Vietnamese labels.
//! A change to one side alone fails here.

use std::cell::RefCell;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use proptest::prelude::*;
use readmodel::{Projection, prepare_schema};
use remediation_domain::Lifecycle;
use remediation_domain::calendar::{
    Compliance, DeadlineQualifier, Quarter, deadline_qualifier, local_date,
};
use sqlx::{Connection, PgConnection};
use test_support::TestDatabase;

/// One database with the core schema, shared by every case: the functions under test are pure or
/// read only what a case writes inside its own rolled-back transaction.
struct Sql {
    _database: TestDatabase,
    conn: PgConnection,
    runtime: tokio::runtime::Runtime,
}

impl Sql {
    fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let database = TestDatabase::create();
        let conn = runtime.block_on(async {
            let pool = sqlx::PgPool::connect(&database.url())
                .await
                .expect("connect");
            prepare_schema(&pool, Projection::Core, Projection::Core.name())
                .await
                .expect("migrate");
            pool.close().await;
            let mut conn = PgConnection::connect(&database.url())
                .await
                .expect("connect");
            sqlx::query("SET search_path TO core")
                .execute(&mut conn)
                .await
                .expect("search path");
            conn
        });
        Self {
            _database: database,
            conn,
            runtime,
        }
    }
}

/// Instants from 2024 to 2027, to the second.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    let start = Utc
        .with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
        .single()
        .expect("start");
    (0i64..4 * 366 * 86_400).prop_map(move |s| start + Duration::seconds(s))
}

/// Instants close to local midnights, where the two sides could disagree.
fn near_midnight() -> impl Strategy<Value = DateTime<Utc>> {
    (0i64..4 * 366, -90i64..90).prop_map(|(day, offset)| {
        // 17:00 UTC is midnight in Hà Nội.
        Utc.with_ymd_and_hms(2024, 1, 1, 17, 0, 0)
            .single()
            .expect("start")
            + Duration::days(day)
            + Duration::seconds(offset)
    })
}

fn any_instant() -> impl Strategy<Value = DateTime<Utc>> {
    prop_oneof![instant(), near_midnight()]
}

fn date() -> impl Strategy<Value = NaiveDate> {
    let start = NaiveDate::from_ymd_opt(2024, 1, 1).expect("start");
    (0i64..4 * 366).prop_map(move |d| start + Duration::days(d))
}

fn wire<T: serde::Serialize>(value: T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .expect("a unit variant serialises as a string")
}

#[test]
fn calendar_functions_agree_with_the_domain() {
    let sql = RefCell::new(Sql::new());
    proptest!(ProptestConfig::with_cases(256), |(at in any_instant(), due in date(), year in 2024i32..2028, q in 1u8..=4)| {
        let mut sql = sql.borrow_mut();
        let Sql { conn, runtime, .. } = &mut *sql;
        let quarter = Quarter::new(year, q).expect("quarter");
        let (local, due_at, qualifier): (NaiveDate, DateTime<Utc>, String) = runtime.block_on(
            sqlx::query_as("SELECT local_date($1), report_due($2, $3), deadline_qualifier($4, $1)")
                .bind(at)
                .bind(year)
                .bind(i32::from(q))
                .bind(due)
                .fetch_one(&mut *conn),
        ).expect("query");
        prop_assert_eq!(local, local_date(at));
        prop_assert_eq!(due_at, quarter.report_due());
        prop_assert_eq!(qualifier, wire(deadline_qualifier(Some(due), at)));
    });
    let mut sql = sql.into_inner();
    let none: String = sql
        .runtime
        .block_on(
            sqlx::query_scalar("SELECT deadline_qualifier(NULL, now())").fetch_one(&mut sql.conn),
        )
        .expect("query");
    assert_eq!(none, wire(DeadlineQualifier::NoDeadline));
}

/// A plan issued on 2025-01-02 with one item led by one unit; the unit's report for Q2 2025 first
/// submitted at `submitted` (if at all); `reporting_compliance_at(at)` for that quarter against
/// `Compliance::of`.
#[test]
fn reporting_compliance_agrees_with_the_domain() {
    let sql = RefCell::new(Sql::new());
    let q2 = Quarter::new(2025, 2).expect("quarter");
    let from = Utc
        .with_ymd_and_hms(2025, 4, 1, 0, 0, 0)
        .single()
        .expect("from");
    // Instants in Q2 and Q3, and around the due instant.
    let around_due = (-7_200i64..7_200).prop_map(move |s| q2.report_due() + Duration::seconds(s));
    let in_range = (0i64..183 * 86_400).prop_map(move |s| from + Duration::seconds(s));
    let due = q2.report_due();
    let when = || prop_oneof![in_range.clone(), around_due.clone(), Just(due)];
    proptest!(ProptestConfig::with_cases(128), |(submitted in proptest::option::of(when()), at in when())| {
        let mut sql = sql.borrow_mut();
        let Sql { conn, runtime, .. } = &mut *sql;
        let compliance: String = runtime.block_on(async {
            let mut tx = conn.begin().await?;
            for statement in [
                "INSERT INTO plans (plan_id, code, title, issuer, issued_on, legal_basis, reporting_rule)
                 VALUES ('p', '63/KH-UBND', 'Kế hoạch', 'UBND tỉnh', '2025-01-02', '[]', 'Trước ngày 15')",
                "INSERT INTO units (unit_id, name, kind, registered_at)
                 VALUES ('u', 'Sở Tài chính', 'department', '2025-01-01T00:00:00Z')",
                "INSERT INTO items (item_id, plan_id, ordinal, title, status, status_since)
                 VALUES ('i', 'p', 1, 'Nội dung', 'not_started', '2025-01-02T00:00:00Z')",
                "INSERT INTO assignments (item_id, role, assignee_type, assignee_id, valid_from, stream_sequence)
                 VALUES ('i', 'lead', 'unit', 'u', '2025-01-02T00:00:00Z', 1)",
            ] {
                sqlx::query(statement).execute(&mut *tx).await?;
            }
            if let Some(submitted) = submitted {
                sqlx::query(
                    "INSERT INTO reports (report_id, plan_id, unit_id, year, quarter, due_at, status, first_submitted_at)
                     VALUES ('r', 'p', 'u', 2025, 2, report_due(2025, 2), 'submitted', $1)",
                )
                .bind(submitted)
                .execute(&mut *tx)
                .await?;
            }
            let compliance = sqlx::query_scalar(
                "SELECT compliance FROM reporting_compliance_at($1)
                 WHERE plan_id = 'p' AND unit_id = 'u' AND year = 2025 AND quarter = 2",
            )
            .bind(at)
            .fetch_one(&mut *tx)
            .await?;
            tx.rollback().await?;
            Ok::<_, sqlx::Error>(compliance)
        }).expect("query");
        prop_assert_eq!(compliance, Compliance::of(q2.report_due(), submitted, at).wire());
    });
}

#[test]
fn labels_agree_with_the_domain() {
    let mut sql = Sql::new();
    let mut label = |function: &str, value: String| -> String {
        sql.runtime
            .block_on(
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT {function}($1)")))
                    .bind(value)
                    .fetch_one(&mut sql.conn),
            )
            .expect("query")
    };
    for status in Lifecycle::ALL {
        assert_eq!(label("lifecycle_label_vi", wire(status)), status.label_vi());
    }
    for qualifier in [
        DeadlineQualifier::WithinTime,
        DeadlineQualifier::DueSoon,
        DeadlineQualifier::Overdue,
        DeadlineQualifier::NoDeadline,
    ] {
        assert_eq!(
            label("qualifier_label_vi", wire(qualifier)),
            qualifier.label_vi()
        );
    }
}

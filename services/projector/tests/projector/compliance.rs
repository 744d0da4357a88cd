//! Reporting compliance at the edges of the reporting calendar, decided in local time.

use remediation_domain::Role;
use serde_json::{Value, json};
use sqlx::PgConnection;
use test_support::{NatsServer, TestDatabase};

use crate::harness::*;

pub const PLAN: &str = "kh-63-2025";
/// Sends its Q2/2025 report at the last second before the due instant.
pub const ON_TIME: &str = "so-cong-thuong";
/// Sends it at the due instant itself.
pub const AT_DUE: &str = "so-xay-dung";
/// Sends it at 2025-06-14T17:30Z: still the 14th in UTC, already the 15th in Hà Nội.
pub const UTC_14TH: &str = "so-van-hoa-the-thao-va-du-lich";
/// Owes a report and sends none.
pub const SILENT: &str = "so-tu-phap";

pub const LAST_SECOND: &str = "2025-06-14T23:59:59+07:00";
pub const DUE: &str = "2025-06-15T00:00:00+07:00";
pub const JUST_BEFORE_DUE: &str = "2025-06-14T23:59:59.999999+07:00";
pub const UTC_EVENING: &str = "2025-06-14T17:30:00Z";

/// Plan 63 with one item led by four units, three of which report for Q2/2025, backdated by
/// the province office; the projector caught up. Returns the stream head.
pub async fn scripted(nats: &NatsServer, db: &TestDatabase) -> (u64, CommandService) {
    let service = CommandService::start(nats).await;
    let mut api = Api::new(&service);
    let office = who("vp.nguyen-thi-hoa", Role::ProvinceOffice, None);
    let p0 = Some("2025-04-08T08:00:00+07:00");
    api.post("issue-plan", &office, p0, json!({
        "plan_id": PLAN, "code": "63/KH-UBND", "title": "Kế hoạch khắc phục hạn chế, yếu kém năm 2024",
        "issuer": "UBND tỉnh Thanh Hóa", "issued_on": "2025-04-08", "legal_basis": [],
        "reporting_rule": "Định kỳ trước ngày 15 của tháng cuối quý.",
    }))
    .await;
    for (unit, name) in [
        (ON_TIME, "Sở Công Thương"),
        (AT_DUE, "Sở Xây dựng"),
        (UTC_14TH, "Sở Văn hóa, Thể thao và Du lịch"),
        (SILENT, "Sở Tư pháp"),
    ] {
        api.post(
            "register-unit",
            &office,
            p0,
            json!({ "unit_id": unit, "name": name, "kind": "department" }),
        )
        .await;
    }
    api.post(
        "record-item",
        &office,
        p0,
        json!({
            "item_id": "kh-63-2025-05", "plan_id": PLAN, "ordinal": 5,
            "title": "Cải cách thủ tục hành chính còn chậm",
        }),
    )
    .await;
    for unit in [ON_TIME, AT_DUE, UTC_14TH, SILENT] {
        api.post(
            "assign-lead",
            &office,
            p0,
            json!({ "item_id": "kh-63-2025-05", "assignee": { "unit": unit } }),
        )
        .await;
    }
    for (unit, effective) in [
        (ON_TIME, LAST_SECOND),
        (AT_DUE, DUE),
        (UTC_14TH, UTC_EVENING),
    ] {
        api.post(
            "submit-report",
            &office,
            Some(effective),
            json!({
                "plan_id": PLAN, "unit_id": unit, "quarter": { "year": 2025, "quarter": 2 },
                "lines": [{ "item_id": "kh-63-2025-05", "progress": "Đã rà soát 120 thủ tục" }],
            }),
        )
        .await;
    }
    let (_client, js) = jetstream(nats).await;
    let head = stream_head(&js).await;
    let projector = InProcessProjector::start(&projector_config(nats, &db.url(), "", 100)).await;
    let mut conn = connect(&db.url()).await;
    wait_for_checkpoints(&mut conn, "", head).await;
    projector.stop().await;
    (head, service)
}

/// Q2/2025 compliance per unit, seen at `t` (`None`: the live view, seen now).
pub async fn q2_compliance(conn: &mut PgConnection, t: Option<&str>) -> Vec<(String, String)> {
    let from = match t {
        Some(t) => format!("reporting_compliance_at('{t}'::timestamptz)"),
        None => "reporting_compliance".to_owned(),
    };
    let mut tx = sqlx::Connection::begin(conn).await.expect("begin");
    sqlx::query("SET LOCAL search_path TO core")
        .execute(&mut *tx)
        .await
        .expect("search path");
    let rows: Vec<(String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT unit_id, compliance FROM {from} WHERE year = 2025 AND quarter = 2
         ORDER BY unit_id COLLATE \"C\""
    )))
    .fetch_all(&mut *tx)
    .await
    .expect("compliance");
    tx.rollback().await.expect("rollback");
    rows
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(u, c)| ((*u).to_owned(), (*c).to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q2_reports_are_on_time_before_local_midnight_of_the_15th_and_missing_once_it_passes() {
    let nats = NatsServer::start();
    let db = TestDatabase::create();
    let (head, service) = scripted(&nats, &db).await;
    let mut conn = connect(&db.url()).await;

    // What was stored: the effective submission instants, judged against the due instant.
    assert_rows(
        "reports",
        &rows(
            &mut conn,
            "SELECT unit_id, due_at, first_submitted_at, status FROM core.reports",
            "unit_id COLLATE \"C\"",
        )
        .await,
        &[
            json!({ "unit_id": ON_TIME, "due_at": DUE, "first_submitted_at": LAST_SECOND, "status": "submitted" }),
            json!({ "unit_id": UTC_14TH, "due_at": DUE, "first_submitted_at": "2025-06-15T00:30:00+07:00", "status": "submitted" }),
            json!({ "unit_id": AT_DUE, "due_at": DUE, "first_submitted_at": DUE, "status": "submitted" }),
        ],
    );
    let timeliness: Vec<Value> = rows(
        &mut conn,
        "SELECT unit_id, timeliness FROM core.analytics_reports",
        "unit_id COLLATE \"C\"",
    )
    .await;
    assert_eq!(
        timeliness,
        [
            json!({ "unit_id": ON_TIME, "timeliness": "on_time" }),
            json!({ "unit_id": UTC_14TH, "timeliness": "late" }),
            json!({ "unit_id": AT_DUE, "timeliness": "late" }),
        ]
    );

    // The unit that sent nothing: pending up to the last microsecond before the due instant,
    // missing from the due instant on — with no event in between.
    let before = q2_compliance(&mut conn, Some(JUST_BEFORE_DUE)).await;
    let silent_before = before.iter().find(|(u, _)| u == SILENT).expect("owed");
    assert_eq!(silent_before.1, "pending");
    let on_time_before = before.iter().find(|(u, _)| u == ON_TIME).expect("owed");
    assert_eq!(on_time_before.1, "on_time");
    let at_due = q2_compliance(&mut conn, Some(DUE)).await;
    assert_eq!(
        at_due,
        pairs(&[
            (ON_TIME, "on_time"),
            (SILENT, "missing"),
            // Its report arrives half an hour after the due instant: at the due instant it is
            // still missing; it counts from its arrival on, as late.
            (UTC_14TH, "missing"),
            (AT_DUE, "late"),
        ])
    );
    // Nothing was appended or applied to get there.
    let (_client, js) = jetstream(&nats).await;
    assert_eq!(stream_head(&js).await, head);
    assert_eq!(checkpoint(&mut conn, "core").await, Some(head));

    // The live view (now, long after) has every report that came.
    assert_eq!(
        q2_compliance(&mut conn, None).await,
        pairs(&[
            (ON_TIME, "on_time"),
            (SILENT, "missing"),
            (UTC_14TH, "late"),
            (AT_DUE, "late"),
        ])
    );
    service.shutdown().await;
}

//! Defects found while writing these tests, each now fixed: every test states the behaviour the
//! design asks for, and guards it from coming back.

use std::time::{Duration, Instant};

use chrono::Utc;
use remediation_domain::Role;
use remediation_domain::calendar::Quarter;
use remediation_domain::report::{ReportEvent, ReportLine, report_id};
use remediation_domain::text::{ItemId, PlanId, UnitId};
use remediation_domain::{AggregateRef, Event};
use reqwest::StatusCode;
use serde_json::json;
use test_support::{NatsServer, TestDatabase};

use crate::compliance::{
    AT_DUE, JUST_BEFORE_DUE, ON_TIME, SILENT, UTC_14TH, q2_compliance, scripted,
};
use crate::harness::*;
use crate::stall::wait_until_not_ready;

/// Waits up to `limit` for `/readyz` to answer 503; `None` if it kept answering 200.
async fn not_ready_within(url: &str, limit: Duration) -> Option<serde_json::Value> {
    let started = Instant::now();
    while started.elapsed() < limit {
        let (status, body) = get(&format!("{url}/readyz")).await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            return Some(body);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// worker.rs / batch.rs: a commit that cannot be applied fails its whole fetched batch, so the
/// valid commits before it in that batch are never applied — the projection stalls up to
/// BATCH_SIZE − 1 commits short, at a point that depends on batch boundaries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_applies_every_commit_before_the_bad_one() {
    let nats = NatsServer::start();
    let db = TestDatabase::create();
    let (_client, _, mut publisher) = stream_with_two_units(&nats).await;
    let bad = publisher
        .raw("events.unit.so-hong", b"not json".to_vec())
        .await;
    publisher.flush().await;
    let projector = InProcessProjector::start(&projector_config(&nats, &db.url(), "", 10)).await;
    wait_until_not_ready(&projector.url).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut conn = connect(&db.url()).await;
    assert_eq!(checkpoint(&mut conn, "core").await, Some(bad - 1));
    assert_eq!(checkpoint(&mut conn, "audit").await, Some(bad - 1));
    projector.stop().await;
}

/// A history the command API accepts: a unit added to a group, removed from the same day (added
/// by mistake), added again from that day. group_members' key (group_id, unit_id, valid_from)
/// cannot hold both stretches, the insert fails with a unique violation, and batch.rs treats
/// every database error as transient: the projector retries forever, `/readyz` stays 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_removed_and_added_again_from_the_same_day_is_projected() {
    let nats = NatsServer::start();
    let db = TestDatabase::create();
    let service = CommandService::start(&nats).await;
    let mut api = Api::new(&service);
    let office = who("vp.nguyen-thi-hoa", Role::ProvinceOffice, None);
    api.post("register-unit", &office, None,
        json!({ "unit_id": "ubnd-huyen-nga-son", "name": "UBND huyện Nga Sơn", "kind": "district_committee" }))
        .await;
    api.post(
        "define-group",
        &office,
        None,
        json!({ "group_id": "ubnd-cac-huyen", "name": "UBND các huyện, thị xã, thành phố" }),
    )
    .await;
    let member = json!({ "group_id": "ubnd-cac-huyen", "unit_id": "ubnd-huyen-nga-son", "from": "2025-05-01" });
    api.post("add-group-member", &office, None, member.clone())
        .await;
    let mut removal = member.clone();
    removal["reason"] = json!("Thêm nhầm");
    api.post("remove-group-member", &office, None, removal)
        .await;
    let last = api.post("add-group-member", &office, None, member).await;

    let projector = InProcessProjector::start(&projector_config(&nats, &db.url(), "", 10)).await;
    let mut conn = connect(&db.url()).await;
    let started = Instant::now();
    while checkpoint(&mut conn, "core").await < Some(last) {
        let stall = get(&format!("{}/readyz", projector.url)).await.1;
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "core stuck at {:?} of {last}; /readyz: {stall}",
            checkpoint(&mut conn, "core").await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stretches = rows(
        &mut conn,
        "SELECT valid_from, valid_until FROM core.group_members",
        "valid_until NULLS LAST",
    )
    .await;
    assert_eq!(
        stretches,
        [
            json!({ "valid_from": "2025-05-01", "valid_until": "2025-05-01" }),
            json!({ "valid_from": "2025-05-01", "valid_until": null }),
        ]
    );
    projector.stop().await;
    service.shutdown().await;
}

/// batch.rs `is_transient`: an integrity-constraint violation is not transient — retrying the
/// same commit can never succeed — yet it is retried forever instead of stalling visibly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_violating_a_constraint_stalls_visibly() {
    let nats = NatsServer::start();
    let db = TestDatabase::create();
    let (_client, js) = jetstream(&nats).await;
    provision(&js).await;
    let mut publisher = Publisher::new(&js, 0);
    let (target, event) = registered("so-tai-chinh", "Sở Tài chính");
    publisher
        .commit(&target, &[event], &meta("register-unit", Utc::now()))
        .await;
    // The same unit registered again under another subject spelling would be refused by the
    // command side; straight on the stream it reaches the projector as a duplicate key.
    let (_, event) = registered("so-tai-chinh", "Sở Tài chính");
    let mut envelope =
        event_store::CloudEvent::new(&target, &event, &meta("register-unit", Utc::now()));
    // Properly chained, so that what stops the projection is the constraint, not the chain.
    publisher.seal(&target, std::slice::from_mut(&mut envelope));
    let duplicate = publisher
        .raw(
            "events.unit.so-tai-chinh-2",
            serde_json::to_vec(&[envelope]).expect("json"),
        )
        .await;
    publisher.flush().await;
    let projector = InProcessProjector::start(&projector_config(&nats, &db.url(), "", 10)).await;
    let body = not_ready_within(&projector.url, Duration::from_secs(15))
        .await
        .expect("a stall shows on /readyz");
    assert_eq!(
        body["projections"]["core"]["stalled"]["sequence"],
        json!(duplicate)
    );
    projector.stop().await;
}

/// status.rs / worker.rs: the checkpoint `/readyz` and `kh63_projector_checkpoint` report is
/// only set when a batch is applied, so a projector restarted with nothing new to apply reports
/// checkpoint 0 (and no checkpoint metric) until the next command arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_reports_the_checkpoint_after_a_restart_with_nothing_new() {
    let nats = NatsServer::start();
    let db = TestDatabase::create();
    let (_client, js) = jetstream(&nats).await;
    provision(&js).await;
    let mut publisher = Publisher::new(&js, 0);
    let (target, event) = registered("so-tai-chinh", "Sở Tài chính");
    let head = publisher
        .commit(&target, &[event], &meta("register-unit", Utc::now()))
        .await;
    publisher.flush().await;
    let config = projector_config(&nats, &db.url(), "", 10);
    let first = InProcessProjector::start(&config).await;
    let mut conn = connect(&db.url()).await;
    wait_for_checkpoints(&mut conn, "", head).await;
    first.stop().await;

    let second = InProcessProjector::start(&config).await;
    // Give the lag watcher (every second) time to fill in the projections.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let (status, body) = get(&format!("{}/readyz", second.url)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["projections"]["core"]["checkpoint"],
        json!(head),
        "{body}"
    );
    assert_eq!(
        body["projections"]["audit"]["checkpoint"],
        json!(head),
        "{body}"
    );
    let metrics = get_text(&format!("{}/metrics", second.url)).await.1;
    assert!(
        metrics.contains(&format!(
            "kh63_projector_checkpoint{{projection=\"core\"}} {head}"
        )),
        "{metrics}"
    );
    second.stop().await;
}

/// reporting_compliance_at(t) (migrations/core/0001_core.sql) joins every report whatever its
/// submission instant, so "seen at t" counts reports sent after t: before the due instant a
/// report sent later already shows "late", and one sent on time shows "on_time" before it was
/// sent. Reports with first_submitted_at > t should not count (→ "pending").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compliance_at_t_counts_only_reports_submitted_by_t() {
    let nats = NatsServer::start();
    let db = TestDatabase::create();
    let (_head, service) = scripted(&nats, &db).await;
    let mut conn = connect(&db.url()).await;
    let pending = |units: &[&str]| {
        units
            .iter()
            .map(|u| ((*u).to_owned(), "pending".to_owned()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        q2_compliance(&mut conn, Some("2025-06-10T00:00:00+07:00")).await,
        pending(&[ON_TIME, SILENT, UTC_14TH, AT_DUE])
    );
    let just_before = q2_compliance(&mut conn, Some(JUST_BEFORE_DUE)).await;
    assert_eq!(
        just_before,
        [
            (ON_TIME.to_owned(), "on_time".to_owned()),
            (SILENT.to_owned(), "pending".to_owned()),
            (UTC_14TH.to_owned(), "pending".to_owned()),
            (AT_DUE.to_owned(), "pending".to_owned()),
        ]
    );
    service.shutdown().await;
}

/// core.rs `report()` held a report's aggregate id to the one its plan, unit and quarter derive
/// with a `debug_assert_eq!` only: a debug build panicked (the worker died), a release build
/// applied the report under the wrong id. In every build the projection must stop at that
/// commit, with the commits before it applied and a reason that names the mismatch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_filed_under_another_id_stops_the_projection_at_it() {
    let nats = NatsServer::start();
    let db = TestDatabase::create();
    let (_client, js) = jetstream(&nats).await;
    provision(&js).await;
    let mut publisher = Publisher::new(&js, 0);
    let (target, event) = registered("so-tai-chinh", "Sở Tài chính");
    let before = publisher
        .commit(&target, &[event], &meta("register-unit", Utc::now()))
        .await;
    let plan = PlanId::new("kh-63-2025").expect("plan");
    let unit = UnitId::new("so-tai-chinh").expect("unit");
    let quarter = Quarter::new(2025, 2).expect("quarter");
    let derived = report_id(&plan, &unit, quarter);
    let event = Event::Report(ReportEvent::Submitted {
        plan_id: plan,
        unit_id: unit,
        quarter,
        lines: vec![ReportLine {
            item_id: ItemId::new("kh-63-2025-01").expect("item"),
            progress: remediation_domain::text::Text::new("Đã triển khai").expect("text"),
            status: None,
        }],
        submitted_at: Utc::now(),
    });
    // Filed under a report id that is not the one plan, unit and quarter derive.
    let target =
        AggregateRef::Report(remediation_domain::text::ReportId::new("bao-cao-khac").expect("id"));
    let sequence = publisher
        .commit(&target, &[event], &meta("submit-report", Utc::now()))
        .await;
    publisher.flush().await;
    let projector = InProcessProjector::start(&projector_config(&nats, &db.url(), "", 10)).await;
    let body = wait_until_not_ready(&projector.url).await;
    let stalled = &body["projections"]["core"]["stalled"];
    assert_eq!(stalled["sequence"], json!(sequence), "{body}");
    let reason = stalled["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("bao-cao-khac") && reason.contains(derived.as_str()),
        "{reason}"
    );
    let mut conn = connect(&db.url()).await;
    assert_eq!(checkpoint(&mut conn, "core").await, Some(before));
    let reports = rows(&mut conn, "SELECT report_id FROM core.reports", "report_id").await;
    assert_eq!(reports, Vec::<serde_json::Value>::new());
    projector.stop().await;
}

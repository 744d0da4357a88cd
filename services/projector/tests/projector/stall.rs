//! A commit a projection cannot apply stops that projection where it is, visibly: `/readyz`
//! answers 503 with the stream sequence and the reason, `/metrics` shows the stall.

use std::time::{Duration, Instant};

use chrono::Utc;
use remediation_domain::Event;
use remediation_domain::text::{Name, UnitId};
use remediation_domain::unit::UnitEvent;
use reqwest::StatusCode;
use serde_json::{Value, json};
use test_support::{NatsServer, TestDatabase};

use crate::harness::*;

/// Polls `/readyz` until it answers 503; returns its body.
pub async fn wait_until_not_ready(url: &str) -> Value {
    let started = Instant::now();
    loop {
        let (status, body) = get(&format!("{url}/readyz")).await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            return body;
        }
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(started.elapsed() < PATIENCE, "never became unready: {body}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_in_the_stream_stalls_both_projections_visibly_and_nothing_is_skipped() {
    let nats = NatsServer::start();
    let db = TestDatabase::create();
    let (_client, _, mut publisher) = stream_with_two_units(&nats).await;
    let bad = publisher
        .raw(
            "events.unit.so-hong",
            b"{\"specversion\": \"1.0\", \"id\": ".to_vec(),
        )
        .await;
    let (target, event) = registered("so-xay-dung", "Sở Xây dựng");
    publisher
        .commit(&target, &[event], &meta("register-unit", Utc::now()))
        .await;
    publisher.flush().await;
    assert_eq!(bad, 3);

    let projector = InProcessProjector::start(&projector_config(&nats, &db.url(), "", 10)).await;
    let mut body = wait_until_not_ready(&projector.url).await;
    // Both projections decode the commit, so both stop at it; wait until both said so.
    let started = Instant::now();
    while body["projections"]["audit"]["stalled"].is_null()
        || body["projections"]["core"]["stalled"].is_null()
    {
        assert!(started.elapsed() < PATIENCE, "{body}");
        tokio::time::sleep(Duration::from_millis(25)).await;
        body = get(&format!("{}/readyz", projector.url)).await.1;
    }
    assert_eq!(body["status"], "not_ready", "{body}");
    for projection in ["core", "audit"] {
        let stalled = &body["projections"][projection]["stalled"];
        assert_eq!(stalled["sequence"], json!(bad), "{body}");
        let reason = stalled["reason"].as_str().expect("a reason");
        assert!(reason.contains("stream sequence 3"), "{reason}");
    }

    let (status, metrics) = get_text(&format!("{}/metrics", projector.url)).await;
    assert_eq!(status, StatusCode::OK);
    for projection in ["core", "audit"] {
        assert_eq!(
            metric(&metrics, "kh63_projector_stalled", projection).as_deref(),
            Some("1"),
            "{metrics}"
        );
        assert_eq!(
            metric(&metrics, "kh63_projector_stalled_sequence", projection).as_deref(),
            Some("3"),
            "{metrics}"
        );
    }

    // Stopped before it, and nothing after it is applied: the checkpoint never reaches or
    // skips the bad commit, and the rows are those of the checkpoint. (Where exactly before it
    // depends on the batch boundaries: see regressions::projection.)
    let mut conn = connect(&db.url()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for schema in ["core", "audit"] {
        let at = checkpoint(&mut conn, schema).await.expect("checkpoint");
        assert!(at < bad, "{schema} went past the bad commit: {at}");
    }
    let applied = checkpoint(&mut conn, "core").await.expect("checkpoint");
    let units: Vec<String> = sqlx::query_scalar("SELECT unit_id FROM core.units ORDER BY 1")
        .fetch_all(&mut conn)
        .await
        .expect("units");
    let expected = ["so-tai-chinh", "so-y-te"][..applied as usize]
        .iter()
        .map(|u| (*u).to_owned())
        .collect::<Vec<_>>();
    assert_eq!(
        units, expected,
        "the rows of commits 1..={applied}, nothing after"
    );
    projector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_event_type_stalls_core_while_audit_records_it_and_goes_on() {
    let nats = NatsServer::start();
    let db = TestDatabase::create();
    let (_client, js) = jetstream(&nats).await;
    provision(&js).await;
    let mut publisher = Publisher::new(&js, 0);
    let (target, event) = registered("so-tai-chinh", "Sở Tài chính");
    publisher
        .commit(&target, &[event], &meta("register-unit", Utc::now()))
        .await;
    let unknown = publisher.unknown_type("so-moi", "Sở Mới").await;
    let (target, event) = registered("so-y-te", "Sở Y tế");
    let last = publisher
        .commit(&target, &[event], &meta("register-unit", Utc::now()))
        .await;
    publisher.flush().await;

    let projector = InProcessProjector::start(&projector_config(&nats, &db.url(), "", 10)).await;
    let body = wait_until_not_ready(&projector.url).await;
    let stalled = &body["projections"]["core"]["stalled"];
    assert_eq!(stalled["sequence"], json!(unknown), "{body}");
    assert!(
        stalled["reason"]
            .as_str()
            .expect("reason")
            .contains("teleported"),
        "{body}"
    );
    let mut conn = connect(&db.url()).await;
    // The audit projection does not decode payloads: it records the event and carries on.
    wait_for_audit(&mut conn, last).await;
    let types: Vec<String> =
        sqlx::query_scalar("SELECT event_type FROM audit.audit_log ORDER BY stream_sequence")
            .fetch_all(&mut conn)
            .await
            .expect("audit");
    assert_eq!(types[1], UNKNOWN_TYPE);
    assert_eq!(types.len(), 3);
    let core = checkpoint(&mut conn, "core").await.expect("checkpoint");
    assert!(core < unknown, "core went past the unknown event: {core}");
    let units: i64 = sqlx::query_scalar("SELECT count(*) FROM core.units")
        .fetch_one(&mut conn)
        .await
        .expect("units");
    assert_eq!(
        units as u64, core,
        "one unit per applied commit, none after the stall"
    );

    let body = get(&format!("{}/readyz", projector.url)).await.1;
    assert!(body["projections"]["audit"]["stalled"].is_null(), "{body}");
    let metrics = get_text(&format!("{}/metrics", projector.url)).await.1;
    assert_eq!(
        metric(&metrics, "kh63_projector_stalled", "core").as_deref(),
        Some("1")
    );
    assert_eq!(
        metric(&metrics, "kh63_projector_stalled_sequence", "core"),
        Some(unknown.to_string())
    );
    assert_ne!(
        metric(&metrics, "kh63_projector_stalled", "audit").as_deref(),
        Some("1")
    );
    projector.stop().await;
}

async fn wait_for_audit(conn: &mut sqlx::PgConnection, target: u64) {
    let started = Instant::now();
    while checkpoint(conn, "audit").await < Some(target) {
        assert!(started.elapsed() < PATIENCE, "audit never reached {target}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// An event published straight to a subject, bypassing the command service, does not carry the
/// aggregate's hash chain: both projections refuse it loudly and apply nothing from it on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_event_outside_the_chain_stalls_both_projections() {
    let nats = NatsServer::start();
    let db = TestDatabase::create();
    let (_client, js) = jetstream(&nats).await;
    provision(&js).await;
    let mut publisher = Publisher::new(&js, 0);
    let (target, event) = registered("so-tai-chinh", "Sở Tài chính");
    publisher
        .commit(&target, &[event], &meta("register-unit", Utc::now()))
        .await;
    // A rename of the same unit that never went through the command service: unlinked.
    let forged_event = Event::Unit(UnitEvent::Renamed {
        from: Name::new("Sở Tài chính").expect("name"),
        to: Name::new("Sở Tài chính giả mạo").expect("name"),
        reason: remediation_domain::text::Reason::new("Giả mạo").expect("reason"),
    });
    let forged =
        event_store::CloudEvent::new(&target, &forged_event, &meta("rename-unit", Utc::now()));
    let sequence = publisher
        .raw(
            "events.unit.so-tai-chinh",
            serde_json::to_vec(&[forged]).expect("json"),
        )
        .await;
    publisher.flush().await;

    let projector = InProcessProjector::start(&projector_config(&nats, &db.url(), "", 10)).await;
    let started = Instant::now();
    let body = loop {
        let body = wait_until_not_ready(&projector.url).await;
        if !body["projections"]["core"]["stalled"].is_null()
            && !body["projections"]["audit"]["stalled"].is_null()
        {
            break body;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for projection in ["core", "audit"] {
        let stalled = &body["projections"][projection]["stalled"];
        assert_eq!(stalled["sequence"], json!(sequence), "{body}");
        let reason = stalled["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains("unit/so-tai-chinh") && reason.contains("hash"),
            "{reason}"
        );
    }
    let mut conn = connect(&db.url()).await;
    let name: String =
        sqlx::query_scalar("SELECT name FROM core.units WHERE unit_id = 'so-tai-chinh'")
            .fetch_one(&mut conn)
            .await
            .expect("unit");
    assert_eq!(name, "Sở Tài chính", "the forged rename was not applied");
    let _ = UnitId::new("so-tai-chinh");
}

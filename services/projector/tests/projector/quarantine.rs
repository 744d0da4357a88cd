//! Issue 8: a message that breaks the record — an event forged outside its aggregate's hash
//! chain, or a message on a subject outside the catalogue — stops both projections, and they
//! stay stopped until an auditor's quarantine decision for exactly that message is on the
//! stream. Then both continue past it, the audit projection records it as quarantined, the
//! verification reports it as a signed-off break, and a rebuild comes out the same.

use std::num::NonZeroU64;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use chrono::Utc;
use command_app::handler::CommandRequest;
use command_app::outcome::CommandError;
use command_app::quarantine::{QuarantineError, QuarantineRequest, quarantine};
use event_store::{StoreError, message_digest, verify_stream};
use projector::worker::QUARANTINE_POLL;
use readmodel::{Projection, verify_audit};
use remediation_domain::quarantine::{MessageSubject, QuarantineMessage};
use remediation_domain::text::{Name, Reason};
use remediation_domain::unit::UnitEvent;
use remediation_domain::{Actor, Command, Event, Principal, Rejection, Role, Rule};
use reqwest::StatusCode;
use serde_json::json;
use sqlx::{Connection, PgConnection};
use test_support::{NatsServer, TestDatabase};

use crate::harness::*;

const AUDITOR: &str = "kiem-toan.le-van-an";
const REASON: &str = "Thông điệp không do dịch vụ lệnh ghi (phát hiện khi dự án dừng); đã đối chiếu, không thuộc hồ sơ";

/// The connection tests publish straight to the stream with — the one place to give it the
/// identity allowed to, once NATS asks for credentials.
async fn publishing_connection(nats: &NatsServer) -> (async_nats::Client, jetstream::Context) {
    jetstream(nats).await
}

/// What breaks the record in a scenario.
#[derive(Debug, Clone, Copy)]
enum Bad {
    /// A rename of a registered unit published straight to its subject, outside its chain.
    Forged,
    /// Bytes that are no commit (nor UTF-8), on a subject no aggregate of the catalogue has.
    OutsideTheCatalogue,
}

/// The bad message as published.
struct Published {
    sequence: u64,
    subject: String,
    payload: Vec<u8>,
}

/// Two units registered, the bad message, then a third unit: returns the bad message.
async fn history(js: &jetstream::Context, bad: Bad) -> Published {
    let mut publisher = Publisher::after_two_units(js).await;
    let (subject, payload) = match bad {
        Bad::Forged => {
            let (target, _) = registered("so-tai-chinh", "Sở Tài chính");
            let rename = Event::Unit(UnitEvent::Renamed {
                from: Name::new("Sở Tài chính").expect("name"),
                to: Name::new("Sở Tài chính giả mạo").expect("name"),
                reason: Reason::new("Giả mạo").expect("reason"),
            });
            let forged =
                event_store::CloudEvent::new(&target, &rename, &meta("rename-unit", Utc::now()));
            (
                "events.unit.so-tai-chinh".to_owned(),
                serde_json::to_vec(&[forged]).expect("json"),
            )
        }
        Bad::OutsideTheCatalogue => ("events.bogus.1".to_owned(), b"\x00\xffping\n".to_vec()),
    };
    let sequence = publisher.raw(&subject, payload.clone()).await;
    let (target, event) = registered("so-xay-dung", "Sở Xây dựng");
    publisher
        .commit(&target, &[event], &meta("register-unit", Utc::now()))
        .await;
    publisher.flush().await;
    Published {
        sequence,
        subject,
        payload,
    }
}

/// The stop recorded for the query service next to each checkpoint: (core, audit).
async fn recorded_stops(conn: &mut PgConnection) -> (Option<i64>, Option<i64>) {
    sqlx::query_as(
        "SELECT (SELECT stalled_sequence FROM core.checkpoints), (SELECT stalled_sequence FROM audit.checkpoints)",
    )
    .fetch_one(conn)
    .await
    .unwrap_or((None, None))
}

/// Waits until both projections recorded their stop at `sequence`.
async fn wait_until_stopped_at(conn: &mut PgConnection, sequence: u64) {
    let started = Instant::now();
    let at = Some(sequence as i64);
    while recorded_stops(conn).await != (at, at) {
        assert!(started.elapsed() < PATIENCE, "never stopped at {sequence}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Both projections are stopped just before `bad` and say so: in the database, on `/readyz`.
async fn assert_stopped_at(conn: &mut PgConnection, projector: &InProcessProjector, bad: u64) {
    assert_eq!(
        recorded_stops(conn).await,
        (Some(bad as i64), Some(bad as i64))
    );
    for schema in ["core", "audit"] {
        assert_eq!(checkpoint(conn, schema).await, Some(bad - 1), "{schema}");
    }
    let (status, body) = get(&format!("{}/readyz", projector.url)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    for projection in ["core", "audit"] {
        assert_eq!(
            body["projections"][projection]["stalled"]["sequence"],
            json!(bad),
            "{body}"
        );
    }
}

/// Long enough for a stopped projection to have looked for a decision more than once.
async fn let_the_projector_look_again() {
    tokio::time::sleep(QUARANTINE_POLL * 2 + Duration::from_millis(500)).await;
}

async fn a_message_that_breaks_the_record_stays_stopped_until_it_is_quarantined(bad: Bad) {
    let nats = NatsServer::start();
    let db = TestDatabase::create();
    let (_client, js) = publishing_connection(&nats).await;
    provision(&js).await;
    let published = history(&js, bad).await;
    let bad_at = published.sequence;
    assert_eq!(bad_at, 3);
    let stream = js.get_stream(STREAM).await.expect("stream");
    let service = CommandService::start(&nats).await;
    let mut api = Api::new(&service);
    let office = who("vp.nguyen-thi-hoa", Role::ProvinceOffice, None);

    // Both projections stop at the message and stay stopped without a decision.
    let projector = InProcessProjector::start(&projector_config(&nats, &db.url(), "", 10)).await;
    let mut conn = connect(&db.url()).await;
    wait_until_stopped_at(&mut conn, bad_at).await;
    let_the_projector_look_again().await;
    assert_stopped_at(&mut conn, &projector, bad_at).await;
    let walked = verify_stream(&stream).await.expect("walk");
    assert_eq!(walked.broken.as_ref().map(|b| b.sequence), Some(bad_at));
    if let Bad::Forged = bad {
        // The tampered unit takes no command while the break stands: its next event would link
        // onto a chain the read side does not hold.
        let error = api
            .send(
                "rename-unit",
                &office,
                None,
                &json!({ "unit_id": "so-tai-chinh", "name": "Sở Tài chính tỉnh Thanh Hóa", "reason": "Theo quyết định của UBND tỉnh" }),
            )
            .await
            .expect_err("no command onto a broken chain");
        // An unreadable commit, which the command service answers with 500.
        assert!(
            matches!(error, CommandError::Store(StoreError::Corrupt { .. })),
            "{error}"
        );
        let detail = error.to_string();
        assert!(
            detail.contains("stream sequence 3") && detail.contains("no quarantine decision"),
            "{detail}"
        );
    }

    // An auditor sets it aside, with the function `remediation-admin quarantine` calls.
    let request = QuarantineRequest {
        sequence: bad_at,
        reason: REASON.to_owned(),
        user: AUDITOR.to_owned(),
    };
    let (inspection, answer) = quarantine(&service.handler, &stream, &request)
        .await
        .expect("quarantined");
    let digest = message_digest(&published.subject, &published.payload);
    assert!(answer.changed, "{answer:?}");
    assert_eq!(inspection.digest, digest);
    assert_eq!(inspection.message.subject, published.subject);
    assert_eq!(inspection.message.payload.as_ref(), published.payload);
    let expected_problem = match bad {
        Bad::Forged => "prevhash does not match",
        Bad::OutsideTheCatalogue => "is unreadable",
    };
    assert!(
        inspection.problem.contains(expected_problem),
        "{}",
        inspection.problem
    );
    let decision = answer.stream_sequence;
    assert_eq!(decision, 5);
    // The same decision again changes nothing.
    let (_, again) = quarantine(&service.handler, &stream, &request)
        .await
        .expect("repeated");
    assert!(!again.changed, "{again:?}");

    // Both projections continue past it, the stop is cleared, and later commands are applied.
    wait_for_checkpoints(&mut conn, "", decision).await;
    assert_eq!(recorded_stops(&mut conn).await, (None, None));
    let (status, body) = get(&format!("{}/readyz", projector.url)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let metrics = get_text(&format!("{}/metrics", projector.url)).await.1;
    for projection in ["core", "audit"] {
        assert_eq!(
            metric(&metrics, "kh63_projector_quarantined_total", projection).as_deref(),
            Some("1"),
            "{metrics}"
        );
        assert_eq!(
            metric(&metrics, "kh63_projector_stalled", projection).as_deref(),
            Some("0"),
            "{metrics}"
        );
    }
    let units: Vec<(String, String)> =
        sqlx::query_as("SELECT unit_id, name FROM core.units ORDER BY unit_id")
            .fetch_all(&mut conn)
            .await
            .expect("units");
    assert_eq!(
        units,
        [
            ("so-tai-chinh", "Sở Tài chính"),
            ("so-xay-dung", "Sở Xây dựng"),
            ("so-y-te", "Sở Y tế")
        ]
        .map(|(id, name)| (id.to_owned(), name.to_owned())),
        "nothing of the quarantined message, everything after it"
    );
    api.post(
        "register-unit",
        &office,
        None,
        json!({ "unit_id": "so-cong-thuong", "name": "Sở Công Thương", "kind": "department" }),
    )
    .await;
    // A command on the unit the forgery named links where the read side expects it.
    let last = api
        .post(
            "rename-unit",
            &office,
            None,
            json!({ "unit_id": "so-tai-chinh", "name": "Sở Tài chính tỉnh Thanh Hóa", "reason": "Theo quyết định của UBND tỉnh" }),
        )
        .await;
    wait_for_checkpoints(&mut conn, "", last).await;
    let renamed: String =
        sqlx::query_scalar("SELECT name FROM core.units WHERE unit_id = 'so-tai-chinh'")
            .fetch_one(&mut conn)
            .await
            .expect("unit");
    assert_eq!(renamed, "Sở Tài chính tỉnh Thanh Hóa");
    assert_eq!(recorded_stops(&mut conn).await, (None, None), "no new stop");

    // The audit trail: the message as quarantined at its position, who, why, its digest and
    // payload; the decision as an event; every sequence accounted for.
    let quarantined = rows(
        &mut conn,
        "SELECT stream_sequence, subject, digest, size, payload_encoding, payload, reason,
                decided_by, decided_role, decision_sequence FROM audit.quarantined_messages",
        "stream_sequence",
    )
    .await;
    let (encoding, payload) = match bad {
        Bad::Forged => (
            "utf-8",
            String::from_utf8(published.payload.clone()).expect("JSON"),
        ),
        // base64 of 00 ff "ping" LF
        Bad::OutsideTheCatalogue => ("base64", "AP9waW5nCg==".to_owned()),
    };
    assert_rows(
        "audit.quarantined_messages",
        &quarantined,
        &[json!({
            "stream_sequence": bad_at, "subject": published.subject, "digest": digest,
            "size": published.payload.len(), "payload_encoding": encoding, "payload": payload,
            "reason": REASON, "decided_by": AUDITOR, "decided_role": "auditor",
            "decision_sequence": decision,
        })],
    );
    let decided = rows(
        &mut conn,
        "SELECT stream_sequence, event_type, aggregate_id, actor_user, actor_role, payload->>'digest' AS digest
         FROM audit.audit_log WHERE aggregate_type = 'quarantine'",
        "stream_sequence",
    )
    .await;
    assert_rows(
        "the decision in audit.audit_log",
        &decided,
        &[json!({
            "stream_sequence": decision,
            "event_type": "vn.gov.thanhhoa.remediation.quarantine.message_quarantined.v1",
            "aggregate_id": bad_at.to_string(), "actor_user": AUDITOR, "actor_role": "auditor",
            "digest": digest,
        })],
    );
    let positions: Vec<i64> = sqlx::query_scalar(
        "SELECT stream_sequence FROM audit.audit_log
         UNION ALL SELECT stream_sequence FROM audit.quarantined_messages ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .expect("positions");
    assert_eq!(positions, (1..=last as i64).collect::<Vec<_>>());

    // Verification: the break is known and signed off, nothing else is broken.
    let walked = verify_stream(&stream).await.expect("walk");
    assert_eq!(walked.broken, None);
    assert_eq!(walked.last_sequence, last);
    assert_eq!(
        walked.commits,
        last - 1,
        "the quarantined message is no commit"
    );
    let [known] = walked.quarantined.as_slice() else {
        panic!("one signed-off break: {:?}", walked.quarantined);
    };
    assert_eq!(
        (
            known.decision.sequence,
            known.decision.decision_sequence,
            known.decision.digest.as_str(),
            known.decision.reason.as_str(),
            known.decision.decided_by.as_str(),
        ),
        (bad_at, decision, digest.as_str(), REASON, AUDITOR)
    );
    assert!(known.broken.reason.contains(expected_problem), "{known:?}");
    let mut tx = conn
        .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .expect("snapshot");
    let table = verify_audit(&mut tx, "audit", &walked, |_| {})
        .await
        .expect("table walk");
    tx.rollback().await.expect("end");
    assert_eq!(table.broken, None);
    assert_eq!(table.quarantined, 1);
    assert_eq!(table.rows, walked.events_up_to(table.checkpoint));

    // A rebuild of both projections meets the message and the same decision: equal tables.
    projector.stop().await;
    let live = all_checksums(&mut conn, "").await;
    assert_eq!(live["audit.quarantined_messages"].0, 1);
    let pool = projector::connect_database(&db.url()).await.expect("pool");
    for projection in Projection::ALL {
        let rebuilt =
            projector::rebuild::rebuild(&pool, &stream, projection, projection.name(), 2, |_| {})
                .await
                .expect("rebuilt");
        assert_eq!(rebuilt, last);
    }
    assert_eq!(all_checksums(&mut conn, "").await, live);
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_event_stays_stopped_until_an_auditor_quarantines_it_then_all_continue() {
    a_message_that_breaks_the_record_stays_stopped_until_it_is_quarantined(Bad::Forged).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_outside_the_catalogue_stays_stopped_until_quarantined_then_all_continue() {
    a_message_that_breaks_the_record_stays_stopped_until_it_is_quarantined(
        Bad::OutsideTheCatalogue,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_naming_another_digest_releases_nothing() {
    let nats = NatsServer::start();
    let db = TestDatabase::create();
    let (_client, js) = publishing_connection(&nats).await;
    provision(&js).await;
    let published = history(&js, Bad::Forged).await;
    let stream = js.get_stream(STREAM).await.expect("stream");
    let service = CommandService::start(&nats).await;
    // A decision for the sequence, but about other bytes than the ones stored there.
    let other = message_digest(&published.subject, b"[]");
    let answer = service
        .handler
        .handle(CommandRequest {
            command: Command::QuarantineMessage(QuarantineMessage {
                sequence: NonZeroU64::new(published.sequence).expect("non-zero"),
                subject: MessageSubject::new(&published.subject).expect("subject"),
                digest: other.clone(),
                size: published.payload.len() as u64,
                reason: Reason::new(REASON).expect("reason"),
            }),
            principal: Principal::from(Actor {
                user: AUDITOR.to_owned(),
                unit: None,
                role: Role::Auditor,
            }),
            correlation_id: None,
            causation_id: None,
            effective_at: None,
            idempotency: None,
        })
        .await
        .expect("recorded")
        .settled
        .expect("decided");
    let decision = answer.stream_sequence;

    let projector = InProcessProjector::start(&projector_config(&nats, &db.url(), "", 10)).await;
    let mut conn = connect(&db.url()).await;
    wait_until_stopped_at(&mut conn, published.sequence).await;
    let_the_projector_look_again().await;
    assert_stopped_at(&mut conn, &projector, published.sequence).await;
    let walked = verify_stream(&stream).await.expect("walk");
    let broken = walked.broken.expect("still broken");
    assert_eq!(broken.sequence, published.sequence);
    assert!(
        broken.reason.contains(&format!(
            "the quarantine decision at stream sequence {decision} does not hold"
        )) && broken.reason.contains(&other),
        "{}",
        broken.reason
    );
    assert!(walked.quarantined.is_empty());
    // Nor is a decision, once taken, replaced by another.
    let refused = quarantine(
        &service.handler,
        &stream,
        &QuarantineRequest {
            sequence: published.sequence,
            reason: REASON.to_owned(),
            user: AUDITOR.to_owned(),
        },
    )
    .await
    .expect_err("a decision is not changed");
    assert!(
        matches!(
            refused,
            QuarantineError::Refused(Rejection::Rule {
                rule: Rule::QuarantineConflict,
                ..
            })
        ),
        "{refused}"
    );
    let_the_projector_look_again().await;
    assert_stopped_at(&mut conn, &projector, published.sequence).await;
    projector.stop().await;
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_message_or_one_after_an_earlier_break_is_not_quarantined() {
    let nats = NatsServer::start();
    let (_client, js) = publishing_connection(&nats).await;
    provision(&js).await;
    let published = history(&js, Bad::OutsideTheCatalogue).await;
    let stream = js.get_stream(STREAM).await.expect("stream");
    let service = CommandService::start(&nats).await;
    let request = |sequence: u64| QuarantineRequest {
        sequence,
        reason: REASON.to_owned(),
        user: AUDITOR.to_owned(),
    };
    let valid = quarantine(&service.handler, &stream, &request(2))
        .await
        .expect_err("nothing to sign off");
    assert!(matches!(valid, QuarantineError::Valid(2)), "{valid}");
    let later = quarantine(&service.handler, &stream, &request(4))
        .await
        .expect_err("the stream breaks earlier");
    assert!(
        matches!(&later, QuarantineError::EarlierBreak(b) if b.sequence == published.sequence),
        "{later}"
    );
    let missing = quarantine(&service.handler, &stream, &request(99))
        .await
        .expect_err("no such message");
    assert!(
        matches!(missing, QuarantineError::NoMessage(99)),
        "{missing}"
    );
    // Nothing was recorded.
    assert_eq!(stream_head(&js).await, 4);
    service.shutdown().await;
}

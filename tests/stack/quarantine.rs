//! Issue 8: a message an auditor set aside with a quarantine decision, as the query service shows
//! it — an entry of the audit trail at its own stream position, marked quarantined (who, why,
//! digest, the payload as stored), paged and filtered with the events; and a known, signed-off
//! break in the verification, which is otherwise `ok`.

use std::time::Duration;

use async_nats::jetstream;
use command_app::quarantine::{QuarantineRequest, quarantine};

use super::*;

const AUDITOR: &str = "kiem-toan.tran-thi-mai";
const REASON: &str = "Tin nhắn thử nghiệm của bộ phận vận hành gửi nhầm vào luồng sự kiện";
const SUBJECT: &str = "events.bogus.1";
const PAYLOAD: &str = "{\"ping\": 1}";

/// The connection the test publishes straight to the stream with — the one place to give it the
/// identity allowed to, once NATS asks for credentials.
async fn publishing_connection(stack: &Stack) -> (async_nats::Client, jetstream::Context) {
    let client = stack.nats.connect(Identity::Admin).await;
    (client.clone(), jetstream::new(client))
}

/// Waits until `/readyz` answers `status` with both projections `stalled` as asked.
async fn readiness(stack: &Stack, status: StatusCode, stalled: bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let reply = stack.get("/readyz", None).await;
        let projections = if stalled {
            reply.body["detail"].as_str().is_some_and(|d| {
                d.contains("the core projection stopped")
                    && d.contains("the audit projection stopped")
            })
        } else {
            true
        };
        if reply.status == status && projections {
            return reply.body;
        }
        assert!(Instant::now() < deadline, "{}", reply.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every entry of the audit trail with `query`, page by page (`limit` each; every page is itself
/// recorded as a read, so an unfiltered walk must read more than one entry per page to end).
async fn trail(stack: &Stack, token: &str, query: &str, limit: u32) -> Vec<Value> {
    let mut entries = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let after = cursor
            .as_ref()
            .map_or_else(String::new, |c| format!("&cursor={c}"));
        let page = stack
            .read(&format!("/v1/audit?limit={limit}{query}{after}"), token)
            .await;
        entries.extend(page["entries"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return entries,
        }
    }
}

#[tokio::test]
async fn a_quarantined_message_is_in_the_trail_at_its_place_and_a_signed_off_break_in_verification()
{
    let stack = Stack::start().await;
    let head = stack.settle().await;
    let before = Utc::now() - chrono::Duration::seconds(1);
    let (client, js) = publishing_connection(&stack).await;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Content-Type", event_store::BATCH_CONTENT_TYPE);
    let bad = js
        .publish_with_headers(SUBJECT, headers, PAYLOAD.as_bytes().to_vec().into())
        .await
        .expect("publish")
        .await
        .expect("stored")
        .sequence;
    client.flush().await.expect("flush");
    assert_eq!(bad, head + 1);
    readiness(&stack, StatusCode::SERVICE_UNAVAILABLE, true).await;

    let stream = js.get_stream("PLAN_EVENTS").await.expect("stream");
    let (_, answer) = quarantine(
        &stack.handler,
        &stream,
        &QuarantineRequest {
            sequence: bad,
            reason: REASON.to_owned(),
            user: AUDITOR.to_owned(),
        },
    )
    .await
    .expect("quarantined");
    let decision = answer.stream_sequence;
    assert_eq!(decision, bad + 1);
    readiness(&stack, StatusCode::OK, false).await;
    stack.settle().await;

    let auditor = token(Role::Auditor, None);
    let digest = event_store::message_digest(SUBJECT, PAYLOAD.as_bytes());
    // The trail holds every position once, in order: the message at its own with no envelope
    // and what the decision says, the decision after it.
    let entries = trail(&stack, &auditor, "", 50).await;
    let positions: Vec<(u64, u64)> = entries
        .iter()
        .map(|e| {
            (
                e["stream_sequence"].as_u64().unwrap_or(0),
                e["position"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    let at = |sequence: u64| {
        entries
            .iter()
            .find(|e| e["stream_sequence"] == sequence)
            .unwrap_or_else(|| panic!("no entry at {sequence}"))
    };
    let quarantined = at(bad);
    assert_eq!(quarantined["envelope"], Value::Null, "{quarantined}");
    let marked = &quarantined["quarantined"];
    for (field, expected) in [
        ("subject", json!(SUBJECT)),
        ("digest", json!(digest)),
        ("size", json!(PAYLOAD.len())),
        ("payload_encoding", json!("utf-8")),
        ("payload", json!(PAYLOAD)),
        ("reason", json!(REASON)),
        ("decided_by", json!(AUDITOR)),
        ("decided_role", json!("auditor")),
        ("decision_sequence", json!(decision)),
    ] {
        assert_eq!(marked[field], expected, "{field}: {marked}");
    }
    let decided = &at(decision)["envelope"];
    assert_eq!(
        decided["type"],
        "vn.gov.thanhhoa.remediation.quarantine.message_quarantined.v1"
    );
    assert_eq!(decided["actoruser"], AUDITOR);
    assert_eq!(decided["data"]["digest"], json!(digest));
    assert!(at(bad - 1)["quarantined"].is_null(), "events carry no mark");
    // A page that ends right before it is followed by a page that starts with it.
    let before_it = entries
        .iter()
        .position(|e| e["stream_sequence"] == bad)
        .expect("the quarantined entry");
    let first = stack
        .read(&format!("/v1/audit?limit={before_it}"), &auditor)
        .await;
    let next = first["next_cursor"].as_str().expect("more");
    let second = stack
        .read(&format!("/v1/audit?limit=2&cursor={next}"), &auditor)
        .await;
    let sequences: Vec<&Value> = second["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| &e["stream_sequence"])
        .collect();
    assert_eq!(sequences, [&json!(bad), &json!(decision)]);

    // Filters: only quarantined entries, none, by when it was stored; never by aggregate.
    let only = trail(&stack, &auditor, "&quarantined=true", 100).await;
    assert_eq!(only.len(), 1, "{only:?}");
    assert_eq!(only[0]["stream_sequence"], bad);
    let events = trail(&stack, &auditor, "&quarantined=false", 1000).await;
    assert!(events.iter().all(|e| e["quarantined"].is_null()));
    assert!(events.iter().all(|e| e["stream_sequence"] != bad));
    let units = trail(&stack, &auditor, "&aggregate_type=unit", 1000).await;
    assert!(units.iter().all(|e| e["stream_sequence"] != bad));
    let since = trail(
        &stack,
        &auditor,
        &format!(
            "&quarantined=true&recorded_from={}",
            instant_param(&before.to_rfc3339())
        ),
        100,
    )
    .await;
    assert_eq!(since.len(), 1, "{since:?}");

    // The verification knows the break and its decision, and finds nothing else.
    let verified = stack.read("/v1/audit/verify", &auditor).await;
    assert_eq!(verified["status"], "signed_off", "{verified}");
    assert_eq!(verified["broken"], Value::Null, "{verified}");
    assert_eq!(verified["audit_quarantined"], 1, "{verified}");
    assert!(verified["digest"].is_string(), "{verified}");
    let known = &verified["quarantined"][0];
    for (field, expected) in [
        ("sequence", json!(bad)),
        ("subject", json!(SUBJECT)),
        ("digest", json!(digest)),
        ("reason", json!(REASON)),
        ("decided_by", json!(AUDITOR)),
        ("decision_sequence", json!(decision)),
    ] {
        assert_eq!(known[field], expected, "{field}: {verified}");
    }
    assert!(
        known["problem"]
            .as_str()
            .is_some_and(|p| p.contains("is unreadable")),
        "{verified}"
    );
    stack.stop().await;
}

//! `Idempotency-Key` records as other senders leave them: answers in the HTTP format written
//! before outcomes were typed (and before claims existed), claims of sends that died before or
//! after appending, and claims still held or released.

use std::time::Duration;

use async_nats::jetstream::kv;
use chrono::Utc;
use command_app::idempotency::{fingerprint, idempotency_key};
use event_store::{Claim, ClaimState, IdempotencyRecord, StreamSettings};
use remediation_domain::seed::Seed;
use remediation_domain::text::ItemId;
use remediation_domain::{AggregateRef, Role};
use reqwest::StatusCode;
use serde_json::{Value, json};
use test_support::NatsServer;
use uuid::Uuid;

use super::{
    ITEM, SEED, Service, assert_problem, config, jetstream_of, load_seed, office, open_store,
    post_with, seeded,
};

const COMMAND: &str = "set-item-deadline";

fn deadline(due_on: &str) -> Vec<u8> {
    json!({ "item_id": ITEM, "due_on": due_on })
        .to_string()
        .into_bytes()
}

/// The bucket key of the province office's `key`.
fn office_key(key: &str) -> String {
    idempotency_key(&format!("user-{}", Role::ProvinceOffice.as_str()), key)
}

async fn bucket(nats: &NatsServer) -> kv::Store {
    jetstream_of(nats)
        .await
        .get_key_value(StreamSettings::default().idempotency_bucket)
        .await
        .expect("idempotency bucket")
}

/// Writes a record under the office's `key` with a plain put, as another instance would have.
async fn write(nats: &NatsServer, key: &str, record: &Value) {
    bucket(nats)
        .await
        .put(office_key(key), record.to_string().into())
        .await
        .expect("put");
}

/// A claim on `body`'s command, in the bucket's JSON.
fn claim(state: ClaimState, body: &[u8], command_id: Uuid, age: chrono::Duration) -> Value {
    serde_json::to_value(IdempotencyRecord::<Value>::Claimed(Claim {
        state,
        fingerprint: fingerprint(COMMAND, body),
        command_id,
        claimed_at: Utc::now() - age,
    }))
    .expect("claim")
}

async fn send(service: &Service, key: &str, body: &[u8]) -> (StatusCode, Value) {
    let reply = post_with(
        &service.url,
        COMMAND,
        Some(&office()),
        &[("Idempotency-Key", key)],
        body.to_vec(),
    )
    .await;
    (reply.status, reply.body)
}

fn item() -> AggregateRef {
    AggregateRef::Item(ItemId::new(ITEM).expect("item id"))
}

#[tokio::test]
async fn an_answer_stored_before_claims_existed_still_replays() {
    let (nats, _config, service) = seeded(5).await;
    let store = open_store(&nats, &StreamSettings::default()).await;
    let body = deadline("2025-12-31");
    // Not an answer this build would give (sequence 7 holds no such event): only the record can
    // be where the replay comes from.
    let stored = json!({
        "command": COMMAND, "command_id": "01900000-0000-7000-8000-000000000070",
        "correlation_id": "01900000-0000-7000-8000-000000000070",
        "aggregate": { "type": "item", "id": ITEM },
        "changed": true, "stream_sequence": 7,
        "events": [{ "id": "01900000-0000-7000-8000-000000000007", "type": "vn.gov.thanhhoa.remediation.item.deadline-set.v1" }],
    });
    write(
        &nats,
        "from-the-previous-version",
        &json!({ "fingerprint": fingerprint(COMMAND, &body), "status": 201, "body": stored }),
    )
    .await;
    let before = store.check().await.expect("stream");

    let replayed = send(&service, "from-the-previous-version", &body).await;
    assert_eq!(replayed, (StatusCode::CREATED, stored));
    let other = post_with(
        &service.url,
        COMMAND,
        Some(&office()),
        &[("Idempotency-Key", "from-the-previous-version")],
        deadline("2026-01-31"),
    )
    .await;
    assert_problem(
        &other,
        StatusCode::UNPROCESSABLE_ENTITY,
        "urn:kh63:problem:idempotency-key-reused",
    );
    assert_eq!(store.check().await.expect("stream"), before);
    service.shutdown().await;
}

#[tokio::test]
async fn a_refusal_stored_as_an_http_problem_still_replays_as_the_same_problem() {
    let (nats, _config, service) = seeded(5).await;
    let store = open_store(&nats, &StreamSettings::default()).await;
    let body = deadline("2025-12-31");
    // A rule this command would not break now: only the record can be where the answer comes from.
    let problem = json!({
        "type": "urn:kh63:problem:rule-violated", "title": "Business rule violated",
        "status": 422, "detail": "hạn chót trước ngày ban hành kế hoạch",
        "rule": "deadline-before-plan-issue",
    });
    write(
        &nats,
        "refused-by-the-previous-version",
        &json!({ "fingerprint": fingerprint(COMMAND, &body), "status": 422, "body": problem }),
    )
    .await;
    let before = store.check().await.expect("stream");

    let replayed = send(&service, "refused-by-the-previous-version", &body).await;
    assert_eq!(replayed, (StatusCode::UNPROCESSABLE_ENTITY, problem));
    assert_eq!(store.check().await.expect("stream"), before);
    service.shutdown().await;
}

#[tokio::test]
async fn a_claim_left_by_a_send_that_died_is_taken_over_and_the_command_lands_once() {
    let (nats, _config, service) = seeded(5).await;
    let store = open_store(&nats, &StreamSettings::default()).await;
    let body = deadline("2025-12-31");
    let dead = Uuid::now_v7();
    write(
        &nats,
        "sender-died",
        &claim(ClaimState::Pending, &body, dead, chrono::Duration::hours(1)),
    )
    .await;
    let before = store.check().await.expect("stream");

    let first = send(&service, "sender-died", &body).await;
    assert_eq!(first.0, StatusCode::CREATED, "{}", first.1);
    let commits = store.commits_after(&item(), before).await.expect("commits");
    assert_eq!(commits.len(), 1, "exactly one commit");
    assert_eq!(
        commits[0].events[0].commandid, dead,
        "the claim's command id is kept, so a later taker can find this commit"
    );
    assert_eq!(first.1["command_id"], json!(dead));

    let again = send(&service, "sender-died", &body).await;
    assert_eq!(again, first);
    assert_eq!(store.check().await.expect("stream"), commits[0].sequence);
    service.shutdown().await;
}

/// A send that appended and died before storing its answer: the send taking over must answer
/// with that commit. Deciding again would find the deadline already set and answer "nothing to
/// change" although the command's events are in the stream.
#[tokio::test]
async fn a_send_that_died_after_appending_is_answered_with_its_commit() {
    let (nats, _config, service) = seeded(5).await;
    let store = open_store(&nats, &StreamSettings::default()).await;
    let body = deadline("2025-12-31");
    let first = send(&service, "appended-then-died", &body).await;
    assert_eq!(first.0, StatusCode::CREATED, "{}", first.1);
    let after_first = store.check().await.expect("stream");
    let command_id: Uuid = serde_json::from_value(first.1["command_id"].clone()).expect("id");
    write(
        &nats,
        "appended-then-died",
        &claim(
            ClaimState::Pending,
            &body,
            command_id,
            chrono::Duration::hours(1),
        ),
    )
    .await;

    let again = send(&service, "appended-then-died", &body).await;
    assert_eq!(again, first);
    assert_eq!(store.check().await.expect("stream"), after_first);
    service.shutdown().await;
}

#[tokio::test]
async fn a_key_held_by_another_send_answers_409_in_flight_and_a_released_one_is_taken_at_once() {
    let nats = NatsServer::start();
    let mut config = config(&nats, StreamSettings::default(), 5);
    config.handler.idempotency_wait = Duration::from_millis(300);
    let service = Service::start(&config).await;
    load_seed(service.handler(), &Seed::from_json(SEED).expect("seed"))
        .await
        .expect("seed");
    let store = open_store(&nats, &StreamSettings::default()).await;
    let body = deadline("2025-12-31");
    write(
        &nats,
        "held",
        &claim(
            ClaimState::Pending,
            &body,
            Uuid::now_v7(),
            chrono::Duration::zero(),
        ),
    )
    .await;
    let before = store.check().await.expect("stream");

    let response = reqwest::Client::new()
        .post(format!("{}/v1/commands/{COMMAND}", service.url))
        .bearer_auth(office())
        .header("Content-Type", "application/json")
        .header("Idempotency-Key", "held")
        .body(body.clone())
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = response.json().await.expect("problem");
    assert_eq!(
        problem["type"],
        "urn:kh63:problem:idempotency-key-in-flight"
    );
    assert_eq!(problem["status"], 409);

    let other = post_with(
        &service.url,
        COMMAND,
        Some(&office()),
        &[("Idempotency-Key", "held")],
        deadline("2026-01-31"),
    )
    .await;
    assert_problem(
        &other,
        StatusCode::UNPROCESSABLE_ENTITY,
        "urn:kh63:problem:idempotency-key-reused",
    );
    assert_eq!(store.check().await.expect("stream"), before);

    // Released by a holder that failed transiently: taken over although its lease still runs.
    write(
        &nats,
        "held",
        &claim(
            ClaimState::Released,
            &body,
            Uuid::now_v7(),
            chrono::Duration::zero(),
        ),
    )
    .await;
    let taken = send(&service, "held", &body).await;
    assert_eq!(taken.0, StatusCode::CREATED, "{}", taken.1);
    let stored = service
        .handler()
        .repository()
        .store()
        .idempotency()
        .read::<Value>(&office_key("held"))
        .await
        .expect("record")
        .expect("present")
        .record;
    let IdempotencyRecord::Answered(answer) = stored else {
        panic!("the taker stored its answer, got {stored:?}");
    };
    // The outcome itself, which the HTTP answer renders.
    assert_eq!(answer["outcome"]["decided"], taken.1);
    service.shutdown().await;
}

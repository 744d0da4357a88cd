//! End-to-end tests of the command service over HTTP, against a real nats-server that each test
//! starts for itself (so tests run in parallel and repeatedly).

use std::num::NonZeroUsize;
use std::time::Duration;

use async_nats::jetstream;
use command_api::config::Config;
use command_api::http::AppState;
use command_app::handler::{CommandHandler, HandlerSettings};
use command_app::seed::load_seed;
use event_store::access::Service as Identity;
use event_store::{EventStore, StreamSettings};
use remediation_domain::seed::Seed;
use remediation_domain::text::UnitId;
use remediation_domain::{Actor, AggregateRef, Role};
use reqwest::StatusCode;
use serde_json::{Value, json};
use service_kit::auth::TokenKeys;
use test_support::NatsServer;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

#[path = "api/appends.rs"]
mod appends;
#[path = "api/deployments.rs"]
mod deployments;
#[path = "api/faults.rs"]
mod faults;
#[path = "api/idempotency.rs"]
mod idempotency;
#[path = "api/regressions.rs"]
mod regressions;
#[path = "api/roles.rs"]
mod roles;
#[path = "api/rotation.rs"]
mod rotation;

const SECRET: &[u8] = b"test-secret-test-secret-test-secret!";
const SEED: &str = include_str!("../../../deploy/seed/ke-hoach-63.json");
const ITEM: &str = "kh-63-2025-01";
const LEAD_UNIT: &str = "so-nong-nghiep-va-moi-truong";
const OTHER_UNIT: &str = "so-y-te";

fn config(nats: &NatsServer, stream: StreamSettings, max_attempts: u32) -> Config {
    Config {
        nats_url: nats.url(),
        nats_nkey_file: Some(nats.nkey_file(Identity::CommandApi)),
        bind: "127.0.0.1:0".parse().expect("address"),
        http_max_connections: service_kit::DEFAULT_MAX_CONNECTIONS,
        stream,
        handler: HandlerSettings {
            max_attempts,
            ..HandlerSettings::default()
        },
        cache_capacity: NonZeroUsize::new(1_000).expect("non-zero"),
        max_in_flight: command_api::config::DEFAULT_MAX_IN_FLIGHT,
        nats_timeout: Duration::from_millis(1_500),
        token_secret: SECRET.to_vec(),
        previous_token_secret: None,
    }
}

/// A running command service on a free port.
struct Service {
    url: String,
    state: AppState,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Service {
    async fn start(config: &Config) -> Self {
        let state = command_api::app_state(config).await.expect("service state");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(command_api::run(listener, state.clone(), async {
            let _ = stopped.await;
        }));
        Self {
            url,
            state,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Graceful shutdown, as on SIGTERM.
    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("clean shutdown");
        }
    }

    fn handler(&self) -> &CommandHandler {
        &self.state.handler
    }
}

fn token(role: Role, unit: Option<&str>) -> String {
    TokenKeys::new(SECRET)
        .expect("keys")
        .issue(
            &Actor {
                user: format!("user-{}", role.as_str()),
                unit: unit.map(|u| UnitId::new(u).expect("unit id")),
                role,
            },
            chrono::Duration::hours(1),
        )
        .expect("token")
}

fn office() -> String {
    token(Role::ProvinceOffice, None)
}

struct Reply {
    status: StatusCode,
    body: Value,
    content_type: String,
}

async fn post_with(
    url: &str,
    command: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Reply {
    let mut request = reqwest::Client::new()
        .post(format!("{url}/v1/commands/{command}"))
        .header("Content-Type", "application/json")
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("send");
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response.json().await.unwrap_or(Value::Null);
    Reply {
        status,
        body,
        content_type,
    }
}

async fn post(url: &str, command: &str, token: &str, body: Value) -> Reply {
    post_with(
        url,
        command,
        Some(token),
        &[],
        body.to_string().into_bytes(),
    )
    .await
}

/// JetStream as the operator, for looking at (or tampering with) the stream directly.
async fn jetstream_of(nats: &NatsServer) -> jetstream::Context {
    jetstream::new(nats.connect(Identity::Admin).await)
}

async fn open_store(nats: &NatsServer, settings: &StreamSettings) -> EventStore {
    EventStore::open(jetstream_of(nats).await, settings.clone())
        .await
        .expect("store")
}

/// A NATS server, the Plan 63 seed loaded, and a running service.
async fn seeded(max_attempts: u32) -> (NatsServer, Config, Service) {
    let nats = NatsServer::start();
    let config = config(&nats, StreamSettings::default(), max_attempts);
    let service = Service::start(&config).await;
    let seed = Seed::from_json(SEED).expect("seed parses");
    load_seed(service.handler(), &seed)
        .await
        .expect("seed loads");
    (nats, config, service)
}

fn assert_problem(reply: &Reply, status: StatusCode, problem_type: &str) {
    assert_eq!(reply.status, status, "body: {}", reply.body);
    assert_eq!(reply.content_type, "application/problem+json");
    assert_eq!(reply.body["type"], problem_type, "body: {}", reply.body);
    assert_eq!(reply.body["status"], status.as_u16());
}

fn task_body(task: &str, unit: &str) -> Value {
    json!({
        "task_id": task, "item_id": ITEM, "unit_id": unit,
        "title": "Xây dựng mô hình nông nghiệp ứng dụng công nghệ cao",
        "person_responsible": "Nguyễn Văn An", "leader_in_charge": "Phó Giám đốc Lê Thị Bình",
        "due_on": "2025-09-30"
    })
}

#[tokio::test]
async fn seed_loaded_twice_appends_nothing_the_second_time() {
    let (nats, _config, service) = seeded(5).await;
    let store = open_store(&nats, &StreamSettings::default()).await;
    let after_first = store.check().await.expect("stream");
    let seed = Seed::from_json(SEED).expect("seed");
    let second = load_seed(service.handler(), &seed)
        .await
        .expect("second load");
    assert_eq!(second.changed, 0);
    assert_eq!(second.events, 0);
    assert_eq!(store.check().await.expect("stream"), after_first);
    // 1 plan + 48 units + 6 groups with 55 memberships + 15 items with their assignments.
    assert_eq!(after_first as usize, seed.commands().len());
    service.shutdown().await;
}

#[tokio::test]
async fn a_user_assigns_plans_reports_and_changes_status_and_sees_sequences() {
    let (_nats, _config, service) = seeded(5).await;
    let url = &service.url;
    let staff = token(Role::UnitStaff, Some(LEAD_UNIT));

    let assigned = post(
        url,
        "assign-coordinator",
        &office(),
        json!({ "item_id": ITEM, "assignee": { "unit": "so-tai-chinh" } }),
    )
    .await;
    assert_eq!(assigned.status, StatusCode::CREATED, "{}", assigned.body);
    let first_sequence = assigned.body["stream_sequence"].as_u64().expect("sequence");
    assert_eq!(
        assigned.body["events"][0]["type"],
        "vn.gov.thanhhoa.remediation.item.assigned.v1"
    );

    let planned = post(
        url,
        "plan-task",
        &staff,
        task_body("snnmt-2025-01", LEAD_UNIT),
    )
    .await;
    assert_eq!(planned.status, StatusCode::CREATED, "{}", planned.body);
    assert!(planned.body["stream_sequence"].as_u64() > Some(first_sequence));

    let report = json!({
        "plan_id": "kh-63-2025", "unit_id": LEAD_UNIT, "quarter": { "year": 2025, "quarter": 2 },
        "lines": [{ "item_id": ITEM, "progress": "Đã xây dựng 3 mô hình", "status": "in_progress" }]
    });
    let submitted = post(url, "submit-report", &staff, report).await;
    assert_eq!(submitted.status, StatusCode::CREATED, "{}", submitted.body);

    let started = post(
        url,
        "change-item-status",
        &staff,
        json!({ "item_id": ITEM, "to": "in_progress", "reason": "Bắt đầu triển khai" }),
    )
    .await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
    assert_eq!(started.body["events"].as_array().map(Vec::len), Some(1));
    assert!(started.body["events"][0]["id"].is_string());

    // Repeating a command that changes nothing appends nothing and says so.
    let repeated = post(
        url,
        "change-item-status",
        &staff,
        json!({ "item_id": ITEM, "to": "in_progress", "reason": "Bắt đầu triển khai" }),
    )
    .await;
    assert_eq!(repeated.status, StatusCode::OK);
    assert_eq!(repeated.body["changed"], false);
    assert_eq!(repeated.body["events"], json!([]));
    assert_eq!(
        repeated.body["stream_sequence"],
        started.body["stream_sequence"]
    );
    service.shutdown().await;
}

#[tokio::test]
async fn concurrent_commands_on_one_item_land_exactly_once_with_contiguous_subject_sequences() {
    const CLIENTS: usize = 64;
    let (nats, _config, service) = seeded(2).await;
    let office = office();
    let units: Vec<String> = (0..CLIENTS).map(|k| format!("don-vi-thu-{k:02}")).collect();
    for (k, unit) in units.iter().enumerate() {
        let registered = post(
            &service.url,
            "register-unit",
            &office,
            json!({ "unit_id": unit, "name": format!("Đơn vị thử {k}"), "kind": "other" }),
        )
        .await;
        assert_eq!(registered.status, StatusCode::CREATED);
    }
    let store = open_store(&nats, &StreamSettings::default()).await;
    let target = AggregateRef::Item(remediation_domain::text::ItemId::new(ITEM).expect("id"));
    let before = store.commits_after(&target, 0).await.expect("commits");
    let last_before = before.last().expect("seeded item has commits").sequence;

    let replies = futures::future::join_all(units.iter().map(|unit| {
        let (url, office) = (service.url.clone(), office.clone());
        let body = json!({ "item_id": ITEM, "assignee": { "unit": unit } });
        async move { post(&url, "assign-coordinator", &office, body).await }
    }))
    .await;

    let accepted: Vec<&Reply> = replies
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .collect();
    let conflicted = replies
        .iter()
        .filter(|r| r.status == StatusCode::CONFLICT)
        .count();
    assert_eq!(
        accepted.len() + conflicted,
        CLIENTS,
        "only 201 and 409 are possible answers"
    );
    for reply in replies.iter().filter(|r| r.status == StatusCode::CONFLICT) {
        assert_problem(
            reply,
            StatusCode::CONFLICT,
            "urn:kh63:problem:concurrency-conflict",
        );
    }

    let after = store
        .commits_after(&target, last_before)
        .await
        .expect("commits");
    assert_eq!(
        after.len(),
        accepted.len(),
        "one commit per accepted command, none for the refused"
    );
    let stored_ids: Vec<String> = after
        .iter()
        .flat_map(|c| c.events.iter().map(|e| e.id.to_string()))
        .collect();
    for reply in &accepted {
        let id = reply.body["events"][0]["id"].as_str().expect("event id");
        assert_eq!(
            stored_ids.iter().filter(|s| s.as_str() == id).count(),
            1,
            "event {id} stored exactly once"
        );
        let sequence = reply.body["stream_sequence"].as_u64().expect("sequence");
        assert!(after.iter().any(|c| c.sequence == sequence));
    }

    // Each commit was appended on top of the one before it on the subject: the expected
    // subject sequence it carried is its predecessor's stream sequence.
    let js = jetstream_of(&nats).await;
    let stream = js.get_stream("PLAN_EVENTS").await.expect("stream");
    let mut previous = last_before;
    for commit in &after {
        let raw = stream
            .get_raw_message(commit.sequence)
            .await
            .expect("message");
        let expected = raw
            .headers
            .get("Nats-Expected-Last-Subject-Sequence")
            .expect("expected-sequence header")
            .to_string();
        assert_eq!(
            expected,
            previous.to_string(),
            "commit {} did not follow {previous}",
            commit.sequence
        );
        previous = commit.sequence;
    }
    service.shutdown().await;
}

#[tokio::test]
async fn idempotency_key_returns_the_first_answer_after_restart_and_after_the_duplicate_window() {
    let nats = NatsServer::start();
    let settings = StreamSettings {
        duplicate_window: Duration::from_secs(1),
        ..StreamSettings::default()
    };
    let config = config(&nats, settings.clone(), 5);
    let service = Service::start(&config).await;
    load_seed(service.handler(), &Seed::from_json(SEED).expect("seed"))
        .await
        .expect("seed");
    let store = open_store(&nats, &settings).await;
    let key = [("Idempotency-Key", "8c1f0b9e-plan-task-1")];
    let staff = token(Role::UnitStaff, Some(LEAD_UNIT));
    let body = task_body("snnmt-idem", LEAD_UNIT).to_string().into_bytes();

    let first = post_with(&service.url, "plan-task", Some(&staff), &key, body.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let after_first = store.check().await.expect("stream");

    let again = post_with(&service.url, "plan-task", Some(&staff), &key, body.clone()).await;
    assert_eq!((again.status, &again.body), (first.status, &first.body));

    service.shutdown().await;
    let restarted = Service::start(&config).await;
    tokio::time::sleep(Duration::from_millis(2_500)).await; // past JetStream's duplicate window
    let after_restart = post_with(
        &restarted.url,
        "plan-task",
        Some(&staff),
        &key,
        body.clone(),
    )
    .await;
    assert_eq!(
        (after_restart.status, &after_restart.body),
        (first.status, &first.body)
    );
    assert_eq!(
        store.check().await.expect("stream"),
        after_first,
        "nothing appended by the retries"
    );

    // The same key with another request is refused, and appends nothing either.
    let other = task_body("snnmt-idem-2", LEAD_UNIT)
        .to_string()
        .into_bytes();
    let reused = post_with(&restarted.url, "plan-task", Some(&staff), &key, other).await;
    assert_problem(
        &reused,
        StatusCode::UNPROCESSABLE_ENTITY,
        "urn:kh63:problem:idempotency-key-reused",
    );
    assert_eq!(store.check().await.expect("stream"), after_first);
    restarted.shutdown().await;
}

#[tokio::test]
async fn nats_down_gives_503_with_nothing_stored_and_the_retry_succeeds_after_restart() {
    let (mut nats, _config, service) = seeded(5).await;
    let settings = StreamSettings::default();
    let before = open_store(&nats, &settings)
        .await
        .check()
        .await
        .expect("stream");
    let key = [("Idempotency-Key", "deadline-while-down")];
    let body = json!({ "item_id": ITEM, "due_on": "2025-12-31" })
        .to_string()
        .into_bytes();

    nats.stop();
    let during = post_with(
        &service.url,
        "set-item-deadline",
        Some(&office()),
        &key,
        body.clone(),
    )
    .await;
    assert_problem(
        &during,
        StatusCode::SERVICE_UNAVAILABLE,
        "urn:kh63:problem:store-unavailable",
    );
    let ready = reqwest::get(format!("{}/readyz", service.url))
        .await
        .expect("readyz");
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);

    nats.restart();
    let mut retry = None;
    for _ in 0..40 {
        let reply = post_with(
            &service.url,
            "set-item-deadline",
            Some(&office()),
            &key,
            body.clone(),
        )
        .await;
        if reply.status != StatusCode::SERVICE_UNAVAILABLE {
            retry = Some(reply);
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let retry = retry.expect("the command succeeds once NATS is back");
    assert_eq!(retry.status, StatusCode::CREATED, "{}", retry.body);

    let store = open_store(&nats, &settings).await;
    let target = AggregateRef::Item(remediation_domain::text::ItemId::new(ITEM).expect("id"));
    let new_commits = store.commits_after(&target, before).await.expect("commits");
    assert_eq!(
        new_commits.len(),
        1,
        "exactly one whole commit, never a partial or a second one"
    );
    assert_eq!(new_commits[0].events.len(), 1);
    assert_eq!(
        retry.body["events"][0]["id"],
        json!(new_commits[0].events[0].id)
    );
    service.shutdown().await;
}

#[tokio::test]
async fn every_error_status_is_problem_json_and_appends_nothing() {
    let (nats, _config, service) = seeded(5).await;
    let store = open_store(&nats, &StreamSettings::default()).await;
    let before = store.check().await.expect("stream");
    let url = &service.url;
    let staff = token(Role::UnitStaff, Some(LEAD_UNIT));

    let malformed = post_with(url, "plan-task", Some(&staff), &[], b"{not json".to_vec()).await;
    assert_problem(
        &malformed,
        StatusCode::BAD_REQUEST,
        "urn:kh63:problem:malformed-request",
    );
    let mut unknown_field = task_body("t-unknown", LEAD_UNIT);
    unknown_field["priority"] = json!("high");
    let unknown = post(url, "plan-task", &staff, unknown_field).await;
    assert_problem(
        &unknown,
        StatusCode::BAD_REQUEST,
        "urn:kh63:problem:malformed-request",
    );
    assert!(
        unknown.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("priority"))
    );
    let mut long_title = task_body("t-long", LEAD_UNIT);
    long_title["title"] = json!("ạ".repeat(501));
    let too_long = post(url, "plan-task", &staff, long_title).await;
    assert_problem(
        &too_long,
        StatusCode::BAD_REQUEST,
        "urn:kh63:problem:malformed-request",
    );
    assert!(
        too_long.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("title"))
    );

    let anonymous = post_with(
        url,
        "plan-task",
        None,
        &[],
        task_body("t-anon", LEAD_UNIT).to_string().into_bytes(),
    )
    .await;
    assert_problem(
        &anonymous,
        StatusCode::UNAUTHORIZED,
        "urn:kh63:problem:unauthenticated",
    );
    let forged = TokenKeys::new(b"another-secret-another-secret-another")
        .expect("keys")
        .issue(
            &Actor {
                user: "x".into(),
                unit: None,
                role: Role::ProvinceOffice,
            },
            chrono::Duration::hours(1),
        )
        .expect("token");
    assert_problem(
        &post(url, "plan-task", &forged, task_body("t-forged", LEAD_UNIT)).await,
        StatusCode::UNAUTHORIZED,
        "urn:kh63:problem:unauthenticated",
    );
    let expired = TokenKeys::new(SECRET)
        .expect("keys")
        .issue(
            &Actor {
                user: "x".into(),
                unit: None,
                role: Role::ProvinceOffice,
            },
            chrono::Duration::hours(-1),
        )
        .expect("token");
    assert_problem(
        &post(
            url,
            "plan-task",
            &expired,
            task_body("t-expired", LEAD_UNIT),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "urn:kh63:problem:unauthenticated",
    );

    let other_unit = post(
        url,
        "plan-task",
        &token(Role::UnitStaff, Some(OTHER_UNIT)),
        task_body("t-other", LEAD_UNIT),
    )
    .await;
    assert_problem(
        &other_unit,
        StatusCode::FORBIDDEN,
        "urn:kh63:problem:forbidden",
    );
    let viewer = post(
        url,
        "set-item-deadline",
        &token(Role::Viewer, None),
        json!({ "item_id": ITEM, "due_on": "2025-12-31" }),
    )
    .await;
    assert_problem(&viewer, StatusCode::FORBIDDEN, "urn:kh63:problem:forbidden");

    let missing = post(
        url,
        "set-item-deadline",
        &office(),
        json!({ "item_id": "kh-63-2025-99", "due_on": "2025-12-31" }),
    )
    .await;
    assert_problem(
        &missing,
        StatusCode::NOT_FOUND,
        "urn:kh63:problem:not-found",
    );
    let no_route = post(url, "launch-rocket", &office(), json!({})).await;
    assert_problem(
        &no_route,
        StatusCode::NOT_FOUND,
        "urn:kh63:problem:not-found",
    );

    let huge = vec![b' '; 300 * 1024];
    let too_large = post_with(url, "plan-task", Some(&staff), &[], huge).await;
    assert_problem(
        &too_large,
        StatusCode::PAYLOAD_TOO_LARGE,
        "urn:kh63:problem:payload-too-large",
    );

    let early = post(
        url,
        "set-item-deadline",
        &office(),
        json!({ "item_id": ITEM, "due_on": "2025-01-01" }),
    )
    .await;
    assert_problem(
        &early,
        StatusCode::UNPROCESSABLE_ENTITY,
        "urn:kh63:problem:rule-violated",
    );
    assert_eq!(early.body["rule"], "deadline-before-plan-issue");

    let backdated = post_with(
        url,
        "plan-task",
        Some(&staff),
        &[("X-Effective-Time", "2025-05-01T08:00:00+07:00")],
        task_body("t-back", LEAD_UNIT).to_string().into_bytes(),
    )
    .await;
    assert_problem(
        &backdated,
        StatusCode::FORBIDDEN,
        "urn:kh63:problem:forbidden",
    );

    assert_eq!(
        store.check().await.expect("stream"),
        before,
        "no error appended anything"
    );
    service.shutdown().await;
}

#[tokio::test]
async fn conflict_after_exhausted_retries_is_409() {
    // One attempt only: racing writers on one item make at least one of them lose, unless the
    // runtime happened to serialise them; loop until a race was observed. The writers race from
    // two instances: within one, commands on an item take turns and do not conflict.
    let (_nats, config, service) = seeded(1).await;
    let second = Service::start(&config).await;
    let office = office();
    for round in 0..50 {
        let dates = ["2026-01-31", "2026-02-28", "2026-03-31", "2026-04-30"];
        let replies = futures::future::join_all(dates.iter().enumerate().map(|(k, due)| {
            let url = [&service.url, &second.url][k % 2].clone();
            let office = office.clone();
            let body = json!({ "item_id": ITEM, "due_on": due, "reason": format!("Vòng {round}") });
            async move { post(&url, "set-item-deadline", &office, body).await }
        }))
        .await;
        if let Some(conflict) = replies.iter().find(|r| r.status == StatusCode::CONFLICT) {
            assert_problem(
                conflict,
                StatusCode::CONFLICT,
                "urn:kh63:problem:concurrency-conflict",
            );
            second.shutdown().await;
            service.shutdown().await;
            return;
        }
    }
    panic!("no conflict observed in 50 rounds of 4 racing writers");
}

#[tokio::test]
async fn racing_commands_on_one_item_in_one_instance_take_turns_instead_of_conflicting() {
    // One attempt only, so that a single lost race would answer 409: commands on one item that
    // reach the same instance at once decide one after the other, each on the state the one
    // before it left, and every one of them lands.
    const WRITERS: usize = 16;
    let (nats, _config, service) = seeded(1).await;
    let office = office();
    let store = open_store(&nats, &StreamSettings::default()).await;
    let target = AggregateRef::Item(remediation_domain::text::ItemId::new(ITEM).expect("id"));
    let last_before = store
        .commits_after(&target, 0)
        .await
        .expect("commits")
        .last()
        .expect("seeded item has commits")
        .sequence;
    for round in 0..5 {
        let replies = futures::future::join_all((0..WRITERS).map(|k| {
            let (url, office) = (service.url.clone(), office.clone());
            let due = format!("2026-{:02}-{:02}", 1 + round, 1 + k);
            let body = json!({ "item_id": ITEM, "due_on": due, "reason": format!("Lượt {round}") });
            async move { post(&url, "set-item-deadline", &office, body).await }
        }))
        .await;
        for reply in &replies {
            assert_eq!(
                reply.status,
                StatusCode::CREATED,
                "round {round}: {}",
                reply.body
            );
        }
    }
    let commits = store
        .commits_after(&target, last_before)
        .await
        .expect("commits");
    assert_eq!(commits.len(), 5 * WRITERS, "one commit per command");
    service.shutdown().await;
}

#[tokio::test]
async fn roles_and_units_are_enforced_over_http() {
    let (_nats, _config, service) = seeded(5).await;
    let url = &service.url;
    let lead = token(Role::UnitStaff, Some(LEAD_UNIT));
    let finance = token(Role::DepartmentOfFinance, Some("so-tai-chinh"));
    let report_key = json!({ "plan_id": "kh-63-2025", "unit_id": LEAD_UNIT, "quarter": { "year": 2025, "quarter": 3 } });
    let mut report = report_key.clone();
    report["lines"] = json!([{ "item_id": ITEM, "progress": "Hoàn thành 50% kế hoạch" }]);

    // A unit not assigned to the item may not report on it, even for itself.
    let mut unassigned = report.clone();
    unassigned["unit_id"] = json!(OTHER_UNIT);
    let refused = post(
        url,
        "submit-report",
        &token(Role::UnitStaff, Some(OTHER_UNIT)),
        unassigned,
    )
    .await;
    assert_problem(
        &refused,
        StatusCode::UNPROCESSABLE_ENTITY,
        "urn:kh63:problem:rule-violated",
    );
    assert_eq!(refused.body["rule"], "not-assigned");

    assert_eq!(
        post(url, "submit-report", &lead, report.clone())
            .await
            .status,
        StatusCode::CREATED
    );
    // Unit staff cannot accept their own report; the Department of Finance can.
    assert_problem(
        &post(url, "accept-report", &lead, report_key.clone()).await,
        StatusCode::FORBIDDEN,
        "urn:kh63:problem:forbidden",
    );
    assert_eq!(
        post(url, "accept-report", &finance, report_key.clone())
            .await
            .status,
        StatusCode::CREATED
    );
    let mut revised = report.clone();
    revised["lines"][0]["progress"] = json!("Hoàn thành 60% kế hoạch");
    let revision = post(url, "revise-report", &lead, revised).await;
    assert_problem(
        &revision,
        StatusCode::UNPROCESSABLE_ENTITY,
        "urn:kh63:problem:rule-violated",
    );
    assert_eq!(revision.body["rule"], "report-accepted");

    // Only the province office confirms a completion.
    assert_eq!(
        post(url, "plan-task", &lead, task_body("t-roles", LEAD_UNIT))
            .await
            .status,
        StatusCode::CREATED
    );
    for (to, evidence) in [
        ("in_progress", None),
        (
            "awaiting_confirmation",
            Some("Biên bản nghiệm thu số 12/BB"),
        ),
    ] {
        let body = json!({ "task_id": "t-roles", "to": to, "reason": "Cập nhật tiến độ", "evidence": evidence });
        assert_eq!(
            post(url, "change-task-status", &lead, body).await.status,
            StatusCode::CREATED
        );
    }
    let confirm =
        json!({ "task_id": "t-roles", "to": "completed", "reason": "Đã kiểm tra kết quả" });
    assert_problem(
        &post(url, "change-task-status", &lead, confirm.clone()).await,
        StatusCode::FORBIDDEN,
        "urn:kh63:problem:forbidden",
    );
    assert_eq!(
        post(url, "change-task-status", &office(), confirm)
            .await
            .status,
        StatusCode::CREATED
    );

    // Auditors read; they issue no command.
    let auditor = post(
        url,
        "register-unit",
        &token(Role::Auditor, None),
        json!({ "unit_id": "x", "name": "X", "kind": "other" }),
    )
    .await;
    assert_problem(
        &auditor,
        StatusCode::FORBIDDEN,
        "urn:kh63:problem:forbidden",
    );
    service.shutdown().await;
}

#[tokio::test]
async fn succession_passes_open_work_to_the_successor_from_its_effective_date() {
    let (_nats, _config, service) = seeded(5).await;
    let url = &service.url;
    let office = office();
    assert_eq!(post(url, "register-unit", &office, json!({ "unit_id": "ubnd-phuong-hac-thanh", "name": "UBND phường Hạc Thành", "kind": "commune_committee" })).await.status, StatusCode::CREATED);
    let succession = json!({ "unit_id": "ubnd-thanh-pho-thanh-hoa", "successors": ["ubnd-phuong-hac-thanh"], "effective_on": "2025-07-01", "reason": "Sắp xếp đơn vị hành chính, không tổ chức cấp huyện" });
    assert_eq!(
        post(url, "succeed-unit", &office, succession).await.status,
        StatusCode::CREATED
    );

    // Item 13 names UBND thành phố Thanh Hóa directly; its successor now plans and reports for it.
    let successor = token(Role::UnitStaff, Some("ubnd-phuong-hac-thanh"));
    let mut task = task_body("hac-thanh-rac-thai", "ubnd-phuong-hac-thanh");
    task["item_id"] = json!("kh-63-2025-13");
    assert_eq!(
        post(url, "plan-task", &successor, task.clone())
            .await
            .status,
        StatusCode::CREATED
    );

    // The dissolved unit takes no new assignment.
    let assign = post(
        url,
        "assign-lead",
        &office,
        json!({ "item_id": "kh-63-2025-07", "assignee": { "unit": "ubnd-thanh-pho-thanh-hoa" } }),
    )
    .await;
    assert_problem(
        &assign,
        StatusCode::UNPROCESSABLE_ENTITY,
        "urn:kh63:problem:rule-violated",
    );
    assert_eq!(assign.body["rule"], "unit-succeeded");
    service.shutdown().await;
}

#[tokio::test]
async fn health_readiness_metrics_and_openapi_are_served() {
    let (_nats, _config, service) = seeded(5).await;
    let get = |path: &str| reqwest::get(format!("{}{path}", service.url));
    assert_eq!(
        get("/healthz").await.expect("healthz").status(),
        StatusCode::OK
    );
    let ready: Value = get("/readyz")
        .await
        .expect("readyz")
        .json()
        .await
        .expect("json");
    assert_eq!(ready["status"], "ready");
    assert!(ready["last_sequence"].as_u64() > Some(0));

    post(
        &service.url,
        "set-item-deadline",
        &office(),
        json!({ "item_id": ITEM, "due_on": "2025-12-31" }),
    )
    .await;
    let metrics = get("/metrics")
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains(
            r#"kh63_command_commands_total{command="set-item-deadline",outcome="accepted"} 1"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains("kh63_command_append_duration_seconds_count"));
    // The seed's appends and this command's, in at least one burst and at most one each.
    let value = |name: &str| {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|value| value.parse::<f64>().ok())
    };
    let bursts = value("kh63_command_append_bursts_total").expect("bursts counted");
    let appends = value("kh63_command_append_duration_seconds_count").expect("appends counted");
    assert!(
        (1.0..=appends).contains(&bursts),
        "{bursts} bursts, {appends} appends"
    );

    let openapi: Value = get("/openapi.json")
        .await
        .expect("openapi")
        .json()
        .await
        .expect("json");
    assert_eq!(openapi["openapi"], "3.1.0");
    for spec in remediation_domain::COMMANDS {
        let path = format!("/v1/commands/{}", spec.name);
        assert_eq!(
            openapi["paths"][&path]["post"]["requestBody"].is_object(),
            spec.sent_by_clients(),
            "{path} documented exactly when clients may send it"
        );
    }
    assert_eq!(
        openapi["components"]["schemas"]["PlanTask"]["additionalProperties"],
        false
    );
    // Reads of the audit trail are recorded by the query service, never sent by clients.
    let fake_read = post(
        &service.url,
        "record-audit-read",
        &token(Role::Auditor, None),
        json!({ "day": "2025-07-01", "query": "GET /v1/audit", "results": 0 }),
    )
    .await;
    assert_eq!(
        fake_read.status,
        StatusCode::NOT_FOUND,
        "{}",
        fake_read.body
    );
    service.shutdown().await;
}

/// Runs the Python consumer as a downstream reader with the operator's key: the product has no
/// narrower identity for third-party consumers yet.
fn run_feed_consumer(nats_url: &str, nkey_file: &std::path::Path, durable: &str) -> (bool, Value) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python =
        test_support::python_venv("feed-consumer-venv", "tests/feed-consumer/requirements.txt");
    let output = std::process::Command::new(python)
        .arg(root.join("tests/feed-consumer/consumer.py"))
        .args(["--nats-url", nats_url, "--durable", durable])
        .arg("--nkey-file")
        .arg(nkey_file)
        .output()
        .expect("run the feed consumer");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!(
            "consumer printed no summary: {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.success(), summary)
}

#[tokio::test]
async fn an_independent_python_consumer_validates_every_event_and_chain() {
    let (nats, _config, service) = seeded(5).await;
    let url = &service.url;
    let staff = token(Role::UnitStaff, Some(LEAD_UNIT));
    assert_eq!(
        post(url, "plan-task", &staff, task_body("feed-1", LEAD_UNIT))
            .await
            .status,
        StatusCode::CREATED
    );
    let report = json!({
        "plan_id": "kh-63-2025", "unit_id": LEAD_UNIT, "quarter": { "year": 2025, "quarter": 3 },
        "lines": [{ "item_id": ITEM, "progress": "Đã triển khai 3/5 mô hình", "status": "in_progress" }]
    });
    assert_eq!(
        post(url, "submit-report", &staff, report).await.status,
        StatusCode::CREATED
    );
    let returned = json!({ "plan_id": "kh-63-2025", "unit_id": LEAD_UNIT, "quarter": { "year": 2025, "quarter": 3 }, "reason": "Bổ sung số liệu" });
    assert_eq!(
        post(
            url,
            "return-report",
            &token(Role::DepartmentOfFinance, Some("so-tai-chinh")),
            returned
        )
        .await
        .status,
        StatusCode::CREATED
    );
    let store = open_store(&nats, &StreamSettings::default()).await;
    let head = store.check().await.expect("stream");

    let (ok, summary) = tokio::task::spawn_blocking({
        let (url, nkey_file) = (nats.url(), nats.nkey_file(Identity::Admin));
        move || run_feed_consumer(&url, &nkey_file, "feed-check")
    })
    .await
    .expect("consumer task");
    assert!(ok, "{summary}");
    assert_eq!(summary["commits"], head);
    assert_eq!(summary["last_sequence"], head);

    // A forged event published straight to a subject, outside the command service, is caught.
    let js = jetstream_of(&nats).await;
    let forged = json!([{
        "specversion": "1.0", "id": "01a22000-0000-7000-8000-000000000000", "source": "urn:forger",
        "type": "vn.gov.thanhhoa.remediation.item.deadline_set.v1", "subject": format!("item/{ITEM}"),
        "time": "2025-05-01T00:00:00Z", "datacontenttype": "application/json", "data": { "due_on": "2030-01-01" },
        "aggregatetype": "item", "aggregateid": ITEM, "effectivetime": "2025-05-01T00:00:00Z",
        "actoruser": "x", "actorrole": "province_office", "correlationid": "x", "causationid": "x",
        "commandid": "01a22000-0000-7000-8000-000000000000", "commandname": "set-item-deadline",
        "prevhash": "", "hash": "0".repeat(64)
    }]);
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Content-Type", event_store::BATCH_CONTENT_TYPE);
    js.publish_with_headers(
        format!("events.item.{ITEM}"),
        headers,
        forged.to_string().into(),
    )
    .await
    .expect("publish")
    .await
    .expect("ack");
    let (ok, summary) = tokio::task::spawn_blocking({
        let (url, nkey_file) = (nats.url(), nats.nkey_file(Identity::Admin));
        move || run_feed_consumer(&url, &nkey_file, "feed-check-forged")
    })
    .await
    .expect("consumer task");
    assert!(!ok, "the forged event went unnoticed: {summary}");
    assert!(
        summary["problem"]
            .as_str()
            .is_some_and(|p| p.contains("chain") || p.contains("hash")),
        "{summary}"
    );
    service.shutdown().await;
}
